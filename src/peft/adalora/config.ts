/**
 * @module peft/adalora/config
 * Settings of the SVD-form adaptive-rank adapter (AdaLoRA, Zhang et al. 2023). Defaults follow
 * HuggingFace PEFT's `AdaLoraConfig` where it has one (init_r 12, target_r 8, beta1 = beta2 = 0.85,
 * orth_reg_weight 0.5, plain Frobenius norm); alpha defaults to init_r so the scale alpha/init_r is 1.
 */
import { z } from "zod";
import { DEFAULT_TARGETS } from "../lora/config.js";
import { type Targets, targetsSchema } from "../targets.js";

export const adaloraConfigSchema = z
  .object({
    /** r₀: triplets per module at the start (all active during heating). */
    initRank: z.number().int().min(1).default(12),
    /** r_T: average active triplets per module once the budget has annealed. */
    targetRank: z.number().int().min(0).default(8),
    /** Scale numerator: ΔW = P·diag(λ)·Q·alpha/initRank (the scale does not change when ranks are pruned). */
    alpha: z.number().positive().optional(),
    /** PEFT target_modules semantics: names / suffixes, or `{ regex }` matched against the whole name. */
    targetModules: targetsSchema.default([...DEFAULT_TARGETS]),
    /** EMA coefficient of the smoothed sensitivity Ī. */
    beta1: z.number().min(0).max(1).default(0.85),
    /** EMA coefficient of the uncertainty U. */
    beta2: z.number().min(0).max(1).default(0.85),
    /** γ of the orthogonality penalty; 0 turns it off. */
    orthWeight: z.number().min(0).default(0.5),
    /** "frobenius": ‖PᵀP − I‖_F as PEFT computes it; "squared": ‖PᵀP − I‖²_F as the AdaLoRA paper writes it. */
    orthNorm: z.enum(["frobenius", "squared"]).default("frobenius"),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.targetRank > c.initRank) {
      ctx.addIssue({
        code: "custom",
        path: ["targetRank"],
        message: `targetRank ${c.targetRank} is above initRank ${c.initRank}; the budget can only shrink`,
      });
    }
  });

export type AdaloraConfigInput = z.input<typeof adaloraConfigSchema>;
export interface AdaloraConfig {
  readonly initRank: number;
  readonly targetRank: number;
  readonly alpha: number;
  readonly targetModules: Targets;
  readonly beta1: number;
  readonly beta2: number;
  readonly orthWeight: number;
  readonly orthNorm: "frobenius" | "squared";
}

export function resolveAdaloraConfig(p: z.output<typeof adaloraConfigSchema>): AdaloraConfig {
  return { ...p, alpha: p.alpha ?? p.initRank };
}
