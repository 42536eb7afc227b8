/**
 * @module fl/driver
 * The one loop every strategy runs under. Per round: sample clients (seeded), ask the strategy for
 * the round's messages, encode them, send them through the grid, decode and validate every reply
 * (a malformed, stale or failed reply is logged as a failure and left out), let the strategy
 * aggregate the accepted ones, evaluate the global model on the server, and log a RoundRecord with
 * the exact traffic — counted from the encoded bytes — next to what FedAvg would have sent for the
 * same sampled clients.
 */
import { argError, ErrorCode, SaflError } from "../errors.js";
import type { ParamStore } from "../nn/params.js";
import { Rng, type RngState } from "../util/rng.js";
import { type ReplyVerdict, validateReply } from "./aggregate.js";
import type { Grid, GridReply, SendOptions } from "./grid.js";
import { type Instruction, instructionConfig } from "./instruction.js";
import { addTraffic, NO_TRAFFIC, type RoundFailure, type RoundRecord, type RoundTiming, type Traffic } from "./records.js";
import { type AcceptedReply, type LocalTraining, type Strategy, clientSeed, type TrainPlan } from "./strategy.js";
import { decodeMessage, encodedBreakdown, encodeMessage, messageParamCount, type PayloadDType, type WireMessage } from "./wire.js";

export interface EvalResult {
  readonly accuracy: number;
  readonly loss: number;
}

export interface DriverOptions {
  readonly rounds: number;
  /** Clients sampled per round (all of them when it exceeds the grid's size). */
  readonly clientsPerRound: number;
  /** The run seed: client sampling, and the per-client seeds of FedAvg's reference messages. */
  readonly seed: number;
  readonly dtype: PayloadDType;
  /** Server-side evaluation of the global model (plain ViT weights). */
  readonly evaluate?: (weights: ParamStore) => Promise<EvalResult>;
  /** Evaluate on the server every n rounds (and always after the last); 0 = only after the last. */
  readonly evalEvery: number;
  /** Ask the round's clients to evaluate on their local data every n rounds; 0 = never. */
  readonly clientEvalEvery: number;
  /** Local training settings, for FedAvg's reference messages. */
  readonly training: LocalTraining;
  /** Called with each round's record as soon as it is complete. */
  readonly onRound?: (record: RoundRecord) => void;
  /** Called when a round starts (for progress display). */
  readonly onRoundStart?: (round: number) => void;
  /** Seconds a round's training (and again its client evaluation) may take; replies after that are deadline-exceeded failures. None: no deadline. */
  readonly roundTimeoutSeconds?: number;
  /** Stops the run: the exchange in flight ends, and runRounds returns the records so far. */
  readonly signal?: AbortSignal;
  /**
   * Replies a round needs, given how many clients were sampled (deployment: a share of them). With
   * fewer, the round is tried again with a fresh sample, up to `maxAttempts` tries, then the run
   * stops with an error. Without it (simulation), a round aggregates whatever was accepted.
   */
  readonly minReplies?: (sampled: number) => number;
  readonly maxAttempts?: number;
  /** Continue a run after round `resume.round` (with the strategy restored to its snapshot of that round). */
  readonly resume?: DriverCheckpoint;
  /**
   * Awaited after each round, before the next starts, with the record and the driver's state at that
   * boundary: where a server commits its state, so a crash loses at most the open round.
   */
  readonly onRoundEnd?: (record: RoundRecord, checkpoint: DriverCheckpoint) => Promise<void>;
}

/** The driver's own state between rounds: the last finished round, the sampling RNG and the running totals. */
export interface DriverCheckpoint {
  readonly round: number;
  readonly rng: RngState;
  readonly cumulativeDown: Traffic;
  readonly cumulativeUp: Traffic;
  readonly fedavgCumulative: Traffic;
}

const now = (): number => globalThis.performance.now() / 1000;

/** `m` distinct clients drawn uniformly (partial Fisher–Yates), returned in the grid's order. */
export function sampleClients(rng: Rng, ids: readonly string[], m: number): string[] {
  const idx = Array.from(ids.keys());
  const k = Math.min(m, idx.length);
  for (let i = 0; i < k; i++) {
    const j = i + rng.int(idx.length - i);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx
    .slice(0, k)
    .sort((a, b) => a - b)
    .map((i) => ids[i]!);
}

/**
 * What FedAvg would send to and receive from `clients` this round: the full model both ways, in the
 * same encoding (sizes are measured, not allocated).
 */
export function fedavgTraffic(
  model: ParamStore,
  round: number,
  clients: readonly string[],
  training: LocalTraining,
  dtype: PayloadDType,
  runSeed: number,
  cost?: Grid["transportCost"],
): Traffic {
  const names = model.names();
  const tensors = names.map((name) => ({ name, shape: model.shape(name), data: model.get(name) }));
  let bytes = 0;
  for (const clientId of clients) {
    // FedAvg's own instruction, per-client seed included, so a FedAvg run matches its reference byte for byte.
    const instr: Instruction = { task: "train", mode: "full", adapterSpec: undefined, ...training, mu: 0, seed: clientSeed(runSeed, round, clientId), initSeed: 0, baseVersion: 0 };
    const down: WireMessage = { kind: "broadcast", round, clientId, config: instructionConfig(instr), tensors, packed: [], scores: [] };
    const up: WireMessage = { kind: "reply", round, clientId, sampleCount: 1, metrics: { trainLoss: 0, steps: 0 }, tensors, packed: [], scores: [] };
    const d = encodedBreakdown(down, { dtype }).total;
    const u = encodedBreakdown(up, { dtype }).total;
    if (cost) {
      const t = cost(round, clientId, d, u);
      bytes += t.down + t.up;
    } else bytes += d + u;
  }
  const params = names.reduce((n, name) => n + model.get(name).length, 0);
  return { params: 2 * params * clients.length, bytes };
}

/** A try of a round that ended with too few replies. */
interface RoundAttempt {
  readonly attempt: number;
  readonly sampled: string[];
  readonly failures: RoundFailure[];
  readonly down: Traffic;
  readonly up: Traffic;
}

interface Exchange {
  readonly accepted: AcceptedReply[];
  readonly failures: RoundFailure[];
  readonly down: Traffic;
  readonly up: Traffic;
  readonly codec: number;
  readonly compute: number;
  readonly gridSeconds: number;
}

/** Encodes, sends, decodes and (optionally) validates one batch of messages. */
async function exchange(
  grid: Grid,
  messages: readonly WireMessage[],
  dtype: PayloadDType,
  validate: (msg: WireMessage) => ReplyVerdict,
  opts: SendOptions,
): Promise<Exchange> {
  let codec = 0;
  let t = now();
  const requests = messages.map((m) => ({ clientId: m.clientId!, payload: encodeMessage(m, { dtype }) }));
  codec += now() - t;
  t = now();
  const replies: GridReply[] = await grid.send(requests, opts);
  const gridSeconds = now() - t;
  t = now();
  const accepted: AcceptedReply[] = [];
  const failures: RoundFailure[] = [];
  let up = NO_TRAFFIC;
  let compute = 0;
  if (replies.length !== requests.length) throw new Error(`grid answered ${replies.length} of ${requests.length} requests`);
  // A network grid says what crossed for each request (framing included); in memory the payloads are what would cross.
  let down = NO_TRAFFIC;
  requests.forEach((r, i) => {
    down = addTraffic(down, { params: messageParamCount(messages[i]!), bytes: replies[i]!.transport?.down ?? r.payload.length });
  });
  replies.forEach((r, i) => {
    const clientId = requests[i]!.clientId;
    if ("failure" in r) {
      if (r.transport) up = addTraffic(up, { params: 0, bytes: r.transport.up });
      failures.push({ clientId, code: r.failure.code, reason: r.failure.message });
      return;
    }
    compute += r.computeSeconds ?? 0;
    let msg: WireMessage;
    try {
      // Views, not copies: replies are only read (validated, averaged) on the server's path.
      msg = decodeMessage(r.payload, { views: true });
    } catch (e) {
      up = addTraffic(up, { params: 0, bytes: r.transport?.up ?? r.payload.length });
      failures.push({ clientId, code: "rejected", reason: `malformed reply: ${e instanceof Error ? e.message : String(e)}` });
      return;
    }
    up = addTraffic(up, { params: messageParamCount(msg), bytes: r.transport?.up ?? r.payload.length });
    if (msg.clientId !== clientId) {
      failures.push({ clientId, code: "rejected", reason: `reply names client "${msg.clientId}"` });
      return;
    }
    const v = validate(msg);
    if (v.ok) accepted.push({ clientId, message: msg });
    else failures.push({ clientId, code: v.failure.code, reason: v.failure.message });
  });
  codec += now() - t;
  return { accepted, failures, down, up, codec, compute, gridSeconds };
}

/** Sample-weighted mean of a metric over replies that report it. */
function weightedMetric(replies: readonly AcceptedReply[], key: string): number | undefined {
  let sum = 0;
  let weight = 0;
  for (const r of replies) {
    const v = r.message.metrics?.[key];
    const w = r.message.sampleCount ?? 0;
    if (v === undefined || !Number.isFinite(v) || w <= 0) continue;
    sum += v * w;
    weight += w;
  }
  return weight > 0 ? sum / weight : undefined;
}

/** Runs rounds 1..`opts.rounds` (or those after `opts.resume.round`) of `strategy` over `grid`; returns one record per round run. */
export async function runRounds(strategy: Strategy, grid: Grid, opts: DriverOptions): Promise<RoundRecord[]> {
  if (!Number.isInteger(opts.clientsPerRound) || opts.clientsPerRound < 1) throw argError(`clientsPerRound must be a positive integer, got ${opts.clientsPerRound}`);
  const rng = new Rng(opts.seed);
  const records: RoundRecord[] = [];
  let cumDown = NO_TRAFFIC;
  let cumUp = NO_TRAFFIC;
  let cumFedavg = NO_TRAFFIC;
  let first = 1;
  if (opts.resume) {
    rng.setState(opts.resume.rng);
    cumDown = opts.resume.cumulativeDown;
    cumUp = opts.resume.cumulativeUp;
    cumFedavg = opts.resume.fedavgCumulative;
    first = opts.resume.round + 1;
  }
  const sendOptions = (purpose: "train" | "evaluate", attempt = 1): SendOptions => ({
    purpose,
    attempt,
    ...(opts.roundTimeoutSeconds !== undefined ? { deadlineMs: Date.now() + opts.roundTimeoutSeconds * 1000 } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  for (let round = first; round <= opts.rounds; round++) {
    if (opts.signal?.aborted) break;
    opts.onRoundStart?.(round);
    const start = now();
    const retried: RoundAttempt[] = [];
    let sampled: string[];
    let plan: TrainPlan;
    let ex: Exchange;
    for (let attempt = 1; ; attempt++) {
      // Read every round (and every attempt): on a network, clients come and go.
      const ids = await grid.clientIds();
      if (ids.length === 0) throw argError(`round ${round}: the grid has no clients`);
      sampled = sampleClients(rng, ids, opts.clientsPerRound);
      const p = strategy.configureTrain(round, sampled);
      plan = p;
      ex = await exchange(grid, p.messages, opts.dtype, (m) => validateReply(m, p.expectation), sendOptions("train", attempt));
      if (ex.failures.length > 0) strategy.clientsFailed?.(round, ex.failures);
      const need = opts.minReplies?.(sampled.length);
      if (need === undefined || ex.accepted.length >= need || opts.signal?.aborted) break;
      if (attempt >= (opts.maxAttempts ?? 1)) {
        throw new SaflError(ErrorCode.Runtime, `round ${round}: ${ex.accepted.length} of ${sampled.length} sampled clients answered in time, ${need} needed, after ${attempt} attempt(s); failures: ${ex.failures.map((f) => `${f.clientId} ${f.code}`).join(", ")}`);
      }
      retried.push({ attempt, sampled, failures: ex.failures, down: ex.down, up: ex.up });
    }
    // The bytes of attempts that fell short crossed the network too.
    for (const a of retried) ex = { ...ex, down: addTraffic(ex.down, a.down), up: addTraffic(ex.up, a.up) };
    let t = now();
    if (ex.accepted.length > 0) strategy.aggregateTrain(round, ex.accepted);
    const aggregateSeconds = now() - t;

    let evaluateSeconds = 0;
    let test: EvalResult | undefined;
    const global = strategy.globalModel();
    if (opts.evaluate && ((opts.evalEvery > 0 && round % opts.evalEvery === 0) || round === opts.rounds)) {
      t = now();
      test = await opts.evaluate(global);
      evaluateSeconds = now() - t;
    }
    let clientEval: { accuracy?: number; loss?: number; traffic: Traffic; seconds: number; codec: number; compute: number } = {
      traffic: NO_TRAFFIC,
      seconds: 0,
      codec: 0,
      compute: 0,
    };
    if (opts.clientEvalEvery > 0 && round % opts.clientEvalEvery === 0) {
      t = now();
      const ev = await exchange(
        grid,
        strategy.configureEvaluate(round, sampled),
        opts.dtype,
        (m): ReplyVerdict =>
          m.failure !== undefined
            ? { ok: false, failure: m.failure }
            : m.round !== round
              ? { ok: false, failure: { code: "rejected", message: `evaluation reply for round ${m.round}` } }
              : { ok: true },
        sendOptions("evaluate"),
      );
      const accuracy = weightedMetric(ev.accepted, "accuracy");
      const loss = weightedMetric(ev.accepted, "loss");
      clientEval = {
        ...(accuracy !== undefined ? { accuracy } : {}),
        ...(loss !== undefined ? { loss } : {}),
        traffic: addTraffic(ev.down, ev.up),
        seconds: now() - t,
        codec: ev.codec + Math.max(0, ev.gridSeconds - ev.compute),
        compute: Math.min(ev.compute, ev.gridSeconds),
      };
    }
    const fedavg = fedavgTraffic(global, round, sampled, opts.training, opts.dtype, opts.seed, grid.transportCost?.bind(grid));
    cumDown = addTraffic(cumDown, ex.down);
    cumUp = addTraffic(cumUp, ex.up);
    cumFedavg = addTraffic(cumFedavg, fedavg);
    const seconds = now() - start;
    // Clients running in parallel (a worker pool) report more compute seconds than the grid call
    // took; the round's share of client work is then the grid's wall time.
    const trainWall = Math.min(ex.compute, ex.gridSeconds);
    const clientTrain = trainWall + clientEval.compute;
    const codec = ex.codec + (ex.gridSeconds - trainWall) + clientEval.codec;
    const timing: RoundTiming = {
      clientTrain,
      evaluate: evaluateSeconds,
      codec,
      aggregate: aggregateSeconds,
      other: Math.max(0, seconds - clientTrain - evaluateSeconds - codec - aggregateSeconds),
    };
    const trainLoss = weightedMetric(ex.accepted, "trainLoss");
    const record: RoundRecord = {
      round,
      stage: plan.info.stage,
      ...(plan.info.phase ? { phase: plan.info.phase } : {}),
      ...(plan.info.budget !== undefined ? { budget: plan.info.budget } : {}),
      ...(plan.info.ranks ? { ranks: plan.info.ranks } : {}),
      sampled: sampled.length,
      accepted: ex.accepted.length,
      failures: ex.failures,
      clients: { sampled, accepted: ex.accepted.map((a) => a.clientId) },
      ...(retried.length > 0 ? { retriedAttempts: retried.map((a) => ({ attempt: a.attempt, sampled: a.sampled, failures: a.failures })) } : {}),
      ...(test ? { testAccuracy: test.accuracy, testLoss: test.loss } : {}),
      ...(trainLoss !== undefined ? { trainLoss } : {}),
      ...(clientEval.accuracy !== undefined ? { clientAccuracy: clientEval.accuracy } : {}),
      ...(clientEval.loss !== undefined ? { clientLoss: clientEval.loss } : {}),
      down: ex.down,
      up: ex.up,
      evalTraffic: clientEval.traffic,
      cumulativeDown: cumDown,
      cumulativeUp: cumUp,
      fedavgCumulative: cumFedavg,
      seconds,
      timing,
    };
    records.push(record);
    await opts.onRoundEnd?.(record, { round, rng: rng.getState(), cumulativeDown: cumDown, cumulativeUp: cumUp, fedavgCumulative: cumFedavg });
    opts.onRound?.(record);
  }
  return records;
}
