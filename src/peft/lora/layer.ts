/**
 * @module peft/lora/layer
 * Plain LoRA (Hu et al., 2021) as a Linear adapter: ΔW = (s·B)·A, i.e. ΔY = x·Aᵀ·(s·B)ᵀ with
 * s = alpha/r, A [r, in] kaiming-uniform (as PEFT initializes it), B [out, r] zero, so a fresh adapter
 * leaves the model unchanged. The scale is folded into the small B factor rather than the [N, out]
 * activation. Parameter names follow PEFT without its `base_model.model.` prefix:
 * `<module>.lora_A.weight`, `<module>.lora_B.weight`.
 *
 * FFA-LoRA (Sun et al., 2024) is the same layer with A frozen at its random initialization, which
 * makes federated averaging of B exact (the mean of B·A is (mean B)·A when every client shares A).
 */
import * as g from "../../graph/builder.js";
import type { LowRankFactors, ParamRegistry } from "../../nn/module.js";
import type { ParamStore } from "../../nn/params.js";
import { type AdaptedModule, type Adapter, ModuleRecorder, lowRankProduct } from "../adapter.js";
import { DEFAULT_TARGETS, type LoraConfig } from "./config.js";

export { DEFAULT_TARGETS as DEFAULT_LORA_TARGETS };

export const loraA = (module: string) => `${module}.lora_A.weight`;
export const loraB = (module: string) => `${module}.lora_B.weight`;

/** A LoRA adapter; `freezeA` makes it FFA-LoRA. */
export function loraAdapter(cfg: { rank: number; alpha: number; targets?: readonly string[]; freezeA?: boolean }): Adapter {
  const targets = cfg.targets ?? DEFAULT_TARGETS;
  const scale = cfg.alpha / cfg.rank;
  const rec = new ModuleRecorder(targets, cfg.rank, cfg.freezeA ? "ffa-lora rank" : "lora rank");
  const freezeA = cfg.freezeA ?? false;
  return {
    kind: freezeA ? "ffa-lora" : "lora",
    targets,
    linear: {
      kind: freezeA ? "ffa-lora" : "lora",
      factors(reg: ParamRegistry, name: string, inF: number, outF: number): LowRankFactors | undefined {
        if (!rec.offer(name, inF, outF)) return undefined;
        const a = reg.param(loraA(name), [cfg.rank, inF], { kind: "kaimingUniform", fanIn: inF });
        const b = reg.param(loraB(name), [outF, cfg.rank], { kind: "zeros" });
        return { down: a, up: g.mul(b, scale) };
      },
    },
    modules: () => rec.modules(),
    linearNames: () => rec.linearNames(),
    paramNames: (m: AdaptedModule) => [loraA(m.name), loraB(m.name)],
    isAdapterParam: isLoraParam,
    isTrainable: (name: string) => (freezeA ? name.endsWith(".lora_B.weight") : isLoraParam(name)),
    delta: (store: ParamStore, m: AdaptedModule) => lowRankProduct(store.get(loraB(m.name)), store.get(loraA(m.name)), undefined, m, scale),
  };
}

export function loraFromConfig(cfg: LoraConfig, freezeA = false): Adapter {
  return loraAdapter({ rank: cfg.rank, alpha: cfg.alpha, targets: cfg.targetModules, freezeA });
}

/** Whether a parameter name is a LoRA factor. */
export function isLoraParam(name: string): boolean {
  return name.endsWith(".lora_A.weight") || name.endsWith(".lora_B.weight");
}
