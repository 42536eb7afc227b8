/**
 * Test fixture (not a test file, not shipped: the name matches the package's `*.test.*` exclusion
 * but not node:test's `*.test.js` pattern): an in-process federation server assembled the way
 * `runServer` (net/server.ts) assembles it — a FederationHub over a StateStore in a temp dir and a
 * TokenVerifier over a token file with three clients made by createToken, served by the server's
 * own federationHandler (net/routes: connectNodeAdapter with readMaxBytes/writeMaxBytes =
 * MAX_MESSAGE_BYTES and the kRemoteAddress context value) on cleartext HTTP/2 at 127.0.0.1:0 with
 * the server's 16 MiB connection window — plus the NetworkGrid whose send() a test
 * drives, typed clients over Connect, gRPC and gRPC-web, and helpers shared by security.test.ts and
 * fuzz.test.ts.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { encodeMessage } from "../fl/wire.js";
import { FederationService, type PushResultStatus } from "./gen/safl/v1/federation_pb.js";
import { FederationHub } from "./hub.js";
import { NetworkGrid } from "./network-grid.js";
import { PROTOCOL_VERSION } from "./protocol.js";
import { federationHandler } from "./routes.js";
import { StateStore } from "./state.js";
import { createToken, RateLimiter, TokenVerifier } from "./tokens.js";

export type FedClient = Client<typeof FederationService>;
export type TransportKind = "connect" | "grpc" | "grpc-web";
export const CLIENT_IDS = ["alice", "bob", "carol"] as const;
export type ClientName = (typeof CLIENT_IDS)[number];

export const sha256Hex = (b: Uint8Array | string): string => createHash("sha256").update(b).digest("hex");

export interface Fixture {
  readonly dir: string;
  readonly tokensPath: string;
  /** The current token of each client (a test that re-issues one updates it here). */
  readonly tokens: Record<ClientName, string>;
  readonly runId: string;
  readonly state: StateStore;
  readonly hub: FederationHub;
  readonly grid: NetworkGrid;
  readonly server: http2.Http2Server;
  readonly baseUrl: string;
  readonly backbone: { readonly sha256: string; readonly bytes: Uint8Array };
  /** Every line the hub and the grid logged. */
  readonly logs: string[];
  readonly partitions: number;
  client(kind?: TransportKind): FedClient;
  close(): Promise<void>;
}

export interface FixtureOptions {
  /** The Join limiter; default as net/server.ts builds it (20 attempts, 2 per second per address). */
  readonly joinLimiter?: RateLimiter;
  readonly partitions?: number;
}

export async function startFixture(o: FixtureOptions = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "safl-hub-"));
  const tokensPath = join(dir, "tokens.json");
  const tokens = {} as Record<ClientName, string>;
  for (const id of CLIENT_IDS) tokens[id] = await createToken(tokensPath, id);
  const state = StateStore.open(join(dir, "state.db"));
  const runId = "run-fixture-0001";
  const configJson = JSON.stringify({ fixture: true });
  state.initRun({ runId, configJson, configHash: sha256Hex(configJson) });
  const backboneBytes = new TextEncoder().encode("a small backbone object: any bytes with their sha256 work for the hub\n".repeat(40));
  const backbone = { sha256: sha256Hex(backboneBytes), bytes: backboneBytes };
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(line);
  };
  const partitions = o.partitions ?? 4;
  const hub = new FederationHub({
    runId,
    runConfigJson: configJson,
    backbone,
    heartbeatSeconds: 30,
    partitions,
    tokens: TokenVerifier.load(tokensPath),
    state,
    joinLimiter: o.joinLimiter ?? new RateLimiter({ capacity: 20, refillPerSecond: 2 }),
    maxReplyBytes: 2 * 1024 * 1024 * 1024 - 1,
    log,
  });
  const handler = federationHandler(hub);
  const server = http2.createServer(handler);
  const h2sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    h2sessions.add(session);
    session.once("close", () => h2sessions.delete(session));
    session.setLocalWindowSize?.(16 * 1024 * 1024);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const grid = new NetworkGrid({ runId, hub, state, minClients: 0, waitForClientsSeconds: 0, defaultTimeoutSeconds: 300, log });
  const managers: Http2SessionManager[] = [];
  const clients = new Map<TransportKind, FedClient>();
  let closed = false;
  return {
    dir,
    tokensPath,
    tokens,
    runId,
    state,
    hub,
    grid,
    server,
    baseUrl,
    backbone,
    logs,
    partitions,
    client(kind: TransportKind = "connect"): FedClient {
      let c = clients.get(kind);
      if (!c) {
        const sessionManager = new Http2SessionManager(baseUrl);
        managers.push(sessionManager);
        const transport =
          kind === "grpc"
            ? createGrpcTransport({ baseUrl, sessionManager })
            : kind === "grpc-web"
              ? createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager })
              : createConnectTransport({ baseUrl, httpVersion: "2", sessionManager });
        c = createClient(FederationService, transport);
        clients.set(kind, c);
      }
      return c;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const m of managers) m.abort();
      await grid.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of h2sessions) s.destroy();
      });
      state.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Call options carrying a bearer token. */
export const auth = (token: string | undefined): { headers: Record<string, string> } => ({ headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

/** A well-formed token nobody issued (a random secret), for `id`. */
export function forgedToken(id: string, seed: number): string {
  return `safl_${id}_${createHash("sha256").update(`forged/${id}/${seed}`).digest().toString("base64url").slice(0, 43)}`;
}

/** The secret part of a token (what must never leak). */
export const secretOf = (token: string): string => token.slice(-43);

/** Whether `text` carries a token's secret, or a run of 12 or more of its characters. */
export function leaks(text: string, token: string): boolean {
  const s = secretOf(token);
  for (let i = 0; i + 12 <= s.length; i++) if (text.includes(s.slice(i, i + 12))) return true;
  return false;
}

export const codeOf = (e: unknown): Code => ConnectError.from(e).code;
export const codeName = (c: Code): string => Code[c] ?? `code${c}`;

/** Runs `call`, which must fail with `code`; returns the error (for message checks). */
export async function expectCode(code: Code, call: () => Promise<unknown>, what = ""): Promise<ConnectError> {
  try {
    await call();
  } catch (e) {
    const ce = ConnectError.from(e);
    if (ce.code !== code) throw new Error(`${what}: expected ${codeName(code)}, got ${codeName(ce.code)}: ${ce.rawMessage}`);
    return ce;
  }
  throw new Error(`${what}: expected ${codeName(code)}, but the call succeeded`);
}

/** A valid wire broadcast for one client. */
export function broadcastFor(round: number, clientId: string): Uint8Array {
  const data = Float32Array.from({ length: 4 }, (_, i) => round + i / 8 + clientId.length);
  return encodeMessage({ kind: "broadcast", round, clientId, config: { localEpochs: 1 }, tensors: [{ name: "w", shape: [4], data }], packed: [], scores: [] });
}

/** A valid wire reply of one client. */
export function replyFor(round: number, clientId: string, salt = 0): Uint8Array {
  const data = Float32Array.from({ length: 4 }, (_, i) => (round * 10 + i + salt) / 16);
  return encodeMessage({ kind: "reply", round, clientId, sampleCount: 8, metrics: { trainLoss: 0.25 + salt }, tensors: [{ name: "w", shape: [4], data }], packed: [], scores: [] });
}

export const joinRequest = (extra: Record<string, unknown> = {}) => ({
  protocolVersion: PROTOCOL_VERSION,
  backboneSha256: "",
  clientSoftware: "sa-fedlora/test",
  device: { kind: "node", threads: 2, platform: "linux x64 node 20" },
  heldObjects: [],
  ...extra,
});

/** Uploads `payload` for a task in `chunks` pieces and completes it; returns the PushResult status. */
export async function pushReply(c: FedClient, token: string, sessionId: string, taskId: string, payload: Uint8Array, chunks = 1): Promise<PushResultStatus> {
  const objectId = sha256Hex(payload);
  const size = Math.ceil(payload.length / chunks);
  for (let at = 0; at < payload.length; at += size) {
    const r = await c.pushObject({ sessionId, taskId, objectId, offset: BigInt(at), totalSize: BigInt(payload.length), data: payload.subarray(at, at + size) }, auth(token));
    if (r.received !== BigInt(Math.min(at + size, payload.length))) throw new Error(`pushObject at ${at}: server holds ${r.received}`);
  }
  const res = await c.pushResult({ sessionId, taskId, outcome: { case: "replyObjectId", value: objectId } }, auth(token));
  return res.status;
}

/** Pulls the next task of a session, which must be there (wait up to 2 s). */
export async function pullTaskId(c: FedClient, token: string, sessionId: string): Promise<{ taskId: string; requestId: string; round: number }> {
  const r = await c.pullTask({ sessionId, waitMs: 2000 }, auth(token));
  if (r.outcome.case !== "task") throw new Error(`expected a task, got ${r.outcome.case}`);
  return { taskId: r.outcome.value.taskId, requestId: r.outcome.value.request?.id ?? "", round: r.outcome.value.round };
}

/** What the state file says about the open round and its results: refusals must leave it unchanged. */
export function stateFingerprint(state: StateStore): string {
  return JSON.stringify({
    replies: state.acceptedReplies().map((r) => ({ taskId: r.taskId, clientId: r.clientId, sha256: r.sha256, payload: sha256Hex(r.payload) })),
    failures: state.failures(),
    records: state.records(),
    open: state.openRoundState() ?? null,
  });
}
