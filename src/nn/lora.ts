/**
 * @module nn/lora
 * Plain LoRA (Hu et al., 2021) as a Linear adapter: ΔW = (s·B)·A, i.e. ΔY = x·Aᵀ·(s·B)ᵀ with s = alpha/r, A [r, in]
 * kaiming-uniform (as PEFT initializes it), B [out, r] zero, so a fresh adapter leaves the model
 * unchanged. The scale is folded into the small B factor rather than the [N, out] activation.
 * Parameter names follow PEFT without its `base_model.model.` prefix: `<module>.lora_A.weight`.
 */
import * as g from "../graph/builder.js";
import { type LinearAdapter, type LowRankFactors, type ParamRegistry, matchesTarget } from "./module.js";

/** The default LoRA placement: attention input projections, attention output, both MLP layers. */
export const DEFAULT_LORA_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"] as const;

export interface LoraOptions {
  rank: number;
  alpha: number;
  targets?: readonly string[];
}

export function loraAdapter(opts: LoraOptions): LinearAdapter {
  const targets = opts.targets ?? DEFAULT_LORA_TARGETS;
  const scale = opts.alpha / opts.rank;
  return {
    kind: "lora",
    factors(reg: ParamRegistry, name: string, inF: number, outF: number): LowRankFactors | undefined {
      if (!matchesTarget(name, targets)) return undefined;
      const a = reg.param(`${name}.lora_A.weight`, [opts.rank, inF], { kind: "kaimingUniform", fanIn: inF });
      const b = reg.param(`${name}.lora_B.weight`, [outF, opts.rank], { kind: "zeros" });
      return { down: a, up: g.mul(b, scale) };
    },
  };
}

/** Names of the LoRA parameters in a registry (what a LoRA-mode step trains, with the head). */
export function isLoraParam(name: string): boolean {
  return name.includes(".lora_A.") || name.includes(".lora_B.");
}
