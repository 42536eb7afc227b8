/**
 * @module cli/common
 * What the training commands share: where the default backbone lives, the shared flags, loading a
 * model with an optional adapter, and running epochs with progress and a test evaluation after each.
 */
import { batches } from "../data/dataset.js";
import { type Normalization, type Task, withLabels } from "../data/task.js";
import { argError, ErrorCode, SaflError } from "../errors.js";
import { loadCheckpoint } from "../io/checkpoint.js";
import { applyAdapter, loadAdapter } from "../io/peft-adapter.js";
import type { VitConfig } from "../nn/config.js";
import type { EvalResult, Evaluator } from "../nn/evaluate.js";
import { ParamStore } from "../nn/params.js";
import { buildVit, type VitGraph } from "../nn/vit.js";
import { buildAdaptedVit } from "../peft/model.js";
import type { Trainer } from "../peft/trainer.js";
import { Rng } from "../util/rng.js";
import { type FlagSpec, optionalString } from "./args.js";
import type { Progress } from "./progress.js";

export { defaultBackboneDir, packageRoot } from "../io/paths.js";

export function parseNumberList(value: string, flag: string): number[] {
  const parts = value.split(",").map((s) => Number(s.trim()));
  if (parts.length === 0 || parts.some((n) => !Number.isFinite(n))) throw argError(`--${flag} must be a comma-separated list of numbers, got "${value}"`);
  return parts;
}

/** Flags every training command takes (data, optimizer basics, output). */
export const TRAINING_FLAGS: FlagSpec = {
  dataset: { type: "string" },
  "data-dir": { type: "string" },
  classes: { type: "string" },
  mean: { type: "string" },
  std: { type: "string" },
  epochs: { type: "string" },
  batch: { type: "string" },
  lr: { type: "string" },
  "weight-decay": { type: "string" },
  seed: { type: "string" },
  threads: { type: "string" },
  out: { type: "string" },
  force: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

type Flags = Record<string, string | boolean | undefined>;

/** --mean/--std as a normalization (a missing side defaults to 0 / 1); undefined when neither is given. */
export function normalizationFromFlags(f: Flags): Normalization | undefined {
  const mean = optionalString(f["mean"]);
  const std = optionalString(f["std"]);
  return mean || std ? { mean: parseNumberList(mean ?? "0", "mean"), std: parseNumberList(std ?? "1", "std") } : undefined;
}

/** The loadTask options given by --data-dir and --classes. */
export function taskFlags(f: Flags): { dataDir?: string; classes?: string } {
  const dataDir = optionalString(f["data-dir"]);
  const classes = optionalString(f["classes"]);
  return { ...(dataDir ? { dataDir } : {}), ...(classes ? { classes } : {}) };
}

export interface LoadedModel {
  readonly config: VitConfig;
  readonly model: VitGraph;
  readonly store: ParamStore;
}

/** A checkpoint directory, optionally with a PEFT adapter directory on top. */
export async function loadModel(modelDir: string, adapterDir?: string): Promise<LoadedModel> {
  const ckpt = await loadCheckpoint(modelDir);
  if (!adapterDir) return { config: ckpt.config, model: buildVit(ckpt.config), store: ckpt.params };
  const loaded = await loadAdapter(adapterDir);
  const config = withLabels(ckpt.config, loaded.numLabels, undefined);
  const { model, adapter } = buildAdaptedVit(config, loaded.spec);
  const store = ParamStore.init(model.registry.specs.values(), new Rng(0));
  for (const n of ckpt.params.names()) if (!n.startsWith("classifier.")) store.set(n, ckpt.params.shape(n), ckpt.params.get(n));
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
      const loss = await trainer.train(b);
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

