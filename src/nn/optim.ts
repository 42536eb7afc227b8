/**
 * @module nn/optim
 * Optimizers over Float32Arrays, updating parameters in place. AdamW follows PyTorch's
 * `torch.optim.AdamW` exactly (decoupled weight decay p ← p − lr·wd·p, bias-corrected moments, eps
 * added after the square root); SGD follows `torch.optim.SGD` (L2 weight decay added to the gradient,
 * optional momentum with dampening 0 and Nesterov off). Like PyTorch's parameter groups, some
 * parameters can take their own learning rate (`groups`): a new classification head next to an
 * adapter learns at another rate than the adapter's factors. Without groups every parameter uses `lr`
 * and the arithmetic is exactly what it was before groups existed.
 */
import { argError } from "../errors.js";

/** Parameters (selected by name) that step at their own learning rate instead of the optimizer's `lr`. */
export interface ParamGroup {
  readonly matches: (name: string) => boolean;
  /** Mutable like `Optimizer.lr`, so per-round settings can change it. */
  lr: number;
}

export interface Optimizer {
  /** Learning rate of the next step (mutable, for schedules and per-round client settings). */
  lr: number;
  /**
   * Groups with their own learning rate; a parameter takes the first group that matches it, else
   * `lr`. Mutable; empty by default. A schedule that sets `lr` leaves the groups' rates alone.
   */
  groups: ParamGroup[];
  /** Applies one update to every parameter that has a gradient. */
  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): void;
  /** Drops all state (moments, step count). */
  reset(): void;
}

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

function checkLr(lr: number): void {
  if (!(lr >= 0) || !Number.isFinite(lr)) throw argError(`learning rate must be a finite number >= 0, got ${lr}`);
}

/** The learning rate of parameter `name`: its first matching group's, else the optimizer's. */
function lrOf(name: string, lr: number, groups: readonly ParamGroup[]): number {
  for (const g of groups) {
    if (g.matches(name)) {
      checkLr(g.lr);
      return g.lr;
    }
  }
  return lr;
}

export class AdamW implements Optimizer {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;
  /** Mutable so a learning-rate schedule can set it before each step. */
  lr: number;
  groups: ParamGroup[] = [];
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(opts: AdamWOptions) {
    checkLr(opts.lr);
    this.lr = opts.lr;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
  }

  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd, groups } = this;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    const sqrtBc2 = Math.sqrt(bc2);
    for (const [name, gr] of grads) {
      const p = params.get(name);
      if (!p) throw argError(`optimizer: gradient for unknown parameter "${name}"`);
      // Per parameter, but the same expressions as with one global rate, so no groups means the same bits.
      const lr = lrOf(name, this.lr, groups);
      const stepSize = lr / bc1;
      const decay = 1 - lr * wd;
      let m = this.m.get(name);
      let v = this.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.length);
        v = new Float32Array(p.length);
        this.m.set(name, m);
        this.v.set(name, v);
      }
      for (let i = 0; i < p.length; i++) {
        const gi = gr[i]!;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
      }
    }
  }

  reset(): void {
    this.m.clear();
    this.v.clear();
    this.t = 0;
  }
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
}

export class Sgd implements Optimizer {
  private readonly buf = new Map<string, Float32Array>();
  /** Mutable so a learning-rate schedule can set it before each step. */
  lr: number;
  groups: ParamGroup[] = [];
  readonly momentum: number;
  readonly weightDecay: number;

  constructor(opts: SgdOptions) {
    checkLr(opts.lr);
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    if (!(this.momentum >= 0 && this.momentum < 1)) throw argError(`momentum must be in [0, 1), got ${this.momentum}`);
  }

  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): void {
    const { momentum: mu, weightDecay: wd, groups } = this;
    for (const [name, gr] of grads) {
      const p = params.get(name);
      if (!p) throw argError(`optimizer: gradient for unknown parameter "${name}"`);
      const lr = lrOf(name, this.lr, groups);
      if (mu === 0) {
        for (let i = 0; i < p.length; i++) p[i] = p[i]! - lr * (gr[i]! + wd * p[i]!);
        continue;
      }
      let b = this.buf.get(name);
      const first = !b;
      if (!b) {
        b = new Float32Array(p.length);
        this.buf.set(name, b);
      }
      for (let i = 0; i < p.length; i++) {
        const d = gr[i]! + wd * p[i]!;
        const bi = first ? d : mu * b[i]! + d;
        b[i] = bi;
        p[i] = p[i]! - lr * bi;
      }
    }
  }

  reset(): void {
    this.buf.clear();
  }
}
