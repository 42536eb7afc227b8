/**
 * @module data/cifar
 * CIFAR-10 in its "binary version" (cifar-10-binary.tar.gz): data_batch_1..5.bin and
 * test_batch.bin, each a run of 3073-byte records — one label byte, then 1024 red, 1024 green and
 * 1024 blue bytes of a row-major 32x32 image. That is already channel-major, so a record's pixels
 * copy straight into NCHW. Class names come from batches.meta.txt when present.
 */

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, SaflError } from "../errors.js";
import { type DatasetSplits, type ImageDataset, makeDataset } from "./dataset.js";
import { fsReason, pathKind, readBytes } from "./files.js";

/** The default class names, in label order, used when batches.meta.txt is absent. */
export const CIFAR10_CLASS_NAMES: readonly string[] = Object.freeze([
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
]);

const SIDE = 32;
const PIXELS = 3 * SIDE * SIDE;
const RECORD = 1 + PIXELS;
const CLASSES = Object.freeze([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
const TRAIN_FILES = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
const TEST_FILE = "test_batch.bin";
const META_FILE = "batches.meta.txt";
/** The folder the official tarball extracts to; accepted one level down for convenience. */
const TARBALL_DIR = "cifar-10-batches-bin";

function io(message: string): SaflError {
  return new SaflError(ErrorCode.Io, message);
}

/**
 * The directory that actually holds the batch files: `dir` itself, or its cifar-10-batches-bin
 * subfolder when only that has them. Undefined when neither holds a data_batch_*.bin.
 */
export async function findCifarDir(dir: string): Promise<string | undefined> {
  for (const candidate of [dir, join(dir, TARBALL_DIR)]) {
    for (const f of TRAIN_FILES) if ((await pathKind(join(candidate, f))) === "file") return candidate;
  }
  return undefined;
}

/** Decodes records of several files into one dataset, in file order then record order. */
async function readBatches(paths: string[], name: string, classNames: readonly string[]): Promise<ImageDataset> {
  const files = await Promise.all(paths.map((p) => readBytes(p, "CIFAR-10 batch file")));
  let count = 0;
  for (const [f, bytes] of files.entries()) {
    if (bytes.length === 0 || bytes.length % RECORD !== 0) {
      throw io(
        `${paths[f]}: size ${bytes.length} bytes is not a positive multiple of ${RECORD} (a CIFAR-10 record is 1 label byte + ${PIXELS} pixel bytes); the file is truncated or not a CIFAR-10 binary batch`,
      );
    }
    count += bytes.length / RECORD;
  }
  const images = new Float32Array(count * PIXELS);
  const labels = new Int32Array(count);
  let at = 0;
  for (const [f, bytes] of files.entries()) {
    const records = bytes.length / RECORD;
    for (let r = 0; r < records; r++, at++) {
      const base = r * RECORD;
      const label = bytes[base]!;
      if (label > 9) throw io(`${paths[f]}: record ${r} has label ${label}, expected 0..9`);
      labels[at] = label;
      const dst = at * PIXELS;
      for (let p = 0; p < PIXELS; p++) images[dst + p] = bytes[base + 1 + p]! / 255;
    }
  }
  return makeDataset({ name, images, labels, channels: 3, height: SIDE, width: SIDE, classes: CLASSES, classNames });
}

async function readClassNames(dir: string): Promise<readonly string[]> {
  const path = join(dir, META_FILE);
  if ((await pathKind(path)) !== "file") return CIFAR10_CLASS_NAMES;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new SaflError(ErrorCode.Io, `cannot read CIFAR-10 class names ${path}: ${fsReason(cause)}`, { cause });
  }
  // The official file ends with blank lines; only non-empty lines are names.
  const names = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
  if (names.length !== CLASSES.length) {
    throw io(`${path}: expected ${CLASSES.length} class names (one per line), found ${names.length}`);
  }
  return names;
}

/**
 * Loads CIFAR-10 (binary version) from `dir` (or its cifar-10-batches-bin subfolder) as 3x32x32
 * images in [0, 1], classes 0..9. Train is whichever of data_batch_1..5.bin exist, concatenated in
 * order; test is test_batch.bin.
 *
 * @throws SaflError(Io) naming the directory when no train batch or no test batch is there, and
 *   naming the file when one is unreadable, not a whole number of records, or has a label above 9
 *   (with the record index).
 */
export async function loadCifar10(dir: string): Promise<DatasetSplits> {
  const kind = await pathKind(dir);
  if (kind !== "dir") throw io(`CIFAR-10 directory ${dir}: ${kind === "missing" ? "does not exist" : "is not a directory"}`);
  const root = await findCifarDir(dir);
  if (root === undefined) {
    throw io(
      `CIFAR-10 directory ${dir}: no data_batch_1.bin..data_batch_5.bin found (there or in ${TARBALL_DIR}/); expected the binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) extracted there`,
    );
  }
  const trainPaths: string[] = [];
  for (const f of TRAIN_FILES) if ((await pathKind(join(root, f))) === "file") trainPaths.push(join(root, f));
  const testPath = join(root, TEST_FILE);
  if ((await pathKind(testPath)) !== "file") throw io(`CIFAR-10 directory ${root}: ${TEST_FILE} is missing (the test split is required)`);
  const classNames = await readClassNames(root);
  const [train, test] = await Promise.all([readBatches(trainPaths, "cifar10/train", classNames), readBatches([testPath], "cifar10/test", classNames)]);
  return { train, test };
}
