/**
 * @module sa-fedlora
 * The Node entry point of the package: what a library user needs to build ViTs, put adapters on
 * them, train, run federated strategies and simulations, and read and write checkpoints, adapters
 * and datasets. Sections marked "Node-only" use node:* modules or onnxruntime-node; importing this
 * entry loads onnxruntime-node's native binding. A browser bundle should import the platform-free
 * subpaths instead: `sa-fedlora/graph`, `sa-fedlora/nn`, `sa-fedlora/peft`, `sa-fedlora/fl`.
 * Every subpath exports more than this curated list.
 */

// Everything platform-free (errors, graph, nn, peft, fl, the safetensors codec, dataset operations).
export * from "./universal.js";

// Runtimes. Node-only: NodeRuntime (onnxruntime-node's CPU provider; also `sa-fedlora/node`).
export { NodeRuntime, type NodeRuntimeOptions } from "./runtime/node.js";

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

// Checkpoints, adapters and safetensors files (sa-fedlora/io; Node-only; the codec is in universal).
export {
  type Checkpoint,
  type LoadedAdapter,
  type SaveAdapterOptions,
  applyAdapter,
  defaultBackboneDir,
  loadAdapter,
  loadCheckpoint,
  readConfig,
  readSafetensorsFile,
  saveAdapter,
  saveCheckpoint,
  writeSafetensorsFile,
} from "./io/index.js";

// Dataset loaders and tasks (Node-only; dataset operations and partitioners are in universal).
export { type Normalization, type Task, checkImagesFit, loadTask } from "./data/task.js";
export { DATASET_NAMES, type DatasetName, loadDataset } from "./data/load.js";
export { loadMnist } from "./data/mnist.js";
export { loadFashionMnist } from "./data/fashion-mnist.js";
export { loadCifar10 } from "./data/cifar.js";
export { loadTensorDir, loadTensorFile } from "./data/tensor-file.js";
