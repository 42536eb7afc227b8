/** Global top-budget allocation: exact budget, deterministic ties, revival, and bad budgets. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { allocate } from "./allocator.js";

const scores = (...rows: number[][]) => rows.map((r, i) => ({ module: `m${i}`, scores: Float64Array.from(r) }));

describe("allocate", () => {
  test("keeps the top-budget triplets over all modules", () => {
    const a = allocate(scores([0.1, 0.9, 0.3], [0.5, 0.05]), 3);
    assert.deepEqual([...a.masks.get("m0")!], [0, 1, 1]);
    assert.deepEqual([...a.masks.get("m1")!], [1, 0]);
    assert.deepEqual([...a.ranks], [["m0", 2], ["m1", 1]]);
    assert.equal(a.threshold, 0.3);
  });

  test("ties keep exactly `budget` triplets, earlier module first, then lower index", () => {
    const a = allocate(scores([1, 2, 2], [2, 2]), 3);
    assert.deepEqual([...a.masks.get("m0")!], [0, 1, 1]);
    assert.deepEqual([...a.masks.get("m1")!], [1, 0]);
    // the same input gives the same answer
    assert.deepEqual(allocate(scores([1, 2, 2], [2, 2]), 3), a);
  });

  test("revives a masked triplet whose score rose above an active one", () => {
    const first = allocate(scores([5, 1], [4, 3]), 2);
    assert.deepEqual([...first.masks.get("m1")!], [1, 0]);
    const second = allocate(scores([5, 1], [2, 3]), 2);
    assert.deepEqual([...second.masks.get("m1")!], [0, 1]);
  });

  test("budget 0 masks everything, the full budget keeps everything", () => {
    assert.deepEqual([...allocate(scores([1, 2]), 0).masks.get("m0")!], [0, 0]);
    assert.deepEqual([...allocate(scores([1, 2]), 2).masks.get("m0")!], [1, 1]);
  });

  test("rejects budgets outside 0..total and non-finite scores", () => {
    assert.throws(() => allocate(scores([1, 2]), 3), /integer in 0\.\.2 .*got 3/);
    assert.throws(() => allocate(scores([1, 2]), 1.5), /got 1.5/);
    assert.throws(() => allocate(scores([1, Number.NaN]), 1), /"m0" \[1\] is NaN/);
  });
});
