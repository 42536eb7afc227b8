/**
 * @module fl/strategies
 * The strategies by name: one registry entry each (fl/strategies/entry says what an entry owns),
 * the run config's `strategy` schema built from the entries, and the one function that turns a
 * validated spec into a `Strategy`. Adding a strategy: its file with a `defineStrategy` entry, then
 * one line in `STRATEGY_ENTRIES`. Fields every strategy has (the optional `serverOptimizer`,
 * fl/server-optimizer) are added here, once, to each entry's schema.
 */
import { z } from "zod";
import { argError } from "../../errors.js";
import { serverOptimizerSpecSchema } from "../server-optimizer.js";
import type { Strategy } from "../strategy.js";
import type { RunShape, StrategyContext, StrategyEntry, StrategyIssue } from "./entry.js";
import { fedavgStrategy, fedproxStrategy } from "./full.js";
import { fedloraStrategy, ffaLoraStrategy } from "./lora.js";
import { saFedLoraStrategy } from "./sa-fedlora.js";
import { fedadaloraStrategy } from "./svd.js";

export type { RunShape, StrategyContext, StrategyEntry, StrategyIssue } from "./entry.js";

/** Every strategy, in the order help texts and docs list them. */
export const STRATEGY_ENTRIES = [fedavgStrategy, fedproxStrategy, fedloraStrategy, ffaLoraStrategy, fedadaloraStrategy, saFedLoraStrategy] as const;

/** The fields every strategy accepts besides its own. */
const commonFields = {
  /** A server optimizer on each round's aggregate (absent: plain averaging, the aggregate as the new global model). */
  serverOptimizer: serverOptimizerSpecSchema.optional(),
};

type WithCommon<S> = S extends z.ZodObject<infer Shape, infer Config> ? z.ZodObject<Shape & typeof commonFields, Config> : never;
type Schemas<T extends readonly StrategyEntry<z.ZodObject>[]> = { -readonly [K in keyof T]: WithCommon<T[K]["schema"]> };

export const strategySpecSchema = z.discriminatedUnion(
  "name",
  STRATEGY_ENTRIES.map((e) => (e.schema as z.ZodObject).safeExtend(commonFields)) as unknown as Schemas<typeof STRATEGY_ENTRIES>,
);

export type StrategySpec = z.output<typeof strategySpecSchema>;
export type StrategyName = StrategySpec["name"];
export const STRATEGY_NAMES = STRATEGY_ENTRIES.map((e) => e.name) as readonly StrategyName[];

const byName = new Map<string, StrategyEntry>(STRATEGY_ENTRIES.map((e) => [e.name, e as unknown as StrategyEntry]));

/** The registry entry of a strategy; an unknown name is a user error naming the known ones. */
export function strategyEntry(name: string): StrategyEntry {
  const e = byName.get(name);
  if (!e) throw argError(`unknown strategy "${name}"; expected one of ${STRATEGY_NAMES.join(", ")}`);
  return e;
}

export function createStrategy(spec: StrategySpec, ctx: StrategyContext): Strategy {
  const { serverOptimizer } = spec;
  return strategyEntry(spec.name).create(spec as never, serverOptimizer ? { ...ctx, serverOptimizer } : ctx);
}

/** The strategy's own checks against the run (paths relative to `strategy`). */
export function strategyIssues(spec: StrategySpec, run: RunShape): readonly StrategyIssue[] {
  return strategyEntry(spec.name).check?.(spec as never, run) ?? [];
}
