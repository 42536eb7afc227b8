/**
 * @module peft/merge
 * Folding an adapter into the base weights and back: W' = W + ΔW for every adapted module (ΔW with
 * masks and scale applied, accumulated in float64), giving a plain model that runs with no adapter
 * cost; unmerging subtracts the same ΔW. Used to serve a fine-tuned model and, in SA-FedLoRA, to make
 * an aggregate the new frozen base.
 */
import { ParamStore } from "../nn/params.js";
import type { Adapter } from "./adapter.js";

function apply(base: ParamStore, adapter: Adapter, adapterValues: ParamStore, sign: 1 | -1): ParamStore {
  const out = new ParamStore();
  for (const name of base.names()) {
    if (adapter.isAdapterParam(name) || name.endsWith(".lora_mask")) continue;
    out.set(name, base.shape(name), base.get(name).slice());
  }
  for (const m of adapter.modules()) {
    const w = out.get(`${m.name}.weight`);
    const d = adapter.delta(adapterValues, m);
    for (let i = 0; i < w.length; i++) w[i] = w[i]! + sign * d[i]!;
  }
  return out;
}

/**
 * A store of the plain model's parameters with every adapted weight replaced by W + ΔW; adapter
 * parameters and masks are left out. `adapterValues` may be the same store as `base`.
 */
export function mergeAdapter(base: ParamStore, adapter: Adapter, adapterValues: ParamStore = base): ParamStore {
  return apply(base, adapter, adapterValues, 1);
}

/** The inverse of `mergeAdapter`: W − ΔW for every adapted module. */
export function unmergeAdapter(merged: ParamStore, adapter: Adapter, adapterValues: ParamStore): ParamStore {
  return apply(merged, adapter, adapterValues, -1);
}
