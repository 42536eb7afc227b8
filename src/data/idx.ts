/**
 * @module data/idx
 * The IDX format of MNIST-style releases (Fashion-MNIST, EMNIST, the original MNIST): a 4-byte
 * magic (0, 0, type, rank), big-endian uint32 dimensions, then the elements. Only unsigned bytes are
 * read, the only type those image/label files use. Files may be gzipped, as they are distributed;
 * gzip is recognised by its magic so a renamed file still loads. Also the directory-level loader
 * that turns the four train/t10k image/label files into a dataset pair.
 */

import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ErrorCode, SaflError } from "../errors.js";
import { type DatasetSplits, type ImageDataset, makeDataset } from "./dataset.js";
import { bytesToUnit, pathKind, readBytes } from "./files.js";

/** A parsed IDX file: dimensions and the element bytes (a view, not a copy). */
export interface IdxData {
  dims: number[];
  data: Uint8Array;
}

/** The IDX element type codes, by the byte that encodes them in the magic. */
const TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x08, "unsigned byte"],
  [0x09, "signed byte"],
  [0x0b, "int16"],
  [0x0c, "int32"],
  [0x0d, "float32"],
  [0x0e, "float64"],
]);

const hex = (b: number) => b.toString(16).padStart(2, "0");

function io(message: string, cause?: unknown): SaflError {
  return new SaflError(ErrorCode.Io, message, cause === undefined ? undefined : { cause });
}

/**
 * Parses IDX bytes (optionally gzipped).
 *
 * @param path Where the bytes came from, used only in error messages.
 * @throws SaflError(Io) naming `path` for corrupt gzip, a bad magic, a truncated header or body
 *   (stating expected and actual sizes) or bytes after the end; SaflError(Unsupported) for element
 *   types other than unsigned byte.
 */
export function parseIdx(bytes: Uint8Array, path: string): IdxData {
  let b = bytes;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    try {
      const out = gunzipSync(b);
      b = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } catch (cause) {
      throw io(`${path}: corrupt gzip data: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
    }
  }
  if (b.length < 4) throw io(`${path}: truncated IDX file: ${b.length} bytes, expected at least a 4-byte header`);
  const [z0, z1, type, rank] = [b[0]!, b[1]!, b[2]!, b[3]!];
  const typeName = TYPE_NAMES.get(type);
  if (z0 !== 0 || z1 !== 0 || typeName === undefined || rank === 0) {
    throw io(
      `${path}: not an IDX file: magic is ${[z0, z1, type, rank].map(hex).join(" ")}, expected 00 00 <type 08..0e> <rank >= 1> (e.g. 00 00 08 03 for images)`,
    );
  }
  if (type !== 0x08) {
    throw new SaflError(ErrorCode.Unsupported, `${path}: IDX element type ${typeName} (0x${hex(type)}) is not supported; only unsigned byte (0x08) is`);
  }
  const headerBytes = 4 + 4 * rank;
  if (b.length < headerBytes) {
    throw io(`${path}: truncated IDX header: expected ${headerBytes} bytes for ${rank} dimensions, got ${b.length}`);
  }
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const expected = headerBytes + count;
  if (b.length < expected) {
    throw io(`${path}: truncated IDX file: dimensions [${dims.join(", ")}] need ${expected} bytes (${headerBytes} header + ${count} data), got ${b.length}`);
  }
  if (b.length > expected) {
    throw io(`${path}: ${b.length - expected} unexpected bytes after the end of the IDX data (dimensions [${dims.join(", ")}] need ${expected} bytes, got ${b.length})`);
  }
  return { dims, data: b.subarray(headerBytes) };
}

/**
 * Reads and parses an IDX file (raw or gzipped).
 *
 * @throws SaflError(Io) naming `path` when it cannot be read or is malformed (see {@link parseIdx}).
 */
export async function readIdxFile(path: string): Promise<IdxData> {
  return parseIdx(await readBytes(path, "IDX file"), path);
}

/** The four files of an MNIST-style release, by their standard names (each may also end in .gz). */
export const IDX_FILE_NAMES = Object.freeze({
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
});

/** Full paths of the four files. */
export type IdxFileSet = Record<keyof typeof IDX_FILE_NAMES, string>;

/** What {@link locateIdxFiles} found in a directory. */
export interface IdxLookup {
  /** All four paths, when all were found. */
  files?: IdxFileSet;
  /** Standard names (without .gz) of the files not found. */
  missing: string[];
}

/**
 * Looks for the four files in `dir`, each raw or gzipped (the raw file wins when both exist: it
 * skips decompression).
 */
export async function locateIdxFiles(dir: string): Promise<IdxLookup> {
  const found: Partial<IdxFileSet> = {};
  const missing: string[] = [];
  for (const [key, name] of Object.entries(IDX_FILE_NAMES) as [keyof IdxFileSet, string][]) {
    for (const candidate of [join(dir, name), join(dir, `${name}.gz`)]) {
      if ((await pathKind(candidate)) === "file") {
        found[key] = candidate;
        break;
      }
    }
    if (found[key] === undefined) missing.push(name);
  }
  return missing.length === 0 ? { files: found as IdxFileSet, missing } : { missing };
}

/** Options for {@link loadIdxSplits}. */
export interface IdxSplitOptions {
  /** Dataset name; splits are called `<name>/train` and `<name>/test`. */
  name: string;
  /** The class ids labels must come from; when absent, the distinct labels of both splits. */
  classes?: readonly number[];
  /** Names parallel to `classes` (requires `classes`). */
  classNames?: readonly string[];
}

interface RawSplit {
  pixels: Uint8Array;
  labels: Uint8Array;
  height: number;
  width: number;
  imagesPath: string;
  labelsPath: string;
}

async function readSplit(imagesPath: string, labelsPath: string): Promise<RawSplit> {
  const [images, labels] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
  if (images.dims.length !== 3) {
    throw io(`${imagesPath}: expected an image file with 3 dimensions [N, height, width], got [${images.dims.join(", ")}]`);
  }
  if (labels.dims.length !== 1) {
    throw io(`${labelsPath}: expected a label file with 1 dimension [N], got [${labels.dims.join(", ")}]`);
  }
  const [n, height, width] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw io(`image and label counts differ: ${imagesPath} holds ${n} images but ${labelsPath} holds ${labels.dims[0]} labels`);
  }
  if (n === 0 || height === 0 || width === 0) throw io(`${imagesPath}: holds no pixels (dimensions [${images.dims.join(", ")}])`);
  return { pixels: images.data, labels: labels.data, height, width, imagesPath, labelsPath };
}

function toDataset(raw: RawSplit, name: string, classes: readonly number[], classNames: readonly string[] | undefined): ImageDataset {
  const labelOf = new Map(classes.map((c, k) => [c, k]));
  const labels = new Int32Array(raw.labels.length);
  for (let i = 0; i < raw.labels.length; i++) {
    const k = labelOf.get(raw.labels[i]!);
    if (k === undefined) {
      throw io(`${raw.labelsPath}: label ${raw.labels[i]} at index ${i} is not one of the classes ${classes.join(", ")}`);
    }
    labels[i] = k;
  }
  return makeDataset({
    name,
    images: bytesToUnit(raw.pixels),
    labels,
    channels: 1,
    height: raw.height,
    width: raw.width,
    classes,
    classNames,
  });
}

/**
 * Loads the train and t10k image/label pairs into 1xHxW datasets with pixels scaled to [0, 1].
 *
 * @throws SaflError(Io) naming the file(s) when one is unreadable or malformed, image and label
 *   counts differ, or a label is not in `opts.classes`; SaflError(Shape) when train and test image
 *   sizes differ.
 */
export async function loadIdxSplits(files: IdxFileSet, opts: IdxSplitOptions): Promise<DatasetSplits> {
  const [train, test] = await Promise.all([readSplit(files.trainImages, files.trainLabels), readSplit(files.testImages, files.testLabels)]);
  if (train.height !== test.height || train.width !== test.width) {
    throw new SaflError(
      ErrorCode.Shape,
      `train and test image sizes differ: ${train.imagesPath} is ${train.height}x${train.width}, ${test.imagesPath} is ${test.height}x${test.width}`,
    );
  }
  let classes = opts.classes;
  if (classes === undefined) {
    const seen = new Set<number>([...train.labels, ...test.labels]);
    classes = [...seen].sort((a, b) => a - b);
  }
  return {
    train: toDataset(train, `${opts.name}/train`, classes, opts.classNames),
    test: toDataset(test, `${opts.name}/test`, classes, opts.classNames),
  };
}
