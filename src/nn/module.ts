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

  param(name: string, shape: readonly number[], init: Init): Value {
    if (this.values.has(name)) throw new SaflError(ErrorCode.InvalidArgument, `parameter "${name}" is declared twice`);
    const v = g.input(name, "float32", shape);
    this.specs.set(name, { name, shape: [...shape], init });
    this.values.set(name, v);
    return v;
  }

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new SaflError(ErrorCode.InvalidArgument, `unknown parameter "${name}"`);
    return v;
  }
}

/**
 * An adapter contributes an additive term to chosen Linear layers: for module `name` with input x
 * [N, in], it returns ΔY [N, out] (or undefined to leave the layer alone), declaring its own
 * parameters in the registry.
 */
export interface LinearAdapter {
  readonly kind: string;
  delta(reg: ParamRegistry, name: string, x: Value, inFeatures: number, outFeatures: number): Value | undefined;
}

/** Adapter hooks applied in order; their deltas add up. */
export type Adapters = readonly LinearAdapter[];

/** HF Linear (weight [out, in], bias [out]) on a 2-D activation, plus any adapter deltas. */
export function linearLayer(
  reg: ParamRegistry,
  adapters: Adapters,
  name: string,
  x: Value,
  inFeatures: number,
  outFeatures: number,
  opts: { bias?: boolean; std?: number } = {},
): Value {
  const w = reg.param(`${name}.weight`, [outFeatures, inFeatures], { kind: "normal", std: opts.std ?? 0.02 });
  const b = opts.bias === false ? undefined : reg.param(`${name}.bias`, [outFeatures], { kind: "zeros" });
  let y = g.linear(x, w, b);
  for (const a of adapters) {
    const d = a.delta(reg, name, x, inFeatures, outFeatures);
    if (d) y = g.add(y, d);
  }
  return y;
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
