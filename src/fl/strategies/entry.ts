/**
 * @module fl/strategies/entry
 * What one strategy owns, as one registry entry (fl/strategies/index): its config schema (a zod
 * object with a `name` literal, defaults included), its factory, and the checks that relate its
 * fields to the rest of the run (e.g. SA-FedLoRA's initiating rounds against the round count),
 * which the run config applies without knowing any strategy. Adding a strategy is its file with
 * an entry plus one line in the registry.
 */
import type { z } from "zod";
import type { VitConfig } from "../../nn/config.js";
import { ParamStore } from "../../nn/params.js";
import type { AdapterKind } from "../../peft/adapter.js";
import { isHeadParam } from "../../peft/model.js";
import type { ServerOptimizerSpec } from "../server-optimizer.js";
import type { LocalTraining, Strategy } from "../strategy.js";

/** What every strategy is built from. */
export interface StrategyContext {
  /** Backbone config with the task's head. */
  readonly config: VitConfig;
  /** Initial weights: the pre-trained backbone and a freshly initialized head. */
  readonly initial: ParamStore;
  /** Local training of full-model rounds, and of adapter rounds per adapter kind (the learning rates differ). */
  readonly training: { readonly full: LocalTraining; readonly adapter: (kind: AdapterKind) => LocalTraining };
  readonly rounds: number;
  readonly seed: number;
  /**
   * The server optimizer applied to every round's aggregate (`strategy.serverOptimizer`, set by
   * `createStrategy` from the spec); absent: plain averaging. Each strategy (each stage of a staged
   * one) builds its own optimizer from it.
   */
  readonly serverOptimizer?: ServerOptimizerSpec;
}

/** A problem with a strategy's fields in the context of a run, at a path under `strategy`. */
export interface StrategyIssue {
  readonly path: readonly string[];
  readonly message: string;
}

/** The run-level facts a strategy's checks may relate its fields to. */
export interface RunShape {
  readonly rounds: number;
}

export interface StrategyEntry<S extends z.ZodObject = z.ZodObject> {
  readonly name: string;
  /** One line for help texts and docs. */
  readonly summary: string;
  readonly schema: S;
  create(spec: z.output<S>, ctx: StrategyContext): Strategy;
  check?(spec: z.output<S>, run: RunShape): readonly StrategyIssue[];
}

/** Types an entry against its own schema. */
export const defineStrategy = <S extends z.ZodObject>(entry: StrategyEntry<S>): StrategyEntry<S> => entry;

/** The head (classifier.*) entries of a store, copied: where adapter strategies start their head from. */
export function headOf(store: ParamStore): ParamStore {
  const head = new ParamStore();
  for (const n of store.names()) if (isHeadParam(n)) head.set(n, store.shape(n), store.get(n));
  return head;
}
