/**
 * @module fl/instruction
 * What the server tells a client to do in a round, carried in a message's config section: the kind
 * of task, which parameters to train (the full model or an adapter), the local optimizer settings,
 * the proximal weight and seeds. Clients validate it like any input from the network; a bad
 * instruction becomes a failure reply, not a crash.
 *
 * A message may also carry a new frozen base (the backbone weights SA-FedLoRA's initiating stage
 * produced) as tensors named `base:<parameter>`; a client stores it under `baseVersion` and later
 * messages refer to it by version only. Version 0 is the pre-trained backbone every client starts
 * with, so it never crosses the network; a later version is version 0 with the carried tensors
 * replaced, so a base that differs only in some tensors is sent as just those.
 */
import { z } from "zod";
import { argError } from "../errors.js";
import type { AdapterKind } from "../peft/adapter.js";
import { ADAPTER_KINDS, type AdapterSpec, parseAdapterSpec } from "../peft/registry.js";
import { parseWith } from "../validate.js";

/** Which parameters a client trains: every weight, or an adapter of a registered kind (plus the head, always). */
export type TrainMode = "full" | AdapterKind;
export const TRAIN_MODES: readonly TrainMode[] = ["full", ...ADAPTER_KINDS];

export const instructionSchema = z
  .object({
    task: z.enum(["train", "evaluate"]),
    mode: z.enum(TRAIN_MODES as [TrainMode, ...TrainMode[]]),
    /** The adapter spec as JSON (adapter modes only). */
    adapter: z.string().optional(),
    optimizer: z.enum(["adamw", "sgd"]),
    lr: z.number().nonnegative(),
    /** The classification head's rate, when it differs from `lr` (absent: the head learns at `lr`). */
    headLr: z.number().nonnegative().optional(),
    weightDecay: z.number().nonnegative(),
    /** Local epochs over the client's data; ignored when localSteps > 0. */
    localEpochs: z.number().int().nonnegative(),
    /** Local optimizer steps; 0 means "use localEpochs". */
    localSteps: z.number().int().nonnegative(),
    batch: z.number().int().positive(),
    /** Proximal weight μ of μ/2·‖w − w_global‖² on the trained parameters (0: none). */
    mu: z.number().nonnegative(),
    /** Seed of this client's data order in this round. */
    seed: z.number().int().nonnegative(),
    /** Seed of the adapter's initial values (FFA-LoRA's frozen A is regenerated from it, never sent). */
    initSeed: z.number().int().nonnegative(),
    /** Which frozen base to train on top of (0: the pre-trained backbone). */
    baseVersion: z.number().int().nonnegative(),
  })
  .strict();

export type InstructionFields = z.output<typeof instructionSchema>;

export interface Instruction extends Omit<InstructionFields, "adapter"> {
  readonly adapterSpec: AdapterSpec | undefined;
}

/** The config record of a message (flat key/values, as the wire format carries them). */
export function instructionConfig(i: Instruction): Record<string, number | string | boolean> {
  const { adapterSpec, ...rest } = i;
  return { ...rest, ...(adapterSpec ? { adapter: JSON.stringify(adapterSpec) } : {}) };
}

/** Parses and checks an instruction received from the server. */
export function parseInstruction(config: Readonly<Record<string, unknown>> | undefined): Instruction {
  const f = parseWith(instructionSchema, config ?? {}, "round instruction");
  const { adapter, ...rest } = f;
  if (f.mode === "full") {
    if (adapter !== undefined) throw argError('round instruction: mode "full" takes no adapter');
    return { ...rest, adapterSpec: undefined };
  }
  if (adapter === undefined) throw argError(`round instruction: mode "${f.mode}" needs an adapter spec`);
  let raw: unknown;
  try {
    raw = JSON.parse(adapter);
  } catch {
    throw argError(`round instruction: adapter is not valid JSON: ${adapter.slice(0, 80)}`);
  }
  const spec = parseAdapterSpec(raw, "round instruction adapter");
  if (spec.kind !== f.mode) throw argError(`round instruction: mode "${f.mode}" with an adapter of kind "${spec.kind}"`);
  return { ...rest, adapterSpec: spec };
}

const BASE_PREFIX = "base:";
export const baseTensorName = (param: string): string => `${BASE_PREFIX}${param}`;
export const isBaseTensor = (name: string): boolean => name.startsWith(BASE_PREFIX);
export const paramOfBaseTensor = (name: string): string => name.slice(BASE_PREFIX.length);
