/**
 * The "product" aggregation of the SVD adapter (refactorizedMean) against the mean of the clients'
 * products computed directly in the test: exact when that mean has rank ≤ k (where averaging P, λ
 * and Q separately is not), orthonormal factors, and components kept in the slots of the previous
 * triplets they continue.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { PackedModule } from "../../peft/adalora/pack.js";
import { refactorizedMean } from "./svd.js";

const OUT = 3;
const IN = 4;
const K = 2;

/** A packed module from P columns, λ and Q rows given as plain arrays. */
function packed(pCols: number[][], e: number[], qRows: number[][]): PackedModule {
  const p = new Float32Array(OUT * K);
  for (let j = 0; j < K; j++) for (let o = 0; o < OUT; o++) p[o * K + j] = pCols[j]![o]!;
  return { name: "m", inFeatures: IN, outFeatures: OUT, initRank: K, mask: Uint8Array.from([1, 1]), p, e: Float32Array.from(e), q: Float32Array.from(qRows.flat()) };
}

/** P·diag(λ)·Q written out entry by entry. */
function product(pm: PackedModule): number[] {
  const d = new Array<number>(OUT * IN).fill(0);
  for (let o = 0; o < OUT; o++) for (let j = 0; j < K; j++) for (let i = 0; i < IN; i++) d[o * IN + i]! += pm.p[o * K + j]! * pm.e[j]! * pm.q[j * IN + i]!;
  return d;
}

const maxDiff = (a: readonly number[], b: readonly number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));

describe("SVD adapter: product aggregation", () => {
  // Two clients, each with one live triplet in different directions: the mean of their products has
  // rank 2 = k, so a rank-2 factorization represents it exactly.
  const c1 = packed([[1, 0, 0], [0, 0, 1]], [2, 0], [[1, 0, 0, 0], [0, 0, 0, 1]]);
  const c2 = packed([[0, 1, 0], [0, 0, 1]], [3, 0], [[0, 1, 1, 0], [0, 0, 0, 1]]);
  const weights = [1, 3];
  const mean = product(c1).map((x, i) => (1 * x + 3 * product(c2)[i]!) / 4);

  test("is exact when the mean of the products has rank <= k; averaging factors is not", () => {
    const previous = packed([[0.6, 0.8, 0], [0, 0, 1]], [1, 0], [[0.5, 0.5, 0.5, 0.5], [0, 0, 0, 1]]);
    const r = refactorizedMean([c1, c2], weights, previous);
    assert.ok(maxDiff(product(r), mean) < 1e-6, `refactorized ${product(r)} vs mean ${mean}`);
    const avg = (f: (m: PackedModule) => Float32Array) => Float32Array.from(f(c1), (x, i) => (x + 3 * f(c2)[i]!) / 4);
    const factors: PackedModule = { ...c1, p: avg((m) => m.p), e: avg((m) => m.e), q: avg((m) => m.q) };
    assert.ok(maxDiff(product(factors), mean) > 0.3, "factor averaging should miss the mean here");
  });

  test("gives orthonormal P columns and Q rows with λ >= 0", () => {
    const r = refactorizedMean([c1, c2], weights, c2);
    for (let a = 0; a < K; a++) {
      for (let b = 0; b < K; b++) {
        let pp = 0;
        let qq = 0;
        for (let o = 0; o < OUT; o++) pp += r.p[o * K + a]! * r.p[o * K + b]!;
        for (let i = 0; i < IN; i++) qq += r.q[a * IN + i]! * r.q[b * IN + i]!;
        assert.ok(Math.abs(pp - (a === b ? 1 : 0)) < 1e-6 && Math.abs(qq - (a === b ? 1 : 0)) < 1e-6, `P/Q not orthonormal at ${a},${b}`);
      }
    }
    assert.ok([...r.e].every((x) => x >= 0));
  });

  test("keeps each component in the slot of the previous triplet it continues", () => {
    // One client whose triplets are already orthonormal with λ = [1, 3]: the SVD orders them 3, 1,
    // but slot 0 must stay the λ = 1 direction.
    const prev = packed([[0, 1, 0], [1, 0, 0]], [1, 3], [[0, 0, 1, 0], [1, 0, 0, 0]]);
    const r = refactorizedMean([prev], [5], prev);
    assert.ok(Math.abs(r.e[0]! - 1) < 1e-6 && Math.abs(r.e[1]! - 3) < 1e-6, `λ = ${[...r.e]}`);
    assert.ok(maxDiff([...r.p], [...prev.p]) < 1e-6 && maxDiff([...r.q], [...prev.q]) < 1e-6);
  });
});
