/**
 * @module cli/flags
 * Flags more than one command takes, declared once so they parse, validate and read the same
 * everywhere. A command that means something narrower by one (a different default, a required
 * --out, what exactly --out holds) spreads it and overrides that field, e.g.
 * `{ ...OUT, required: true, description: "..." }` or `withDefault(EPOCHS, 10)`. Help lists flags
 * in the order of the command's spec, and overriding a spread flag keeps its place in that order.
 */
import { PRESETS } from "../nn/config.js";
import { defineFlags, flag } from "./args.js";

export const MODEL = flag({ type: "string", value: "<dir>", description: "HF ViTForImageClassification checkpoint directory (config.json + model.safetensors)" });

export const THREADS = flag({ type: "int", value: "<n>", default: 2, min: 1, max: 256, description: "onnxruntime intra-op threads" });

export const SEED = flag({ type: "int", value: "<n>", default: 0, min: 0, description: "initialization and shuffling seed" });

export const JSON_OUTPUT = flag({ type: "boolean", description: "print the summary as JSON" });

export const FORCE = flag({ type: "boolean", description: "replace --out if it exists" });

export const OUT = flag({ type: "string", value: "<dir>", description: "output directory" });

/** Architecture presets (nn/config.ts); each command picks its own default. */
export const PRESET = flag({ type: "choice", value: "<name>", choices: Object.keys(PRESETS), description: `model preset: ${Object.keys(PRESETS).join(", ")}` });

export const BATCH = flag({ type: "int", value: "<n>", min: 1, max: 65_536, description: "batch size" });

export const EPOCHS = flag({ type: "int", value: "<n>", min: 1, max: 10_000, description: "passes over the training set" });

export const LR = flag({ type: "number", value: "<x>", min: 0, max: 10, description: "AdamW learning rate" });

export const WEIGHT_DECAY = flag({ type: "number", value: "<x>", min: 0, max: 10, description: "AdamW weight decay" });

/** Where a task's images come from (data/load.ts) and how they are normalized. */
export const DATA_FLAGS = defineFlags({
  dataset: {
    type: "string",
    value: "<name|dir>",
    default: "mnist",
    description: "mnist (embedded), fashion-mnist, cifar10, or a directory (IDX files, CIFAR-10 binary batches, or train/test.safetensors)",
  },
  "data-dir": { type: "string", value: "<dir>", description: "where the fashion-mnist / cifar10 files are" },
  classes: { type: "string", value: "<list>", defaultText: "all", description: "classes to keep, e.g. 0-4 or 1,3,5-7 (relabelled 0..k-1)" },
  mean: { type: "string", value: "<x,...>", defaultText: "none", description: "normalization mean, one number or one per channel, e.g. 0.5 (a missing --std is 1)" },
  std: { type: "string", value: "<x,...>", defaultText: "none", description: "normalization standard deviation, one number or one per channel (a missing --mean is 0)" },
});

/**
 * What every training command (pretrain, finetune) takes besides DATA_FLAGS: the optimizer basics
 * and the output. The optimizer defaults differ per command, so they set them with withDefault.
 */
export const TRAINING_FLAGS = defineFlags({
  epochs: EPOCHS,
  batch: BATCH,
  lr: LR,
  "weight-decay": WEIGHT_DECAY,
  seed: SEED,
  threads: THREADS,
  out: { ...OUT, required: true },
  force: FORCE,
  json: JSON_OUTPUT,
});
