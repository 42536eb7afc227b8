/**
 * @module sa-fedlora
 * The Node entry point of the package: what a library user needs to build ViTs, put adapters on
 * them, train, run federated strategies and simulations, and read and write checkpoints, adapters
 * and datasets. Sections marked "Node-only" use node:* modules or onnxruntime-node; importing this
 * entry loads onnxruntime-node's native binding. A browser bundle should import the platform-free
 * subpaths instead: `sa-fedlora/graph`, `sa-fedlora/nn`, `sa-fedlora/peft`, `sa-fedlora/fl`.
 * Every subpath exports more than this curated list.
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

// Runtimes. Node-only: NodeRuntime (onnxruntime-node's CPU provider; also `sa-fedlora/node`).
export { NodeRuntime, type NodeRuntimeOptions } from "./runtime/node.js";
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

// Simulation (sa-fedlora/sim). Node-only: loads the backbone and data from disk, may use worker threads.
export {
  InMemoryGrid,
  type RunConfig,
  type RunConfigInput,
  SharedBaseStore,
  type SimulationHooks,
  type SimulationResult,
  type SimulationSetup,
  type VirtualClient,
  WorkerPoolGrid,
  applyOverrides,
  formatSummaryTable,
  localGrid,
  parseRunConfig,
  prepareSimulation,
  runConfigSchema,
  simulate,
  workerGridFactory,
} from "./sim/index.js";

// Checkpoints, adapters and safetensors (sa-fedlora/io). The codec is platform-free; the file functions are Node-only.
export {
  type Checkpoint,
  type LoadedAdapter,
  type SafetensorsFile,
  type SaveAdapterOptions,
  type TensorEntry,
  applyAdapter,
  defaultBackboneDir,
  fromFloat32,
  loadAdapter,
  loadCheckpoint,
  parseSafetensors,
  readConfig,
  readSafetensorsFile,
  saveAdapter,
  saveCheckpoint,
  serializeSafetensors,
  toFloat32,
  writeSafetensorsFile,
} from "./io/index.js";

// Datasets and tasks. Platform-free: dataset operations and partitioners. Node-only: the loaders.
export { type Batch, type DatasetSplits, type ImageDataset, batches, classHistogram, filterClasses, makeDataset, normalize, parseClassList, subset } from "./data/dataset.js";
export { type PartitionSpec, type PartitionSummary, formatPartitionSummary, parsePartitionSpec, partition, partitionSummary } from "./data/partition.js";
export { type Normalization, type Task, checkImagesFit, loadTask, withLabels } from "./data/task.js";
export { DATASET_NAMES, type DatasetName, loadDataset } from "./data/load.js";
export { loadMnist } from "./data/mnist.js";
export { loadFashionMnist } from "./data/fashion-mnist.js";
export { loadCifar10 } from "./data/cifar.js";
export { loadTensorDir, loadTensorFile } from "./data/tensor-file.js";
