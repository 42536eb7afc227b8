/**
 * @module data/augment.test
 * Tests for training-time augmentation: flips and shifts of a 3×3 image against hand-written
 * results (with a scripted random source, so each case is exact), the identity when nothing is on,
 * the flip rate and shift range over many draws, and the spec parser's messages.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Rng } from "../util/rng.js";
import { augmentBatch, describeAugmentation, parseAugmentation } from "./augment.js";

/** A random source that replays `values` from next(); int(n) derives from next() like Rng does. */
function scripted(values: number[]): Rng {
  let i = 0;
  const fake = {
    next: () => {
      const v = values[i++];
      if (v === undefined) throw new Error("scripted rng ran out");
      return v;
    },
    int(n: number) {
      return Math.floor(this.next() * n);
    },
  };
  return fake as unknown as Rng;
}

// 1 2 3
// 4 5 6
// 7 8 9   (top-left 1 is the fill value)
const image = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
const shape = { channels: 1, height: 3, width: 3 };
const one = (pixels: Float32Array) => ({ pixels, labels: BigInt64Array.from([3n]), size: 1 });

describe("augmentBatch", () => {
  test("flip mirrors each row", () => {
    // next() < 0.5 flips; int(3) from 0.5 is 1 → shift 0 on both axes.
    const out = augmentBatch(one(image), shape, { flip: true, shift: 1 }, scripted([0.1, 0.5, 0.5]));
    assert.deepEqual([...out.pixels], [3, 2, 1, 6, 5, 4, 9, 8, 7]);
    assert.deepEqual([...out.labels], [3n]);
  });

  test("shift down by one and right by one fills from the top-left pixel", () => {
    // int(3): 0.9 → 2 → +1 (dy), 0.9 → +1 (dx); no flip (0.7 ≥ 0.5).
    const out = augmentBatch(one(image), shape, { flip: true, shift: 1 }, scripted([0.7, 0.9, 0.9]));
    assert.deepEqual([...out.pixels], [1, 1, 1, 1, 1, 2, 1, 4, 5]);
  });

  test("shift up and left, after a flip", () => {
    // flip, dy = -1, dx = -1: flipped image is 3 2 1 / 6 5 4 / 9 8 7, then moved up-left by one.
    const out = augmentBatch(one(image), shape, { flip: true, shift: 1 }, scripted([0.2, 0.0, 0.0]));
    assert.deepEqual([...out.pixels], [5, 4, 1, 8, 7, 1, 1, 1, 1]);
  });

  test("with nothing on, the batch comes back equal (and is a copy)", () => {
    const batch = { pixels: Float32Array.from([...image, ...image.map((v) => -v)]), labels: BigInt64Array.from([0n, 1n]), size: 2 };
    const out = augmentBatch(batch, shape, { flip: false, shift: 0 }, new Rng(1));
    assert.deepEqual([...out.pixels], [...batch.pixels]);
    assert.notEqual(out.pixels, batch.pixels);
  });

  test("each channel of an image moves the same way", () => {
    const two = Float32Array.from([...image, ...image.map((v) => 10 * v)]);
    const out = augmentBatch(one(two), { channels: 2, height: 3, width: 3 }, { flip: true, shift: 1 }, scripted([0.1, 0.9, 0.5]));
    const first = [...out.pixels.subarray(0, 9)];
    assert.deepEqual(first, [1, 1, 1, 3, 2, 1, 6, 5, 4]);
    assert.deepEqual([...out.pixels.subarray(9)], first.map((v, i) => (i < 3 ? 10 : 10 * v)));
  });

  test("over many draws about half the images flip and shifts cover -s..s", () => {
    const n = 2000;
    // A one-hot pixel in the middle of a 9×9 image shows where each copy moved.
    const size = 81;
    const pixels = new Float32Array(n * size);
    for (let i = 0; i < n; i++) pixels[i * size + 4 * 9 + 3] = 1; // row 4, column 3 (left of centre)
    const out = augmentBatch({ pixels, labels: new BigInt64Array(n), size: n }, { channels: 1, height: 9, width: 9 }, { flip: true, shift: 2 }, new Rng(7));
    const cols = new Map<number, number>();
    const rows = new Set<number>();
    for (let i = 0; i < n; i++) {
      const at = out.pixels.subarray(i * size, (i + 1) * size).indexOf(1);
      assert.ok(at >= 0, `image ${i} lost its pixel`);
      rows.add(Math.floor(at / 9));
      const c = at % 9;
      cols.set(c, (cols.get(c) ?? 0) + 1);
    }
    assert.deepEqual([...rows].sort(), [2, 3, 4, 5, 6]);
    // Unflipped the pixel lands in columns 1..5, flipped (column 5) in 3..7.
    const flippedOnly = (cols.get(6) ?? 0) + (cols.get(7) ?? 0);
    const unflippedOnly = (cols.get(1) ?? 0) + (cols.get(2) ?? 0);
    assert.ok(Math.abs(flippedOnly - unflippedOnly) < 0.15 * n, `flip is not balanced: ${flippedOnly} vs ${unflippedOnly}`);
    assert.ok(flippedOnly > 0.15 * n, `too few flips: ${flippedOnly}`);
  });

  test("a batch whose size does not match the shape is refused", () => {
    assert.throws(() => augmentBatch(one(image), { channels: 1, height: 2, width: 2 }, { flip: true, shift: 0 }, new Rng(0)), /has 9 pixels; expected 4 for 1×2×2/);
  });
});

describe("parseAugmentation", () => {
  test("reads flips, shifts and none", () => {
    assert.deepEqual(parseAugmentation("flip,shift:2"), { flip: true, shift: 2 });
    assert.deepEqual(parseAugmentation("shift:3"), { flip: false, shift: 3 });
    assert.deepEqual(parseAugmentation("none"), { flip: false, shift: 0 });
    assert.equal(describeAugmentation(parseAugmentation(" flip , shift:1 ")), "flip,shift:1");
    assert.equal(describeAugmentation({ flip: false, shift: 0 }), "none");
  });

  test("names what it cannot read", () => {
    assert.throws(() => parseAugmentation("flip,rotate"), /unknown augmentation "rotate" in "flip,rotate"/);
    assert.throws(() => parseAugmentation("shift:0"), /the shift must be 1 to 8 pixels/);
    assert.throws(() => parseAugmentation("shift:-1"), /unknown augmentation "shift:-1"/);
  });
});
