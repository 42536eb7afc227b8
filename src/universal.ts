/**
 * @module universal
 * The platform-free part of the public API, which both entry points re-export: the Node entry
 * (src/index.ts, `sa-fedlora`) adds the Node-only parts (files, dataset loaders, simulation,
 * onnxruntime-node) and the browser entry (src/web/index.ts, `sa-fedlora/web`) the browser's
 * (onnxruntime-web, the browser client). Nothing reachable from here imports a Node built-in
 * (src/universal-entry.test.ts checks it).
 */

// Errors: every failure a user can cause is a SaflError with a code from a closed set.
export { ErrorCode, SaflError, exitCodeFor } from "./errors.js";

// The graph IR, as a namespace (`graph.input`, `graph.matmul`, `graph.grad`, ...); also `sa-fedlora/graph`.
export * as graph from "./graph/index.js";

// Models (sa-fedlora/nn): the HF-layout ViT, its config and presets, parameters, steps, optimizers.
export {
  AdamW,
  type AdamWOptions,
  type CompileOptions,
  type EvalResult,
  EvalStep,
  Evaluator,
  type Executable,
  type HostData,
  type HostTensor,
  type Init,
  type LabeledBatch,
  type LrSchedule,
  type Optimizer,
  PRESETS,
  ParamRegistry,
  type ParamSpec,
  ParamStore,
  Rng,
  type Runtime,
  Sgd,
  type SgdOptions,
  TrainStep,
  type TrainStepOptions,
  type VitConfig,
  type VitConfigInput,
  type VitGraph,
  buildVit,
  constantLr,
  f32,
  f64,
  i64,
  parseVitConfig,
  presetConfig,
  stepFlops,
  tensor,
  vitConfigSchema,
  vitDims,
  warmupCosineLr,
} from "./nn/index.js";

// Adapters (sa-fedlora/peft): specs, the methods, attaching, merging, the shared training step.
export {
  ADAPTER_KINDS,
  type AdaloraConfig,
  type AdaptedModule,
  type AdaptedVit,
  type Adapter,
  type AdapterKind,
  type AdapterSpec,
  type AdapterSpecInput,
  type LoraConfig,
  RankController,
  type SvdAdapter,
  Trainer,
  type TrainerOptions,
  adapterSpecSchema,
  adapterTrainable,
  buildAdaptedVit,
  createAdapter,
  isHeadParam,
  mergeAdapter,
  parseAdapterSpec,
  unmergeAdapter,
} from "./peft/index.js";

// The float64 reference interpreter and the finite-difference gradient check.
export { evaluate as evaluateReference } from "./runtime/reference.js";
export { type GradCheckOptions, type GradCheckResult, checkGrads } from "./runtime/gradcheck.js";

// Federated learning (sa-fedlora/fl): strategies, the round driver, grids, the client engine, the wire format.
export {
  type AcceptedReply,
  type ClientContext,
  ClientEngine,
  type ClientStorage,
  type DriverOptions,
  type EvalResult as ServerEvalResult,
  type Failure,
  type FailureCode,
  type Grid,
  type GridReply,
  type GridRequest,
  type HandleResult,
  type LocalTraining,
  type PayloadDType,
  type RoundRecord,
  type RunSummary,
  STRATEGY_NAMES,
  type Strategy,
  type StrategyContext,
  type StrategyName,
  type StrategySpec,
  type TrainPlan,
  type Traffic,
  type WireMessage,
  createStrategy,
  decodeMessage,
  encodeMessage,
  runRounds,
  strategySpecSchema,
} from "./fl/index.js";

// safetensors bytes <-> tensors (the codec; reading and writing files is Node-only).
export { type SafetensorsFile, type TensorEntry, fromFloat32, parseSafetensors, serializeSafetensors, toFloat32 } from "./io/safetensors.js";

// Dataset operations and partitioners (the loaders are Node-only).
export { type Batch, type DatasetSplits, type ImageDataset, batches, classHistogram, filterClasses, makeDataset, normalize, parseClassList, subset } from "./data/dataset.js";
export { type PartitionSpec, type PartitionSummary, formatPartitionSummary, parsePartitionSpec, partition, partitionSummary } from "./data/partition.js";
export { withLabels } from "./nn/config.js";
