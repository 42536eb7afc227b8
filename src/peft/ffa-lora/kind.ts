/**
 * @module peft/ffa-lora/kind
 * FFA-LoRA's registry entry: LoRA's schema and layout with A frozen, so only B (and the head) is
 * trained and sent; A is regenerated from the shared seed on both sides and never travels.
 */
import type { AdapterKindEntry } from "../kind.js";
import { densePayload, factorParamCount } from "../kind.js";
import { type LoraConfig, loraConfigSchema, resolveLoraConfig } from "../lora/config.js";
import { ffaLoraFromConfig } from "./layer.js";
import { loraPeftFormat } from "../lora/peft-format.js";

export const ffaLoraKind: AdapterKindEntry<"ffa-lora", LoraConfig> = {
  kind: "ffa-lora",
  summary: "FFA-LoRA (Sun et al., 2024): LoRA with A frozen at its seeded initialization, only B trained",
  schema: loraConfigSchema,
  resolve: resolveLoraConfig,
  defaultLr: 0.003,
  create: ffaLoraFromConfig,
  payload: densePayload,
  // LoRA's layout; `safl.kind` metadata marks the file as FFA-LoRA.
  peft: loraPeftFormat,
  savedParamCount: factorParamCount,
};
