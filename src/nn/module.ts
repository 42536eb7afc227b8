/**
 * @module nn/module
 * Building blocks shared by models: a registry that turns parameter declarations into graph inputs
 * (a parameter is an input fed on every run, or baked in as a constant when frozen), and the Linear
 * layer with its adapter hook — the one place an adapter (LoRA and its relatives) attaches to a model.
 */
import { ErrorCode, SaflError } from "../errors.js";
import * as g from "../graph/builder.js";
import type { Value } from "../graph/node.js";
import type { Init, ParamSpec } from "./params.js";

/** Records parameter specs and hands out one graph input per parameter. */
export class ParamRegistry {
  readonly specs = new Map<string, ParamSpec>();
  readonly values = new Map<string, Value>();

  /** `dtype` float64 builds the same model in double precision (for gradient checks). */
  constructor(readonly dtype: "float32" | "float64" = "float32") {}

  param(name: string, shape: readonly number[], init: Init): Value {
    if (this.values.has(name)) throw new SaflError(ErrorCode.InvalidArgument, `parameter "${name}" is declared twice`);
    const v = g.input(name, this.dtype, shape);
    this.specs.set(name, { name, shape: [...shape], init });
    this.values.set(name, v);
    return v;
  }

  /** A non-trainable input with the same feeding path as a parameter (see ParamSpec.buffer). */
  buffer(name: string, shape: readonly number[], init: Init): Value {
    const v = this.param(name, shape, init);
    this.specs.set(name, { name, shape: [...shape], init, buffer: true });
    return v;
  }

  /** Names of trainable-capable parameters (buffers excluded). */
  paramNames(): string[] {
    return [...this.specs.values()].filter((s) => !s.buffer).map((s) => s.name);
  }

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new SaflError(ErrorCode.InvalidArgument, `unknown parameter "${name}"`);
    return v;
  }
}

/** ΔW = up · down, a low-rank weight update: down [r, in], up [out, r] (any scale folded in). */
export interface LowRankFactors {
  readonly down: Value;
  readonly up: Value;
}

/**
 * An adapter attaches to chosen Linear layers as low-rank factors of a weight update (LoRA, FFA-LoRA
 * and the SVD form P·diag(λ)·Q all have this form), declaring its own parameters in the registry.
 * The Linear layer, not the adapter, decides how to compute x·downᵀ·upᵀ efficiently.
 */
export interface LinearAdapter {
  readonly kind: string;
  factors(reg: ParamRegistry, name: string, inFeatures: number, outFeatures: number): LowRankFactors | undefined;
}

/** Adapter hooks applied in order; their updates add up. */
export type Adapters = readonly LinearAdapter[];

/** HF Linear (weight [out, in], bias [out]) on a 2-D activation, plus any adapter updates. */
export function linearLayer(
  reg: ParamRegistry,
  adapters: Adapters,
  name: string,
  x: Value,
  inFeatures: number,
  outFeatures: number,
  opts: { bias?: boolean; std?: number } = {},
): Value {
  return linearGroup(reg, adapters, [name], x, inFeatures, [outFeatures], opts);
}

/**
 * Several HF Linear layers reading the same input (e.g. query, key and value), computed as one
 * product: y = x·[W₁; W₂; …]ᵀ + [b₁; b₂; …], returned as one [N, Σout] tensor. Each layer keeps its
 * own parameters and adapters. Adapter updates are batched the same way: one product with all `down`
 * factors stacked, then one with the block-diagonal matrix of `up` factors, accumulated into y.
 */
export function linearGroup(
  reg: ParamRegistry,
  adapters: Adapters,
  names: readonly string[],
  x: Value,
  inFeatures: number,
  outFeatures: readonly number[],
  opts: { bias?: boolean; std?: number } = {},
): Value {
  const ws = names.map((n, i) => reg.param(`${n}.weight`, [outFeatures[i]!, inFeatures], { kind: "normal", std: opts.std ?? 0.02 }));
  const bs = opts.bias === false ? undefined : names.map((n, i) => reg.param(`${n}.bias`, [outFeatures[i]!], { kind: "zeros" }));
  const stack = (vs: Value[]) => (vs.length === 1 ? vs[0]! : g.concat(vs, 0));
  const y = g.gemm(x, stack(ws), bs ? stack(bs) : undefined, { transB: true });

  const perModule = names.map((n, i) => adapters.map((a) => a.factors(reg, n, inFeatures, outFeatures[i]!)).filter((f) => f !== undefined));
  const all = perModule.flat();
  if (all.length === 0) return y;
  const rankOf = (f: LowRankFactors) => f.down.shape[0] as number;
  const totalRank = all.reduce((r, f) => r + rankOf(f), 0);
  let offset = 0;
  const rows = perModule.map((fs, i) => {
    const out = outFeatures[i]!;
    if (fs.length === 0) return g.constant(new Float64Array(out * totalRank), [out, totalRank], x.dtype);
    const block = fs.length === 1 ? fs[0]!.up : g.concat(fs.map((f) => f.up), 1);
    const width = block.shape[1] as number;
    const padded = width === totalRank ? block : g.pad(block, [0, offset, 0, totalRank - offset - width]);
    offset += width;
    return padded;
  });
  const down = stack(all.map((f) => f.down));
  const xa = g.gemm(x, down, undefined, { transB: true });
  return g.gemm(xa, stack(rows), y, { transB: true });
}

/** HF LayerNorm (weight, bias) over the last axis. */
export function layerNormLayer(reg: ParamRegistry, name: string, x: Value, dim: number, eps: number): Value {
  const w = reg.param(`${name}.weight`, [dim], { kind: "ones" });
  const b = reg.param(`${name}.bias`, [dim], { kind: "zeros" });
  return g.layerNorm(x, w, b, eps);
}

/**
 * PEFT-style target matching: a module matches a pattern when its name equals the pattern or ends
 * with "." + pattern (so "output.dense" matches "vit.encoder.layer.0.output.dense").
 */
export function matchesTarget(moduleName: string, targets: readonly string[]): boolean {
  return targets.some((t) => moduleName === t || moduleName.endsWith(`.${t}`));
}
