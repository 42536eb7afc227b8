/**
 * @module net/client.test
 * The network client (net/client) against a small fake FederationService served by connect-node
 * on cleartext HTTP/2 (127.0.0.1, port 0): it serves Join, the shipped backbone as a backbone object
 * (in small chunks, so it takes several), one real FedLoRA round-1 broadcast for partition 2, then
 * RunFinished. Checks that the pushed reply is the reply virtual client 2 of the simulation gives
 * (byte for byte), that a second start with the same cache downloads no backbone bytes, that an
 * interrupted backbone download resumes (in the same process, and from the partial file after a
 * restart) and verifies, that a reply is re-sent from memory after the server forgot the session,
 * and the exits for a refused token and an out-of-range partition. Temporary caches are removed;
 * the server and every connection are closed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, type ConnectRouter, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createStrategy } from "../fl/strategies/index.js";
import { decodeMessage, encodeMessage } from "../fl/wire.js";
import { defaultBackboneDir } from "../io/paths.js";
import { NodeRuntime } from "../runtime/node.js";
import { parseRunConfig } from "../sim/config.js";
import { localGrid, localTraining, prepareSimulation, type SimulationSetup } from "../sim/simulate.js";
import { type BackboneObject, packBackbone, sha256Hex } from "./backbone.js";
import { runClient, type ClientOptions } from "./client.js";
import { DiskBaseStore, ObjectCache } from "./client-cache.js";
import { FederationService, type JoinRequest, ObjectKind, PushResultStatus, TaskKind } from "./gen/safl/v1/federation_pb.js";
import { PROTOCOL_VERSION } from "./protocol.js";

const cfg = parseRunConfig({
  rounds: 1,
  data: { dataset: "mnist", classes: "5-9", trainLimit: 200 },
  clients: { count: 4, perRound: 4 },
  strategy: { name: "fedlora", adapter: { rank: 2 } },
  training: { localSteps: 2, batch: 8 },
});
const RUN_CONFIG_JSON = JSON.stringify(cfg);
const PARTITION = 2;
const CLIENT_ID = "client-0002";
const CHUNK = 256 * 1024;

const makeToken = (id: string) => `safl_${id}_${randomBytes(32).toString("base64url")}`;
const TOKEN = makeToken("alice");

interface FakeTask {
  readonly taskId: string;
  readonly round: number;
  readonly request: Uint8Array;
}

interface FakeBehaviour {
  /** Tasks handed out in order; a task stays until its result is accepted. */
  tasks: FakeTask[];
  /** Fail PullObject of the backbone at this offset once with UNAVAILABLE. */
  failBackboneAt?: number;
  /** Answer the first PushResult with an unknown session (as a restarted server does). */
  forgetSessionAtFirstResult?: boolean;
  /** The first PullTask forgets every session and never answers (a restart under a stuck stream). */
  hangFirstPull?: boolean;
}

/** A scripted FederationService recording what the client did. */
class FakeServer {
  readonly joins: JoinRequest[] = [];
  readonly pulls: { objectId: string; offset: number; bytes: number }[] = [];
  readonly pushedChunks: { taskId: string; offset: number; bytes: number }[] = [];
  readonly results: { taskId: string; sha256: string; payload: Uint8Array }[] = [];
  heartbeats = 0;
  leaves = 0;
  behaviour: FakeBehaviour = { tasks: [] };
  private readonly sessions = new Set<string>();
  private readonly uploads = new Map<string, { objectId: string; chunks: Uint8Array[]; received: number }>();
  private readonly objects = new Map<string, Uint8Array>();
  private failedOnce = false;
  private forgotOnce = false;
  private hungOnce = false;
  private server: http2.Http2Server | undefined;
  private readonly serverSessions = new Set<http2.ServerHttp2Session>();
  url = "";

  constructor(readonly backbone: BackboneObject) {}

  reset(behaviour: FakeBehaviour): void {
    this.behaviour = behaviour;
    this.joins.length = 0;
    this.pulls.length = 0;
    this.pushedChunks.length = 0;
    this.results.length = 0;
    this.heartbeats = 0;
    this.leaves = 0;
    this.failedOnce = false;
    this.forgotOnce = false;
    this.hungOnce = false;
    this.sessions.clear();
    this.uploads.clear();
    this.objects.clear();
    this.objects.set(this.backbone.sha256, this.backbone.bytes);
    for (const t of behaviour.tasks) this.objects.set(sha256Hex(t.request), t.request);
  }

  private auth(header: string | null): void {
    if (header !== `Bearer ${TOKEN}`) throw new ConnectError("token rejected (unknown)", Code.Unauthenticated);
  }

  private session(id: string): void {
    if (!this.sessions.has(id)) throw new ConnectError(`unknown session "${id}" (the server restarted or the session ended): join again`, Code.FailedPrecondition);
  }

  routes = (router: ConnectRouter) =>
    router.service(FederationService, {
      join: (req, ctx) => {
        this.auth(ctx.requestHeader.get("authorization"));
        this.joins.push(req);
        const sessionId = `session-${this.joins.length}`;
        this.sessions.add(sessionId);
        const partition = req.partitionRequest === undefined ? -1 : Number(req.partitionRequest);
        return {
          sessionId,
          runId: "run-test",
          clientId: partition >= 0 ? `client-${String(partition).padStart(4, "0")}` : "alice",
          protocolVersion: PROTOCOL_VERSION,
          backboneSha256: this.backbone.sha256,
          backboneObject: { id: this.backbone.sha256, size: BigInt(this.backbone.bytes.length), kind: ObjectKind.BACKBONE },
          heartbeatSeconds: 1,
          maxChunkBytes: CHUNK,
          runConfigJson: RUN_CONFIG_JSON,
          partitionIndex: partition,
        };
      },
      heartbeat: (req, ctx) => {
        this.auth(ctx.requestHeader.get("authorization"));
        this.session(req.sessionId);
        this.heartbeats++;
        return { heartbeatSeconds: 1 };
      },
      pullTask: async (req, ctx) => {
        this.auth(ctx.requestHeader.get("authorization"));
        this.session(req.sessionId);
        if (this.behaviour.hangFirstPull && !this.hungOnce) {
          this.hungOnce = true;
          this.sessions.clear();
          await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
          throw new ConnectError("cancelled", Code.Canceled);
        }
        const t = this.behaviour.tasks[0];
        if (!t) return { outcome: { case: "finished", value: { summaryJson: JSON.stringify({ strategy: "fedlora", rounds: 1, finalAccuracy: 0.5 }) } } };
        return {
          outcome: {
            case: "task",
            value: {
              taskId: t.taskId,
              round: t.round,
              attempt: 0,
              kind: TaskKind.TRAIN,
              request: { id: sha256Hex(t.request), size: BigInt(t.request.length), kind: ObjectKind.BROADCAST },
              deadlineUnixMs: BigInt(Date.now() + 600_000),
            },
          },
        };
      },
      pullObject: (req, ctx) => {
        this.auth(ctx.requestHeader.get("authorization"));
        this.session(req.sessionId);
        const o = this.objects.get(req.objectId);
        if (!o) throw new ConnectError("no such object", Code.NotFound);
        const offset = Number(req.offset);
        if (req.objectId === this.backbone.sha256 && offset === this.behaviour.failBackboneAt && !this.failedOnce) {
          this.failedOnce = true;
          this.pulls.push({ objectId: req.objectId, offset, bytes: 0 });
          throw new ConnectError("the server is restarting", Code.Unavailable);
        }
        const want = req.maxBytes === 0 ? CHUNK : Math.min(req.maxBytes, CHUNK);
        const end = Math.min(offset + want, o.length);
        this.pulls.push({ objectId: req.objectId, offset, bytes: end - offset });
        return { objectId: req.objectId, offset: req.offset, data: o.subarray(offset, end), totalSize: BigInt(o.length), last: end === o.length };
      },
      pushObject: (req, ctx) => {
        this.auth(ctx.requestHeader.get("authorization"));
        this.session(req.sessionId);
        this.pushedChunks.push({ taskId: req.taskId, offset: Number(req.offset), bytes: req.data.length });
        let u = this.uploads.get(req.taskId);
        if (!u || u.objectId !== req.objectId) {
          if (req.offset !== 0n) return { received: 0n };
          u = { objectId: req.objectId, chunks: [], received: 0 };
          this.uploads.set(req.taskId, u);
        }
        if (Number(req.offset) !== u.received) return { received: BigInt(u.received) };
        u.chunks.push(req.data.slice());
        u.received += req.data.length;
        return { received: BigInt(u.received) };
      },
      pushResult: (req, ctx) => {
        this.auth(ctx.requestHeader.get("authorization"));
        this.session(req.sessionId);
        if (this.behaviour.forgetSessionAtFirstResult && !this.forgotOnce) {
          // A restart: sessions and uploads are gone, the task is still open.
          this.forgotOnce = true;
          this.sessions.clear();
          this.uploads.clear();
          this.session(req.sessionId);
        }
        const t = this.behaviour.tasks[0];
        if (!t || t.taskId !== req.taskId) throw new ConnectError(`task "${req.taskId}" is not open`, Code.FailedPrecondition);
        if (req.outcome.case !== "replyObjectId") throw new ConnectError("expected a reply", Code.InvalidArgument);
        const u = this.uploads.get(req.taskId);
        if (!u || u.objectId !== req.outcome.value) throw new ConnectError("no upload: push the reply with PushObject first", Code.FailedPrecondition);
        const payload = Buffer.concat(u.chunks);
        assert.equal(sha256Hex(payload), u.objectId, "the reply's object id is its SHA-256");
        this.results.push({ taskId: req.taskId, sha256: u.objectId, payload: new Uint8Array(payload) });
        this.behaviour.tasks.shift();
        return { status: PushResultStatus.ACCEPTED };
      },
      leave: (req, ctx) => {
        this.auth(ctx.requestHeader.get("authorization"));
        this.sessions.delete(req.sessionId);
        this.leaves++;
        return {};
      },
    });

  async start(): Promise<void> {
    this.server = http2.createServer(connectNodeAdapter({ routes: this.routes, readMaxBytes: 5 * 1024 * 1024, writeMaxBytes: 5 * 1024 * 1024 }));
    this.server.on("session", (s) => {
      this.serverSessions.add(s);
      s.on("close", () => this.serverSessions.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(0, "127.0.0.1", () => resolve());
    });
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.serverSessions) s.destroy();
    await new Promise<void>((resolve, reject) => this.server?.close((e) => (e ? reject(e) : resolve())) ?? resolve());
  }

  backbonePulls(): { offset: number; bytes: number }[] {
    return this.pulls.filter((p) => p.objectId === this.backbone.sha256);
  }
}

describe("net/client against a fake server", { timeout: 300_000 }, () => {
  let backbone: BackboneObject;
  let setup: SimulationSetup;
  let request: Uint8Array;
  let expectedReply: Uint8Array;
  let fake: FakeServer;
  let runtime: NodeRuntime;
  const dirs: string[] = [];

  const cacheDir = async () => {
    const d = await mkdtemp(join(tmpdir(), "safl-client-test-"));
    dirs.push(d);
    return d;
  };

  const start = (cache: string, extra: Partial<ClientOptions> = {}) => {
    const events: Record<string, unknown>[] = [];
    const out: string[] = [];
    const exit = runClient({
      server: fake.url,
      identities: [{ token: TOKEN, partition: PARTITION }],
      insecure: true,
      cacheDir: cache,
      runtime,
      backoff: { baseMs: 20, capMs: 100 },
      json: true,
      log: (line) => events.push(JSON.parse(line) as Record<string, unknown>),
      out: (line) => out.push(line),
      ...extra,
    });
    return { exit, events, out };
  };

  before(async () => {
    backbone = await packBackbone(defaultBackboneDir());
    assert.ok(backbone.bytes.length > 3 * CHUNK, "the backbone takes several chunks");
    setup = await prepareSimulation(cfg);
    const strategy = createStrategy(cfg.strategy, { config: setup.config, initial: setup.initial, training: localTraining(cfg), rounds: cfg.rounds, seed: cfg.seed });
    request = encodeMessage(strategy.configureTrain(1, [CLIENT_ID]).messages[0]!);
    runtime = new NodeRuntime({ threads: 1 });
    // What virtual client 2 of the simulation replies to the same broadcast.
    const grid = localGrid(setup, runtime, cfg.wire.dtype);
    const [r] = await grid.send([{ clientId: CLIENT_ID, payload: request }]);
    await grid.close();
    assert.ok(r && "payload" in r, "the in-memory grid replies");
    expectedReply = r.payload;
    fake = new FakeServer(backbone);
    await fake.start();
  });

  after(async () => {
    await fake?.stop();
    await runtime?.release();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test("plays partition 2: downloads the backbone, trains round 1, pushes the simulation's reply, exits 0", async () => {
    fake.reset({ tasks: [{ taskId: "task-1", round: 1, request }] });
    const cache = await cacheDir();
    const { exit, events, out } = start(cache);
    const e = await exit;
    assert.equal(e.code, 0, e.message);
    assert.equal(e.reason, "finished");
    assert.deepEqual(e.clientIds, [CLIENT_ID]);
    assert.equal(e.tasks, 1);

    assert.equal(fake.joins.length, 1);
    const j = fake.joins[0]!;
    assert.equal(j.protocolVersion, PROTOCOL_VERSION);
    assert.equal(j.partitionRequest, String(PARTITION));
    assert.equal(j.backboneSha256, "", "a fresh cache holds no backbone");
    assert.equal(j.device?.kind, "node");
    assert.equal(j.device?.threads, 1);

    // The backbone came in chunks of at most max_chunk_bytes, once, and sits verified in the cache.
    const pulls = fake.backbonePulls();
    assert.ok(pulls.every((p) => p.bytes <= CHUNK));
    assert.equal(pulls.reduce((n, p) => n + p.bytes, 0), backbone.bytes.length);
    const cached = await readFile(join(cache, "objects", backbone.sha256));
    assert.equal(sha256Hex(cached), backbone.sha256);

    assert.equal(fake.results.length, 1);
    const reply = decodeMessage(fake.results[0]!.payload);
    assert.equal(reply.kind, "reply");
    assert.equal(reply.round, 1);
    assert.equal(reply.clientId, CLIENT_ID);
    assert.equal(reply.failure, undefined, JSON.stringify(reply.failure));
    assert.equal(reply.sampleCount, setup.clients[PARTITION]!.train.length);
    assert.equal(reply.metrics?.["steps"], 2);
    assert.ok(Buffer.from(fake.results[0]!.payload).equals(Buffer.from(expectedReply)), "the client's reply is virtual client 2's reply, byte for byte");

    const task = events.find((ev) => ev["event"] === "task");
    assert.ok(task, "one progress line per task");
    assert.equal(task["round"], 1);
    assert.equal(task["kind"], "train");
    assert.equal(task["steps"], 2);
    assert.equal(task["status"], "accepted");
    assert.ok((task["bytesDown"] as number) > request.length && (task["bytesUp"] as number) > expectedReply.length);
    assert.equal(fake.leaves, 1, "leaves at the end of the run");
    assert.equal(out.length, 1);
    assert.equal(JSON.parse(out[0]!)["summary"]["finalAccuracy"], 0.5);
    assert.ok(!JSON.stringify(events).includes(TOKEN.slice(-43)), "the token's secret is never logged");
  });

  test("a second start with the same cache downloads no backbone bytes", async () => {
    const cache = await cacheDir();
    fake.reset({ tasks: [] });
    assert.equal((await start(cache).exit).code, 0);
    assert.ok(fake.backbonePulls().length > 0);
    fake.reset({ tasks: [] });
    const again = await start(cache).exit;
    assert.equal(again.code, 0, again.message);
    assert.equal(fake.backbonePulls().length, 0, "no PullObject of the backbone");
    assert.equal(fake.joins[0]!.backboneSha256, backbone.sha256, "Join reports the cached backbone");
    assert.deepEqual(fake.joins[0]!.heldObjects, [backbone.sha256]);
  });

  test("a backbone download cut at the second chunk resumes there and verifies", async () => {
    const cache = await cacheDir();
    fake.reset({ tasks: [], failBackboneAt: CHUNK });
    const { exit, events } = start(cache);
    assert.equal((await exit).code, 0);
    const offsets = fake.backbonePulls().map((p) => p.offset);
    assert.deepEqual(offsets.slice(0, 3), [0, CHUNK, CHUNK], "the failed chunk is asked for again, the first is not");
    assert.equal(offsets.filter((o) => o === 0).length, 1);
    assert.ok(events.some((ev) => ev["event"] === "retry" && ev["code"] === "Unavailable"));
    assert.equal(sha256Hex(await readFile(join(cache, "objects", backbone.sha256))), backbone.sha256);
  });

  test("a restart resumes a partial backbone from the partial file's length", async () => {
    const cache = await cacheDir();
    fake.reset({ tasks: [], failBackboneAt: CHUNK });
    const first = await start(cache, { maxRetrySeconds: 0 }).exit;
    assert.equal(first.code, 8, first.message);
    assert.equal(first.reason, "unavailable");
    assert.equal((await stat(join(cache, "objects", `${backbone.sha256}.partial`))).size, CHUNK);
    fake.reset({ tasks: [] });
    const second = await start(cache).exit;
    assert.equal(second.code, 0, second.message);
    const pulls = fake.backbonePulls();
    assert.equal(pulls[0]!.offset, CHUNK, "the download continues where the partial file ends");
    assert.equal(pulls.reduce((n, p) => n + p.bytes, 0), backbone.bytes.length - CHUNK);
    assert.equal(sha256Hex(await readFile(join(cache, "objects", backbone.sha256))), backbone.sha256);
    await assert.rejects(stat(join(cache, "objects", `${backbone.sha256}.partial`)), "the partial file is renamed into place");
  });

  test("after the server forgets the session, the client joins again and re-sends the same reply without training", async () => {
    const cache = await cacheDir();
    fake.reset({ tasks: [{ taskId: "task-r", round: 1, request }], forgetSessionAtFirstResult: true });
    const { exit, events } = start(cache);
    const e = await exit;
    assert.equal(e.code, 0, e.message);
    assert.equal(fake.joins.length, 2, "joined again");
    assert.ok(events.some((ev) => ev["event"] === "rejoin"));
    assert.equal(fake.results.length, 1);
    assert.ok(Buffer.from(fake.results[0]!.payload).equals(Buffer.from(expectedReply)));
    const task = events.find((ev) => ev["event"] === "task");
    assert.equal(task?.["cached"], true, "answered from the reply kept in memory");
    // Both uploads started at offset 0 (the restarted server held nothing).
    assert.equal(fake.pushedChunks.filter((c) => c.offset === 0).length, 2);
  });

  test("a heartbeat that finds the session gone cuts a stuck long poll short", async () => {
    fake.reset({ tasks: [], hangFirstPull: true });
    const t0 = Date.now();
    const { exit, events } = start(await cacheDir());
    const e = await exit;
    assert.equal(e.code, 0, e.message);
    assert.equal(fake.joins.length, 2);
    assert.ok(fake.heartbeats === 0, "the heartbeat of the forgotten session was refused");
    assert.ok(events.some((ev) => ev["event"] === "rejoin"));
    assert.ok(Date.now() - t0 < 10_000, "within a few heartbeats, not the poll's timeout");
  });

  test("a refused token exits with code 2 naming the token id, not the token", async () => {
    fake.reset({ tasks: [] });
    const wrong = makeToken("mallory");
    const { exit, events } = start(await cacheDir(), { identities: [{ token: wrong, partition: PARTITION }] });
    const e = await exit;
    assert.equal(e.code, 2);
    assert.equal(e.reason, "unauthenticated");
    assert.match(e.message, /mallory/);
    assert.ok(!e.message.includes(wrong.slice(-43)));
    assert.ok(!JSON.stringify(events).includes(wrong.slice(-43)));
    assert.equal(fake.joins.length, 0);
  });

  test("an out-of-range partition is refused with a clear message before any download", async () => {
    fake.reset({ tasks: [] });
    const e = await start(await cacheDir(), { identities: [{ token: TOKEN, partition: 7 }] }).exit;
    assert.equal(e.code, 2);
    assert.match(e.message, /partition 7 is out of range: the run has 4 partitions \(0-3\)/);
    assert.equal(fake.backbonePulls().length, 0);
  });

  test("cleartext without --insecure is refused", async () => {
    await assert.rejects(runClient({ server: fake.url, identities: [{ token: TOKEN, partition: 0 }] }), /--insecure/);
  });
});

describe("net/client-cache", () => {
  test("bases persist across store instances; a damaged file is a missing base", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safl-bases-"));
    try {
      const pretrained = new Map([["w", new Float32Array([1, 2])]]);
      const a = new DiskBaseStore(join(dir, "runs", "r"), pretrained);
      assert.equal(a.base(0), pretrained);
      assert.equal(a.base(1), undefined);
      a.storeBase(1, new Map([["w", new Float32Array([3, 4, 5])]]));
      await a.flush();
      const b = new DiskBaseStore(join(dir, "runs", "r"), pretrained);
      assert.deepEqual([...b.base(1)!.get("w")!], [3, 4, 5]);
      const errors: string[] = [];
      const c = new DiskBaseStore(join(dir, "runs", "r"), pretrained, (m) => errors.push(m));
      await import("node:fs/promises").then((fs) => fs.writeFile(c.file(2), "garbage"));
      assert.equal(c.base(2), undefined);
      assert.equal(errors.length, 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a download that does not verify is discarded", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safl-objects-"));
    try {
      const cache = new ObjectCache(join(dir, "objects"));
      const bytes = new Uint8Array([1, 2, 3, 4, 5]);
      const id = sha256Hex(bytes);
      const bad = async (offset: number) => ({ data: new Uint8Array(5 - offset).fill(9), totalSize: 5, last: true });
      await assert.rejects(cache.fetch(id, 5, bad), /hash to/);
      assert.equal(await cache.partialBytes(id), 0);
      const good = async (offset: number) => ({ data: bytes.subarray(offset, Math.min(5, offset + 2)), totalSize: 5, last: offset + 2 >= 5 });
      assert.deepEqual([...(await cache.fetch(id, 5, good))], [1, 2, 3, 4, 5]);
      assert.deepEqual(await cache.held(), [id]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
