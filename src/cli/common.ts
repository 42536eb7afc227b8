/**
 * @module cli/common
 * What the training commands share: where the default backbone lives, reading the data flags
 * (declared in cli/flags), loading a model with an optional adapter, and running epochs with
 * progress and a test evaluation after each.
 */
import { type Batch, batches } from "../data/dataset.js";
import { type Normalization, type Task, withLabels } from "../data/task.js";
import { argError, ErrorCode, SaflError } from "../errors.js";
import { loadCheckpoint } from "../io/checkpoint.js";
import { adapterNumLabels, applyAdapter, loadAdapter } from "../io/peft-adapter.js";
import type { VitConfig } from "../nn/config.js";
import type { EvalResult, Evaluator } from "../nn/evaluate.js";
import { ParamStore } from "../nn/params.js";
import { buildVit, type VitGraph } from "../nn/vit.js";
import { buildAdaptedVit } from "../peft/model.js";
import type { Trainer } from "../peft/trainer.js";
import { Rng } from "../util/rng.js";
import { optionalString } from "./args.js";
import type { Progress } from "./progress.js";

export { defaultBackboneDir, packageRoot } from "../io/paths.js";

export function parseNumberList(value: string, flag: string): number[] {
  const parts = value.split(",").map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((n) => !Number.isFinite(n))) throw argError(`--${flag} must be a comma-separated list of numbers, got "${value}"`);
  return parts;
}

/** Parsed flags (typed values or the strings as given): these helpers only read string values. */
type Flags = Readonly<Record<string, unknown>>;
const str = (v: unknown): string | undefined => optionalString(typeof v === "string" ? v : undefined);

/** --mean/--std as a normalization (a missing side defaults to 0 / 1); undefined when neither is given. */
export function normalizationFromFlags(f: Flags): Normalization | undefined {
  const mean = str(f["mean"]);
  const std = str(f["std"]);
  return mean || std ? { mean: parseNumberList(mean ?? "0", "mean"), std: parseNumberList(std ?? "1", "std") } : undefined;
}

/** The loadTask options given by --data-dir and --classes. */
export function taskFlags(f: Flags): { dataDir?: string; classes?: string } {
  const dataDir = str(f["data-dir"]);
  const classes = str(f["classes"]);
  return { ...(dataDir ? { dataDir } : {}), ...(classes ? { classes } : {}) };
}

export interface LoadedModel {
  readonly config: VitConfig;
  readonly model: VitGraph;
  readonly store: ParamStore;
}

/**
 * A checkpoint directory, optionally with a PEFT adapter directory on top. The adapter's head replaces
 * the checkpoint's; an adapter without one (PEFT's modules_to_save null) keeps the checkpoint's head.
 * `numLabels`: the class count the caller needs, checked against the head that will be used.
 */
export async function loadModel(modelDir: string, adapterDir?: string, opts: { numLabels?: number } = {}): Promise<LoadedModel> {
  const ckpt = await loadCheckpoint(modelDir);
  if (!adapterDir) return { config: ckpt.config, model: buildVit(ckpt.config), store: ckpt.params };
  const loaded = await loadAdapter(adapterDir);
  const baseHead = loaded.numLabels === undefined;
  const numLabels = adapterNumLabels(loaded, ckpt.config.num_labels, opts.numLabels);
  const config = baseHead ? ckpt.config : withLabels(ckpt.config, numLabels, undefined);
  const { model, adapter } = buildAdaptedVit(config, loaded.spec);
  const store = ParamStore.init(model.registry.specs.values(), new Rng(0));
  for (const n of ckpt.params.names()) if (baseHead || !n.startsWith("classifier.")) store.set(n, ckpt.params.shape(n), ckpt.params.get(n));
  applyAdapter(loaded, adapter, store);
  return { config, model, store };
}

export interface EpochLog {
  readonly epoch: number;
  readonly trainLoss: number;
  readonly test: EvalResult;
  readonly seconds: number;
}

/**
 * Runs `epochs` passes over the training set (shuffled by `rng`, the last partial batch dropped so
 * every step has the compiled batch size), evaluating on the test set after each epoch.
 * `afterStep` runs after every optimizer step (rank allocation, learning-rate schedule).
 */
export async function trainEpochs(opts: {
  trainer: Trainer;
  evaluator: Evaluator;
  task: Task;
  epochs: number;
  batch: number;
  rng: Rng;
  progress: Progress;
  beforeStep?: (step: number) => void;
  afterStep?: (step: number) => string | undefined;
  /** Transforms each training batch (augmentation); test batches are never touched. */
  augment?: (batch: Batch) => Batch;
}): Promise<EpochLog[]> {
  const { trainer, evaluator, task, epochs, batch, rng, progress } = opts;
  const perEpoch = Math.floor(task.train.count / batch);
  if (perEpoch === 0) throw argError(`--batch ${batch} is larger than the ${task.train.count} training images`);
  const logs: EpochLog[] = [];
  let step = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const t0 = Date.now();
    progress.reset(perEpoch, `epoch ${epoch}/${epochs}`);
    let lossSum = 0;
    let n = 0;
    let note = "";
    for (const b of batches(task.train, batch, { rng, dropLast: true })) {
      opts.beforeStep?.(step);
      const loss = await trainer.train(opts.augment ? opts.augment(b) : b);
      if (!Number.isFinite(loss)) throw new SaflError(ErrorCode.Runtime, `training diverged at step ${step + 1}: loss is ${loss} (try a lower --lr)`);
      step++;
      lossSum += loss;
      n++;
      note = opts.afterStep?.(step) ?? note;
      progress.tick(1, `loss ${(lossSum / n).toFixed(4)} ${note}`);
    }
    const test = await evaluator.run(batches(task.test, 256));
    const seconds = (Date.now() - t0) / 1000;
    logs.push({ epoch, trainLoss: lossSum / n, test, seconds });
    progress.line(
      `epoch ${epoch}/${epochs}  train loss ${(lossSum / n).toFixed(4)}  test loss ${test.loss.toFixed(4)}  test acc ${(100 * test.accuracy).toFixed(2)}%  ${seconds.toFixed(1)}s${note ? `  ${note}` : ""}`,
    );
  }
  return logs;
}

