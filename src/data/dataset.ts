/**
 * @module data/dataset
 * The in-memory image dataset every loader produces (NCHW float pixels plus dense labels) and the
 * transformations training needs on it: class filtering with label remapping, per-channel
 * normalization, index subsets (for client partitions) and mini-batching. Labels are always dense
 * 0..k-1 so they index logits directly; `classes` keeps the original ids so results can be reported
 * in the dataset's own terms.
 */

import { argError, ErrorCode, SaflError, shapeError } from "../errors.js";
import type { Rng } from "../util/rng.js";

/**
 * Images and labels of one split. Arrays are shared, not copied, between a loader's cache and its
 * callers: treat them as read-only.
 */
export interface ImageDataset {
  /** For messages and logs, e.g. "mnist/train". */
  readonly name: string;
  /** N*C*H*W pixels in NCHW order. */
  readonly images: Float32Array;
  /** N labels, each in 0..classes.length-1. */
  readonly labels: Int32Array;
  /** N. */
  readonly count: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** Original class ids, sorted ascending: label k means original class `classes[k]`. */
  readonly classes: readonly number[];
  /** Optional names parallel to `classes`. */
  readonly classNames?: readonly string[];
}

/** A train/test pair sharing image geometry and class mapping. */
export interface DatasetSplits {
  readonly train: ImageDataset;
  readonly test: ImageDataset;
}

/** What {@link makeDataset} needs; `count` is implied by `labels.length`. */
export interface DatasetFields {
  readonly name: string;
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly classes: readonly number[];
  readonly classNames?: readonly string[];
}

/** Pixels per image (C*H*W). */
export function imageSize(ds: Pick<ImageDataset, "channels" | "height" | "width">): number {
  return ds.channels * ds.height * ds.width;
}

function isPositiveInt(x: number): boolean {
  return Number.isInteger(x) && x > 0;
}

/**
 * Builds a dataset after checking that the pieces fit together, so code downstream can index
 * without bounds checks.
 *
 * @throws SaflError(Shape) when the geometry is not positive integers, `images.length` is not
 *   N*C*H*W, a label is outside 0..classes.length-1, `classes` is not sorted unique non-negative
 *   integers, or `classNames` is not parallel to `classes`.
 */
export function makeDataset(fields: DatasetFields): ImageDataset {
  const { name, images, labels, channels, height, width, classes, classNames } = fields;
  if (!isPositiveInt(channels) || !isPositiveInt(height) || !isPositiveInt(width)) {
    throw shapeError(`dataset ${name}: image geometry C=${channels}, H=${height}, W=${width} must be positive integers`);
  }
  const count = labels.length;
  const size = channels * height * width;
  if (images.length !== count * size) {
    throw shapeError(
      `dataset ${name}: ${images.length} pixel values do not fit ${count} labels x ${channels}x${height}x${width} images (expected ${count * size})`,
    );
  }
  if (classes.length === 0) throw shapeError(`dataset ${name}: the class list is empty`);
  for (let i = 0; i < classes.length; i++) {
    const c = classes[i]!;
    if (!Number.isInteger(c) || c < 0 || (i > 0 && c <= classes[i - 1]!)) {
      throw shapeError(`dataset ${name}: classes [${classes.join(", ")}] must be sorted, unique, non-negative integers`);
    }
  }
  if (classNames !== undefined && classNames.length !== classes.length) {
    throw shapeError(`dataset ${name}: ${classNames.length} class names for ${classes.length} classes`);
  }
  const k = classes.length;
  for (let i = 0; i < count; i++) {
    const y = labels[i]!;
    if (y < 0 || y >= k) throw shapeError(`dataset ${name}: label ${y} at index ${i} is outside 0..${k - 1}`);
  }
  const ds: ImageDataset = {
    name,
    images,
    labels,
    count,
    channels,
    height,
    width,
    classes: Object.freeze(classes.slice()),
    ...(classNames === undefined ? {} : { classNames: Object.freeze(classNames.slice()) }),
  };
  return Object.freeze(ds);
}

/** Largest range a class list may expand to; guards against "0-999999999" allocating gigabytes. */
const MAX_CLASS_RANGE = 100_000;

/**
 * Parses a class list such as "0-4" or "1,3,5-7" into sorted unique ids.
 *
 * @throws SaflError(InvalidArgument) naming `spec` for an empty list, an empty item, anything that
 *   is not a non-negative integer or an ascending range `a-b`, or a range over 100000 ids.
 */
export function parseClassList(spec: string): number[] {
  const bad = (why: string) => argError(`class list ${JSON.stringify(spec)}: ${why} (expected ids and ranges like "0-4" or "1,3,5-7")`);
  if (spec.trim() === "") throw bad("it is empty");
  const out = new Set<number>();
  for (const raw of spec.split(",")) {
    const item = raw.trim();
    if (item === "") throw bad("it has an empty item");
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(item);
    if (m === null) throw bad(`${JSON.stringify(item)} is not a non-negative integer or a range a-b`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi)) throw bad(`${JSON.stringify(item)} is too large`);
    if (hi < lo) throw bad(`range ${JSON.stringify(item)} is reversed`);
    if (hi - lo + 1 > MAX_CLASS_RANGE) throw bad(`range ${JSON.stringify(item)} has more than ${MAX_CLASS_RANGE} ids`);
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Keeps only the images of the given original class ids and renumbers labels 0..k-1 in ascending
 * order of those ids, so a model with k outputs can train on the subset.
 *
 * @throws SaflError(InvalidArgument) when `keep` is empty or names an id not in `ds.classes`.
 */
export function filterClasses(ds: ImageDataset, keep: readonly number[]): ImageDataset {
  const wanted = [...new Set(keep)].sort((a, b) => a - b);
  if (wanted.length === 0) throw argError(`dataset ${ds.name}: the list of classes to keep is empty`);
  const newLabelOfOld = new Int32Array(ds.classes.length).fill(-1);
  for (const [k, id] of wanted.entries()) {
    const old = ds.classes.indexOf(id);
    if (old < 0) {
      throw argError(`dataset ${ds.name}: class ${id} is not in the dataset (available: ${ds.classes.join(", ")})`);
    }
    newLabelOfOld[old] = k;
  }
  const size = imageSize(ds);
  let n = 0;
  for (let i = 0; i < ds.count; i++) if (newLabelOfOld[ds.labels[i]!]! >= 0) n++;
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  let j = 0;
  for (let i = 0; i < ds.count; i++) {
    const y = newLabelOfOld[ds.labels[i]!]!;
    if (y < 0) continue;
    images.set(ds.images.subarray(i * size, (i + 1) * size), j * size);
    labels[j++] = y;
  }
  const classNames = ds.classNames === undefined ? undefined : wanted.map((id) => ds.classNames![ds.classes.indexOf(id)]!);
  return makeDataset({ ...geometry(ds), name: ds.name, images, labels, classes: wanted, classNames });
}

function geometry(ds: ImageDataset): { channels: number; height: number; width: number } {
  return { channels: ds.channels, height: ds.height, width: ds.width };
}

/**
 * Returns a copy with each channel standardized as (x - mean[c]) / std[c]. A single mean or std
 * applies to every channel.
 *
 * @throws SaflError(InvalidArgument) when mean/std have neither 1 nor C entries, a mean is not
 *   finite, or a std is not finite and positive.
 */
export function normalize(ds: ImageDataset, mean: readonly number[], std: readonly number[]): ImageDataset {
  const C = ds.channels;
  const expand = (xs: readonly number[], what: string): number[] => {
    if (xs.length === 1) return new Array<number>(C).fill(xs[0]!);
    if (xs.length === C) return xs.slice();
    throw argError(`normalize ${ds.name}: ${what} has ${xs.length} values, expected 1 or ${C} (one per channel)`);
  };
  const m = expand(mean, "mean");
  const s = expand(std, "std");
  for (let c = 0; c < C; c++) {
    if (!Number.isFinite(m[c]!)) throw argError(`normalize ${ds.name}: mean[${c}] is ${m[c]}, expected a finite number`);
    if (!(Number.isFinite(s[c]!) && s[c]! > 0)) throw argError(`normalize ${ds.name}: std[${c}] is ${s[c]}, expected a finite number > 0`);
  }
  const plane = ds.height * ds.width;
  const src = ds.images;
  const out = new Float32Array(src.length);
  for (let i = 0; i < ds.count; i++) {
    for (let c = 0; c < C; c++) {
      const base = (i * C + c) * plane;
      const mc = m[c]!;
      const inv = 1 / s[c]!;
      for (let p = base; p < base + plane; p++) out[p] = (src[p]! - mc) * inv;
    }
  }
  return makeDataset({ ...geometry(ds), name: ds.name, images: out, labels: ds.labels.slice(), classes: ds.classes, classNames: ds.classNames });
}

/**
 * The images at `indices`, in that order (repeats allowed). The class list is kept whole even if
 * some classes are absent, so labels mean the same thing in every subset of one dataset — which is
 * what federated partitions need.
 *
 * @throws SaflError(InvalidArgument) naming the first index that is not an integer in 0..N-1.
 */
export function subset(ds: ImageDataset, indices: ArrayLike<number>, name?: string): ImageDataset {
  const size = imageSize(ds);
  const n = indices.length;
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const i = indices[j]!;
    if (!Number.isInteger(i) || i < 0 || i >= ds.count) {
      throw argError(`subset of ${ds.name}: index ${i} at position ${j} is not an integer in 0..${ds.count - 1}`);
    }
    images.set(ds.images.subarray(i * size, (i + 1) * size), j * size);
    labels[j] = ds.labels[i]!;
  }
  return makeDataset({ ...geometry(ds), name: name ?? ds.name, images, labels, classes: ds.classes, classNames: ds.classNames });
}

/** Number of images per label (index k counts label k, i.e. original class `classes[k]`). */
export function classHistogram(ds: ImageDataset): number[] {
  const counts = new Array<number>(ds.classes.length).fill(0);
  for (let i = 0; i < ds.count; i++) counts[ds.labels[i]!]!++;
  return counts;
}

/** One mini-batch: `size` images (NCHW) and their labels as int64, the dtype the loss graph takes. */
export interface Batch {
  readonly pixels: Float32Array;
  readonly labels: BigInt64Array;
  readonly size: number;
}

/**
 * Walks the dataset in mini-batches of `batchSize` (the last one smaller unless `dropLast`), in
 * order, or in the order `opts.rng.shuffle` gives when an rng is passed. Every batch is a fresh
 * copy. Arguments are checked when this is called, not when the first batch is pulled.
 *
 * @throws SaflError(InvalidArgument) when `batchSize` is not a positive integer.
 */
export function batches(ds: ImageDataset, batchSize: number, opts: { rng?: Rng; dropLast?: boolean } = {}): Generator<Batch> {
  if (!isPositiveInt(batchSize)) {
    throw new SaflError(ErrorCode.InvalidArgument, `batch size ${batchSize} is not a positive integer`);
  }
  const order = new Int32Array(ds.count);
  for (let i = 0; i < ds.count; i++) order[i] = i;
  opts.rng?.shuffle(order);
  return generateBatches(ds, batchSize, order, opts.dropLast ?? false);
}

function* generateBatches(ds: ImageDataset, batchSize: number, order: Int32Array, dropLast: boolean): Generator<Batch> {
  const size = imageSize(ds);
  for (let start = 0; start < order.length; start += batchSize) {
    const n = Math.min(batchSize, order.length - start);
    if (n < batchSize && dropLast) return;
    const pixels = new Float32Array(n * size);
    const labels = new BigInt64Array(n);
    for (let j = 0; j < n; j++) {
      const i = order[start + j]!;
      pixels.set(ds.images.subarray(i * size, (i + 1) * size), j * size);
      labels[j] = BigInt(ds.labels[i]!);
    }
    yield { pixels, labels, size: n };
  }
}
