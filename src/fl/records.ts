/**
 * @module fl/records
 * The typed records the federated core passes around and writes out: what the driver logs per round
 * (one line of metrics.jsonl), the communication tally, and the run summary. Field names are the
 * JSONL keys, so the plots, the summary table and the study report read the same shapes the driver
 * writes.
 */
import type { FailureCode } from "./failure.js";

/** Which stage of the run a round belongs to. */
export type Stage = "train" | "initiating" | "annealing";

/** Budget phase of an annealing round (see peft/adalora/schedule). */
export type BudgetPhase = "heating" | "annealing" | "cooling";

/** Parameters and encoded bytes that crossed the network in one direction. */
export interface Traffic {
  /** Float parameters (tensor elements plus k·(out+in+1) per packed module); masks and scores excluded. */
  readonly params: number;
  /** Encoded message bytes, exactly as serialized. */
  readonly bytes: number;
}

/** One round's line of metrics.jsonl. */
/** One failed or refused client of a round. */
export interface RoundFailure {
  readonly clientId: string;
  readonly code: FailureCode;
  readonly reason: string;
}

export interface RoundRecord {
  readonly round: number;
  readonly stage: Stage;
  /** Budget phase (annealing stage of the SVD-form strategies only). */
  readonly phase?: BudgetPhase;
  /** Active triplets over all modules this round (SVD-form strategies only). */
  readonly budget?: number;
  /** Active triplets per adapted module this round (SVD-form strategies only). */
  readonly ranks?: Readonly<Record<string, number>>;
  /** Clients asked to train this round. */
  readonly sampled: number;
  /** Replies that passed validation and were aggregated. */
  readonly accepted: number;
  /** Client failures and rejected replies, with their code and the reason. */
  readonly failures: readonly RoundFailure[];
  /** Who took part: the sampled clients and those whose replies were aggregated (the same in simulation and deployment). */
  readonly clients: { readonly sampled: readonly string[]; readonly accepted: readonly string[] };
  /** Earlier tries of this round that got too few replies (deployment only; their traffic is in down/up). */
  readonly retriedAttempts?: readonly { readonly attempt: number; readonly sampled: readonly string[]; readonly failures: readonly RoundFailure[] }[];
  /** Server-side test accuracy (0..1) and mean loss of the global model; absent on rounds not evaluated. */
  readonly testAccuracy?: number;
  readonly testLoss?: number;
  /** Sample-weighted mean local training loss of the accepted replies. */
  readonly trainLoss?: number;
  /** Sample-weighted client-side evaluation on local test shards, when enabled this round. */
  readonly clientAccuracy?: number;
  readonly clientLoss?: number;
  /** Traffic this round (server → clients, clients → server), training messages only. */
  readonly down: Traffic;
  readonly up: Traffic;
  /** Traffic of client-side evaluation this round (zero when it did not run). */
  readonly evalTraffic: Traffic;
  /** Cumulative training traffic through this round. */
  readonly cumulativeDown: Traffic;
  readonly cumulativeUp: Traffic;
  /** What FedAvg (full model both ways per sampled client) would have sent through this round. */
  readonly fedavgCumulative: Traffic;
  /** Wall-clock seconds of the round and how it splits (timing fields: excluded from determinism checks). */
  readonly seconds: number;
  readonly timing: RoundTiming;
}

/** Where a round's wall-clock time went, in seconds. */
export interface RoundTiming {
  /** Local training inside the clients (the grid's handler time, minus encode/decode done there). */
  readonly clientTrain: number;
  /** Server-side evaluation of the global model. */
  readonly evaluate: number;
  /** Encoding broadcasts and decoding replies on the server, plus the clients' decode/encode. */
  readonly codec: number;
  /** Validation and aggregation of replies, mask allocation. */
  readonly aggregate: number;
  /** Everything else: sampling, configuring, bookkeeping. */
  readonly other: number;
}

/** The keys of RoundRecord that depend on the clock (dropped when comparing runs for determinism). */
export const TIMING_FIELDS = ["seconds", "timing"] as const;

/** What a run ends with (summary.json). */
export interface RunSummary {
  readonly strategy: string;
  readonly rounds: number;
  readonly finalAccuracy: number | undefined;
  readonly bestAccuracy: number | undefined;
  readonly bestRound: number | undefined;
  readonly totalDown: Traffic;
  readonly totalUp: Traffic;
  /** Total (up + down) training traffic. */
  readonly total: Traffic;
  /** FedAvg's traffic on the same schedule (same rounds, same sampled clients). */
  readonly fedavgTotal: Traffic;
  /** 1 − total/fedavgTotal, for parameters and for bytes. */
  readonly reduction: { readonly params: number; readonly bytes: number };
  /** Parameters of the full model (backbone + head), the unit of FedAvg's messages. */
  readonly modelParams: number;
  readonly seconds: number;
  /** Strategy-specific extras (final ranks, base downloads, ...). */
  readonly details: Readonly<Record<string, unknown>>;
}

export const addTraffic = (a: Traffic, b: Traffic): Traffic => ({ params: a.params + b.params, bytes: a.bytes + b.bytes });
export const NO_TRAFFIC: Traffic = { params: 0, bytes: 0 };
