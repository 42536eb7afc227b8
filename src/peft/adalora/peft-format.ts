/**
 * @module peft/adalora/peft-format
 * The SVD form in PEFT's AdaLoRA layout (`peft_type: "ADALORA"`):
 * - config: `init_r`, `target_r` (also written as `r`), `lora_alpha`, `beta1`, `beta2`,
 *   `orth_reg_weight`, `tinit`/`tfinal`/`deltaT`, `total_step` (PEFT requires it to be positive) and
 *   `rank_pattern`: `"<module>.lora_E"` → one boolean per initial triplet, as PEFT stores it;
 * - tensors: `<module>.lora_A` [k, in], `.lora_E` [k, 1], `.lora_B` [out, k], sliced to the k kept
 *   triplets (what PEFT's `resize_state_dict_by_rank_pattern` saves);
 * - metadata: `safl.orth_norm` (PEFT has no field for the norm of the orthogonality penalty).
 * Reading unpacks the sliced tensors into the full initial rank with the rank pattern as the mask
 * (pruned triplets zeroed). PEFT's AdaLoraConfig extends LoraConfig, so LoRA's unsupported settings
 * are refused here too; `use_rslora` and `alpha_pattern`, which PEFT's AdaLoRA ignores, are ignored.
 */
import { z } from "zod";
import { ErrorCode, SaflError } from "../../errors.js";
import type { ParamStore } from "../../nn/params.js";
import { parseWith } from "../../validate.js";
import type { Adapter } from "../adapter.js";
import { LORA_FAMILY_REFUSALS, refuseUnsupported, targetsFromPeft } from "../peft-config.js";
import type { PeftExport, PeftExportOptions, PeftFormat, PeftImport, PeftImportContext, PeftTensor, PeftTensorSource } from "../peft-format.js";
import type { AdapterSpec } from "../registry.js";
import { adaloraConfigSchema, resolveAdaloraConfig } from "./config.js";
import { svdE, svdMask, svdP, svdQ } from "./layer.js";
import { activeCount, packModule, unpackModule } from "./pack.js";

type SvdSpec = Extract<AdapterSpec, { kind: "adalora" }>;

const adaloraFieldsSchema = z
  .object({
    lora_alpha: z.number().positive(),
    target_modules: z.union([z.array(z.string()), z.string()]),
    init_r: z.number().int().min(1).optional(),
    target_r: z.number().int().min(0).optional(),
    beta1: z.number().optional(),
    beta2: z.number().optional(),
    orth_reg_weight: z.number().optional(),
    rank_pattern: z.record(z.string(), z.unknown()).nullish(),
  })
  .passthrough();

/** `"<module>.lora_E"` (or `.lora_E.<adapter name>`, as PEFT's allocator names it in memory) → the module. */
const patternModule = (key: string): string => key.replace(/^base_model\.model\./, "").replace(/\.lora_E(\.[^.]+)?$/, "");

export const adaloraPeftFormat: PeftFormat = {
  peftType: "ADALORA",

  toPeft(rawSpec: AdapterSpec, adapter: Adapter, store: ParamStore, opts: PeftExportOptions): PeftExport {
    if (rawSpec.kind !== "adalora") throw new Error(`the ADALORA PEFT format was asked to write a ${rawSpec.kind} adapter`);
    const spec = rawSpec as SvdSpec;
    const tensors = new Map<string, PeftTensor>();
    const rankPattern: Record<string, boolean[]> = {};
    for (const m of adapter.modules()) {
      const pm = packModule(store, m);
      const k = activeCount(pm.mask);
      rankPattern[`${m.name}.lora_E`] = [...pm.mask].map((b) => b === 1);
      tensors.set(svdQ(m.name), { data: pm.q, shape: [k, m.inFeatures] });
      tensors.set(svdE(m.name), { data: pm.e, shape: [k, 1] });
      tensors.set(svdP(m.name), { data: pm.p, shape: [m.outFeatures, k] });
    }
    return {
      config: {
        r: spec.targetRank,
        lora_alpha: spec.alpha,
        init_r: spec.initRank,
        target_r: spec.targetRank,
        beta1: spec.beta1,
        beta2: spec.beta2,
        orth_reg_weight: spec.orthWeight,
        tinit: 0,
        tfinal: 0,
        deltaT: 1,
        total_step: Math.max(1, opts.totalSteps ?? 1),
        rank_pattern: rankPattern,
      },
      tensors,
      metadata: { "safl.orth_norm": spec.orthNorm },
    };
  },

  fromPeft(config: Readonly<Record<string, unknown>>, ctx: PeftImportContext): PeftImport {
    const { where } = ctx;
    refuseUnsupported(config, LORA_FAMILY_REFUSALS, where);
    const c = parseWith(adaloraFieldsSchema, config, where);
    const spec: SvdSpec = {
      kind: "adalora",
      ...resolveAdaloraConfig(
        parseWith(
          adaloraConfigSchema,
          {
            initRank: c.init_r ?? 12,
            targetRank: c.target_r ?? 8,
            alpha: c.lora_alpha,
            targetModules: targetsFromPeft(c.target_modules, ctx),
            ...(c.beta1 === undefined ? {} : { beta1: c.beta1 }),
            ...(c.beta2 === undefined ? {} : { beta2: c.beta2 }),
            ...(c.orth_reg_weight === undefined ? {} : { orthWeight: c.orth_reg_weight }),
            orthNorm: ctx.metadata["safl.orth_norm"] ?? "frobenius",
          },
          where,
        ),
      ),
    };
    const rankPattern = new Map<string, readonly boolean[]>();
    for (const [key, bits] of Object.entries(c.rank_pattern ?? {})) {
      if (!Array.isArray(bits) || !bits.every((b) => typeof b === "boolean")) {
        throw new SaflError(ErrorCode.InvalidArgument, `${where}: rank_pattern["${key}"] must be a list of booleans, got ${JSON.stringify(bits).slice(0, 60)}`);
      }
      if (bits.length !== spec.initRank) {
        throw new SaflError(ErrorCode.InvalidArgument, `${where}: rank_pattern["${key}"] has ${bits.length} entries, expected init_r = ${spec.initRank}`);
      }
      rankPattern.set(patternModule(key), bits);
    }
    return {
      spec,
      apply(tensors: PeftTensorSource, adapter: Adapter, store: ParamStore): readonly string[] {
        const used: string[] = [];
        for (const m of adapter.modules()) {
          const bits = rankPattern.get(m.name) ?? Array.from({ length: m.rank }, () => true);
          const mask = Uint8Array.from(bits, (b) => (b ? 1 : 0));
          const k = activeCount(mask);
          const pm = {
            name: m.name,
            inFeatures: m.inFeatures,
            outFeatures: m.outFeatures,
            initRank: m.rank,
            mask,
            q: tensors.take(svdQ(m.name), [k, m.inFeatures]),
            e: tensors.take(svdE(m.name), [k, 1]),
            p: tensors.take(svdP(m.name), [m.outFeatures, k]),
          };
          // Triplets outside the pattern were pruned: zero them so nothing stale survives the load.
          for (const n of [svdP(m.name), svdE(m.name), svdQ(m.name), svdMask(m.name)]) store.get(n).fill(0);
          unpackModule(pm, store);
          used.push(svdQ(m.name), svdE(m.name), svdP(m.name));
        }
        return used;
      },
    };
  },
};
