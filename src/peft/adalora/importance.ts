/**
 * @module peft/adalora/importance
 * AdaLoRA's sensitivity-based importance, updated after every backward pass of the training loop.
 * Per entry w of P, λ and Q:
 *   I = |w · ∂L/∂w|,  Ī ← β₁·Ī + (1 − β₁)·I,  U ← β₂·U + (1 − β₂)·|I − Ī|  (with the updated Ī),
 *   s = Ī · U,
 * and a triplet's score is s(λᵢ) + mean_j s(P[j, i]) + mean_j s(Q[i, j]) (PEFT's `_combine_ipt`).
 * The weights are the ones the gradient was taken at (before the optimizer step).
 *
 * One deliberate difference from PEFT: entries of a masked triplet keep their last Ī and U instead
 * of decaying towards zero (their gradient is zero by construction). A pruned triplet therefore
 * keeps the score it was pruned with, and is revived when the active triplets' scores fall below it
 * — the same information a federated server holds for triplets it no longer sends.
 */
import { argError } from "../../errors.js";
import type { ParamStore } from "../../nn/params.js";
import type { AdaptedModule } from "../adapter.js";
import { svdE, svdMask, svdP, svdQ } from "./layer.js";

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

  /**
   * Updates the statistics of every module's P, λ, Q from one step's weights and gradients; entries
   * of masked triplets (mask from the store) are left as they were.
   */
  update(store: ParamStore, grads: ReadonlyMap<string, Float32Array>, modules: readonly AdaptedModule[]): void {
    for (const m of modules) {
      const mask = store.get(svdMask(m.name));
      const r = m.rank;
      this.updateEntries(svdE(m.name), store.get(svdE(m.name)), grad(grads, svdE(m.name)), (i) => mask[i] !== 0);
      this.updateEntries(svdP(m.name), store.get(svdP(m.name)), grad(grads, svdP(m.name)), (i) => mask[i % r] !== 0);
      this.updateEntries(svdQ(m.name), store.get(svdQ(m.name)), grad(grads, svdQ(m.name)), (i) => mask[Math.floor(i / m.inFeatures)] !== 0);
    }
    this.updates++;
  }

  /** The EMA update for one tensor; `active(i)` false leaves entry i unchanged. */
  updateEntries(name: string, w: ArrayLike<number>, gr: ArrayLike<number>, active: (i: number) => boolean = () => true): void {
    if (w.length !== gr.length) throw argError(`importance: "${name}" has ${w.length} values but ${gr.length} gradients`);
    let st = this.state.get(name);
    if (!st) {
      st = { ibar: new Float64Array(w.length), u: new Float64Array(w.length) };
      this.state.set(name, st);
    }
    const { beta1: b1, beta2: b2 } = this;
    for (let i = 0; i < w.length; i++) {
      if (!active(i)) continue;
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
