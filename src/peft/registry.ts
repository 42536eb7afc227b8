/**
 * @module peft/registry
 * The adapter methods by name, each with its config schema: one place that turns a user's
 * `{ kind: "adalora", initRank: 12, ... }` into an `Adapter`, so CLI flags, run configs and imported
 * PEFT files all go through the same validation.
 */
import { z } from "zod";
import { parseWith } from "../validate.js";
import type { Adapter, AdapterKind } from "./adapter.js";
import { type AdaloraConfig, adaloraConfigSchema, resolveAdaloraConfig } from "./adalora/config.js";
import { adaloraAdapter } from "./adalora/layer.js";
import { ffaLoraFromConfig } from "./ffa-lora/layer.js";
import { type LoraConfig, loraConfigSchema, resolveLoraConfig } from "./lora/config.js";
import { loraFromConfig } from "./lora/layer.js";

export const ADAPTER_KINDS = ["lora", "ffa-lora", "adalora"] as const satisfies readonly AdapterKind[];

export const adapterSpecSchema = z.discriminatedUnion("kind", [
  loraConfigSchema.extend({ kind: z.literal("lora") }),
  loraConfigSchema.extend({ kind: z.literal("ffa-lora") }),
  adaloraConfigSchema.safeExtend({ kind: z.literal("adalora") }),
]);

export type AdapterSpecInput = z.input<typeof adapterSpecSchema>;
export type AdapterSpec =
  | ({ readonly kind: "lora" | "ffa-lora" } & LoraConfig)
  | ({ readonly kind: "adalora" } & AdaloraConfig);

/** Validates an adapter spec (every problem at once) and fills in defaults. */
export function parseAdapterSpec(raw: unknown, what = "adapter config"): AdapterSpec {
  const p = parseWith(adapterSpecSchema, raw, what);
  if (p.kind === "adalora") return { kind: "adalora", ...resolveAdaloraConfig(p) };
  return { kind: p.kind, ...resolveLoraConfig(p) };
}

/** A fresh adapter for a validated spec (an adapter records the modules of one model build). */
export function createAdapter(spec: AdapterSpec): Adapter {
  switch (spec.kind) {
    case "lora":
      return loraFromConfig(spec);
    case "ffa-lora":
      return ffaLoraFromConfig(spec);
    case "adalora":
      return adaloraAdapter(spec);
  }
}
