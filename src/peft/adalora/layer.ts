/**
 * @module peft/adalora/layer
 * The SVD-form adapter of AdaLoRA: ΔW = P·diag(λ ⊙ m)·Q·alpha/r₀ per adapted Linear layer, with
 * P [out, r₀], λ [r₀, 1], Q [r₀, in] (PEFT names: lora_B, lora_E, lora_A) and a rank mask m
 * [r₀, 1] of 0/1. The mask is a buffer fed with every step rather than baked into the graph, so a new
 * allocation needs no recompilation; and because it multiplies λ inside the graph, a masked triplet
 * contributes nothing to the forward pass and its P column, λ entry and Q row get exactly zero
 * gradient. (Keeping masked entries unchanged under weight decay and momentum is the trainer's job:
 * see `freezeMaskedEntries`.) λ starts at zero, so a fresh adapter leaves the model unchanged, and P,
 * Q at normal(0, 0.02) as in PEFT, or (`init: "orthonormal"`) with orthonormal P columns and Q rows;
 * the scale stays alpha/r₀ when ranks are pruned, as PEFT's `ranknum` does.
 *
 * The orthogonality penalty γ·mean over matrices of ‖PₘᵀPₘ − diag(m)‖ and ‖QₘQₘᵀ − diag(m)‖ (Pₘ, Qₘ:
 * masked triplets zeroed) keeps active triplets near-orthonormal without pulling on pruned ones.
 */
import * as g from "../../graph/builder.js";
import type { Value } from "../../graph/node.js";
import type { LowRankFactors, ParamRegistry } from "../../nn/module.js";
import type { Init, ParamStore } from "../../nn/params.js";
import { type AdaptedModule, type Adapter, ModuleRecorder, lowRankProduct } from "../adapter.js";
import type { AdaloraConfig } from "./config.js";

export const svdP = (module: string) => `${module}.lora_B`;
export const svdE = (module: string) => `${module}.lora_E`;
export const svdQ = (module: string) => `${module}.lora_A`;
export const svdMask = (module: string) => `${module}.lora_mask`;

const SVD_SUFFIXES = [".lora_A", ".lora_E", ".lora_B"];
export const isSvdParam = (name: string): boolean => SVD_SUFFIXES.some((s) => name.endsWith(s));

export interface SvdAdapter extends Adapter {
  readonly kind: "adalora";
  readonly config: AdaloraConfig;
  /** alpha / r₀. */
  readonly scale: number;
}

export function adaloraAdapter(cfg: AdaloraConfig): SvdAdapter {
  const r = cfg.initRank;
  const scale = cfg.alpha / r;
  const rec = new ModuleRecorder(cfg.targetModules, r, "adalora initRank");
  // Semi-orthogonal: Q [r₀, in] gets orthonormal rows and P [out, r₀] orthonormal columns (r₀ ≤ in, out).
  const factorInit: Init = cfg.init === "orthonormal" ? { kind: "orthogonal" } : { kind: "normal", std: 0.02 };
  return {
    kind: "adalora",
    config: cfg,
    scale,
    targets: cfg.targetModules,
    linear: {
      kind: "adalora",
      factors(reg: ParamRegistry, name: string, inF: number, outF: number): LowRankFactors | undefined {
        if (!rec.offer(name, inF, outF)) return undefined;
        const q = reg.param(svdQ(name), [r, inF], factorInit);
        const e = reg.param(svdE(name), [r, 1], { kind: "zeros" });
        const p = reg.param(svdP(name), [outF, r], factorInit);
        const m = reg.buffer(svdMask(name), [r, 1], { kind: "ones" });
        return { down: g.mul(q, g.mul(e, m)), up: g.mul(p, scale) };
      },
    },
    modules: () => rec.modules(),
    linearNames: () => rec.linearNames(),
    paramNames: (m: AdaptedModule) => [svdQ(m.name), svdE(m.name), svdP(m.name)],
    isAdapterParam: isSvdParam,
    isTrainable: isSvdParam,
    delta(store: ParamStore, m: AdaptedModule): Float64Array {
      const e = store.get(svdE(m.name));
      const mask = store.get(svdMask(m.name));
      const em = Float64Array.from(e, (v, i) => v * mask[i]!);
      return lowRankProduct(store.get(svdP(m.name)), store.get(svdQ(m.name)), em, m, scale);
    },
    regularizer(reg: ParamRegistry): Value | undefined {
      if (cfg.orthWeight === 0 || rec.modules().length === 0) return undefined;
      const eye = g.constant(identity(r), [r, r], reg.dtype);
      const terms: Value[] = [];
      for (const m of rec.modules()) {
        const mask = reg.value(svdMask(m.name)); // [r, 1]
        const diagMask = g.mul(eye, mask);
        const p = g.mul(reg.value(svdP(m.name)), g.reshape(mask, [1, r])); // columns of pruned triplets zeroed
        const q = g.mul(reg.value(svdQ(m.name)), mask); // rows of pruned triplets zeroed
        terms.push(norm(g.sub(g.gemm(p, p, undefined, { transA: true }), diagMask), cfg.orthNorm));
        terms.push(norm(g.sub(g.gemm(q, q, undefined, { transB: true }), diagMask), cfg.orthNorm));
      }
      const total = terms.reduce((acc, t) => g.add(acc, t));
      return g.mul(total, cfg.orthWeight / terms.length);
    },
  };
}

function identity(r: number): Float64Array {
  const out = new Float64Array(r * r);
  for (let i = 0; i < r; i++) out[i * r + i] = 1;
  return out;
}

/**
 * ‖x‖²_F, or ‖x‖_F computed as √(‖x‖² + 1e-12): a module whose triplets are all pruned has x = 0
 * exactly, where √ has an infinite derivative and the chain rule would give 0·∞ = NaN.
 */
function norm(x: Value, kind: "frobenius" | "squared"): Value {
  const sq = g.sum(g.square(x));
  return kind === "squared" ? sq : g.sqrt(g.add(sq, 1e-12));
}

/** The rank mask of a module as 0/1 bytes. */
export function readMask(store: ParamStore, module: string): Uint8Array {
  return Uint8Array.from(store.get(svdMask(module)), (v) => (v !== 0 ? 1 : 0));
}

export function writeMask(store: ParamStore, module: string, mask: ArrayLike<number>): void {
  const buf = store.get(svdMask(module));
  if (mask.length !== buf.length) throw new Error(`mask of "${module}" has ${mask.length} entries, expected ${buf.length}`);
  for (let i = 0; i < buf.length; i++) buf[i] = mask[i] ? 1 : 0;
}

/**
 * Snapshots the entries of masked triplets (P columns, λ entries, Q rows) and returns a function that
 * writes them back: wrapped around an optimizer step, it keeps pruned triplets exactly as they were
 * (AdamW's decoupled weight decay and stale moments would otherwise move them with a zero gradient).
 */
export function freezeMaskedEntries(store: ParamStore, modules: readonly AdaptedModule[]): () => void {
  const saved: Array<{ data: Float32Array; index: number; value: number }> = [];
  for (const m of modules) {
    const mask = store.get(svdMask(m.name));
    const p = store.get(svdP(m.name));
    const e = store.get(svdE(m.name));
    const q = store.get(svdQ(m.name));
    for (let k = 0; k < m.rank; k++) {
      if (mask[k] !== 0) continue;
      saved.push({ data: e, index: k, value: e[k]! });
      for (let o = 0; o < m.outFeatures; o++) saved.push({ data: p, index: o * m.rank + k, value: p[o * m.rank + k]! });
      for (let i = 0; i < m.inFeatures; i++) saved.push({ data: q, index: k * m.inFeatures + i, value: q[k * m.inFeatures + i]! });
    }
  }
  return () => {
    for (const s of saved) s.data[s.index] = s.value;
  };
}
