/**
 * PEFT interop: adapter directories written by hand exactly as HuggingFace PEFT (0.18) writes them —
 * its full LoraConfig field set with sorted keys, `base_model.model.` tensor keys — load with the
 * meaning PEFT gives them. Every logit check compares against an independent computation: the test
 * merges W' = W + s·B·A itself with plain loops (s per module, from the test's own reading of the
 * patterns and of rslora), saves that merged checkpoint, and runs it as a plain model.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadModel } from "../cli/common.js";
import { withLabels } from "../data/task.js";
import { type VitConfig, parseVitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { EvalStep } from "../nn/train.js";
import { buildVit } from "../nn/vit.js";
import { buildAdaptedVit } from "../peft/model.js";
import { parseAdapterSpec } from "../peft/registry.js";
import { NodeRuntime } from "../runtime/node.js";
import { Rng } from "../util/rng.js";
import { saveCheckpoint } from "./checkpoint.js";
import { adapterNumLabels, applyAdapter, loadAdapter, saveAdapter } from "./peft-adapter.js";
import { type TensorEntry, fromFloat32 } from "./safetensors.js";
import { writeSafetensorsFile } from "./safetensors-file.js";

const cfg = parseVitConfig({
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 24,
  image_size: 8,
  patch_size: 4,
  num_channels: 1,
  num_labels: 4,
});
const H = 16;
const MLP = 24;
const BATCH = 3;
const runtime = new NodeRuntime({ threads: 1 });
const root = mkdtempSync(join(tmpdir(), "safl-peft-interop-"));
const baseDir = join(root, "base");
let base: ParamStore;
const pixels = Float32Array.from({ length: BATCH * 64 }, (_, i) => Math.sin(0.7 * i) + 0.1 * Math.cos(3 * i));

before(async () => {
  const rng = new Rng(7);
  base = ParamStore.init(buildVit(cfg).registry.specs.values(), rng);
  for (const n of base.names()) {
    const v = base.get(n);
    for (let i = 0; i < v.length; i++) v[i] = (n.endsWith("layernorm_before.weight") || n.endsWith("layernorm_after.weight") ? 1 : 0) + 0.2 * rng.normal();
  }
  await saveCheckpoint(baseDir, cfg, base);
});
after(() => {
  runtime.release();
  rmSync(root, { recursive: true, force: true });
});

/** Every Linear layer of the tiny ViT with [in, out]. */
const LINEARS: ReadonlyArray<[string, number, number]> = [0, 1].flatMap((l) => {
  const p = `vit.encoder.layer.${l}`;
  return [
    [`${p}.attention.attention.query`, H, H],
    [`${p}.attention.attention.key`, H, H],
    [`${p}.attention.attention.value`, H, H],
    [`${p}.attention.output.dense`, H, H],
    [`${p}.intermediate.dense`, H, MLP],
    [`${p}.output.dense`, MLP, H],
  ] as Array<[string, number, number]>;
});

/** adapter_config.json as PEFT 0.18's LoraConfig.save_pretrained writes it (every field, sorted keys). */
function peftLoraConfig(fields: Record<string, unknown>): Record<string, unknown> {
  const c: Record<string, unknown> = {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: "google/vit-base-patch16-224-in21k",
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
    lora_alpha: 16,
    lora_bias: false,
    lora_dropout: 0.1,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: ["classifier"],
    peft_type: "LORA",
    peft_version: "0.18.0",
    qalora_group_size: 16,
    r: 8,
    rank_pattern: {},
    revision: null,
    target_modules: ["query", "value"],
    target_parameters: null,
    task_type: null,
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: false,
    ...fields,
  };
  return Object.fromEntries(Object.keys(c).sort().map((k) => [k, c[k]]));
}

interface Factors {
  readonly a: Float32Array; // [r, in]
  readonly b: Float32Array; // [out, r]
  readonly r: number;
  /** The scale the test expects PEFT to use for this module. */
  readonly scale: number;
}

/** Random LoRA factors for the modules `pick` gives a rank and scale. */
function loraFactors(seed: number, pick: (name: string) => { r: number; scale: number } | undefined): Map<string, Factors> {
  const rng = new Rng(seed);
  const out = new Map<string, Factors>();
  for (const [name, nIn, nOut] of LINEARS) {
    const p = pick(name);
    if (!p) continue;
    out.set(name, {
      r: p.r,
      scale: p.scale,
      a: Float32Array.from({ length: p.r * nIn }, () => 0.3 * rng.normal()),
      b: Float32Array.from({ length: nOut * p.r }, () => 0.3 * rng.normal()),
    });
  }
  return out;
}

interface Head {
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly classes: number;
}

function randomHead(seed: number, classes: number): Head {
  const rng = new Rng(seed);
  return { classes, weight: Float32Array.from({ length: classes * H }, () => 0.3 * rng.normal()), bias: Float32Array.from({ length: classes }, () => 0.1 * rng.normal()) };
}

/** Writes an adapter directory the way PEFT does. `headSpelling` "wrapped" uses PEFT's in-memory key. */
async function writePeftDir(
  name: string,
  config: Record<string, unknown>,
  factors: ReadonlyMap<string, Factors>,
  head?: Head,
  headSpelling: "saved" | "wrapped" = "saved",
): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, TensorEntry>();
  const dims = new Map(LINEARS.map(([n, i, o]) => [n, [i, o] as const]));
  for (const [m, f] of factors) {
    const [nIn, nOut] = dims.get(m)!;
    tensors.set(`base_model.model.${m}.lora_A.weight`, fromFloat32(f.a, [f.r, nIn]));
    tensors.set(`base_model.model.${m}.lora_B.weight`, fromFloat32(f.b, [nOut, f.r]));
  }
  if (head) {
    const k = headSpelling === "saved" ? "classifier" : "classifier.modules_to_save.default";
    tensors.set(`base_model.model.${k}.weight`, fromFloat32(head.weight, [head.classes, H]));
    tensors.set(`base_model.model.${k}.bias`, fromFloat32(head.bias, [head.classes]));
  }
  await writeSafetensorsFile(join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(config, null, 2));
  return dir;
}

/** The test's own merge: W' = W + s·B·A with plain loops, the head replaced; saved as a checkpoint. */
async function mergedCheckpoint(name: string, factors: ReadonlyMap<string, Factors>, head?: Head): Promise<string> {
  const config: VitConfig = head ? withLabels(cfg, head.classes, undefined) : cfg;
  const store = ParamStore.init(buildVit(config).registry.specs.values(), new Rng(0));
  for (const n of base.names()) if (!(head && n.startsWith("classifier."))) store.set(n, base.shape(n), base.get(n).slice());
  const dims = new Map(LINEARS.map(([n, i, o]) => [n, [i, o] as const]));
  for (const [m, f] of factors) {
    const [nIn, nOut] = dims.get(m)!;
    const w = store.get(`${m}.weight`);
    for (let o = 0; o < nOut; o++) {
      for (let i = 0; i < nIn; i++) {
        let acc = 0;
        for (let k = 0; k < f.r; k++) acc += f.b[o * f.r + k]! * f.a[k * nIn + i]!;
        w[o * nIn + i] = w[o * nIn + i]! + f.scale * acc;
      }
    }
  }
  if (head) {
    store.set("classifier.weight", [head.classes, H], head.weight);
    store.set("classifier.bias", [head.classes], head.bias);
  }
  const dir = join(root, `${name}-merged`);
  await saveCheckpoint(dir, config, store);
  return dir;
}

async function logitsOf(modelDir: string, adapterDir?: string): Promise<{ data: Float32Array; labels: number }> {
  const m = await loadModel(modelDir, adapterDir);
  const out = await (await EvalStep.create(runtime, m.model, m.store, BATCH)).run(pixels);
  return { data: out.data as Float32Array, labels: m.config.num_labels };
}

async function assertSameLogits(adapterDir: string, mergedDir: string, classes: number): Promise<void> {
  const got = await logitsOf(baseDir, adapterDir);
  const want = await logitsOf(mergedDir);
  assert.equal(got.labels, classes);
  assert.equal(got.data.length, BATCH * classes);
  let worst = 0;
  for (let i = 0; i < got.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - want.data[i]!) / (1 + Math.abs(want.data[i]!)));
  assert.ok(worst < 1e-5, `logits differ by ${worst}`);
  // and the adapter does change the model (the comparison is not vacuous)
  const plain = await logitsOf(baseDir);
  if (plain.data.length === got.data.length) assert.ok(plain.data.some((v, i) => Math.abs(v - got.data[i]!) > 1e-3));
}

const endsWith = (...suffixes: string[]) => (n: string) => suffixes.some((s) => n === s || n.endsWith(`.${s}`));

describe("PEFT interop: adapters as PEFT writes them", () => {
  test("head-less LoRA (modules_to_save null, no classifier tensors) runs with the base checkpoint's head", async () => {
    const f = loraFactors(1, (n) => (endsWith("query", "value")(n) ? { r: 2, scale: 16 / 2 } : undefined));
    const dir = await writePeftDir("headless", peftLoraConfig({ r: 2, lora_alpha: 16, modules_to_save: null }), f);
    const loaded = await loadAdapter(dir);
    assert.equal(loaded.numLabels, undefined);
    assert.equal(adapterNumLabels(loaded, 4), 4);
    assert.throws(() => adapterNumLabels(loaded, 4, 3), /has no classification head \(modules_to_save is null and there are no classifier tensors\), so the base checkpoint's head is used; it has 4 classes, the task needs 3/);
    await assert.rejects(loadModel(baseDir, dir, { numLabels: 5 }), /the base checkpoint's head is used; it has 4 classes, the task needs 5/);
    await assertSameLogits(dir, await mergedCheckpoint("headless", f), 4);
  });

  for (const spelling of ["saved", "wrapped"] as const) {
    test(`modules_to_save ["classifier"] with the head (${spelling === "saved" ? "classifier.weight" : "classifier.modules_to_save.default.weight"}) replaces the base head; list targets match by suffix`, async () => {
      // "output.dense" matches both attention.output.dense and the MLP's output.dense (PEFT's suffix rule)
      const f = loraFactors(2, (n) => (endsWith("query", "value", "output.dense")(n) ? { r: 4, scale: 16 / 4 } : undefined));
      const head = randomHead(3, 3);
      const dir = await writePeftDir(`head-${spelling}`, peftLoraConfig({ r: 4, target_modules: ["value", "output.dense", "query"] }), f, head, spelling);
      const loaded = await loadAdapter(dir);
      assert.equal(loaded.numLabels, 3);
      assert.equal([...f.keys()].length, 8);
      assert.throws(() => adapterNumLabels(loaded, 4, 4), /the saved head has 3 classes, the task needs 4/);
      await assertSameLogits(dir, await mergedCheckpoint(`head-${spelling}`, f, head), 3);
    });
  }

  test("list targets: full module names and suffixes; an int and a float lora_alpha", async () => {
    const full = "vit.encoder.layer.0.attention.attention.key";
    const f = loraFactors(4, (n) => (n === full || n.endsWith(".intermediate.dense") ? { r: 3, scale: 6.5 / 3 } : undefined));
    const dir = await writePeftDir("list-float", peftLoraConfig({ r: 3, lora_alpha: 6.5, target_modules: [full, "intermediate.dense"] }), f, randomHead(5, 4));
    await assertSameLogits(dir, await mergedCheckpoint("list-float", f, randomHead(5, 4)), 4);
    const g = loraFactors(5, (n) => (n.endsWith(".key") ? { r: 2, scale: 3 / 2 } : undefined));
    const dir2 = await writePeftDir("list-int", peftLoraConfig({ r: 2, lora_alpha: 3, target_modules: ["key"] }), g, randomHead(6, 4));
    await assertSameLogits(dir2, await mergedCheckpoint("list-int", g, randomHead(6, 4)), 4);
  });

  test("regex target_modules: re.fullmatch against the full module name", async () => {
    const pattern = ".*\\.layer\\.1\\..*(query|key|intermediate\\.dense)";
    const f = loraFactors(6, (n) => (/^vit\.encoder\.layer\.1\.(attention\.attention\.(query|key)|intermediate\.dense)$/.test(n) ? { r: 2, scale: 8 / 2 } : undefined));
    assert.equal(f.size, 3);
    const dir = await writePeftDir("regex", peftLoraConfig({ r: 2, lora_alpha: 8, target_modules: pattern }), f, randomHead(7, 4));
    const loaded = await loadAdapter(dir);
    assert.deepEqual(loaded.spec.targetModules, { regex: pattern });
    await assertSameLogits(dir, await mergedCheckpoint("regex", f, randomHead(7, 4)), 4);
  });

  test("a regex that also matches the saved head: PEFT never adapts a modules_to_save module", async () => {
    const f = loraFactors(8, (n) => (n.endsWith(".value") ? { r: 2, scale: 1 } : undefined));
    const dir = await writePeftDir("regex-head", peftLoraConfig({ r: 2, lora_alpha: 2, target_modules: ".*(value|classifier)" }), f, randomHead(9, 4));
    await assertSameLogits(dir, await mergedCheckpoint("regex-head", f, randomHead(9, 4)), 4);
  });

  test("a regex that matches no module is an error (fullmatch: a bare name matches nothing)", async () => {
    const dir = await writePeftDir("regex-none", peftLoraConfig({ r: 2, target_modules: "query" }), new Map(), randomHead(1, 4));
    await assert.rejects(loadModel(baseDir, dir), /target_modules the regular expression "query" matches no Linear layer of the model \(it must match the whole module name\)/);
  });

  test("rank_pattern and alpha_pattern: per-module rank and alpha, first matching key wins", async () => {
    const rankPattern = { "layer\\.0\\.attention\\.attention\\.query": 1, query: 3, "^vit.encoder.layer.1.output.dense": 1 };
    const alphaPattern = { value: 8.5, "intermediate.dense": 3 };
    // the test's own reading of PEFT's rule, written out per module
    const rankOf = (n: string) => (n === "vit.encoder.layer.0.attention.attention.query" ? 1 : n.endsWith(".query") ? 3 : n === "vit.encoder.layer.1.output.dense" ? 1 : 2);
    const alphaOf = (n: string) => (n.endsWith(".value") ? 8.5 : n.endsWith(".intermediate.dense") ? 3 : 4);
    const targeted = endsWith("query", "value", "output.dense", "intermediate.dense");
    const f = loraFactors(10, (n) => (targeted(n) ? { r: rankOf(n), scale: alphaOf(n) / rankOf(n) } : undefined));
    assert.deepEqual(
      [...f].map(([n, x]) => [n.replace("vit.encoder.layer.", ""), x.r]),
      [
        ["0.attention.attention.query", 1],
        ["0.attention.attention.value", 2],
        ["0.attention.output.dense", 2],
        ["0.intermediate.dense", 2],
        ["0.output.dense", 2],
        ["1.attention.attention.query", 3],
        ["1.attention.attention.value", 2],
        ["1.attention.output.dense", 2],
        ["1.intermediate.dense", 2],
        ["1.output.dense", 1],
      ],
    );
    const config = peftLoraConfig({ r: 2, lora_alpha: 4, target_modules: ["query", "value", "output.dense", "intermediate.dense"], rank_pattern: rankPattern, alpha_pattern: alphaPattern });
    const dir = await writePeftDir("patterns", config, f, randomHead(11, 4));
    const loaded = await loadAdapter(dir);
    assert.equal(loaded.spec.kind, "lora");
    if (loaded.spec.kind === "lora") {
      assert.deepEqual(loaded.spec.rankPattern, rankPattern);
      assert.deepEqual(loaded.spec.alphaPattern, alphaPattern);
    }
    await assertSameLogits(dir, await mergedCheckpoint("patterns", f, randomHead(11, 4)), 4);
  });

  test("use_rslora: scale alpha/√r, with per-module ranks too", async () => {
    const f = loraFactors(12, (n) => (endsWith("query", "value")(n) ? { r: 4, scale: 8 / Math.sqrt(4) } : undefined));
    const dir = await writePeftDir("rslora", peftLoraConfig({ r: 4, lora_alpha: 8, use_rslora: true }), f, randomHead(13, 4));
    await assertSameLogits(dir, await mergedCheckpoint("rslora", f, randomHead(13, 4)), 4);
    const rankOf = (n: string) => (n.endsWith(".value") ? 9 : 4);
    const g = loraFactors(14, (n) => (endsWith("query", "value")(n) ? { r: rankOf(n), scale: 6 / Math.sqrt(rankOf(n)) } : undefined));
    const dir2 = await writePeftDir("rslora-pattern", peftLoraConfig({ r: 4, lora_alpha: 6, use_rslora: true, rank_pattern: { value: 9 } }), g, randomHead(15, 4));
    await assertSameLogits(dir2, await mergedCheckpoint("rslora-pattern", g, randomHead(15, 4)), 4);
  });

  test("a factor whose rank disagrees with rank_pattern names the key and both shapes", async () => {
    const f = loraFactors(16, (n) => (endsWith("query", "value")(n) ? { r: 2, scale: 1 } : undefined));
    const dir = await writePeftDir("rank-misfit", peftLoraConfig({ r: 2, rank_pattern: { value: 3 } }), f, randomHead(1, 4));
    await assert.rejects(loadModel(baseDir, dir), /base_model\.model\.vit\.encoder\.layer\.0\.attention\.attention\.value\.lora_A\.weight has shape \[2,16\], the model expects \[3,16\]/);
  });

  test("settings PEFT ignores at inference, and fields from newer PEFT releases, are tolerated", async () => {
    const f = loraFactors(17, (n) => (endsWith("query", "value")(n) ? { r: 2, scale: 4 / 2 } : undefined));
    const extra = {
      r: 2,
      lora_alpha: 4,
      lora_dropout: 0.3,
      init_lora_weights: "gaussian",
      eva_config: { rho: 2 },
      layers_to_transform: [],
      exclude_modules: [],
      task_type: "SEQ_CLS",
      modules_to_save: ["classifier", "score"],
      some_field_from_peft_0_99: { x: 1 },
      velora_config: null,
      kasa_config: null,
    };
    const dir = await writePeftDir("tolerated", peftLoraConfig(extra), f, randomHead(18, 4));
    await assertSameLogits(dir, await mergedCheckpoint("tolerated", f, randomHead(18, 4)), 4);
  });

  const refused: Array<[string, unknown, RegExp]> = [
    ["use_dora", true, /use_dora is true: DoRA/],
    ["layers_to_transform", [0], /layers_to_transform is \[0\]: adapting only some layer indices/],
    ["layers_to_transform", 0, /layers_to_transform is 0: /],
    ["layers_pattern", "layer", /layers_pattern is "layer"/],
    ["bias", "all", /bias is "all": training the base biases/],
    ["bias", "lora_only", /bias is "lora_only"/],
    ["fan_in_fan_out", true, /fan_in_fan_out is true/],
    ["lora_bias", true, /lora_bias is true/],
    ["megatron_config", { tensor_model_parallel_size: 2 }, /megatron_config is \{"tensor_model_parallel_size":2\}/],
    ["loftq_config", { loftq_bits: 4, loftq_iter: 1 }, /loftq_config is .*LoftQ/],
    ["exclude_modules", ["key"], /exclude_modules is \["key"\]/],
    ["exclude_modules", ".*key", /exclude_modules is ".\*key"/],
    ["trainable_token_indices", [1, 2], /trainable_token_indices is \[1,2\]/],
    ["init_lora_weights", "pissa", /init_lora_weights is "pissa": this initialization rewrites the base weights/],
    ["init_lora_weights", "pissa_niter_4", /init_lora_weights is "pissa_niter_4"/],
    ["init_lora_weights", "olora", /init_lora_weights is "olora"/],
    ["init_lora_weights", "corda", /init_lora_weights is "corda"/],
    ["layer_replication", [[0, 1]], /layer_replication is \[\[0,1\]\]/],
    ["use_qalora", true, /use_qalora is true/],
    ["target_parameters", ["experts.down_proj"], /target_parameters is \["experts\.down_proj"\]/],
    ["alora_invocation_tokens", [7, 8], /alora_invocation_tokens is \[7,8\]/],
    ["arrow_config", { top_k: 3 }, /arrow_config is/],
    ["use_bdlora", { nblocks: 2 }, /use_bdlora is/],
  ];
  for (const [field, value, re] of refused) {
    test(`refused: ${field} = ${JSON.stringify(value)}`, async () => {
      const dir = await writePeftDir(`refused-${field}-${JSON.stringify(value).replace(/\W/g, "_")}`, peftLoraConfig({ [field]: value }), new Map(), randomHead(1, 4));
      await assert.rejects(loadAdapter(dir), (e: Error) => re.test(e.message) && /adapter_config\.json uses PEFT settings this adapter loader does not support/.test(e.message));
    });
  }

  test("several refused settings come in one error naming each", async () => {
    const dir = await writePeftDir("refused-many", peftLoraConfig({ use_dora: true, bias: "all", fan_in_fan_out: true }), new Map());
    await assert.rejects(loadAdapter(dir), (e: Error) => e.message.split("\n").length === 4 && /use_dora is true/.test(e.message) && /bias is "all"/.test(e.message) && /fan_in_fan_out is true/.test(e.message));
  });

  test("regex fields with Python-only syntax, and the all-linear shorthand, are refused naming the field", async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ target_modules: ".*(?P<m>query|value)" }, /target_modules is a regular expression that cannot be used here: a named group/],
      [{ target_modules: "(?i).*QUERY" }, /target_modules is a regular expression that cannot be used here: inline flags/],
      [{ target_modules: ".*query++" }, /target_modules .*possessive quantifier/],
      [{ rank_pattern: { "(?P<x>query)": 4 } }, /rank_pattern\["\(\?P<x>query\)"\] is a regular expression that cannot be used here: a named group/],
      [{ alpha_pattern: { "(?>value)": 4 } }, /alpha_pattern\["\(\?>value\)"\] .*atomic group/],
      [{ target_modules: "all-linear" }, /target_modules is "all-linear", PEFT's shorthand/],
    ];
    for (const [fields, re] of cases) {
      const dir = await writePeftDir("regex-refused", peftLoraConfig(fields), new Map(), randomHead(1, 4));
      await assert.rejects(loadAdapter(dir), re, JSON.stringify(fields));
    }
  });

  test("modules_to_save lists the head but the file has none: an error, not a silent base head", async () => {
    const f = loraFactors(19, (n) => (endsWith("query", "value")(n) ? { r: 8, scale: 2 } : undefined));
    const dir = await writePeftDir("head-missing", peftLoraConfig({}), f);
    await assert.rejects(loadAdapter(dir), /has no base_model\.model\.classifier\.weight, but .*adapter_config\.json lists "classifier" in modules_to_save/);
  });
});

describe("PEFT interop: our export with the new settings", () => {
  test("rankPattern / alphaPattern / useRslora / a regex target: written as PEFT expects, loaded back to the same logits", async () => {
    const spec = parseAdapterSpec({
      kind: "lora",
      rank: 2,
      alpha: 3,
      targetModules: { regex: ".*\\.(query|value|intermediate\\.dense)" },
      rankPattern: { "layer\\.1\\..*value": 4 },
      alphaPattern: { "intermediate.dense": 5.5 },
      useRslora: true,
    });
    const { model, adapter } = buildAdaptedVit(cfg, spec);
    const store = ParamStore.init(model.registry.specs.values(), new Rng(21));
    for (const n of base.names()) if (!n.startsWith("classifier.")) store.set(n, base.shape(n), base.get(n).slice());
    const rng = new Rng(22);
    for (const n of store.names()) {
      if (!adapter.isAdapterParam(n) && !n.startsWith("classifier.")) continue;
      const v = store.get(n);
      for (let i = 0; i < v.length; i++) v[i] = 0.3 * rng.normal();
    }
    assert.deepEqual(
      adapter.modules().map((m) => [m.name.replace("vit.encoder.layer.", ""), m.rank]),
      [
        ["0.attention.attention.query", 2],
        ["0.attention.attention.value", 2],
        ["0.intermediate.dense", 2],
        ["1.attention.attention.query", 2],
        ["1.attention.attention.value", 4],
        ["1.intermediate.dense", 2],
      ],
    );
    const dir = join(root, "export-patterns");
    await saveAdapter(dir, { spec, adapter, store, baseModel: baseDir });
    const c = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    assert.equal(c.peft_type, "LORA");
    assert.equal(c.target_modules, ".*\\.(query|value|intermediate\\.dense)");
    assert.deepEqual(c.rank_pattern, { "layer\\.1\\..*value": 4 });
    assert.deepEqual(c.alpha_pattern, { "intermediate.dense": 5.5 });
    assert.equal(c.use_rslora, true);
    assert.deepEqual([c.r, c.lora_alpha, c.use_dora, c.bias], [2, 3, false, "none"]);

    const loaded = await loadAdapter(dir);
    assert.deepEqual(loaded.spec, spec);
    const fresh = buildAdaptedVit(cfg, loaded.spec);
    const dst = ParamStore.init(fresh.model.registry.specs.values(), new Rng(99));
    for (const n of base.names()) if (!n.startsWith("classifier.")) dst.set(n, base.shape(n), base.get(n).slice());
    applyAdapter(loaded, fresh.adapter, dst);
    const a = (await (await EvalStep.create(runtime, model, store, BATCH)).run(pixels)).data as Float32Array;
    const b = (await (await EvalStep.create(runtime, fresh.model, dst, BATCH)).run(pixels)).data as Float32Array;
    assert.deepEqual(Array.from(b), Array.from(a));

    // and the independent merge agrees with the exported adapter (per-module rslora scale alpha/√r)
    const f = new Map<string, Factors>();
    for (const m of adapter.modules()) {
      const alpha = m.name.endsWith(".intermediate.dense") ? 5.5 : 3;
      f.set(m.name, { r: m.rank, scale: alpha / Math.sqrt(m.rank), a: store.get(`${m.name}.lora_A.weight`), b: store.get(`${m.name}.lora_B.weight`) });
    }
    const head = { classes: 4, weight: store.get("classifier.weight"), bias: store.get("classifier.bias") };
    await assertSameLogits(dir, await mergedCheckpoint("export-patterns", f, head), 4);
  });
});
