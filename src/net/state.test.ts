/**
 * The server's state file: schema and pragmas, that a reopen sees everything, the reply outcomes
 * (accepted, duplicate, conflict, stale), round boundaries, resumable uploads, clear refusals of
 * files that are not ours, that every refusal leaves the file byte-for-byte unchanged in content,
 * and a crash test that SIGKILLs a child process mid-work and checks the file is consistent after.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { ErrorCode, SaflError } from "../errors.js";
import { STATE_SCHEMA_VERSION, StateStore } from "./state.js";
import { CRASH_CLIENTS, CRASH_CONFIG_HASH, payloadFor, rngFrom, snapshotRound } from "./state-crash-child.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function statePath(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "safl-state-"));
  dirs.push(d);
  return join(d, "state.db");
}
const sha = (b: Uint8Array | string): string => createHash("sha256").update(b).digest("hex");
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const isCode = (code: ErrorCode, re: RegExp) => (e: unknown) => e instanceof SaflError && e.code === code && re.test(e.message);

/** Everything the file holds, as one hash: read through a second connection after closing the store. */
function fingerprint(path: string): string {
  const db = new Database(path);
  try {
    const h = createHash("sha256");
    h.update(`v${db.pragma("user_version", { simple: true })} a${db.pragma("application_id", { simple: true })}\n`);
    const tables = db.prepare("SELECT name, sql FROM sqlite_schema ORDER BY name").all() as { name: string; sql: string | null }[];
    for (const t of tables) {
      h.update(`${t.name}: ${t.sql}\n`);
      if (!t.sql?.startsWith("CREATE TABLE")) continue;
      const rows = (db.prepare(`SELECT * FROM "${t.name}"`).all() as Record<string, unknown>[]).map((r) =>
        JSON.stringify(r, (_k, v) => (v && typeof v === "object" && (v as { type?: string }).type === "Buffer" ? sha(Buffer.from((v as { data: number[] }).data)) : v)),
      );
      for (const r of rows.sort()) h.update(`${r}\n`);
    }
    return h.digest("hex");
  } finally {
    db.close();
  }
}

/** Closes `s`, fingerprints its file and reopens it with `opts`. */
function checkpoint(s: StateStore, opts: Parameters<typeof StateStore.open>[1] = {}): [string, StateStore] {
  s.close();
  const fp = fingerprint(s.path);
  return [fp, StateStore.open(s.path, opts)];
}

const REQ = bytes("round request");
const REQ_ID = sha(REQ);

/** A store with a run, one boundary (round 1), and round 2 open with tasks t0..t2 for c0..c2. */
async function populated(opts: Parameters<typeof StateStore.open>[1] = {}): Promise<StateStore> {
  const s = StateStore.open(await statePath(), opts);
  s.initRun({ runId: "run-1", configJson: '{"rounds":3}', configHash: sha("config-1") });
  s.commitBoundary({ round: 1, snapshot: bytes("snapshot after round 1"), record: '{"round":1}' });
  s.putObject(REQ_ID, REQ);
  s.openRound({
    round: 2,
    attempt: 1,
    sampled: ["c0", "c1", "c2"],
    tasks: ["c0", "c1", "c2"].map((c, i) => ({ taskId: `t${i}`, clientId: c, requestObjectId: REQ_ID })),
    deadlineMs: 123456,
  });
  return s;
}
function reply(taskId: string, clientId: string, text: string, round = 2, attempt = 1) {
  const payload = bytes(text);
  return { round, attempt, taskId, clientId, payload, sha256: sha(payload) };
}

describe("server state store", () => {
  test("a new file gets the schema, WAL, synchronous FULL, foreign keys and the schema version", async () => {
    const path = await statePath();
    const s = StateStore.open(path);
    assert.deepEqual(s.settings(), { journalMode: "wal", synchronous: "full", foreignKeys: true, lockingMode: "exclusive", pageSize: 65536, schemaVersion: STATE_SCHEMA_VERSION });
    assert.equal(s.run(), undefined);
    assert.equal(s.latestBoundary(), undefined);
    assert.equal(s.openRoundState(), undefined);
    assert.deepEqual(s.records(), []);
    s.close();
    // WAL is a property of the file: a plain connection sees it too.
    const db = new Database(path);
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(db.pragma("user_version", { simple: true }), STATE_SCHEMA_VERSION);
    const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    assert.deepEqual(tables, ["boundaries", "clients", "failures", "meta", "objects", "open_round", "records", "replies", "run", "tasks", "upload_chunks", "uploads"]);
    db.close();
    // An empty file (what a crash before the schema transaction leaves) opens as a new one.
    const empty = await statePath();
    writeFileSync(empty, "");
    const e = StateStore.open(empty);
    assert.equal(e.settings().schemaVersion, STATE_SCHEMA_VERSION);
    e.close();
  });

  test("reopening preserves everything", async () => {
    const s = await populated();
    assert.equal(s.acceptReply(reply("t0", "c0", "reply 0")), "accepted");
    assert.equal(s.acceptReply(reply("t2", "c2", "reply 2")), "accepted");
    assert.equal(s.recordFailure({ taskId: "t1", clientId: "c1", code: "oom", message: "out of memory" }), "recorded");
    s.upsertClient({ id: "c0", tokenHash: sha("token-0") });
    s.upsertClient({ id: "c1" });
    s.touchClient("c0", 1000);
    s.setClientBase("c0", 3);
    s.setMeta("rng", '{"state":[1,2,3]}');
    assert.equal(s.appendUpload({ uploadId: "u1", offset: 0, total: 10, chunk: bytes("hello") }), 5);
    const before = {
      run: s.run(),
      boundary: s.latestBoundary(),
      records: s.records(),
      open: s.openRoundState(),
      replies: s.acceptedReplies(),
      failures: s.failures(),
      clients: s.clients(),
      meta: s.getMeta("rng"),
      uploads: s.uploads(),
      objects: s.listObjects(),
    };
    s.close();
    const r = StateStore.open(s.path, { create: false });
    assert.deepEqual(
      {
        run: r.run(),
        boundary: r.latestBoundary(),
        records: r.records(),
        open: r.openRoundState(),
        replies: r.acceptedReplies(),
        failures: r.failures(),
        clients: r.clients(),
        meta: r.getMeta("rng"),
        uploads: r.uploads(),
        objects: r.listObjects(),
      },
      before,
    );
    assert.equal(before.run?.runId, "run-1");
    assert.deepEqual(before.replies.map((x) => [x.taskId, Buffer.from(x.payload).toString()]), [
      ["t0", "reply 0"],
      ["t2", "reply 2"],
    ]);
    assert.deepEqual(before.clients, [
      { id: "c0", tokenHash: sha("token-0"), lastSeenMs: 1000, baseVersion: 3 },
      { id: "c1", tokenHash: undefined, lastSeenMs: undefined, baseVersion: undefined },
    ]);
    assert.deepEqual(r.getObject(REQ_ID), Buffer.from(REQ));
    // The upload resumes where it was.
    assert.equal(r.appendUpload({ uploadId: "u1", offset: 5, total: 10, chunk: bytes("world") }), 10);
    const fin = r.finishUpload("u1", sha("helloworld"));
    assert.ok(fin.ok);
    assert.equal(Buffer.from(fin.bytes).toString(), "helloworld");
    r.close();
  });

  test("a resent identical reply is a duplicate and changes nothing", async () => {
    const s0 = await populated();
    assert.equal(s0.acceptReply(reply("t1", "c1", "the update")), "accepted");
    const [fp, s] = checkpoint(s0);
    assert.equal(s.acceptReply(reply("t1", "c1", "the update")), "duplicate");
    assert.equal(s.acceptedReplies().length, 1);
    const [fp2, s2] = checkpoint(s);
    assert.equal(fp2, fp);
    s2.close();
  });

  test("a different reply to an answered task is a conflict: refused, the first one kept", async () => {
    const s0 = await populated();
    assert.equal(s0.acceptReply(reply("t1", "c1", "first")), "accepted");
    const [fp, s] = checkpoint(s0);
    assert.equal(s.acceptReply(reply("t1", "c1", "second")), "conflict");
    assert.deepEqual(
      s.acceptedReplies().map((r) => Buffer.from(r.payload).toString()),
      ["first"],
    );
    const [fp2, s2] = checkpoint(s);
    assert.equal(fp2, fp);
    s2.close();
  });

  test("replies for another round, attempt, client or task are stale", async () => {
    const s = await populated();
    assert.equal(s.acceptReply(reply("t0", "c0", "x", 1, 1)), "stale", "an older round");
    assert.equal(s.acceptReply(reply("t0", "c0", "x", 2, 0)), "stale", "an older attempt");
    assert.equal(s.acceptReply(reply("t0", "c1", "x")), "stale", "another client's task");
    assert.equal(s.acceptReply(reply("t9", "c0", "x")), "stale", "no such task");
    assert.equal(s.recordFailure({ taskId: "t0", clientId: "c1", code: "x", message: "y" }), "stale");
    // A retry of the round makes the first attempt's replies stale.
    s.openRound({ round: 2, attempt: 2, sampled: ["c0"], tasks: [{ taskId: "t0", clientId: "c0", requestObjectId: REQ_ID }], deadlineMs: 1 });
    assert.equal(s.acceptReply(reply("t0", "c0", "x", 2, 1)), "stale");
    assert.equal(s.acceptReply(reply("t0", "c0", "x", 2, 2)), "accepted");
    s.close();
    const again = StateStore.open(s.path);
    assert.deepEqual(again.acceptedReplies().map((r) => [r.taskId, r.clientId]), [["t0", "c0"]]);
    again.commitBoundary({ round: 2, snapshot: bytes("s2"), record: '{"round":2}' });
    assert.equal(again.acceptReply(reply("t0", "c0", "y", 2, 2)), "stale", "no open round");
    again.close();
  });

  test("a stale reply leaves the file unchanged", async () => {
    const s0 = await populated();
    const [fp, s] = checkpoint(s0);
    for (const r of [reply("t0", "c0", "x", 1, 1), reply("t0", "c0", "x", 2, 7), reply("t0", "c1", "x"), reply("t9", "c0", "x")]) assert.equal(s.acceptReply(r), "stale");
    const [fp2, s2] = checkpoint(s);
    assert.equal(fp2, fp);
    s2.close();
  });

  test("a boundary commit stores the snapshot and record, clears the open round and keeps 2 snapshots", async () => {
    const s = await populated();
    s.acceptReply(reply("t0", "c0", "r0"));
    s.recordFailure({ taskId: "t1", clientId: "c1", code: "timeout", message: "late" });
    s.appendUpload({ uploadId: "kept", offset: 0, total: 4, chunk: bytes("ab") });
    s.commitBoundary({ round: 2, snapshot: bytes("snapshot 2"), record: '{"round":2}' });
    assert.equal(s.openRoundState(), undefined);
    assert.deepEqual(s.acceptedReplies(), []);
    assert.deepEqual(s.failures(), []);
    assert.equal(s.uploads().length, 1, "uploads are not part of the round");
    // The request object is free to delete once no open task serves it.
    assert.equal(s.deleteObject(REQ_ID), true);
    s.commitBoundary({ round: 3, snapshot: bytes("snapshot 3"), record: '{"round":3}' });
    s.commitBoundary({ round: 4, snapshot: bytes("snapshot 4") });
    assert.deepEqual(s.snapshotRounds(), [3, 4]);
    const b = s.latestBoundary();
    assert.equal(b?.round, 4);
    assert.equal(Buffer.from(b!.snapshot).toString(), "snapshot 4");
    assert.deepEqual(s.records(), ['{"round":1}', '{"round":2}', '{"round":3}']);
    s.close();
    const k = StateStore.open(await statePath(), { keepSnapshots: 3 });
    for (let r = 1; r <= 5; r++) k.commitBoundary({ round: r, snapshot: bytes(`s${r}`) });
    assert.deepEqual(k.snapshotRounds(), [3, 4, 5]);
    k.close();
  });

  test("an upload resumes after an offset mismatch", async () => {
    const s = StateStore.open(await statePath());
    const data = bytes("0123456789abcdef");
    const id = "up-1";
    assert.equal(s.appendUpload({ uploadId: id, offset: 0, total: 16, chunk: data.subarray(0, 6) }), 6);
    // A resend of the first chunk (its acknowledgement was lost) and a chunk from the future are not taken.
    assert.equal(s.appendUpload({ uploadId: id, offset: 0, total: 16, chunk: data.subarray(0, 6) }), 6);
    assert.equal(s.appendUpload({ uploadId: id, offset: 10, total: 16, chunk: data.subarray(10) }), 6);
    // An unknown upload asked at a later offset says 0: start over.
    assert.equal(s.appendUpload({ uploadId: "other", offset: 4, total: 8, chunk: bytes("abcd") }), 0);
    assert.deepEqual(s.uploads().map((u) => [u.uploadId, u.received, u.total]), [[id, 6, 16]]);
    // The client resumes from the count it was told.
    assert.equal(s.appendUpload({ uploadId: id, offset: 6, total: 16, chunk: data.subarray(6, 12) }), 12);
    assert.equal(s.appendUpload({ uploadId: id, offset: 12, total: 16, chunk: data.subarray(12) }), 16);
    const fin = s.finishUpload(id, sha(data));
    assert.ok(fin.ok);
    assert.deepEqual(Buffer.from(fin.bytes), Buffer.from(data));
    assert.deepEqual(s.uploads(), []);
    assert.deepEqual(s.finishUpload(id, sha(data)), { ok: false, reason: "unknown", message: `no upload "up-1" is in progress` });
    s.close();
  });

  test("an upload with the wrong hash or size is refused and discarded", async () => {
    const s = StateStore.open(await statePath(), { maxUploadBytes: 100, maxPendingUploadBytes: 150 });
    s.appendUpload({ uploadId: "bad", offset: 0, total: 5, chunk: bytes("hello") });
    const fin = s.finishUpload("bad", sha("HELLO"));
    assert.equal(fin.ok, false);
    assert.ok(!fin.ok && fin.reason === "hash" && /upload "bad" hashes to [0-9a-f]{12}…, expected [0-9a-f]{12}…; it was discarded/.test(fin.message), JSON.stringify(fin));
    assert.deepEqual(s.uploads(), []);
    // Discarded means a fresh start: offset 0 is expected again.
    assert.equal(s.appendUpload({ uploadId: "bad", offset: 5, total: 5, chunk: bytes("") }), 0);
    s.appendUpload({ uploadId: "short", offset: 0, total: 10, chunk: bytes("hello") });
    const short = s.finishUpload("short", sha("hello"));
    assert.ok(!short.ok && short.reason === "incomplete" && /holds 5 of its announced 10 bytes/.test(short.message));
    assert.deepEqual(s.uploads(), []);
    // The size limits.
    assert.throws(() => s.appendUpload({ uploadId: "big", offset: 0, total: 101, chunk: bytes("x") }), isCode(ErrorCode.InvalidArgument, /announces 101 bytes, more than the limit of 100/));
    s.appendUpload({ uploadId: "a", offset: 0, total: 100, chunk: bytes("x") });
    assert.throws(() => s.appendUpload({ uploadId: "b", offset: 0, total: 60, chunk: bytes("x") }), isCode(ErrorCode.InvalidArgument, /bring unfinished uploads to 160 bytes, more than the limit of 150/));
    assert.throws(() => s.appendUpload({ uploadId: "a", offset: 1, total: 100, chunk: new Uint8Array(100) }), isCode(ErrorCode.InvalidArgument, /runs past the announced 100 bytes/));
    assert.throws(() => s.appendUpload({ uploadId: "a", offset: 1, total: 99, chunk: bytes("y") }), isCode(ErrorCode.InvalidArgument, /announced 100 bytes, this chunk says 99/));
    assert.deepEqual(s.uploads().map((u) => [u.uploadId, u.received]), [["a", 1]]);
    s.close();
  });

  test("every refused call leaves the file unchanged", async () => {
    const opts = { maxUploadBytes: 100 };
    const s0 = await populated(opts);
    s0.acceptReply(reply("t0", "c0", "accepted"));
    s0.upsertClient({ id: "c0" });
    s0.appendUpload({ uploadId: "u", offset: 0, total: 10, chunk: bytes("abc") });
    const [fp, s] = checkpoint(s0, opts);
    const refusals: [string, () => unknown][] = [
      ["second run", () => s.initRun({ runId: "run-2", configJson: "{}", configHash: sha("config-2") })],
      ["old boundary", () => s.commitBoundary({ round: 1, snapshot: bytes("x"), record: '{"round":1}' })],
      ["boundary of another round than the open one", () => s.commitBoundary({ round: 3, snapshot: bytes("x") })],
      ["record not JSON", () => s.commitBoundary({ round: 2, snapshot: bytes("x"), record: "{oops" })],
      ["record of two lines", () => s.commitBoundary({ round: 2, snapshot: bytes("x"), record: '{"a":1}\n{"b":2}' })],
      ["round already committed", () => s.openRound({ round: 1, attempt: 5, sampled: [], tasks: [], deadlineMs: 0 })],
      ["an older attempt", () => s.openRound({ round: 2, attempt: 0, sampled: [], tasks: [], deadlineMs: 0 })],
      ["an older round than the open one", () => s.openRound({ round: 1, attempt: 9, sampled: [], tasks: [], deadlineMs: 0 })],
      ["request object id not a hash", () => s.openRound({ round: 2, attempt: 2, sampled: ["c0"], tasks: [{ taskId: "t", clientId: "c0", requestObjectId: "nope" }], deadlineMs: 0 })],
      ["a task id twice", () => s.openRound({ round: 2, attempt: 2, sampled: ["c0"], tasks: [{ taskId: "t", clientId: "c0", requestObjectId: REQ_ID }, { taskId: "t", clientId: "c0", requestObjectId: REQ_ID }], deadlineMs: 0 })],
      ["task for an unsampled client", () => s.openRound({ round: 2, attempt: 2, sampled: ["c0"], tasks: [{ taskId: "t", clientId: "c9", requestObjectId: REQ_ID }], deadlineMs: 0 })],
      ["payload not matching its hash", () => s.acceptReply({ ...reply("t1", "c1", "x"), sha256: sha("y") })],
      ["object id not its hash", () => s.putObject(sha("a"), bytes("b"))],
      ["deleting a served object", () => s.deleteObject(REQ_ID)],
      ["upload over the limit", () => s.appendUpload({ uploadId: "v", offset: 0, total: 101, chunk: bytes("x") })],
      ["upload past its total", () => s.appendUpload({ uploadId: "u", offset: 3, total: 10, chunk: new Uint8Array(8) })],
      ["touching an unknown client", () => s.touchClient("c9", 5)],
      ["base of an unknown client", () => s.setClientBase("c9", 1)],
      ["negative base", () => s.setClientBase("c0", -1)],
    ];
    for (const [what, f] of refusals) assert.throws(f, (e: unknown) => e instanceof SaflError, what);
    // Refusals by outcome rather than by exception.
    assert.equal(s.acceptReply(reply("t0", "c0", "different")), "conflict");
    assert.equal(s.acceptReply(reply("t1", "c1", "x", 2, 9)), "stale");
    assert.equal(s.appendUpload({ uploadId: "u", offset: 1, total: 10, chunk: bytes("zz") }), 3);
    const [fp2, s2] = checkpoint(s);
    assert.equal(fp2, fp);
    s2.close();
  });

  test("a state file of another run is refused by assertSameRun with a clear message", async () => {
    const s = await populated();
    s.assertSameRun(sha("config-1"));
    const other = sha("config-2");
    assert.throws(
      () => s.assertSameRun(other),
      isCode(
        ErrorCode.Checkpoint,
        new RegExp(`state file .*state\\.db belongs to run run-1 with a different config \\(hash ${sha("config-1").slice(0, 12)}… vs ${other.slice(0, 12)}…\\); use a new --state or the same config`),
      ),
    );
    // initRun again with the same run is a no-op; with another one a refusal.
    s.initRun({ runId: "run-1", configJson: '{"rounds":3}', configHash: sha("config-1") });
    assert.throws(() => s.initRun({ runId: "run-2", configJson: "{}", configHash: other }), isCode(ErrorCode.Checkpoint, /already belongs to run run-1/));
    s.close();
    const fresh = StateStore.open(await statePath());
    assert.throws(() => fresh.assertSameRun(other), isCode(ErrorCode.Checkpoint, /holds no run yet/));
    fresh.close();
  });

  test("files that are not ours, newer schemas, bad paths and a second opener are refused clearly", async () => {
    // A newer schema version.
    const newer = await statePath();
    StateStore.open(newer).close();
    const db = new Database(newer);
    db.pragma(`user_version = ${STATE_SCHEMA_VERSION + 1}`);
    db.close();
    const fpNewer = fingerprint(newer);
    assert.throws(
      () => StateStore.open(newer),
      isCode(ErrorCode.Io, new RegExp(`state file .*state\\.db has schema version ${STATE_SCHEMA_VERSION + 1}, this safl reads up to version ${STATE_SCHEMA_VERSION} \\(was it written by a newer safl\\?\\)`)),
    );
    assert.equal(fingerprint(newer), fpNewer, "the refused file is untouched");
    // Not an SQLite file at all.
    const junk = await statePath();
    writeFileSync(junk, "this is a config file, not a database ".repeat(20));
    assert.throws(() => StateStore.open(junk), isCode(ErrorCode.Io, /state\.db is not a safl state file \(not an SQLite database\)/));
    // Another program's SQLite database, left in its journal mode.
    const foreign = await statePath();
    const f = new Database(foreign);
    f.exec("CREATE TABLE notes (x TEXT)");
    f.close();
    assert.throws(() => StateStore.open(foreign), isCode(ErrorCode.Io, /is an SQLite database but not a safl state file \(application_id 0/));
    const g = new Database(foreign);
    assert.equal(g.pragma("journal_mode", { simple: true }), "delete");
    g.close();
    // Bad paths.
    assert.throws(() => StateStore.open(join(tmpdir(), "no-such-dir-safl", "x", "state.db")), isCode(ErrorCode.Io, /cannot open state file .*state\.db: .*directory does not exist/));
    assert.throws(() => StateStore.open(tmpdir()), isCode(ErrorCode.Io, /cannot open state file|cannot read state file/));
    const missing = await statePath();
    assert.throws(() => StateStore.open(missing, { create: false }), isCode(ErrorCode.Io, /state file .*state\.db does not exist \(expected the --state of an earlier run/));
    assert.throws(() => StateStore.open(""), isCode(ErrorCode.InvalidArgument, /state file path must be a non-empty string/));
    // A second server on the same file.
    const used = await statePath();
    const first = StateStore.open(used);
    assert.throws(() => StateStore.open(used, { busyTimeoutMs: 50 }), isCode(ErrorCode.Io, /state file .*state\.db is in use by another process/));
    first.close();
    StateStore.open(used).close();
  });

  test("a corrupt snapshot is reported, not returned", async () => {
    const path = await statePath();
    const s = StateStore.open(path);
    s.commitBoundary({ round: 1, snapshot: bytes("the real snapshot") });
    s.close();
    const db = new Database(path);
    db.prepare("UPDATE boundaries SET snapshot = ? WHERE round = 1").run(Buffer.from("the rea1 snapshot"));
    db.close();
    const r = StateStore.open(path);
    assert.throws(() => r.latestBoundary(), isCode(ErrorCode.Io, /state\.db is corrupt: the snapshot of round 1 has 17 bytes hashing to/));
    r.close();
  });

  test("a 20 MB snapshot commits quickly (figure printed, not asserted)", async () => {
    const s = StateStore.open(await statePath());
    const snap = new Uint8Array(20 * 1024 * 1024);
    for (let i = 0; i < snap.length; i += 4096) snap[i] = i & 0xff;
    const times: number[] = [];
    for (let r = 1; r <= 4; r++) {
      snap[0] = r;
      const t0 = performance.now();
      s.commitBoundary({ round: r, snapshot: snap, record: `{"round":${r}}` });
      times.push(performance.now() - t0);
    }
    const t0 = performance.now();
    const b = s.latestBoundary();
    const readMs = performance.now() - t0;
    assert.equal(b?.round, 4);
    assert.equal(b?.snapshot.length, snap.length);
    console.log(`state store: 20 MB boundary commit ${times.map((t) => t.toFixed(0)).join(", ")} ms (rounds 1-4), latestBoundary read+verify ${readMs.toFixed(0)} ms`);
    s.close();
  });

  test("after SIGKILL at random moments the file is consistent and keeps what was acknowledged", async () => {
    const child = fileURLToPath(new URL("./state-crash-child.js", import.meta.url));
    const path = await statePath();
    const rng = rngFrom(20240611);
    let lastRound = 0;
    const kills = 8;
    for (let k = 0; k < kills; k++) {
      const delayMs = 20 + Math.floor(rng() * 500);
      const lines: string[] = [];
      let stderr = "";
      const p = spawn(process.execPath, [child, path, String(1000 + k)], { stdio: ["ignore", "pipe", "pipe"] });
      let buf = "";
      const ready = new Promise<void>((resolve) => {
        p.stdout.on("data", (d: Buffer) => {
          buf += d.toString();
          const parts = buf.split("\n");
          buf = parts.pop()!;
          for (const l of parts) {
            lines.push(l);
            if (l === "ready") resolve();
          }
        });
      });
      p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      // "close" comes after the pipes are drained: every line written before the kill has been read.
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.on("close", (code, signal) => resolve({ code, signal })));
      await Promise.race([ready, exited]);
      await new Promise((r) => setTimeout(r, delayMs));
      p.kill("SIGKILL");
      const { code, signal } = await exited;
      assert.equal(signal, "SIGKILL", `the child died on its own (code ${code}): ${stderr}`);

      const s = StateStore.open(path, { create: false });
      s.assertSameRun(CRASH_CONFIG_HASH);
      const latest = s.latestBoundary();
      const records = s.records();
      const round = latest?.round ?? 0;
      assert.equal(round, records.length, "the latest boundary's round equals the number of records");
      for (const [i, r] of records.entries()) assert.equal((JSON.parse(r) as { round: number }).round, i + 1);
      if (latest) assert.equal(snapshotRound(latest.snapshot), round, "the snapshot is whole and of its round");
      const kept = s.snapshotRounds();
      assert.ok(kept.length <= 2 && (kept.length === 0 || kept[kept.length - 1] === round), `kept ${kept}`);
      // Every commit the child announced survived.
      const committed = lines.filter((l) => l.startsWith("commit ")).map((l) => Number(l.split(" ")[1]));
      if (committed.length > 0) assert.ok(round >= Math.max(...committed), `committed ${committed} but the file is at ${round}`);
      assert.ok(round >= lastRound, "rounds never go back");
      lastRound = round;

      const open = s.openRoundState();
      const replies = s.acceptedReplies();
      if (open) {
        assert.equal(open.round, round + 1, "the open round is the one after the latest boundary");
        assert.deepEqual(open.sampled, CRASH_CLIENTS);
        assert.equal(open.tasks.length, CRASH_CLIENTS.length, "the open round has all its tasks");
        const tasks = new Map(open.tasks.map((t) => [t.taskId, t.clientId]));
        for (const r of replies) {
          assert.equal(tasks.get(r.taskId), r.clientId, `reply ${r.taskId} belongs to the open round`);
          assert.ok(r.taskId.startsWith(`r${open.round}a${open.attempt}-`));
          assert.deepEqual(Buffer.from(r.payload), Buffer.from(payloadFor(r.taskId)), "the payload is whole");
        }
        for (const f of s.failures()) assert.equal(tasks.get(f.taskId), f.clientId);
        // Every reply the child announced for this very attempt is there.
        const acked = lines.filter((l) => l.startsWith(`accept ${open.round} ${open.attempt} `)).map((l) => l.split(" ")[3]);
        const have = new Set(replies.map((r) => r.taskId));
        for (const t of acked) assert.ok(have.has(t), `acknowledged reply ${t} is missing`);
        for (const t of open.tasks) assert.ok(s.hasObject(t.requestObjectId), "the open round's requests are stored");
      } else {
        assert.deepEqual(replies, []);
      }
      for (const u of s.uploads()) assert.ok(u.received <= u.total);
      s.close();
      // SQLite's own view: the b-trees and the foreign keys are intact.
      const db = new Database(path);
      assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
      assert.deepEqual(db.pragma("foreign_key_check"), []);
      db.close();
    }
    assert.ok(lastRound >= 3, `the children made progress (reached round ${lastRound})`);
    console.log(`state store crash test: ${kills} SIGKILLs, the file reached round ${lastRound}`);
  });
});
