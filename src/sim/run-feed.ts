/**
 * @module sim/run-feed
 * What the live dashboard (`--ui`) knows about one run, simulated or deployed, kept in one place so
 * the page, the `/events` stream and `/api/state` all show the same thing: the run's plan, a compact
 * point per committed round, a table of clients, and the run's status. Sources push into it (the
 * driver's per-round records, the hub's sessions or a simulation's grid) and subscribers receive a
 * snapshot first and then every change, so a page that connects late or reconnects never misses
 * state and never has to poll.
 *
 * Platform-free on purpose (no node:*): the dashboard page imports its types, and the feed is fed
 * by both sim/ and net/.
 */
import type { Failure } from "../fl/failure.js";
import type { Grid, GridReply, GridRequest, SendOptions } from "../fl/grid.js";
import type { BudgetPhase, RoundRecord, Stage } from "../fl/records.js";

/** What a client is doing now (the protocol's ClientState, minus "unspecified", which reads as idle). */
export type ClientActivity = "idle" | "downloading" | "training" | "uploading" | "evaluating";

/**
 * Where the run is: `waiting` before its first round (for clients in a deployment, for data and
 * model loading in a simulation), `running`, `finished` after its last planned round, `stopped` by
 * the operator, `failed` with an error.
 */
export type RunStatus = "waiting" | "running" | "finished" | "stopped" | "failed";

/** The run's plan, known before the first round. */
export interface RunInfo {
  readonly mode: "simulation" | "deployment";
  readonly strategy: string;
  readonly rounds: number;
  /** Clients in the run (clients.count) and how many each round samples. */
  readonly clients: number;
  readonly perRound: number;
  /** A short description of the task and partition, e.g. "mnist 5-9, dirichlet:0.5". */
  readonly task?: string;
  readonly runId?: string;
}

/**
 * One committed round, reduced to what the dashboard draws: the full RoundRecord also lists every
 * sampled and accepted client id, which the client table already counts, and would make a long run's
 * snapshot grow with clients × rounds.
 */
export interface RoundPoint {
  readonly round: number;
  readonly stage: Stage;
  readonly phase?: BudgetPhase;
  readonly budget?: number;
  readonly ranks?: Readonly<Record<string, number>>;
  readonly sampled: number;
  readonly accepted: number;
  readonly failed: number;
  readonly testAccuracy?: number;
  readonly testLoss?: number;
  readonly trainLoss?: number;
  /** Bytes of this round and cumulative through it (training messages), and FedAvg's cumulative reference. */
  readonly downBytes: number;
  readonly upBytes: number;
  readonly cumulativeDownBytes: number;
  readonly cumulativeUpBytes: number;
  readonly fedavgCumulativeBytes: number;
  readonly seconds: number;
}

/** What a live source (the hub, a simulation's grid) knows about a client right now. */
export interface LiveClient {
  readonly id: string;
  readonly online: boolean;
  readonly state: ClientActivity;
  /** The round the client is working on or last worked on. */
  readonly round?: number;
  readonly lastSeenMs?: number;
  /** "node", "browser", "simulated", … */
  readonly device?: string;
  readonly threads?: number;
  /** Training throughput the client reports (0 or absent: none now; the feed keeps the last one). */
  readonly imagesPerSecond?: number;
}

/** Replies and failures of one client: in the latest committed round, and over the run. */
export interface ClientCounts {
  readonly sampled: number;
  readonly replied: number;
  readonly failed: number;
}

/** One row of the dashboard's client table. */
export interface ClientRow {
  readonly id: string;
  readonly online: boolean;
  readonly state: ClientActivity;
  readonly round: number | undefined;
  readonly lastSeenMs: number | undefined;
  readonly device: string;
  readonly threads: number;
  readonly imagesPerSecond: number;
  /** Counts in the latest committed round (`FeedSnapshot.rounds` last point). */
  readonly last: ClientCounts;
  readonly total: ClientCounts;
  /** The failure code of the client's latest failure, if its latest round failed. */
  readonly lastFailure?: string;
}

export interface FeedSnapshot {
  readonly info: RunInfo;
  readonly status: RunStatus;
  /** The round in progress (status `running`), else undefined. */
  readonly activeRound: number | undefined;
  /** Why the run stopped or failed. */
  readonly message?: string;
  readonly rounds: readonly RoundPoint[];
  readonly clients: readonly ClientRow[];
  /** When the feed last changed, and when this snapshot was taken (ms since the epoch, the feed's clock). */
  readonly updatedMs: number;
  /** A page measures its clock's offset from this, so "last seen 3 s ago" is right on another machine. */
  readonly nowMs: number;
}

/**
 * What subscribers receive: a snapshot first, then changes. A round brings the client table with it,
 * since the round's replies change its counts.
 */
export type FeedEvent =
  | { readonly type: "snapshot"; readonly snapshot: FeedSnapshot }
  | { readonly type: "round"; readonly point: RoundPoint; readonly clients: readonly ClientRow[] }
  | { readonly type: "clients"; readonly clients: readonly ClientRow[] }
  | { readonly type: "status"; readonly status: RunStatus; readonly activeRound: number | undefined; readonly message?: string };

export type FeedListener = (event: FeedEvent) => void;

/** The point of a round record (exported for tests and for sources that hold records already). */
export function roundPoint(r: RoundRecord): RoundPoint {
  const failed = r.failures.length + (r.retriedAttempts ?? []).reduce((n, a) => n + a.failures.length, 0);
  return {
    round: r.round,
    stage: r.stage,
    ...(r.phase !== undefined ? { phase: r.phase } : {}),
    ...(r.budget !== undefined ? { budget: r.budget } : {}),
    ...(r.ranks !== undefined ? { ranks: r.ranks } : {}),
    sampled: r.sampled,
    accepted: r.accepted,
    failed,
    ...(r.testAccuracy !== undefined ? { testAccuracy: r.testAccuracy } : {}),
    ...(r.testLoss !== undefined ? { testLoss: r.testLoss } : {}),
    ...(r.trainLoss !== undefined ? { trainLoss: r.trainLoss } : {}),
    downBytes: r.down.bytes,
    upBytes: r.up.bytes,
    cumulativeDownBytes: r.cumulativeDown.bytes,
    cumulativeUpBytes: r.cumulativeUp.bytes,
    fedavgCumulativeBytes: r.fedavgCumulative.bytes,
    seconds: r.seconds,
  };
}

/**
 * Clients report a rate only while they train (0 otherwise), so a table refreshed between tasks
 * would blink to "unknown": the last rate a client reported stands until it reports another.
 */
function withRate(c: LiveClient, prev: LiveClient | undefined): LiveClient {
  if (c.imagesPerSecond || !prev?.imagesPerSecond) return c;
  return { ...c, imagesPerSecond: prev.imagesPerSecond };
}

const ZERO: ClientCounts = { sampled: 0, replied: 0, failed: 0 };

interface Tally {
  last: ClientCounts;
  total: ClientCounts;
  lastFailure?: string;
}

export class RunFeed {
  private status: RunStatus;
  private activeRound: number | undefined;
  private message: string | undefined;
  private readonly points: RoundPoint[] = [];
  private readonly live = new Map<string, LiveClient>();
  private readonly tallies = new Map<string, Tally>();
  private readonly listeners = new Set<FeedListener>();
  private updatedMs: number;
  /** The last client table pushed, as JSON: a source that samples unchanged state pushes nothing. */
  private lastClientsJson = "";

  constructor(
    readonly info: RunInfo,
    private readonly now: () => number = Date.now,
  ) {
    this.status = "waiting";
    this.updatedMs = now();
  }

  /** Subscribes; the listener gets the current snapshot at once, then every change. Returns the unsubscribe function. */
  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    this.deliver(listener, { type: "snapshot", snapshot: this.snapshot() });
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** The round in progress, if any (a simulation's grid labels its clients with it). */
  get currentRound(): number | undefined {
    return this.activeRound;
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }

  snapshot(): FeedSnapshot {
    return {
      info: this.info,
      status: this.status,
      activeRound: this.activeRound,
      ...(this.message !== undefined ? { message: this.message } : {}),
      rounds: [...this.points],
      clients: this.clientRows(),
      updatedMs: this.updatedMs,
      nowMs: this.now(),
    };
  }

  /** A round began (its number); the run is running from now on. */
  roundStarted(round: number): void {
    if (this.status === "running" && this.activeRound === round) return;
    if (this.status === "finished" || this.status === "stopped" || this.status === "failed") return;
    this.status = "running";
    this.activeRound = round;
    this.emitStatus();
  }

  /**
   * A committed round. Records of rounds already held are ignored, so a source may replay records
   * (a resumed server seeds the feed from metrics.jsonl) without double counting.
   */
  addRound(record: RoundRecord): void {
    if (this.points.some((p) => p.round === record.round)) return;
    const point = roundPoint(record);
    this.points.push(point);
    this.points.sort((a, b) => a.round - b.round);
    this.count(record);
    const rows = this.clientRows();
    this.lastClientsJson = JSON.stringify(rows);
    this.touch();
    this.emit({ type: "round", point, clients: rows });
    if (record.round >= this.info.rounds) {
      // The last planned round is in: the run is done, whatever its source still writes afterwards.
      this.status = "finished";
      this.activeRound = undefined;
      this.emitStatus();
    } else if (this.activeRound === record.round) {
      this.activeRound = undefined;
      this.emitStatus();
    }
  }

  /**
   * The live picture of the clients. Clients not in `clients` are kept, offline, with their counts
   * (a client that left or never came back still took part). Pushes only when the table changed.
   */
  setClients(clients: readonly LiveClient[]): void {
    const seen = new Set<string>();
    for (const c of clients) {
      seen.add(c.id);
      this.live.set(c.id, withRate(c, this.live.get(c.id)));
    }
    for (const [id, c] of this.live) if (!seen.has(id) && c.online) this.live.set(id, { ...c, online: false, state: "idle" });
    this.pushClientsIfChanged();
  }

  /** Updates some clients and leaves the others as they are (a simulation's grid reports only the clients of one exchange). */
  updateClients(clients: readonly LiveClient[]): void {
    for (const c of clients) {
      const prev = this.live.get(c.id);
      this.live.set(c.id, withRate({ ...prev, ...c }, prev));
    }
    this.pushClientsIfChanged();
  }

  /** The run ended: finished (all rounds), stopped, or failed; `message` says why. */
  end(status: "finished" | "stopped" | "failed", message?: string): void {
    if (this.status === status && this.message === message) return;
    this.status = status;
    this.activeRound = undefined;
    this.message = message;
    this.emitStatus();
  }

  // ---- internals ----------------------------------------------------------------------------------

  private count(r: RoundRecord): void {
    // A retried round's earlier attempts asked other clients too; their failures count as well.
    const attempts = [...(r.retriedAttempts ?? []), { sampled: r.clients.sampled, failures: r.failures }];
    const sampled = new Set<string>();
    const failed = new Map<string, number>();
    const lastCode = new Map<string, Failure["code"]>();
    for (const a of attempts) {
      for (const id of a.sampled) sampled.add(id);
      for (const f of a.failures) {
        failed.set(f.clientId, (failed.get(f.clientId) ?? 0) + 1);
        lastCode.set(f.clientId, f.code);
      }
    }
    const accepted = new Set(r.clients.accepted);
    const ids = new Set([...sampled, ...accepted, ...failed.keys()]);
    // The latest round's counts replace the previous ones for every client, including those not sampled.
    for (const [id, t] of this.tallies) if (!ids.has(id)) this.tallies.set(id, { last: ZERO, total: t.total });
    for (const id of ids) {
      const last: ClientCounts = { sampled: sampled.has(id) ? 1 : 0, replied: accepted.has(id) ? 1 : 0, failed: failed.get(id) ?? 0 };
      const prev = this.tallies.get(id)?.total ?? ZERO;
      const failure = accepted.has(id) ? undefined : lastCode.get(id);
      this.tallies.set(id, {
        last,
        total: { sampled: prev.sampled + last.sampled, replied: prev.replied + last.replied, failed: prev.failed + last.failed },
        ...(failure !== undefined ? { lastFailure: failure } : {}),
      });
    }
  }

  private clientRows(): ClientRow[] {
    const ids = [...new Set([...this.live.keys(), ...this.tallies.keys()])].sort();
    return ids.map((id) => {
      const c = this.live.get(id);
      const t = this.tallies.get(id);
      return {
        id,
        online: c?.online ?? false,
        state: c?.online ? c.state : "idle",
        round: c?.round,
        lastSeenMs: c?.lastSeenMs,
        device: c?.device ?? "",
        threads: c?.threads ?? 0,
        imagesPerSecond: c?.imagesPerSecond ?? 0,
        last: t?.last ?? ZERO,
        total: t?.total ?? ZERO,
        ...(t?.lastFailure !== undefined ? { lastFailure: t.lastFailure } : {}),
      };
    });
  }

  private pushClientsIfChanged(): void {
    const rows = this.clientRows();
    const json = JSON.stringify(rows);
    if (json === this.lastClientsJson) return;
    this.lastClientsJson = json;
    this.touch();
    this.emit({ type: "clients", clients: rows });
  }

  private emitStatus(): void {
    this.touch();
    this.emit({ type: "status", status: this.status, activeRound: this.activeRound, ...(this.message !== undefined ? { message: this.message } : {}) });
  }

  private touch(): void {
    this.updatedMs = this.now();
  }

  private emit(event: FeedEvent): void {
    for (const l of [...this.listeners]) this.deliver(l, event);
  }

  /** A listener that throws (a broken connection) is dropped; the others still get the event. */
  private deliver(listener: FeedListener, event: FeedEvent): void {
    try {
      listener(event);
    } catch {
      this.listeners.delete(listener);
    }
  }
}

/**
 * A simulation's grid that tells the feed which clients each exchange asks and how they answered:
 * asked clients show as training (or evaluating) until the exchange returns, then idle with the
 * throughput of their reply. `imagesOf` says how many images a client's training request covers,
 * for images/s from the reply's compute time (undefined: the rate stays unknown).
 */
export function observedGrid(inner: Grid, feed: RunFeed, imagesOf?: (clientId: string) => number | undefined, now: () => number = Date.now): Grid {
  const observed: Grid = {
    clientIds: () => inner.clientIds(),
    close: () => inner.close(),
    async send(requests: readonly GridRequest[], opts?: SendOptions): Promise<GridReply[]> {
      const state: ClientActivity = opts?.purpose === "evaluate" ? "evaluating" : "training";
      const round = feed.currentRound;
      feed.updateClients(requests.map((r) => ({ id: r.clientId, online: true, state, lastSeenMs: now(), ...(round !== undefined ? { round } : {}) })));
      const replies = await inner.send(requests, opts);
      feed.updateClients(
        replies.map((r) => {
          const images = state === "training" && "payload" in r && r.computeSeconds ? imagesOf?.(r.clientId) : undefined;
          const rate = images !== undefined && "computeSeconds" in r && r.computeSeconds ? images / r.computeSeconds : undefined;
          return { id: r.clientId, online: true, state: "idle", lastSeenMs: now(), ...(rate !== undefined ? { imagesPerSecond: rate } : {}) };
        }),
      );
      return replies;
    },
  };
  if (inner.transportCost) observed.transportCost = inner.transportCost.bind(inner);
  return observed;
}
