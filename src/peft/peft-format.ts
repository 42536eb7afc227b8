/**
 * @module peft/peft-format
 * How an adapter kind is written to and read from HuggingFace PEFT's adapter directory
 * (`adapter_config.json` + `adapter_model.safetensors`). The files themselves, the fields every
 * kind shares (`peft_type`, `target_modules`, `modules_to_save`, ...) and the classification head
 * are the io layer's (io/peft-adapter); what is specific to a kind — its config fields, its tensor
 * names and shapes, how its tensors go into a parameter store — is a `PeftFormat`, kept in the
 * kind's own folder (`lora/peft-format.ts`, `adalora/peft-format.ts`) and referenced by the kind's
 * registry entry (peft/registry: `peftFormat`, `peftKind`). No platform code here: tensors come in
 * and go out as Float32Arrays.
 */
import type { ParamStore } from "../nn/params.js";
import type { Adapter, AdapterKind } from "./adapter.js";
import type { AdapterSpec } from "./registry.js";

/** One tensor of adapter_model.safetensors, keyed without PEFT's `base_model.model.` prefix. */
export interface PeftTensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

export interface PeftExportOptions {
  /** Training steps of the run (AdaLoRA's total_step, which PEFT requires to be positive). */
  readonly totalSteps?: number;
}

/** What a kind contributes to an adapter directory. */
export interface PeftExport {
  /**
   * This kind's adapter_config.json fields (rank, alpha, patterns, ...). The io layer adds
   * `peft_type` (from the format), `target_modules`, `modules_to_save` and the shared fields.
   */
  readonly config: Readonly<Record<string, unknown>>;
  /** The adapter's tensors (the head is the io layer's). */
  readonly tensors: ReadonlyMap<string, PeftTensor>;
  /** `safl.*` metadata for what PEFT has no field for (`safl.kind` is added by the io layer). */
  readonly metadata: Readonly<Record<string, string>>;
}

/** The tensors of a loaded adapter_model.safetensors (keys without the prefix), as the io layer hands them over. */
export interface PeftTensorSource {
  /** The tensor as float32 after checking its shape; throws naming the key and both shapes, or that it is missing. */
  take(key: string, shape: readonly number[]): Float32Array;
}

/** What the io layer read before handing a config to a format. */
export interface PeftImportContext {
  /** The kind the file holds: from `peft_type`, refined by the `safl.kind` metadata (see `peftKind`). */
  readonly kind: AdapterKind;
  /** adapter_config.json's path, for messages. */
  readonly where: string;
  /** The safetensors `__metadata__`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** PEFT's modules_to_save ([] for null): modules saved whole, never adapted. */
  readonly modulesToSave: readonly string[];
  /** Shape of every tensor in adapter_model.safetensors, keyed without the prefix. */
  readonly tensorShapes: ReadonlyMap<string, readonly number[]>;
}

/** A file's adapter after its config was validated. */
export interface PeftImport {
  /** The spec to build the model with (createAdapter / buildAdaptedVit). */
  readonly spec: AdapterSpec;
  /**
   * Copies the adapter's tensors into `store`, built for `adapter` (an adapter of `spec`), checking
   * every shape. Returns the keys it consumed; the io layer rejects tensors nobody consumed.
   */
  apply(tensors: PeftTensorSource, adapter: Adapter, store: ParamStore): readonly string[];
}

/** The PEFT conversion of one adapter kind (or of kinds sharing a layout, like LoRA and FFA-LoRA). */
export interface PeftFormat {
  /** PEFT's `peft_type` for this layout. */
  readonly peftType: string;
  /** Config fields, tensors and metadata for an adapter of `spec` trained into `store`. */
  toPeft(spec: AdapterSpec, adapter: Adapter, store: ParamStore, opts: PeftExportOptions): PeftExport;
  /**
   * Validates this kind's fields of a parsed adapter_config.json (every field PEFT writes may be
   * present; unknown ones are tolerated, known unsupported ones with non-default values refused
   * with one error naming them) and says how to load the tensors.
   */
  fromPeft(config: Readonly<Record<string, unknown>>, ctx: PeftImportContext): PeftImport;
}
