/**
 * @module peft/registry
 * The adapter kinds by name: one entry per kind (peft/kind.ts says what an entry owns), and the
 * functions that turn a user's `{ kind: "adalora", initRank: 12, ... }` into a validated spec and an
 * `Adapter`, so CLI flags, run configs, round instructions and imported PEFT files all go through
 * the same validation. Adding a kind: a folder under peft/ with its layer, config and `kind.ts`,
 * then its entry in `ADAPTER_KIND_ENTRIES` (the kind names, `AdapterKind` and `AdapterSpec` follow
 * from that list).
 */
import { z } from "zod";
import { argError } from "../errors.js";
import { parseWith } from "../validate.js";
import { adaloraKind } from "./adalora/kind.js";
import type { Adapter, AdapterKind } from "./adapter.js";
import { ffaLoraKind } from "./ffa-lora/kind.js";
import { type AdapterKindEntry, withFieldDefaults } from "./kind.js";
import type { PeftFormat } from "./peft-format.js";
import { loraKind } from "./lora/kind.js";

/** Every adapter kind, in the order help texts list them. */
export const ADAPTER_KIND_ENTRIES = [loraKind, ffaLoraKind, adaloraKind] as const;

export const ADAPTER_KINDS = ADAPTER_KIND_ENTRIES.map((e) => e.kind) as readonly AdapterKind[];

/** The kind names of the registered entries. */
export type RegisteredKind = (typeof ADAPTER_KIND_ENTRIES)[number]["kind"];

type SpecOf<E> = E extends AdapterKindEntry<infer K, infer S> ? { readonly kind: K } & S : never;

/** A validated adapter spec: the kind plus its resolved config (a union over the entries). */
export type AdapterSpec = SpecOf<(typeof ADAPTER_KIND_ENTRIES)[number]>;

const byKind = new Map<string, AdapterKindEntry>(ADAPTER_KIND_ENTRIES.map((e) => [e.kind, e as AdapterKindEntry]));

/** The registry entry of a kind; an unknown kind is a user error naming the known ones. */
export function adapterKind(kind: string): AdapterKindEntry {
  const e = byKind.get(kind);
  if (!e) throw argError(`unknown adapter kind "${kind}"; expected one of ${ADAPTER_KINDS.join(", ")}`);
  return e;
}

/** `{ kind, ...fields }` for every kind, discriminated by `kind` (so zod reports the right kind's issues). */
export const adapterSpecSchema = z.discriminatedUnion(
  "kind",
  ADAPTER_KIND_ENTRIES.map((e) => (e.schema as z.ZodObject).safeExtend({ kind: z.literal(e.kind) })) as unknown as [z.ZodObject, ...z.ZodObject[]],
);

export type AdapterSpecInput = { readonly kind: AdapterKind } & Record<string, unknown>;

/** Validates an adapter spec (every problem at once) and fills in defaults. */
export function parseAdapterSpec(raw: unknown, what = "adapter config"): AdapterSpec {
  const p = parseWith(adapterSpecSchema, raw, what) as { kind: AdapterKind };
  return resolveAdapterSpec(p.kind, p);
}

/** A spec from an already validated config object of `kind` (defaults that depend on other fields filled in). */
export function resolveAdapterSpec(kind: AdapterKind, parsed: object): AdapterSpec {
  return { kind, ...(adapterKind(kind).resolve(parsed as never) as object) } as AdapterSpec;
}

/**
 * The adapter config schema a federated strategy uses for `kind`: the kind's own schema (passed in,
 * so the caller keeps its static type) with the kind's federated defaults in place of the
 * centralized ones. A kind without federated defaults gets its schema back unchanged.
 */
export function federatedAdapterSchema<S extends z.ZodObject>(kind: AdapterKind, schema: S): S {
  const entry = adapterKind(kind);
  if ((entry.schema as z.ZodObject) !== schema) throw new Error(`federatedAdapterSchema: that is not the ${kind} kind's schema`);
  return withFieldDefaults(schema, entry.federated?.defaults ?? {});
}

/** The head's rate in federated rounds of `kind` when the run config sets none (undefined: the kind's own rate). */
export function federatedHeadLr(kind: AdapterKind): number | undefined {
  return adapterKind(kind).federated?.headLr;
}

/** The PEFT format of a kind. */
export function peftFormat(kind: AdapterKind): PeftFormat {
  return adapterKind(kind).peft;
}

/** Every `peft_type` some kind reads and writes, in registry order. */
export function peftTypes(): readonly string[] {
  return [...new Set(ADAPTER_KIND_ENTRIES.map((e) => e.peft.peftType))];
}

/**
 * The kind of a file with `peftType`: `savedKind` (its `safl.kind` metadata) when that kind has this
 * peft_type, else the first registered kind that has it (a file from Python PEFT carries no
 * `safl.kind`); undefined when no kind reads it.
 */
export function peftKind(peftType: string, savedKind: string | undefined): AdapterKind | undefined {
  const kinds = ADAPTER_KIND_ENTRIES.filter((e) => e.peft.peftType === peftType).map((e) => e.kind as AdapterKind);
  return kinds.find((k) => k === savedKind) ?? kinds[0];
}

/** A fresh adapter for a validated spec (an adapter records the modules of one model build). */
export function createAdapter(spec: AdapterSpec): Adapter {
  return adapterKind(spec.kind).create(spec as never);
}
