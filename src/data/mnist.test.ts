/**
 * @module data/mnist.test
 * Tests for the embedded MNIST split, checked against the package's JSON files read independently
 * here: split sizes per digit, ordering, exact pixels at split boundaries, value range and caching.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";
import { classHistogram, imageSize } from "./dataset.js";
import { loadMnist } from "./mnist.js";

const require = createRequire(import.meta.url);
const digitCache = new Map<number, number[]>();
function digitData(d: number): number[] {
  let data = digitCache.get(d);
  if (data === undefined) {
    data = JSON.parse(readFileSync(require.resolve(`mnist/src/digits/${d}.json`), "utf8")).data as number[];
    digitCache.set(d, data);
  }
  return data;
}

test("loadMnist: deterministic 80/20 split per digit, ordered by digit then index, exact pixels", () => {
  const { train, test: testSet } = loadMnist();
  assert.equal(train.name, "mnist/train");
  assert.equal(testSet.name, "mnist/test");
  for (const ds of [train, testSet]) {
    assert.deepEqual([ds.channels, ds.height, ds.width], [1, 28, 28]);
    assert.deepEqual(ds.classes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(ds.images.length, ds.count * 784);
  }

  const perDigit = Array.from({ length: 10 }, (_, d) => digitData(d).length / 784);
  const testPer = perDigit.map((n) => Math.floor(n / 5));
  const trainPer = perDigit.map((n, d) => n - testPer[d]!);
  assert.deepEqual(classHistogram(train), trainPer);
  assert.deepEqual(classHistogram(testSet), testPer);
  assert.equal(train.count + testSet.count, 10000);
  assert.ok(testSet.count >= 1950 && testSet.count <= 2000, `test has ${testSet.count} images`);

  // Labels are sorted by digit in both splits.
  for (const ds of [train, testSet]) for (let i = 1; i < ds.count; i++) assert.ok(ds.labels[i - 1]! <= ds.labels[i]!);

  const d0 = digitData(0);
  const d3 = digitData(3);
  const size = imageSize(train);
  // First train image is digit 0's image 0; first test image is digit 0's image trainPer[0].
  assert.deepEqual(Array.from(train.images.subarray(0, size)), Array.from(Float32Array.from(d0.slice(0, 784))));
  const t0 = trainPer[0]! * 784;
  assert.deepEqual(Array.from(testSet.images.subarray(0, size)), Array.from(Float32Array.from(d0.slice(t0, t0 + 784))));
  // First train image of digit 3 follows all train images of digits 0..2.
  const at = trainPer.slice(0, 3).reduce((a, b) => a + b, 0);
  assert.equal(train.labels[at], 3);
  assert.equal(train.labels[at - 1], 2);
  assert.deepEqual(Array.from(train.images.subarray(at * size, (at + 1) * size)), Array.from(Float32Array.from(d3.slice(0, 784))));
  // Last test image is the last image of digit 9.
  const d9 = digitData(9);
  assert.deepEqual(Array.from(testSet.images.subarray((testSet.count - 1) * size)), Array.from(Float32Array.from(d9.slice(-784))));

  let min = Infinity;
  let max = -Infinity;
  for (const ds of [train, testSet]) {
    for (const v of ds.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  assert.equal(min, 0);
  assert.ok(max <= 1 && max > 0.99, `max pixel ${max}`);

  assert.equal(loadMnist(), loadMnist(), "the result is cached");
});
