/**
 * @module fl/strategy
 * A federated strategy is a set of round hooks (Flower's shape): configure the training round for
 * the sampled clients, aggregate their validated replies, configure and aggregate client-side
 * evaluation, and expose the global model for server-side evaluation. One driver (fl/driver) owns
 * the loop; strategies only decide what to send and how to combine what comes back, so the same
 * code runs over an in-memory grid or a network.
 */
import { argError } from "../errors.js";
import type { ParamStore } from "../nn/params.js";
import type { ReplyExpectation } from "./aggregate.js";
import type { Instruction } from "./instruction.js";
import { instructionConfig } from "./instruction.js";
import type { BudgetPhase, RoundFailure, Stage } from "./records.js";
import type { WireMessage, WirePackedModule, WireTensor } from "./wire.js";

/** A strategy's state: float32 tensors by name plus JSON-safe facts (numbers round-trip exactly through JSON). */
export interface StrategySnapshot {
  readonly tensors: ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>;
  readonly meta: Readonly<Record<string, unknown>>;
}

/** A snapshot of a ParamStore's entries (copies: the store keeps changing). */
export function storeSnapshot(store: ParamStore, meta: Record<string, unknown> = {}): StrategySnapshot {
  return { tensors: new Map(store.names().map((n) => [n, { shape: store.shape(n), data: store.get(n).slice() }])), meta };
}

/** Writes a snapshot's tensors back into a store that has exactly those entries, checking every name and shape. */
export function restoreStore(store: ParamStore, snap: StrategySnapshot, what: string): void {
  const names = store.names();
  if (names.length !== snap.tensors.size) throw argError(`${what}: the snapshot has ${snap.tensors.size} tensors, the strategy has ${names.length}`);
  for (const n of names) {
    const t = snap.tensors.get(n);
    if (!t) throw argError(`${what}: the snapshot lacks "${n}"`);
    const shape = store.shape(n);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw argError(`${what}: "${n}" has shape [${t.shape.join(",")}] in the snapshot, [${shape.join(",")}] here`);
    store.set(n, shape, t.data.slice());
  }
}

/** How clients train locally (the same for every strategy of a comparison). */
export interface LocalTraining {
  readonly optimizer: "adamw" | "sgd";
  readonly lr: number;
  /** The head's own rate (adapter rounds); absent: the head learns at `lr`. */
  readonly headLr?: number;
  readonly weightDecay: number;
  readonly localEpochs: number;
  /** 0: use localEpochs. */
  readonly localSteps: number;
  readonly batch: number;
}

/** What a round is, for the log (stage, budget, ranks). */
export interface RoundInfo {
  readonly stage: Stage;
  readonly phase?: BudgetPhase;
  readonly budget?: number;
  readonly ranks?: Readonly<Record<string, number>>;
}

export interface TrainPlan {
  /** One message per sampled client, in the order of the `clients` argument. */
  readonly messages: readonly WireMessage[];
  /** What every reply of the round must carry. */
  readonly expectation: ReplyExpectation;
  readonly info: RoundInfo;
}

/** A reply that passed validation. */
export interface AcceptedReply {
  readonly clientId: string;
  readonly message: WireMessage;
}

export interface Strategy {
  readonly name: string;
  configureTrain(round: number, clients: readonly string[]): TrainPlan;
  /** Combines the accepted replies into the new global state (called only when at least one was accepted). */
  aggregateTrain(round: number, replies: readonly AcceptedReply[]): void;
  /** Messages asking `clients` to evaluate the current global model on their local data. */
  configureEvaluate(round: number, clients: readonly string[]): readonly WireMessage[];
  /** The global model as plain ViT weights (adapters merged), for server-side evaluation. */
  globalModel(): ParamStore;
  /** Strategy-specific facts for summary.json (final ranks, base downloads, ...). */
  summary(): Record<string, unknown>;
  /**
   * Told which clients of a round failed and why (before aggregation). Strategies that keep
   * per-client knowledge act on it: a client that reports a missing base is sent it again.
   */
  clientsFailed?(round: number, failures: readonly RoundFailure[]): void;
  /**
   * Everything the strategy has learned so far (global tensors, masks, scores, who holds which
   * base), so a server that crashed can continue the run exactly: a strategy built from the same
   * config and given this snapshot behaves as the one that took it.
   */
  snapshot(): StrategySnapshot;
  restore(snapshot: StrategySnapshot): void;
}

/** A deterministic per-client, per-round seed (FNV-1a over the run seed, round and client id). */
export function clientSeed(runSeed: number, round: number, clientId: string): number {
  let h = 0x811c9dc5;
  const text = `${runSeed}/${round}/${clientId}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A broadcast carrying an instruction and the global values a client needs. */
export function broadcast(
  round: number,
  clientId: string,
  instr: Instruction,
  tensors: readonly WireTensor[],
  packed: readonly WirePackedModule[] = [],
): WireMessage {
  return { kind: "broadcast", round, clientId, config: instructionConfig(instr), tensors, packed, scores: [] };
}

/** Reads tensors out of a store as wire tensors (no copy). */
export function storeTensors(store: ParamStore, names: readonly string[]): WireTensor[] {
  return names.map((name) => ({ name, shape: store.shape(name), data: store.get(name) }));
}

/** The shapes of `names` in a store, as a validation map. */
export function shapesOf(store: ParamStore, names: readonly string[]): Map<string, readonly number[]> {
  return new Map(names.map((n) => [n, store.shape(n)]));
}
