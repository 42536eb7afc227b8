/**
 * HF checkpoint directories: save → load round trip, and one clear error for each way a directory
 * can be wrong (missing files, invalid config, missing or mis-shaped tensors).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { SaflError } from "../errors.js";
import { parseVitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { buildVit } from "../nn/vit.js";
import { Rng } from "../util/rng.js";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { fromFloat32, serializeSafetensors } from "./safetensors.js";

const cfg = parseVitConfig({
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 16,
  image_size: 4,
  patch_size: 2,
  num_channels: 1,
  num_labels: 3,
});
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "safl-ckpt-"));
  dirs.push(d);
  return d;
}
const isCode = (code: string, re: RegExp) => (e: unknown) => e instanceof SaflError && e.code === code && re.test(e.message);

describe("HF checkpoint directories", () => {
  test("save then load gives the same parameters and config", async () => {
    const dir = await tempDir();
    const params = ParamStore.init(buildVit(cfg).registry.specs.values(), new Rng(2));
    await saveCheckpoint(dir, cfg, params, { safl_source_task: "test" });
    assert.deepEqual((await readdir(dir)).sort(), ["config.json", "model.safetensors"]);
    const back = await loadCheckpoint(dir);
    assert.equal(back.config.hidden_size, 8);
    assert.equal(JSON.parse(await readFile(join(dir, "config.json"), "utf8")).safl_source_task, "test");
    for (const n of params.names()) assert.deepEqual(back.params.get(n), params.get(n));
  });

  test("a missing directory or config says what a model directory holds", async () => {
    await assert.rejects(loadCheckpoint("/nonexistent/model"), isCode("io", /config\.json: no such file \(a model directory holds config\.json and model\.safetensors\)/));
  });

  test("an invalid config lists every problem with its field", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "config.json"), JSON.stringify({ hidden_size: 10, num_hidden_layers: 1, num_attention_heads: 3, intermediate_size: 4, image_size: 5, patch_size: 2, hidden_act: "relu", num_labels: 2 }));
    await assert.rejects(
      loadCheckpoint(dir),
      isCode("invalid_argument", /num_attention_heads: hidden_size 10 is not divisible[\s\S]*patch_size: image_size 5[\s\S]*hidden_act: hidden_act "relu" is not supported/),
    );
  });

  test("missing and mis-shaped tensors are named", async () => {
    const dir = await tempDir();
    const params = ParamStore.init(buildVit(cfg).registry.specs.values(), new Rng(2));
    await saveCheckpoint(dir, cfg, params);
    const tensors = new Map();
    for (const n of params.names()) {
      if (n === "classifier.bias") continue;
      const shape = n === "classifier.weight" ? [4, 8] : [...params.shape(n)];
      const data = n === "classifier.weight" ? new Float32Array(32) : params.get(n);
      tensors.set(n, fromFloat32(data, shape));
    }
    await writeFile(join(dir, "model.safetensors"), serializeSafetensors(tensors));
    await assert.rejects(
      loadCheckpoint(dir),
      isCode("checkpoint", /"classifier\.weight" has shape \[4,8\], the config expects \[3,8\][\s\S]*missing "classifier\.bias" \[3\]/),
    );
  });

  test("a truncated weights file is an io error naming the path", async () => {
    const dir = await tempDir();
    const params = ParamStore.init(buildVit(cfg).registry.specs.values(), new Rng(2));
    await saveCheckpoint(dir, cfg, params);
    const bytes = await readFile(join(dir, "model.safetensors"));
    await writeFile(join(dir, "model.safetensors"), bytes.subarray(0, bytes.length - 10));
    await assert.rejects(loadCheckpoint(dir), isCode("io", /model\.safetensors/));
  });
});
