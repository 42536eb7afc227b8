/**
 * @module peft/lora/kind
 * LoRA's registry entry: its config schema, default learning rate and factory. Every trained factor
 * travels dense in a federated round, and LoRA has no per-step hooks.
 */
import type { AdapterKindEntry } from "../kind.js";
import { densePayload, factorParamCount } from "../kind.js";
import { type LoraConfig, loraConfigSchema, resolveLoraConfig } from "./config.js";
import { loraFromConfig } from "./layer.js";
import { loraPeftFormat } from "./peft-format.js";

export const loraKind: AdapterKindEntry<"lora", LoraConfig> = {
  kind: "lora",
  summary: "LoRA (Hu et al., 2021): ΔW = B·A·alpha/r, A and B trained",
  schema: loraConfigSchema,
  resolve: resolveLoraConfig,
  defaultLr: 0.003,
  create: (spec) => loraFromConfig(spec),
  payload: densePayload,
  peft: loraPeftFormat,
  savedParamCount: factorParamCount,
};
