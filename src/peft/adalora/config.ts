/**
 * @module peft/adalora/config
 * Settings of the SVD-form adaptive-rank adapter (AdaLoRA, Zhang et al. 2023). Defaults follow
 * HuggingFace PEFT's `AdaLoraConfig` where it has one (init_r 12, target_r 8, beta1 = beta2 = 0.85,
 * orth_reg_weight 0.5, plain Frobenius norm, P and Q from N(0, 0.02)); alpha defaults to init_r so the
 * scale alpha/init_r is 1.
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
    /**
     * How P and Q start (λ starts at 0 either way, so ΔW = 0): "normal" (when omitted), PEFT's
     * N(0, 0.02) entries; "orthonormal", P with orthonormal columns and Q with orthonormal rows, from
     * the same seeded draw. The small normal init leaves the orthogonality penalty to grow P and Q to
     * unit norm; without the penalty (orthWeight 0) only the orthonormal start gives them that scale
     * (docs/algorithm.md, "The SVD form in federated training"). Optional without a default, so specs
     * that leave it out resolve, serialize and hash exactly as before.
     */
    init: z.enum(["normal", "orthonormal"]).optional(),
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
  /** Absent: "normal". */
  readonly init?: AdaloraInit;
}

export type AdaloraInit = "normal" | "orthonormal";

export function resolveAdaloraConfig(p: z.output<typeof adaloraConfigSchema>): AdaloraConfig {
  // An absent init stays absent (not "normal"): the spec travels in every round instruction and is counted in bytes.
  const { init, ...rest } = p;
  return { ...rest, alpha: p.alpha ?? p.initRank, ...(init === undefined ? {} : { init }) };
}
