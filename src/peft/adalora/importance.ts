/**
 * @module peft/adalora/importance
 * AdaLoRA's sensitivity-based importance, updated after every backward pass of the training loop.
 * Per entry w of P, λ and Q:
 *   I = |w · ∂L/∂w|,  Ī ← β₁·Ī + (1 − β₁)·I,  U ← β₂·U + (1 − β₂)·|I − Ī|  (with the updated Ī),
 *   s = Ī · U,
 * and a triplet's score is s(λᵢ) + mean_j s(P[j, i]) + mean_j s(Q[i, j]) (PEFT's `_combine_ipt`).
 * The weights are the ones the gradient was taken at (before the optimizer step).
 *
 * Entries of a masked triplet have exactly zero gradient (the mask multiplies λ in the graph), so
 * their I is 0 and their Ī and U decay, as in PEFT (where pruned λ are zeroed). An earlier version
 * froze their statistics instead; that made pruned triplets look better and better as the active
 * triplets' uncertainty U settled, and the allocator churned (see docs/algorithm.md).
 */
import { argError } from "../../errors.js";
import type { ParamStore } from "../../nn/params.js";
import type { AdaptedModule } from "../adapter.js";
import { svdE, svdP, svdQ } from "./layer.js";

interface EntryState {
  readonly ibar: Float64Array;
  readonly u: Float64Array;
}

export class ImportanceTracker {
  private readonly state = new Map<string, EntryState>();
  private updates = 0;

  constructor(
    readonly beta1 = 0.85,
    readonly beta2 = 0.85,
  ) {
    for (const [k, v] of Object.entries({ beta1, beta2 })) {
      if (!(v >= 0 && v <= 1)) throw argError(`importance ${k} must be in [0, 1], got ${v}`);
    }
  }

  /** Number of `update` calls since construction or `reset`. */
  get steps(): number {
    return this.updates;
  }

  /** Updates the statistics of every module's P, λ, Q from one step's weights and gradients. */
  update(store: ParamStore, grads: ReadonlyMap<string, Float32Array>, modules: readonly AdaptedModule[]): void {
    for (const m of modules) {
      for (const name of [svdE(m.name), svdP(m.name), svdQ(m.name)]) this.updateEntries(name, store.get(name), grad(grads, name));
    }
    this.updates++;
  }

  /** The EMA update for one tensor. */
  updateEntries(name: string, w: ArrayLike<number>, gr: ArrayLike<number>): void {
    if (w.length !== gr.length) throw argError(`importance: "${name}" has ${w.length} values but ${gr.length} gradients`);
    let st = this.state.get(name);
    if (!st) {
      st = { ibar: new Float64Array(w.length), u: new Float64Array(w.length) };
      this.state.set(name, st);
    }
    const { beta1: b1, beta2: b2 } = this;
    for (let i = 0; i < w.length; i++) {
      const inst = Math.abs(w[i]! * gr[i]!);
      const ibar = b1 * st.ibar[i]! + (1 - b1) * inst;
      st.ibar[i] = ibar;
      st.u[i] = b2 * st.u[i]! + (1 - b2) * Math.abs(inst - ibar);
    }
  }

  /** s = Ī·U per entry (zeros for a tensor never updated). */
  elementScores(name: string, length: number): Float64Array {
    const st = this.state.get(name);
    const out = new Float64Array(length);
    if (st) for (let i = 0; i < length; i++) out[i] = st.ibar[i]! * st.u[i]!;
    return out;
  }

  /** Triplet scores of one module: s(λᵢ) + mean over P's column i + mean over Q's row i. */
  tripletScores(m: AdaptedModule): Float64Array {
    const r = m.rank;
    const se = this.elementScores(svdE(m.name), r);
    const sp = this.elementScores(svdP(m.name), m.outFeatures * r);
    const sq = this.elementScores(svdQ(m.name), r * m.inFeatures);
    const out = new Float64Array(r);
    for (let k = 0; k < r; k++) {
      let pSum = 0;
      for (let o = 0; o < m.outFeatures; o++) pSum += sp[o * r + k]!;
      let qSum = 0;
      for (let i = 0; i < m.inFeatures; i++) qSum += sq[k * m.inFeatures + i]!;
      out[k] = se[k]! + pSum / m.outFeatures + qSum / m.inFeatures;
    }
    return out;
  }

  /** Triplet scores of all modules, in the given order. */
  allScores(modules: readonly AdaptedModule[]): ModuleScores[] {
    return modules.map((m) => ({ module: m.name, scores: this.tripletScores(m) }));
  }

  reset(): void {
    this.state.clear();
    this.updates = 0;
  }
}

export interface ModuleScores {
  readonly module: string;
  readonly scores: Float64Array;
}

function grad(grads: ReadonlyMap<string, Float32Array>, name: string): Float32Array {
  const gr = grads.get(name);
  if (!gr) throw argError(`importance: no gradient for "${name}" (is it in the trainable set?)`);
  return gr;
}
