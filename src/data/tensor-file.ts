/**
 * @module data/tensor-file
 * Users' own image data as safetensors: `pixel_values` [N,C,H,W] (float, or uint8 scaled by 1/255)
 * and `labels` [N] (integer class ids, any non-negative values). The names match what HuggingFace
 * image processors and datasets produce, so exporting a dataset takes one `save_file` call. Class ids
 * need not be contiguous; they are mapped to dense labels in ascending order, and a train/test
 * directory maps both splits through the union of their ids so a label means the same in each.
 */

import { basename, join, resolve } from "node:path";
import { ErrorCode, SaflError } from "../errors.js";
import { type TensorEntry, toBigInt64, toFloat32 } from "../io/safetensors.js";
import { readSafetensorsFile } from "../io/safetensors-file.js";
import { type DatasetSplits, type ImageDataset, makeDataset } from "./dataset.js";
import { bytesToUnit, pathKind } from "./files.js";

const PIXELS_KEY = "pixel_values";
const LABELS_KEY = "labels";
const FLOAT_DTYPES = new Set(["F32", "F64", "F16", "BF16"]);
const INT_DTYPES = new Set(["I64", "I32", "I16", "I8", "U8"]);

/** A file's contents before labels are mapped to a class list. */
interface RawTensors {
  path: string;
  pixels: Float32Array;
  ids: Float64Array;
  channels: number;
  height: number;
  width: number;
}

function describeTensors(tensors: Map<string, TensorEntry>): string {
  const names = [...tensors.keys()];
  return names.length === 0 ? "the file has no tensors" : `found: ${names.join(", ")}`;
}

async function readRaw(path: string): Promise<RawTensors> {
  const file = await readSafetensorsFile(path);
  const px = file.tensors.get(PIXELS_KEY);
  const lb = file.tensors.get(LABELS_KEY);
  for (const [key, entry] of [
    [PIXELS_KEY, px],
    [LABELS_KEY, lb],
  ] as const) {
    if (entry === undefined) {
      throw new SaflError(
        ErrorCode.Io,
        `${path}: missing tensor "${key}" (an image dataset file needs "${PIXELS_KEY}" [N,C,H,W] and "${LABELS_KEY}" [N]; ${describeTensors(file.tensors)})`,
      );
    }
  }
  const pixelsEntry = px!;
  const labelsEntry = lb!;
  if (pixelsEntry.shape.length !== 4) {
    throw new SaflError(ErrorCode.Shape, `${path}: "${PIXELS_KEY}" has shape [${pixelsEntry.shape.join(", ")}], expected [N, C, H, W]`);
  }
  const [n, channels, height, width] = pixelsEntry.shape as [number, number, number, number];
  if (n === 0 || channels === 0 || height === 0 || width === 0) {
    throw new SaflError(ErrorCode.Shape, `${path}: "${PIXELS_KEY}" has shape [${pixelsEntry.shape.join(", ")}], which holds no images`);
  }
  if (labelsEntry.shape.length !== 1 || labelsEntry.shape[0] !== n) {
    throw new SaflError(ErrorCode.Shape, `${path}: "${LABELS_KEY}" has shape [${labelsEntry.shape.join(", ")}], expected [${n}] (one per image)`);
  }
  let pixels: Float32Array;
  if (FLOAT_DTYPES.has(pixelsEntry.dtype)) pixels = toFloat32(pixelsEntry, `${path}: ${PIXELS_KEY}`);
  else if (pixelsEntry.dtype === "U8") pixels = bytesToUnit(pixelsEntry.data);
  else {
    throw new SaflError(ErrorCode.DType, `${path}: "${PIXELS_KEY}" has dtype ${pixelsEntry.dtype}, expected F32, F64, F16, BF16 or U8`);
  }
  for (let i = 0; i < pixels.length; i++) {
    if (!Number.isFinite(pixels[i]!)) throw new SaflError(ErrorCode.Io, `${path}: "${PIXELS_KEY}" element ${i} is ${pixels[i]}, expected a finite number`);
  }
  if (!INT_DTYPES.has(labelsEntry.dtype)) {
    throw new SaflError(ErrorCode.DType, `${path}: "${LABELS_KEY}" has dtype ${labelsEntry.dtype}, expected an integer dtype (I64, I32, I16, I8 or U8)`);
  }
  const wide = toBigInt64(labelsEntry, `${path}: ${LABELS_KEY}`);
  const ids = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = wide[i]!;
    // Class ids index arrays later; 2^31 is far beyond any real class count and keeps Int32 safe.
    if (v < 0n || v > 0x7fffffffn) {
      throw new SaflError(ErrorCode.Io, `${path}: "${LABELS_KEY}" element ${i} is ${v}, expected a class id in 0..2147483647`);
    }
    ids[i] = Number(v);
  }
  return { path, pixels, ids, channels, height, width };
}

function distinctSorted(...idLists: Float64Array[]): number[] {
  const seen = new Set<number>();
  for (const ids of idLists) for (const v of ids) seen.add(v);
  return [...seen].sort((a, b) => a - b);
}

function toDataset(raw: RawTensors, name: string, classes: readonly number[]): ImageDataset {
  const labelOf = new Map(classes.map((c, k) => [c, k]));
  const labels = new Int32Array(raw.ids.length);
  for (let i = 0; i < raw.ids.length; i++) labels[i] = labelOf.get(raw.ids[i]!)!;
  return makeDataset({ name, images: raw.pixels, labels, channels: raw.channels, height: raw.height, width: raw.width, classes });
}

/**
 * Loads one safetensors image file. `classes` are its distinct label values, ascending.
 *
 * @param name Dataset name; defaults to the file name without `.safetensors`.
 * @throws SaflError(Io) naming `path` when it is unreadable or malformed, lacks either tensor, or
 *   has a negative label or non-finite pixel; SaflError(Shape) or SaflError(DType) naming the tensor
 *   when its shape or dtype is wrong.
 */
export async function loadTensorFile(path: string, name?: string): Promise<ImageDataset> {
  const raw = await readRaw(path);
  return toDataset(raw, name ?? basename(path, ".safetensors"), distinctSorted(raw.ids));
}

/**
 * Loads `<dir>/train.safetensors` and `<dir>/test.safetensors` (both required), named
 * `<basename(dir)>/train` and `/test`. Both splits share one class list, the union of their ids.
 *
 * @throws SaflError(Io) naming the missing file; SaflError(Shape) when the splits' C, H, W differ;
 *   otherwise as {@link loadTensorFile}.
 */
export async function loadTensorDir(dir: string): Promise<DatasetSplits> {
  const paths = { train: join(dir, "train.safetensors"), test: join(dir, "test.safetensors") };
  for (const p of [paths.train, paths.test]) {
    if ((await pathKind(p)) !== "file") {
      throw new SaflError(ErrorCode.Io, `${p} not found: a tensor dataset directory needs both train.safetensors and test.safetensors`);
    }
  }
  const [train, test] = await Promise.all([readRaw(paths.train), readRaw(paths.test)]);
  if (train.channels !== test.channels || train.height !== test.height || train.width !== test.width) {
    throw new SaflError(
      ErrorCode.Shape,
      `train and test images differ in size: ${train.path} has ${train.channels}x${train.height}x${train.width}, ${test.path} has ${test.channels}x${test.height}x${test.width} (C x H x W)`,
    );
  }
  const classes = distinctSorted(train.ids, test.ids);
  const base = basename(resolve(dir));
  return { train: toDataset(train, `${base}/train`, classes), test: toDataset(test, `${base}/test`, classes) };
}
