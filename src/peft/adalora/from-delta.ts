/**
 * @module peft/adalora/from-delta
 * Starting an SVD-form adapter from a known weight change instead of λ = 0: for a layer's change D
 * (out × in), its rank-r truncated SVD U_r·diag(σ)·V_rᵀ becomes P = U_r, Q = V_rᵀ and λ = σ/scale,
 * so that the adapter's ΔW = P·diag(λ)·Q·scale is exactly the truncation — by Eckart–Young the best
 * rank-r approximation of D. SA-FedLoRA's "delta-svd" handoff uses it to carry the initiating stage's
 * change into the annealing stage on the pre-trained base the clients already hold, so no new base
 * has to be sent. P and Q come out orthonormal, which the SVD form's penalty asks for anyway.
 */
import { truncatedSvd } from "../../util/linalg.js";

/** The adapter's values for one module (row-major P [out, r], λ [r], Q [r, in]) and what the truncation kept. */
export interface DeltaStart {
  readonly p: Float32Array;
  readonly e: Float32Array;
  readonly q: Float32Array;
  /** Σ_{i≤r} σᵢ² / ‖D‖²_F: the share of the change's energy the rank-r adapter holds (1 for D = 0). */
  readonly energyKept: number;
  /** Components D does not have (σ ≤ 10⁻⁶·σ₁: D has lower rank): their P column and Q row are the `fallback` values, λ = 0. */
  readonly zeroComponents: number;
}

/**
 * The SVD-form start for a change `delta` (row-major out × in) at rank `rank` under the adapter's
 * scale alpha/r₀. A component the change does not have (σ ≈ 0) keeps the fallback's P column and Q
 * row — the seeded initial values — with λ = 0: a zero P column and Q row would get zero gradient
 * forever, and λ = 0 keeps ΔW the truncation.
 */
export function svdStartFromDelta(
  delta: ArrayLike<number>,
  outFeatures: number,
  inFeatures: number,
  rank: number,
  scale: number,
  fallback: { readonly p: Float32Array; readonly q: Float32Array },
): DeltaStart {
  if (!(scale > 0)) throw new Error(`svdStartFromDelta: the scale must be positive, got ${scale}`);
  if (fallback.p.length !== outFeatures * rank || fallback.q.length !== rank * inFeatures) throw new Error("svdStartFromDelta: the fallback factors do not have the module's shapes");
  const { u, s, vt } = truncatedSvd(delta, outFeatures, inFeatures, rank);
  const p = fallback.p.slice();
  const q = fallback.q.slice();
  const e = new Float32Array(rank);
  let total = 0;
  for (let i = 0; i < delta.length; i++) total += delta[i]! ** 2;
  let kept = 0;
  let zeroComponents = 0;
  // A component below float32's resolution of the largest is rounding noise of a change of lower rank:
  // its singular vectors are not meaningful (u = D·v/σ would not even be unit), so it is treated as absent.
  const floor = 1e-6 * (s[0] ?? 0);
  for (let j = 0; j < rank; j++) {
    const sigma = s[j]!;
    if (!(sigma > floor)) {
      zeroComponents++;
      continue;
    }
    kept += sigma * sigma;
    for (let o = 0; o < outFeatures; o++) p[o * rank + j] = u[o * rank + j]!;
    q.set(vt.subarray(j * inFeatures, (j + 1) * inFeatures), j * inFeatures);
    e[j] = sigma / scale;
  }
  return { p, e, q, energyKept: total > 0 ? Math.min(1, kept / total) : 1, zeroComponents };
}
