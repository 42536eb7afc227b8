/**
 * @module peft/model
 * Puts an adapter on a ViT: builds the graph with the adapter's Linear hook, checks that every target
 * pattern found a layer, and says which parameters a step trains (the adapter's trainable factors and
 * the classification head, which a new task always needs).
 */
import type { Value } from "../graph/node.js";
import type { VitConfig } from "../nn/config.js";
import { type VitGraph, buildVit } from "../nn/vit.js";
import { type Adapter, checkTargetsMatched } from "./adapter.js";
import { type AdapterSpec, createAdapter } from "./registry.js";

export interface AdaptedVit {
  readonly model: VitGraph;
  readonly adapter: Adapter;
}

export function buildAdaptedVit(config: VitConfig, spec: AdapterSpec, opts: { dtype?: "float32" | "float64" } = {}): AdaptedVit {
  const adapter = createAdapter(spec);
  const model = buildVit(config, [adapter.linear], opts);
  checkTargetsMatched(adapter);
  return { model, adapter };
}

export const isHeadParam = (name: string): boolean => name.startsWith("classifier.");

/** The trainable set of adapter fine-tuning: the adapter's trainable factors plus the head. */
export function adapterTrainable(adapter: Adapter): (name: string) => boolean {
  return (name) => adapter.isTrainable(name) || isHeadParam(name);
}

/** The regularizer hook for TrainStep's `extraLoss`. */
export function adapterLoss(adapter: Adapter): ((m: VitGraph) => Value | undefined) | undefined {
  const reg = adapter.regularizer;
  return reg ? (m) => reg.call(adapter, m.registry) : undefined;
}
