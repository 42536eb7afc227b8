/**
 * @module runtime/gradcheck
 * Checks reverse-mode gradients against central finite differences, in the spirit of JAX's
 * `check_grads`: along a few random directions v, the analytic directional derivative Σᵢ⟨∂L/∂xᵢ, vᵢ⟩
 * must match (L(x + εv) − L(x − εv)) / 2ε. Both sides are evaluated by the float64 reference
 * interpreter, so the check is independent of onnxruntime and of float32 rounding.
 */
import { ErrorCode, SaflError } from "../errors.js";
import { grad } from "../graph/autodiff/grad.js";
import type { Value } from "../graph/node.js";
import { Op } from "../graph/ops.js";
import { Rng } from "../util/rng.js";
import { evaluate } from "./reference.js";
import type { HostTensor } from "../tensor.js";

export interface GradCheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Relative tolerance on the directional derivative (default 1e-6). */
  rtol?: number;
  /** Absolute tolerance (default 1e-8). */
  atol?: number;
  /** Number of random directions (default 3). */
  directions?: number;
  seed?: number;
  batch?: number;
}

export interface GradCheckResult {
  /** Worst |analytic − numeric| / (atol + rtol·|numeric|) over the directions; ≤ 1 passes. */
  worst: number;
  analytic: number[];
  numeric: number[];
}

/**
 * Compares the gradient of the scalar `loss` with respect to the inputs `wrt` (Input values of dtype
 * float64) at the point given by `feeds`. Throws a SaflError describing the worst direction when
 * the check fails.
 */
export function checkGrads(loss: Value, wrt: readonly Value[], feeds: Record<string, HostTensor>, opts: GradCheckOptions = {}): GradCheckResult {
  const eps = opts.eps ?? 1e-6;
  const rtol = opts.rtol ?? 1e-6;
  const atol = opts.atol ?? 1e-8;
  const rng = new Rng(opts.seed ?? 0);
  const names = wrt.map((w) => {
    if (w.node.op !== Op.Input) throw new SaflError(ErrorCode.InvalidArgument, "checkGrads: wrt must be graph inputs");
    if (w.dtype !== "float64") throw new SaflError(ErrorCode.DType, "checkGrads: differentiate float64 inputs (finite differences need double precision)");
    return (w.node.attrs as { name: string }).name;
  });
  const grads = grad(loss, wrt);
  const refOpts = opts.batch === undefined ? {} : { batch: opts.batch };
  const evalAt = (f: Record<string, HostTensor>) => (evaluate([loss], f, refOpts)[0].data as Float64Array)[0]!;
  const gvals = evaluate(grads, feeds, refOpts).map((t) => t.data as Float64Array);

  const analytic: number[] = [];
  const numeric: number[] = [];
  let worst = 0;
  for (let d = 0; d < (opts.directions ?? 3); d++) {
    const dirs = names.map((n) => Float64Array.from(feeds[n]!.data as Float64Array, () => rng.normal()));
    const shifted = (sign: number): Record<string, HostTensor> => {
      const f = { ...feeds };
      names.forEach((n, i) => {
        const base = feeds[n]!;
        const x = Float64Array.from(base.data as Float64Array, (v, k) => v + sign * eps * dirs[i][k]!);
        f[n] = { dtype: "float64", shape: base.shape, data: x };
      });
      return f;
    };
    const num = (evalAt(shifted(1)) - evalAt(shifted(-1))) / (2 * eps);
    let ana = 0;
    gvals.forEach((gv, i) => {
      for (let k = 0; k < gv.length; k++) ana += gv[k]! * dirs[i][k]!;
    });
    analytic.push(ana);
    numeric.push(num);
    worst = Math.max(worst, Math.abs(ana - num) / (atol + rtol * Math.abs(num)));
  }
  if (!(worst <= 1)) {
    const rows = analytic.map((a, i) => `analytic ${a} vs numeric ${numeric[i]}`).join("; ");
    throw new SaflError(ErrorCode.InvalidArgument, `gradient check failed (error ${worst.toFixed(2)}x tolerance): ${rows}`);
  }
  return { worst, analytic, numeric };
}
