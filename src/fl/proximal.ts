/**
 * @module fl/proximal
 * FedProx's proximal term μ/2·Σ‖w − w_global‖² over a set of parameters (Li et al., 2020), used by
 * FedProx and by SA-FedLoRA's initiating stage to limit client drift. The global weights enter the
 * graph as buffers named `prox:<parameter>`, fed like parameters, so a new round only refreshes
 * their values; the gradient μ·(w − w_global) then comes out of the same compiled step.
 */
import * as g from "../graph/builder.js";
import type { Value } from "../graph/node.js";
import type { ParamRegistry } from "../nn/module.js";
import type { ParamStore } from "../nn/params.js";

export const proxName = (param: string): string => `prox:${param}`;

/** Declares a `prox:` buffer per parameter and returns μ/2·Σ‖w − w_global‖² (undefined when μ = 0). */
export function proximalTerm(reg: ParamRegistry, params: readonly string[], mu: number): Value | undefined {
  if (!(mu >= 0) || !Number.isFinite(mu)) throw new Error(`proximal mu must be a finite number >= 0, got ${mu}`);
  if (mu === 0 || params.length === 0) return undefined;
  const terms = params.map((name) => {
    const w = reg.value(name);
    const anchor = reg.buffer(proxName(name), w.shape as number[], { kind: "zeros" });
    return g.sum(g.square(g.sub(w, anchor)));
  });
  return g.mul(
    terms.reduce((a, b) => g.add(a, b)),
    mu / 2,
  );
}

/** Copies the current values of `params` into their `prox:` buffers (call when a round starts). */
export function setProximalAnchor(store: ParamStore, params: readonly string[]): void {
  for (const name of params) store.set(proxName(name), store.shape(name), store.get(name).slice());
}
