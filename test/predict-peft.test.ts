/**
 * `safl predict --adapter` on an adapter written as HuggingFace PEFT writes a head-less LoRA
 * (`modules_to_save: null`, no classifier tensors, a regex `target_modules`): the logits equal those
 * of a checkpoint the test merges itself (W' = W + (alpha/r)·B·A with plain loops) and runs without
 * an adapter; and a PEFT setting we do not support fails with one message naming the field.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { loadCheckpoint, saveCheckpoint } from "../src/io/checkpoint.js";
import { type TensorEntry, fromFloat32, toFloat32 } from "../src/io/safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../src/io/safetensors-file.js";
import { Rng } from "../src/util/rng.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const safl = join(root, "bin", "safl.js");
const fixture = join(root, "test", "fixtures", "hf-vit-tiny");
const images = join(fixture, "io.safetensors");
const run = (...args: string[]) => spawnSync(process.execPath, [safl, ...args], { encoding: "utf8", cwd: root });
let tmp = "";
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "safl-predict-peft-"));
});
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** PEFT 0.18's adapter_config.json for a LoRA without a head (sorted keys, every field). */
const peftConfig = (fields: Record<string, unknown>) => {
  const c: Record<string, unknown> = {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: "hf-vit-tiny",
    bias: "none",
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: 4,
    lora_bias: false,
    lora_dropout: 0.05,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    peft_version: "0.18.0",
    qalora_group_size: 16,
    r: 2,
    rank_pattern: {},
    revision: null,
    target_modules: ".*\\.attention\\.attention\\.(query|value)",
    target_parameters: null,
    task_type: null,
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
    ...fields,
  };
  return JSON.stringify(Object.fromEntries(Object.keys(c).sort().map((k) => [k, c[k]])), null, 2);
};

async function readLogits(path: string): Promise<{ shape: number[]; data: Float32Array }> {
  const t = (await readSafetensorsFile(path)).tensors.get("logits")!;
  return { shape: t.shape, data: toFloat32(t) };
}

describe("safl predict --adapter with a PEFT-written adapter", () => {
  test("a head-less LoRA with a regex target runs on the model's own head and matches an independent merge", async () => {
    const ckpt = await loadCheckpoint(fixture);
    const hidden = ckpt.config.hidden_size;
    const r = 2;
    const scale = 4 / r;
    const rng = new Rng(3);
    const adapterDir = join(tmp, "adapter");
    await mkdir(adapterDir, { recursive: true });
    const tensors = new Map<string, TensorEntry>();
    for (let l = 0; l < ckpt.config.num_hidden_layers; l++) {
      for (const m of ["query", "value"]) {
        const name = `vit.encoder.layer.${l}.attention.attention.${m}`;
        const a = Float32Array.from({ length: r * hidden }, () => 0.2 * rng.normal());
        const b = Float32Array.from({ length: hidden * r }, () => 0.2 * rng.normal());
        tensors.set(`base_model.model.${name}.lora_A.weight`, fromFloat32(a, [r, hidden]));
        tensors.set(`base_model.model.${name}.lora_B.weight`, fromFloat32(b, [hidden, r]));
        // the test's own merge: W[o, i] += scale · Σ_k B[o, k] · A[k, i]
        const w = ckpt.params.get(`${name}.weight`);
        for (let o = 0; o < hidden; o++) {
          for (let i = 0; i < hidden; i++) {
            let acc = 0;
            for (let k = 0; k < r; k++) acc += b[o * r + k]! * a[k * hidden + i]!;
            w[o * hidden + i] = w[o * hidden + i]! + scale * acc;
          }
        }
      }
    }
    await writeSafetensorsFile(join(adapterDir, "adapter_model.safetensors"), tensors, { format: "pt" });
    await writeFile(join(adapterDir, "adapter_config.json"), peftConfig({}));
    const mergedDir = join(tmp, "merged");
    await saveCheckpoint(mergedDir, ckpt.config, ckpt.params);

    const viaAdapter = join(tmp, "adapter-logits.safetensors");
    const viaMerge = join(tmp, "merged-logits.safetensors");
    const plain = join(tmp, "plain-logits.safetensors");
    for (const [args, out] of [
      [["--model", fixture, "--adapter", adapterDir], viaAdapter],
      [["--model", mergedDir], viaMerge],
      [["--model", fixture], plain],
    ] as const) {
      const res = run("predict", ...args, "--images", images, "--out", out, "--threads", "1");
      assert.equal(res.status, 0, res.stderr);
    }
    const got = await readLogits(viaAdapter);
    const want = await readLogits(viaMerge);
    const base = await readLogits(plain);
    assert.deepEqual(got.shape, want.shape);
    assert.equal(got.shape[1], ckpt.config.num_labels, "the base checkpoint's head (5 classes) is used");
    let worst = 0;
    for (let i = 0; i < got.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - want.data[i]!) / (1 + Math.abs(want.data[i]!)));
    assert.ok(worst < 1e-5, `logits differ by ${worst}`);
    assert.ok(base.data.some((v, i) => Math.abs(v - got.data[i]!) > 1e-4), "the adapter changes the logits");
  });

  test("an unsupported PEFT setting exits non-zero with one message naming the field", async () => {
    const dir = join(tmp, "dora");
    await mkdir(dir, { recursive: true });
    await writeSafetensorsFile(join(dir, "adapter_model.safetensors"), new Map(), { format: "pt" });
    await writeFile(join(dir, "adapter_config.json"), peftConfig({ use_dora: true }));
    const res = run("predict", "--model", fixture, "--adapter", dir, "--images", images, "--out", join(tmp, "x.safetensors"), "--threads", "1");
    assert.notEqual(res.status, 0);
    assert.match(res.stderr, /use_dora is true: DoRA adds a learned magnitude vector per module, which is not supported/);
    assert.ok(!/at .*\.js:\d+/.test(res.stderr), "no stack trace");
  });
});
