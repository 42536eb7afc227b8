/**
 * @module fl/strategies/sa-fedlora
 * SA-FedLoRA (Yang et al., arXiv 2405.09394) as a registry entry: a FedProx initiating stage whose
 * aggregate becomes the frozen base, then the annealing stage (fl/strategies/svd) on that base. Every
 * unknown of the paper is a field with a documented default (docs/algorithm.md): initiating rounds,
 * μ and trainable set; the SVD adapter's ranks; the heating and cooling lengths; score smoothing;
 * the selection rule. The two ablations are configs: `initiating.rounds: 0` (no initiating stage)
 * and `fixedRank: true` (no annealing). A server optimizer (`serverOptimizer`) runs in each stage
 * on that stage's tensors, with state of its own: the annealing stage starts with fresh state.
 */
import { z } from "zod";
import type { ParamStore } from "../../nn/params.js";
import { adaloraConfigSchema, resolveAdaloraConfig } from "../../peft/adalora/config.js";
import type { Strategy } from "../strategy.js";
import { FrozenBase } from "./base.js";
import { defineStrategy, headOf, type StrategyContext, type StrategyIssue } from "./entry.js";
import { FullModelStrategy } from "./full.js";
import { StagedStrategy } from "./staged.js";
import { annealingFields, annealingIssues, SvdStrategy } from "./svd.js";

/** The SVD adapter of the annealing stage; SA-FedLoRA's defaults: r₀ = 8, r_T = 2 (see docs/algorithm.md). */
const saAdapterSchema = adaloraConfigSchema.safeExtend({
  initRank: z.number().int().min(1).default(8),
  targetRank: z.number().int().min(0).default(2),
});

const saFedLoraSchema = z
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
  .strict();

type SaFedLoraSpec = z.output<typeof saFedLoraSchema>;

function createSaFedLora(spec: SaFedLoraSpec, ctx: StrategyContext): Strategy {
  const { config, initial, training, rounds, seed, serverOptimizer } = ctx;
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
      serverOptimizer,
    });
  if (init.rounds === 0 || init.trainable === "adapter") {
    return svd(new FrozenBase(0, initial), headOf(initial), 1, rounds, init.rounds);
  }
  const first = new FullModelStrategy({ name: "sa-fedlora", initial, training: training.full, mu: init.mu, seed, stage: "initiating", serverOptimizer });
  return new StagedStrategy("sa-fedlora", first, init.rounds, (global) => svd(new FrozenBase(1, global), headOf(global), init.rounds + 1, rounds - init.rounds, 0));
}

export const saFedLoraStrategy = defineStrategy({
  name: "sa-fedlora",
  summary: "SA-FedLoRA: a FedProx initiating stage, then the SVD-form adapter with a heating / cubic decay / cooling rank budget",
  schema: saFedLoraSchema,
  create: createSaFedLora,
  check(spec, run): StrategyIssue[] {
    if (spec.initiating.rounds >= run.rounds) {
      return [{ path: ["initiating", "rounds"], message: `${spec.initiating.rounds} initiating rounds leave no annealing round out of ${run.rounds}` }];
    }
    return spec.fixedRank ? [] : annealingIssues(spec, run.rounds - spec.initiating.rounds);
  },
});
