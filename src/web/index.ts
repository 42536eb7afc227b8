/**
 * @module sa-fedlora/web
 * The browser entry point of the package, built into one ES module (`dist/web/sa-fedlora-web.js`,
 * `npm run build`; see docs/browser.md) with onnxruntime-web's files beside it in `dist/web/ort/`:
 * the onnxruntime-web runtime plus what a page needs to build a ViT, put an adapter on it and run
 * training steps, and the platform-free parts of federated learning and of the safetensors codec.
 * The same curated list as the Node entry (src/index.ts) without its Node-only sections (files,
 * dataset loaders, simulation, onnxruntime-node), plus the browser client. Imports no node:*
 * module (a test checks this).
 */

// The browser runtime (onnxruntime-web: WebAssembly with threads when cross-origin isolated, optional WebGPU).
export { type OrtBuild, type WebExecutionProvider, WebRuntime, type WebRuntimeInfo, type WebRuntimeOptions, isCrossOriginIsolated } from "./runtime.js";

// The federated client in a page (the loop of `safl client` on connect-web, OPFS / IndexedDB, onnxruntime-web).
export { type BrowserClientExit, type BrowserClientOptions, type OwnImages, runBrowserClient, type WantedImages } from "./client.js";
export { CLIENT_EXIT_CODES, type ClientEvent, type ClientExit, type ClientExitReason, summaryLine } from "../net/client-core.js";
export { BrowserBaseStore, BrowserObjectStore, type FileStore, MemoryStore, openFileStore } from "./storage.js";

// Errors: every failure a user can cause is a SaflError with a code from a closed set.
export { ErrorCode, SaflError } from "../errors.js";

// The graph IR, as a namespace (`graph.input`, `graph.matmul`, `graph.grad`, ...).
export * as graph from "../graph/index.js";

// Models: the HF-layout ViT, its config and presets, parameters, steps, optimizers.
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
} from "../nn/index.js";

// Adapters: specs, the methods, attaching, merging, the shared training step.
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
} from "../peft/index.js";

// The float64 reference interpreter and the finite-difference gradient check (platform-free).
export { evaluate as evaluateReference } from "../runtime/reference.js";
export { type GradCheckOptions, type GradCheckResult, checkGrads } from "../runtime/gradcheck.js";

// Federated learning: strategies, the round driver, grids, the client engine, the wire format.
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
} from "../fl/index.js";

// safetensors bytes <-> tensors (the codec only; reading and writing files is Node-only).
export { type SafetensorsFile, type TensorEntry, fromFloat32, parseSafetensors, serializeSafetensors, toFloat32 } from "../io/safetensors.js";

// Dataset operations and partitioners (platform-free; the loaders are Node-only).
export { type Batch, type ImageDataset, batches, classHistogram, filterClasses, makeDataset, normalize, subset } from "../data/dataset.js";
export { type PartitionSpec, type PartitionSummary, formatPartitionSummary, parsePartitionSpec, partition, partitionSummary } from "../data/partition.js";
