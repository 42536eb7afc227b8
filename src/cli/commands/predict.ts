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
import { intFlag, optionalString, parseFlags, requiredString } from "../args.js";
import { loadModel } from "../common.js";

export const predictHelp = `safl predict — logits of a ViT checkpoint on a batch of images

Usage: safl predict --model <dir> [--adapter <dir>] --images <file.safetensors>
                    --out <file.safetensors> [--threads T] [--batch N]

  --model    HF ViTForImageClassification directory (config.json + model.safetensors)
  --adapter  PEFT adapter directory (adapter_config.json + adapter_model.safetensors, e.g. from
             safl finetune) applied on top of --model, with its own classification head
  --images   safetensors file with float32 "pixel_values" [N, C, H, W] (already normalized)
  --out      where to write float32 "logits" [N, num_labels]
  --threads  onnxruntime intra-op threads (default 2)
  --batch    images per forward pass (default 64)`;

export async function predict(argv: string[]): Promise<number> {
  const f = parseFlags(
    argv,
    {
      model: { type: "string" },
      adapter: { type: "string" },
      images: { type: "string" },
      out: { type: "string" },
      threads: { type: "string" },
      batch: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    "predict",
  );
  if (f["help"]) {
    console.log(predictHelp);
    return 0;
  }
  const modelDir = requiredString(f["model"], "model", "predict");
  const imagesPath = requiredString(f["images"], "images", "predict");
  const outPath = requiredString(f["out"], "out", "predict");
  const threads = intFlag(f["threads"], "threads", 2, 1, 256);
  const maxBatch = intFlag(f["batch"], "batch", 64, 1, 65536);

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
