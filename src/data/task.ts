/**
 * @module data/task
 * A classification task as the training commands and the simulator use it: a dataset's train and
 * test splits with a class filter (labels remapped to 0..n-1) and a normalization applied, plus the
 * checks that its images fit a model.
 */
import { ErrorCode, SaflError } from "../errors.js";
import type { VitConfig } from "../nn/config.js";
import { type DatasetSplits, filterClasses, type ImageDataset, normalize, parseClassList } from "./dataset.js";
import { loadDataset } from "./load.js";

export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export interface Task {
  readonly train: ImageDataset;
  readonly test: ImageDataset;
  readonly dataset: string;
  /** Original class ids, in label order. */
  readonly classes: readonly number[];
  readonly classNames: readonly string[];
  readonly normalization: Normalization | undefined;
}

/** Loads a dataset, keeps `classes` (all when undefined) and applies the normalization. */
export async function loadTask(dataset: string, opts: { dataDir?: string; classes?: string; normalization?: Normalization }): Promise<Task> {
  const splits: DatasetSplits = await loadDataset(dataset, opts.dataDir === undefined ? {} : { dataDir: opts.dataDir });
  let { train, test } = splits;
  if (opts.classes !== undefined) {
    const keep = parseClassList(opts.classes);
    train = filterClasses(train, keep);
    test = filterClasses(test, keep);
  }
  if (opts.normalization) {
    train = normalize(train, opts.normalization.mean, opts.normalization.std);
    test = normalize(test, opts.normalization.mean, opts.normalization.std);
  }
  const classNames = train.classes.map((c, i) => train.classNames?.[i] ?? String(c));
  return { train, test, dataset, classes: train.classes, classNames, normalization: opts.normalization };
}

/** Fails unless the task's images fit the model's input. */
export function checkImagesFit(task: Task, config: VitConfig, what: string): void {
  const t = task.train;
  if (t.channels !== config.num_channels || t.height !== config.image_size || t.width !== config.image_size) {
    throw new SaflError(
      ErrorCode.Shape,
      `${task.dataset} images are ${t.channels}x${t.height}x${t.width}, but ${what} expects ${config.num_channels}x${config.image_size}x${config.image_size}`,
    );
  }
}

/** A copy of `config` for a task with `numLabels` classes (moved to nn/config, platform-free). */
export { withLabels } from "../nn/config.js";
