/**
 * @module fl/strategies
 * The strategies by name, each with its config schema, and the one function that turns a validated
 * spec into a `Strategy`. Every unknown of the SA-FedLoRA paper is a field here with a documented
 * default (docs/algorithm.md): initiating rounds, μ and trainable set; the SVD adapter's ranks; the
 * heating and cooling lengths; score smoothing; the selection rule. The two ablations are configs:
 * `initiating.rounds: 0` (no initiating stage) and `fixedRank: true` (no annealing).
 */
import { z } from "zod";
import type { VitConfig } from "../../nn/config.js";
import { ParamStore } from "../../nn/params.js";
import { adaloraConfigSchema, resolveAdaloraConfig } from "../../peft/adalora/config.js";
import { loraConfigSchema, resolveLoraConfig } from "../../peft/lora/config.js";
import { isHeadParam } from "../../peft/model.js";
import type { AdapterSpec } from "../../peft/registry.js";
import type { LocalTraining, Strategy } from "../strategy.js";
import { FrozenBase } from "./base.js";
import { FullModelStrategy } from "./full.js";
import { LoraStrategy } from "./lora.js";
import { StagedStrategy } from "./staged.js";
import { SvdStrategy } from "./svd.js";

export const STRATEGY_NAMES = ["fedavg", "fedprox", "fedlora", "ffa-lora", "fedadalora", "sa-fedlora"] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

const annealingFields = {
  /** Annealing rounds at the full budget r₀ × modules. */
  heatRounds: z.number().int().min(0),
  /** Final rounds at the target budget, with the mask frozen. */
  coolRounds: z.number().int().min(0),
  /** β of the server-side EMA of triplet scores across rounds (0: each round's average alone). */
  scoreSmoothing: z.number().min(0).lt(1).default(0.5),
  /** "top-b": keep the b best triplets over all modules (AdaLoRA's global rule); "per-module": b/M per module. */
  selection: z.enum(["top-b", "per-module"]).default("top-b"),
  /**
   * How the server combines the clients' triplets: "factors" (the default when omitted) averages
   * P, λ and Q separately; "product" averages the clients' P·diag(λ)·Q and re-factorizes the mean
   * by a truncated SVD (docs/algorithm.md). Optional without a default, so configs that leave it
   * out resolve exactly as before it existed.
   */
  aggregation: z.enum(["factors", "product"]).optional(),
};

/** The SVD adapter of the annealing stage; SA-FedLoRA's defaults: r₀ = 8, r_T = 2 (see docs/algorithm.md). */
const saAdapterSchema = adaloraConfigSchema.safeExtend({
  initRank: z.number().int().min(1).default(8),
  targetRank: z.number().int().min(0).default(2),
});

export const strategySpecSchema = z.discriminatedUnion("name", [
  z.object({ name: z.literal("fedavg") }).strict(),
  z.object({ name: z.literal("fedprox"), mu: z.number().min(0).default(0.01) }).strict(),
  z.object({ name: z.literal("fedlora"), adapter: loraConfigSchema.prefault({}) }).strict(),
  z.object({ name: z.literal("ffa-lora"), adapter: loraConfigSchema.prefault({}) }).strict(),
  z
    .object({
      name: z.literal("fedadalora"),
      adapter: adaloraConfigSchema.prefault({}),
      heatRounds: annealingFields.heatRounds.default(2),
      coolRounds: annealingFields.coolRounds.default(4),
      scoreSmoothing: annealingFields.scoreSmoothing,
      selection: annealingFields.selection,
      aggregation: annealingFields.aggregation,
    })
    .strict(),
  z
    .object({
      name: z.literal("sa-fedlora"),
      initiating: z
        .object({
          /** Rounds of the initiating stage (0: the no-initiating-stage ablation). */
          rounds: z.number().int().min(0).default(2),
          /** μ of the proximal term μ/2·‖w − w_global‖². */
          mu: z.number().min(0).default(0.01),
          /** "full": backbone + head, then the aggregate becomes the frozen base; "adapter": every triplet, no new base. */
          trainable: z.enum(["full", "adapter"]).default("full"),
        })
        .strict()
        .prefault({}),
      adapter: saAdapterSchema.prefault({}),
      heatRounds: annealingFields.heatRounds.default(2),
      coolRounds: annealingFields.coolRounds.default(4),
      /** The no-annealing ablation: rank r_T everywhere, all rounds. */
      fixedRank: z.boolean().default(false),
      scoreSmoothing: annealingFields.scoreSmoothing,
      selection: annealingFields.selection,
      aggregation: annealingFields.aggregation,
    })
    .strict(),
]);

export type StrategySpec = z.output<typeof strategySpecSchema>;

/** What every strategy is built from. */
export interface StrategyContext {
  /** Backbone config with the task's head. */
  readonly config: VitConfig;
  /** Initial weights: the pre-trained backbone and a freshly initialized head. */
  readonly initial: ParamStore;
  readonly training: { readonly full: LocalTraining; readonly adapter: (kind: "lora" | "ffa-lora" | "adalora") => LocalTraining };
  readonly rounds: number;
  readonly seed: number;
}

const headOf = (store: ParamStore): ParamStore => {
  const head = new ParamStore();
  for (const n of store.names()) if (isHeadParam(n)) head.set(n, store.shape(n), store.get(n));
  return head;
};

export function createStrategy(spec: StrategySpec, ctx: StrategyContext): Strategy {
  const { config, initial, training, rounds, seed } = ctx;
  const initSeed = seed + 1;
  const pretrained = new FrozenBase(0, initial);
  switch (spec.name) {
    case "fedavg":
      return new FullModelStrategy({ name: "fedavg", initial, training: training.full, mu: 0, seed });
    case "fedprox":
      return new FullModelStrategy({ name: "fedprox", initial, training: training.full, mu: spec.mu, seed });
    case "fedlora":
    case "ffa-lora": {
      const kind = spec.name === "fedlora" ? "lora" : "ffa-lora";
      const adapter = { kind, ...resolveLoraConfig(spec.adapter) } as AdapterSpec & { kind: "lora" | "ffa-lora" };
      return new LoraStrategy({ name: spec.name, config, spec: adapter, base: pretrained, head: headOf(initial), training: training.adapter(kind), seed, initSeed });
    }
    case "fedadalora":
      return new SvdStrategy({
        name: "fedadalora",
        config,
        spec: { kind: "adalora", ...resolveAdaloraConfig(spec.adapter) },
        base: pretrained,
        head: headOf(initial),
        training: training.adapter("adalora"),
        seed,
        initSeed,
        firstRound: 1,
        rounds,
        initiatingRounds: 0,
        mu: 0,
        heatRounds: spec.heatRounds,
        coolRounds: spec.coolRounds,
        fixedRank: false,
        scoreSmoothing: spec.scoreSmoothing,
        selection: spec.selection,
        aggregation: spec.aggregation ?? "factors",
      });
    case "sa-fedlora":
      return createSaFedLora(spec, ctx);
  }
}

function createSaFedLora(spec: Extract<StrategySpec, { name: "sa-fedlora" }>, ctx: StrategyContext): Strategy {
  const { config, initial, training, rounds, seed } = ctx;
  const resolved = resolveAdaloraConfig(spec.adapter);
  // No annealing: the adapter is built at the target rank and every triplet stays active.
  const adapter = { kind: "adalora" as const, ...resolved, ...(spec.fixedRank ? { initRank: resolved.targetRank, alpha: spec.adapter.alpha ?? resolved.targetRank } : {}) };
  const init = spec.initiating;
  const svd = (base: FrozenBase, head: ParamStore, firstRound: number, svdRounds: number, adapterInitiating: number) =>
    new SvdStrategy({
      name: "sa-fedlora",
      config,
      spec: adapter,
      base,
      head,
      training: training.adapter("adalora"),
      seed,
      initSeed: seed + 1,
      firstRound,
      rounds: svdRounds,
      initiatingRounds: adapterInitiating,
      mu: init.mu,
      heatRounds: spec.heatRounds,
      coolRounds: spec.coolRounds,
      fixedRank: spec.fixedRank,
      scoreSmoothing: spec.scoreSmoothing,
      selection: spec.selection,
      aggregation: spec.aggregation ?? "factors",
    });
  if (init.rounds === 0 || init.trainable === "adapter") {
    return svd(new FrozenBase(0, initial), headOf(initial), 1, rounds, init.rounds);
  }
  const first = new FullModelStrategy({ name: "sa-fedlora", initial, training: training.full, mu: init.mu, seed, stage: "initiating" });
  return new StagedStrategy("sa-fedlora", first, init.rounds, (global) => svd(new FrozenBase(1, global), headOf(global), init.rounds + 1, rounds - init.rounds, 0));
}
