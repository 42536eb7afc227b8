/**
 * @module peft/lora/config
 * LoRA and FFA-LoRA settings, validated with zod so a config file reports every problem at once.
 * Defaults: rank 8 (PEFT's), alpha = 2·rank (a common choice for ViT fine-tuning; PEFT's default
 * alpha is 8 whatever the rank), the six default target modules of DESIGN.md §5.
 *
 * The PEFT `LoraConfig` settings that change the adapter's shape or scale are here too, with PEFT's
 * semantics, so an adapter written by PEFT loads as it was trained:
 * - `targetModules` may be `{ regex }`, a Python pattern matched against the whole module name;
 * - `rankPattern` / `alphaPattern` give chosen modules their own rank / alpha (PEFT's `rank_pattern`
 *   and `alpha_pattern`: the first key, in order, that matches the end of the module name at a "."
 *   boundary, as a regex);
 * - `useRslora` scales by alpha/√r instead of alpha/r (rank-stabilized LoRA, Kalajdzievski 2023).
 */
import { z } from "zod";
import { type Targets, patternRecordSchema, targetsSchema } from "../targets.js";

/** The default placement: attention input projections, attention output, both MLP layers. */
export const DEFAULT_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"] as const;

export const loraConfigSchema = z
  .object({
    rank: z.number().int().min(1).default(8),
    /** Scale numerator: ΔW = B·A·alpha/rank (alpha/√rank with useRslora). Defaults to 2·rank. */
    alpha: z.number().positive().optional(),
    targetModules: targetsSchema.default([...DEFAULT_TARGETS]),
    /** Per-module ranks: pattern key → rank (PEFT's rank_pattern). */
    rankPattern: patternRecordSchema(z.number().int().min(1)).optional(),
    /** Per-module alphas: pattern key → alpha (PEFT's alpha_pattern). */
    alphaPattern: patternRecordSchema(z.number().positive()).optional(),
    /** Rank-stabilized scale alpha/√r. */
    useRslora: z.boolean().optional(),
  })
  .strict();

export type LoraConfigInput = z.input<typeof loraConfigSchema>;
export interface LoraConfig {
  readonly rank: number;
  readonly alpha: number;
  readonly targetModules: Targets;
  /** Absent when every module has `rank`. */
  readonly rankPattern?: Readonly<Record<string, number>>;
  /** Absent when every module has `alpha`. */
  readonly alphaPattern?: Readonly<Record<string, number>>;
  /** Present (true) only when set. */
  readonly useRslora?: true;
}

/** Fills in alpha; empty patterns and a false useRslora are dropped, so a plain LoRA spec stays plain. */
export function resolveLoraConfig(parsed: z.output<typeof loraConfigSchema>): LoraConfig {
  const nonEmpty = (r: Record<string, number> | undefined) => (r && Object.keys(r).length > 0 ? r : undefined);
  const rankPattern = nonEmpty(parsed.rankPattern);
  const alphaPattern = nonEmpty(parsed.alphaPattern);
  return {
    rank: parsed.rank,
    alpha: parsed.alpha ?? 2 * parsed.rank,
    targetModules: parsed.targetModules,
    ...(rankPattern ? { rankPattern } : {}),
    ...(alphaPattern ? { alphaPattern } : {}),
    ...(parsed.useRslora ? { useRslora: true as const } : {}),
  };
}
