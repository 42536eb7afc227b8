/**
 * @module data/dataset.test
 * Tests for the dataset core: validation in makeDataset, class-list parsing, class filtering with
 * label remapping, normalization, subsets, histograms and batching. Fixtures are tiny datasets whose
 * pixel values encode (image, position), so any misplaced copy shows up as a wrong exact value.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import { Rng } from "../util/rng.js";
import {
  batches,
  classHistogram,
  filterClasses,
  type ImageDataset,
  imageSize,
  makeDataset,
  normalize,
  parseClassList,
  subset,
} from "./dataset.js";

function expectError(fn: () => unknown, code: ErrorCode, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SaflError, `expected a SaflError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const f of fragments) assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(f)}`);
}

/** N images of C x 1 x 2; pixel value = 100*image + position, labels as given. */
function toy(labels: number[], classes: number[], channels = 1, classNames?: string[]): ImageDataset {
  const size = channels * 2;
  const images = new Float32Array(labels.length * size);
  for (let i = 0; i < images.length; i++) images[i] = 100 * Math.floor(i / size) + (i % size);
  return makeDataset({ name: "toy", images, labels: Int32Array.from(labels), channels, height: 1, width: 2, classes, classNames });
}

const pixelsOf = (ds: ImageDataset) => Array.from(ds.images);

describe("makeDataset", () => {
  test("derives count and copies the class list", () => {
    const classes = [3, 7];
    const ds = toy([0, 1, 1], classes, 2);
    assert.equal(ds.count, 3);
    assert.equal(imageSize(ds), 4);
    classes.push(9);
    assert.deepEqual(ds.classes, [3, 7]);
    assert.equal(ds.classNames, undefined);
  });

  test("rejects pixel counts that do not fit", () => {
    expectError(
      () => makeDataset({ name: "bad", images: new Float32Array(5), labels: new Int32Array(3), channels: 1, height: 1, width: 2, classes: [0] }),
      ErrorCode.Shape,
      "bad",
      "5 pixel values",
      "expected 6",
    );
  });

  test("rejects labels outside the class list, unsorted classes, bad geometry and mismatched names", () => {
    const base = { name: "d", images: new Float32Array(4), channels: 1, height: 1, width: 2 };
    expectError(() => makeDataset({ ...base, labels: Int32Array.from([0, 2]), classes: [0, 1] }), ErrorCode.Shape, "label 2 at index 1");
    expectError(() => makeDataset({ ...base, labels: Int32Array.from([0, -1]), classes: [0, 1] }), ErrorCode.Shape, "label -1");
    expectError(() => makeDataset({ ...base, labels: Int32Array.from([0, 0]), classes: [1, 0] }), ErrorCode.Shape, "sorted");
    expectError(() => makeDataset({ ...base, labels: Int32Array.from([0, 0]), classes: [] }), ErrorCode.Shape, "empty");
    expectError(() => makeDataset({ ...base, labels: Int32Array.from([0, 0]), classes: [0], classNames: ["a", "b"] }), ErrorCode.Shape, "2 class names for 1");
    expectError(() => makeDataset({ ...base, width: 0, labels: new Int32Array(0), classes: [0] }), ErrorCode.Shape, "W=0");
  });

  test("allows an empty dataset", () => {
    const ds = makeDataset({ name: "e", images: new Float32Array(0), labels: new Int32Array(0), channels: 3, height: 2, width: 2, classes: [0, 1] });
    assert.equal(ds.count, 0);
    assert.deepEqual(classHistogram(ds), [0, 0]);
  });
});

describe("parseClassList", () => {
  test("expands ids and ranges, sorted and unique", () => {
    assert.deepEqual(parseClassList("0-4"), [0, 1, 2, 3, 4]);
    assert.deepEqual(parseClassList("1,3,5-7"), [1, 3, 5, 6, 7]);
    assert.deepEqual(parseClassList(" 7 , 2-3, 3 ,0"), [0, 2, 3, 7]);
    assert.deepEqual(parseClassList("5-5"), [5]);
    assert.deepEqual(parseClassList("12"), [12]);
  });

  test("rejects junk, empty, reversed ranges and negatives, naming the spec", () => {
    for (const [spec, fragment] of [
      ["", "empty"],
      ["  ", "empty"],
      ["1,,2", "empty item"],
      ["1,", "empty item"],
      ["a", '"a"'],
      ["1.5", '"1.5"'],
      ["-1", '"-1"'],
      ["3--1", '"3--1"'],
      ["1-2-3", '"1-2-3"'],
      ["5-3", "reversed"],
      ["0-999999999", "more than"],
    ] as const) {
      expectError(() => parseClassList(spec), ErrorCode.InvalidArgument, `class list ${JSON.stringify(spec)}`, fragment);
    }
  });
});

describe("filterClasses", () => {
  const names = ["zero", "three", "five", "eight"];
  const ds = toy([0, 1, 2, 3, 2, 1, 0], [0, 3, 5, 8], 1, names);

  test("keeps the chosen original ids and remaps labels in their sorted order", () => {
    const f = filterClasses(ds, [8, 3]);
    assert.deepEqual(f.classes, [3, 8]);
    assert.deepEqual(f.classNames, ["three", "eight"]);
    // images 1 (class 3), 3 (class 8), 5 (class 3)
    assert.deepEqual(Array.from(f.labels), [0, 1, 0]);
    assert.deepEqual(pixelsOf(f), [100, 101, 300, 301, 500, 501]);
    assert.equal(f.count, 3);
    assert.equal(f.name, "toy");
  });

  test("rejects an id that is not in the dataset, listing the available ones", () => {
    expectError(() => filterClasses(ds, [3, 4]), ErrorCode.InvalidArgument, "class 4", "available: 0, 3, 5, 8");
    expectError(() => filterClasses(ds, []), ErrorCode.InvalidArgument, "empty");
  });
});

describe("normalize", () => {
  test("per channel, with a new pixel array", () => {
    const ds = toy([0, 1], [0, 1], 2); // per image: channel 0 = [b, b+1], channel 1 = [b+2, b+3]
    const n = normalize(ds, [1, 100], [2, 4]);
    assert.deepEqual(pixelsOf(n), [-0.5, 0, -24.5, -24.25, 49.5, 50, 0.5, 0.75]);
    assert.notEqual(n.images, ds.images);
    assert.deepEqual(pixelsOf(ds), [0, 1, 2, 3, 100, 101, 102, 103]);
    assert.deepEqual(Array.from(n.labels), [0, 1]);
  });

  test("a single mean/std broadcasts over channels", () => {
    const ds = toy([0], [0], 2);
    assert.deepEqual(pixelsOf(normalize(ds, [1], [0.5])), [-2, 0, 2, 4]);
  });

  test("rejects wrong lengths and non-positive std", () => {
    const ds = toy([0], [0], 2);
    expectError(() => normalize(ds, [0, 0, 0], [1]), ErrorCode.InvalidArgument, "mean has 3 values, expected 1 or 2");
    expectError(() => normalize(ds, [0], [1, 0]), ErrorCode.InvalidArgument, "std[1] is 0");
    expectError(() => normalize(ds, [0], [-1]), ErrorCode.InvalidArgument, "std[0] is -1");
    expectError(() => normalize(ds, [Number.NaN], [1]), ErrorCode.InvalidArgument, "mean[0] is NaN");
  });
});

describe("subset and classHistogram", () => {
  const ds = toy([0, 1, 1, 2, 1], [0, 1, 2]);

  test("subset takes indices in order, repeats allowed, and keeps every class", () => {
    const s = subset(ds, [4, 0, 4], "toy/client0");
    assert.equal(s.name, "toy/client0");
    assert.deepEqual(pixelsOf(s), [400, 401, 0, 1, 400, 401]);
    assert.deepEqual(Array.from(s.labels), [1, 0, 1]);
    assert.deepEqual(s.classes, [0, 1, 2]);
    assert.deepEqual(classHistogram(s), [1, 2, 0]);
    assert.equal(subset(ds, Int32Array.from([1])).name, "toy");
  });

  test("subset rejects out-of-range and fractional indices", () => {
    expectError(() => subset(ds, [0, 5]), ErrorCode.InvalidArgument, "index 5 at position 1", "0..4");
    expectError(() => subset(ds, [1.5]), ErrorCode.InvalidArgument, "index 1.5");
  });

  test("classHistogram counts per label", () => {
    assert.deepEqual(classHistogram(ds), [1, 3, 1]);
  });
});

describe("batches", () => {
  const ds = toy([0, 1, 2, 0, 1, 2, 0], [0, 1, 2]);

  test("in order with a smaller last batch", () => {
    const got = [...batches(ds, 3)];
    assert.deepEqual(
      got.map((b) => b.size),
      [3, 3, 1],
    );
    assert.deepEqual(Array.from(got[0]!.pixels), [0, 1, 100, 101, 200, 201]);
    assert.deepEqual(Array.from(got[0]!.labels), [0n, 1n, 2n]);
    assert.deepEqual(Array.from(got[2]!.pixels), [600, 601]);
    assert.deepEqual(Array.from(got[2]!.labels), [0n]);
  });

  test("dropLast skips the partial batch", () => {
    assert.deepEqual(
      [...batches(ds, 3, { dropLast: true })].map((b) => b.size),
      [3, 3],
    );
    assert.deepEqual(
      [...batches(ds, 7, { dropLast: true })].map((b) => b.size),
      [7],
    );
  });

  test("with an rng, follows rng.shuffle of 0..N-1 and covers every image once", () => {
    const expected = Int32Array.from([0, 1, 2, 3, 4, 5, 6]);
    new Rng(42).shuffle(expected);
    assert.notDeepEqual(Array.from(expected), [0, 1, 2, 3, 4, 5, 6]);
    const order = [...batches(ds, 2, { rng: new Rng(42) })].flatMap((b) => {
      const firsts: number[] = [];
      for (let j = 0; j < b.size; j++) firsts.push(b.pixels[2 * j]! / 100);
      assert.deepEqual(
        Array.from(b.labels),
        firsts.map((i) => BigInt(ds.labels[i]!)),
      );
      return firsts;
    });
    assert.deepEqual(order, Array.from(expected));
  });

  test("rejects a bad batch size when called", () => {
    expectError(() => batches(ds, 0), ErrorCode.InvalidArgument, "batch size 0");
    expectError(() => batches(ds, 2.5), ErrorCode.InvalidArgument, "batch size 2.5");
  });
});
