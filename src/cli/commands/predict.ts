/**
 * @module cli/commands/predict
 * `safl predict`: runs a HF ViT checkpoint directory on float32 `pixel_values` [N, C, H, W] from a
 * safetensors file and writes float32 `logits` [N, num_labels] to another.
 */
import { ErrorCode, SaflError } from "../../errors.js";
import { fromFloat32, toFloat32 } from "../../io/safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../../io/safetensors-file.js";
import { EvalStep } from "../../nn/train.js";
import { NodeRuntime } from "../../runtime/node.js";
import { defineFlags, optionalString, withDefault } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { loadModel } from "../common.js";
import { BATCH, MODEL, OUT, THREADS } from "../flags.js";

const flags = defineFlags({
  model: { ...MODEL, required: true },
  adapter: {
    type: "string",
    value: "<dir>",
    description:
      "PEFT adapter directory (adapter_config.json + adapter_model.safetensors, e.g. from safl finetune) applied on top of --model, with its own classification head (or the model's head when the adapter saved none, as PEFT's modules_to_save: null)",
  },
  images: { type: "string", value: "<file>", required: true, description: 'safetensors file with float32 "pixel_values" [N, C, H, W] (already normalized)' },
  out: { ...OUT, value: "<file>", required: true, description: 'where to write float32 "logits" [N, num_labels] (safetensors)' },
  threads: THREADS,
  batch: { ...withDefault(BATCH, 64), description: "images per forward pass" },
});

export const predictCommand = defineCommand({
  name: "predict",
  summary: "logits of a HF ViT checkpoint on images from a safetensors file",
  usage: "--model <dir> [--adapter <dir>] --images <file.safetensors> --out <file.safetensors> [--threads T] [--batch N]",
  flags,
  run: predict,
});

async function predict({ values: v, given: f }: CommandInput<typeof flags>): Promise<number> {
  const { model: modelDir, images: imagesPath, out: outPath, threads, batch: maxBatch } = v;

  const { config: c, model, store } = await loadModel(modelDir, optionalString(f["adapter"]));
  const file = await readSafetensorsFile(imagesPath);
  const entry = file.tensors.get("pixel_values");
  if (!entry) {
    throw new SaflError(ErrorCode.Io, `${imagesPath} has no "pixel_values" tensor (found: ${[...file.tensors.keys()].join(", ") || "none"})`);
  }
  const expected = [c.num_channels, c.image_size, c.image_size];
  if (entry.shape.length !== 4 || entry.shape.slice(1).some((d, i) => d !== expected[i])) {
    throw new SaflError(
      ErrorCode.Shape,
      `${imagesPath}: pixel_values has shape [${entry.shape.join(",")}], the model expects [N,${expected.join(",")}]`,
    );
  }
  if (entry.dtype !== "F32") {
    throw new SaflError(ErrorCode.DType, `${imagesPath}: pixel_values must be float32 (F32), got ${entry.dtype}`);
  }
  const n = entry.shape[0]!;
  const pixels = toFloat32(entry, "pixel_values");
  const per = expected[0]! * expected[1]! * expected[2]!;
  const runtime = new NodeRuntime({ threads });
  const logits = new Float32Array(n * c.num_labels);
  try {
    for (let start = 0; start < n; start += maxBatch) {
      const b = Math.min(maxBatch, n - start);
      const step = await EvalStep.create(runtime, model, store, b);
      const out = await step.run(pixels.subarray(start * per, (start + b) * per));
      logits.set(out.data as Float32Array, start * c.num_labels);
      if (n > maxBatch) process.stderr.write(`\rpredict: ${Math.min(start + b, n)}/${n} images`);
    }
    if (n > maxBatch) process.stderr.write("\n");
  } finally {
    await runtime.release();
  }
  await writeSafetensorsFile(outPath, new Map([["logits", fromFloat32(logits, [n, c.num_labels])]]));
  console.log(`wrote logits [${n}, ${c.num_labels}] to ${outPath}`);
  return 0;
}
