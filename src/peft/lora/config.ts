/**
 * @module peft/lora/config
 * LoRA and FFA-LoRA settings, validated with zod so a config file reports every problem at once.
 * Defaults: rank 8 (PEFT's), alpha = 2·rank (a common choice for ViT fine-tuning; PEFT's default
 * alpha is 8 whatever the rank), the six default target modules of DESIGN.md §5.
 */
import { z } from "zod";

/** The default placement: attention input projections, attention output, both MLP layers. */
export const DEFAULT_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"] as const;

export const loraConfigSchema = z
  .object({
    rank: z.number().int().min(1).default(8),
    /** Scale numerator: ΔW = B·A·alpha/rank. Defaults to 2·rank. */
    alpha: z.number().positive().optional(),
    targetModules: z.array(z.string().min(1)).min(1).default([...DEFAULT_TARGETS]),
  })
  .strict();

export type LoraConfigInput = z.input<typeof loraConfigSchema>;
export interface LoraConfig {
  readonly rank: number;
  readonly alpha: number;
  readonly targetModules: readonly string[];
}

export function resolveLoraConfig(parsed: z.output<typeof loraConfigSchema>): LoraConfig {
  return { rank: parsed.rank, alpha: parsed.alpha ?? 2 * parsed.rank, targetModules: parsed.targetModules };
}
