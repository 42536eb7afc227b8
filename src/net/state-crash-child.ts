/**
 * @module net/state-crash-child
 * The process `state.test.ts` kills with SIGKILL to check that the state file survives a crash at
 * any instant. Run as `node state-crash-child.js <state file> <seed>`, it plays a server forever:
 * opens rounds (sometimes retrying one with a higher attempt), receives each client's reply as a
 * chunked upload, accepts it, records the odd failure, and commits round boundaries with snapshots
 * of a few MB, so that a kill lands inside every kind of transaction. It prints one line per
 * finished step ("open r a", "accept r a task", "commit r") only after the step returned, so the
 * test can check that whatever was acknowledged is still there after the crash.
 *
 * The bytes it stores are self-checking (`makeSnapshot`/`snapshotRound`, `payloadFor`), so the test
 * can tell a partly written blob from a whole one. Importing this module runs nothing.
 */
import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { StateStore } from "./state.js";

/** A small seeded generator (mulberry32): the kill timings and sizes must repeat from a seed. */
export function rngFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fill(bytes: Uint8Array, seed: number): void {
  const next = rngFrom(seed);
  for (let i = 0; i < bytes.length; i += 4) {
    const v = (next() * 4294967296) >>> 0;
    for (let k = 0; k < 4 && i + k < bytes.length; k++) bytes[i + k] = (v >>> (8 * k)) & 0xff;
  }
}

const MAGIC = 0x50414e53; // "SNAP"

/** A snapshot of `size` bytes (>= 44) for round `round`: magic, round, size, filler, SHA-256 of all before it. */
export function makeSnapshot(round: number, size: number, seed: number): Uint8Array {
  const s = new Uint8Array(Math.max(44, size));
  const view = new DataView(s.buffer);
  fill(s.subarray(12, s.length - 32), seed);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, round, true);
  view.setUint32(8, s.length, true);
  s.set(createHash("sha256").update(s.subarray(0, s.length - 32)).digest(), s.length - 32);
  return s;
}

/** The round a snapshot made by `makeSnapshot` is for; throws if any byte of it is wrong. */
export function snapshotRound(s: Uint8Array): number {
  if (s.length < 44) throw new Error(`snapshot of ${s.length} bytes is too short`);
  const view = new DataView(s.buffer, s.byteOffset, s.byteLength);
  if (view.getUint32(0, true) !== MAGIC || view.getUint32(8, true) !== s.length) throw new Error("snapshot header is wrong");
  const want = createHash("sha256").update(s.subarray(0, s.length - 32)).digest();
  if (!want.equals(s.subarray(s.length - 32))) throw new Error("snapshot checksum is wrong");
  return view.getUint32(4, true);
}

/** The reply bytes of a task: fixed by its id, so an upload interrupted by a crash can be resumed. */
export function payloadFor(taskId: string): Uint8Array {
  const h = createHash("sha256").update(taskId).digest();
  const bytes = new Uint8Array(1024 + (h.readUInt32LE(0) % (192 * 1024)));
  fill(bytes, h.readUInt32LE(4));
  return bytes;
}

export const CRASH_CLIENTS = ["c0", "c1", "c2", "c3"];
export const CRASH_CONFIG_HASH = createHash("sha256").update("crash-config").digest("hex");

const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function serve(path: string, seed: number): never {
  const rng = rngFrom(seed);
  const say = (line: string): void => {
    // Synchronous on Linux pipes: once the line is out, the step before it had returned.
    process.stdout.write(`${line}\n`);
  };
  const store = StateStore.open(path);
  if (!store.run()) store.initRun({ runId: "crash", configJson: "{}", configHash: CRASH_CONFIG_HASH });
  store.assertSameRun(CRASH_CONFIG_HASH);
  for (const c of CRASH_CLIENTS) store.upsertClient({ id: c });
  say("ready");
  for (;;) {
    const round = (store.latestBoundary()?.round ?? 0) + 1;
    let open = store.openRoundState();
    if (!open || open.round !== round || rng() < 0.15) {
      const attempt = open && open.round === round ? open.attempt + 1 : 1;
      const request = new TextEncoder().encode(`request for round ${round} attempt ${attempt}`);
      const requestObjectId = sha256Hex(request);
      store.putObject(requestObjectId, request);
      const tasks = CRASH_CLIENTS.map((c) => ({ taskId: `r${round}a${attempt}-${c}`, clientId: c, requestObjectId }));
      store.openRound({ round, attempt, sampled: CRASH_CLIENTS, tasks, deadlineMs: Date.now() + 60_000 });
      open = store.openRoundState()!;
      say(`open ${round} ${attempt}`);
    }
    const done = new Set([...store.acceptedReplies().map((r) => r.taskId), ...store.failures().map((f) => f.taskId)]);
    for (const t of open.tasks) {
      if (done.has(t.taskId)) continue;
      store.touchClient(t.clientId, Date.now());
      if (rng() < 0.05) {
        store.recordFailure({ taskId: t.taskId, clientId: t.clientId, code: "timeout", message: "no reply" });
        continue;
      }
      const payload = payloadFor(t.taskId);
      const sha256 = sha256Hex(payload);
      const uploadId = `${t.taskId}-upload`;
      // Asking at offset 0 returns what an upload cut short by the last crash already holds.
      let at = store.appendUpload({ uploadId, offset: 0, total: payload.length, chunk: new Uint8Array(0) });
      while (at < payload.length) {
        const end = Math.min(payload.length, at + 16 * 1024 + Math.floor(rng() * 48 * 1024));
        at = store.appendUpload({ uploadId, offset: at, total: payload.length, chunk: payload.subarray(at, end) });
      }
      const fin = store.finishUpload(uploadId, sha256);
      if (!fin.ok) throw new Error(`upload of ${t.taskId} failed: ${fin.message}`);
      const outcome = store.acceptReply({ round, attempt: open.attempt, taskId: t.taskId, clientId: t.clientId, payload: fin.bytes, sha256 });
      if (outcome !== "accepted") throw new Error(`reply to ${t.taskId} was ${outcome}`);
      say(`accept ${round} ${open.attempt} ${t.taskId}`);
      if (rng() < 0.2 && store.acceptReply({ round, attempt: open.attempt, taskId: t.taskId, clientId: t.clientId, payload, sha256 }) !== "duplicate") {
        throw new Error(`a resent reply to ${t.taskId} was not a duplicate`);
      }
    }
    const snapshot = makeSnapshot(round, 64 * 1024 + Math.floor(rng() * 4 * 1024 * 1024), seed + round);
    store.setMeta("rng", JSON.stringify({ seed, round }));
    store.commitBoundary({ round, snapshot, record: JSON.stringify({ round, replies: store.acceptedReplies().length }) });
    say(`commit ${round}`);
    // The round's request objects are no longer served once it is committed.
    for (const o of store.listObjects()) store.deleteObject(o.id);
    for (const u of store.uploads()) store.discardUpload(u.uploadId);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [path, seed] = process.argv.slice(2);
  if (!path || seed === undefined) {
    console.error("usage: node state-crash-child.js <state file> <seed>");
    process.exit(2);
  }
  serve(path, Number(seed));
}
