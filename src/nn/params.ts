/**
 * @module nn/params
 * Parameters as named Float32Arrays. A model declares `ParamSpec`s (name, shape, initializer); a
 * `ParamStore` holds their values. Names are HuggingFace state-dict keys, so a store reads from and
 * writes to a checkpoint without renaming.
 */
import { ErrorCode, SaflError } from "../errors.js";
import type { Rng } from "../util/rng.js";

export type Init =
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "normal"; std: number }
  /** PyTorch's kaiming_uniform_(a=√5), as nn.Linear and PEFT's lora_A use: U(-1/√fanIn, 1/√fanIn). */
  | { kind: "kaimingUniform"; fanIn: number }
  /**
   * A semi-orthogonal matrix, as PyTorch's orthogonal_ (gain 1) makes one: a 2-D [rows, cols] spec
   * gets orthonormal columns when rows ≥ cols, else orthonormal rows. Drawn from as many standard
   * normals as `normal` draws (so specs after it see the same random stream), then orthonormalized.
   */
  | { kind: "orthogonal" };

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly init: Init;
  /**
   * A buffer is fed like a parameter but never trained (e.g. an adapter's rank mask); it lives in the
   * same store so one feed path serves both.
   */
  readonly buffer?: boolean;
}

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Fills a new array for a spec. */
export function initParam(spec: ParamSpec, rng: Rng): Float32Array {
  const n = numelOf(spec.shape);
  const out = new Float32Array(n);
  const init = spec.init;
  switch (init.kind) {
    case "zeros":
      break;
    case "ones":
      out.fill(1);
      break;
    case "normal":
      for (let i = 0; i < n; i++) out[i] = rng.normal() * init.std;
      break;
    case "kaimingUniform": {
      const bound = 1 / Math.sqrt(init.fanIn);
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
      break;
    }
    case "orthogonal": {
      if (spec.shape.length !== 2) throw new SaflError(ErrorCode.Shape, `parameter "${spec.name}": an orthogonal init needs a 2-D shape, got [${spec.shape.join(",")}]`);
      const [rows, cols] = spec.shape as [number, number];
      const draw = Float64Array.from({ length: n }, () => rng.normal());
      out.set(semiOrthogonal(draw, rows, cols, spec.name));
      break;
    }
  }
  return out;
}

/**
 * Orthonormalizes a row-major rows×cols matrix in place along its shorter side: the columns when
 * rows ≥ cols, else the rows. Modified Gram-Schmidt in float64, run twice ("twice is enough",
 * Giraud et al. 2005), so the float32 result is orthonormal to rounding whatever the draw.
 */
function semiOrthogonal(a: Float64Array, rows: number, cols: number, name: string): Float64Array {
  // Vectors to orthonormalize: k of length len, vector v's entry j at a[v·vs + j·es].
  const byCols = rows >= cols;
  const k = byCols ? cols : rows;
  const len = byCols ? rows : cols;
  const vs = byCols ? 1 : cols;
  const es = byCols ? cols : 1;
  const at = (v: number, j: number) => v * vs + j * es;
  for (let v = 0; v < k; v++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let u = 0; u < v; u++) {
        let dot = 0;
        for (let j = 0; j < len; j++) dot += a[at(u, j)]! * a[at(v, j)]!;
        for (let j = 0; j < len; j++) a[at(v, j)] = a[at(v, j)]! - dot * a[at(u, j)]!;
      }
    }
    let sq = 0;
    for (let j = 0; j < len; j++) sq += a[at(v, j)]! ** 2;
    const norm = Math.sqrt(sq);
    // Only a degenerate draw (probability 0 for Gaussian entries) leaves a vector in the span of the earlier ones.
    if (!(norm > 1e-10)) throw new SaflError(ErrorCode.Shape, `parameter "${name}": orthogonal init drew linearly dependent vectors`);
    for (let j = 0; j < len; j++) a[at(v, j)] = a[at(v, j)]! / norm;
  }
  return a;
}

/** Named parameter values with their shapes. */
export class ParamStore {
  private readonly values = new Map<string, Float32Array>();
  private readonly shapes = new Map<string, readonly number[]>();

  /** A store holding freshly initialized values for `specs`. */
  static init(specs: Iterable<ParamSpec>, rng: Rng): ParamStore {
    const s = new ParamStore();
    for (const spec of specs) s.set(spec.name, spec.shape, initParam(spec, rng));
    return s;
  }

  set(name: string, shape: readonly number[], data: Float32Array): void {
    if (data.length !== numelOf(shape)) {
      throw new SaflError(ErrorCode.Shape, `parameter "${name}": ${data.length} values for shape [${shape.join(",")}]`);
    }
    this.values.set(name, data);
    this.shapes.set(name, [...shape]);
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  get(name: string): Float32Array {
    const v = this.values.get(name);
    if (!v) throw new SaflError(ErrorCode.Checkpoint, `missing parameter "${name}"`);
    return v;
  }

  shape(name: string): readonly number[] {
    const s = this.shapes.get(name);
    if (!s) throw new SaflError(ErrorCode.Checkpoint, `missing parameter "${name}"`);
    return s;
  }

  names(): string[] {
    return [...this.values.keys()];
  }

  get size(): number {
    return this.values.size;
  }

  /** Total number of scalars. */
  count(names: Iterable<string> = this.values.keys()): number {
    let n = 0;
    for (const k of names) n += this.get(k).length;
    return n;
  }

  /** Deep copy. */
  clone(): ParamStore {
    const s = new ParamStore();
    for (const [k, v] of this.values) s.set(k, this.shapes.get(k)!, v.slice());
    return s;
  }

  /**
   * Checks that every spec has a value of the right shape (and, with `strict`, that there are no
   * extra values), reporting all problems at once.
   */
  check(specs: Iterable<ParamSpec>, source: string, strict = false): void {
    const problems: string[] = [];
    const expected = new Set<string>();
    for (const spec of specs) {
      expected.add(spec.name);
      const shape = this.shapes.get(spec.name);
      if (!shape) problems.push(`missing "${spec.name}" [${spec.shape.join(",")}]`);
      else if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i])) {
        problems.push(`"${spec.name}" has shape [${shape.join(",")}], the config expects [${spec.shape.join(",")}]`);
      }
    }
    if (strict) for (const k of this.values.keys()) if (!expected.has(k)) problems.push(`unexpected "${k}"`);
    if (problems.length > 0) {
      const shown = problems.slice(0, 12).map((p) => `  - ${p}`);
      if (problems.length > 12) shown.push(`  - ... and ${problems.length - 12} more`);
      throw new SaflError(ErrorCode.Checkpoint, `${source} does not match the model:\n${shown.join("\n")}`);
    }
  }
}
