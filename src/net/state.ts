/**
 * @module net/state
 * The persistent state of a `safl server` in a real federated deployment: what it needs to resume
 * after a crash or a restart without losing acknowledged work or repeating a committed round.
 *
 * One SQLite file (better-sqlite3, synchronous) holds the run's identity and config, the server's
 * full state snapshot at the last round boundaries, the per-round metrics records, the open round
 * (its sampled clients, tasks and the replies accepted so far), content-addressed objects the server
 * serves, client uploads in progress, the known clients, and a small key/value table.
 *
 * Why SQLite: every multi-row change below is one transaction, so a crash at any instant leaves
 * either the state before or the state after it, never a mix; no temp-file-and-rename dance is
 * needed, the journal is the atomicity. WAL mode lets a 20 MB snapshot commit as one sequential
 * append. `synchronous = FULL` makes every commit durable against power loss too, not only against a
 * process crash (NORMAL would be): a reply is acknowledged to a client, which then forgets its work,
 * and a boundary is announced to clients, who then move on; neither may roll back afterwards. The
 * cost is one fsync per commit, which at the rate of replies and rounds is nothing.
 *
 * The file is opened with `locking_mode = EXCLUSIVE`, so a second server pointed at the same file
 * fails at open with a clear error instead of interleaving its rounds with the first one's.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { argError, ErrorCode, SaflError } from "../errors.js";

/** The schema this code reads and writes (`PRAGMA user_version`). */
export const STATE_SCHEMA_VERSION = 1;
/** `PRAGMA application_id` of a safl state file ("SAFL"), so another SQLite file is named as such. */
export const STATE_APPLICATION_ID = 0x5341464c;

/** Options of `StateStore.open`. */
export interface StateStoreOptions {
  /** Create the file when it does not exist (default true); false for a resume that needs old state. */
  readonly create?: boolean;
  /** Largest single upload a client may announce, in bytes (default 1 GiB). */
  readonly maxUploadBytes?: number;
  /** Largest sum of the announced sizes of all unfinished uploads, in bytes (default 4 GiB). */
  readonly maxPendingUploadBytes?: number;
  /** How many boundary snapshots to keep (default 2: the latest and one to fall back on). */
  readonly keepSnapshots?: number;
  /** How long open waits for another process's lock before it gives up (default 1000 ms). */
  readonly busyTimeoutMs?: number;
}

/** The run a state file belongs to. */
export interface RunInfo {
  readonly runId: string;
  readonly configJson: string;
  readonly configHash: string;
  readonly createdMs: number;
}

/** The server's state after round `round`. */
export interface Boundary {
  readonly round: number;
  readonly snapshot: Uint8Array;
}

/** One task of the open round: what `clientId` was asked to do, as the object it downloads. */
export interface TaskSpec {
  readonly taskId: string;
  readonly clientId: string;
  readonly requestObjectId: string;
}

/** The round in progress. */
export interface OpenRoundState {
  readonly round: number;
  readonly attempt: number;
  readonly sampled: readonly string[];
  readonly tasks: readonly TaskSpec[];
  readonly deadlineMs: number;
}

/** A reply a client delivered for a task of the open round. */
export interface ReplyInput {
  readonly round: number;
  readonly attempt: number;
  readonly taskId: string;
  readonly clientId: string;
  readonly payload: Uint8Array;
  /** SHA-256 of `payload`, lower-case hex; checked. */
  readonly sha256: string;
}

/**
 * accepted: stored now. duplicate: the same bytes were already accepted for this task (a retry
 * after a lost acknowledgement), nothing changes. conflict: different bytes were already accepted
 * for this task, refused, nothing changes. stale: no such task in the open round for this
 * round/attempt/client (a late reply of an older attempt), nothing changes.
 */
export type ReplyOutcome = "accepted" | "duplicate" | "conflict" | "stale";

export interface AcceptedReply {
  readonly taskId: string;
  readonly clientId: string;
  readonly payload: Uint8Array;
  readonly sha256: string;
}

export interface FailureInput {
  readonly taskId: string;
  readonly clientId: string;
  readonly code: string;
  readonly message: string;
}

export interface FailureRecord extends FailureInput {
  readonly atMs: number;
}

/** A chunk of an upload; see `StateStore.appendUpload`. */
export interface UploadChunk {
  readonly uploadId: string;
  readonly offset: number;
  readonly total: number;
  readonly chunk: Uint8Array;
}

export type FinishUploadResult =
  | { readonly ok: true; readonly bytes: Uint8Array }
  | {
      readonly ok: false;
      /** unknown: no such upload; incomplete: fewer bytes than announced; hash: the bytes hash differently. */
      readonly reason: "unknown" | "incomplete" | "hash";
      readonly message: string;
    };

export interface UploadInfo {
  readonly uploadId: string;
  readonly received: number;
  readonly total: number;
  readonly updatedMs: number;
}

export interface ClientInfo {
  readonly id: string;
  readonly tokenHash: string | undefined;
  readonly lastSeenMs: number | undefined;
  readonly baseVersion: number | undefined;
}

const SHA256_RE = /^[0-9a-f]{64}$/;
const MAX_ID_LENGTH = 256;
const GiB = 1024 * 1024 * 1024;

/*
 * The open round is a one-row table that tasks point at with ON DELETE CASCADE, and replies and
 * failures point at (task, client); deleting that row clears the whole round in one statement, and
 * the foreign keys make a reply for another client's task impossible in the file, not only in this
 * code. A task's request object is not a foreign key: a server may rebuild requests on resume
 * instead of storing every per-client broadcast; one that is stored cannot be deleted while served. STRICT tables refuse a value of the wrong
 * type instead of storing it.
 */
const SCHEMA = `
CREATE TABLE run (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  run_id TEXT NOT NULL,
  config_json TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE boundaries (
  round INTEGER PRIMARY KEY,
  snapshot BLOB NOT NULL,
  size INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  committed_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE records (
  round INTEGER PRIMARY KEY,
  line TEXT NOT NULL
) STRICT;
CREATE TABLE objects (
  id TEXT PRIMARY KEY,
  bytes BLOB NOT NULL,
  size INTEGER NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE open_round (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  round INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  sampled_json TEXT NOT NULL,
  deadline_ms INTEGER NOT NULL,
  opened_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE tasks (
  task_id TEXT PRIMARY KEY,
  open_round INTEGER NOT NULL REFERENCES open_round(id) ON DELETE CASCADE,
  ord INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  request_object_id TEXT NOT NULL,
  UNIQUE (task_id, client_id)
) STRICT;
CREATE INDEX tasks_by_round ON tasks(open_round);
CREATE INDEX tasks_by_object ON tasks(request_object_id);
CREATE TABLE replies (
  seq INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL UNIQUE,
  client_id TEXT NOT NULL,
  payload BLOB NOT NULL,
  sha256 TEXT NOT NULL,
  accepted_ms INTEGER NOT NULL,
  FOREIGN KEY (task_id, client_id) REFERENCES tasks(task_id, client_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX replies_by_task ON replies(task_id, client_id);
CREATE TABLE failures (
  seq INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  code TEXT NOT NULL,
  message TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  FOREIGN KEY (task_id, client_id) REFERENCES tasks(task_id, client_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX failures_by_task ON failures(task_id, client_id);
CREATE TABLE uploads (
  upload_id TEXT PRIMARY KEY,
  total INTEGER NOT NULL,
  received INTEGER NOT NULL,
  started_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE upload_chunks (
  upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
  at_offset INTEGER NOT NULL,
  bytes BLOB NOT NULL,
  PRIMARY KEY (upload_id, at_offset)
) STRICT;
CREATE TABLE clients (
  id TEXT PRIMARY KEY,
  token_hash TEXT,
  last_seen_ms INTEGER,
  base_version INTEGER
) STRICT;
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
`;

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function short(hash: string): string {
  return `${hash.slice(0, 12)}…`;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function ioError(message: string, cause?: unknown): SaflError {
  return new SaflError(ErrorCode.Io, message, cause === undefined ? undefined : { cause });
}

function checkId(what: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0 || v.length > MAX_ID_LENGTH) {
    throw argError(`${what} must be a string of 1-${MAX_ID_LENGTH} characters, got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkInt(what: string, v: unknown, min = 0): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw argError(`${what} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkHash(what: string, v: unknown): string {
  if (typeof v !== "string" || !SHA256_RE.test(v)) throw argError(`${what} must be a SHA-256 as 64 lower-case hex digits, got ${JSON.stringify(v)}`);
  return v;
}

function checkBytes(what: string, v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw argError(`${what} must be a Uint8Array, got ${typeof v}`);
  return v;
}

interface OpenRoundRow {
  round: number;
  attempt: number;
  sampled_json: string;
  deadline_ms: number;
}

/**
 * The server's state file. All methods are synchronous; each change is one transaction, and a call
 * that refuses (throws, or returns a refusal outcome) leaves the file as it was.
 */
export class StateStore {
  readonly path: string;
  readonly maxUploadBytes: number;
  readonly maxPendingUploadBytes: number;
  readonly keepSnapshots: number;
  private readonly db: Database.Database;
  private closed = false;
  /** Prepared statements by SQL text: preparing costs more than most of these statements run. */
  private readonly statements = new Map<string, Database.Statement>();

  private constructor(path: string, db: Database.Database, opts: StateStoreOptions) {
    this.path = path;
    this.db = db;
    this.maxUploadBytes = checkInt("maxUploadBytes", opts.maxUploadBytes ?? GiB);
    this.maxPendingUploadBytes = checkInt("maxPendingUploadBytes", opts.maxPendingUploadBytes ?? 4 * GiB);
    this.keepSnapshots = checkInt("keepSnapshots", opts.keepSnapshots ?? 2, 1);
  }

  /**
   * Opens (or creates) the state file at `path`. Refuses, without changing the file, a file that is
   * not an SQLite database, an SQLite database that is not a safl state file, a state file of a newer
   * schema, and a file another process has open.
   */
  static open(path: string, opts: StateStoreOptions = {}): StateStore {
    if (typeof path !== "string" || path.length === 0) throw argError(`state file path must be a non-empty string, got ${JSON.stringify(path)}`);
    // Checked before the file is opened so that invalid options never create a file.
    checkInt("maxUploadBytes", opts.maxUploadBytes ?? 0);
    checkInt("maxPendingUploadBytes", opts.maxPendingUploadBytes ?? 0);
    checkInt("keepSnapshots", opts.keepSnapshots ?? 2, 1);
    const timeout = checkInt("busyTimeoutMs", opts.busyTimeoutMs ?? 1000);
    const create = opts.create ?? true;
    if (!create && !existsSync(path)) throw ioError(`state file ${path} does not exist (expected the --state of an earlier run to resume)`);
    let db: Database.Database;
    try {
      db = new Database(path, { timeout });
    } catch (e) {
      throw ioError(`cannot open state file ${path}: ${reason(e)} (expected a writable file path in an existing directory)`, e);
    }
    try {
      StateStore.prepare(db, path);
      return new StateStore(path, db, opts);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Checks what the file is, switches it to WAL and creates the schema when it is new. */
  private static prepare(db: Database.Database, path: string): void {
    const pragmaInt = (name: string): number => db.pragma(name, { simple: true }) as number;
    let appId: number;
    let version: number;
    let tables: number;
    try {
      // Set before the first read so this connection takes the file's lock and keeps it.
      db.pragma("locking_mode = EXCLUSIVE");
      // Identity is read before anything is written, so a foreign file is refused untouched.
      appId = pragmaInt("application_id");
      version = pragmaInt("user_version");
      tables = (db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number }).n;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "SQLITE_NOTADB") throw ioError(`${path} is not a safl state file (not an SQLite database); expected a file written by safl server --state, or a new path`, e);
      if (code === "SQLITE_BUSY") throw ioError(`state file ${path} is in use by another process (another safl server?); stop it or use another --state`, e);
      throw ioError(`cannot read state file ${path}: ${reason(e)}`, e);
    }
    const isNew = appId === 0 && version === 0 && tables === 0;
    if (!isNew) {
      if (appId !== STATE_APPLICATION_ID) {
        throw ioError(`${path} is an SQLite database but not a safl state file (application_id ${appId}, expected ${STATE_APPLICATION_ID}); use a new --state path`);
      }
      if (version > STATE_SCHEMA_VERSION) {
        throw ioError(`state file ${path} has schema version ${version}, this safl reads up to version ${STATE_SCHEMA_VERSION} (was it written by a newer safl?); use that safl or a new --state`);
      }
      if (version < 1) throw ioError(`state file ${path} has schema version ${version}, expected ${STATE_SCHEMA_VERSION}; it was not initialized by safl`);
    }
    try {
      // 64 KiB pages (SQLite's largest) make a snapshot BLOB a chain of a few hundred pages instead
      // of thousands: committing and reading 20 MB gets several times faster, for an empty file of
      // about 1.6 MB. Only a new file can take it; it is fixed once the first page is written.
      if (isNew) db.pragma("page_size = 65536");
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      if (mode !== "wal") throw ioError(`state file ${path}: SQLite refused WAL mode (journal_mode is ${String(mode)}); put it on a local file system`);
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      // Between automatic checkpoints (every 1000 pages, 64 MB here) the WAL holds a few snapshots;
      // a larger burst would leave it that large for good without this limit on its size at rest.
      db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      if (isNew) {
        // One transaction: a crash leaves either an empty file (treated as new on the next open)
        // or the whole schema, never some of its tables.
        db.transaction(() => {
          db.exec(SCHEMA);
          db.pragma(`application_id = ${STATE_APPLICATION_ID}`);
          db.pragma(`user_version = ${STATE_SCHEMA_VERSION}`);
        }).immediate();
      }
    } catch (e) {
      if (e instanceof SaflError) throw e;
      if ((e as { code?: string }).code === "SQLITE_BUSY") throw ioError(`state file ${path} is in use by another process (another safl server?); stop it or use another --state`, e);
      throw ioError(`cannot initialize state file ${path}: ${reason(e)}`, e);
    }
  }

  /** Closes the file; WAL contents are checkpointed into it. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /** How the file is opened, for the server's startup log (and to check it is what the comments say). */
  settings(): { journalMode: string; synchronous: "off" | "normal" | "full" | "extra"; foreignKeys: boolean; lockingMode: string; pageSize: number; schemaVersion: number } {
    const p = (name: string): unknown => this.db.pragma(name, { simple: true });
    const sync = (["off", "normal", "full", "extra"] as const)[p("synchronous") as number];
    if (sync === undefined) throw new Error(`unexpected synchronous value ${String(p("synchronous"))}`);
    return { journalMode: String(p("journal_mode")), synchronous: sync, foreignKeys: p("foreign_keys") === 1, lockingMode: String(p("locking_mode")), pageSize: p("page_size") as number, schemaVersion: p("user_version") as number };
  }

  private sql(text: string): Database.Statement {
    let s = this.statements.get(text);
    if (!s) this.statements.set(text, (s = this.db.prepare(text)));
    return s;
  }

  // -------------------------------------------------------------------------------------------
  // The run

  /**
   * Records which run this file belongs to. Once per file: calling it again with the same run id
   * and hash is a no-op, with anything else a refusal.
   */
  initRun(run: { runId: string; configJson: string; configHash: string }): void {
    const runId = checkId("runId", run.runId);
    if (typeof run.configJson !== "string") throw argError(`configJson must be a string, got ${typeof run.configJson}`);
    const configHash = checkId("configHash", run.configHash);
    this.db
      .transaction(() => {
        const old = this.run();
        if (old) {
          if (old.runId === runId && old.configHash === configHash) return;
          throw new SaflError(
            ErrorCode.Checkpoint,
            `state file ${this.path} already belongs to run ${old.runId} (config hash ${short(old.configHash)}), cannot start run ${runId} (config hash ${short(configHash)}) in it; use a new --state`,
          );
        }
        this.sql("INSERT INTO run (id, run_id, config_json, config_hash, created_ms) VALUES (1, ?, ?, ?, ?)")
          .run(runId, run.configJson, configHash, Date.now());
      })
      .immediate();
  }

  /** The run this file belongs to, or undefined for a new file. */
  run(): RunInfo | undefined {
    const r = this.sql("SELECT run_id, config_json, config_hash, created_ms FROM run WHERE id = 1").get() as
      | { run_id: string; config_json: string; config_hash: string; created_ms: number }
      | undefined;
    return r && { runId: r.run_id, configJson: r.config_json, configHash: r.config_hash, createdMs: r.created_ms };
  }

  /** Throws unless this file belongs to a run with config hash `configHash`. */
  assertSameRun(configHash: string): void {
    const r = this.run();
    if (!r) throw new SaflError(ErrorCode.Checkpoint, `state file ${this.path} holds no run yet (expected one with config hash ${short(configHash)}); start the run first`);
    if (r.configHash !== configHash) {
      throw new SaflError(
        ErrorCode.Checkpoint,
        `state file ${this.path} belongs to run ${r.runId} with a different config (hash ${short(r.configHash)} vs ${short(configHash)}); use a new --state or the same config`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Round boundaries

  /**
   * Ends round `round`: stores the server's full state after it, appends its metrics record, drops
   * snapshots beyond the newest `keepSnapshots`, and clears the open round, in one transaction, so a
   * crash leaves the server either still in round `round` with its replies or past it.
   */
  commitBoundary(b: { round: number; snapshot: Uint8Array; record?: string }): void {
    const round = checkInt("round", b.round);
    const snapshot = checkBytes("snapshot", b.snapshot);
    if (b.record !== undefined) {
      if (typeof b.record !== "string" || b.record.includes("\n")) throw argError(`the record of round ${round} must be one line of JSON, got ${JSON.stringify(b.record)?.slice(0, 80)}`);
      try {
        JSON.parse(b.record);
      } catch (e) {
        throw argError(`the record of round ${round} must be one line of JSON, got ${JSON.stringify(b.record.slice(0, 80))} (${reason(e)})`);
      }
    }
    // Hashed outside the transaction: it is pure and the transaction should hold the lock briefly.
    const hash = sha256Hex(snapshot);
    this.db
      .transaction(() => {
        const latest = this.sql("SELECT max(round) AS r FROM boundaries").get() as { r: number | null };
        if (latest.r !== null && round <= latest.r) {
          throw argError(`cannot commit the boundary of round ${round}: state file ${this.path} is already past round ${latest.r} (expected round > ${latest.r})`);
        }
        const open = this.openRoundRow();
        if (open && open.round !== round) {
          throw argError(`cannot commit the boundary of round ${round}: the open round is round ${open.round} (expected the open round's number)`);
        }
        if (b.record !== undefined && this.sql("SELECT 1 FROM records WHERE round = ?").get(round)) {
          throw new Error(`records already hold round ${round} without its boundary`);
        }
        // The order does not matter inside the transaction; the slow snapshot write comes last so
        // that the crash test would catch these statements ever running outside one.
        if (b.record !== undefined) this.sql("INSERT INTO records (round, line) VALUES (?, ?)").run(round, b.record);
        this.sql("DELETE FROM open_round").run();
        this.sql("INSERT INTO boundaries (round, snapshot, size, sha256, committed_ms) VALUES (?, ?, ?, ?, ?)").run(round, snapshot, snapshot.byteLength, hash, Date.now());
        this.sql("DELETE FROM boundaries WHERE round NOT IN (SELECT round FROM boundaries ORDER BY round DESC LIMIT ?)").run(this.keepSnapshots);
      })
      .immediate();
  }

  /** The newest boundary, its snapshot checked against the hash stored with it; undefined before the first. */
  latestBoundary(): Boundary | undefined {
    const r = this.sql("SELECT round, snapshot, size, sha256 FROM boundaries ORDER BY round DESC LIMIT 1").get() as
      | { round: number; snapshot: Buffer; size: number; sha256: string }
      | undefined;
    if (!r) return undefined;
    const got = sha256Hex(r.snapshot);
    if (r.snapshot.byteLength !== r.size || got !== r.sha256) {
      throw ioError(`state file ${this.path} is corrupt: the snapshot of round ${r.round} has ${r.snapshot.byteLength} bytes hashing to ${short(got)}, expected ${r.size} bytes hashing to ${short(r.sha256)}`);
    }
    return { round: r.round, snapshot: r.snapshot };
  }

  /** The rounds whose snapshots are kept, oldest first. */
  snapshotRounds(): number[] {
    return (this.sql("SELECT round FROM boundaries ORDER BY round").all() as { round: number }[]).map((r) => r.round);
  }

  /** The metrics records (one JSON line each) in round order. */
  records(): string[] {
    return (this.sql("SELECT line FROM records ORDER BY round").all() as { line: string }[]).map((r) => r.line);
  }

  // -------------------------------------------------------------------------------------------
  // The open round

  /**
   * Starts (or restarts) a round: replaces any open round, with its tasks, replies and failures. A
   * retry of the same round gets a higher attempt, so replies of the old attempt become stale; the
   * attempt never goes back.
   */
  openRound(o: { round: number; attempt: number; sampled: readonly string[]; tasks: readonly TaskSpec[]; deadlineMs: number }): void {
    const round = checkInt("round", o.round);
    const attempt = checkInt("attempt", o.attempt);
    const deadlineMs = checkInt("deadlineMs", o.deadlineMs);
    if (!Array.isArray(o.sampled)) throw argError(`sampled must be an array of client ids, got ${typeof o.sampled}`);
    const sampled = o.sampled.map((c, i) => checkId(`sampled[${i}]`, c));
    if (new Set(sampled).size !== sampled.length) throw argError(`sampled lists a client twice: ${JSON.stringify(sampled)}`);
    if (!Array.isArray(o.tasks)) throw argError(`tasks must be an array, got ${typeof o.tasks}`);
    const taskIds = new Set<string>();
    const tasks = o.tasks.map((t, i) => {
      const taskId = checkId(`tasks[${i}].taskId`, t.taskId);
      const clientId = checkId(`tasks[${i}].clientId`, t.clientId);
      const requestObjectId = checkHash(`tasks[${i}].requestObjectId`, t.requestObjectId);
      if (taskIds.has(taskId)) throw argError(`tasks[${i}].taskId ${JSON.stringify(taskId)} appears twice`);
      taskIds.add(taskId);
      if (!sampled.includes(clientId)) throw argError(`tasks[${i}] is for client ${JSON.stringify(clientId)}, which is not among the sampled clients`);
      return { taskId, clientId, requestObjectId };
    });
    this.db
      .transaction(() => {
        const latest = this.sql("SELECT max(round) AS r FROM boundaries").get() as { r: number | null };
        if (latest.r !== null && round <= latest.r) {
          throw argError(`cannot open round ${round}: state file ${this.path} is already past round ${latest.r} (expected round > ${latest.r})`);
        }
        const old = this.openRoundRow();
        // The same attempt again is allowed (a restarted server re-sends the round it was in; its
        // task ids say which replies still fit); going back would revive replies meant as stale.
        if (old && (round < old.round || (round === old.round && attempt < old.attempt))) {
          throw argError(`cannot open round ${round} attempt ${attempt}: round ${old.round} attempt ${old.attempt} is open (expected a later round, or the same round with attempt >= ${old.attempt})`);
        }
        this.sql("DELETE FROM open_round").run();
        this.sql("INSERT INTO open_round (id, round, attempt, sampled_json, deadline_ms, opened_ms) VALUES (1, ?, ?, ?, ?, ?)")
          .run(round, attempt, JSON.stringify(sampled), deadlineMs, Date.now());
        const ins = this.sql("INSERT INTO tasks (task_id, open_round, ord, client_id, request_object_id) VALUES (?, 1, ?, ?, ?)");
        for (const [i, t] of tasks.entries()) ins.run(t.taskId, i, t.clientId, t.requestObjectId);
      })
      .immediate();
  }

  private openRoundRow(): OpenRoundRow | undefined {
    return this.sql("SELECT round, attempt, sampled_json, deadline_ms FROM open_round WHERE id = 1").get() as OpenRoundRow | undefined;
  }

  /** The open round as `openRound` stored it, or undefined between rounds. */
  openRoundState(): OpenRoundState | undefined {
    return this.db
      .transaction(() => {
        const r = this.openRoundRow();
        if (!r) return undefined;
        const tasks = (this.sql("SELECT task_id, client_id, request_object_id FROM tasks ORDER BY ord").all() as { task_id: string; client_id: string; request_object_id: string }[]).map(
          (t) => ({ taskId: t.task_id, clientId: t.client_id, requestObjectId: t.request_object_id }),
        );
        return { round: r.round, attempt: r.attempt, sampled: JSON.parse(r.sampled_json) as string[], tasks, deadlineMs: r.deadline_ms };
      })
      .deferred();
  }

  /** Stores a client's reply to a task of the open round; see `ReplyOutcome`. */
  acceptReply(r: ReplyInput): ReplyOutcome {
    const round = checkInt("round", r.round);
    const attempt = checkInt("attempt", r.attempt);
    const taskId = checkId("taskId", r.taskId);
    const clientId = checkId("clientId", r.clientId);
    const payload = checkBytes("payload", r.payload);
    const sha256 = checkHash("sha256", r.sha256);
    const got = sha256Hex(payload);
    if (got !== sha256) throw argError(`the reply to task ${JSON.stringify(taskId)} from ${JSON.stringify(clientId)} hashes to ${short(got)}, not the given ${short(sha256)}`);
    return this.db
      .transaction((): ReplyOutcome => {
        const open = this.openRoundRow();
        if (!open || open.round !== round || open.attempt !== attempt) return "stale";
        if (!this.sql("SELECT 1 FROM tasks WHERE task_id = ? AND client_id = ?").get(taskId, clientId)) return "stale";
        const old = this.sql("SELECT sha256 FROM replies WHERE task_id = ?").get(taskId) as { sha256: string } | undefined;
        if (old) return old.sha256 === sha256 ? "duplicate" : "conflict";
        this.sql("INSERT INTO replies (task_id, client_id, payload, sha256, accepted_ms) VALUES (?, ?, ?, ?, ?)").run(taskId, clientId, payload, sha256, Date.now());
        return "accepted";
      })
      .immediate();
  }

  /** The replies accepted in the open round, in acceptance order. */
  acceptedReplies(): AcceptedReply[] {
    return (this.sql("SELECT task_id, client_id, payload, sha256 FROM replies ORDER BY seq").all() as { task_id: string; client_id: string; payload: Buffer; sha256: string }[]).map(
      (r) => ({ taskId: r.task_id, clientId: r.client_id, payload: r.payload, sha256: r.sha256 }),
    );
  }

  /** Who answered task `taskId` of the open round and the hash of the reply, without reading the payload. */
  acceptedReplyDigest(taskId: string): { clientId: string; sha256: string } | undefined {
    // A peer's id: one that could never have been stored has no reply (rather than an error).
    if (typeof taskId !== "string" || taskId.length === 0 || taskId.length > MAX_ID_LENGTH) return undefined;
    const r = this.sql("SELECT client_id, sha256 FROM replies WHERE task_id = ?").get(taskId) as { client_id: string; sha256: string } | undefined;
    return r && { clientId: r.client_id, sha256: r.sha256 };
  }

  /** Records that a task of the open round failed; "stale" (nothing stored) when there is no such task for that client. */
  recordFailure(f: FailureInput): "recorded" | "stale" {
    const taskId = checkId("taskId", f.taskId);
    const clientId = checkId("clientId", f.clientId);
    if (typeof f.code !== "string" || typeof f.message !== "string") throw argError(`a failure needs a string code and message, got ${typeof f.code} and ${typeof f.message}`);
    return this.db
      .transaction(() => {
        if (!this.sql("SELECT 1 FROM tasks WHERE task_id = ? AND client_id = ?").get(taskId, clientId)) return "stale" as const;
        this.sql("INSERT INTO failures (task_id, client_id, code, message, at_ms) VALUES (?, ?, ?, ?, ?)").run(taskId, clientId, f.code, f.message, Date.now());
        return "recorded" as const;
      })
      .immediate();
  }

  /** The failures recorded in the open round, in order. */
  failures(): FailureRecord[] {
    return (this.sql("SELECT task_id, client_id, code, message, at_ms FROM failures ORDER BY seq").all() as { task_id: string; client_id: string; code: string; message: string; at_ms: number }[]).map(
      (r) => ({ taskId: r.task_id, clientId: r.client_id, code: r.code, message: r.message, atMs: r.at_ms }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Objects and uploads

  /** Stores `bytes` under `id`, which must be their SHA-256; storing the same object again is a no-op. */
  putObject(id: string, bytes: Uint8Array): void {
    checkHash("object id", id);
    checkBytes("object bytes", bytes);
    const got = sha256Hex(bytes);
    if (got !== id) throw argError(`object ${id} does not match its bytes: they hash to ${got} (an object id is the SHA-256 of its bytes)`);
    this.sql("INSERT OR IGNORE INTO objects (id, bytes, size, created_ms) VALUES (?, ?, ?, ?)").run(id, bytes, bytes.byteLength, Date.now());
  }

  getObject(id: string): Uint8Array | undefined {
    const r = this.sql("SELECT bytes FROM objects WHERE id = ?").get(id) as { bytes: Buffer } | undefined;
    return r?.bytes;
  }

  hasObject(id: string): boolean {
    return this.sql("SELECT 1 FROM objects WHERE id = ?").get(id) !== undefined;
  }

  /** The stored objects' ids and sizes, for garbage collection. */
  listObjects(): { id: string; size: number }[] {
    return this.sql("SELECT id, size FROM objects ORDER BY id").all() as { id: string; size: number }[];
  }

  /** Deletes an object; false if there was none. Refused while a task of the open round serves it. */
  deleteObject(id: string): boolean {
    const task = this.sql("SELECT task_id FROM tasks WHERE request_object_id = ? LIMIT 1").get(id) as { task_id: string } | undefined;
    if (task) throw argError(`cannot delete object ${id}: task ${JSON.stringify(task.task_id)} of the open round serves it`);
    return this.sql("DELETE FROM objects WHERE id = ?").run(id).changes > 0;
  }

  /**
   * Appends a chunk to an upload and returns how many bytes it now holds. A chunk is taken only at
   * `offset === bytes received so far`; at any other offset nothing changes and the current count
   * is returned, so a client that lost an acknowledgement resends from there. The first chunk
   * (offset 0) announces `total`, which the store bounds by `maxUploadBytes` and, summed over all
   * unfinished uploads, by `maxPendingUploadBytes`.
   */
  appendUpload(u: UploadChunk): number {
    const uploadId = checkId("uploadId", u.uploadId);
    const offset = checkInt("offset", u.offset);
    const total = checkInt("total", u.total);
    const chunk = checkBytes("chunk", u.chunk);
    if (total > this.maxUploadBytes) throw argError(`upload ${JSON.stringify(uploadId)} announces ${total} bytes, more than the limit of ${this.maxUploadBytes}`);
    return this.db
      .transaction(() => {
        const now = Date.now();
        const up = this.sql("SELECT total, received FROM uploads WHERE upload_id = ?").get(uploadId) as { total: number; received: number } | undefined;
        const received = up?.received ?? 0;
        if (offset !== received) return received;
        if (up && up.total !== total) throw argError(`upload ${JSON.stringify(uploadId)} announced ${up.total} bytes, this chunk says ${total}`);
        if (offset + chunk.byteLength > total) {
          throw argError(`upload ${JSON.stringify(uploadId)}: a chunk of ${chunk.byteLength} bytes at offset ${offset} runs past the announced ${total} bytes`);
        }
        if (!up) {
          const pending = (this.sql("SELECT coalesce(sum(total), 0) AS n FROM uploads").get() as { n: number }).n;
          if (pending + total > this.maxPendingUploadBytes) {
            throw argError(`upload ${JSON.stringify(uploadId)} of ${total} bytes would bring unfinished uploads to ${pending + total} bytes, more than the limit of ${this.maxPendingUploadBytes}`);
          }
          this.sql("INSERT INTO uploads (upload_id, total, received, started_ms, updated_ms) VALUES (?, ?, 0, ?, ?)").run(uploadId, total, now, now);
        }
        if (chunk.byteLength === 0) return received;
        this.sql("INSERT INTO upload_chunks (upload_id, at_offset, bytes) VALUES (?, ?, ?)").run(uploadId, offset, chunk);
        const next = received + chunk.byteLength;
        this.sql("UPDATE uploads SET received = ?, updated_ms = ? WHERE upload_id = ?").run(next, now, uploadId);
        return next;
      })
      .immediate();
  }

  /**
   * Completes an upload: returns its bytes when it holds all announced bytes and they hash to
   * `expectedSha256`. Either way the upload is removed; a wrong one must be sent again from offset 0.
   */
  finishUpload(uploadId: string, expectedSha256: string): FinishUploadResult {
    checkId("uploadId", uploadId);
    checkHash("expectedSha256", expectedSha256);
    return this.db
      .transaction((): FinishUploadResult => {
        const up = this.sql("SELECT total, received FROM uploads WHERE upload_id = ?").get(uploadId) as { total: number; received: number } | undefined;
        if (!up) return { ok: false, reason: "unknown", message: `no upload ${JSON.stringify(uploadId)} is in progress` };
        // Read before the delete below cascades to the chunks; the upload is gone whatever the outcome.
        const chunks = up.received === up.total ? (this.sql("SELECT bytes FROM upload_chunks WHERE upload_id = ? ORDER BY at_offset").all(uploadId) as { bytes: Buffer }[]) : [];
        this.sql("DELETE FROM uploads WHERE upload_id = ?").run(uploadId);
        if (up.received !== up.total) {
          return { ok: false, reason: "incomplete", message: `upload ${JSON.stringify(uploadId)} holds ${up.received} of its announced ${up.total} bytes; it was discarded, send it again from offset 0` };
        }
        const bytes = Buffer.concat(chunks.map((c) => c.bytes), up.total);
        const got = sha256Hex(bytes);
        if (got !== expectedSha256) {
          return { ok: false, reason: "hash", message: `upload ${JSON.stringify(uploadId)} hashes to ${short(got)}, expected ${short(expectedSha256)}; it was discarded, send it again from offset 0` };
        }
        return { ok: true, bytes };
      })
      .immediate();
  }

  /** The unfinished uploads, so the server can discard abandoned ones. */
  uploads(): UploadInfo[] {
    return (this.sql("SELECT upload_id, received, total, updated_ms FROM uploads ORDER BY upload_id").all() as { upload_id: string; received: number; total: number; updated_ms: number }[]).map(
      (u) => ({ uploadId: u.upload_id, received: u.received, total: u.total, updatedMs: u.updated_ms }),
    );
  }

  /** Drops an unfinished upload; false if there was none. */
  discardUpload(uploadId: string): boolean {
    return this.sql("DELETE FROM uploads WHERE upload_id = ?").run(uploadId).changes > 0;
  }

  // -------------------------------------------------------------------------------------------
  // Clients

  /**
   * Adds a client, or updates its token hash and last-seen time when given (an absent one keeps the
   * stored value). One statement, so a Join costs one commit.
   */
  upsertClient(c: { id: string; tokenHash?: string; lastSeenMs?: number }): void {
    const id = checkId("client id", c.id);
    if (c.tokenHash !== undefined) checkHash("tokenHash", c.tokenHash);
    const seen = c.lastSeenMs === undefined ? null : checkInt("lastSeenMs", c.lastSeenMs);
    this.sql(
      "INSERT INTO clients (id, token_hash, last_seen_ms) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET token_hash = coalesce(excluded.token_hash, token_hash), last_seen_ms = coalesce(excluded.last_seen_ms, last_seen_ms)",
    ).run(id, c.tokenHash ?? null, seen);
  }

  private updateClient(id: string, sql: string, ...params: unknown[]): void {
    checkId("client id", id);
    if (this.sql(sql).run(...params, id).changes === 0) throw argError(`unknown client ${JSON.stringify(id)} (expected one added with upsertClient)`);
  }

  /** Records that the client was seen at `nowMs`. */
  touchClient(id: string, nowMs: number): void {
    this.updateClient(id, "UPDATE clients SET last_seen_ms = ? WHERE id = ?", checkInt("nowMs", nowMs));
  }

  /** Records that the client holds base version `baseVersion`. */
  setClientBase(id: string, baseVersion: number): void {
    this.updateClient(id, "UPDATE clients SET base_version = ? WHERE id = ?", checkInt("baseVersion", baseVersion));
  }

  /** Forgets which base the client holds (it reported it missing). */
  clearClientBase(id: string): void {
    this.updateClient(id, "UPDATE clients SET base_version = NULL WHERE id = ?");
  }

  clients(): ClientInfo[] {
    return (this.sql("SELECT id, token_hash, last_seen_ms, base_version FROM clients ORDER BY id").all() as {
      id: string;
      token_hash: string | null;
      last_seen_ms: number | null;
      base_version: number | null;
    }[]).map((c) => ({ id: c.id, tokenHash: c.token_hash ?? undefined, lastSeenMs: c.last_seen_ms ?? undefined, baseVersion: c.base_version ?? undefined }));
  }

  // -------------------------------------------------------------------------------------------
  // Small values

  setMeta(key: string, value: string): void {
    checkId("meta key", key);
    if (typeof value !== "string") throw argError(`meta value of ${JSON.stringify(key)} must be a string, got ${typeof value}`);
    this.sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(key, value);
  }

  getMeta(key: string): string | undefined {
    return (this.sql("SELECT value FROM meta WHERE key = ?").get(key) as { value: string } | undefined)?.value;
  }
}
