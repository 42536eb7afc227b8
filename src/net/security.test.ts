/**
 * Security checks of the federation server, in process and assembled as `safl server` assembles it
 * (hub-fixture.test.util.ts): every refusal is asserted with its exact Connect code. Bearer tokens
 * (none, wrong, malformed, revoked while the server runs) are UNAUTHENTICATED on every RPC; another
 * client's session or task is PERMISSION_DENIED; a closed or unknown task, a protocol version the
 * server does not speak and a partition another token plays are FAILED_PRECONDITION; an accepted
 * reply pushed again is DUPLICATE and reaches the grid once, a different one is refused; a request
 * over MAX_MESSAGE_BYTES and an empty Join bucket are RESOURCE_EXHAUSTED; and no token ever shows in
 * the hub's log lines or in an error message.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GridReply } from "../fl/grid.js";
import { FailureCode, PushResultStatus, RunState } from "./gen/safl/v1/federation_pb.js";
import {
  auth,
  broadcastFor,
  CLIENT_IDS,
  type ClientName,
  codeName,
  expectCode,
  type FedClient,
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
} from "./hub-fixture.test.util.js";
import { MAX_MESSAGE_BYTES, PROTOCOL_VERSION } from "./protocol.js";
import { revokeToken, createToken, RateLimiter } from "./tokens.js";

/** Every error message a test saw, with the tokens its request carried in a header. */
const seenErrors: string[] = [];
/** Every token any request presented, valid or not. */
const presented = new Set<string>();

async function refused(code: Code, call: () => Promise<unknown>, what: string): Promise<ConnectError> {
  const e = await expectCode(code, call, what);
  seenErrors.push(e.rawMessage);
  return e;
}

/** Each RPC with the given session/task ids, as calls that a test expects to be refused. */
function everyRpc(c: FedClient, token: string | undefined, sessionId: string, taskId: string, objectId: string): [string, () => Promise<unknown>][] {
  if (token !== undefined) presented.add(token);
  const o = auth(token);
  return [
    ["Heartbeat", () => c.heartbeat({ sessionId, status: { round: 1 } }, o)],
    ["PullTask", () => c.pullTask({ sessionId, waitMs: 10 }, o)],
    ["PullObject", () => c.pullObject({ sessionId, objectId, offset: 0n, maxBytes: 0 }, o)],
    ["PushObject", () => c.pushObject({ sessionId, taskId, objectId: "ab".repeat(32), offset: 0n, totalSize: 3n, data: new Uint8Array(3) }, o)],
    ["PushResult(reply)", () => c.pushResult({ sessionId, taskId, outcome: { case: "replyObjectId", value: "ab".repeat(32) } }, o)],
    ["PushResult(failure)", () => c.pushResult({ sessionId, taskId, outcome: { case: "failure", value: { code: FailureCode.NO_DATA, message: "x" } } }, o)],
    ["Leave", () => c.leave({ sessionId, reason: "test" }, o)],
  ];
}

describe("federation server security (in-process, built as net/server.ts builds it)", { timeout: 120_000 }, () => {
  let f: Fixture;
  let c: FedClient;
  const session = {} as Record<ClientName, string>;
  const task = {} as Record<ClientName, { taskId: string; requestId: string }>;
  const replies = {} as Record<ClientName, Uint8Array>;
  let pending: Promise<GridReply[]>;
  let expired: { taskId: string; reply: GridReply[] };

  before(async () => {
    // These tests make more than 20 Joins from one address; with the server's limiter (20, then 2 a
    // second) whether they pass would depend on how fast the machine runs them. The limiter has its
    // own suite below, so here it never bites.
    f = await startFixture({ joinLimiter: new RateLimiter({ capacity: 1e9, refillPerSecond: 1e9 }) });
    c = f.client("connect");
    for (const id of CLIENT_IDS) {
      presented.add(f.tokens[id]);
      const j = await c.join(joinRequest(), auth(f.tokens[id]));
      assert.equal(j.clientId, id);
      assert.equal(j.protocolVersion, PROTOCOL_VERSION);
      session[id] = j.sessionId;
    }
    // An evaluation task of bob's that runs past its deadline: its task id is then closed.
    const ev = f.grid.send([{ clientId: "bob", payload: broadcastFor(1, "bob") }], { purpose: "evaluate", deadlineMs: Date.now() + 300 });
    const evTask = await pullTaskId(c, f.tokens.bob, session.bob);
    expired = { taskId: evTask.taskId, reply: await ev };
    // The training round: one task per client, open while the tests run.
    pending = f.grid.send(
      CLIENT_IDS.map((id) => ({ clientId: id, payload: broadcastFor(1, id) })),
      { purpose: "train", attempt: 1, deadlineMs: Date.now() + 110_000 },
    );
    for (const id of CLIENT_IDS) {
      task[id] = await pullTaskId(c, f.tokens[id], session[id]);
      replies[id] = replyFor(1, id);
    }
  });

  after(async () => {
    await f?.close();
  });

  test("the expired evaluation came back as deadline-exceeded and left the state file alone", () => {
    assert.equal(expired.reply.length, 1);
    const r = expired.reply[0]!;
    assert.ok("failure" in r && r.failure.code === "deadline-exceeded", JSON.stringify(r));
    assert.deepEqual(f.state.failures(), []);
    assert.equal(f.state.openRoundState()?.tasks.length, 3);
  });

  test("no token, a malformed token, a forged token or another scheme: UNAUTHENTICATED on every RPC", async () => {
    const variants: [string, Record<string, string>][] = [
      ["no header", {}],
      ["empty bearer", { authorization: "Bearer " }],
      ["malformed", { authorization: "Bearer not-a-token" }],
      ["forged secret for alice", { authorization: `Bearer ${forgedToken("alice", 1)}` }],
      ["forged token of an unknown id", { authorization: `Bearer ${forgedToken("mallory", 2)}` }],
      ["another scheme", { authorization: `Basic ${f.tokens.alice}` }],
      ["token with trailing garbage", { authorization: `Bearer ${f.tokens.alice}x` }],
    ];
    for (const [name, headers] of variants) {
      const token = /^Bearer (\S+)/.exec(headers.authorization ?? "")?.[1];
      if (token !== undefined) presented.add(token);
      // Every RPC, with this header.
      for (const rpc of ["Heartbeat", "PullTask", "PullObject", "PushObject", "PushResult", "Leave", "WatchRun"] as const) {
        const o = { headers };
        const run = (): Promise<unknown> => {
          switch (rpc) {
            case "Heartbeat":
              return c.heartbeat({ sessionId: session.alice }, o);
            case "PullTask":
              return c.pullTask({ sessionId: session.alice, waitMs: 10 }, o);
            case "PullObject":
              return c.pullObject({ sessionId: session.alice, objectId: task.alice.requestId }, o);
            case "PushObject":
              return c.pushObject({ sessionId: session.alice, taskId: task.alice.taskId, objectId: "ab".repeat(32), totalSize: 1n, data: new Uint8Array(1) }, o);
            case "PushResult":
              return c.pushResult({ sessionId: session.alice, taskId: task.alice.taskId, outcome: { case: "failure", value: { code: FailureCode.NO_DATA, message: "" } } }, o);
            case "Leave":
              return c.leave({ sessionId: session.alice }, o);
            case "WatchRun":
              return (async () => {
                for await (const _ of c.watchRun({}, o)) void _;
              })();
          }
        };
        await refused(Code.Unauthenticated, run, `${rpc} with ${name}`);
      }
      await refused(Code.Unauthenticated, () => c.join(joinRequest(), { headers }), `Join with ${name}`);
    }
    // Nothing of the above touched alice's session or task.
    assert.equal((await c.heartbeat({ sessionId: session.alice }, auth(f.tokens.alice))).runState, RunState.RUNNING);
    assert.equal((await pullTaskId(c, f.tokens.alice, session.alice)).taskId, task.alice.taskId);
  });

  test("a token revoked while the server runs is UNAUTHENTICATED at once; a re-issued one works, the old one never again", async () => {
    const old = f.tokens.carol;
    assert.equal((await c.heartbeat({ sessionId: session.carol }, auth(old))).runState, RunState.RUNNING);
    await revokeToken(f.tokensPath, "carol");
    for (const [rpc, call] of everyRpc(c, old, session.carol, task.carol.taskId, task.carol.requestId)) {
      const e = await refused(Code.Unauthenticated, call, `${rpc} with a revoked token`);
      assert.match(e.rawMessage, /revoked/);
    }
    await refused(Code.Unauthenticated, () => c.join(joinRequest(), auth(old)), "Join with a revoked token");
    const fresh = await createToken(f.tokensPath, "carol");
    presented.add(fresh);
    f.tokens.carol = fresh;
    // The session belongs to the client id, which the new token proves again.
    assert.equal((await c.heartbeat({ sessionId: session.carol }, auth(fresh))).runState, RunState.RUNNING);
    assert.equal((await pullTaskId(c, fresh, session.carol)).taskId, task.carol.taskId);
    await refused(Code.Unauthenticated, () => c.heartbeat({ sessionId: session.carol }, auth(old)), "Heartbeat with the replaced token");
  });

  test("a session of another client is PERMISSION_DENIED on every RPC, and stays usable by its owner", async () => {
    for (const [rpc, call] of everyRpc(c, f.tokens.bob, session.alice, task.alice.taskId, task.alice.requestId)) {
      await refused(Code.PermissionDenied, call, `${rpc} by bob on alice's session`);
    }
    assert.equal((await c.heartbeat({ sessionId: session.alice }, auth(f.tokens.alice))).runState, RunState.RUNNING);
  });

  test("PushObject/PushResult for a task assigned to another client is PERMISSION_DENIED", async () => {
    const before = stateFingerprint(f.state);
    const o = auth(f.tokens.bob);
    const s = session.bob;
    const t = task.alice.taskId;
    const payload = replies.bob;
    await refused(Code.PermissionDenied, () => c.pushObject({ sessionId: s, taskId: t, objectId: sha256Hex(payload), offset: 0n, totalSize: BigInt(payload.length), data: payload }, o), "PushObject");
    await refused(Code.PermissionDenied, () => c.pushResult({ sessionId: s, taskId: t, outcome: { case: "replyObjectId", value: sha256Hex(payload) } }, o), "PushResult(reply)");
    await refused(Code.PermissionDenied, () => c.pushResult({ sessionId: s, taskId: t, outcome: { case: "failure", value: { code: FailureCode.DIVERGED, message: "x" } } }, o), "PushResult(failure)");
    await refused(Code.PermissionDenied, () => c.pushResult({ sessionId: s, taskId: t, outcome: { case: undefined } }, o), "PushResult(no outcome)");
    assert.equal(stateFingerprint(f.state), before);
  });

  test("a reply for a closed or unknown task is FAILED_PRECONDITION", async () => {
    const before = stateFingerprint(f.state);
    const o = auth(f.tokens.bob);
    const payload = replies.bob;
    for (const t of [expired.taskId, "0".repeat(32), "", "x".repeat(10_000)]) {
      const name = t === expired.taskId ? "the expired evaluation task" : `task ${JSON.stringify(t.slice(0, 20))}`;
      await refused(Code.FailedPrecondition, () => c.pushObject({ sessionId: session.bob, taskId: t, objectId: sha256Hex(payload), offset: 0n, totalSize: BigInt(payload.length), data: payload }, o), `PushObject for ${name}`);
      await refused(Code.FailedPrecondition, () => c.pushResult({ sessionId: session.bob, taskId: t, outcome: { case: "replyObjectId", value: sha256Hex(payload) } }, o), `PushResult for ${name}`);
      await refused(Code.FailedPrecondition, () => c.pushResult({ sessionId: session.bob, taskId: t, outcome: { case: "failure", value: { code: FailureCode.INTERNAL, message: "late" } } }, o), `PushResult(failure) for ${name}`);
    }
    // The closed task's request object is gone too.
    const evReq = sha256Hex(broadcastFor(1, "bob"));
    if (evReq !== task.bob.requestId) await refused(Code.NotFound, () => c.pullObject({ sessionId: session.bob, objectId: evReq }, o), "PullObject of the expired task's request");
    assert.equal(stateFingerprint(f.state), before);
  });

  test("an unknown session is FAILED_PRECONDITION (the client joins again)", async () => {
    for (const s of ["", "0".repeat(32), session.alice.toUpperCase()]) {
      const e = await expectCode(Code.FailedPrecondition, () => c.heartbeat({ sessionId: s }, auth(f.tokens.alice)), `Heartbeat on ${JSON.stringify(s)}`);
      seenErrors.push(e.rawMessage);
    }
  });

  test("an accepted reply re-pushed is DUPLICATE, the grid gets it once; a different reply for it is refused", async () => {
    const before = f.state.acceptedReplies().length;
    assert.equal(await pushReply(c, f.tokens.alice, session.alice, task.alice.taskId, replies.alice, 3), PushResultStatus.ACCEPTED);
    const o = auth(f.tokens.alice);
    const id = sha256Hex(replies.alice);
    for (let i = 0; i < 3; i++) {
      const r = await c.pushResult({ sessionId: session.alice, taskId: task.alice.taskId, outcome: { case: "replyObjectId", value: id } }, o);
      assert.equal(r.status, PushResultStatus.DUPLICATE);
    }
    const other = replyFor(1, "alice", 7);
    await refused(Code.FailedPrecondition, () => c.pushObject({ sessionId: session.alice, taskId: task.alice.taskId, objectId: sha256Hex(other), offset: 0n, totalSize: BigInt(other.length), data: other }, o), "PushObject of a different reply");
    await refused(Code.FailedPrecondition, () => c.pushResult({ sessionId: session.alice, taskId: task.alice.taskId, outcome: { case: "replyObjectId", value: sha256Hex(other) } }, o), "PushResult of a different reply");
    await refused(Code.FailedPrecondition, () => c.pushResult({ sessionId: session.alice, taskId: task.alice.taskId, outcome: { case: "failure", value: { code: FailureCode.DIVERGED, message: "second thoughts" } } }, o), "PushResult(failure) after acceptance");
    // Another client naming alice's accepted reply is no duplicate of its own.
    await refused(Code.FailedPrecondition, () => c.pushResult({ sessionId: session.bob, taskId: task.alice.taskId, outcome: { case: "replyObjectId", value: id } }, auth(f.tokens.bob)), "bob re-pushing alice's reply");
    const rows = f.state.acceptedReplies().filter((a) => a.taskId === task.alice.taskId);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.sha256, id);
    assert.equal(f.state.acceptedReplies().length, before + 1);
    assert.equal(f.logs.filter((l) => l.startsWith("accepted:") && l.includes(" of alice ")).length, 1);
    // A new session of alice (a restarted client) still gets DUPLICATE, not a second vote.
    const j = await c.join(joinRequest(), o);
    session.alice = j.sessionId;
    assert.equal((await c.pushResult({ sessionId: session.alice, taskId: task.alice.taskId, outcome: { case: "replyObjectId", value: id } }, o)).status, PushResultStatus.DUPLICATE);
    assert.equal((await c.pullTask({ sessionId: session.alice, waitMs: 0 }, o)).outcome.case, "idle");
  });

  test("a request over MAX_MESSAGE_BYTES is RESOURCE_EXHAUSTED on every transport, and the connection keeps serving", async () => {
    const before = stateFingerprint(f.state);
    const big = new Uint8Array(MAX_MESSAGE_BYTES + 1);
    for (const kind of ["connect", "grpc", "grpc-web"] as const) {
      const k = f.client(kind);
      const o = auth(f.tokens.bob);
      await refused(Code.ResourceExhausted, () => k.pushObject({ sessionId: session.bob, taskId: task.bob.taskId, objectId: "cd".repeat(32), offset: 0n, totalSize: BigInt(big.length), data: big }, o), `${kind} PushObject of ${big.length} bytes`);
      await refused(Code.ResourceExhausted, () => k.heartbeat({ sessionId: "s".repeat(MAX_MESSAGE_BYTES) }, o), `${kind} Heartbeat with a huge session id`);
      assert.equal((await k.heartbeat({ sessionId: session.bob }, o)).runState, RunState.RUNNING);
    }
    // The refused chunk left no upload behind: the first real chunk starts at 0.
    const r = await c.pushObject({ sessionId: session.bob, taskId: task.bob.taskId, objectId: "cd".repeat(32), offset: 5n, totalSize: 10n, data: new Uint8Array(5) }, auth(f.tokens.bob));
    assert.equal(r.received, 0n);
    assert.equal(stateFingerprint(f.state), before);
  });

  test("a protocol version the server does not speak is FAILED_PRECONDITION", async () => {
    for (const v of [0, 1, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0xffffffff]) {
      const e = await refused(Code.FailedPrecondition, () => c.join(joinRequest({ protocolVersion: v }), auth(f.tokens.bob)), `Join speaking ${v}`);
      assert.match(e.rawMessage, /protocol version/);
    }
    // The refused Joins ended no session.
    assert.equal((await c.heartbeat({ sessionId: session.bob }, auth(f.tokens.bob))).runState, RunState.RUNNING);
  });

  test("a partition played by another token is FAILED_PRECONDITION; out of range is INVALID_ARGUMENT", async () => {
    const mine = await c.join(joinRequest({ partitionRequest: "2" }), auth(f.tokens.alice));
    assert.equal(mine.clientId, "client-0002");
    assert.equal(mine.partitionIndex, 2);
    const e = await refused(Code.FailedPrecondition, () => c.join(joinRequest({ partitionRequest: "2" }), auth(f.tokens.bob)), "bob asking for alice's partition");
    assert.match(e.rawMessage, /partition 2/);
    await refused(Code.InvalidArgument, () => c.join(joinRequest({ partitionRequest: String(f.partitions) }), auth(f.tokens.bob)), "partition out of range");
    await refused(Code.InvalidArgument, () => c.join(joinRequest({ partitionRequest: "-1" }), auth(f.tokens.bob)), "negative partition");
    // Alice keeps her partition session; bob keeps his.
    assert.equal((await c.heartbeat({ sessionId: mine.sessionId }, auth(f.tokens.alice))).runState, RunState.RUNNING);
    await refused(Code.PermissionDenied, () => c.heartbeat({ sessionId: mine.sessionId }, auth(f.tokens.bob)), "bob on alice's partition session");
    assert.equal((await c.heartbeat({ sessionId: session.bob }, auth(f.tokens.bob))).runState, RunState.RUNNING);
  });

  test("the open round ends with each client's reply exactly once", async () => {
    for (const id of ["bob", "carol"] as const) assert.equal(await pushReply(c, f.tokens[id], session[id], task[id].taskId, replies[id], 2), PushResultStatus.ACCEPTED);
    const got = await pending;
    assert.deepEqual(got.map((r) => r.clientId), [...CLIENT_IDS]);
    for (const [i, id] of CLIENT_IDS.entries()) {
      const r = got[i]!;
      assert.ok("payload" in r, `${id}: ${JSON.stringify(r)}`);
      assert.deepEqual(Buffer.from(r.payload), Buffer.from(replies[id]));
    }
    assert.deepEqual(f.state.acceptedReplies().map((a) => a.clientId).sort(), [...CLIENT_IDS]);
    assert.equal(f.logs.filter((l) => l.startsWith("accepted:")).length, 3);
    // After the exchange: a repeat is DUPLICATE (the state file holds it), anything else refused.
    const o = auth(f.tokens.bob);
    assert.equal((await c.pushResult({ sessionId: session.bob, taskId: task.bob.taskId, outcome: { case: "replyObjectId", value: sha256Hex(replies.bob) } }, o)).status, PushResultStatus.DUPLICATE);
    await refused(Code.FailedPrecondition, () => c.pushObject({ sessionId: session.bob, taskId: task.bob.taskId, objectId: sha256Hex(replies.bob), totalSize: BigInt(replies.bob.length), data: replies.bob }, o), "PushObject after the round");
    await refused(Code.NotFound, () => c.pullObject({ sessionId: session.bob, objectId: task.bob.requestId }, o), "the finished task's request");
  });

  test("an error that quotes a cut id is answered on every transport (a surrogate pair split at the cut)", async () => {
    const taskId = `${"x".repeat(39)}\u{1F600}`;
    const late: string[] = [];
    for (const kind of ["connect", "grpc", "grpc-web"] as const) {
      try {
        await f.client(kind).pushResult({ sessionId: session.bob, taskId, outcome: { case: "replyObjectId", value: "ab".repeat(32) } }, { ...auth(f.tokens.bob), timeoutMs: 2000 });
        late.push(`${kind}: succeeded`);
      } catch (e) {
        const ce = ConnectError.from(e);
        seenErrors.push(ce.rawMessage);
        if (ce.code !== Code.FailedPrecondition) late.push(`${kind}: ${codeName(ce.code)} ${ce.rawMessage}`);
      }
    }
    assert.deepEqual(late, []);
  });

  test("no token shows in any log line or error message (tokens presented in the authorization header)", () => {
    assert.ok(seenErrors.length > 50, `only ${seenErrors.length} errors seen`);
    assert.ok(f.logs.length > 0);
    for (const token of presented) {
      if (token.length < 43) continue;
      for (const line of f.logs) assert.ok(!leaks(line, token), `log line leaks a token: ${line}`);
      for (const m of seenErrors) assert.ok(!leaks(m, token), `error message leaks a token: ${m}`);
    }
  });

  test("a token pasted twice in the header does not come back in the error message", async () => {
    const doubled = `${f.tokens.bob}${f.tokens.bob}`;
    const e = await expectCode(Code.Unauthenticated, () => c.heartbeat({ sessionId: session.bob }, auth(doubled)), "Heartbeat with a doubled token");
    assert.ok(!leaks(e.rawMessage, f.tokens.bob), `the error carries bob's secret: ${e.rawMessage}`);
  });

  test("tokens pasted into request fields are redacted in log lines and error messages", async () => {
    const token = f.tokens.bob;
    const o = auth(token);
    const msgs: string[] = [];
    const catching = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        msgs.push(ConnectError.from(e).rawMessage);
      }
    };
    const from = f.logs.length;
    const j = await c.join(joinRequest({ clientSoftware: token, device: { kind: token, threads: 1, platform: token } }), o);
    session.bob = j.sessionId;
    await catching(c.join(joinRequest({ partitionRequest: token }), o));
    await catching(c.join(joinRequest({ backboneSha256: token }), o));
    await catching(c.heartbeat({ sessionId: token }, o));
    await catching(c.pullObject({ sessionId: session.bob, objectId: token }, o));
    await catching(c.pushObject({ sessionId: session.bob, taskId: token, objectId: token, totalSize: 1n, data: new Uint8Array(1) }, o));
    await catching(c.pushResult({ sessionId: session.bob, taskId: token, outcome: { case: "replyObjectId", value: token } }, o));
    await c.leave({ sessionId: session.bob, reason: `shutting down, my token is ${token}` }, o);
    const lines = f.logs.slice(from);
    const leaked = [...lines.filter((l) => leaks(l, token)).map((l) => `log: ${l}`), ...msgs.filter((m) => leaks(m, token)).map((m) => `error: ${m}`)];
    assert.deepEqual(leaked, [], `tokens quoted back unredacted:\n${leaked.join("\n")}`);
  });
});

describe("the Join rate limit (as net/server.ts sets it: 20 attempts, 2 per second, per address)", { timeout: 60_000 }, () => {
  let f: Fixture;
  before(async () => {
    f = await startFixture({ joinLimiter: new RateLimiter({ capacity: 20, refillPerSecond: 2 }) });
  });
  after(async () => {
    await f?.close();
  });

  test("Joins beyond the bucket are RESOURCE_EXHAUSTED, with or without a valid token; other RPCs keep working", async () => {
    const c = f.client("connect");
    const started = Date.now();
    let ok = 0;
    let sessionId = "";
    let e: ConnectError | undefined;
    for (let i = 0; i < 100 && !e; i++) {
      try {
        sessionId = (await c.join(joinRequest(), auth(f.tokens.alice))).sessionId;
        ok++;
      } catch (err) {
        e = ConnectError.from(err);
      }
    }
    const elapsed = (Date.now() - started) / 1000;
    assert.ok(e, "the bucket never ran empty");
    assert.equal(e.code, Code.ResourceExhausted, `${codeName(e.code)}: ${e.rawMessage}`);
    assert.ok(ok >= 20 && ok <= 20 + Math.ceil(elapsed * 2) + 1, `${ok} Joins passed in ${elapsed} s`);
    // An empty bucket refuses before the token is looked at: no token, a forged one, all the same.
    await expectCode(Code.ResourceExhausted, () => c.join(joinRequest(), auth(undefined)), "Join without a token");
    await expectCode(Code.ResourceExhausted, () => c.join(joinRequest(), auth(forgedToken("bob", 3))), "Join with a forged token");
    await expectCode(Code.ResourceExhausted, () => c.join(joinRequest(), auth(f.tokens.bob)), "Join of another client from the same address");
    assert.equal((await c.heartbeat({ sessionId }, auth(f.tokens.alice))).runState, RunState.RUNNING);
    // The bucket refills (2 per second).
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await c.join(joinRequest(), auth(f.tokens.bob))).clientId, "bob");
  });
});

describe("tasks whose requests are the same bytes", { timeout: 60_000 }, () => {
  let f: Fixture;
  before(async () => {
    f = await startFixture();
  });
  after(async () => {
    await f?.close();
  });

  test("a request object stays downloadable while any task that needs it is open", async () => {
    const c = f.client("connect");
    const s = {} as Record<ClientName, string>;
    for (const id of ["alice", "bob"] as const) s[id] = (await c.join(joinRequest(), auth(f.tokens[id]))).sessionId;
    const same = broadcastFor(1, "");
    const pending = f.grid.send([{ clientId: "alice", payload: same }, { clientId: "bob", payload: same }], { purpose: "evaluate", deadlineMs: Date.now() + 30_000 });
    const a = await pullTaskId(c, f.tokens.alice, s.alice);
    const b = await pullTaskId(c, f.tokens.bob, s.bob);
    assert.equal(a.requestId, b.requestId);
    assert.equal(await pushReply(c, f.tokens.alice, s.alice, a.taskId, replyFor(1, "alice")), PushResultStatus.ACCEPTED);
    try {
      const r = await c.pullObject({ sessionId: s.bob, objectId: b.requestId }, auth(f.tokens.bob));
      assert.deepEqual(Buffer.from(r.data), Buffer.from(same));
    } finally {
      await pushReply(c, f.tokens.bob, s.bob, b.taskId, replyFor(1, "bob"));
      await pending;
    }
  });
});

describe("partition identities", { timeout: 60_000 }, () => {
  let f: Fixture;
  before(async () => {
    f = await startFixture();
  });
  after(async () => {
    await f?.close();
  });

  test("a refused Join claims no partition", async () => {
    const c = f.client("connect");
    // A token whose client id is the identity of partition 1.
    const named = await createToken(f.tokensPath, "client-0001");
    const first = await c.join(joinRequest(), auth(named));
    assert.equal(first.clientId, "client-0001");
    // alice asks for partition 1 while client-0001 is online: refused...
    await expectCode(Code.FailedPrecondition, () => c.join(joinRequest({ partitionRequest: "1" }), auth(f.tokens.alice)), "alice asking for partition 1");
    // ...so the refused request must not have made alice the partition's player.
    await c.leave({ sessionId: first.sessionId, reason: "restart" }, auth(named));
    const again = await c.join(joinRequest(), auth(named));
    assert.equal(again.clientId, "client-0001");
  });
});
