/**
 * @module peft/kind
 * What one adapter kind owns, as one registry entry (peft/registry): its config schema and defaults
 * (the default learning rate included), how an adapter is built from a spec, what a federated round
 * carries for it (which trained tensors travel dense, which travel packed), its per-step training
 * hooks (the SVD form's importance tracking and frozen masked entries), its centralized rank
 * schedule, where federated training's defaults differ from centralized ones, and the parameter
 * count of a saved adapter. Generic code — the trainer, the federated
 * client, the run config, `safl finetune` — asks the entry and never branches on the kind, so a new
 * adapter kind is a folder under peft/ plus one line in the registry.
 */
import { z } from "zod";
import { argError } from "../errors.js";
import type { ParamStore } from "../nn/params.js";
import type { ModuleScores } from "./adalora/importance.js";
import type { PackedModule } from "./adalora/pack.js";
import type { Adapter } from "./adapter.js";
import type { PeftFormat } from "./peft-format.js";

/** What a federated round carries for an adapter besides its dense tensors. */
export interface AdapterPayload {
  /** Whether a trained parameter travels as a dense tensor (the others travel as packed modules). */
  isDense(name: string): boolean;
  /** The packed modules of a reply or broadcast ([] for adapters that have none). */
  pack(adapter: Adapter, store: ParamStore): PackedModule[];
  /** Loads a message's packed modules into `store`; throws an argError naming what does not fit. */
  unpack(adapter: Adapter, store: ParamStore, packed: readonly PackedModule[]): void;
}

/** Per-step behaviour a kind adds to training (created per trainer, reset per local run). */
export interface AdapterStepHooks {
  /**
   * Called with this step's weights and gradients before the optimizer update. May return a
   * function the trainer calls right after the update (to restore entries the update must not move).
   */
  beforeUpdate(store: ParamStore, grads: ReadonlyMap<string, Float32Array>): (() => void) | undefined;
  /** Forgets every statistic (a new local training run starts). */
  reset(): void;
  /** Per-module unit scores a federated client reports with its reply ([] when the kind has none). */
  scores(): ModuleScores[];
}

/** Step budget of a centralized run, for kinds that change their rank while training. */
export interface RankScheduleOptions {
  readonly totalSteps: number;
  readonly heatSteps: number;
  readonly coolSteps: number;
  readonly interval: number;
}

export interface AdapterKindEntry<K extends string = string, Spec = unknown> {
  readonly kind: K;
  /** One line for help texts and docs. */
  readonly summary: string;
  /** The kind's config fields (without `kind`), strict, with defaults. */
  readonly schema: z.ZodObject;
  /** Fills in the defaults that depend on other fields (e.g. alpha from the rank). */
  resolve(parsed: never): Spec;
  /** Learning rate of this kind's factors when the user sets none (federated and centralized runs). */
  readonly defaultLr: number;
  create(spec: Spec): Adapter;
  readonly payload: AdapterPayload;
  /** Per-step hooks, when the kind has any. */
  stepHooks?(adapter: Adapter): AdapterStepHooks;
  /**
   * A centralized rank schedule driven by the step hooks' statistics, for kinds with adaptive rank:
   * called after every step, returns a short status for the progress line.
   */
  rankSchedule?(adapter: Adapter, hooks: AdapterStepHooks, opts: RankScheduleOptions): (step: number, store: ParamStore) => string;
  /** Active rank per module, for kinds whose rank changes. */
  activeRanks?(adapter: Adapter, store: ParamStore): Record<string, number>;
  /** Config fields `safl finetune` sets unless the user does (where its centralized default differs from the schema's). */
  readonly finetuneDefaults?: Readonly<Record<string, unknown>>;
  /**
   * Where federated training's defaults differ from the schema's (which are the centralized ones,
   * PEFT's for the SVD form): fields the federated strategies default to, and the head's rate in
   * this kind's federated adapter rounds when the run config sets no `training.lr.head` (absent:
   * the head learns at the kind's rate).
   */
  readonly federated?: { readonly defaults?: Readonly<Record<string, unknown>>; readonly headLr?: number };
  /** Its layout in a HuggingFace PEFT adapter directory (kinds may share one, told apart by `safl.kind`). */
  readonly peft: PeftFormat;
  /** Parameters a saved adapter holds (the head excluded). */
  savedParamCount(adapter: Adapter, store: ParamStore): number;
}

/** The payload of adapters whose trained tensors all travel dense (LoRA, FFA-LoRA). */
export const densePayload: AdapterPayload = {
  isDense: () => true,
  pack: () => [],
  unpack(adapter, _store, packed) {
    if (packed.length > 0) throw argError(`a ${adapter.kind} adapter takes no packed modules, the message carries ${packed.length}`);
  },
};

/** r·(in + out) per module: the factor entries of a fixed-rank adapter. */
export const factorParamCount = (adapter: Adapter): number => adapter.modules().reduce((n, m) => n + m.rank * (m.inFeatures + m.outFeatures), 0);

/**
 * `schema` with the defaults of some fields replaced (an optional field gets one); validation,
 * strictness, refinements and field order stay as they are. Unknown field names are a programming
 * error.
 */
export function withFieldDefaults<S extends z.ZodObject>(schema: S, defaults: Readonly<Record<string, unknown>>): S {
  const shape = schema.shape as Record<string, z.ZodType>;
  const replaced: Record<string, z.ZodType> = {};
  for (const [field, value] of Object.entries(defaults)) {
    let inner = shape[field];
    if (!inner) throw new Error(`withFieldDefaults: the schema has no field "${field}"`);
    while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) inner = inner.unwrap() as z.ZodType;
    replaced[field] = inner.default(value as never);
  }
  return Object.keys(replaced).length === 0 ? schema : (schema.safeExtend(replaced) as unknown as S);
}
