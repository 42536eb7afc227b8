/**
 * Fuzzing the federation server in process (assembled as `safl server` assembles it, see
 * hub-fixture.test.util.ts) while a training round is open with real tasks: at least 10,000 seeded
 * random and mutated requests against every client RPC (Join, Heartbeat, PullTask with small
 * waits, PullObject, PushObject, PushResult, Leave), both structured (typed clients over Connect,
 * gRPC and gRPC-web with random offsets up to 2^64-1, random object, session and task ids, bad
 * sizes, mutated wire replies of the open tasks uploaded with a correct SHA-256, a wrong one, or
 * truncated) and raw (HTTP/2 POSTs of random, mutated or gzip-bombed bodies in the Connect proto and
 * JSON codecs and in gRPC framing).
 *
 * What must hold: the server keeps serving; every answer is a success or a ConnectError with an
 * expected code (never INTERNAL or UNKNOWN); every success is allowed (a session only works for its
 * own token, a task only reaches its own client, a reply is accepted only from the task's client and
 * at most once); the state file changes only by the replies that were accepted; and the round's
 * pending send resolves with the right payloads once valid replies arrive. Tokens presented in the
 * authorization header never show in a log line or an error message.
 *
 * SAFL_FUZZ_SEED and SAFL_FUZZ_MESSAGES override the seed and the number of requests; a failure
 * lists each offending request with its op number, so `SAFL_FUZZ_SEED=<seed>` reproduces the run
 * (the requests of op i depend only on the seed and i; sessions are resolved when an op runs).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import { gzipSync, gunzipSync } from "node:zlib";
import { after, before, describe, test } from "node:test";
import { create, type DescMessage, fromBinary, fromJsonString, type MessageShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GridReply } from "../fl/grid.js";
import {
  FailureCode,
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  type JoinRequest,
  JoinRequestSchema,
  type JoinResponse,
  JoinResponseSchema,
  LeaveRequestSchema,
  LeaveResponseSchema,
  type PullObjectRequest,
  PullObjectRequestSchema,
  type PullObjectResponse,
  PullObjectResponseSchema,
  type PullTaskRequest,
  PullTaskRequestSchema,
  type PullTaskResponse,
  PullTaskResponseSchema,
  type PushObjectRequest,
  PushObjectRequestSchema,
  PushObjectResponseSchema,
  type PushResultRequest,
  PushResultRequestSchema,
  type PushResultResponse,
  PushResultResponseSchema,
  PushResultStatus,
  RunState,
  WatchRunRequestSchema,
} from "./gen/safl/v1/federation_pb.js";
import {
  auth,
  broadcastFor,
  CLIENT_IDS,
  type ClientName,
  codeName,
  type Fixture,
  forgedToken,
  joinRequest,
  leaks,
  pullTaskId,
  pushReply,
  replyFor,
  sha256Hex,
  startFixture,
  stateFingerprint,
  type TransportKind,
} from "./hub-fixture.test.util.js";
import { CHUNK_BYTES, failureCodeFromProto, MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from "./protocol.js";
import { createToken, RateLimiter, revokeToken } from "./tokens.js";

const envInt = (name: string, fallback: number): number => {
  const v = process.env[name];
  return v === undefined || v === "" ? fallback : Number.parseInt(v, 0 === v.indexOf("0x") ? 16 : 10);
};
const SEED = envInt("SAFL_FUZZ_SEED", 0x5afe10a) >>> 0;
/** 10,000 and a little: about 25-45 s on two shared cores (200-500 requests a second). */
const MESSAGES = Math.max(1, envInt("SAFL_FUZZ_MESSAGES", 10_200));
const CONCURRENCY = 8;
/** A safety net for a very busy machine: the storm stops here (and the test fails below 10,000). */
const STORM_LIMIT_MS = 90_000;

// ---------------------------------------------------------------------------------------------
// A seeded PRNG (xorshift32)

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
    for (let i = 0; i < 4; i++) this.u32();
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x;
  }
  /** 0 <= int(n) < n. */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  /** Picks by weight: [weight, value] pairs. */
  weighted<T>(xs: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of xs) total += w;
    let r = (this.u32() / 4294967296) * total;
    for (const [w, v] of xs) {
      if ((r -= w) < 0) return v;
    }
    return xs[xs.length - 1]![1];
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
  hex(n: number): string {
    let s = "";
    while (s.length < n) s += this.u32().toString(16).padStart(8, "0");
    return s.slice(0, n);
  }
  /** A random string: ASCII, hex, control characters, non-ASCII, lone surrogates. */
  string(max: number): string {
    const n = this.chance(0.1) ? max : this.int(max + 1);
    const alphabet = this.int(4);
    let s = "";
    for (let i = 0; i < n; i++) {
      if (alphabet === 0) s += String.fromCharCode(32 + this.int(95));
      else if (alphabet === 1) s += "0123456789abcdef"[this.int(16)];
      else if (alphabet === 2) s += this.pick(["a", "\u0000", "\n", "\"", "\\", "é", "€", "😀", "\ud800", "\udfff", "\uffff", "_", "safl_"]);
      else s += String.fromCharCode(this.int(0x10000));
    }
    return s;
  }
}

/** An independent stream per op, so op i's requests depend only on the seed and i. */
const opRng = (i: number): Rng => new Rng(Math.imul(SEED ^ 0x85ebca6b, 0x9e3779b1) ^ Math.imul(i + 1, 0xc2b2ae35));

// ---------------------------------------------------------------------------------------------
// Byte mutations

function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let b: Uint8Array = input.slice();
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const kind = rng.int(9);
    const at = b.length === 0 ? 0 : rng.int(b.length);
    switch (kind) {
      case 0:
      case 1: // bit flips
        for (let k = 1 + rng.int(8); k > 0 && b.length > 0; k--) b[rng.int(b.length)]! ^= 1 << rng.int(8);
        break;
      case 2: // a random byte
        if (b.length > 0) b[at] = rng.pick([0, 0xff, 0x7f, 0x80, rng.int(256)]);
        break;
      case 3: // truncate
        b = b.slice(0, rng.int(b.length + 1));
        break;
      case 4: // insert random bytes
        b = concat(b.subarray(0, at), rng.bytes(1 + rng.int(16)), b.subarray(at));
        break;
      case 5: // delete a range
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(16))));
        break;
      case 6: // duplicate a range
        b = concat(b.subarray(0, at), b.subarray(at, at + 1 + rng.int(32)), b.subarray(at));
        break;
      case 7: // a huge varint (a length prefix or a number that overflows)
        b = concat(b.subarray(0, at), rng.pick([Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f), Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80)]), b.subarray(at));
        break;
      default: // a random field appended
        b = concat(b, fieldSoup(rng, 1 + rng.int(3)));
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function varint(v: bigint): Uint8Array {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    let byte = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) byte |= 0x80;
    out.push(byte);
  } while (x !== 0n);
  return Uint8Array.from(out);
}

/** Random protobuf fields: random numbers, wire types and contents, lengths that may lie. */
function fieldSoup(rng: Rng, n: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const field = rng.chance(0.7) ? 1 + rng.int(10) : rng.chance(0.5) ? rng.int(1 << 29) : 0;
    const wire = rng.chance(0.9) ? rng.pick([0, 1, 2, 5]) : rng.int(8);
    parts.push(varint(BigInt(field) * 8n + BigInt(wire)));
    if (wire === 0) parts.push(varint(rng.pick([0n, 1n, -1n, rng.u64(), BigInt(rng.u32())])));
    else if (wire === 1) parts.push(rng.bytes(8));
    else if (wire === 5) parts.push(rng.bytes(4));
    else if (wire === 2) {
      const len = rng.int(40);
      parts.push(varint(BigInt(rng.chance(0.85) ? len : rng.pick([len + 1, len + 1000, 0x7fffffff]))));
      parts.push(rng.bytes(len));
    } else parts.push(rng.bytes(rng.int(4)));
  }
  return concat(...parts);
}

// ---------------------------------------------------------------------------------------------
// The world the fuzzer knows

type Method = "join" | "heartbeat" | "pullTask" | "pullObject" | "pushObject" | "pushResult" | "leave";
const METHODS: readonly Method[] = ["join", "heartbeat", "pullTask", "pullObject", "pushObject", "pushResult", "leave"];
const SCHEMAS: Record<Method, { req: DescMessage; res: DescMessage; path: string }> = {
  join: { req: JoinRequestSchema, res: JoinResponseSchema, path: "Join" },
  heartbeat: { req: HeartbeatRequestSchema, res: HeartbeatResponseSchema, path: "Heartbeat" },
  pullTask: { req: PullTaskRequestSchema, res: PullTaskResponseSchema, path: "PullTask" },
  pullObject: { req: PullObjectRequestSchema, res: PullObjectResponseSchema, path: "PullObject" },
  pushObject: { req: PushObjectRequestSchema, res: PushObjectResponseSchema, path: "PushObject" },
  pushResult: { req: PushResultRequestSchema, res: PushResultResponseSchema, path: "PushResult" },
  leave: { req: LeaveRequestSchema, res: LeaveResponseSchema, path: "Leave" },
};
const SERVICE_PATH = "/safl.v1.FederationService/";

/** What connect-es 2.1.1 itself answers with INTERNAL for a request body it cannot decode. */
const UPSTREAM_INTERNAL = /^(parse binary: |decompression failed|received compressed envelope, but do not know how to decompress)/;

const unpercent = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** How long a typed or raw call may take before its missing answer is a finding. */
const ANSWER_MS = 5_000;
/** A character outside the BMP (a surrogate pair in UTF-16). */
const ASTRAL = /[\ud800-\udbff][\udc00-\udfff]/;

/** Codes a refusal may carry. INTERNAL, UNKNOWN, UNAVAILABLE, DATA_LOSS... are findings. */
const REFUSALS = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.FailedPrecondition, Code.InvalidArgument, Code.NotFound, Code.OutOfRange, Code.ResourceExhausted]);

interface TokenChoice {
  readonly label: string;
  /** The authorization header, if any. */
  readonly header: string | undefined;
  /** The client whose valid token this is. */
  readonly valid: ClientName | undefined;
}

interface SessionInfo {
  readonly ident: string;
  readonly token: ClientName;
}

interface Finding {
  readonly op: number;
  readonly via: string;
  readonly method: string;
  readonly request: string;
  readonly headers: string;
  readonly got: string;
}

const json = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x instanceof Uint8Array ? `<${x.length} bytes sha256 ${sha256Hex(x).slice(0, 12)}: ${Buffer.from(x.subarray(0, 48)).toString("hex")}${x.length > 48 ? "…" : ""}>` : x));

describe("fuzzing the federation server (in-process, built as net/server.ts builds it)", { timeout: 240_000 }, () => {
  let f: Fixture;
  const tok = {} as Record<ClientName, string>;
  let revoked = "";
  /** Tokens that only ever travel in the authorization header: they must never show anywhere. */
  const headerTokens: string[] = [];
  /** Forged tokens that only travel inside request fields: the hub must redact them where it quotes a field. */
  const decoys: string[] = [];
  /** Each identity's live session, and who every session id ever handed out belongs to. */
  const live = new Map<string, string>();
  const owner = new Map<string, SessionInfo>();
  const closedSessions: string[] = [];
  /** Round-2 tasks by id: the identity they belong to. */
  const taskOwner = new Map<string, string>();
  const round2 = {} as Record<string, { taskId: string; requestId: string }>;
  const closedTasks: string[] = [];
  /** Request objects of closed tasks (no longer offered). */
  const closedObjects: string[] = [];
  /** Every object the server offers (backbone, requests), to check what PullObject returns. */
  const objects = new Map<string, Uint8Array>();
  const accepted = new Map<string, { ident: string; op: number; via: string; sha256?: string; payload?: Uint8Array; failure?: FailureCode }>();
  const findings: Finding[] = [];
  /** INTERNAL answers of connect-es to undecodable bodies (see UPSTREAM_INTERNAL), one example per message. */
  const upstream = { count: 0, examples: new Map<string, string>() };
  /**
   * gRPC and gRPC-web calls that were never answered while a string field holds a character outside
   * the BMP: the hub quotes ids cut with .slice(0, n), which can split a surrogate pair, and
   * connect-es's setTrailerStatus percent-encodes grpc-message with encodeURIComponent, which throws
   * URIError on a lone surrogate, so the handler fails without sending trailers.
   */
  const hangs: string[] = [];
  const knownHang = (op: number, via: string, method: string, request: string) => {
    hangs.push(`op ${op} ${via} ${method}: ${request}`);
  };
  /** What each multi-request op decided, for the report of a finding. */
  const opNotes = new Map<number, string>();
  const stats = new Map<string, number>();
  const errorMessages: string[] = [];
  let pending: Promise<GridReply[]>;
  let fingerprintBefore = "";
  let logsBefore = 0;
  let sent = 0;
  let stormMs = 0;
  let raw: http2.ClientHttp2Session | undefined;
  /** GOAWAY codes the server sent on the raw connection (other than NO_ERROR): a finding each. */
  const rawGoaways: { code: number; inFlight: string[] }[] = [];
  /** The raw requests on the wire, by op: what a GOAWAY interrupted. */
  const rawInFlight = new Map<number, string>();
  const rawRecent: string[] = [];
  /** Errors the server's HTTP/2 sessions and streams reported. */
  const serverSessionErrors: string[] = [];
  let bomb: Uint8Array;
  const PROTECTED = ["alice", "bob"];
  /** Tasks whose own client may complete them during the storm: carol's with a reply, client-0000's with anything. */
  const FREE_REPLY = ["carol", "client-0000"];

  before(async () => {
    f = await startFixture({ joinLimiter: new RateLimiter({ capacity: 1e9, refillPerSecond: 1e9 }) });
    Object.assign(tok, f.tokens);
    // A fourth client whose token is revoked before the storm.
    revoked = await createToken(f.tokensPath, "dave");
    await revokeToken(f.tokensPath, "dave");
    headerTokens.push(tok.alice, tok.bob, tok.carol, revoked, forgedToken("alice", 11), forgedToken("eve", 12));
    decoys.push(forgedToken("mallory", 21), forgedToken("bob", 22), forgedToken("client-0001", 23));
    bomb = gzipSync(new Uint8Array(8 * 1024 * 1024));
    objects.set(f.backbone.sha256, f.backbone.bytes);
    const c = f.client("connect");
    const join = async (token: ClientName, partition?: string): Promise<JoinResponse> => {
      const j = await c.join(joinRequest(partition === undefined ? {} : { partitionRequest: partition }), auth(tok[token]));
      owner.set(j.sessionId, { ident: j.clientId, token });
      live.set(j.clientId, j.sessionId);
      return j;
    };
    for (const id of CLIENT_IDS) await join(id);
    // carol also plays demo partition 0, whose identity is client-0000.
    assert.equal((await join("carol", "0")).clientId, "client-0000");
    const idents = ["alice", "bob", "carol", "client-0000"];
    const tokenOf = (ident: string): ClientName => owner.get(live.get(ident)!)!.token;

    // Round 1, answered and committed: its tasks are closed during the storm.
    const r1 = f.grid.send(idents.map((id) => ({ clientId: id, payload: broadcastFor(1, id) })), { purpose: "train", attempt: 1 });
    for (const id of idents) closedObjects.push(sha256Hex(broadcastFor(1, id)));
    closedObjects.push(sha256Hex(broadcastFor(2, "bob-eval")));
    for (const id of idents) {
      const t = await pullTaskId(c, tok[tokenOf(id)], live.get(id)!);
      closedTasks.push(t.taskId);
      assert.equal(await pushReply(c, tok[tokenOf(id)], live.get(id)!, t.taskId, replyFor(1, id)), PushResultStatus.ACCEPTED);
    }
    assert.ok((await r1).every((r) => "payload" in r));
    f.state.commitBoundary({ round: 1, snapshot: new TextEncoder().encode("boundary after round 1"), record: JSON.stringify({ round: 1 }) });
    // An evaluation of bob's that ran past its deadline.
    const ev = f.grid.send([{ clientId: "bob", payload: broadcastFor(2, "bob-eval") }], { purpose: "evaluate", deadlineMs: Date.now() + 200 });
    closedTasks.push((await pullTaskId(c, tok.bob, live.get("bob")!)).taskId);
    assert.ok((await ev).every((r) => "failure" in r));

    // Round 2 stays open through the storm.
    const requests = idents.map((id) => ({ clientId: id, payload: broadcastFor(2, id) }));
    for (const r of requests) objects.set(sha256Hex(r.payload), r.payload);
    pending = f.grid.send(requests, { purpose: "train", attempt: 1, deadlineMs: Date.now() + 200_000 });
    for (const id of idents) {
      const t = await pullTaskId(c, tok[tokenOf(id)], live.get(id)!);
      round2[id] = t;
      taskOwner.set(t.taskId, id);
      assert.ok(objects.has(t.requestId));
    }
    f.server.on("session", (ss) => {
      ss.on("error", (e) => serverSessionErrors.push(`session error: ${e.message}`));
      ss.on("goaway", (code) => serverSessionErrors.push(`session got goaway ${code}`));
      ss.on("close", () => serverSessionErrors.push(`session closed`));
      ss.on("frameError", (type, code, id) => serverSessionErrors.push(`frame error: type ${type} code ${code} stream ${id}`));
      ss.on("stream", (st) => st.on("error", (e) => serverSessionErrors.push(`stream error: ${e.message}`)));
    });
    f.server.on("sessionError", (e) => serverSessionErrors.push(`sessionError: ${e.message}`));
    fingerprintBefore = stateFingerprint(f.state);
    logsBefore = f.logs.length;
  });

  after(async () => {
    raw?.destroy();
    await f?.close();
  });

  // ---- choices ---------------------------------------------------------------------------------

  const pickToken = (rng: Rng): TokenChoice => {
    const name = rng.weighted<string>([
      [24, "alice"],
      [24, "bob"],
      [28, "carol"],
      [5, "none"],
      [4, "forged"],
      [3, "forged-unknown"],
      [3, "malformed"],
      [3, "revoked"],
      [2, "lowercase-scheme"],
      [2, "basic"],
    ]);
    switch (name) {
      case "alice":
      case "bob":
      case "carol":
        return { label: name, header: `Bearer ${tok[name]}`, valid: name };
      case "none":
        return { label: name, header: undefined, valid: undefined };
      case "forged":
        return { label: name, header: `Bearer ${headerTokens[4]}`, valid: undefined };
      case "forged-unknown":
        return { label: name, header: `Bearer ${headerTokens[5]}`, valid: undefined };
      case "malformed":
        return { label: name, header: rng.pick(["Bearer", "Bearer x", `Bearer ${tok.alice.slice(0, -1)}`, `Bearer ${tok.bob}${tok.bob}`, "Bearer safl__" + "A".repeat(43), `Bearer ${rng.string(80).replace(/[^\x20-\x7e]/g, "")}`]), valid: undefined };
      case "revoked":
        return { label: name, header: `Bearer ${revoked}`, valid: undefined };
      case "lowercase-scheme":
        return { label: name, header: `bearer   ${tok.alice}`, valid: "alice" };
      default:
        return { label: name, header: `Basic ${tok.bob}`, valid: undefined };
    }
  };

  /** A session id: mostly the token's own live one, else another's, a closed one or garbage. */
  const pickSession = (rng: Rng, t: TokenChoice): string => {
    const mine = [...live.entries()].filter(([, s]) => owner.get(s)?.token === t.valid).map(([, s]) => s);
    const r = rng.int(100);
    if (r < 60 && mine.length > 0) return rng.pick(mine);
    if (r < 75 && live.size > 0) return rng.pick([...live.values()]);
    if (r < 83 && closedSessions.length > 0) return rng.pick(closedSessions);
    return rng.pick(["", rng.hex(32), rng.hex(31), rng.hex(64), rng.string(60), rng.pick(decoys), "x".repeat(rng.int(5000))]);
  };

  const pickTask = (rng: Rng, sessionId: string): string => {
    const ident = owner.get(sessionId)?.ident;
    const r = rng.int(100);
    if (r < 35 && ident !== undefined && round2[ident]) return round2[ident].taskId;
    if (r < 65) return rng.pick(Object.values(round2)).taskId;
    if (r < 78) return rng.pick(closedTasks);
    return rng.pick(["", rng.hex(32), rng.hex(64), rng.string(50), rng.pick(decoys), "0".repeat(32)]);
  };

  const pickObjectId = (rng: Rng): string => {
    const r = rng.int(100);
    if (r < 50) return rng.pick([...objects.keys()]);
    if (r < 60) return rng.pick([...objects.keys()]).toUpperCase();
    if (r < 70) return rng.pick(closedObjects);
    return rng.pick(["", rng.hex(64), rng.hex(63), rng.string(70), rng.pick(decoys), "g".repeat(64)]);
  };

  const pickU64 = (rng: Rng, size: number): bigint =>
    rng.weighted<bigint>([
      [30, 0n],
      [20, BigInt(rng.int(size + 1))],
      [8, BigInt(size)],
      [8, BigInt(size + 1)],
      [5, 2n ** 53n + 1n],
      [5, 2n ** 63n],
      [5, 2n ** 64n - 1n],
      [10, rng.u64()],
      [9, BigInt(rng.u32())],
    ]);

  const pickU32 = (rng: Rng): number => rng.weighted<number>([[40, 0], [20, rng.int(64)], [10, 1], [10, 0xffffffff], [10, CHUNK_BYTES], [10, rng.u32()]]);

  /** Whether a call would let a protected task's own client complete it (kept for the end of the test). */
  const ownsProtected = (t: TokenChoice, sessionId: string, taskId: string): boolean => {
    const ident = taskOwner.get(taskId);
    if (ident === undefined || !PROTECTED.includes(ident)) return false;
    const s = owner.get(sessionId);
    return s !== undefined && s.ident === ident && t.valid === s.token;
  };
  /** Whether the call is carol's own on her task (replies allowed there, failures not). */
  const ownsCarolTask = (t: TokenChoice, sessionId: string, taskId: string): boolean => {
    const s = owner.get(sessionId);
    return taskOwner.get(taskId) === "carol" && s?.ident === "carol" && t.valid === s.token;
  };

  // ---- random requests -------------------------------------------------------------------------

  const genRequest = (rng: Rng, method: Method, t: TokenChoice): MessageShape<DescMessage> => {
    const sessionId = pickSession(rng, t);
    switch (method) {
      case "join": {
        const init: Record<string, unknown> = {
          protocolVersion: rng.weighted<number>([[80, PROTOCOL_VERSION], [5, 0], [5, PROTOCOL_VERSION + 1], [5, 1], [5, rng.u32()]]),
          backboneSha256: rng.weighted<string>([[65, ""], [20, f.backbone.sha256], [5, f.backbone.sha256.toUpperCase()], [10, rng.hex(64)]]),
          clientSoftware: rng.chance(0.1) ? rng.pick(decoys) : rng.string(120),
          heldObjects: Array.from({ length: rng.int(4) }, () => pickObjectId(rng)),
        };
        if (rng.chance(0.8)) init.device = { kind: rng.pick(["node", "browser", "", rng.string(60), rng.pick(decoys)]), threads: pickU32(rng), platform: rng.chance(0.05) ? rng.pick(decoys) : rng.string(rng.chance(0.05) ? 3000 : 100) };
        if (rng.chance(0.35)) init.partitionRequest = rng.pick(["0", "1", "2", "3", "4", "-1", "00", "01", "1e0", "999999999", "9999999999", "", " 1", "１", rng.pick(decoys), rng.string(30)]);
        return create(JoinRequestSchema, init);
      }
      case "heartbeat":
        return create(HeartbeatRequestSchema, {
          sessionId,
          ...(rng.chance(0.8)
            ? { status: { state: rng.pick([0, 1, 2, 3, 4, 5, 99, 0x7fffffff, -1]), round: pickU32(rng), step: pickU32(rng), stepsTotal: pickU32(rng), imagesPerSecond: rng.pick([0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -1e308, 5e-324, -0]) } }
            : {}),
        });
      case "pullTask":
        return create(PullTaskRequestSchema, { sessionId, waitMs: rng.weighted<number>([[60, rng.int(20)], [30, 0], [10, rng.int(80)]]) });
      case "pullObject": {
        const objectId = pickObjectId(rng);
        return create(PullObjectRequestSchema, { sessionId, objectId, offset: pickU64(rng, objects.get(objectId)?.length ?? 1000), maxBytes: pickU32(rng) });
      }
      case "pushObject": {
        const data = rng.chance(0.01) ? rng.bytes(64 * 1024) : rng.bytes(rng.int(200));
        const objectId = rng.weighted<string>([[35, rng.hex(64)], [35, sha256Hex(data)], [10, sha256Hex(data).toUpperCase()], [10, rng.string(64)], [10, ""]]);
        return create(PushObjectRequestSchema, {
          sessionId,
          taskId: pickTask(rng, sessionId),
          objectId,
          offset: rng.chance(0.6) ? 0n : pickU64(rng, data.length),
          totalSize: rng.weighted<bigint>([[40, BigInt(data.length)], [15, BigInt(rng.int(400))], [10, 0n], [10, 2n ** 31n], [5, 2n ** 31n - 1n], [5, 2n ** 53n + 1n], [5, 2n ** 64n - 1n], [10, rng.u64()]]),
          data,
        });
      }
      case "pushResult": {
        const taskId = pickTask(rng, sessionId);
        const kind = rng.weighted<string>([[45, "reply"], [35, "failure"], [20, "none"]]);
        const replyId = rng.weighted<string>([[50, rng.hex(64)], [20, sha256Hex(replyFor(2, "carol"))], [10, rng.string(70)], [10, ""], [10, rng.pick(decoys)]]);
        const failure = { code: rng.pick([0, 1, 2, 3, 5, 8, 9, 10, 11, 99, 0x7fffffff, -5]) as FailureCode, message: rng.chance(0.05) ? rng.string(6000) : rng.chance(0.1) ? rng.pick(decoys) : rng.string(100) };
        return create(PushResultRequestSchema, {
          sessionId,
          taskId,
          outcome: kind === "reply" ? { case: "replyObjectId", value: replyId } : kind === "failure" ? { case: "failure", value: failure } : { case: undefined },
        });
      }
      case "leave":
        return create(LeaveRequestSchema, { sessionId, reason: rng.chance(0.1) ? `stopping ${rng.pick(decoys)}` : rng.string(rng.chance(0.05) ? 2000 : 80) });
    }
  };

  /** Keeps the storm from completing the protected tasks (or carol's with a failure). */
  const sanitize = (method: Method, req: MessageShape<DescMessage>, t: TokenChoice): void => {
    if (method !== "pushResult") return;
    const r = req as PushResultRequest;
    if (r.outcome.case !== "failure" && r.outcome.case !== undefined) return;
    if (ownsProtected(t, r.sessionId, r.taskId) || ownsCarolTask(t, r.sessionId, r.taskId)) r.outcome = { case: "replyObjectId", value: "f".repeat(64) };
  };

  // ---- recording -------------------------------------------------------------------------------

  const bump = (key: string) => stats.set(key, (stats.get(key) ?? 0) + 1);
  const finding = (op: number, via: string, method: string, request: unknown, t: TokenChoice | undefined, got: string) => {
    findings.push({ op, via, method, request: typeof request === "string" ? request : json(request), headers: t ? `authorization: ${t.label}` : "", got: opNotes.has(op) ? `${got} [${opNotes.get(op)}]` : got });
  };

  /** Checks a successful answer against what the fuzzer knows; returns a reason if it should not have succeeded. */
  const checkSuccess = (op: number, via: string, method: Method, req: MessageShape<DescMessage>, res: MessageShape<DescMessage>, t: TokenChoice): string | undefined => {
    if (t.valid === undefined) return `succeeded without a valid token (${t.label})`;
    if (method === "join") {
      const q = req as JoinRequest;
      const s = res as JoinResponse;
      if (q.protocolVersion !== PROTOCOL_VERSION) return "joined speaking another protocol version";
      if (q.backboneSha256 !== "" && q.backboneSha256 !== f.backbone.sha256) return "joined holding another backbone";
      const expected = q.partitionRequest === undefined ? t.valid : `client-${q.partitionRequest.padStart(4, "0")}`;
      if (s.clientId !== expected && !(q.partitionRequest !== undefined && s.clientId === `client-${String(Number(q.partitionRequest)).padStart(4, "0")}`)) return `joined as ${s.clientId}`;
      const old = live.get(s.clientId);
      if (old !== undefined && owner.get(old)?.token !== t.valid) return `took identity ${s.clientId} from another token`;
      owner.set(s.sessionId, { ident: s.clientId, token: t.valid });
      if (old !== undefined && old !== s.sessionId) closedSessions.push(old);
      live.set(s.clientId, s.sessionId);
      return undefined;
    }
    const sessionId = (req as unknown as { sessionId: string }).sessionId;
    const s = owner.get(sessionId);
    if (!s) return "succeeded on a session id the server never handed out";
    if (s.token !== t.valid) return `succeeded on a session of ${s.token} with ${t.valid}'s token`;
    switch (method) {
      case "pullTask": {
        const o = (res as PullTaskResponse).outcome;
        if (o.case === "task" && taskOwner.get(o.value.taskId) !== s.ident) return `handed task ${o.value.taskId} to ${s.ident}`;
        return undefined;
      }
      case "pullObject": {
        const q = req as PullObjectRequest;
        const p = res as PullObjectResponse;
        const bytes = objects.get(q.objectId);
        if (!bytes) return "served an object that is not offered";
        const start = Number(q.offset);
        const want = q.maxBytes === 0 ? CHUNK_BYTES : Math.min(q.maxBytes, CHUNK_BYTES);
        const expected = bytes.subarray(start, Math.min(bytes.length, start + want));
        if (!Buffer.from(p.data).equals(Buffer.from(expected)) || p.totalSize !== BigInt(bytes.length) || p.last !== (start + expected.length === bytes.length) || p.offset !== q.offset) return "served the wrong bytes";
        return undefined;
      }
      case "pushObject": {
        const q = req as PushObjectRequest;
        if (taskOwner.get(q.taskId) !== s.ident) return `took a chunk for task ${q.taskId} of ${taskOwner.get(q.taskId) ?? "no open round-2 task"} from ${s.ident}`;
        return undefined;
      }
      case "pushResult": {
        const q = req as PushResultRequest;
        const p = res as PushResultResponse;
        const ident = taskOwner.get(q.taskId);
        if (ident !== s.ident) return `completed task ${q.taskId} of ${ident ?? "nobody"} for ${s.ident}`;
        const prior = accepted.get(q.taskId);
        if (p.status === PushResultStatus.DUPLICATE) {
          if (!prior || q.outcome.case !== "replyObjectId" || prior.sha256 !== q.outcome.value) return "DUPLICATE for a result that was never accepted";
          return undefined;
        }
        if (p.status !== PushResultStatus.ACCEPTED) return `status ${p.status}`;
        if (prior) return `accepted task ${q.taskId} a second time (first by op ${prior.op} via ${prior.via})`;
        if (!FREE_REPLY.includes(ident)) return `accepted a result for the protected task of ${ident}`;
        if (q.outcome.case === "failure") {
          if (ident !== "client-0000") return "accepted a failure for carol's task";
          accepted.set(q.taskId, { ident, op, via, failure: q.outcome.value.code });
        } else if (q.outcome.case === "replyObjectId") accepted.set(q.taskId, { ident, op, via, sha256: q.outcome.value });
        else return "accepted a result without an outcome";
        return undefined;
      }
      case "leave":
        if (live.get(s.ident) === sessionId) live.delete(s.ident);
        closedSessions.push(sessionId);
        return undefined;
      default:
        return undefined;
    }
  };

  const noteError = (message: string) => {
    if (errorMessages.length < 200_000) errorMessages.push(message);
  };

  // ---- typed calls -----------------------------------------------------------------------------

  const typed = async (op: number, rng: Rng, method: Method, req: MessageShape<DescMessage>, t: TokenChoice, extra: { timeoutMs?: number } = {}): Promise<MessageShape<DescMessage> | undefined> => {
    const kind = rng.weighted<TransportKind>([[60, "connect"], [25, "grpc"], [15, "grpc-web"]]);
    const c = f.client(kind);
    // Every call has a deadline: an answer that never comes is a finding, not a stuck worker.
    const options = { headers: t.header === undefined ? {} : { authorization: t.header }, timeoutMs: ANSWER_MS, ...extra };
    const via = `typed/${kind}`;
    sent++;
    try {
      const call = c[method] as unknown as (r: unknown, o: unknown) => Promise<MessageShape<DescMessage>>;
      const res = await call.call(c, req, options);
      bump(`${method} ok`);
      const wrong = checkSuccess(op, via, method, req, res, t);
      if (wrong) finding(op, via, method, req, t, `success that must not be: ${wrong}`);
      return res;
    } catch (e) {
      const ce = ConnectError.from(e);
      bump(`${method} ${codeName(ce.code)}`);
      noteError(ce.rawMessage);
      const ok = REFUSALS.has(ce.code) || (extra.timeoutMs !== undefined && (ce.code === Code.DeadlineExceeded || ce.code === Code.Canceled));
      if (ok) return undefined;
      if (ce.code === Code.DeadlineExceeded && kind !== "connect" && ASTRAL.test(json(req))) knownHang(op, via, method, json(req));
      else finding(op, via, method, req, t, `${codeName(ce.code)}: ${ce.rawMessage}`);
      return undefined;
    }
  };

  // ---- a mutated reply, uploaded ---------------------------------------------------------------

  const replyUpload = async (op: number, rng: Rng): Promise<void> => {
    const target = rng.weighted<string>([[50, "carol"], [20, "client-0000"], [20, rng.pick(PROTECTED)], [10, "closed"]]);
    const taskId = target === "closed" ? rng.pick(closedTasks) : round2[target]!.taskId;
    const ident = target === "closed" ? "carol" : target;
    let t: TokenChoice;
    let sessionId: string;
    if (rng.chance(0.8)) {
      const s = live.get(ident);
      const token = s !== undefined ? owner.get(s)!.token : "carol";
      t = { label: token, header: `Bearer ${tok[token]}`, valid: token };
      sessionId = s ?? pickSession(rng, t);
    } else {
      t = pickToken(rng);
      sessionId = pickSession(rng, t);
    }
    const base = replyFor(2, ident);
    const payload = rng.chance(0.85) ? mutate(rng, base) : base;
    let mode = rng.weighted<string>([[50, "correct"], [15, "wrong-sha"], [15, "truncated"], [5, "overrun"], [10, "wrong-offset"], [5, "reset"]]);
    // The protected tasks' own client never uploads a whole reply under its true SHA-256 (a single
    // chunk of a "reset" or an unshifted "wrong-offset" upload would be one).
    if (ownsProtected(t, sessionId, taskId) && !["wrong-sha", "truncated", "overrun"].includes(mode)) mode = rng.pick(["wrong-sha", "truncated", "overrun"]);
    opNotes.set(op, `reply-upload target ${target} as ${t.label} on session ${sessionId.slice(0, 12)} (${owner.get(sessionId)?.ident ?? "?"}), mode ${mode}`);
    const objectId = mode === "wrong-sha" ? sha256Hex(concat(payload, Uint8Array.of(1))) : sha256Hex(payload);
    const pieces = 1 + rng.int(4);
    const size = Math.max(1, Math.ceil(payload.length / pieces));
    const total = BigInt(payload.length);
    for (let at = 0; at < payload.length; at += size) {
      const last = at + size >= payload.length;
      if (mode === "truncated" && last) break;
      let data = payload.subarray(at, at + size);
      let offset = BigInt(at);
      if (mode === "overrun" && last) data = concat(data, rng.bytes(1 + rng.int(8)));
      if (mode === "wrong-offset" && rng.chance(0.5)) offset += BigInt(1 + rng.int(5));
      const res = await typed(op, rng, "pushObject", create(PushObjectRequestSchema, { sessionId, taskId, objectId: mode === "reset" && at > 0 ? rng.hex(64) : objectId, offset, totalSize: total, data }), t);
      if (!res) break;
    }
    if (payload.length === 0) await typed(op, rng, "pushObject", create(PushObjectRequestSchema, { sessionId, taskId, objectId, offset: 0n, totalSize: 0n, data: payload }), t);
    const res = (await typed(op, rng, "pushResult", create(PushResultRequestSchema, { sessionId, taskId, outcome: { case: "replyObjectId", value: objectId } }), t)) as PushResultResponse | undefined;
    const got = accepted.get(taskId);
    if (res?.status === PushResultStatus.ACCEPTED && got && got.op === op) got.payload = payload;
    if (res && rng.chance(0.3)) await typed(op, rng, "pushResult", create(PushResultRequestSchema, { sessionId, taskId, outcome: { case: "replyObjectId", value: objectId } }), t);
  };

  // ---- raw HTTP/2 requests ---------------------------------------------------------------------

  interface RawAnswer {
    status: number;
    headers: http2.IncomingHttpHeaders;
    trailers: http2.IncomingHttpHeaders;
    body: Buffer;
    error?: string;
    /** A server stream (WatchRun) that answered 200 and sent its first message; it was then cancelled. */
    streamOpen?: boolean;
  }

  /** The raw connection; a new one if the last was closed (the fuzzer notes why it was). */
  const rawSession = (): http2.ClientHttp2Session => {
    if (raw === undefined || raw.closed || raw.destroyed) {
      raw = http2.connect(f.baseUrl);
      raw.on("error", () => undefined);
      raw.on("goaway", (code) => {
        if (code !== http2.constants.NGHTTP2_NO_ERROR) rawGoaways.push({ code, inFlight: [...rawInFlight.values(), ...rawRecent.map((r) => `recent: ${r}`), ...serverSessionErrors.slice(-5).map((e) => `server: ${e}`)] });
      });
    }
    return raw;
  };

  /**
   * One raw request. A body over 1 MiB goes on a connection of its own, closed afterwards: the server
   * answers some of those early (a gRPC envelope over readMaxBytes) without reading or resetting the
   * rest of the body, and the client's unsent bytes stay charged to its session (maxSessionMemory,
   * 10 MB) even after the stream is reset, so after two or three of them Node's client would refuse
   * every new stream on a shared connection with ENHANCE_YOUR_CALM.
   */
  const post = (headers: http2.OutgoingHttpHeaders, body: Uint8Array, serverStream = false): Promise<RawAnswer> =>
    new Promise((resolve) => {
      const own = body.length > 1024 * 1024 ? http2.connect(f.baseUrl) : undefined;
      own?.on("error", () => undefined);
      const chunks: Buffer[] = [];
      const answer: RawAnswer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0) };
      let stream: http2.ClientHttp2Stream | undefined;
      let done = false;
      const finish = (error?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        answer.body = Buffer.concat(chunks);
        if (error !== undefined) answer.error = error;
        // A stream that ended normally is left alone: resetting every stream would trip nghttp2's
        // rapid-reset mitigation (about 33 RST_STREAM a second after a burst of 1000), which ends the
        // connection with GOAWAY(INTERNAL_ERROR).
        if (error !== undefined && stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        own?.destroy();
        resolve(answer);
      };
      const timer = setTimeout(() => finish(`no answer within ${ANSWER_MS} ms`), ANSWER_MS);
      try {
        stream = (own ?? rawSession()).request({ ":method": "POST", ...headers });
      } catch (e) {
        finish(`cannot open a stream: ${e instanceof Error ? e.message : String(e)}`);
        return;
      }
      const st = stream;
      st.on("response", (h) => {
        answer.status = Number(h[":status"]);
        answer.headers = h;
      });
      st.on("trailers", (h) => {
        answer.trailers = h;
      });
      st.on("data", (d: Buffer) => {
        chunks.push(d);
        // An accepted WatchRun streams until the run ends: its first message is the answer.
        if (serverStream && answer.status === 200 && answer.trailers["grpc-status"] === undefined && answer.headers["grpc-status"] === undefined && !/"code":"|grpc-status:/i.test(Buffer.concat(chunks).toString("latin1"))) {
          answer.streamOpen = true;
          if (!st.closed) st.close(http2.constants.NGHTTP2_CANCEL);
          finish();
        }
      });
      st.on("end", () => finish());
      st.on("close", () => finish(answer.status === 0 ? `stream closed (rst ${st.rstCode})` : undefined));
      st.on("error", (e) => finish(`stream error: ${e.message}`));
      st.end(body);
    });

  const CODE_BY_NAME = new Map(Object.entries(Code).filter(([, v]) => typeof v === "number").map(([k, v]) => [k.replace(/[A-Z]/g, (m, i: number) => (i > 0 ? "_" : "") + m.toLowerCase()), v as Code]));

  const rawCall = async (op: number, rng: Rng): Promise<void> => {
    const method = rng.weighted<Method | "watchRun" | "unknown">([...METHODS.map((m) => [13, m] as const), [3, "watchRun"], [2, "unknown"]]);
    const protocol = rng.weighted<string>([[62, "connect-proto"], [13, "connect-json"], [18, "grpc"], [7, "grpc-web"]]);
    let t = pickToken(rng);
    // The message, before the bytes are mutated.
    let msg: MessageShape<DescMessage> | undefined;
    let schema: DescMessage = WatchRunRequestSchema;
    if (method !== "watchRun" && method !== "unknown") {
      schema = SCHEMAS[method].req;
      msg = genRequest(rng, method, t);
      sanitize(method, msg, t);
      // A mutation could turn a protected (or carol's) task's own call into a completion: not with the owner's token.
      const m = msg as { sessionId?: string; taskId?: string };
      if ((method === "pushResult" || method === "pushObject") && m.sessionId !== undefined && m.taskId !== undefined && (ownsProtected(t, m.sessionId, m.taskId) || ownsCarolTask(t, m.sessionId, m.taskId))) {
        t = { label: "forged", header: `Bearer ${headerTokens[4]}`, valid: undefined };
      }
    } else msg = create(WatchRunRequestSchema, {});
    const shape = rng.weighted<string>([[55, "mutated"], [20, "valid"], [15, "random"], [10, "soup"]]);
    let body: Uint8Array;
    const isJson = protocol === "connect-json";
    if (isJson) {
      let text = shape === "random" ? rng.string(200) : toJsonString(schema, msg);
      if (shape === "mutated" || shape === "soup") text = new TextDecoder().decode(mutate(rng, new TextEncoder().encode(text)));
      if (rng.chance(0.1)) text = JSON.stringify({ sessionId: rng.pick([1, null, [], {}, "x"]), offset: rng.pick(["-1", "18446744073709551616", 1e30, "1.5", "0x10"]), waitMs: rng.pick([-1, 1e20, "5", 4294967296]), totalSize: rng.pick(["-5", "abc"]), data: rng.pick(["!!!", "AAAA", 5]) });
      body = new TextEncoder().encode(text);
    } else {
      const bin = toBinary(schema, msg);
      body = shape === "valid" ? bin : shape === "mutated" ? mutate(rng, bin) : shape === "soup" ? fieldSoup(rng, 1 + rng.int(8)) : rng.bytes(rng.int(600));
    }
    const headers: http2.OutgoingHttpHeaders = {};
    const path = method === "unknown" ? rng.pick(["/safl.v1.FederationService/Nope", "/", "/safl.v1.Other/Join", `${SERVICE_PATH}join`]) : `${SERVICE_PATH}${method === "watchRun" ? "WatchRun" : SCHEMAS[method].path}`;
    headers[":path"] = path;
    if (t.header !== undefined) headers.authorization = t.header;
    let compressed = false;
    const streaming = method === "watchRun";
    if (protocol === "grpc" || protocol === "grpc-web" || streaming) {
      const framing = rng.weighted<string>([[80, "ok"], [8, "short"], [6, "long"], [3, "flags"], [3, "none"]]);
      if (rng.chance(0.05)) {
        headers["grpc-encoding"] = "gzip";
        body = gzipSync(body);
        compressed = true;
      }
      const prefix = new Uint8Array(5);
      prefix[0] = framing === "flags" ? rng.pick([0x02, 0x80, 0xff]) : compressed ? 1 : 0;
      const len = framing === "short" ? Math.max(0, body.length - 1 - rng.int(4)) : framing === "long" ? body.length + 1 + rng.int(1 << 24) : body.length;
      new DataView(prefix.buffer).setUint32(1, len >>> 0);
      body = framing === "none" ? body : concat(prefix, body);
      if (streaming && protocol !== "grpc" && protocol !== "grpc-web") {
        headers["content-type"] = isJson ? "application/connect+json" : "application/connect+proto";
        if (compressed) {
          delete headers["grpc-encoding"];
          headers["connect-content-encoding"] = "gzip";
        }
      } else {
        headers["content-type"] = protocol === "grpc" ? rng.pick(["application/grpc", "application/grpc+proto"]) : "application/grpc-web+proto";
        if (protocol === "grpc") headers.te = "trailers";
      }
    } else {
      headers["content-type"] = isJson ? "application/json" : "application/proto";
      if (rng.chance(0.5)) headers["connect-protocol-version"] = "1";
      const enc = rng.weighted<string>([[90, "none"], [5, "gzip"], [2, "gzip-garbage"], [1, "br-garbage"], [1, "snappy"], [1, "bomb"]]);
      if (enc === "gzip") {
        body = gzipSync(body);
        headers["content-encoding"] = "gzip";
      } else if (enc === "gzip-garbage") headers["content-encoding"] = "gzip";
      else if (enc === "br-garbage") headers["content-encoding"] = "br";
      else if (enc === "snappy") headers["content-encoding"] = "snappy";
      else if (enc === "bomb") {
        body = bomb;
        headers["content-encoding"] = "gzip";
      }
      compressed = enc !== "none";
    }
    if (rng.chance(0.02)) headers["connect-timeout-ms"] = rng.pick(["abc", "-1", "99999999999", "0", "1"]);
    if (rng.chance(0.02)) headers["content-type"] = rng.pick(["text/plain", "application/xml", "application/proto; charset=utf-8", ""]);
    if (rng.chance(0.002)) body = rng.bytes(MAX_MESSAGE_BYTES + 1 + rng.int(1000));
    sent++;
    rawInFlight.set(op, `op ${op} ${protocol} ${method}: ${json({ ...headers, ...(headers.authorization !== undefined ? { authorization: `<${t.label} token>` } : {}) })} body ${Buffer.from(body.subarray(0, 400)).toString("hex")}${body.length > 400 ? `… (${body.length} bytes)` : ""}`);
    const a = await post(headers, body, streaming).finally(() => {
      rawRecent.push(rawInFlight.get(op)!);
      if (rawRecent.length > 6) rawRecent.shift();
      rawInFlight.delete(op);
    });
    const via = `raw/${protocol}`;
    const rec = () => `${json({ ...headers, ...(headers.authorization !== undefined ? { authorization: `<${t.label} token>` } : {}) })} body ${body.length} bytes: ${Buffer.from(body.subarray(0, 160)).toString("hex")}${body.length > 160 ? "…" : ""}`;
    if (a.streamOpen) {
      if (t.valid === undefined) finding(op, via, method, rec(), t, "WatchRun streamed without a valid token");
      return;
    }
    if (a.error !== undefined) {
      // A 4-byte UTF-8 sequence in a gRPC body: the known hang (see knownHang).
      if (a.error.startsWith("no answer") && (protocol === "grpc" || protocol === "grpc-web") && /[\xf0-\xf4][\x80-\xbf]{3}/.test(Buffer.from(body).toString("latin1"))) knownHang(op, via, method, rec());
      else finding(op, via, method, rec(), t, a.error);
      return;
    }
    // The outcome: a Connect/gRPC code, an HTTP status, or success.
    let code: Code | "ok" | undefined;
    let message = "";
    const grpcStatus = a.trailers["grpc-status"] ?? a.headers["grpc-status"];
    const ctype = String(a.headers["content-type"] ?? "");
    if (grpcStatus !== undefined) {
      code = Number(grpcStatus) === 0 ? "ok" : (Number(grpcStatus) as Code);
      message = unpercent(String(a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? ""));
    } else if (ctype.startsWith("application/grpc-web") && a.status === 200) {
      // gRPC-web puts the status into a trailer frame at the end of the body.
      const text = a.body.toString("latin1");
      const m = /grpc-status:\s*(\d+)/i.exec(text);
      code = m ? (Number(m[1]) === 0 ? "ok" : (Number(m[1]) as Code)) : undefined;
      message = unpercent(/grpc-message:\s*([^\r\n]*)/i.exec(text)?.[1] ?? "");
    } else if (a.status === 200 && (ctype === "application/proto" || ctype === "application/json")) code = "ok";
    else if (ctype.startsWith("application/json")) {
      try {
        const j = JSON.parse(a.body.toString("utf8")) as { code?: string; message?: string };
        code = CODE_BY_NAME.get(j.code ?? "");
        message = j.message ?? "";
      } catch {
        code = undefined;
      }
    } else if (ctype.startsWith("application/connect+")) {
      // A Connect stream ends with an end-stream message carrying the error, if any.
      const text = a.body.toString("utf8");
      const m = /"code":"([a-z_]+)"/.exec(text);
      code = m ? CODE_BY_NAME.get(m[1]!) : "ok";
      message = /"message":"([^"]*)"/.exec(text)?.[1] ?? "";
    }
    if (message) noteError(message);
    if (code === undefined) {
      // Plain HTTP refusals: an unknown path, a media type that is no Connect/gRPC one.
      const expectedHttp = (a.status === 404 && method === "unknown") || (a.status === 415 && !/^application\/(proto|json|grpc|grpc\+proto|grpc-web\+proto|connect\+proto|connect\+json)$/.test(String(headers["content-type"])));
      bump(`raw ${method} http-${a.status}`);
      if (!expectedHttp) finding(op, via, method, rec(), t, `HTTP ${a.status} ${ctype}: ${a.body.toString("utf8").slice(0, 200)}`);
      return;
    }
    bump(`raw ${method} ${code === "ok" ? "ok" : codeName(code)}`);
    if (code !== "ok") {
      const ok = REFUSALS.has(code) || code === Code.Unimplemented || (code === Code.DeadlineExceeded && headers["connect-timeout-ms"] !== undefined);
      if (ok) return;
      // connect-es 2.x answers a body it cannot decode with INTERNAL (v1 said INVALID_ARGUMENT): counted
      // apart, after checking that the body really does not decode.
      let undecodable = code === Code.Internal && UPSTREAM_INTERNAL.test(message);
      if (undecodable && message.startsWith("parse binary:") && protocol === "connect-proto" && !compressed) {
        try {
          fromBinary(schema, body);
          undecodable = false;
        } catch {
          // it does not decode here either
        }
      }
      if (undecodable) {
        upstream.count++;
        const kind = message.replace(/\d+/g, "N");
        if (!upstream.examples.has(kind)) upstream.examples.set(kind, `op ${op} ${via} ${method}: ${rec()}`);
      } else finding(op, via, method, rec(), t, `${codeName(code)}: ${message}`);
      return;
    }
    if (method === "unknown") {
      finding(op, via, method, rec(), t, "an unknown method succeeded");
      return;
    }
    if (method === "watchRun") {
      if (t.valid === undefined) finding(op, via, method, rec(), t, "WatchRun streamed without a valid token");
      return;
    }
    // Success: decode the request as the server saw it and the answer, and check both.
    try {
      let reqBytes: Uint8Array = body;
      if (protocol === "grpc" || protocol === "grpc-web") reqBytes = body.subarray(5);
      if (compressed) reqBytes = gunzipSync(reqBytes);
      // As connect-node reads JSON: unknown fields and enum names are ignored.
      const seen = isJson ? fromJsonString(schema, new TextDecoder().decode(reqBytes), { ignoreUnknownFields: true }) : fromBinary(schema, reqBytes);
      let resBytes: Uint8Array = a.body;
      if (protocol === "grpc" || protocol === "grpc-web") resBytes = a.body.subarray(5, 5 + a.body.readUInt32BE(1));
      const resSchema = SCHEMAS[method].res;
      const res = ctype === "application/json" ? fromJsonString(resSchema, a.body.toString("utf8")) : fromBinary(resSchema, resBytes);
      const wrong = checkSuccess(op, via, method, seen, res, t);
      if (wrong) finding(op, via, method, rec(), t, `success that must not be: ${wrong}`);
    } catch (e) {
      finding(op, via, method, rec(), t, `success, but the exchange does not decode: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  // ---- the storm -------------------------------------------------------------------------------

  const runOp = async (op: number): Promise<void> => {
    const rng = opRng(op);
    const kind = rng.weighted<string>([[62, "typed"], [28, "raw"], [10, "reply-upload"]]);
    if (kind === "raw") return rawCall(op, rng);
    if (kind === "reply-upload") return replyUpload(op, rng);
    const method = rng.weighted<Method>([[9, "join"], [14, "heartbeat"], [12, "pullTask"], [17, "pullObject"], [20, "pushObject"], [20, "pushResult"], [8, "leave"]]);
    const t = pickToken(rng);
    const req = genRequest(rng, method, t);
    sanitize(method, req, t);
    if (method === "pullTask" && rng.chance(0.05)) {
      // A long poll the client gives up on.
      (req as PullTaskRequest).waitMs = rng.pick([30_000, 0xffffffff]);
      await typed(op, rng, method, req, t, { timeoutMs: 40 + rng.int(60) });
      return;
    }
    await typed(op, rng, method, req, t);
  };

  test(`at least 10,000 seeded random and mutated requests (seed 0x${SEED.toString(16)}) leave the server serving, with expected codes only`, async (ctx) => {
    const started = Date.now();
    let next = 0;
    let harness: unknown;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (sent < MESSAGES && Date.now() - started < STORM_LIMIT_MS && harness === undefined) {
          const op = next++;
          try {
            await runOp(op);
          } catch (e) {
            harness ??= new Error(`op ${op}: the fuzzer itself failed: ${e instanceof Error ? e.stack : String(e)}`);
          }
        }
      }),
    );
    stormMs = Date.now() - started;
    if (harness) throw harness;
    const table = [...stats.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}: ${v}`);
    ctx.diagnostic(`seed 0x${SEED.toString(16)}: ${sent} requests in ${next} ops, ${(stormMs / 1000).toFixed(1)} s (${Math.round(sent / (stormMs / 1000))}/s), concurrency ${CONCURRENCY}`);
    ctx.diagnostic(table.join(", "));
    ctx.diagnostic(`accepted during the storm: ${json([...accepted.entries()].map(([k, v]) => ({ task: k, ident: v.ident, op: v.op, via: v.via, sha256: v.sha256, failure: v.failure })))}`);
    const kinds = new Map<string, number>();
    for (const x of findings) {
      const k = `${x.via} ${x.got.replace(/"[^"]*"/g, '"…"').replace(/\d+/g, "N").slice(0, 90)}`;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    ctx.diagnostic(`findings by kind: ${json([...kinds.entries()])}`);
    if (process.env.SAFL_FUZZ_REPORT) writeFileSync(process.env.SAFL_FUZZ_REPORT, `${findings.map((x) => json(x)).join("\n")}\n`);
    const shown = findings.slice(0, 25).map((x) => `  op ${x.op} ${x.via} ${x.method} [${x.headers}] -> ${x.got}\n    request: ${x.request}`);
    assert.equal(findings.length, 0, `${findings.length} unexpected outcomes (seed 0x${SEED.toString(16)}):\n${shown.join("\n")}`);
    assert.ok(sent >= Math.min(MESSAGES, 10_000), `only ${sent} requests in ${stormMs} ms`);
  });

  // The GOAWAY(INTERNAL_ERROR) this test once saw was the fuzzer's own doing: it reset every raw stream
  // after its answer, and nghttp2's rapid-reset mitigation ends a connection that resets streams
  // faster than about 33 a second after a burst of 1000. post() no longer resets finished streams.
  test("the server never ends the raw fuzzing connection with an HTTP/2 GOAWAY error", () => {
    assert.deepEqual(rawGoaways, [], "the server sent GOAWAY with an error on the raw connection (with the requests in flight)");
  });

  test("after the storm the server still serves, over the typed clients and raw HTTP/2", async () => {
    const c = f.client("connect");
    const j = await c.join(joinRequest(), auth(tok.alice));
    owner.set(j.sessionId, { ident: "alice", token: "alice" });
    const prev = live.get("alice");
    if (prev) closedSessions.push(prev);
    live.set("alice", j.sessionId);
    for (const kind of ["connect", "grpc", "grpc-web"] as const) {
      assert.equal((await f.client(kind).heartbeat({ sessionId: j.sessionId, status: { round: 2 } }, auth(tok.alice))).runState, RunState.RUNNING);
    }
    const a = await post({ ":path": `${SERVICE_PATH}Heartbeat`, "content-type": "application/proto", authorization: `Bearer ${tok.alice}` }, toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { sessionId: j.sessionId })));
    assert.equal(a.status, 200, a.body.toString());
    assert.equal(fromBinary(HeartbeatResponseSchema, a.body).runState, RunState.RUNNING);
  });

  test("the state file changed only by the replies accepted during the storm, each once and from its own client", () => {
    const before = JSON.parse(fingerprintBefore) as { replies: unknown[]; failures: unknown; records: unknown; open: unknown };
    const now = JSON.parse(stateFingerprint(f.state)) as typeof before;
    assert.deepEqual(now.failures, before.failures);
    assert.deepEqual(now.records, before.records);
    assert.deepEqual(now.open, before.open);
    const replyAccepts = [...accepted.entries()].filter(([, v]) => v.sha256 !== undefined);
    const expected = [
      ...before.replies,
      ...replyAccepts.map(([taskId, v]) => ({ taskId, clientId: v.ident, sha256: v.sha256, payload: v.sha256 })),
    ];
    const key = (r: unknown) => JSON.stringify(r);
    assert.deepEqual(now.replies.map(key).sort(), expected.map(key).sort());
    for (const [taskId, v] of accepted) {
      assert.ok(FREE_REPLY.includes(v.ident), `${taskId} accepted for ${v.ident}`);
      assert.equal(taskOwner.get(taskId), v.ident);
    }
    // One "accepted:" log line per accepted reply (a failure settles silently).
    assert.equal(f.logs.slice(logsBefore).filter((l) => l.startsWith("accepted:")).length, replyAccepts.length);
  });

  test("the round's pending send resolves correctly once valid replies arrive", async () => {
    const c = f.client("connect");
    const payloads = new Map<string, Uint8Array>();
    // carol's task: a mutated reply, if the storm did not get one in (the hub stores bytes; the driver validates).
    if (!accepted.has(round2.carol!.taskId)) {
      const mutated = replyFor(2, "carol");
      mutated[mutated.length - 1]! ^= 0x5a;
      const j = await c.join(joinRequest(), auth(tok.carol));
      assert.equal((await pullTaskId(c, tok.carol, j.sessionId)).taskId, round2.carol!.taskId);
      assert.equal(await pushReply(c, tok.carol, j.sessionId, round2.carol!.taskId, mutated, 2), PushResultStatus.ACCEPTED);
      accepted.set(round2.carol!.taskId, { ident: "carol", op: -1, via: "final", sha256: sha256Hex(mutated), payload: mutated });
    }
    if (!accepted.has(round2["client-0000"]!.taskId)) {
      const j = await c.join(joinRequest({ partitionRequest: "0" }), auth(tok.carol));
      assert.equal(j.clientId, "client-0000");
      const r = await c.pushResult({ sessionId: j.sessionId, taskId: round2["client-0000"]!.taskId, outcome: { case: "failure", value: { code: FailureCode.DIVERGED, message: "loss is NaN" } } }, auth(tok.carol));
      assert.equal(r.status, PushResultStatus.ACCEPTED);
      accepted.set(round2["client-0000"]!.taskId, { ident: "client-0000", op: -1, via: "final", failure: FailureCode.DIVERGED });
    }
    for (const id of PROTECTED as ClientName[]) {
      const j = await c.join(joinRequest(), auth(tok[id]));
      const t = await pullTaskId(c, tok[id], j.sessionId);
      assert.equal(t.taskId, round2[id]!.taskId);
      const p = replyFor(2, id);
      payloads.set(id, p);
      assert.equal(await pushReply(c, tok[id], j.sessionId, t.taskId, p, 3), PushResultStatus.ACCEPTED);
    }
    let timer: NodeJS.Timeout | undefined;
    const got = await Promise.race([pending, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("the send did not resolve")), 20_000)))]).finally(() => clearTimeout(timer));
    assert.deepEqual(got.map((r) => r.clientId), ["alice", "bob", "carol", "client-0000"]);
    for (const r of got) {
      const a = accepted.get(round2[r.clientId]!.taskId);
      if (PROTECTED.includes(r.clientId)) {
        assert.ok("payload" in r, `${r.clientId}: ${json(r)}`);
        assert.deepEqual(Buffer.from(r.payload), Buffer.from(payloads.get(r.clientId)!));
      } else if (a?.sha256 !== undefined) {
        assert.ok("payload" in r, `${r.clientId}: ${json(r)}`);
        assert.equal(sha256Hex(r.payload), a.sha256);
        if (a.payload) assert.deepEqual(Buffer.from(r.payload), Buffer.from(a.payload));
      } else {
        assert.ok("failure" in r, `${r.clientId}: ${json(r)}`);
        assert.equal(r.failure.code, failureCodeFromProto(a!.failure!));
      }
    }
    const replies = f.state.acceptedReplies();
    assert.equal(new Set(replies.map((r) => r.taskId)).size, replies.length);
    assert.equal(replies.length, got.filter((r) => "payload" in r).length);
    assert.equal(f.state.failures().length, got.filter((r) => "failure" in r).length);
  });

  test("tokens never show in a log line or an error message", (ctx) => {
    assert.ok(errorMessages.length > 1000);
    // Header tokens (valid, revoked, forged, malformed ones such as a token pasted twice, whose
    // parsed "id" carries the secret): not 12 consecutive characters of a secret anywhere.
    for (const token of headerTokens) {
      for (const line of f.logs) assert.ok(!leaks(line, token), `a log line carries a header token: ${line}`);
      for (const m of errorMessages) assert.ok(!leaks(m, token), `an error message carries a header token: ${m}`);
    }
    // Tokens pasted into request fields (session, task and object ids, reasons, device, software) are
    // redacted too, as tokens.redact promises: "safl_<id>_" and 8 or more secret characters never come
    // back. (A mutated raw body can garble the prefix; what is quoted then is no token any more.)
    const quotes = (text: string, token: string) => text.includes(token.slice(0, token.length - 43 + 8));
    const echoedLogs = f.logs.filter((l) => decoys.some((d) => quotes(l, d)));
    const echoedErrors = errorMessages.filter((m) => decoys.some((d) => quotes(m, d)));
    ctx.diagnostic(`${f.logs.length} log lines, ${errorMessages.length} error messages checked; tokens pasted into request fields and quoted back: ${echoedLogs.length} log lines, ${echoedErrors.length} error messages`);
    assert.deepEqual([...echoedLogs.slice(0, 5), ...echoedErrors.slice(0, 5)], []);
  });

  test("every gRPC and gRPC-web call is answered, whatever characters its ids hold", (ctx) => {
    ctx.diagnostic(`${hangs.length} unanswered gRPC/gRPC-web calls with a non-BMP character in a field${hangs.length > 0 ? ", e.g.:" : ""}`);
    for (const h of hangs.slice(0, 3)) ctx.diagnostic(`  ${h}`);
    assert.deepEqual(hangs.slice(0, 3), []);
  });

  test("a request body the server cannot decode is INVALID_ARGUMENT, not INTERNAL", { todo: "upstream: connect-es 2.1.1 createBinarySerialization().parse throws Code.Internal ('parse binary: …'; v1 used InvalidArgument), and a gRPC envelope flagged compressed without grpc-encoding is INTERNAL too ('received compressed envelope, but do not know how to decompress')" }, (ctx) => {
    ctx.diagnostic(`${upstream.count} INTERNAL answers to undecodable bodies; one request per message:`);
    for (const [k, v] of upstream.examples) ctx.diagnostic(`  ${k}: ${v}`);
    assert.equal(upstream.count, 0);
  });
});
