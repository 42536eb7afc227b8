/**
 * Importance scores against values computed by hand (β₁ = 0.5, β₂ = 0.75 so every step is exact in
 * binary), including the triplet combination and the rule that masked triplets keep their statistics.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ParamStore } from "../../nn/params.js";
import type { AdaptedModule } from "../adapter.js";
import { ImportanceTracker } from "./importance.js";
import { svdE, svdMask, svdP, svdQ } from "./layer.js";

const close = (a: ArrayLike<number>, b: readonly number[]) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-12, `[${i}] ${a[i]} vs ${b[i]}`);
};

describe("ImportanceTracker", () => {
  test("I, Ī, U and s of one tensor over two steps", () => {
    const t = new ImportanceTracker(0.5, 0.75);
    // step 1: w = [2, -1], g = [0.5, 3] → I = [1, 3]; Ī = 0.5·I = [0.5, 1.5]; U = 0.25·|I − Ī| = [0.125, 0.375]
    t.updateEntries("w", [2, -1], [0.5, 3]);
    close(t.elementScores("w", 2), [0.5 * 0.125, 1.5 * 0.375]);
    // step 2: w = [1, 1], g = [-2, 0] → I = [2, 0]; Ī = [0.25 + 1, 0.75 + 0] = [1.25, 0.75];
    // U = 0.75·[0.125, 0.375] + 0.25·[|2 − 1.25|, |0 − 0.75|] = [0.28125, 0.46875]
    t.updateEntries("w", [1, 1], [-2, 0]);
    close(t.elementScores("w", 2), [1.25 * 0.28125, 0.75 * 0.46875]);
  });

  test("triplet score = s(λᵢ) + mean over P's column i + mean over Q's row i", () => {
    // one module, out 2, in 3, rank 2
    const m: AdaptedModule = { name: "lin", inFeatures: 3, outFeatures: 2, rank: 2 };
    const store = new ParamStore();
    store.set(svdP("lin"), [2, 2], Float32Array.from([1, 2, 3, 4])); // P[o, k]
    store.set(svdE("lin"), [2, 1], Float32Array.from([1, -1]));
    store.set(svdQ("lin"), [2, 3], Float32Array.from([1, 1, 1, 2, 2, 2])); // Q[k, i]
    store.set(svdMask("lin"), [2, 1], Float32Array.from([1, 1]));
    const grads = new Map([
      [svdP("lin"), Float32Array.from([1, 1, 1, 1])],
      [svdE("lin"), Float32Array.from([2, 4])],
      [svdQ("lin"), Float32Array.from([1, 0, -1, 1, 1, 1])],
    ]);
    const t = new ImportanceTracker(0.5, 0.5);
    t.update(store, grads, [m]);
    // After one step from zero: Ī = I/2, U = |I − I/2|/2 = I/4, s = I²/8.
    // λ: I = [2, 4] → s = [0.5, 2]
    // P: I = [1, 2, 3, 4]; column 0 = {1, 3} → s = {1/8, 9/8}, mean 5/8; column 1 = {2, 4} → {4/8, 16/8}, mean 10/8
    // Q: I = [1, 0, 1, 2, 2, 2]; row 0 → s = {1/8, 0, 1/8}, mean 1/12; row 1 → {4/8, 4/8, 4/8}, mean 1/2
    close(t.tripletScores(m), [0.5 + 5 / 8 + 1 / 12, 2 + 10 / 8 + 1 / 2]);

    // A masked triplet has zero gradient: I = 0, Ī halves, U = U/2 + |0 − Ī|/2. For λ₁ (I was 4):
    // Ī = 2 → 1, U = 1 → 0.5 + 0.5 = 1, s = 1 (was 2).
    const g2 = new Map(grads);
    g2.set(svdE("lin"), Float32Array.from([2, 0]));
    t.update(store, g2, [m]);
    close(t.elementScores(svdE("lin"), 2).subarray(1), [1]);
    assert.equal(t.steps, 2);
  });

  test("rejects mismatched gradients and out-of-range betas", () => {
    assert.throws(() => new ImportanceTracker(1.5), /beta1 must be in \[0, 1\], got 1.5/);
    assert.throws(() => new ImportanceTracker().updateEntries("w", [1, 2], [1]), /"w" has 2 values but 1 gradients/);
  });
});
