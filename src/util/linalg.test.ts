/**
 * The truncated SVD against matrices built with known singular values: the leading values are
 * recovered, the factors are orthonormal, and the rank-k error is the Eckart–Young bound
 * sqrt(Σ discarded σ²); plus small hand-computed cases.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { symmetricEigen, truncatedSvd } from "./linalg.js";
import { Rng } from "./rng.js";

/** A rows×n matrix with orthonormal columns (Gram–Schmidt on seeded random vectors). */
function orthonormal(rows: number, n: number, rng: Rng): Float64Array {
  const m = new Float64Array(rows * n);
  for (let j = 0; j < n; j++) {
    const v = Float64Array.from({ length: rows }, () => rng.normal());
    for (let i = 0; i < j; i++) {
      let dot = 0;
      for (let r = 0; r < rows; r++) dot += v[r]! * m[r * n + i]!;
      for (let r = 0; r < rows; r++) v[r]! -= dot * m[r * n + i]!;
    }
    const norm = Math.hypot(...v);
    for (let r = 0; r < rows; r++) m[r * n + j] = v[r]! / norm;
  }
  return m;
}

function compose(u: Float64Array, s: ArrayLike<number>, vt: Float64Array, rows: number, cols: number): Float64Array {
  const k = s.length;
  const a = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < k; j++) for (let c = 0; c < cols; c++) a[r * cols + c]! += u[r * k + j]! * s[j]! * vt[j * cols + c]!;
  return a;
}

describe("linalg", () => {
  test("symmetricEigen of a hand-computed 2x2", () => {
    const { values, vectors } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
    assert.ok(Math.abs(values[0]! - 3) < 1e-12 && Math.abs(values[1]! - 1) < 1e-12);
    assert.ok(Math.abs(Math.abs(vectors[0]!) - Math.SQRT1_2) < 1e-12 && Math.abs(vectors[0]! - vectors[2]!) < 1e-12);
  });

  test("truncatedSvd of a diagonal matrix with a negative entry", () => {
    const { u, s, vt } = truncatedSvd([3, 0, 0, -2], 2, 2, 2);
    assert.deepEqual([...s].map((x) => Number(x.toFixed(12))), [3, 2]);
    assert.deepEqual([...compose(u, s, vt, 2, 2)].map((x) => Number(x.toFixed(12)) + 0), [3, 0, 0, -2]);
  });

  for (const [rows, cols] of [
    [40, 12],
    [12, 40],
  ] as const) {
    test(`truncatedSvd recovers known singular values and meets Eckart-Young (${rows}x${cols})`, () => {
      const rng = new Rng(7);
      const sigma = [5, 3, 2, 1, 0.5, 0.25];
      const n = sigma.length;
      const U = orthonormal(rows, n, rng);
      const Vcols = orthonormal(cols, n, rng);
      const Vt = new Float64Array(n * cols);
      for (let j = 0; j < n; j++) for (let c = 0; c < cols; c++) Vt[j * cols + c] = Vcols[c * n + j]!;
      const a = compose(U, sigma, Vt, rows, cols);
      const k = 3;
      const { u, s, vt } = truncatedSvd(a, rows, cols, k);
      for (let j = 0; j < k; j++) assert.ok(Math.abs(s[j]! - sigma[j]!) < 1e-9, `σ${j} = ${s[j]}`);
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          let du = 0;
          let dv = 0;
          for (let r = 0; r < rows; r++) du += u[r * k + i]! * u[r * k + j]!;
          for (let c = 0; c < cols; c++) dv += vt[i * cols + c]! * vt[j * cols + c]!;
          assert.ok(Math.abs(du - (i === j ? 1 : 0)) < 1e-9 && Math.abs(dv - (i === j ? 1 : 0)) < 1e-9);
        }
      }
      const approx = compose(u, s, vt, rows, cols);
      let err = 0;
      for (let i = 0; i < a.length; i++) err += (a[i]! - approx[i]!) ** 2;
      const bound = Math.sqrt(sigma.slice(k).reduce((t, x) => t + x * x, 0));
      assert.ok(Math.abs(Math.sqrt(err) - bound) < 1e-9, `error ${Math.sqrt(err)} vs ${bound}`);
    });
  }

  test("a rank below k gives zero singular values and zero vectors, not NaN", () => {
    const { u, s, vt } = truncatedSvd([1, 2, 2, 4], 2, 2, 2);
    assert.ok(Math.abs(s[0]! - 5) < 1e-12 && s[1] === 0);
    assert.ok([...u, ...vt].every(Number.isFinite));
  });
});
