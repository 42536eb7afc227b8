/**
 * @module net/client-core
 * The federated client of proto/safl/v1, platform-free: it joins a server, fetches the backbone once
 * into its cache, gets its data for the run config the server sends, then pulls tasks, trains with
 * the same `ClientEngine` a simulation uses and uploads the replies, until the server says the run
 * is over. `safl client` (net/client, Node) and the browser client (web/client) run this loop with
 * their own `ClientPlatform`: the RPC transport (connect-node over HTTP/2, connect-web over fetch),
 * the object and base caches (files, or OPFS / IndexedDB), the runtime (onnxruntime-node or -web)
 * and where the data comes from.
 *
 * One process may play several identities (`--partition 0-9 --tokens-file F`, for scale tests):
 * each has its own token, session, heartbeat and task loop, and all share one runtime, one engine
 * per model configuration (calls into engines are queued: a compiled step holds one working
 * parameter store) and one cache.
 *
 * Why it is built this way:
 *   - Partition clients get exactly the examples virtual client I of the same simulation gets, and
 *     their storage starts from the backbone's weights, so client I computes what virtual client I
 *     computes, byte for byte.
 *   - Every failure of the network is retried with exponential backoff and full jitter (base 0.5 s,
 *     doubling, capped at 20 s): thousands of clients that lost one server must not come back in
 *     lock step. A client keeps trying forever unless `maxRetrySeconds` says otherwise; a session
 *     the server no longer knows (it restarted) is opened again; only a refused token or a Join the
 *     server refuses (protocol version, backbone, partition) end the client.
 *   - The last replies are kept per task id, so a task that comes back after a reconnect is
 *     answered with the same bytes without training again (the server counts a reply once).
 *   - The token travels only in the `authorization` header; logs name its id (`safl_<id>_…`),
 *     and every message from elsewhere passes through `redact` before it is printed.
 */
import { toBinary } from "@bufbuild/protobuf";
import { type CallOptions, type Client, Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import type { ImageDataset } from "../data/dataset.js";
import { argError, ErrorCode, exitCodeFor, SaflError } from "../errors.js";
import { type ClientContext, ClientEngine, type ClientStorage, failureOf } from "../fl/client.js";
import { decodeMessage } from "../fl/wire.js";
import type { VitConfig } from "../nn/config.js";
import { isHeadParam } from "../peft/model.js";
import type { Runtime } from "../runtime/runtime.js";
import { parseRunConfig, type RunConfig } from "../sim/config.js";
import { sha256Hex } from "../util/sha256.js";
import { type BackboneObject, unpackBackbone } from "./backbone-object.js";
import { type PullChunk, pullToMemory } from "./object-transfer.js";
import {
  ClientState,
  FailureCode,
  FederationService,
  type JoinResponse,
  PushResultStatus,
  type Task,
  TaskKind,
} from "./gen/safl/v1/federation_pb.js";
import { CHUNK_BYTES, FRAME_PREFIX_BYTES, failureCodeToProto, MAX_PULL_WAIT_MS, PROTOCOL_VERSION } from "./protocol.js";
import { tlsFailureMessage } from "./tls-errors.js";
import { parseToken, redact } from "./token-format.js";

/** One identity the process plays: its bearer token and, for a demo client, the partition it asks for. */
export interface ClientIdentity {
  readonly token: string;
  readonly partition?: number;
}

/** The options every client platform shares. */
export interface ClientCoreOptions {
  /** The server's base URL: https://host:port, or http://host:port with `insecure`. */
  readonly server: string;
  /** One or more identities; all share this client's runtime, engines and cache. */
  readonly identities: readonly ClientIdentity[];
  /** When given, the run's dataset must be this one (a guard against joining the wrong run). */
  readonly dataset?: string;
  /** Allow a cleartext http:// server. TLS verification is never turned off. */
  readonly insecure?: boolean;
  /** Give up after the server has been unreachable this long (default: never). */
  readonly maxRetrySeconds?: number;
  /** Reconnect backoff: first ceiling and cap in milliseconds (default 500 and 20 000). */
  readonly backoff?: { readonly baseMs?: number; readonly capMs?: number };
  /** Long-poll time of PullTask (default 20 000 ms, at most MAX_PULL_WAIT_MS). */
  readonly pullWaitMs?: number;
  /** Progress as JSON lines instead of text. */
  readonly json?: boolean;
  /** Where progress lines go (the platform's default when absent). */
  readonly log?: (line: string) => void;
  /** Where the final summary line goes (the platform's default when absent). */
  readonly out?: (line: string) => void;
  /** Every progress event as an object, as it happens (a page renders them). */
  readonly onEvent?: (event: ClientEvent) => void;
  /** Aborting it stops the client: it leaves the run and resolves with code 0. */
  readonly signal?: AbortSignal;
}

/** One progress event: `event` names it ("joined", "backbone", "task", "step", "retry", ...). */
export type ClientEvent = Record<string, unknown> & { readonly event: string };

/** A cache of content-addressed objects (the backbone, frozen bases a task needs). */
export interface ClientObjectStore {
  /** The object's bytes when held and they hash to its id (a corrupt copy is dropped). */
  read(id: string): Promise<Uint8Array | undefined>;
  /** Ids of the complete objects held (at most `limit`, for Join.held_objects). */
  held(limit?: number): Promise<string[]>;
  /** Bytes of a partial download of the object (0 when there is none). */
  partialBytes(id: string): Promise<number>;
  /** The object from the cache, or downloaded through `pull` (resuming a partial one), verified and kept. */
  fetch(id: string, size: number, pull: PullChunk): Promise<Uint8Array>;
  /** Where the object is kept, for messages. */
  describe(id: string): string;
}

/** The frozen bases of one run; a stored base is written in the background until `flush()`. */
export interface ClientBaseStore extends ClientStorage {
  flush(): Promise<void>;
  /** The versions held besides the backbone, when the store can tell (reported once at Join). */
  versions?(): number[];
}

/** What a client trains and evaluates on in one run. */
export interface ClientData {
  /** The backbone's config with the run's labels (the engine's model). */
  readonly config: VitConfig;
  readonly train: ImageDataset;
  /** Local held-out data for client-side evaluation. */
  readonly test?: ImageDataset;
}

/** What the server told an identity at Join, for its platform to find that identity's data. */
export interface DataRequest {
  readonly cfg: RunConfig;
  readonly runConfigJson: string;
  readonly runId: string;
  readonly backbone: BackboneObject;
  readonly clientId: string;
  readonly token: string;
  /** The demo partition the server assigned, when the identity plays one. */
  readonly partition?: number;
}

/** Everything a client does differently on Node and in a browser. */
export interface ClientPlatform {
  /** JoinRequest.device: "node" or "browser", threads, and a platform string. */
  readonly deviceKind: string;
  readonly threads: number;
  readonly platform: string;
  /** JoinRequest.client_software, e.g. "sa-fedlora/0.1.0 node". */
  readonly software: string;
  /** An RPC transport to the server through these interceptors. */
  transport(interceptors: Interceptor[]): Transport;
  readonly objects: ClientObjectStore;
  /** Small named records kept between runs (which backbone was used with which server). */
  loadRecord(name: string): Promise<string | undefined>;
  saveRecord(name: string, text: string): Promise<void>;
  /** The base store of a run; `pretrained` is version 0. */
  baseStore(runId: string, backboneSha256: string, pretrained: ReadonlyMap<string, Float32Array>, warn: (message: string) => void): Promise<ClientBaseStore>;
  /** The runtime, made on first use. */
  runtime(): Runtime;
  /** Data of one identity for a run; SaflErrors name what does not fit. */
  data(request: DataRequest): Promise<ClientData>;
  /** Default sinks for progress lines and the summary line. */
  log(line: string): void;
  out(line: string): void;
  /**
   * Called after every training step; a browser yields to the page here (its event loop would
   * otherwise see no task between two steps: no paint, no timers, no input).
   */
  afterStep?(): Promise<void> | undefined;
  /** Frees what the platform made (the runtime, connections), after every loop has ended. */
  close(): Promise<void>;
}

export type ClientExitReason = "finished" | "stopped" | "unauthenticated" | "refused" | "invalid" | "unavailable" | "error";

/** How `runClient` ended; `code` is the process exit code. */
export interface ClientExit {
  readonly code: number;
  readonly reason: ClientExitReason;
  readonly message: string;
  /** The server's run summary (RunFinished.summary_json, parsed) when the run finished. */
  readonly summary?: unknown;
  /** Tasks answered (accepted or duplicate results), over all identities. */
  readonly tasks: number;
  /** The identities the server gave this process (JoinResponse.client_id), in identity order. */
  readonly clientIds: readonly string[];
}

/**
 * Exit codes: 0 finished or stopped by a signal; 2 the token was refused, or the flags, the data or
 * the partition do not fit the run; 5 the server refused the Join (protocol version, backbone,
 * partition taken); 8 the server stayed unreachable for `maxRetrySeconds`; 1 anything else.
 */
export const CLIENT_EXIT_CODES: Readonly<Record<ClientExitReason, number>> = {
  finished: 0,
  stopped: 0,
  unauthenticated: 2,
  invalid: 2,
  refused: 5,
  unavailable: 8,
  error: 1,
};

const DEFAULT_PULL_WAIT_MS = 20_000;
const CALL_TIMEOUT_MS = 120_000;
/** How much longer than its wait a PullTask may take before it counts as lost. */
const PULL_MARGIN_MS = 15_000;
const HEARTBEAT_TIMEOUT_MS = 15_000;
const LEAVE_TIMEOUT_MS = 5_000;
const MAX_IDLE_WAIT_MS = 60_000;
/** Replies kept per identity for tasks that come back after a reconnect. */
const REPLY_CACHE = 8;
/** RPCs whose bytes count as a task's traffic (the same set net/protocol counts). */
const TASK_RPCS = new Set(["pullTask", "pullObject", "pushObject", "pushResult"]);

// ---- control flow ---------------------------------------------------------------------------

/** Ends every loop of the process with this exit. */
class Fatal extends Error {
  constructor(
    readonly reason: ClientExitReason,
    message: string,
    readonly code: number = CLIENT_EXIT_CODES[reason],
  ) {
    super(message);
  }
}
/** The server does not know the session (it restarted, or the session ended): join again. */
class Rejoin extends Error {}
/** The client was told to stop. */
class Stopped extends Error {}

export const errorText = (e: unknown): string => redact(e instanceof ConnectError ? e.rawMessage : e instanceof SaflError ? e.rawMessage : e instanceof Error ? e.message : String(e));
const codeName = (c: Code): string => Code[c] ?? String(c);

/** A session error: NOT_FOUND per the proto comment, or the FAILED_PRECONDITION the hub sends. */
const isUnknownSession = (e: ConnectError): boolean =>
  (e.code === Code.NotFound || e.code === Code.FailedPrecondition) && /\bsession\b/i.test(e.rawMessage) && /unknown|expired|not found|no such|ended/i.test(e.rawMessage);

/** Errors of the network or of a server that is going away or restarting: retried with backoff. */
const TRANSIENT = new Set([Code.Unavailable, Code.Aborted, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Canceled]);
/** Refusals of one task's RPCs: the task is dropped and the client pulls the next. */
const DROP_TASK = new Set([Code.FailedPrecondition, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument, Code.OutOfRange, Code.ResourceExhausted]);

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The token's id for logs ("safl_<id>_…"), never its secret. */
export function tokenLabel(token: string): string {
  const parsed = parseToken(token);
  return parsed ? parsed.id : "(malformed token)";
}

export const fmtBytes = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);

/** The normalization the backbone was pre-trained with (what `loadRunTask` applies too). */
export function backboneNormalization(config: VitConfig): { mean: number[]; std: number[] } | undefined {
  const source = (config as Record<string, unknown>)["safl_source"] as { normalization?: { mean: number[]; std: number[] } | null } | undefined;
  return source?.normalization ?? undefined;
}

// ---- what the identities share --------------------------------------------------------------

/** What an identity derives from the backbone, the run config and its data. */
interface Setup {
  readonly cfg: RunConfig;
  readonly backbone: BackboneObject;
  readonly engine: ClientEngine;
  readonly pretrained: ReadonlyMap<string, Float32Array>;
  readonly data: ClientData;
}

interface Traffic {
  down: number;
  up: number;
}

class Shared {
  readonly stop = new AbortController();
  readonly pullWaitMs: number;
  readonly baseMs: number;
  readonly capMs: number;
  private engineQueue: Promise<unknown> = Promise.resolve();
  private readonly engines = new Map<string, ClientEngine>();
  private readonly backbones = new Map<string, Promise<BackboneObject>>();
  private readonly storages = new Map<string, Promise<ClientBaseStore>>();

  constructor(
    readonly opts: ClientCoreOptions,
    readonly platform: ClientPlatform,
  ) {
    this.pullWaitMs = Math.min(Math.max(0, opts.pullWaitMs ?? DEFAULT_PULL_WAIT_MS), MAX_PULL_WAIT_MS);
    this.baseMs = opts.backoff?.baseMs ?? 500;
    this.capMs = opts.backoff?.capMs ?? 20_000;
    if (opts.signal) {
      const onAbort = () => this.stop.abort();
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener("abort", onAbort, { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.stop.signal;
  }

  emit(event: ClientEvent, text: string): void {
    this.opts.onEvent?.(event);
    // Step events are for pages; lines would drown the log.
    if (event.event === "step") return;
    const log = this.opts.log ?? ((line: string) => this.platform.log(line));
    log(this.opts.json ? JSON.stringify({ time: new Date().toISOString(), ...event }) : `safl client: ${text}`);
  }

  /** Runs one request through the engine; requests of all identities take turns. */
  handle(engine: ClientEngine, ctx: ClientContext, request: Uint8Array): Promise<{ reply: Uint8Array; computeSeconds: number }> {
    const p = this.engineQueue.then(() => engine.handle(ctx, request));
    this.engineQueue = p.catch(() => undefined);
    return p;
  }

  /** Waits for the engine calls in flight (a stopped client must not free the runtime under them). */
  async idle(): Promise<void> {
    for (let q = this.engineQueue; ; q = this.engineQueue) {
      await q.catch(() => undefined);
      if (q === this.engineQueue) return;
    }
  }

  async close(): Promise<void> {
    await this.idle();
    await this.platform.close();
  }

  /** The record of the backbone last used with this server (what Join reports holding). */
  private serverRecord(): string {
    return `server-${sha256Hex(new TextEncoder().encode(this.opts.server)).slice(0, 24)}`;
  }

  /** The backbone SHA-256 to report at Join: the one last used with this server, if still cached. */
  async heldBackbone(): Promise<string> {
    try {
      const text = await this.platform.loadRecord(this.serverRecord());
      if (text === undefined) return "";
      const rec = JSON.parse(text) as { backboneSha256?: unknown };
      const sha = typeof rec.backboneSha256 === "string" && /^[0-9a-f]{64}$/.test(rec.backboneSha256) ? rec.backboneSha256 : "";
      return sha !== "" && (await this.platform.objects.held(100_000)).includes(sha) ? sha : "";
    } catch {
      return "";
    }
  }

  private async recordBackbone(sha: string): Promise<void> {
    try {
      await this.platform.saveRecord(this.serverRecord(), `${JSON.stringify({ server: this.opts.server, backboneSha256: sha })}\n`);
    } catch {
      // Only an optimization of the next Join.
    }
  }

  /** The backbone: from the cache, or downloaded through `pull` (resumable), verified either way. */
  backbone(sha: string, size: number, pull: PullChunk, onDownload: (resumedFrom: number) => void): Promise<BackboneObject> {
    let p = this.backbones.get(sha);
    if (!p) {
      const objects = this.platform.objects;
      p = (async () => {
        let bytes = await objects.read(sha);
        if (!bytes) {
          onDownload(await objects.partialBytes(sha));
          bytes = await objects.fetch(sha, size, pull);
        }
        const b = unpackBackbone(bytes, sha, `backbone object ${objects.describe(sha)}`);
        await this.recordBackbone(sha);
        return b;
      })();
      this.backbones.set(sha, p);
      p.catch(() => this.backbones.delete(sha));
    }
    return p;
  }

  /** Data, engine and base of one identity in one run. */
  async setup(request: DataRequest): Promise<Setup> {
    const { backbone, cfg } = request;
    const pretrained = new Map(backbone.params.names().filter((n) => !isHeadParam(n)).map((n) => [n, backbone.params.get(n)]));
    const data = await this.platform.data(request);
    // One engine per model: identities of one run share its compiled steps.
    const key = `${backbone.sha256}\n${cfg.wire.dtype}\n${JSON.stringify(data.config)}`;
    let engine = this.engines.get(key);
    if (!engine) {
      engine = new ClientEngine(this.platform.runtime(), data.config, cfg.wire.dtype);
      this.engines.set(key, engine);
    }
    return { cfg, backbone, engine, pretrained, data };
  }

  /** The stored bases of a run (one store per run and backbone, shared by the identities). */
  storage(runId: string, setup: Setup): Promise<ClientBaseStore> {
    const key = `${runId}\n${setup.backbone.sha256}`;
    let s = this.storages.get(key);
    if (!s) {
      s = this.platform.baseStore(runId, setup.backbone.sha256, setup.pretrained, (m) => this.emit({ event: "warning", message: m }, `warning: ${m}`));
      this.storages.set(key, s);
      s.catch(() => this.storages.delete(key));
    }
    return s;
  }
}

// ---- one identity ---------------------------------------------------------------------------

interface CachedReply {
  readonly requestId: string;
  readonly reply: Uint8Array;
  readonly computeSeconds: number;
}

interface Outcome {
  readonly reason: ClientExitReason;
  readonly message: string;
  readonly code: number;
  readonly summary?: unknown;
}

class IdentityLoop {
  readonly tokenId: string;
  readonly traffic: Traffic = { down: 0, up: 0 };
  private readonly rpc: Client<typeof FederationService>;
  private sessionId = "";
  private ctx: ClientContext | undefined;
  private storage: ClientBaseStore | undefined;
  private setupValue: Setup | undefined;
  private chunkBytes = CHUNK_BYTES;
  private status = { state: ClientState.IDLE, round: 0, imagesPerSecond: 0 };
  private heartbeatSeconds = 10;
  private heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  private outage: { start: number; attempt: number } | undefined;
  private readonly replies = new Map<string, CachedReply>();
  private rejoins = { count: 0, lastMs: 0 };
  /** The PullTask in flight, which a heartbeat may cut short. */
  private poll: AbortController | undefined;
  private backboneFailures = 0;
  /** The batch size of the task in training (for the images/s of step events). */
  private batch = 0;
  clientId = "";
  tasks = 0;

  constructor(
    private readonly shared: Shared,
    private readonly identity: ClientIdentity,
  ) {
    this.tokenId = tokenLabel(identity.token);
    const traffic = this.traffic;
    const auth: Interceptor = (next) => async (req) => {
      req.header.set("authorization", `Bearer ${identity.token}`);
      const counted = TASK_RPCS.has(req.method.localName);
      if (counted && !req.stream) traffic.up += toBinary(req.method.input, req.message).length + FRAME_PREFIX_BYTES;
      const res = await next(req);
      if (counted && !res.stream) traffic.down += toBinary(req.method.output, res.message).length + FRAME_PREFIX_BYTES;
      return res;
    };
    this.rpc = createClient(FederationService, shared.platform.transport([auth]));
  }

  private get who(): string {
    return this.clientId !== "" ? this.clientId : `token ${this.tokenId}`;
  }

  /** Runs until the run finishes, the client is stopped, or an error ends it; never throws. */
  async run(): Promise<Outcome> {
    try {
      for (;;) {
        try {
          await this.join();
          return await this.serve();
        } catch (e) {
          if (!(e instanceof Rejoin)) throw e;
          this.stopHeartbeat();
          this.shared.emit({ event: "rejoin", clientId: this.clientId, message: e.message }, `${this.who}: ${e.message}; joining again`);
          // Rejoins in quick succession back off like an outage, so a confused server is not hammered.
          const now = Date.now();
          this.rejoins = now - this.rejoins.lastMs < 60_000 ? { count: this.rejoins.count + 1, lastMs: now } : { count: 0, lastMs: now };
          if (this.rejoins.count > 0) await sleep(Math.random() * Math.min(this.shared.capMs, this.shared.baseMs * 2 ** Math.min(this.rejoins.count, 30)), this.shared.signal);
          if (this.shared.signal.aborted) throw new Stopped();
        }
      }
    } catch (e) {
      this.stopHeartbeat();
      if (e instanceof Stopped || (this.shared.signal.aborted && !(e instanceof Fatal))) {
        await this.leave("shutdown");
        return { reason: "stopped", message: "stopped", code: 0 };
      }
      if (e instanceof Fatal) {
        if (e.reason !== "unauthenticated" && e.reason !== "refused") await this.leave(`client error: ${e.reason}`);
        return { reason: e.reason, message: e.message, code: e.code };
      }
      await this.leave("client error");
      const code = e instanceof SaflError ? exitCodeFor[e.code] : 1;
      return { reason: code === 2 ? "invalid" : "error", message: errorText(e), code };
    } finally {
      this.stopHeartbeat();
    }
  }

  // ---- calls ----

  /** One RPC, retried with backoff while the network or the server is unavailable. */
  private async call<T>(what: string, fn: (o: CallOptions) => Promise<T>, opts: { timeoutMs?: number; transient?: readonly Code[]; poll?: AbortController } = {}): Promise<T> {
    for (;;) {
      if (this.shared.signal.aborted) throw new Stopped();
      try {
        const r = await fn({ signal: opts.poll?.signal ?? this.shared.signal, timeoutMs: opts.timeoutMs ?? CALL_TIMEOUT_MS });
        this.outage = undefined;
        return r;
      } catch (e) {
        if (this.shared.signal.aborted) throw new Stopped();
        if (opts.poll?.signal.aborted) throw new Rejoin("a heartbeat found the session unknown to the server");
        const ce = ConnectError.from(e);
        const tls = tlsFailureMessage(ce, this.shared.opts.server);
        if (tls !== undefined) throw new Fatal("invalid", tls);
        if (ce.code === Code.Unauthenticated) {
          throw new Fatal("unauthenticated", `the server refused the token of client "${this.tokenId}" (safl_${this.tokenId}_…): ${redact(ce.rawMessage)}`);
        }
        if (this.sessionId !== "" && isUnknownSession(ce)) throw new Rejoin(`the server does not know the session (${redact(ce.rawMessage)})`);
        if (!TRANSIENT.has(ce.code) && !opts.transient?.includes(ce.code)) throw ce;
        await this.backoff(what, ce);
      }
    }
  }

  /** Waits before the next attempt: a uniform draw below min(cap, base * 2^attempt) (full jitter). */
  private async backoff(what: string, ce: ConnectError): Promise<void> {
    const now = Date.now();
    this.outage ??= { start: now, attempt: 0 };
    const elapsedMs = now - this.outage.start;
    const max = this.shared.opts.maxRetrySeconds;
    if (max !== undefined && elapsedMs >= max * 1000) {
      throw new Fatal("unavailable", `${this.who}: gave up after ${(elapsedMs / 1000).toFixed(1)} s without the server (${what}: ${codeName(ce.code)}: ${redact(ce.rawMessage)})`);
    }
    const ceiling = Math.min(this.shared.capMs, this.shared.baseMs * 2 ** Math.min(this.outage.attempt, 30));
    let delay = Math.random() * ceiling;
    if (max !== undefined) delay = Math.min(delay, max * 1000 - elapsedMs);
    const attempt = ++this.outage.attempt;
    // Text lines thin out over a long outage (attempts 1, 2, 4, 8, ...); JSON lines record every retry.
    if (this.shared.opts.json || (attempt & (attempt - 1)) === 0) {
      this.shared.emit(
        { event: "retry", clientId: this.clientId, call: what, code: codeName(ce.code), message: redact(ce.rawMessage), attempt, delayMs: Math.round(delay) },
        `${this.who}: ${what} failed (${codeName(ce.code)}: ${redact(ce.rawMessage)}); retrying in ${(delay / 1000).toFixed(1)} s${attempt > 1 ? ` (attempt ${attempt}, ${(elapsedMs / 1000).toFixed(0)} s without the server)` : ""}`,
      );
    }
    await sleep(delay, this.shared.signal);
    if (this.shared.signal.aborted) throw new Stopped();
  }

  /** A chunk reader for PullObject on the current session. */
  private puller(objectId: string): PullChunk {
    return async (offset) => {
      const r = await this.call("PullObject", (o) => this.rpc.pullObject({ sessionId: this.sessionId, objectId, offset: BigInt(offset), maxBytes: this.chunkBytes }, o));
      if (r.offset !== BigInt(offset)) throw new SaflError(ErrorCode.Io, `object ${objectId.slice(0, 12)}…: asked for offset ${offset}, the server sent ${r.offset}`);
      return { data: r.data, totalSize: Number(r.totalSize), last: r.last };
    };
  }

  // ---- session ----

  private async join(): Promise<void> {
    const s = this.shared;
    this.sessionId = "";
    const partition = this.identity.partition;
    const res = await this.call(
      "Join",
      async (o) =>
        this.rpc.join(
          {
            protocolVersion: PROTOCOL_VERSION,
            backboneSha256: await s.heldBackbone(),
            clientSoftware: s.platform.software,
            device: { kind: s.platform.deviceKind, threads: s.platform.threads, platform: s.platform.platform.slice(0, 512) },
            heldObjects: await s.platform.objects.held(),
            ...(partition !== undefined ? { partitionRequest: String(partition) } : {}),
          },
          o,
        ),
      // A Join refused for its rate is retried like an outage.
      { transient: [Code.ResourceExhausted] },
    ).catch((e: unknown) => {
      if (e instanceof ConnectError) throw new Fatal("refused", `the server refused to let ${this.who} join: ${redact(e.rawMessage)}`);
      throw e;
    });
    if (res.protocolVersion !== PROTOCOL_VERSION) {
      throw new Fatal("refused", `the server speaks protocol version ${res.protocolVersion}, this client ${PROTOCOL_VERSION} (run the same sa-fedlora release on both)`);
    }
    this.sessionId = res.sessionId;
    this.clientId = res.clientId;
    this.chunkBytes = Math.min(res.maxChunkBytes > 0 ? res.maxChunkBytes : CHUNK_BYTES, CHUNK_BYTES);
    this.heartbeatSeconds = res.heartbeatSeconds > 0 ? res.heartbeatSeconds : 10;
    this.setStatus(ClientState.IDLE, 0);
    this.startHeartbeat();

    let cfg: RunConfig;
    try {
      cfg = parseRunConfig(JSON.parse(res.runConfigJson), "the server's run config");
    } catch (e) {
      throw new Fatal("refused", `cannot use the server's run config: ${errorText(e)}`);
    }
    let index: number | undefined;
    if (partition !== undefined) {
      if (res.partitionIndex < 0) throw new Fatal("refused", `the server assigned ${this.who} no partition (asked for ${partition}); does it run a demo partitioning?`);
      index = res.partitionIndex;
      if (index >= cfg.clients.count) {
        throw new Fatal("invalid", `partition ${index} is out of range: the run has ${cfg.clients.count} partitions (0-${cfg.clients.count - 1})`);
      }
      if (index !== partition) this.shared.emit({ event: "warning", message: `asked for partition ${partition}, assigned ${index}` }, `${this.who}: asked for partition ${partition}, the server assigned ${index}`);
      const virtualId = `client-${String(index).padStart(4, "0")}`;
      if (res.clientId !== virtualId) {
        this.shared.emit({ event: "warning", message: `partition ${index} is played as "${res.clientId}"` }, `warning: partition ${index} is played as "${res.clientId}", not ${virtualId} (the run will not match its simulation)`);
      }
    }
    if (s.opts.dataset !== undefined && s.opts.dataset !== cfg.data.dataset) {
      throw new Fatal("invalid", `the run trains on dataset "${cfg.data.dataset}", not "${s.opts.dataset}" (--dataset)`);
    }
    this.shared.emit(
      { event: "joined", clientId: res.clientId, token: this.tokenId, runId: res.runId, partition: index ?? null, heartbeatSeconds: this.heartbeatSeconds },
      `joined run ${res.runId} as ${res.clientId} (token ${this.tokenId}${index !== undefined ? `, partition ${index}` : ""})`,
    );

    const sha = res.backboneSha256;
    const ref = res.backboneObject;
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new Fatal("refused", `the server named no valid backbone (backbone_sha256 ${JSON.stringify(sha.slice(0, 80))})`);
    if (ref && ref.id !== "" && ref.id !== sha) throw new Fatal("refused", `the server's backbone object ${ref.id.slice(0, 12)}… is not its backbone ${sha.slice(0, 12)}…`);
    this.setStatus(ClientState.DOWNLOADING, 0);
    const started = Date.now();
    let downloaded: number | undefined;
    const before = this.traffic.down;
    const backbone = await s
      .backbone(sha, Number(ref?.size ?? 0n), this.puller(sha), (from) => {
        downloaded = from;
        s.emit({ event: "backbone", sha256: sha, size: Number(ref?.size ?? 0n), resumeFrom: from }, `downloading the backbone ${sha.slice(0, 12)}… (${fmtBytes(Number(ref?.size ?? 0n))}${from > 0 ? `, resuming at ${fmtBytes(from)}` : ""})`);
      })
      .catch((e: unknown) => {
        if (e instanceof Rejoin || e instanceof Fatal || e instanceof Stopped) throw e;
        if (e instanceof ConnectError) throw new Fatal("refused", `cannot download the backbone: ${codeName(e.code)}: ${redact(e.rawMessage)}`);
        if (e instanceof SaflError && (e.code === ErrorCode.Io || e.code === ErrorCode.Checkpoint)) {
          // A download that does not verify is discarded and tried again, a few times.
          if (++this.backboneFailures >= 3) throw new Fatal("refused", `the server's backbone cannot be used: ${e.rawMessage}`, 5);
          throw new Rejoin(`the backbone download failed (${e.rawMessage})`);
        }
        throw e;
      });
    if (downloaded !== undefined) {
      s.emit({ event: "backbone", sha256: sha, bytes: this.traffic.down - before, seconds: (Date.now() - started) / 1000 }, `backbone ${sha.slice(0, 12)}… downloaded and verified`);
    } else {
      s.emit({ event: "backbone", sha256: sha, cached: true }, `backbone ${sha.slice(0, 12)}… from the cache`);
    }
    this.setStatus(ClientState.IDLE, 0);
    let setup: Setup;
    try {
      setup = await s.setup({ cfg, runConfigJson: res.runConfigJson, runId: res.runId, backbone, clientId: res.clientId, token: this.identity.token, ...(index !== undefined ? { partition: index } : {}) });
    } catch (e) {
      if (e instanceof Rejoin || e instanceof Fatal || e instanceof Stopped) throw e;
      if (e instanceof SaflError) throw new Fatal(exitCodeFor[e.code] === 2 ? "invalid" : "error", `cannot prepare the data for run ${res.runId}: ${e.rawMessage}`, exitCodeFor[e.code]);
      throw e;
    }
    this.setupValue = setup;
    this.ctx = await this.context(setup, res);
  }

  private async context(setup: Setup, res: JoinResponse): Promise<ClientContext> {
    const storage = await this.shared.storage(res.runId, setup);
    this.storage = storage;
    const held = storage.versions?.() ?? [];
    if (held.length > 0) this.shared.emit({ event: "bases", clientId: this.clientId, versions: held }, `${this.who}: holds base version${held.length === 1 ? "" : "s"} ${held.join(", ")} of run ${res.runId} from an earlier session`);
    const { train, test } = setup.data;
    const onStep = (step: number, steps: number, loss: number): Promise<void> | undefined => {
      this.shared.emit({ event: "step", clientId: this.clientId, round: this.status.round, step, steps, loss, batch: this.batch }, `step ${step}/${steps}: loss ${loss}`);
      return this.shared.platform.afterStep?.();
    };
    return { clientId: res.clientId, train, ...(test ? { test } : {}), storage, onStep };
  }

  private async leave(reason: string): Promise<void> {
    if (this.sessionId === "") return;
    const sessionId = this.sessionId;
    this.sessionId = "";
    try {
      await this.rpc.leave({ sessionId, reason }, { timeoutMs: LEAVE_TIMEOUT_MS });
    } catch {
      // Best effort: the server reassigns the tasks after missed heartbeats anyway.
    }
  }

  // ---- heartbeat ----

  private setStatus(state: ClientState, round: number): void {
    this.status = { ...this.status, state, round };
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.scheduleHeartbeat();
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = setTimeout(() => void this.beat(), this.heartbeatSeconds * 1000);
    (this.heartbeatTimer as { unref?: () => void }).unref?.();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== undefined) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  private async beat(): Promise<void> {
    const timer = this.heartbeatTimer;
    if (this.sessionId === "" || this.shared.signal.aborted) return;
    try {
      const { state, round, imagesPerSecond } = this.status;
      const r = await this.rpc.heartbeat(
        { sessionId: this.sessionId, status: { state, round, imagesPerSecond: state === ClientState.TRAINING ? imagesPerSecond : 0 } },
        { timeoutMs: HEARTBEAT_TIMEOUT_MS, signal: this.shared.signal },
      );
      if (r.heartbeatSeconds > 0) this.heartbeatSeconds = r.heartbeatSeconds;
    } catch (e) {
      // The task loop meets other problems on its next call; a long poll it would wait out.
      const ce = ConnectError.from(e);
      if (isUnknownSession(ce) || ce.code === Code.Unauthenticated) this.poll?.abort();
    }
    // Still the current schedule (not stopped or restarted meanwhile): go on.
    if (timer === this.heartbeatTimer && !this.shared.signal.aborted) this.scheduleHeartbeat();
  }

  // ---- tasks ----

  private async serve(): Promise<Outcome> {
    const waitMs = this.shared.pullWaitMs;
    for (;;) {
      this.setStatus(ClientState.IDLE, this.status.round);
      // A long poll can be cut by a heartbeat that finds the session gone (the server restarted
      // under a poll whose stream never failed), and it times out soon after the server's longest wait.
      const poll = new AbortController();
      const onStop = () => poll.abort();
      this.shared.signal.addEventListener("abort", onStop, { once: true });
      this.poll = poll;
      let r: Awaited<ReturnType<typeof this.rpc.pullTask>>;
      try {
        r = await this.call("PullTask", (o) => this.rpc.pullTask({ sessionId: this.sessionId, waitMs }, o), { timeoutMs: Math.max(waitMs, 1000) + PULL_MARGIN_MS, poll });
      } finally {
        this.poll = undefined;
        this.shared.signal.removeEventListener("abort", onStop);
      }
      const outcome = r.outcome;
      if (outcome.case === "task") await this.runTask(outcome.value);
      else if (outcome.case === "idle") await sleep(Math.min(outcome.value.retryAfterMs, MAX_IDLE_WAIT_MS), this.shared.signal);
      else if (outcome.case === "finished") {
        let summary: unknown;
        try {
          summary = JSON.parse(outcome.value.summaryJson);
        } catch {
          summary = outcome.value.summaryJson;
        }
        this.shared.emit({ event: "finished", clientId: this.clientId, tasks: this.tasks }, `${this.who}: the run is finished (${this.tasks} task${this.tasks === 1 ? "" : "s"} answered)`);
        this.stopHeartbeat();
        await this.leave("run finished");
        return { reason: "finished", message: "the run is finished", code: 0, summary };
      } else await sleep(1000, this.shared.signal);
      if (this.shared.signal.aborted) throw new Stopped();
    }
  }

  private async runTask(task: Task): Promise<void> {
    const started = Date.now();
    const before = { ...this.traffic };
    const kind = task.kind === TaskKind.TRAIN ? "train" : task.kind === TaskKind.EVALUATE ? "evaluate" : "unknown";
    this.setStatus(ClientState.DOWNLOADING, task.round);
    const report = (fields: Record<string, unknown>, text: string) =>
      this.shared.emit(
        {
          event: "task",
          clientId: this.clientId,
          taskId: task.taskId,
          round: task.round,
          attempt: task.attempt,
          kind,
          seconds: (Date.now() - started) / 1000,
          bytesDown: this.traffic.down - before.down,
          bytesUp: this.traffic.up - before.up,
          ...fields,
        },
        `${this.who} round ${task.round} ${kind}${task.attempt > 0 ? ` (attempt ${task.attempt})` : ""}: ${text}, ${((Date.now() - started) / 1000).toFixed(2)} s, ${fmtBytes(this.traffic.down - before.down)} down, ${fmtBytes(this.traffic.up - before.up)} up`,
      );
    try {
      if (task.kind !== TaskKind.TRAIN && task.kind !== TaskKind.EVALUATE) {
        await this.pushFailure(task, FailureCode.BAD_INSTRUCTION, `task kind ${task.kind} is not one this client knows`);
        report({ status: "failed", failure: "bad-instruction" }, "unknown task kind, reported");
        return;
      }
      const requestId = task.request?.id ?? "";
      let entry = this.replies.get(task.taskId);
      const cached = entry !== undefined && entry.requestId === requestId;
      if (!entry || !cached) {
        entry = await this.compute(task);
        this.replies.delete(task.taskId);
        this.replies.set(task.taskId, entry);
        while (this.replies.size > REPLY_CACHE) this.replies.delete(this.replies.keys().next().value!);
      }
      this.setStatus(ClientState.UPLOADING, task.round);
      const status = await this.pushReply(task.taskId, entry.reply);
      this.tasks++;
      const reply = decodeMessage(entry.reply);
      const steps = reply.metrics?.["steps"];
      const fields = {
        status: status === PushResultStatus.DUPLICATE ? "duplicate" : "accepted",
        cached,
        steps: steps ?? null,
        computeSeconds: entry.computeSeconds,
        replyBytes: entry.reply.length,
        ...(reply.failure ? { failure: reply.failure.code, message: reply.failure.message } : {}),
      };
      const what = reply.failure
        ? `failed (${reply.failure.code}: ${reply.failure.message})`
        : kind === "train"
          ? `${steps ?? "?"} steps on ${reply.sampleCount ?? "?"} examples`
          : `evaluated ${reply.sampleCount ?? "?"} examples`;
      report(fields, `${what}${cached ? " (cached reply)" : ""}${status === PushResultStatus.DUPLICATE ? " (duplicate)" : ""}`);
    } catch (e) {
      if (e instanceof Rejoin || e instanceof Fatal || e instanceof Stopped) throw e;
      if (e instanceof ConnectError) {
        if (!DROP_TASK.has(e.code)) throw e;
        report({ status: "dropped", code: codeName(e.code), message: redact(e.rawMessage) }, `dropped (${codeName(e.code)}: ${redact(e.rawMessage)})`);
        return;
      }
      // Something local (a download that does not verify twice, a disk error): tell the server.
      const f = failureOf(e);
      try {
        await this.pushFailure(task, failureCodeToProto(f.code), f.message);
      } catch (e2) {
        if (!(e2 instanceof ConnectError && DROP_TASK.has(e2.code))) throw e2;
      }
      report({ status: "failed", failure: f.code, message: f.message }, `failed (${f.code}: ${f.message}), reported`);
    } finally {
      this.setStatus(ClientState.IDLE, task.round);
    }
  }

  /** Downloads what the task needs and runs it through the engine. */
  private async compute(task: Task): Promise<CachedReply> {
    const ref = task.request;
    if (!ref || !/^[0-9a-f]{64}$/.test(ref.id)) throw new SaflError(ErrorCode.Io, "the task names no valid request object");
    // Objects the task says it needs (e.g. a frozen base): fetched into the cache if missing.
    for (const need of task.needs) {
      if (!(await this.shared.platform.objects.read(need.id))) await this.shared.platform.objects.fetch(need.id, Number(need.size), this.puller(need.id));
    }
    let request: Uint8Array;
    try {
      request = await pullToMemory(ref.id, Number(ref.size), this.puller(ref.id));
    } catch (e) {
      if (!(e instanceof SaflError)) throw e;
      // Corrupted on the way: one more try before reporting a bad message.
      request = await pullToMemory(ref.id, Number(ref.size), this.puller(ref.id));
    }
    const ctx = this.ctx!;
    const setup = this.setupValue!;
    const batch = batchOf(request);
    this.batch = batch;
    this.setStatus(ClientState.TRAINING, task.round);
    const handled = this.shared.handle(setup.engine, ctx, request);
    const stopped = new Promise<never>((_, reject) => {
      const onAbort = () => reject(new Stopped());
      if (this.shared.signal.aborted) onAbort();
      else this.shared.signal.addEventListener("abort", onAbort, { once: true });
      void handled.finally(() => this.shared.signal.removeEventListener("abort", onAbort)).catch(() => undefined);
    });
    stopped.catch(() => undefined);
    const out = await Promise.race([handled, stopped]);
    // A base the request carried is on disk before the reply that used it is acknowledged.
    await this.storage?.flush();
    const images = batch * stepsOf(out.reply);
    if (images > 0 && out.computeSeconds > 0) this.status.imagesPerSecond = images / out.computeSeconds;
    return { requestId: ref.id, reply: out.reply, computeSeconds: out.computeSeconds };
  }

  /** Uploads a reply in chunks (resuming where the server says it stands) and commits it. */
  private async pushReply(taskId: string, bytes: Uint8Array): Promise<PushResultStatus> {
    const objectId = sha256Hex(bytes);
    for (let attempt = 0; ; attempt++) {
      await this.upload(taskId, objectId, bytes);
      try {
        const r = await this.call("PushResult", (o) => this.rpc.pushResult({ sessionId: this.sessionId, taskId, outcome: { case: "replyObjectId", value: objectId } }, o));
        return r.status;
      } catch (e) {
        // The server lost the upload (e.g. it restarted between the last chunk and the commit): once more.
        if (attempt === 0 && e instanceof ConnectError && e.code === Code.FailedPrecondition && /PushObject|push the rest|upload/i.test(e.rawMessage)) continue;
        throw e;
      }
    }
  }

  private async upload(taskId: string, objectId: string, bytes: Uint8Array): Promise<void> {
    let offset = 0;
    let stalls = 0;
    while (offset < bytes.length) {
      const end = Math.min(offset + this.chunkBytes, bytes.length);
      const sent = offset;
      const r = await this.call("PushObject", (o) =>
        this.rpc.pushObject({ sessionId: this.sessionId, taskId, objectId, offset: BigInt(sent), totalSize: BigInt(bytes.length), data: bytes.subarray(sent, end) }, o),
      );
      const received = Number(r.received);
      if (!Number.isSafeInteger(received) || received < 0 || received > bytes.length) {
        throw new SaflError(ErrorCode.Io, `the server says it holds ${r.received} bytes of a ${bytes.length}-byte reply`);
      }
      // A smaller count than we sent means the server lost part of the upload: resume from its count.
      stalls = received > offset ? 0 : stalls + 1;
      if (stalls > 3) throw new SaflError(ErrorCode.Io, `the server does not take the reply's chunk at ${offset} (it holds ${received} bytes)`);
      offset = received;
    }
  }

  private async pushFailure(task: Task, code: FailureCode, message: string): Promise<void> {
    await this.call("PushResult", (o) => this.rpc.pushResult({ sessionId: this.sessionId, taskId: task.taskId, outcome: { case: "failure", value: { code, message: message.slice(0, 4096) } } }, o));
  }
}

/** The batch size a broadcast asks for (0 when it does not say), for the throughput in heartbeats. */
function batchOf(request: Uint8Array): number {
  try {
    const b = decodeMessage(request).config?.["batch"];
    return typeof b === "number" && b > 0 ? b : 0;
  } catch {
    return 0;
  }
}

/** Local steps a reply reports (0 for evaluations and failures). */
function stepsOf(reply: Uint8Array): number {
  try {
    const s = decodeMessage(reply).metrics?.["steps"];
    return typeof s === "number" && s > 0 ? s : 0;
  } catch {
    return 0;
  }
}

// ---- entry point ----------------------------------------------------------------------------

/** Checks the options every platform shares, before anything is started. */
export function checkCoreOptions(opts: ClientCoreOptions): void {
  let url: URL;
  try {
    url = new URL(opts.server);
  } catch {
    throw argError(`--server ${JSON.stringify(opts.server)} is not a URL (expected https://host:port, or http://host:port with --insecure)`);
  }
  if (url.protocol === "http:" && !opts.insecure) {
    throw argError(`refusing the cleartext server ${opts.server}: tokens and model updates would travel unencrypted; use https:// (with --ca for a private CA), or pass --insecure for a local test server`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw argError(`--server must be an http:// or https:// URL, got ${url.protocol}`);
  if (opts.identities.length === 0) throw argError("no identity: pass --token (or --tokens-file with --partition)");
  for (const id of opts.identities) {
    if (id.token === "") throw argError("empty token");
    if (id.partition !== undefined && (!Number.isInteger(id.partition) || id.partition < 0)) throw argError(`partition must be an integer >= 0, got ${id.partition}`);
  }
  const parts = opts.identities.map((i) => i.partition).filter((p) => p !== undefined);
  if (new Set(parts).size !== parts.length) throw argError("each partition may be played by one identity only");
}

/**
 * Runs the client on `platform` until the run finishes (code 0), it is stopped through
 * `opts.signal` (it leaves the run; code 0), or it cannot go on (see CLIENT_EXIT_CODES). Progress
 * goes to `opts.log` (or the platform's), one line per task; the run's summary to `opts.out`.
 * Throws only for invalid options.
 */
export async function runClientOn(platform: ClientPlatform, opts: ClientCoreOptions): Promise<ClientExit> {
  checkCoreOptions(opts);
  const shared = new Shared(opts, platform);
  const loops = opts.identities.map((id) => new IdentityLoop(shared, id));
  const outcomes = await Promise.all(
    loops.map(async (l) => {
      const o = await l.run();
      // One identity that cannot go on stops the others: the client ends with its reason.
      if (o.reason !== "finished" && o.reason !== "stopped") shared.stop.abort();
      return o;
    }),
  );
  if (opts.signal?.aborted) shared.emit({ event: "stopping" }, "stopping (waiting for local work in progress to end)");
  await shared.close();
  const worst = outcomes.find((o) => o.reason !== "finished" && o.reason !== "stopped");
  const final = worst ?? (outcomes.every((o) => o.reason === "finished") ? outcomes[0]! : outcomes.find((o) => o.reason === "stopped")!);
  const tasks = loops.reduce((n, l) => n + l.tasks, 0);
  const clientIds = loops.map((l) => l.clientId);
  const exit: ClientExit = { code: final.code, reason: final.reason, message: final.message, ...(final.summary !== undefined ? { summary: final.summary } : {}), tasks, clientIds };
  if (exit.reason === "finished") {
    const out = opts.out ?? ((line: string) => platform.out(line));
    out(opts.json ? JSON.stringify({ event: "summary", clientIds, tasks, summary: exit.summary ?? null }) : summaryLine(exit));
    opts.onEvent?.({ event: "summary", clientIds, tasks, summary: exit.summary ?? null });
  } else if (exit.code !== 0) {
    shared.emit({ event: "exit", code: exit.code, reason: exit.reason, message: exit.message }, `error: ${exit.message}`);
  }
  return exit;
}

/** The one line `safl client` prints when the run is over. */
export function summaryLine(exit: Pick<ClientExit, "summary" | "tasks" | "clientIds">): string {
  const s = exit.summary;
  const who = `${exit.clientIds.join(", ")} answered ${exit.tasks} task${exit.tasks === 1 ? "" : "s"}`;
  if (s === null || typeof s !== "object" || Array.isArray(s)) return `run finished; ${who}${typeof s === "string" && s !== "" ? `; summary: ${s.slice(0, 500)}` : ""}`;
  const o = s as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof o["strategy"] === "string") parts.push(o["strategy"]);
  if (typeof o["rounds"] === "number") parts.push(`${o["rounds"]} rounds`);
  if (typeof o["finalAccuracy"] === "number") parts.push(`final accuracy ${(o["finalAccuracy"] * 100).toFixed(2)}%`);
  const total = o["total"] as { bytes?: unknown } | undefined;
  if (total && typeof total.bytes === "number") parts.push(`${fmtBytes(total.bytes)} exchanged`);
  return `run finished${parts.length > 0 ? ` (${parts.join(", ")})` : ""}; ${who}`;
}
