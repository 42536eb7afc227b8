/**
 * @module io/peft-adapter
 * Adapters on disk in the HuggingFace PEFT layout, so an adapter trained here loads in Python PEFT
 * and the other way round:
 *
 * - `adapter_config.json`: `peft_type` "LORA" (LoRA and FFA-LoRA) or "ADALORA", with `r`,
 *   `lora_alpha`, `target_modules`, `modules_to_save: ["classifier"]`, and for the SVD form `init_r`,
 *   `target_r`, `beta1`, `beta2`, `orth_reg_weight`, `total_step` and `rank_pattern`
 *   (`"<module>.lora_E"` → one boolean per initial triplet, as PEFT stores it);
 * - `adapter_model.safetensors`: `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` for
 *   LoRA; `base_model.model.<module>.lora_A` [k, in], `.lora_E` [k, 1], `.lora_B` [out, k] for the SVD
 *   form, sliced to the k kept triplets (what PEFT's `resize_state_dict_by_rank_pattern` saves); the
 *   head as `base_model.model.classifier.{weight,bias}` (PEFT's modules_to_save keys after saving).
 *
 * What PEFT has no field for (FFA-LoRA, the orthogonality norm, the task's original class ids) goes
 * into the safetensors `__metadata__` under `safl.*` keys, which PEFT ignores.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { ErrorCode, SaflError } from "../errors.js";
import type { ParamStore } from "../nn/params.js";
import type { Adapter } from "../peft/adapter.js";
import { svdE, svdMask, svdP, svdQ } from "../peft/adalora/layer.js";
import { activeCount, packModule, unpackModule } from "../peft/adalora/pack.js";
import { loraA, loraB } from "../peft/lora/layer.js";
import { type AdapterSpec, parseAdapterSpec } from "../peft/registry.js";
import { parseWith } from "../validate.js";
import { writeTextAtomic } from "./checkpoint.js";
import { type TensorEntry, fromFloat32, toFloat32 } from "./safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensors-file.js";

const PREFIX = "base_model.model.";
export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

export interface SaveAdapterOptions {
  readonly spec: AdapterSpec;
  readonly adapter: Adapter;
  /** Holds the adapter's parameters (and masks) and the head. */
  readonly store: ParamStore;
  /** Recorded as base_model_name_or_path. */
  readonly baseModel?: string;
  /** Training steps (AdaLoRA's total_step, which PEFT requires to be positive). */
  readonly totalSteps?: number;
  /** Extra `safl.*` metadata (e.g. the task's class ids). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Writes adapter_config.json and adapter_model.safetensors into `dir` (each file atomically). */
export async function saveAdapter(dir: string, opts: SaveAdapterOptions): Promise<void> {
  const { spec, adapter, store } = opts;
  const tensors = new Map<string, TensorEntry>();
  const put = (key: string, data: Float32Array, shape: readonly number[]) => tensors.set(PREFIX + key, fromFloat32(data, [...shape]));
  const common = {
    base_model_name_or_path: opts.baseModel ?? null,
    task_type: null,
    inference_mode: true,
    target_modules: [...spec.targetModules],
    modules_to_save: ["classifier"],
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    init_lora_weights: true,
  };
  let config: Record<string, unknown>;
  if (spec.kind === "adalora") {
    const rankPattern: Record<string, boolean[]> = {};
    for (const m of adapter.modules()) {
      const pm = packModule(store, m);
      const k = activeCount(pm.mask);
      rankPattern[`${m.name}.lora_E`] = [...pm.mask].map((b) => b === 1);
      put(svdQ(m.name), pm.q, [k, m.inFeatures]);
      put(svdE(m.name), pm.e, [k, 1]);
      put(svdP(m.name), pm.p, [m.outFeatures, k]);
    }
    config = {
      peft_type: "ADALORA",
      ...common,
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
    };
  } else {
    for (const m of adapter.modules()) {
      put(loraA(m.name), store.get(loraA(m.name)), store.shape(loraA(m.name)));
      put(loraB(m.name), store.get(loraB(m.name)), store.shape(loraB(m.name)));
    }
    config = { peft_type: "LORA", ...common, r: spec.rank, lora_alpha: spec.alpha, rank_pattern: {}, alpha_pattern: {}, use_rslora: false, use_dora: false };
  }
  for (const n of ["classifier.weight", "classifier.bias"]) put(n, store.get(n), store.shape(n));
  const metadata: Record<string, string> = { format: "pt", "safl.kind": spec.kind, ...(opts.metadata ?? {}) };
  if (spec.kind === "adalora") metadata["safl.orth_norm"] = spec.orthNorm;
  await mkdir(dir, { recursive: true });
  await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS), tensors, metadata);
  await writeTextAtomic(join(dir, ADAPTER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
}

const peftConfigSchema = z
  .object({
    peft_type: z.enum(["LORA", "ADALORA"]),
    r: z.number().int().min(1).optional(),
    lora_alpha: z.number().positive(),
    target_modules: z.array(z.string()).min(1),
    modules_to_save: z.array(z.string()).nullish(),
    use_dora: z.boolean().optional(),
    init_r: z.number().int().min(1).optional(),
    target_r: z.number().int().min(0).optional(),
    beta1: z.number().optional(),
    beta2: z.number().optional(),
    orth_reg_weight: z.number().optional(),
    rank_pattern: z.record(z.string(), z.unknown()).nullish(),
    alpha_pattern: z.record(z.string(), z.unknown()).nullish(),
  })
  .passthrough();

export interface LoadedAdapter {
  readonly dir: string;
  readonly spec: AdapterSpec;
  /** Tensors keyed without the `base_model.model.` prefix. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  /** AdaLoRA: kept triplets per module (from rank_pattern); absent modules keep every triplet. */
  readonly rankPattern: ReadonlyMap<string, readonly boolean[]>;
  /** Number of classes of the saved head. */
  readonly numLabels: number;
}

/** Reads and validates a PEFT adapter directory. */
export async function loadAdapter(dir: string): Promise<LoadedAdapter> {
  const cfgPath = join(dir, ADAPTER_CONFIG);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(cfgPath, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file (an adapter directory holds adapter_config.json and adapter_model.safetensors)" : (e as Error).message;
    throw new SaflError(ErrorCode.Io, `cannot read ${cfgPath}: ${why}`);
  }
  if (raw && typeof raw === "object" && typeof (raw as { target_modules?: unknown }).target_modules === "string") {
    throw new SaflError(ErrorCode.Unsupported, `${cfgPath}: target_modules is a regular expression ("${(raw as { target_modules: string }).target_modules}"); only a list of module names is supported`);
  }
  const c = parseWith(peftConfigSchema, raw, cfgPath);
  if (c.use_dora) throw new SaflError(ErrorCode.Unsupported, `${cfgPath}: use_dora is true; DoRA adapters are not supported`);
  const file = await readSafetensorsFile(join(dir, ADAPTER_WEIGHTS));
  const metadata = file.metadata ?? {};
  const tensors = new Map<string, TensorEntry>();
  for (const [k, v] of file.tensors) tensors.set(k.startsWith(PREFIX) ? k.slice(PREFIX.length) : k, v);
  const kind = metadata["safl.kind"];
  let spec: AdapterSpec;
  const rankPattern = new Map<string, readonly boolean[]>();
  if (c.peft_type === "LORA") {
    for (const field of ["rank_pattern", "alpha_pattern"] as const) {
      const v = c[field];
      if (v && Object.keys(v).length > 0) throw new SaflError(ErrorCode.Unsupported, `${cfgPath}: ${field} is set (${JSON.stringify(v).slice(0, 60)}); per-module LoRA ranks are not supported`);
    }
    if (c.r === undefined) throw new SaflError(ErrorCode.InvalidArgument, `${cfgPath}: r is missing (a LORA config needs the rank)`);
    spec = parseAdapterSpec({ kind: kind === "ffa-lora" ? "ffa-lora" : "lora", rank: c.r, alpha: c.lora_alpha, targetModules: c.target_modules }, cfgPath);
  } else {
    const orthNorm = metadata["safl.orth_norm"] ?? "frobenius";
    const svd = parseAdapterSpec(
      {
        kind: "adalora",
        initRank: c.init_r ?? 12,
        targetRank: c.target_r ?? 8,
        alpha: c.lora_alpha,
        targetModules: c.target_modules,
        ...(c.beta1 === undefined ? {} : { beta1: c.beta1 }),
        ...(c.beta2 === undefined ? {} : { beta2: c.beta2 }),
        ...(c.orth_reg_weight === undefined ? {} : { orthWeight: c.orth_reg_weight }),
        orthNorm,
      },
      cfgPath,
    );
    if (svd.kind !== "adalora") throw new Error("unreachable: an ADALORA config parsed to another kind");
    spec = svd;
    for (const [key, bits] of Object.entries(c.rank_pattern ?? {})) {
      if (!Array.isArray(bits) || !bits.every((b) => typeof b === "boolean")) {
        throw new SaflError(ErrorCode.InvalidArgument, `${cfgPath}: rank_pattern["${key}"] must be a list of booleans, got ${JSON.stringify(bits).slice(0, 60)}`);
      }
      if (bits.length !== svd.initRank) {
        throw new SaflError(ErrorCode.InvalidArgument, `${cfgPath}: rank_pattern["${key}"] has ${bits.length} entries, expected init_r = ${svd.initRank}`);
      }
      rankPattern.set(key.replace(/\.lora_E$/, ""), bits);
    }
  }
  const head = tensors.get("classifier.weight");
  if (!head || head.shape.length !== 2) {
    throw new SaflError(ErrorCode.Checkpoint, `${join(dir, ADAPTER_WEIGHTS)} has no 2-D ${PREFIX}classifier.weight (the task head saved with the adapter)`);
  }
  return { dir, spec, tensors, metadata, rankPattern, numLabels: head.shape[0]! };
}

/**
 * Copies a loaded adapter's tensors (and head) into a store built for the adapted model, checking every
 * shape; SVD-form tensors are unpacked into the full initial rank with the saved rank pattern as mask.
 */
export function applyAdapter(loaded: LoadedAdapter, adapter: Adapter, store: ParamStore): void {
  const where = join(loaded.dir, ADAPTER_WEIGHTS);
  const take = (key: string, shape: readonly number[]): Float32Array => {
    const t = loaded.tensors.get(key);
    if (!t) throw new SaflError(ErrorCode.Checkpoint, `${where} is missing ${PREFIX}${key} (expected shape [${shape.join(",")}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new SaflError(ErrorCode.Checkpoint, `${where}: ${PREFIX}${key} has shape [${t.shape.join(",")}], the model expects [${shape.join(",")}]`);
    }
    return toFloat32(t, key);
  };
  const used = new Set<string>(["classifier.weight", "classifier.bias"]);
  for (const n of used) store.set(n, store.shape(n), take(n, store.shape(n)));
  for (const m of adapter.modules()) {
    if (adapter.kind === "adalora") {
      const bits = loaded.rankPattern.get(m.name) ?? Array.from({ length: m.rank }, () => true);
      const mask = Uint8Array.from(bits, (b) => (b ? 1 : 0));
      const k = activeCount(mask);
      const pm = {
        name: m.name,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        initRank: m.rank,
        mask,
        q: take(svdQ(m.name), [k, m.inFeatures]),
        e: take(svdE(m.name), [k, 1]),
        p: take(svdP(m.name), [m.outFeatures, k]),
      };
      // Triplets outside the pattern were pruned: zero them so nothing stale survives the load.
      for (const n of [svdP(m.name), svdE(m.name), svdQ(m.name)]) store.get(n).fill(0);
      store.get(svdMask(m.name)).fill(0);
      unpackModule(pm, store);
      for (const n of [svdQ(m.name), svdE(m.name), svdP(m.name)]) used.add(n);
    } else {
      for (const n of [loraA(m.name), loraB(m.name)]) {
        store.set(n, store.shape(n), take(n, store.shape(n)));
        used.add(n);
      }
    }
  }
  const extra = [...loaded.tensors.keys()].filter((k) => !used.has(k));
  if (extra.length > 0) {
    throw new SaflError(
      ErrorCode.Checkpoint,
      `${where} has tensors for modules this model's adapter does not have: ${extra.slice(0, 5).map((k) => PREFIX + k).join(", ")}${extra.length > 5 ? ", ..." : ""} (target_modules ${JSON.stringify(loaded.spec.targetModules)})`,
    );
  }
}
