/**
 * @module io/peft-adapter
 * Adapters on disk in the HuggingFace PEFT layout, so an adapter trained here loads in Python PEFT
 * and the other way round:
 *
 * - `adapter_config.json`: `peft_type`, `target_modules` (a list, or a Python regex matched against
 *   the whole module name), `modules_to_save`, `lora_alpha`, and the kind's own fields;
 * - `adapter_model.safetensors`: the kind's tensors under `base_model.model.<module>.…`, and the
 *   modules PEFT saves whole (`modules_to_save`, normally the head) as `base_model.model.<module>.<param>`
 *   (PEFT's in-memory spelling `<module>.modules_to_save.default.<param>` is accepted too).
 *
 * This module owns the files, the fields every kind shares and the head. What differs per kind (its
 * config fields, tensor names and shapes) is the kind's `PeftFormat` (peft/peft-format: LoRA and
 * FFA-LoRA in peft/lora, the SVD form in peft/adalora). What PEFT has no field for (FFA-LoRA, the
 * orthogonality norm, the task's original class ids) goes into the safetensors `__metadata__` under
 * `safl.*` keys, which PEFT ignores.
 *
 * An adapter without a head (PEFT's `modules_to_save: null`, no classifier tensors) runs with the
 * base checkpoint's head: `numLabels` is then undefined and `adapterNumLabels` checks the class count.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { ErrorCode, SaflError } from "../errors.js";
import type { ParamStore } from "../nn/params.js";
import type { Adapter } from "../peft/adapter.js";
import { HEAD_MODULE, savedWhole } from "../peft/peft-config.js";
import type { PeftImport, PeftTensorSource } from "../peft/peft-format.js";
import { type AdapterSpec, peftFormat, peftKind, peftTypes } from "../peft/registry.js";
import { targetsToPeft } from "../peft/targets.js";
import { parseWith } from "../validate.js";
import { writeTextAtomic } from "./checkpoint.js";
import { type TensorEntry, fromFloat32, toFloat32 } from "./safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensors-file.js";

const PREFIX = "base_model.model.";
/** How PEFT names a saved-whole module's copy in memory; its saved files drop it. */
const WRAPPED = ".modules_to_save.default.";
export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";
const HEAD_PARAMS = [`${HEAD_MODULE}.weight`, `${HEAD_MODULE}.bias`];

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

/** Writes adapter_config.json and adapter_model.safetensors into `dir` (each file atomically), with the head. */
export async function saveAdapter(dir: string, opts: SaveAdapterOptions): Promise<void> {
  const { spec, adapter, store } = opts;
  const format = peftFormat(spec.kind);
  const out = format.toPeft(spec, adapter, store, { ...(opts.totalSteps === undefined ? {} : { totalSteps: opts.totalSteps }) });
  const tensors = new Map<string, TensorEntry>();
  for (const [key, t] of out.tensors) tensors.set(PREFIX + key, fromFloat32(t.data, [...t.shape]));
  for (const n of HEAD_PARAMS) tensors.set(PREFIX + n, fromFloat32(store.get(n), [...store.shape(n)]));
  const config = {
    peft_type: format.peftType,
    base_model_name_or_path: opts.baseModel ?? null,
    task_type: null,
    inference_mode: true,
    target_modules: targetsToPeft(spec.targetModules),
    modules_to_save: [HEAD_MODULE],
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    init_lora_weights: true,
    ...out.config,
  };
  const metadata: Record<string, string> = { format: "pt", "safl.kind": spec.kind, ...(opts.metadata ?? {}), ...out.metadata };
  await mkdir(dir, { recursive: true });
  await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS), tensors, metadata);
  await writeTextAtomic(join(dir, ADAPTER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
}

/** The fields every peft_type shares (the kind's format checks the rest; unknown fields are tolerated). */
const commonSchema = z
  .object({
    peft_type: z.enum(peftTypes() as [string, ...string[]]),
    r: z.number().int().min(1).optional(),
    lora_alpha: z.number().positive(),
    target_modules: z.union([z.array(z.string().min(1)).min(1), z.string().min(1)], { error: "expected a list of module names or a regular expression string" }),
    modules_to_save: z.array(z.string().min(1)).nullish(),
  })
  .passthrough();

export interface LoadedAdapter {
  readonly dir: string;
  readonly spec: AdapterSpec;
  /** Tensors keyed without the `base_model.model.` prefix (saved-whole modules in their saved spelling). */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  /** PEFT's modules_to_save ([] for null). */
  readonly modulesToSave: readonly string[];
  /**
   * Number of classes of the saved head; undefined when the adapter has none (PEFT's
   * `modules_to_save: null`): then the base checkpoint's head is used (see `adapterNumLabels`).
   */
  readonly numLabels: number | undefined;
  /** How the kind's tensors go into a store (from the kind's PeftFormat). */
  readonly peft: PeftImport;
}

/** Reads and validates a PEFT adapter directory. */
export async function loadAdapter(dir: string): Promise<LoadedAdapter> {
  const cfgPath = join(dir, ADAPTER_CONFIG);
  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(cfgPath, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file (an adapter directory holds adapter_config.json and adapter_model.safetensors)" : (e as Error).message;
    throw new SaflError(ErrorCode.Io, `cannot read ${cfgPath}: ${why}`);
  }
  const c = parseWith(commonSchema, raw, cfgPath);
  const file = await readSafetensorsFile(weightsPath);
  const metadata = file.metadata ?? {};
  const tensors = new Map<string, TensorEntry>();
  for (const [k, v] of file.tensors) {
    const key = (k.startsWith(PREFIX) ? k.slice(PREFIX.length) : k).replace(WRAPPED, ".");
    if (tensors.has(key)) throw new SaflError(ErrorCode.Checkpoint, `${weightsPath} holds ${PREFIX}${key} twice (with and without "modules_to_save.default")`);
    tensors.set(key, v);
  }
  const kind = peftKind(c.peft_type, metadata["safl.kind"]);
  if (!kind) throw new Error(`unreachable: peft_type ${c.peft_type} passed validation but no kind reads it`);
  const modulesToSave = c.modules_to_save ?? [];
  const tensorShapes = new Map([...tensors].map(([k, v]) => [k, v.shape] as const));
  const peft = peftFormat(kind).fromPeft(raw as Record<string, unknown>, { kind, where: cfgPath, metadata, modulesToSave, tensorShapes });

  const head = tensors.get(`${HEAD_MODULE}.weight`);
  if (head && head.shape.length !== 2) {
    throw new SaflError(ErrorCode.Checkpoint, `${weightsPath}: ${PREFIX}${HEAD_MODULE}.weight has shape [${head.shape.join(",")}], expected 2-D [num_labels, hidden_size]`);
  }
  if (!head && savedWhole(HEAD_MODULE, modulesToSave)) {
    throw new SaflError(
      ErrorCode.Checkpoint,
      `${weightsPath} has no ${PREFIX}${HEAD_MODULE}.weight, but ${cfgPath} lists "${HEAD_MODULE}" in modules_to_save (the task head saved with the adapter)`,
    );
  }
  return { dir, spec: peft.spec, tensors, metadata, modulesToSave, numLabels: head?.shape[0], peft };
}

/**
 * num_labels of the adapted model: the saved head's, or the base checkpoint's (`baseNumLabels`)
 * when the adapter has no head. `needed` is the class count the caller's task needs, if it has one;
 * a mismatch is an error that says where the head comes from.
 */
export function adapterNumLabels(loaded: LoadedAdapter, baseNumLabels: number, needed?: number): number {
  if (loaded.numLabels === undefined) {
    if (needed !== undefined && needed !== baseNumLabels) {
      throw new SaflError(
        ErrorCode.InvalidArgument,
        `${loaded.dir} has no classification head (modules_to_save ${loaded.modulesToSave.length === 0 ? "is null" : `is ${JSON.stringify(loaded.modulesToSave)}`} and there are no ${HEAD_MODULE} tensors), so the base checkpoint's head is used; it has ${baseNumLabels} classes, the task needs ${needed}`,
      );
    }
    return baseNumLabels;
  }
  if (needed !== undefined && needed !== loaded.numLabels) {
    throw new SaflError(ErrorCode.InvalidArgument, `${loaded.dir}: the saved head has ${loaded.numLabels} classes, the task needs ${needed}`);
  }
  return loaded.numLabels;
}

/** The module a parameter belongs to ("a.b.weight" → "a.b"). */
const moduleOf = (param: string): string => param.slice(0, Math.max(0, param.lastIndexOf(".")));

/**
 * Copies a loaded adapter's tensors into a store built for the adapted model, checking every shape:
 * the saved-whole modules (the head, when the adapter has one; otherwise the store keeps the base
 * head it was filled with), then the kind's tensors. Tensors that neither claims are an error.
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
  const used = new Set<string>();

  // Modules PEFT saved whole replace the base module (PEFT wraps every module whose name ends with an entry).
  const wrapped = (module: string) => module === HEAD_MODULE || loaded.modulesToSave.some((m) => module.endsWith(m));
  const touched = new Set<string>();
  for (const key of loaded.tensors.keys()) {
    if (adapter.isAdapterParam(key) || !store.has(key) || !wrapped(moduleOf(key))) continue;
    store.set(key, store.shape(key), take(key, store.shape(key)));
    used.add(key);
    touched.add(moduleOf(key));
  }
  for (const name of store.names()) {
    if (touched.has(moduleOf(name)) && !adapter.isAdapterParam(name) && !used.has(name)) take(name, store.shape(name)); // throws: a saved module lacks one of its parameters
  }

  const conflicts = adapter.modules().filter((m) => m.name !== HEAD_MODULE && savedWhole(m.name, loaded.modulesToSave));
  if (conflicts.length > 0) {
    throw new SaflError(
      ErrorCode.Unsupported,
      `${join(loaded.dir, ADAPTER_CONFIG)}: ${conflicts.map((m) => `"${m.name}"`).join(", ")} matches both target_modules and modules_to_save ${JSON.stringify(loaded.modulesToSave)}; PEFT saves such modules whole and does not adapt them, which is only supported for the head`,
    );
  }
  const source: PeftTensorSource = { take };
  for (const key of loaded.peft.apply(source, adapter, store)) used.add(key);

  const extra = [...loaded.tensors.keys()].filter((k) => !used.has(k));
  if (extra.length > 0) {
    throw new SaflError(
      ErrorCode.Checkpoint,
      `${where} has tensors for modules this model's adapter does not have: ${extra.slice(0, 5).map((k) => PREFIX + k).join(", ")}${extra.length > 5 ? ", ..." : ""} (target_modules ${JSON.stringify(targetsToPeft(loaded.spec.targetModules))}, modules_to_save ${JSON.stringify(loaded.modulesToSave)})`,
    );
  }
}
