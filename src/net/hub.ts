/**
 * @module net/hub
 * The server side of the protocol (proto/safl/v1): sessions, the task queue each client pulls from,
 * the objects it downloads, the replies it uploads. The network grid (net/network-grid) puts a
 * round's requests in as tasks and gets replies or coded failures back; the Connect routes
 * (`federationRoutes`) turn RPCs into calls on the hub.
 *
 * Who is who. Every RPC carries a bearer token, checked against the token file on every call (a
 * revoked token stops working at once). A session belongs to the token that opened it; another
 * token using that session id is PERMISSION_DENIED. A client's identity in the run (its grid id) is
 * the token's id, or `client-000I` when it plays demo partition I, so a deployment with partition
 * clients samples and seeds exactly as its simulation does. Two tokens cannot play one partition.
 *
 * What a peer cannot do. Nothing a client sends changes the run except a reply to a task that was
 * handed to its own identity in the open round, uploaded whole and matching its announced SHA-256:
 * a stale or finished task is FAILED_PRECONDITION, another identity's task PERMISSION_DENIED, a
 * reply larger than the limit RESOURCE_EXHAUSTED, garbage INVALID_ARGUMENT. Replies of training
 * rounds are committed to the state file before they are acknowledged, so an acknowledged reply
 * survives a crash; a re-pushed reply is a DUPLICATE, not a second vote.
 */
import { randomBytes } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Failure } from "../fl/failure.js";
import {
  ClientState,
  type DeviceInfo,
  type HeartbeatRequest,
  type JoinRequest,
  type LeaveRequest,
  ObjectKind,
  type PullObjectRequest,
  type PullTaskRequest,
  type PushObjectRequest,
  type PushResultRequest,
  PushResultStatus,
  RunState,
  TaskKind,
} from "./gen/safl/v1/federation_pb.js";
import { sha256Hex } from "./backbone.js";
import { CHUNK_BYTES, failureCodeFromProto, MAX_PULL_WAIT_MS, PROTOCOL_VERSION } from "./protocol.js";
import type { StateStore } from "./state.js";
import { bearerToken, type RateLimiter, redact, type TokenVerifier } from "./tokens.js";

/** Session ids have a fixed length, so the bytes of a round's RPCs do not depend on who got which id. */
const newSessionId = (): string => randomBytes(16).toString("hex");

export interface HubOptions {
  readonly runId: string;
  /** The resolved run config, sent on Join (clients derive their partition and task from it). */
  readonly runConfigJson: string;
  readonly backbone: { readonly sha256: string; readonly bytes: Uint8Array };
  readonly heartbeatSeconds: number;
  /** Demo partitions a client may ask to play (clients.count). */
  readonly partitions: number;
  readonly tokens: TokenVerifier;
  readonly state: StateStore;
  /** Join attempts per remote address. */
  readonly joinLimiter: RateLimiter;
  /** Largest reply a client may upload. */
  readonly maxReplyBytes: number;
  readonly log: (line: string) => void;
}

/**
 * How often a client's last-seen time is written to the state file by Heartbeats. Liveness is decided
 * from the in-memory sessions (which a restart loses anyway); the stored time only tells an operator
 * when a client was last around, so a fully synced SQLite commit per heartbeat of every client — 200
 * clients at a 5 s interval are 40 fsyncs a second — buys nothing. Join always writes.
 */
export const SEEN_PERSIST_MS = 60_000;

export interface Session {
  readonly id: string;
  readonly tokenId: string;
  readonly gridId: string;
  readonly partition: number | undefined;
  readonly device: { readonly kind: string; readonly threads: number; readonly platform: string };
  lastSeenMs: number;
  /** When `lastSeenMs` was last written to the state file (see SEEN_PERSIST_MS). */
  persistedSeenMs: number;
  /** The session was answered RunFinished (so the server need not wait for it before exiting). */
  toldFinished: boolean;
  state: ClientState;
  round: number;
  imagesPerSecond: number;
  closed: boolean;
}

/** A client as the dashboard sees it (FederationHub.clientTable). */
export interface ClientTableRow {
  readonly id: string;
  readonly online: boolean;
  readonly state: ClientState;
  readonly round: number;
  readonly lastSeenMs: number;
  readonly device: { readonly kind: string; readonly threads: number; readonly platform: string };
  readonly imagesPerSecond: number;
  /** The open task of this identity: which round, what for, and whether the client has pulled it yet. */
  readonly task?: { readonly round: number; readonly kind: "train" | "evaluate"; readonly handedOut: boolean };
}

export type TaskOutcome = { readonly payload: Uint8Array } | { readonly failure: Failure };

/** A task of the open exchange: one request for one client identity. */
export interface HubTask {
  readonly taskId: string;
  readonly gridId: string;
  readonly round: number;
  readonly attempt: number;
  readonly kind: "train" | "evaluate";
  readonly requestId: string;
  readonly request: Uint8Array;
  readonly deadlineMs: number;
  /** Commit the reply to the state file before acknowledging it (training rounds). */
  readonly persist: boolean;
}

interface LiveTask extends HubTask {
  handedOut: boolean;
  settled: boolean;
  settle(outcome: TaskOutcome): void;
}

interface Upload {
  readonly taskId: string;
  readonly objectId: string;
  readonly total: number;
  readonly chunks: Uint8Array[];
  received: number;
}

/** Bytes of RPC messages the hub received and sent, framing prefix included, whatever they carried. */
export interface MeasuredTraffic {
  down: number;
  up: number;
}

// Messages may quote what a peer sent (ids, reasons); a token pasted there must not come back or reach a log.
// A quoted id cut mid surrogate pair would make connect-es fail to encode the gRPC trailer; replace lone halves.
const fail = (code: Code, message: string): ConnectError => new ConnectError(redact(message).replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd"), code);

export class FederationHub {
  private readonly sessions = new Map<string, Session>();
  /** The live session of each grid identity. */
  private readonly byGrid = new Map<string, Session>();
  /** Which token plays each demo partition (first come). */
  private readonly partitionOwner = new Map<number, string>();
  private readonly objects = new Map<string, { readonly bytes: Uint8Array; readonly kind: ObjectKind }>();
  private readonly objectRefs = new Map<string, number>();
  private readonly tasks = new Map<string, LiveTask>();
  private readonly queues = new Map<string, string[]>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly uploads = new Map<string, Upload>();
  private finished: string | undefined;
  readonly measured: MeasuredTraffic = { down: 0, up: 0 };

  private readonly log: (line: string) => void;

  constructor(private readonly opts: HubOptions) {
    this.log = (line) => opts.log(redact(line));
    this.objects.set(opts.backbone.sha256, { bytes: opts.backbone.bytes, kind: ObjectKind.BACKBONE });
  }

  // ---- identity -------------------------------------------------------------------------------

  /** The token's client id, or UNAUTHENTICATED (never naming the token itself). */
  authenticate(ctx: HandlerContext): string {
    const token = bearerToken(ctx.requestHeader.get("authorization") ?? undefined);
    if (token === undefined) throw fail(Code.Unauthenticated, 'missing bearer token (expected the header "authorization: Bearer <token>")');
    const v = this.opts.tokens.verify(token);
    // The id a bad token claims is not quoted: a malformed token can carry its own secret in that place.
    if (!v.ok) throw fail(Code.Unauthenticated, `token rejected (${v.reason})`);
    return v.clientId;
  }

  /**
   * Who holds this `authorization` header value and which demo partition they play (undefined when
   * none), for plain HTTP routes beside the service (the demo data a browser client downloads).
   * Throws the ConnectError an RPC would get for a missing or refused token.
   */
  partitionOfBearer(authorization: string | undefined): { tokenId: string; partition: number | undefined } {
    const token = bearerToken(authorization);
    if (token === undefined) throw fail(Code.Unauthenticated, 'missing bearer token (expected the header "authorization: Bearer <token>")');
    const v = this.opts.tokens.verify(token);
    if (!v.ok) throw fail(Code.Unauthenticated, `token rejected (${v.reason})`);
    const entry = [...this.partitionOwner.entries()].find(([, owner]) => owner === v.clientId);
    return { tokenId: v.clientId, partition: entry?.[0] };
  }

  private session(ctx: HandlerContext, sessionId: string): Session {
    const tokenId = this.authenticate(ctx);
    const s = this.sessions.get(sessionId);
    if (!s || s.closed) throw fail(Code.FailedPrecondition, `unknown session "${sessionId.slice(0, 40)}" (the server restarted or the session ended): join again`);
    if (s.tokenId !== tokenId) throw fail(Code.PermissionDenied, `session "${sessionId.slice(0, 40)}" belongs to another client`);
    s.lastSeenMs = Date.now();
    return s;
  }

  join(ctx: HandlerContext, req: JoinRequest, remote: string): { session: Session; response: Record<string, unknown> } {
    if (!this.opts.joinLimiter.take(remote, Date.now())) throw fail(Code.ResourceExhausted, `too many Join attempts from ${remote}; retry later`);
    const tokenId = this.authenticate(ctx);
    if (req.protocolVersion !== PROTOCOL_VERSION) {
      throw fail(Code.FailedPrecondition, `protocol version mismatch: the client speaks ${req.protocolVersion}, this server ${PROTOCOL_VERSION} (update the client or the server so both run the same sa-fedlora release)`);
    }
    if (req.backboneSha256 !== "" && req.backboneSha256 !== this.opts.backbone.sha256) {
      throw fail(Code.FailedPrecondition, `backbone mismatch: the client holds ${req.backboneSha256.slice(0, 16)}…, the run uses ${this.opts.backbone.sha256.slice(0, 16)}… (clear the client's cache or point the server at the same backbone)`);
    }
    let partition: number | undefined;
    if (req.partitionRequest !== undefined) {
      const text = req.partitionRequest;
      const p = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
      if (!Number.isInteger(p) || p < 0 || p >= this.opts.partitions) {
        throw fail(Code.InvalidArgument, `partition "${text.slice(0, 20)}" is out of range: this run has partitions 0-${this.opts.partitions - 1}`);
      }
      const owner = this.partitionOwner.get(p);
      if (owner !== undefined && owner !== tokenId) throw fail(Code.FailedPrecondition, `partition ${p} is already played by client "${owner}"`);
      partition = p;
    }
    const gridId = partition === undefined ? tokenId : `client-${String(partition).padStart(4, "0")}`;
    if (partition === undefined && /^client-\d{4}$/.test(tokenId)) {
      // A token named like a virtual client would take that partition's identity in the run.
      const clash = [...this.partitionOwner.entries()].find(([p]) => `client-${String(p).padStart(4, "0")}` === tokenId);
      if (clash) throw fail(Code.FailedPrecondition, `client id "${tokenId}" is the identity of partition ${clash[0]}, which another token plays`);
    }
    // Joining again ends the previous session of this identity (a restarted client).
    const old = this.byGrid.get(gridId);
    if (old) {
      if (old.tokenId !== tokenId) throw fail(Code.FailedPrecondition, `identity "${gridId}" is in use by another token`);
      old.closed = true;
      this.sessions.delete(old.id);
    }
    // Claimed only now that the Join is accepted: a refused Join must not hold a partition.
    if (partition !== undefined) this.partitionOwner.set(partition, tokenId);
    const device = req.device ?? ({ kind: "", threads: 0, platform: "" } as DeviceInfo);
    const s: Session = {
      id: newSessionId(),
      tokenId,
      gridId,
      partition,
      device: { kind: device.kind.slice(0, 32), threads: device.threads, platform: device.platform.slice(0, 200) },
      lastSeenMs: Date.now(),
      persistedSeenMs: 0,
      toldFinished: false,
      state: ClientState.IDLE,
      round: 0,
      imagesPerSecond: 0,
      closed: false,
    };
    this.sessions.set(s.id, s);
    this.byGrid.set(gridId, s);
    this.opts.state.upsertClient({ id: gridId, lastSeenMs: s.lastSeenMs });
    s.persistedSeenMs = s.lastSeenMs;
    // Tasks handed to the old session go back to the queue: the new one pulls them again.
    for (const t of this.tasks.values()) if (t.gridId === gridId && !t.settled && t.handedOut) this.requeue(t);
    this.log(`joined: ${gridId}${gridId !== tokenId ? ` (token ${tokenId})` : ""}, ${s.device.kind || "unknown device"}${s.device.threads ? `, ${s.device.threads} threads` : ""}, from ${remote}`);
    return {
      session: s,
      response: {
        sessionId: s.id,
        runId: this.opts.runId,
        clientId: gridId,
        protocolVersion: PROTOCOL_VERSION,
        backboneSha256: this.opts.backbone.sha256,
        backboneObject: { id: this.opts.backbone.sha256, size: BigInt(this.opts.backbone.bytes.length), kind: ObjectKind.BACKBONE },
        heartbeatSeconds: this.opts.heartbeatSeconds,
        maxChunkBytes: CHUNK_BYTES,
        runConfigJson: this.opts.runConfigJson,
        partitionIndex: partition ?? -1,
      },
    };
  }

  heartbeat(ctx: HandlerContext, req: HeartbeatRequest): { heartbeatSeconds: number; runState: RunState } {
    const s = this.session(ctx, req.sessionId);
    if (req.status) {
      s.state = req.status.state;
      s.round = req.status.round;
      s.imagesPerSecond = Number.isFinite(req.status.imagesPerSecond) ? req.status.imagesPerSecond : 0;
    }
    if (s.lastSeenMs - s.persistedSeenMs >= SEEN_PERSIST_MS) {
      this.opts.state.touchClient(s.gridId, s.lastSeenMs);
      s.persistedSeenMs = s.lastSeenMs;
    }
    return { heartbeatSeconds: this.opts.heartbeatSeconds, runState: this.finished === undefined ? RunState.RUNNING : RunState.FINISHED };
  }

  leave(ctx: HandlerContext, req: LeaveRequest): void {
    const s = this.session(ctx, req.sessionId);
    s.closed = true;
    this.sessions.delete(s.id);
    if (this.byGrid.get(s.gridId) === s) this.byGrid.delete(s.gridId);
    this.log(`left: ${s.gridId}${req.reason ? ` (${req.reason.slice(0, 80)})` : ""}`);
  }

  /** Identities with a live session that sent something within two heartbeat intervals, sorted. */
  onlineIds(nowMs = Date.now()): string[] {
    const limit = 2 * this.opts.heartbeatSeconds * 1000;
    return [...this.byGrid.values()]
      .filter((s) => !s.closed && nowMs - s.lastSeenMs <= limit)
      .map((s) => s.gridId)
      .sort();
  }

  /** Every known session, for the status line and a dashboard. */
  sessionList(): readonly Session[] {
    return [...this.byGrid.values()];
  }

  // ---- tasks ------------------------------------------------------------------------------------

  /**
   * Puts tasks in the clients' queues and resolves with one outcome per task: the reply, or
   * `deadline-exceeded` / `unavailable` when none came by the deadline or the signal fired. Tasks
   * listed in `done` already have their reply (committed before a restart) and are not sent again.
   */
  dispatch(tasks: readonly HubTask[], done: ReadonlyMap<string, Uint8Array>, signal?: AbortSignal): Promise<TaskOutcome[]> {
    const outcomes = tasks.map(
      (t) =>
        new Promise<TaskOutcome>((resolve) => {
          const prior = done.get(t.taskId);
          if (prior) return resolve({ payload: prior });
          const live: LiveTask = {
            ...t,
            handedOut: false,
            settled: false,
            settle: (o) => {
              if (live.settled) return;
              live.settled = true;
              this.tasks.delete(t.taskId);
              this.releaseObject(t.requestId);
              // A partial upload of a closed task can never complete: free it.
              this.uploads.delete(`${t.gridId}/${t.taskId}`);
              resolve(o);
            },
          };
          this.tasks.set(t.taskId, live);
          this.holdObject(t.requestId, t.request);
          this.requeue(live);
        }),
    );
    const settleAll = (failure: Failure) => {
      for (const t of tasks) this.tasks.get(t.taskId)?.settle({ failure });
    };
    const deadline = Math.min(...tasks.map((t) => t.deadlineMs));
    const timer = Number.isFinite(deadline) ? setTimeout(() => settleAll({ code: "deadline-exceeded", message: "no reply by the round's deadline" }), Math.max(0, deadline - Date.now())) : undefined;
    const onAbort = () => settleAll({ code: "unavailable", message: "the exchange was aborted (the server is stopping)" });
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
    return Promise.all(outcomes).finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    });
  }

  /** Request objects are shared by every open task with the same bytes; the last one to finish drops it. */
  private holdObject(id: string, bytes: Uint8Array): void {
    this.objectRefs.set(id, (this.objectRefs.get(id) ?? 0) + 1);
    if (!this.objects.has(id)) this.objects.set(id, { bytes, kind: ObjectKind.BROADCAST });
  }

  private releaseObject(id: string): void {
    const n = (this.objectRefs.get(id) ?? 1) - 1;
    if (n > 0) return void this.objectRefs.set(id, n);
    this.objectRefs.delete(id);
    if (id !== this.opts.backbone.sha256) this.objects.delete(id);
  }

  private requeue(t: LiveTask): void {
    t.handedOut = false;
    let q = this.queues.get(t.gridId);
    if (!q) this.queues.set(t.gridId, (q = []));
    if (!q.includes(t.taskId)) q.push(t.taskId);
    for (const wake of this.waiters.get(t.gridId) ?? []) wake();
  }

  /** Tasks are handed out in order; a client that asks again gets its unanswered task again. */
  private nextTask(gridId: string): LiveTask | undefined {
    const q = this.queues.get(gridId) ?? [];
    while (q.length > 0) {
      const t = this.tasks.get(q[0]!);
      if (t && !t.settled) return t;
      q.shift();
    }
    return undefined;
  }

  async pullTask(ctx: HandlerContext, req: PullTaskRequest): Promise<Record<string, unknown>> {
    const s = this.session(ctx, req.sessionId);
    const waitMs = Math.min(Math.max(req.waitMs, 0), MAX_PULL_WAIT_MS);
    const until = Date.now() + waitMs;
    for (;;) {
      if (this.finished !== undefined) {
        s.toldFinished = true;
        return { outcome: { case: "finished", value: { summaryJson: this.finished } } };
      }
      const t = this.nextTask(s.gridId);
      if (t) {
        t.handedOut = true;
        s.state = t.kind === "train" ? ClientState.TRAINING : ClientState.IDLE;
        s.round = t.round;
        return {
          outcome: {
            case: "task",
            value: {
              taskId: t.taskId,
              round: t.round,
              attempt: t.attempt,
              kind: t.kind === "train" ? TaskKind.TRAIN : TaskKind.EVALUATE,
              request: { id: t.requestId, size: BigInt(t.request.length), kind: ObjectKind.BROADCAST },
              needs: [],
              deadlineUnixMs: BigInt(t.deadlineMs),
            },
          },
        };
      }
      const left = until - Date.now();
      if (left <= 0 || ctx.signal.aborted || s.closed) return { outcome: { case: "idle", value: { retryAfterMs: 1000 } } };
      await new Promise<void>((resolve) => {
        let set = this.waiters.get(s.gridId);
        if (!set) this.waiters.set(s.gridId, (set = new Set()));
        const done = () => {
          clearTimeout(timer);
          set!.delete(done);
          ctx.signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        set.add(done);
        ctx.signal.addEventListener("abort", done, { once: true });
      });
      s.lastSeenMs = Date.now();
    }
  }

  pullObject(ctx: HandlerContext, req: PullObjectRequest): Record<string, unknown> {
    this.session(ctx, req.sessionId);
    const o = this.objects.get(req.objectId);
    if (!o) throw fail(Code.NotFound, `no object "${req.objectId.slice(0, 64)}" (a finished task's request, or never offered)`);
    if (req.offset > BigInt(o.bytes.length)) throw fail(Code.OutOfRange, `offset ${req.offset} is past the end of object ${req.objectId.slice(0, 12)}… (${o.bytes.length} bytes)`);
    const offset = Number(req.offset);
    const want = req.maxBytes === 0 ? CHUNK_BYTES : Math.min(req.maxBytes, CHUNK_BYTES);
    const end = Math.min(offset + want, o.bytes.length);
    return { objectId: req.objectId, offset: req.offset, data: o.bytes.subarray(offset, end), totalSize: BigInt(o.bytes.length), last: end === o.bytes.length };
  }

  private ownTask(s: Session, taskId: string): LiveTask {
    const t = this.tasks.get(taskId);
    if (!t || t.settled) throw fail(Code.FailedPrecondition, `task "${taskId.slice(0, 40)}" is not open (its round is over, or it was answered)`);
    if (t.gridId !== s.gridId) throw fail(Code.PermissionDenied, `task "${taskId.slice(0, 40)}" was not assigned to "${s.gridId}"`);
    return t;
  }

  pushObject(ctx: HandlerContext, req: PushObjectRequest): { received: bigint } {
    const s = this.session(ctx, req.sessionId);
    this.ownTask(s, req.taskId);
    const total = Number(req.totalSize);
    if (!Number.isSafeInteger(total) || total <= 0) throw fail(Code.InvalidArgument, `total_size ${req.totalSize} must be a positive integer`);
    if (total > this.opts.maxReplyBytes) throw fail(Code.ResourceExhausted, `a reply of ${total} bytes exceeds the limit of ${this.opts.maxReplyBytes}`);
    if (!/^[0-9a-f]{64}$/.test(req.objectId)) throw fail(Code.InvalidArgument, "object_id must be the lower-case hex SHA-256 of the reply");
    const key = `${s.gridId}/${req.taskId}`;
    let u = this.uploads.get(key);
    if (!u || u.objectId !== req.objectId || u.total !== total) {
      if (req.offset !== 0n) return { received: 0n };
      u = { taskId: req.taskId, objectId: req.objectId, total, chunks: [], received: 0 };
      this.uploads.set(key, u);
    }
    // Only the next bytes are taken: a client resumes from what the server says it has.
    if (req.offset !== BigInt(u.received)) return { received: BigInt(u.received) };
    if (u.received + req.data.length > total) throw fail(Code.InvalidArgument, `chunk at ${req.offset} of ${req.data.length} bytes runs past total_size ${total}`);
    u.chunks.push(req.data.slice());
    u.received += req.data.length;
    s.state = ClientState.UPLOADING;
    return { received: BigInt(u.received) };
  }

  pushResult(ctx: HandlerContext, req: PushResultRequest): { status: PushResultStatus } {
    const s = this.session(ctx, req.sessionId);
    const t = this.tasks.get(req.taskId);
    if (!t || t.settled) {
      // A re-push of a reply the state file already holds is a duplicate, not an error.
      if (req.outcome.case === "replyObjectId") {
        const accepted = this.opts.state.acceptedReplyDigest(req.taskId);
        if (accepted && accepted.clientId === s.gridId && accepted.sha256 === req.outcome.value) return { status: PushResultStatus.DUPLICATE };
      }
      throw fail(Code.FailedPrecondition, `task "${req.taskId.slice(0, 40)}" is not open (its round is over, or it was answered)`);
    }
    if (t.gridId !== s.gridId) throw fail(Code.PermissionDenied, `task "${req.taskId.slice(0, 40)}" was not assigned to "${s.gridId}"`);
    s.state = ClientState.IDLE;
    if (req.outcome.case === "failure") {
      const f = req.outcome.value;
      t.settle({ failure: { code: failureCodeFromProto(f.code), message: f.message.slice(0, 2000) } });
      return { status: PushResultStatus.ACCEPTED };
    }
    if (req.outcome.case !== "replyObjectId") throw fail(Code.InvalidArgument, "PushResult needs a reply_object_id or a failure");
    const key = `${s.gridId}/${req.taskId}`;
    const u = this.uploads.get(key);
    if (!u || u.objectId !== req.outcome.value) throw fail(Code.FailedPrecondition, `no upload of object ${req.outcome.value.slice(0, 16)}… for this task: push the reply with PushObject first`);
    if (u.received !== u.total) throw fail(Code.FailedPrecondition, `the upload has ${u.received} of ${u.total} bytes: push the rest first`);
    const payload = concat(u.chunks, u.total);
    this.uploads.delete(key);
    const hash = sha256Hex(payload);
    if (hash !== u.objectId) throw fail(Code.InvalidArgument, `the uploaded bytes hash to ${hash.slice(0, 16)}…, not the announced ${u.objectId.slice(0, 16)}…`);
    if (t.persist) {
      const outcome = this.opts.state.acceptReply({ round: t.round, attempt: t.attempt, taskId: t.taskId, clientId: t.gridId, payload, sha256: hash });
      if (outcome === "conflict" || outcome === "stale") throw fail(Code.FailedPrecondition, `reply refused by the state store (${outcome})`);
    }
    t.settle({ payload });
    this.log(`accepted: ${t.kind} reply of ${t.gridId} for round ${t.round}${t.attempt > 1 ? ` (attempt ${t.attempt})` : ""}, ${payload.length} bytes`);
    return { status: PushResultStatus.ACCEPTED };
  }

  /** Ends the run for clients: every PullTask answers RunFinished from now on. */
  finish(summaryJson: string): void {
    this.finished = summaryJson;
    for (const set of this.waiters.values()) for (const wake of set) wake();
    for (const w of [...this.roundWatchers]) w(undefined);
  }

  // ---- WatchRun: committed rounds for streaming watchers ----

  private readonly roundWatchers = new Set<(recordJson: string | undefined) => void>();

  /** Hands a committed round's record (JSON) to every WatchRun stream (the server calls it per round). */
  publishRound(recordJson: string): void {
    for (const w of [...this.roundWatchers]) w(recordJson);
  }

  /** Calls `listener` with each published record, and with undefined when the run finishes. Returns the unsubscribe function. */
  watchRounds(listener: (recordJson: string | undefined) => void): () => void {
    this.roundWatchers.add(listener);
    return () => this.roundWatchers.delete(listener);
  }

  get isFinished(): boolean {
    return this.finished !== undefined;
  }

  /** Online sessions that have not yet been answered RunFinished (the server waits a little for them). */
  sessionsNotToldFinished(nowMs = Date.now()): number {
    const online = new Set(this.onlineIds(nowMs));
    return [...this.byGrid.values()].filter((s) => online.has(s.gridId) && !s.toldFinished).length;
  }

  // ---- read-only views (the --ui dashboard, net/ui) ----------------------------------------------

  /**
   * One row per identity with a session: liveness, what it reports doing, its device, and the open
   * task it holds (if any). Copies, so a reader cannot change a session.
   */
  clientTable(nowMs = Date.now()): ClientTableRow[] {
    const online = new Set(this.onlineIds(nowMs));
    const open = new Map<string, { round: number; kind: "train" | "evaluate"; handedOut: boolean }>();
    for (const t of this.tasks.values()) if (!t.settled) open.set(t.gridId, { round: t.round, kind: t.kind, handedOut: t.handedOut });
    return [...this.byGrid.values()]
      .map((s) => {
        const task = open.get(s.gridId);
        return {
          id: s.gridId,
          online: online.has(s.gridId),
          state: s.state,
          round: s.round,
          lastSeenMs: s.lastSeenMs,
          device: { ...s.device },
          imagesPerSecond: s.imagesPerSecond,
          ...(task ? { task } : {}),
        };
      })
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The round of the open exchange (tasks waiting for replies), or undefined between rounds. */
  openRound(): number | undefined {
    let round: number | undefined;
    for (const t of this.tasks.values()) if (!t.settled && (round === undefined || t.round > round)) round = t.round;
    return round;
  }
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
