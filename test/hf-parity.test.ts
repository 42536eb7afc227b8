/**
 * End-to-end parity with HuggingFace ViTForImageClassification: checkpoint directories written by
 * an independent PyTorch implementation of HF's semantics (test/parity/hf_vit_reference.py, which
 * checks itself against torch's built-in conv, layer_norm, gelu and attention) must load and give
 * the logits that implementation computed in float64.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { loadCheckpoint } from "../src/io/checkpoint.js";
import { toFloat32 } from "../src/io/safetensors.js";
import { readSafetensorsFile } from "../src/io/safetensors-file.js";
import { buildVit } from "../src/nn/vit.js";
import { EvalStep } from "../src/nn/train.js";
import { NodeRuntime } from "../src/runtime/node.js";

const fixture = (name: string) => fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
const runtime = new NodeRuntime({ threads: 1 });
after(() => runtime.release());

describe("HF ViT parity", () => {
  for (const name of ["hf-vit-tiny", "hf-vit-eps"]) {
    test(`${name}: logits match the PyTorch reference`, async () => {
      const dir = fixture(name);
      const ckpt = await loadCheckpoint(dir);
      const io = await readSafetensorsFile(`${dir}/io.safetensors`);
      const px = io.tensors.get("pixel_values")!;
      const expected = toFloat32(io.tensors.get("logits")!);
      const batch = px.shape[0]!;
      const model = buildVit(ckpt.config);
      const step = await EvalStep.create(runtime, model, ckpt.params, batch);
      const logits = await step.run(toFloat32(px));
      assert.deepEqual(logits.shape, [batch, ckpt.config.num_labels]);
      let worst = 0;
      for (let i = 0; i < expected.length; i++) {
        const err = Math.abs((logits.data as Float32Array)[i]! - expected[i]!) / (1 + Math.abs(expected[i]!));
        worst = Math.max(worst, err);
      }
      assert.ok(worst < 1e-4, `worst relative error ${worst}`);
    });
  }

  test("hf-vit-eps: config fields are honoured (eps, channels, labels)", async () => {
    const ckpt = await loadCheckpoint(fixture("hf-vit-eps"));
    assert.equal(ckpt.config.layer_norm_eps, 1e-5);
    assert.equal(ckpt.config.num_channels, 1);
    assert.deepEqual(ckpt.config.id2label, { "0": "cat", "1": "dog", "2": "bird" });
  });
});
