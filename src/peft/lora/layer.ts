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
 *
 * Rank and alpha may differ per module (PEFT's rank_pattern / alpha_pattern), and the scale may be
 * rank-stabilized, s = alpha/√r (use_rslora); each module's r and s are fixed when the model is built.
 */
import * as g from "../../graph/builder.js";
import type { LowRankFactors, ParamRegistry } from "../../nn/module.js";
import type { ParamStore } from "../../nn/params.js";
import { type AdaptedModule, type Adapter, ModuleRecorder, lowRankProduct } from "../adapter.js";
import { type Targets, patternLookup } from "../targets.js";
import { DEFAULT_TARGETS, type LoraConfig } from "./config.js";

export { DEFAULT_TARGETS as DEFAULT_LORA_TARGETS };

export const loraA = (module: string) => `${module}.lora_A.weight`;
export const loraB = (module: string) => `${module}.lora_B.weight`;

export interface LoraLayerOptions {
  readonly rank: number;
  readonly alpha: number;
  readonly targets?: Targets;
  readonly freezeA?: boolean;
  readonly rankPattern?: Readonly<Record<string, number>>;
  readonly alphaPattern?: Readonly<Record<string, number>>;
  readonly useRslora?: boolean;
}

/** Rank, alpha and scale of one module (PEFT: the first matching pattern key, else r / lora_alpha). */
export function loraModuleSettings(cfg: LoraLayerOptions, module: string): { rank: number; alpha: number; scale: number; rankField: string } {
  const r = patternLookup(cfg.rankPattern, module);
  const a = patternLookup(cfg.alphaPattern, module);
  const rank = r?.value ?? cfg.rank;
  const alpha = a?.value ?? cfg.alpha;
  const kind = cfg.freezeA ? "ffa-lora" : "lora";
  return {
    rank,
    alpha,
    scale: alpha / (cfg.useRslora ? Math.sqrt(rank) : rank),
    rankField: r ? `${kind} rankPattern["${r.key}"]` : `${kind} rank`,
  };
}

/** A LoRA adapter; `freezeA` makes it FFA-LoRA. */
export function loraAdapter(cfg: LoraLayerOptions): Adapter {
  const targets = cfg.targets ?? DEFAULT_TARGETS;
  const settings = (name: string) => loraModuleSettings(cfg, name);
  const rec = new ModuleRecorder(
    targets,
    (name) => {
      const s = settings(name);
      return { rank: s.rank, field: s.rankField };
    },
    cfg.freezeA ? "ffa-lora rank" : "lora rank",
  );
  const freezeA = cfg.freezeA ?? false;
  return {
    kind: freezeA ? "ffa-lora" : "lora",
    targets,
    linear: {
      kind: freezeA ? "ffa-lora" : "lora",
      factors(reg: ParamRegistry, name: string, inF: number, outF: number): LowRankFactors | undefined {
        const m = rec.offer(name, inF, outF);
        if (!m) return undefined;
        const { scale } = settings(name);
        const a = reg.param(loraA(name), [m.rank, inF], { kind: "kaimingUniform", fanIn: inF });
        const b = reg.param(loraB(name), [outF, m.rank], { kind: "zeros" });
        return { down: a, up: g.mul(b, scale) };
      },
    },
    modules: () => rec.modules(),
    linearNames: () => rec.linearNames(),
    paramNames: (m: AdaptedModule) => [loraA(m.name), loraB(m.name)],
    isAdapterParam: isLoraParam,
    isTrainable: (name: string) => (freezeA ? name.endsWith(".lora_B.weight") : isLoraParam(name)),
    delta: (store: ParamStore, m: AdaptedModule) => lowRankProduct(store.get(loraB(m.name)), store.get(loraA(m.name)), undefined, m, settings(m.name).scale),
  };
}

export function loraFromConfig(cfg: LoraConfig, freezeA = false): Adapter {
  return loraAdapter({
    rank: cfg.rank,
    alpha: cfg.alpha,
    targets: cfg.targetModules,
    freezeA,
    ...(cfg.rankPattern ? { rankPattern: cfg.rankPattern } : {}),
    ...(cfg.alphaPattern ? { alphaPattern: cfg.alphaPattern } : {}),
    ...(cfg.useRslora ? { useRslora: true } : {}),
  });
}

/** Whether a parameter name is a LoRA factor. */
export function isLoraParam(name: string): boolean {
  return name.endsWith(".lora_A.weight") || name.endsWith(".lora_B.weight");
}
