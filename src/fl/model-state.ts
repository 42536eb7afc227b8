/**
 * @module fl/model-state
 * The model a round trains, as both sides of the network build it: the ViT graph for a training
 * mode (the full model, or the backbone with an adapter), which of its parameters are trained and
 * sent, and the adapter's initial values. Server and client derive the initial adapter values from
 * the same seed with the same walk over the parameter specs, so values that never change (FFA-LoRA's
 * frozen A) never need to cross the network.
 */
import type { VitConfig } from "../nn/config.js";
import { initParam, type ParamStore } from "../nn/params.js";
import { buildVit, type VitGraph } from "../nn/vit.js";
import type { Adapter } from "../peft/adapter.js";
import { adapterTrainable, buildAdaptedVit } from "../peft/model.js";
import { type AdapterSpec, adapterKind } from "../peft/registry.js";
import { Rng } from "../util/rng.js";
import type { TrainMode } from "./instruction.js";

export interface RoundModel {
  readonly mode: TrainMode;
  readonly model: VitGraph;
  readonly adapter: Adapter | undefined;
  /** Names of the parameters a client trains. */
  readonly trainable: readonly string[];
  /** The trained parameters that travel as dense tensors (all of them, except what the kind's payload packs). */
  readonly dense: readonly string[];
  /** Names of the backbone parameters frozen in this mode (read from the base). */
  readonly frozenBackbone: readonly string[];
}

/** Builds the graph of a training mode on a backbone config (with the task's head). */
export function buildRoundModel(config: VitConfig, mode: TrainMode, spec: AdapterSpec | undefined): RoundModel {
  if (mode === "full") {
    const model = buildVit(config);
    const all = model.registry.paramNames();
    return { mode, model, adapter: undefined, trainable: all, dense: all, frozenBackbone: [] };
  }
  if (!spec || spec.kind !== mode) throw new Error(`buildRoundModel: mode "${mode}" needs an adapter spec of that kind`);
  const { model, adapter } = buildAdaptedVit(config, spec);
  const isTrained = adapterTrainable(adapter);
  const names = model.registry.paramNames();
  const trainable = names.filter(isTrained);
  const payload = adapterKind(spec.kind).payload;
  return {
    mode,
    model,
    adapter,
    trainable,
    dense: trainable.filter((n) => payload.isDense(n)),
    frozenBackbone: names.filter((n) => !adapter.isAdapterParam(n) && !isTrained(n)),
  };
}

/**
 * Writes the adapter's initial values (parameters and buffers such as rank masks) for `seed` into
 * `store`. Walks the specs in declaration order drawing only for adapter entries, so the values
 * depend on the seed and the adapter, not on the backbone.
 */
export function initAdapterValues(rm: RoundModel, store: ParamStore, seed: number): void {
  const adapter = rm.adapter;
  if (!adapter) return;
  const rng = new Rng(seed);
  for (const spec of rm.model.registry.specs.values()) {
    if (!adapter.isAdapterParam(spec.name) && !(spec.buffer && !spec.name.startsWith("prox:"))) continue;
    store.set(spec.name, spec.shape, initParam(spec, rng));
  }
}
