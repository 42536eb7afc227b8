/**
 * @module peft/peft-config
 * The parts of PEFT's `LoraConfig` that LoRA and the SVD form (`AdaLoraConfig` extends it) read the
 * same way: `target_modules` (a list, or a Python regex matched against the whole module name; the
 * modules in `modules_to_save` are never adapted) and the settings we do not implement, each refused
 * with the field named when it has a non-default value. Fields PEFT adds in later releases are
 * tolerated: they are not in the list, so they are ignored.
 */
import { ErrorCode, SaflError } from "../errors.js";
import type { PeftImportContext } from "./peft-format.js";
import { PythonRegexError, pythonFullmatch, pythonRegexSource } from "./python-regex.js";
import { type Targets, isRegexTargets, targetMatcher } from "./targets.js";

/** The classification head of HF ViTForImageClassification (what `modules_to_save: ["classifier"]` keeps). */
export const HEAD_MODULE = "classifier";

/** A PEFT setting with no counterpart here: `refused(value)` is true for values we cannot honour. */
export interface RefusedField {
  readonly field: string;
  refused(value: unknown): boolean;
  /** Why, completing "<field> is <value>: ". */
  readonly why: string;
}

/** Python truthiness of a JSON value (PEFT tests most of these fields with a bare `if`). */
const truthy = (v: unknown): boolean => {
  if (v === undefined || v === null || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
};
const notNull = (v: unknown): boolean => v !== undefined && v !== null;

/** Initializations that rewrite the base weights when the adapter is created (PEFT saves the adapter relative to the rewritten base unless converted). */
const BASE_REWRITING_INITS = /^(pissa.*|olora|corda|loftq|lora_ga)$/;

/** Settings of PEFT's LoraConfig (releases 0.17 to 0.20 and main) that change what the adapter computes and that we do not implement. */
export const LORA_FAMILY_REFUSALS: readonly RefusedField[] = [
  { field: "use_dora", refused: truthy, why: "DoRA adds a learned magnitude vector per module, which is not supported" },
  {
    field: "layers_to_transform",
    refused: (v) => notNull(v) && !(Array.isArray(v) && v.length === 0),
    why: "adapting only some layer indices is not supported; list the modules in target_modules (or use a regex) instead",
  },
  { field: "layers_pattern", refused: truthy, why: "it only applies with layers_to_transform, which is not supported" },
  { field: "bias", refused: (v) => notNull(v) && v !== "none", why: 'training the base biases ("all" / "lora_only") is not supported; only "none" is' },
  { field: "fan_in_fan_out", refused: truthy, why: "transposed (Conv1D-style) weights are not supported; ViT Linear layers store [out, in]" },
  { field: "lora_bias", refused: truthy, why: "a bias on lora_B is not supported" },
  { field: "exclude_modules", refused: truthy, why: "excluding modules is not supported; narrow target_modules instead" },
  { field: "megatron_config", refused: truthy, why: "Megatron parallel layers are not supported" },
  { field: "loftq_config", refused: truthy, why: "LoftQ quantizes the base weights, which is not supported" },
  {
    field: "init_lora_weights",
    refused: (v) => typeof v === "string" && BASE_REWRITING_INITS.test(v),
    why: "this initialization rewrites the base weights, and the saved adapter only fits the rewritten base; convert it to plain LoRA with PEFT (save_pretrained(..., path_initial_model_for_weight_conversion=...)) first",
  },
  { field: "trainable_token_indices", refused: truthy, why: "trainable token embeddings do not exist in a ViT" },
  { field: "layer_replication", refused: truthy, why: "layer replication is not supported" },
  { field: "target_parameters", refused: truthy, why: "adapting bare parameters (instead of Linear modules) is not supported" },
  { field: "use_qalora", refused: truthy, why: "QALoRA (quantization-aware pooling) is not supported" },
  { field: "alora_invocation_tokens", refused: notNull, why: "activated LoRA (aLoRA) is not supported" },
  { field: "use_bdlora", refused: notNull, why: "block-diagonal LoRA is not supported" },
  { field: "velora_config", refused: notNull, why: "the VeLoRA variant is not supported" },
  { field: "monteclora_config", refused: notNull, why: "the MonteCLoRA variant is not supported" },
  { field: "kasa_config", refused: notNull, why: "the KaSA variant (an extra singular-value diagonal) is not supported" },
  { field: "arrow_config", refused: notNull, why: "Arrow routing is not supported" },
];

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/** Throws one Unsupported error listing every field of `config` that `rules` refuse. */
export function refuseUnsupported(config: Readonly<Record<string, unknown>>, rules: readonly RefusedField[], where: string): void {
  const bad = rules.filter((r) => r.field in config && r.refused(config[r.field]));
  if (bad.length === 0) return;
  const lines = bad.map((r) => `  - ${r.field} is ${show(config[r.field])}: ${r.why}`);
  throw new SaflError(ErrorCode.Unsupported, `${where} uses PEFT settings this adapter loader does not support:\n${lines.join("\n")}`);
}

/** Whether PEFT's modules_to_save covers a module (`re.match(rf"(^|.*\.){m}($|\..*)", name)`). */
export function savedWhole(name: string, modulesToSave: readonly string[]): boolean {
  return modulesToSave.some((m) => {
    let src: string;
    try {
      src = pythonRegexSource(m);
    } catch {
      src = m.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp(`^(|.*\\.)${src}($|\\..*)`).test(name);
  });
}

/**
 * PEFT's `target_modules` as a target set: a list stays a list; a string is a Python regex for
 * `re.fullmatch`, translated (constructs JavaScript lacks are refused, naming the field). PEFT never
 * adapts a module that modules_to_save lists, so when the head is saved whole and the targets would
 * also match it, it is taken out of them — unless the file has LoRA tensors for the head (safl
 * versions before this rule wrote those).
 */
export function targetsFromPeft(value: readonly string[] | string, ctx: PeftImportContext): Targets {
  let targets: Targets;
  if (typeof value === "string") {
    if (value.toLowerCase() === "all-linear") {
      throw new SaflError(
        ErrorCode.Unsupported,
        `${ctx.where}: target_modules is "all-linear", PEFT's shorthand that it expands when the model is created (a saved adapter lists the modules); list the modules instead, e.g. ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]`,
      );
    }
    try {
      pythonFullmatch(value);
    } catch (e) {
      if (!(e instanceof PythonRegexError)) throw e;
      throw new SaflError(ErrorCode.Unsupported, `${ctx.where}: target_modules is a regular expression that cannot be used here: ${e.message}`);
    }
    targets = { regex: value };
  } else {
    targets = [...value];
  }
  const headAdapted = [...ctx.tensorShapes.keys()].some((k) => k.startsWith(`${HEAD_MODULE}.lora_`));
  if (headAdapted || !savedWhole(HEAD_MODULE, ctx.modulesToSave) || !targetMatcher(targets)(HEAD_MODULE)) return targets;
  if (isRegexTargets(targets)) return { regex: `(?!${HEAD_MODULE}$)(?:${targets.regex})` };
  const kept = targets.filter((t) => t !== HEAD_MODULE);
  if (kept.length === 0) {
    throw new SaflError(ErrorCode.InvalidArgument, `${ctx.where}: target_modules ${show(value)} only names "${HEAD_MODULE}", which modules_to_save also lists; PEFT never adapts a module it saves whole, so nothing would be adapted`);
  }
  return kept;
}
