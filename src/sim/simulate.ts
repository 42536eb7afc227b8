/**
 * @module sim/simulate
 * One simulated federated run from a validated run config: load the backbone and the target task,
 * partition the training set over K virtual clients, build the strategy, the client engine and the
 * in-memory grid, and let the driver run the rounds with server-side evaluation on the held-out test
 * set. Returns the per-round records and the summary; writing files is the caller's business.
 */
import { batches, type ImageDataset, subset } from "../data/dataset.js";
import { type PartitionSummary, parsePartitionSpec, partition, partitionSummary } from "../data/partition.js";
import { checkImagesFit, loadTask, type Task, withLabels } from "../data/task.js";
import { ClientEngine } from "../fl/client.js";
import { type DriverOptions, runRounds } from "../fl/driver.js";
import type { Grid } from "../fl/grid.js";
import type { PayloadDType } from "../fl/wire.js";
import { addTraffic, type RoundRecord, type RunSummary } from "../fl/records.js";
import { createStrategy, type StrategyContext } from "../fl/strategies/index.js";
import type { LocalTraining } from "../fl/strategy.js";
import { loadCheckpoint } from "../io/checkpoint.js";
import { defaultBackboneDir } from "../io/paths.js";
import type { VitConfig } from "../nn/config.js";
import { Evaluator, type LabeledBatch } from "../nn/evaluate.js";
import { ParamStore } from "../nn/params.js";
import { buildVit } from "../nn/vit.js";
import { isHeadParam } from "../peft/model.js";
import { federatedHeadLr } from "../peft/registry.js";
import type { Runtime } from "../runtime/runtime.js";
import { Rng } from "../util/rng.js";
import type { RunConfig } from "./config.js";
import { InMemoryGrid, SharedBaseStore, type VirtualClient } from "./memory-grid.js";

export interface SimulationSetup {
  readonly config: VitConfig;
  readonly task: Task;
  readonly clients: readonly VirtualClient[];
  readonly partition: PartitionSummary;
  readonly initial: ParamStore;
  readonly backboneDir: string;
}

export interface SimulationHooks {
  readonly onRoundStart?: (round: number) => void;
  readonly onRound?: (record: RoundRecord) => void;
  /** Builds the grid (default: the sequential in-memory grid); a worker pool plugs in here. */
  readonly makeGrid?: (setup: SimulationSetup) => Promise<Grid>;
}

export interface SimulationResult {
  readonly setup: SimulationSetup;
  readonly records: readonly RoundRecord[];
  readonly summary: RunSummary;
  /** The final global model as plain ViT weights (adapters merged). */
  readonly model: ParamStore;
}

export const resolveBackboneDir = (backbone: string): string => (backbone === "default" ? defaultBackboneDir() : backbone);

/** Loads the backbone and task and partitions the clients (everything before the first round). */
export async function prepareSimulation(cfg: RunConfig): Promise<SimulationSetup> {
  const backboneDir = resolveBackboneDir(cfg.model.backbone);
  const ckpt = await loadCheckpoint(backboneDir);
  const { task, config } = await loadRunTask(cfg, ckpt.config, `the backbone ${backboneDir}`);
  const initial = ParamStore.init(buildVit(config).registry.specs.values(), new Rng(cfg.seed));
  for (const n of ckpt.params.names()) if (!isHeadParam(n)) initial.set(n, ckpt.params.shape(n), ckpt.params.get(n));
  const { clients, partition } = partitionClients(cfg, task);
  return { config, task, clients, partition, initial, backboneDir };
}

/**
 * The run's task (dataset, classes, training subset), normalized as the backbone was pre-trained,
 * and the backbone config with the task's head. A deployed client calls this with the run config
 * the server sent, so it sees exactly the data a simulated client would.
 */
export async function loadRunTask(cfg: RunConfig, backboneConfig: VitConfig, backboneName: string): Promise<{ task: Task; config: VitConfig }> {
  const source = (backboneConfig as Record<string, unknown>)["safl_source"] as { normalization?: { mean: number[]; std: number[] } | null } | undefined;
  const normalization = source?.normalization ?? undefined;
  const loaded = await loadTask(cfg.data.dataset, {
    ...(cfg.data.dataDir ? { dataDir: cfg.data.dataDir } : {}),
    ...(cfg.data.classes ? { classes: cfg.data.classes } : {}),
    ...(normalization ? { normalization } : {}),
  });
  const task = cfg.data.trainLimit === undefined ? loaded : { ...loaded, train: trainSubset(loaded.train, cfg.data.trainLimit, cfg.seed) };
  const config = withLabels(backboneConfig, task.classes.length, task.classNames);
  checkImagesFit(task, config, backboneName);
  return { task, config };
}

/** The run's clients: the seeded partition of the training set, each with its local test share; client k is `client-000k`. */
export function partitionClients(cfg: RunConfig, task: Task): { clients: VirtualClient[]; partition: SimulationSetup["partition"] } {
  const numClasses = task.classes.length;
  const parts = partition(task.train.labels, numClasses, cfg.clients.count, parsePartitionSpec(cfg.clients.partition), cfg.seed);
  const clients = parts.map((indices, k) => splitLocalTest(virtualClientId(k), indices, cfg.clients.localTestFraction, cfg.seed));
  return { clients, partition: partitionSummary(parts, task.train.labels, numClasses) };
}

/** The id of virtual client k (what a deployed client playing partition k is called, too). */
export const virtualClientId = (k: number): string => `client-${String(k).padStart(4, "0")}`;

/**
 * A seeded random subset of `limit` training examples (in their original order), or the whole set
 * when it is not larger. Drawn with the run seed, so every method of one seed sees the same data.
 */
export function trainSubset(train: ImageDataset, limit: number, seed: number): ImageDataset {
  if (limit >= train.count) return train;
  const order = Array.from({ length: train.count }, (_, i) => i);
  new Rng(seed ^ 0x5b5e7).shuffle(order);
  return subset(train, order.slice(0, limit).sort((a, b) => a - b), train.name);
}

/** Holds out a seeded share of a client's examples as its local test set. */
function splitLocalTest(clientId: string, indices: readonly number[], fraction: number, seed: number): VirtualClient {
  if (fraction === 0 || indices.length < 2) return { clientId, train: indices };
  const shuffled = indices.slice();
  new Rng(seed ^ 0x7e57).shuffle(shuffled);
  const nTest = Math.min(indices.length - 1, Math.max(1, Math.round(fraction * indices.length)));
  return { clientId, train: shuffled.slice(nTest), test: shuffled.slice(0, nTest) };
}

/** The local training settings of each mode under a config. */
export function localTraining(cfg: RunConfig): StrategyContext["training"] {
  const t = cfg.training;
  const of = (lr: number): LocalTraining => ({ optimizer: t.optimizer, lr, weightDecay: t.weightDecay, localEpochs: t.localEpochs, localSteps: t.localSteps, batch: t.batch });
  // The head's own rate applies to adapter rounds only: the config's, else the kind's federated one (the SVD
  // form's 0.003); with neither, the key stays out so instructions (and their bytes) are as before.
  return {
    full: of(t.lr.full),
    adapter: (kind) => {
      const head = t.lr.head ?? federatedHeadLr(kind);
      return { ...of(t.lr[kind]), ...(head === undefined ? {} : { headLr: head }) };
    },
  };
}

/** The sequential in-memory grid of a prepared simulation (also what each pool worker runs). */
export function localGrid(setup: SimulationSetup, runtime: Runtime, dtype: PayloadDType): InMemoryGrid {
  const pretrained = new Map(setup.initial.names().filter((n) => !isHeadParam(n)).map((n) => [n, setup.initial.get(n)]));
  // Local test sets are held out of each client's own training indices, so both index the train split.
  const data = { train: setup.task.train, test: setup.task.train };
  return new InMemoryGrid(new ClientEngine(runtime, setup.config, dtype), setup.clients, data, new SharedBaseStore(pretrained));
}

/** Runs a whole simulation. `runtime` runs the clients and the server-side evaluation. */
export async function simulate(cfg: RunConfig, runtime: Runtime, hooks: SimulationHooks = {}, prepared?: SimulationSetup): Promise<SimulationResult> {
  const started = globalThis.performance.now();
  const setup = prepared ?? (await prepareSimulation(cfg));
  const { config, initial } = setup;
  const training = localTraining(cfg);
  const strategy = createStrategy(cfg.strategy, { config, initial, training, rounds: cfg.rounds, seed: cfg.seed });
  const grid = hooks.makeGrid
    ? await hooks.makeGrid(setup)
    : localGrid(setup, runtime, cfg.wire.dtype);
  try {
    const records = await runRounds(strategy, grid, {
      ...runDriverOptions(cfg, setup, runtime),
      ...(hooks.onRound ? { onRound: hooks.onRound } : {}),
      ...(hooks.onRoundStart ? { onRoundStart: hooks.onRoundStart } : {}),
    });
    const summary = summarize(strategy.name, records, initial, strategy.summary(), (globalThis.performance.now() - started) / 1000);
    return { setup, records, summary, model: strategy.globalModel() };
  } finally {
    await grid.close();
  }
}

/**
 * The driver settings of a run config: rounds, sampling, dtype, evaluation cadence, and the
 * server-side evaluation on the task's test set. Simulation and deployment both use it, so a
 * deployed run evaluates exactly as its simulation does.
 */
export function runDriverOptions(cfg: RunConfig, setup: Pick<SimulationSetup, "config" | "task">, runtime: Runtime): DriverOptions {
  const evalStore = new ParamStore();
  const evaluator = new Evaluator(runtime, buildVit(setup.config), evalStore);
  const testBatches: LabeledBatch[] = [...batches(setup.task.test, cfg.evaluation.batch)];
  return {
    rounds: cfg.rounds,
    clientsPerRound: cfg.clients.perRound,
    seed: cfg.seed,
    dtype: cfg.wire.dtype,
    evalEvery: cfg.evaluation.every,
    clientEvalEvery: cfg.evaluation.clientEvery,
    training: localTraining(cfg).full,
    evaluate: async (weights) => {
      for (const n of weights.names()) evalStore.set(n, weights.shape(n), weights.get(n));
      const r = await evaluator.run(testBatches);
      return { accuracy: r.accuracy, loss: r.loss };
    },
  };
}

/** The run summary from its records. */
export function summarize(strategy: string, records: readonly RoundRecord[], model: ParamStore, details: Record<string, unknown>, seconds: number): RunSummary {
  const last = records[records.length - 1];
  const evaluated = records.filter((r) => r.testAccuracy !== undefined);
  const best = evaluated.reduce<RoundRecord | undefined>((b, r) => (b === undefined || r.testAccuracy! > b.testAccuracy! ? r : b), undefined);
  const totalDown = last?.cumulativeDown ?? { params: 0, bytes: 0 };
  const totalUp = last?.cumulativeUp ?? { params: 0, bytes: 0 };
  const total = addTraffic(totalDown, totalUp);
  const fedavgTotal = last?.fedavgCumulative ?? { params: 0, bytes: 0 };
  const ratio = (a: number, b: number) => (b > 0 ? 1 - a / b : 0);
  return {
    strategy,
    rounds: records.length,
    finalAccuracy: last?.testAccuracy,
    bestAccuracy: best?.testAccuracy,
    bestRound: best?.round,
    totalDown,
    totalUp,
    total,
    fedavgTotal,
    reduction: { params: ratio(total.params, fedavgTotal.params), bytes: ratio(total.bytes, fedavgTotal.bytes) },
    modelParams: model.count(),
    seconds,
    details,
  };
}
