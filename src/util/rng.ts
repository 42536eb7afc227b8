/**
 * @module util/rng
 * A small seeded PRNG (mulberry32 for 32-bit state, Box–Muller for normals) so weight init, data
 * shuffles and partitions are reproducible run to run from one integer seed.
 */

export interface RngState {
  readonly state: number;
  readonly spare?: number;
}

export class Rng {
  private state: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.state = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  }

  /** The generator's full state (JSON-safe), to continue the same sequence after a restart. */
  getState(): RngState {
    return { state: this.state, ...(this.spare !== undefined ? { spare: this.spare } : {}) };
  }

  setState(s: RngState): void {
    if (!Number.isInteger(s.state) || s.state < 0 || s.state > 0xffffffff) throw new Error(`Rng.setState: state ${s.state} is not a uint32`);
    this.state = s.state;
    this.spare = s.spare;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal. */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(xs: T[] | Int32Array | Uint32Array): void {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = xs[i]!;
      xs[i] = xs[j]!;
      xs[j] = t as never;
    }
  }
}
