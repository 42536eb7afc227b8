/**
 * @module net/network-grid
 * The `Grid` (fl/grid) of a deployed run: the driver's requests become tasks that clients pull from
 * the hub; their replies, or coded failures at the deadline, come back in request order.
 *
 * Crash safety. A training exchange opens the round in the state file (round, attempt, sampled
 * clients, one task per client) and every reply is committed there before the client hears it was
 * accepted. After a restart the driver, restored to the last round boundary, asks for the same round
 * with the same sample (its RNG state is part of the boundary); the tasks get the same ids (a hash of
 * run, round, attempt, client and request), so replies committed before the crash are used as they
 * are and only the missing clients are asked again.
 *
 * Counting. Each request's traffic is the bytes of the RPC messages of its canonical exchange —
 * PullTask, the request's chunks, the reply's chunks and PushResult — computed from the payload
 * sizes by net/protocol (protobuf sizes plus message prefixes), so a run resumed after a crash
 * reports what an uninterrupted one does; resends and control traffic are in the hub's measured
 * totals instead. The FedAvg reference goes through the same function (`transportCost`).
 */
import { createHash } from "node:crypto";
import { ErrorCode, SaflError } from "../errors.js";
import { type Grid, type GridReply, type GridRequest, missedReason, type SendOptions, type TransportBytes } from "../fl/grid.js";
import { sha256Hex } from "./backbone.js";
import type { FederationHub, HubTask } from "./hub.js";
import { taskTransportCost } from "./protocol.js";
import type { StateStore } from "./state.js";

/** What a session id and a task id look like on the wire (fixed lengths, so sizes are exact). */
const SESSION_ID = "0".repeat(32);

export interface NetworkGridOptions {
  readonly runId: string;
  readonly hub: FederationHub;
  readonly state: StateStore;
  /** Identities that must be online before a round samples. */
  readonly minClients: number;
  /** Give up waiting for minClients after this long (0: wait forever). */
  readonly waitForClientsSeconds: number;
  /** Without a deadline from the driver, tasks still end after this long. */
  readonly defaultTimeoutSeconds: number;
  readonly log: (line: string) => void;
  /** Stops a wait for clients (the server is shutting down). */
  readonly signal?: AbortSignal;
}

export class NetworkGrid implements Grid {
  private closed = false;

  constructor(private readonly opts: NetworkGridOptions) {}

  /** The online identities, once at least minClients are online (sorted, so sampling is deterministic). */
  async clientIds(): Promise<readonly string[]> {
    const { hub, minClients } = this.opts;
    const started = Date.now();
    let lastLog = 0;
    for (;;) {
      const ids = hub.onlineIds();
      if (ids.length >= minClients || this.closed) return ids;
      if (this.opts.signal?.aborted) throw new SaflError(ErrorCode.Runtime, "the server is stopping");
      const now = Date.now();
      if (this.opts.waitForClientsSeconds > 0 && now - started > this.opts.waitForClientsSeconds * 1000) {
        throw new SaflError(ErrorCode.Runtime, `only ${ids.length} of the ${minClients} clients needed came online within ${this.opts.waitForClientsSeconds} s (online: ${ids.join(", ") || "none"})`);
      }
      if (now - lastLog > 5000) {
        this.opts.log(`waiting for clients: ${ids.length}/${minClients} online${ids.length > 0 ? ` (${ids.join(", ")})` : ""}`);
        lastLog = now;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async send(requests: readonly GridRequest[], opts: SendOptions = {}): Promise<GridReply[]> {
    const missed = this.closed ? { code: "unavailable" as const, message: "the grid was closed" } : missedReason(opts);
    if (missed) return requests.map((r) => ({ clientId: r.clientId, failure: missed }));
    const purpose = opts.purpose ?? "train";
    const attempt = opts.attempt ?? 1;
    const deadlineMs = opts.deadlineMs ?? Date.now() + this.opts.defaultTimeoutSeconds * 1000;
    // A client that never joined cannot answer before any deadline: fail it now, like an unknown address.
    const known = new Set(this.opts.hub.sessionList().map((s) => s.gridId));
    const reachable = requests.filter((r) => known.has(r.clientId));
    const tasks: HubTask[] = reachable.map((r) => {
      const round = roundOf(r.payload);
      const requestId = sha256Hex(r.payload);
      const taskId = createHash("sha256").update(`${this.opts.runId}/${purpose}/${round}/${attempt}/${r.clientId}/${requestId}`).digest("hex").slice(0, 32);
      // Only a real round's training replies go to the state file (a request that is no wire message still reaches the client, which answers it with a failure).
      return { taskId, gridId: r.clientId, round, attempt, kind: purpose, requestId, request: r.payload, deadlineMs, persist: purpose === "train" && round > 0 };
    });
    let done = new Map<string, Uint8Array>();
    if (purpose === "train" && tasks.length > 0 && tasks[0]!.persist) {
      const round = tasks[0]!.round;
      const open = this.opts.state.openRoundState();
      const same = open !== undefined && open.round === round && open.attempt === attempt && open.tasks.length === tasks.length && open.tasks.every((t, i) => t.taskId === tasks[i]!.taskId);
      if (same) {
        done = new Map(this.opts.state.acceptedReplies().map((a) => [a.taskId, a.payload]));
        if (done.size > 0) this.opts.log(`round ${round}: ${done.size} of ${tasks.length} replies were committed before the restart`);
      } else {
        this.opts.state.openRound({ round, attempt, sampled: requests.map((r) => r.clientId), tasks: tasks.filter((t) => t.persist).map((t) => ({ taskId: t.taskId, clientId: t.gridId, requestObjectId: t.requestId })), deadlineMs });
      }
    }
    const outcomes = await this.opts.hub.dispatch(tasks, done, opts.signal);
    const byClient = new Map(tasks.map((t, i) => [t.gridId, { t, o: outcomes[i]! }]));
    return requests.map((r): GridReply => {
      const hit = byClient.get(r.clientId);
      if (!hit) return { clientId: r.clientId, failure: { code: "unavailable", message: `no client "${r.clientId}" has joined this run` } };
      const { t, o } = hit;
      if ("payload" in o) return { clientId: t.gridId, payload: o.payload, transport: taskTransportCost(SESSION_ID, t.taskId, t.round, t.request.length, o.payload.length, t.deadlineMs) };
      if (t.persist) this.opts.state.recordFailure({ taskId: t.taskId, clientId: t.gridId, code: o.failure.code, message: o.failure.message });
      // What a failed task moved is not a round's payload; it shows in the hub's measured totals.
      return { clientId: t.gridId, failure: o.failure, transport: { down: 0, up: 0 } };
    });
  }

  /** The canonical exchange's bytes for payloads of these sizes (the FedAvg reference). */
  transportCost(round: number, _clientId: string, requestBytes: number, replyBytes: number): TransportBytes {
    return taskTransportCost(SESSION_ID, "0".repeat(32), round, requestBytes, replyBytes, Date.now() + 1000);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The round number of an encoded message (fl/wire header: u32 little-endian at byte 8). */
function roundOf(payload: Uint8Array): number {
  if (payload.length < 12) return 0;
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(8, true);
}

