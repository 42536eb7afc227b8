/**
 * @module nn
 * Models without a platform: the HuggingFace-layout ViT and its config (presets included),
 * parameter declarations and stores, the compiled train and eval steps, optimizers and learning-rate
 * schedules. Everything here runs on any `Runtime` (the contract is re-exported below; the
 * onnxruntime-node one is `sa-fedlora/node`), so this entry point is safe for a browser bundle.
 */

// The ViT config (HF config.json fields) and the named presets.
export { PRESETS, parseVitConfig, presetConfig, type VitConfig, type VitConfigInput, vitConfigSchema, vitDims } from "./config.js";

// The model graph.
export { buildVit, type VitGraph } from "./vit.js";
export { type Adapters, type LinearAdapter, type LowRankFactors, ParamRegistry, matchesTarget } from "./module.js";

// Parameters: declarations (name, shape, initializer) and stores of their values.
export { type Init, type ParamSpec, ParamStore, initParam, numelOf } from "./params.js";
export { Rng } from "../util/rng.js";

// Training and evaluation: one compiled call per step.
export { EvalStep, TrainStep, type TrainStepOptions } from "./train.js";
export { type EvalResult, Evaluator, type LabeledBatch, scoreLogits } from "./evaluate.js";
export { AdamW, type AdamWOptions, type Optimizer, Sgd, type SgdOptions } from "./optim.js";
export { type LrSchedule, constantLr, warmupCosineLr } from "./lr-schedule.js";
export { type StepMode, stepFlops } from "./flops.js";

// The runtime contract the steps compile against, and host tensors.
export type { CompileOptions, Executable, Runtime } from "../runtime/runtime.js";
export { type HostData, type HostTensor, f32, f64, i64, tensor } from "../tensor.js";
