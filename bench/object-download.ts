/**
 * Object download over loopback, in process: a server assembled as `runServer` (net/server.ts)
 * assembles it — a FederationHub over a StateStore and a TokenVerifier in a temp dir, served by
 * connectNodeAdapter (readMaxBytes/writeMaxBytes = MAX_MESSAGE_BYTES) on cleartext HTTP/2 with the
 * server's 16 MiB session window — whose backbone object is a synthetic `--mb` MB (default 100,
 * MB = 10^6 bytes) of incompressible-looking bytes, and a client built as `runClient` builds one (an
 * Http2SessionManager, the gRPC transport, a bearer-token interceptor that also counts every
 * message's bytes as the real client does) that joins and downloads the object with PullObject in
 * 4 MiB chunks. The handler is `safl server`'s own (net/routes federationHandler).
 *
 * 1. Throughput: `--reps` (default 5) downloads into memory with net/client-cache `pullToMemory`
 *    (chunks reassembled, then the SHA-256 checked), reporting MB/s per download and the median.
 * 2. Resume: a download into the client's disk cache (net/client-cache `ObjectCache.fetch`, which
 *    appends chunks to `<id>.partial`) whose connection the server cuts while it sends chunk
 *    `--cut-after` + 1 (default after 10 chunks: the server destroys its HTTP/2 session once 1 MiB
 *    of that chunk's response has been handed to the stream). The call fails, the partial file
 *    keeps the chunks that arrived; a second `fetch` resumes from the partial file's length (on a
 *    new connection), and the object is accepted only if its SHA-256 matches (checked by the cache
 *    and again here). Reports the error, the resume offset, the bytes fetched again, and the time.
 *
 *   npm run build
 *   node dist/bench/object-download.js [--mb 100] [--reps 5] [--cut-after 10] [--client-window BYTES] [--identity] [--json]
 *
 * `--client-window` sets the client session's HTTP/2 initial window (settings.initialWindowSize);
 * without it the client uses Node's default (64 KiB), as `safl client` does. `--identity` makes the
 * client accept no response compression: connect-node clients advertise gzip and br by default and
 * a connect-node server then gzips every response over 1 KiB, 4 MiB object chunks included, which
 * the default run (like `safl client` and `safl server` today) pays for.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ObjectCache, type PullChunk, pullToMemory } from "../src/net/client-cache.js";
import { FederationService } from "../src/net/gen/safl/v1/federation_pb.js";
import { FederationHub } from "../src/net/hub.js";
import { CHUNK_BYTES, FRAME_PREFIX_BYTES, MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from "../src/net/protocol.js";
import { federationHandler } from "../src/net/routes.js";
import { StateStore } from "../src/net/state.js";
import { createToken, RateLimiter, TokenVerifier } from "../src/net/tokens.js";

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "100" },
    reps: { type: "string", default: "5" },
    "cut-after": { type: "string", default: "10" },
    "client-window": { type: "string" },
    identity: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const totalBytes = Math.round(Number(values.mb) * 1e6);
const reps = Number(values.reps);
const cutAfter = Number(values["cut-after"]);
const clientWindow = values["client-window"] === undefined ? undefined : Number(values["client-window"]);
const chunks = Math.ceil(totalBytes / CHUNK_BYTES);
if (
  !(Number.isInteger(totalBytes) && totalBytes > 0) ||
  !(Number.isInteger(reps) && reps > 0) ||
  !(Number.isInteger(cutAfter) && cutAfter >= 0 && cutAfter < chunks) ||
  (clientWindow !== undefined && !(Number.isInteger(clientWindow) && clientWindow >= 65535 && clientWindow <= 2 ** 31 - 1))
) {
  console.error(`usage: node dist/bench/object-download.js [--mb MB>0] [--reps N>0] [--cut-after 0..chunks-1 (${chunks} chunks)] [--client-window 65535..2^31-1] [--json]`);
  process.exit(2);
}
const CUT_AT_BYTES = 1024 * 1024;

const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

// Deterministic, incompressible-looking content (xorshift32, as in protocol-smoke.test.ts).
const object = new Uint8Array(totalBytes);
{
  let x = 0x9e3779b9;
  for (let i = 0; i < object.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    object[i] = x & 0xff;
  }
}
const objectId = sha256Hex(object);

const dir = await mkdtemp(join(tmpdir(), "safl-object-download-"));
const tokensPath = join(dir, "tokens.json");
const token = await createToken(tokensPath, "bench");
const state = StateStore.open(join(dir, "state.db"));
state.initRun({ runId: "run-object-download", configJson: "{}", configHash: sha256Hex(new TextEncoder().encode("{}")) });
const hub = new FederationHub({
  runId: "run-object-download",
  runConfigJson: "{}",
  backbone: { sha256: objectId, bytes: object },
  heartbeatSeconds: 30,
  partitions: 1,
  tokens: TokenVerifier.load(tokensPath),
  state,
  joinLimiter: new RateLimiter({ capacity: 20, refillPerSecond: 2 }),
  maxReplyBytes: 2 * 1024 * 1024 * 1024 - 1,
  log: () => undefined,
});
// The handler `safl server` uses (net/routes): its limits, and no compression either way.
const server = http2.createServer(federationHandler(hub));
const sessions = new Set<http2.ServerHttp2Session>();
server.on("session", (s) => {
  sessions.add(s);
  s.once("close", () => sessions.delete(s));
  s.setLocalWindowSize?.(16 * 1024 * 1024);
});

/** When armed: the server cuts the connection while it sends the response to PullObject number `cutAt` (1-based). */
let cut: { cutAt: number; seen: number; fired: boolean } | undefined;
server.on("stream", (stream, headers) => {
  if (!cut || cut.fired || !String(headers[":path"]).endsWith("/PullObject")) return;
  if (++cut.seen !== cut.cutAt) return;
  let written = 0;
  const write = stream.write.bind(stream) as (chunk: Uint8Array, ...rest: unknown[]) => boolean;
  // Count the response bytes handed to the stream; past CUT_AT_BYTES the session goes, mid-chunk.
  (stream as unknown as { write: typeof write }).write = (chunk: Uint8Array, ...rest: unknown[]) => {
    written += chunk.length;
    const ok = write(chunk, ...rest);
    if (written >= CUT_AT_BYTES && cut && !cut.fired) {
      cut.fired = true;
      stream.session?.destroy();
    }
    return ok;
  };
});

await new Promise<void>((resolve, reject) => {
  server.once("error", reject);
  server.listen(0, "127.0.0.1", () => resolve());
});
const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

// The client, as runClient builds it.
const manager = new Http2SessionManager(baseUrl, { pingIntervalMs: 30_000, pingTimeoutMs: 15_000 }, clientWindow !== undefined ? { settings: { initialWindowSize: clientWindow } } : {});
const traffic = { down: 0, up: 0 };
const auth: Interceptor = (next) => async (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  if (!req.stream) traffic.up += toBinary(req.method.input, req.message).length + FRAME_PREFIX_BYTES;
  const res = await next(req);
  if (!res.stream) traffic.down += toBinary(req.method.output, res.message).length + FRAME_PREFIX_BYTES;
  if (responseEncoding === "" && req.method.localName === "pullObject") responseEncoding = res.header.get("grpc-encoding") ?? "identity";
  return res;
};
const rpc = createClient(
  FederationService,
  createGrpcTransport({
    baseUrl,
    sessionManager: manager,
    interceptors: [auth],
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    // --identity: accept no compression, so the server sends the chunks as they are.
    ...(values.identity ? { acceptCompression: [] } : {}),
  }),
);
/** The response encoding the server chose, seen on the first PullObject. */
let responseEncoding = "";
const joined = await rpc.join({ protocolVersion: PROTOCOL_VERSION, clientSoftware: "sa-fedlora/bench", device: { kind: "node", threads: 1, platform: process.platform } });
const size = Number(joined.backboneObject?.size ?? 0n);
if (joined.backboneSha256 !== objectId || size !== totalBytes) throw new Error(`join named object ${joined.backboneSha256.slice(0, 12)}… of ${size} bytes, expected ${objectId.slice(0, 12)}… of ${totalBytes}`);

let calls = 0;
const pull: PullChunk = async (offset) => {
  calls++;
  const r = await rpc.pullObject({ sessionId: joined.sessionId, objectId, offset: BigInt(offset), maxBytes: CHUNK_BYTES });
  if (r.offset !== BigInt(offset)) throw new Error(`asked for offset ${offset}, the server sent ${r.offset}`);
  return { data: r.data, totalSize: Number(r.totalSize), last: r.last };
};

try {
  // 1. Throughput, into memory; one warm-up download first (connection, JIT).
  await pullToMemory(objectId, size, pull);
  const mbps: number[] = [];
  const seconds: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const bytes = await pullToMemory(objectId, size, pull);
    const s = (performance.now() - t0) / 1000;
    if (bytes.length !== totalBytes) throw new Error("short download");
    seconds.push(s);
    mbps.push(totalBytes / 1e6 / s);
  }

  // 2. A download into the disk cache cut mid-chunk, then resumed from the partial file.
  const cache = new ObjectCache(join(dir, "cache", "objects"));
  cut = { cutAt: cutAfter + 1, seen: 0, fired: false };
  const callsBefore = calls;
  const t0 = performance.now();
  let firstError = "";
  let completed = false;
  try {
    await cache.fetch(objectId, size, pull);
    completed = true;
  } catch (e) {
    firstError = e instanceof ConnectError ? `${Code[e.code]}: ${e.rawMessage}` : e instanceof Error ? e.message : String(e);
  }
  if (completed) throw new Error("the download that should have been cut completed: the connection was not cut");
  const tCut = performance.now();
  const partial = await cache.partialBytes(objectId);
  const callsFirst = calls - callsBefore;
  let resumedFrom = -1;
  const downBefore = traffic.down;
  const tResume = performance.now();
  const bytes = await cache.fetch(objectId, size, pull, (offset) => (resumedFrom = offset));
  const tDone = performance.now();
  const verified = sha256Hex(bytes) === objectId && Buffer.from(bytes).equals(Buffer.from(object));
  const result = {
    objectBytes: totalBytes,
    chunkBytes: CHUNK_BYTES,
    chunks,
    clientWindow: clientWindow ?? "node default (65535)",
    clientAcceptsCompression: !values.identity,
    responseEncoding,
    throughput: { reps, mbPerSecond: mbps, seconds, medianMBps: median(mbps), minMBps: Math.min(...mbps), maxMBps: Math.max(...mbps) },
    resume: {
      cutDuringChunk: cutAfter + 1,
      cutAfterResponseBytes: CUT_AT_BYTES,
      firstAttemptCalls: callsFirst,
      firstAttemptError: firstError,
      partialBytes: partial,
      partialChunks: partial / CHUNK_BYTES,
      resumedFrom,
      secondAttemptCalls: calls - callsBefore - callsFirst,
      secondAttemptMessageBytes: traffic.down - downBefore,
      cutSeconds: (tCut - t0) / 1000,
      resumeSeconds: (tDone - tResume) / 1000,
      sha256Verified: verified,
    },
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    const r = result.resume;
    console.log(
      `object ${(totalBytes / 1e6).toFixed(0)} MB (${chunks} PullObject chunks of 4 MiB) over loopback h2c, client window ${result.clientWindow}; ` +
        `the client ${values.identity ? "accepts no compression" : "accepts gzip and br (connect-node's default)"}, the server sent chunks with grpc-encoding ${responseEncoding}`,
    );
    console.log(
      `download into memory + SHA-256 check, ${reps} times after a warm-up: median ${result.throughput.medianMBps.toFixed(0)} MB/s ` +
        `(range ${result.throughput.minMBps.toFixed(0)}-${result.throughput.maxMBps.toFixed(0)}; ${mbps.map((x) => x.toFixed(0)).join(", ")} MB/s)`,
    );
    console.log(`resume: the server cut its HTTP/2 session ${CUT_AT_BYTES / 1024 / 1024} MiB into chunk ${r.cutDuringChunk}; the client's call failed with: ${r.firstAttemptError.slice(0, 160)}`);
    console.log(
      `  the partial file held ${r.partialBytes} bytes (${r.partialChunks} chunks); the next fetch resumed at ${r.resumedFrom} and made ${r.secondAttemptCalls} calls ` +
        `(${(r.secondAttemptMessageBytes / 1e6).toFixed(1)} MB of messages) in ${r.resumeSeconds.toFixed(2)} s; SHA-256 verified: ${r.sha256Verified ? "yes" : "NO"}`,
    );
  }
  if (!verified || resumedFrom !== partial || partial !== cutAfter * CHUNK_BYTES) process.exitCode = 1;
} finally {
  manager.abort();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const s of sessions) s.destroy();
  });
  state.close();
  await rm(dir, { recursive: true, force: true });
}
