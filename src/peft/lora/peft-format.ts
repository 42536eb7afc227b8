/**
 * @module peft/lora/peft-format
 * LoRA and FFA-LoRA in PEFT's layout (`peft_type: "LORA"`; FFA-LoRA is told apart by the io layer's
 * `safl.kind` metadata, PEFT sees plain LoRA):
 * - config: `r`, `lora_alpha` (int or float), `rank_pattern` / `alpha_pattern` (pattern key →
 *   rank / alpha, PEFT's regex-or-suffix keys), `use_rslora`, plus `use_dora: false`;
 * - tensors: `<module>.lora_A.weight` [r, in] and `<module>.lora_B.weight` [out, r], r per module.
 * Reading accepts everything PEFT's LoraConfig can hold except the settings `LORA_FAMILY_REFUSALS`
 * lists, which are refused together in one error.
 */
import { z } from "zod";
import { ErrorCode, SaflError } from "../../errors.js";
import type { ParamStore } from "../../nn/params.js";
import { parseWith } from "../../validate.js";
import type { Adapter } from "../adapter.js";
import { LORA_FAMILY_REFUSALS, refuseUnsupported, targetsFromPeft } from "../peft-config.js";
import type { PeftExport, PeftFormat, PeftImport, PeftImportContext, PeftTensor, PeftTensorSource } from "../peft-format.js";
import { PythonRegexError, pythonPatternKey } from "../python-regex.js";
import type { AdapterSpec } from "../registry.js";
import { type LoraConfig, loraConfigSchema, resolveLoraConfig } from "./config.js";
import { loraA, loraB } from "./layer.js";

type LoraSpec = Extract<AdapterSpec, { kind: "lora" | "ffa-lora" }>;

function asLora(spec: AdapterSpec): LoraSpec {
  if (spec.kind !== "lora" && spec.kind !== "ffa-lora") throw new Error(`the LORA PEFT format was asked to write a ${spec.kind} adapter`);
  return spec as LoraSpec;
}

/** LoRA's fields of adapter_config.json (the shared ones are checked by the io layer). */
const loraFieldsSchema = z
  .object({
    r: z.number().int().min(1, "must be a positive integer (the LoRA rank)"),
    lora_alpha: z.number().positive(),
    target_modules: z.union([z.array(z.string()), z.string()]),
    rank_pattern: z.record(z.string(), z.number().int().min(1)).nullish(),
    alpha_pattern: z.record(z.string(), z.number().positive()).nullish(),
    use_rslora: z.boolean().nullish(),
  })
  .passthrough();

/** Pattern keys must carry over to JavaScript; the error names the field and key. */
function checkPatternKeys(field: string, record: Readonly<Record<string, unknown>> | null | undefined, where: string): void {
  for (const key of Object.keys(record ?? {})) {
    try {
      pythonPatternKey(key);
    } catch (e) {
      if (!(e instanceof PythonRegexError)) throw e;
      throw new SaflError(ErrorCode.Unsupported, `${where}: ${field}["${key}"] is a regular expression that cannot be used here: ${e.message}`);
    }
  }
}

export const loraPeftFormat: PeftFormat = {
  peftType: "LORA",

  toPeft(rawSpec: AdapterSpec, adapter: Adapter, store: ParamStore): PeftExport {
    const spec = asLora(rawSpec);
    const tensors = new Map<string, PeftTensor>();
    for (const m of adapter.modules()) {
      for (const key of [loraA(m.name), loraB(m.name)]) tensors.set(key, { data: store.get(key), shape: store.shape(key) });
    }
    return {
      config: {
        r: spec.rank,
        lora_alpha: spec.alpha,
        rank_pattern: { ...(spec.rankPattern ?? {}) },
        alpha_pattern: { ...(spec.alphaPattern ?? {}) },
        use_rslora: spec.useRslora ?? false,
        use_dora: false,
      },
      tensors,
      metadata: {},
    };
  },

  fromPeft(config: Readonly<Record<string, unknown>>, ctx: PeftImportContext): PeftImport {
    const { where } = ctx;
    refuseUnsupported(config, LORA_FAMILY_REFUSALS, where);
    const c = parseWith(loraFieldsSchema, config, where);
    checkPatternKeys("rank_pattern", c.rank_pattern, where);
    checkPatternKeys("alpha_pattern", c.alpha_pattern, where);
    const targets = targetsFromPeft(c.target_modules, ctx);
    const resolved: LoraConfig = resolveLoraConfig(
      parseWith(
        loraConfigSchema,
        {
          rank: c.r,
          alpha: c.lora_alpha,
          targetModules: targets,
          ...(c.rank_pattern ? { rankPattern: c.rank_pattern } : {}),
          ...(c.alpha_pattern ? { alphaPattern: c.alpha_pattern } : {}),
          ...(c.use_rslora ? { useRslora: true } : {}),
        },
        where,
      ),
    );
    if (ctx.kind !== "lora" && ctx.kind !== "ffa-lora") throw new Error(`the LORA PEFT format was asked to read a ${ctx.kind} adapter`);
    const spec: AdapterSpec = { kind: ctx.kind, ...resolved };
    return {
      spec,
      apply(tensors: PeftTensorSource, adapter: Adapter, store: ParamStore): readonly string[] {
        const used: string[] = [];
        for (const m of adapter.modules()) {
          for (const key of [loraA(m.name), loraB(m.name)]) {
            store.set(key, store.shape(key), tensors.take(key, store.shape(key)));
            used.push(key);
          }
        }
        return used;
      },
    };
  },
};
