/**
 * @module net/tokens
 * Per-client bearer tokens for `safl server` / `safl client`, and the rate limiter for Join attempts.
 *
 * A token is `safl_<client id>_<43 chars of base64url>` (32 random bytes). The id is part of the
 * token so the server finds the one entry to check by id instead of comparing against every entry,
 * and so logs can name the client of a redacted token. The token file (JSON, written by
 * `safl token create`) keeps per client only the SHA-256 of its token, when it was created and when
 * it was revoked: the file is not a secret worth stealing, and a token that was printed once cannot
 * be recovered from it. Tokens carry 256 random bits, so a plain (unsalted, fast) hash is enough;
 * slow password hashes exist for low-entropy secrets.
 *
 * Writes go to a temporary file in the same directory that is renamed over the old one, so a
 * running server never reads half a file, and a lock file serializes concurrent `safl token`
 * commands so two creates cannot lose one another's entry. The verifier re-reads the file when it
 * changes on disk, which is how `safl token revoke` reaches a running server without a restart.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { argError, ErrorCode, SaflError } from "../errors.js";
import { ID_RE, parseToken, TOKEN_PREFIX } from "./token-format.js";

export { bearerToken, parseToken, redact } from "./token-format.js";

/** What the token file's `format` field says, so a wrong JSON file is named as such. */
export const TOKEN_FILE_FORMAT = "safl-tokens";
/** The token file layout this code reads and writes. */
export const TOKEN_FILE_VERSION = 1;

const SECRET_BYTES = 32;
const HASH_RE = /^[0-9a-f]{64}$/;

/** One client's entry in the token file. */
export interface TokenEntry {
  /** SHA-256 of the whole token string, lower-case hex. */
  readonly sha256: string;
  /** ISO 8601 time the token was created. */
  readonly created: string;
  /** ISO 8601 time the token was revoked; absent while it is active. */
  readonly revoked?: string;
}

/** What `listTokens` returns per client: no hashes, they have no use outside the verifier. */
export interface TokenInfo {
  readonly id: string;
  readonly created: string;
  readonly revoked?: string;
}

export type VerifyResult =
  | { readonly ok: true; readonly clientId: string }
  | {
      readonly ok: false;
      /**
       * malformed: not shaped like a token; unknown: no client has this token (an unknown id, or a
       * wrong secret for a known one: the two are not told apart, so an answer does not reveal which
       * ids exist); revoked: the right token of a client whose token was revoked.
       */
      readonly reason: "malformed" | "unknown" | "revoked";
      /** The id the token names (absent when malformed), for the server's log; it is a claim, not an identity. */
      readonly claimedId?: string;
    };

/** Throws an InvalidArgument error unless `id` is 1-64 chars of [A-Za-z0-9._-]. */
export function checkClientId(id: string): string {
  if (!ID_RE.test(id)) {
    throw argError(`client id must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" or "-", got ${JSON.stringify(id)}`);
  }
  return id;
}

/** SHA-256 of a token as lower-case hex: what the token file stores. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

// ---------------------------------------------------------------------------------------------
// The token file

function ioError(message: string, cause?: unknown): SaflError {
  return new SaflError(ErrorCode.Io, message, cause === undefined ? undefined : { cause });
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isIsoTime(v: unknown): v is string {
  return typeof v === "string" && !Number.isNaN(Date.parse(v));
}

/**
 * Validates a token file's text; every error names the file and what was expected. A Map keeps the
 * entries because ids such as "__proto__" are valid and must not touch a plain object's prototype.
 */
function parseTokenFile(text: string, file: string): Map<string, TokenEntry> {
  const expected = `expected a safl token file (JSON {"format": "${TOKEN_FILE_FORMAT}", "version": ${TOKEN_FILE_VERSION}, "clients": {...}}) as written by safl token create`;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw ioError(`token file ${file} is corrupt: not valid JSON (${reason(e)}); ${expected}`, e);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw ioError(`token file ${file} is corrupt: not a JSON object; ${expected}`);
  const o = json as Record<string, unknown>;
  if (o["format"] !== TOKEN_FILE_FORMAT) {
    throw ioError(`token file ${file} has format ${JSON.stringify(o["format"])}, expected "${TOKEN_FILE_FORMAT}"; ${expected}`);
  }
  if (o["version"] !== TOKEN_FILE_VERSION) {
    throw ioError(`token file ${file} has version ${JSON.stringify(o["version"])}, this safl reads version ${TOKEN_FILE_VERSION} (was it written by a newer safl?)`);
  }
  const clients = o["clients"];
  if (typeof clients !== "object" || clients === null || Array.isArray(clients)) {
    throw ioError(`token file ${file}: "clients" must be an object mapping client ids to entries, got ${JSON.stringify(clients)}`);
  }
  const entries = new Map<string, TokenEntry>();
  for (const [id, raw] of Object.entries(clients)) {
    const where = `token file ${file}: client ${JSON.stringify(id)}`;
    if (!ID_RE.test(id)) throw ioError(`${where}: not a valid client id (1-64 characters of A-Z, a-z, 0-9, ".", "_", "-")`);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw ioError(`${where}: expected an object {sha256, created, revoked?}`);
    const e = raw as Record<string, unknown>;
    const sha256 = e["sha256"];
    if (typeof sha256 !== "string" || !HASH_RE.test(sha256)) throw ioError(`${where}: "sha256" must be 64 lower-case hex digits`);
    if (!isIsoTime(e["created"])) throw ioError(`${where}: "created" must be an ISO 8601 time, got ${JSON.stringify(e["created"])}`);
    if (e["revoked"] !== undefined && !isIsoTime(e["revoked"])) {
      throw ioError(`${where}: "revoked" must be an ISO 8601 time or absent, got ${JSON.stringify(e["revoked"])}`);
    }
    const unknownKeys = Object.keys(e).filter((k) => k !== "sha256" && k !== "created" && k !== "revoked");
    if (unknownKeys.length > 0) throw ioError(`${where}: unknown field${unknownKeys.length > 1 ? "s" : ""} ${unknownKeys.join(", ")}`);
    entries.set(id, { sha256, created: e["created"] as string, ...(e["revoked"] !== undefined ? { revoked: e["revoked"] as string } : {}) });
  }
  return entries;
}

function serializeTokenFile(entries: ReadonlyMap<string, TokenEntry>): string {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Object.fromEntries defines own properties, so an id "__proto__" is written like any other.
  return `${JSON.stringify({ format: TOKEN_FILE_FORMAT, version: TOKEN_FILE_VERSION, clients: Object.fromEntries(sorted) }, null, 2)}\n`;
}

/** Reads and validates the token file; a missing file is an empty one only when `missingOk`. */
async function readTokenFile(file: string, missingOk: boolean): Promise<Map<string, TokenEntry>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      if (missingOk) return new Map();
      throw ioError(`token file ${file} does not exist (create it with safl token create --tokens ${file} --id <client>)`, e);
    }
    throw ioError(`cannot read token file ${file}: ${reason(e)}`, e);
  }
  return parseTokenFile(text, file);
}

/**
 * Writes the file atomically with mode 0600: a temporary file in the same directory (a rename is
 * atomic only within one file system) that is synced and then renamed over the old file. Readers
 * see the old file or the new one, never a partial one, and the new file gets 0600 even if the old
 * one was wider (the hashes are not secrets, but who may be admitted is nobody else's business).
 */
async function writeTokenFile(file: string, entries: ReadonlyMap<string, TokenEntry>): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  try {
    const handle = await open(tmp, "wx", 0o600);
    try {
      // The umask can only narrow the mode; chmod makes it exactly 0600 whatever the umask.
      await handle.chmod(0o600);
      await handle.writeFile(serializeTokenFile(entries), "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw ioError(`cannot write token file ${file}: ${reason(e)}`, e);
  }
  // Persist the rename itself; not every platform can open a directory, and the data is safe anyway.
  try {
    const dir = await open(dirname(file), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // best effort
  }
}

const LOCK_WAIT_MS = 5_000;

/**
 * Runs a read-modify-write of the token file under `<file>.lock` (created exclusively), so two
 * `safl token` commands at once cannot drop one another's change. A lock left by a killed process
 * is not broken automatically: the error says which file to remove.
 */
async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const h = await open(lock, "wx", 0o600);
      // The pid only helps whoever finds a stale lock; failing to write it is no reason to fail.
      await h.writeFile(`${process.pid}\n`).catch(() => undefined);
      await h.close();
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EEXIST") throw ioError(`cannot create lock file ${lock} for token file ${file}: ${reason(e)}`, e);
      if (Date.now() >= deadline) {
        throw ioError(`token file ${file} is locked by ${lock}: another safl token command is writing it, or one was killed; remove ${lock} if none is running`);
      }
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

export interface CreateTokenOptions {
  /** Replace an active token of the same id (the old one stops working at once). */
  readonly rotate?: boolean;
}

/**
 * Creates a token for client `id` and records its hash in `file` (created if missing). Returns the
 * token, which exists nowhere else afterwards: print it once. An id with an active token is refused
 * unless `rotate` is set; an id whose token was revoked gets a new one.
 */
export async function createToken(file: string, id: string, options: CreateTokenOptions = {}): Promise<string> {
  checkClientId(id);
  return withLock(file, async () => {
    const entries = await readTokenFile(file, true);
    const old = entries.get(id);
    if (old && old.revoked === undefined && !options.rotate) {
      throw argError(
        `client ${id} already has an active token in ${file} (created ${old.created}); rotate it (safl token create --rotate) to replace it, or revoke it first`,
      );
    }
    const token = `${TOKEN_PREFIX}${id}_${randomBytes(SECRET_BYTES).toString("base64url")}`;
    entries.set(id, { sha256: tokenHash(token), created: new Date().toISOString() });
    await writeTokenFile(file, entries);
    return token;
  });
}

/** What `revokeToken` did. */
export interface RevokeResult {
  readonly id: string;
  readonly created: string;
  /** When the token was revoked (now, or earlier when it already was). */
  readonly revoked: string;
  /** The token was already revoked; nothing was written. */
  readonly already: boolean;
}

/**
 * Marks client `id`'s token revoked. The entry stays (with its times) so `listTokens` shows the
 * history; revoking twice is not an error, so scripts can repeat it.
 */
export async function revokeToken(file: string, id: string): Promise<RevokeResult> {
  checkClientId(id);
  return withLock(file, async () => {
    const entries = await readTokenFile(file, false);
    const old = entries.get(id);
    if (!old) {
      const ids = [...entries.keys()].sort();
      throw argError(`token file ${file} has no client ${id} (clients: ${ids.length > 0 ? ids.join(", ") : "none"})`);
    }
    if (old.revoked !== undefined) return { id, created: old.created, revoked: old.revoked, already: true };
    const revoked = new Date().toISOString();
    entries.set(id, { ...old, revoked });
    await writeTokenFile(file, entries);
    return { id, created: old.created, revoked, already: false };
  });
}

/** The clients in the token file, sorted by id, without their hashes. */
export async function listTokens(file: string): Promise<TokenInfo[]> {
  const entries = await readTokenFile(file, false);
  return [...entries]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, e]) => ({ id, created: e.created, ...(e.revoked !== undefined ? { revoked: e.revoked } : {}) }));
}

// ---------------------------------------------------------------------------------------------
// Verification

interface LoadedEntry {
  readonly hash: Buffer;
  readonly revoked: boolean;
}

/** What identifies one version of the file: an atomic write is a rename, so the inode changes too. */
function fileKey(s: { mtimeMs: number; ctimeMs: number; ino: number; size: number }): string {
  return `${s.mtimeMs}:${s.ctimeMs}:${s.ino}:${s.size}`;
}

export interface TokenVerifierOptions {
  /** Called when a changed file cannot be used (the previous entries stay in force). */
  readonly onReloadError?: (error: SaflError) => void;
}

/**
 * Checks presented tokens against the token file. Each `verify` stats the file (microseconds) and
 * re-reads it when it changed, so a revoke or a new client takes effect on the next request.
 *
 * If a changed file cannot be parsed (say, a hand edit in progress) the previous entries stay in
 * force and `onReloadError` is told: failing closed there would lock every client out over a
 * typo. A deleted file, by contrast, is a deliberate act, and admits nobody until it is back.
 */
export class TokenVerifier {
  readonly file: string;
  private entries: Map<string, LoadedEntry>;
  private key: string;
  private readonly dummy = randomBytes(32);
  private readonly onReloadError: ((error: SaflError) => void) | undefined;
  private lastErrorValue: SaflError | undefined;

  private constructor(file: string, entries: Map<string, LoadedEntry>, key: string, options: TokenVerifierOptions) {
    this.file = file;
    this.entries = entries;
    this.key = key;
    this.onReloadError = options.onReloadError;
  }

  /** Loads the token file; a missing or invalid file is an error here (the server should not start). */
  static load(file: string, options: TokenVerifierOptions = {}): TokenVerifier {
    const { entries, key } = TokenVerifier.read(file);
    return new TokenVerifier(file, entries, key, options);
  }

  private static read(file: string): { entries: Map<string, LoadedEntry>; key: string } {
    let text: string;
    let key: string;
    try {
      key = fileKey(statSync(file));
      text = readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        throw ioError(`token file ${file} does not exist (create it with safl token create --tokens ${file} --id <client>)`, e);
      }
      throw ioError(`cannot read token file ${file}: ${reason(e)}`, e);
    }
    const entries = new Map<string, LoadedEntry>();
    for (const [id, e] of parseTokenFile(text, file)) entries.set(id, { hash: Buffer.from(e.sha256, "hex"), revoked: e.revoked !== undefined });
    return { entries, key };
  }

  /** The error of the last failed re-read, until a re-read succeeds. */
  get lastError(): SaflError | undefined {
    return this.lastErrorValue;
  }

  /** Re-reads the file if it changed since the last read (verify calls this itself). */
  refresh(): void {
    let key: string;
    try {
      key = fileKey(statSync(this.file));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        this.entries = new Map();
        this.reloadFailed(ioError(`token file ${this.file} was removed: no token is accepted until it is back`, e), "missing");
      } else this.reloadFailed(ioError(`cannot stat token file ${this.file}: ${reason(e)}`, e), "unreadable");
      return;
    }
    if (key === this.key) return;
    try {
      const next = TokenVerifier.read(this.file);
      this.entries = next.entries;
      this.key = next.key;
      this.lastErrorValue = undefined;
    } catch (e) {
      // Remember the bad version so it is not re-parsed on every request.
      this.reloadFailed(SaflError.from(e, ErrorCode.Io), key);
    }
  }

  /** Records a failed re-read; reported once per bad version of the file, not on every request. */
  private reloadFailed(error: SaflError, key: string): void {
    if (key === this.key) return;
    this.key = key;
    this.lastErrorValue = error;
    this.onReloadError?.(error);
  }

  /**
   * Checks a presented token. The SHA-256 of the presented token is compared with the stored hash in
   * constant time (timingSafeEqual), and an unknown id is compared against a random dummy hash the
   * same way, so neither the answer nor its timing tells which ids exist.
   */
  verify(presented: string): VerifyResult {
    this.refresh();
    const parsed = parseToken(presented);
    if (!parsed) return { ok: false, reason: "malformed" };
    const entry = this.entries.get(parsed.id);
    const digest = createHash("sha256").update(presented, "utf8").digest();
    const match = timingSafeEqual(digest, entry ? entry.hash : this.dummy);
    if (!entry || !match) return { ok: false, reason: "unknown", claimedId: parsed.id };
    if (entry.revoked) return { ok: false, reason: "revoked", claimedId: parsed.id };
    return { ok: true, clientId: parsed.id };
  }
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

export interface RateLimiterOptions {
  /** Attempts allowed in a burst (the bucket's size). */
  readonly capacity: number;
  /** Attempts regained per second. */
  readonly refillPerSecond: number;
  /**
   * Keys remembered at most (default 10 000). Keys are remote addresses, which a client chooses, so
   * the table must not grow without bound: full buckets are dropped first (they equal a new key),
   * then the least recently created.
   */
  readonly maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per key: each attempt takes one token, a key regains `refillPerSecond` up to
 * `capacity`, and an attempt with no token left is refused. The server keys it by remote address
 * to slow down guessing at Join. Time is passed in so tests (and callers) control the clock.
 */
export class RateLimiter {
  readonly capacity: number;
  readonly refillPerSecond: number;
  readonly maxKeys: number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    const { capacity, refillPerSecond, maxKeys = 10_000 } = options;
    if (!Number.isFinite(capacity) || capacity < 1) throw argError(`rate limiter capacity must be a number >= 1, got ${capacity}`);
    if (!Number.isFinite(refillPerSecond) || refillPerSecond <= 0) throw argError(`rate limiter refill must be a positive number per second, got ${refillPerSecond}`);
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw argError(`rate limiter maxKeys must be a positive integer, got ${maxKeys}`);
    this.capacity = capacity;
    this.refillPerSecond = refillPerSecond;
    this.maxKeys = maxKeys;
  }

  /** The key's bucket brought up to `nowMs` (a clock that goes back refills nothing). */
  private level(b: Bucket, nowMs: number): number {
    return Math.min(this.capacity, b.tokens + (Math.max(0, nowMs - b.at) / 1000) * this.refillPerSecond);
  }

  /** Takes one attempt for `key`; false when its bucket is empty (refuse the attempt). */
  take(key: string, nowMs: number = Date.now()): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      this.makeRoom(nowMs);
      b = { tokens: this.capacity, at: nowMs };
      this.buckets.set(key, b);
    } else {
      b.tokens = this.level(b, nowMs);
      b.at = Math.max(b.at, nowMs);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Milliseconds until `key` may try again (0 when it may now), e.g. for a Retry-After header. */
  retryAfterMs(key: string, nowMs: number = Date.now()): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const level = this.level(b, nowMs);
    return level >= 1 ? 0 : Math.ceil(((1 - level) / this.refillPerSecond) * 1000);
  }

  /** Keys currently remembered. */
  get size(): number {
    return this.buckets.size;
  }

  private makeRoom(nowMs: number): void {
    if (this.buckets.size < this.maxKeys) return;
    for (const [k, b] of this.buckets) if (this.level(b, nowMs) >= this.capacity) this.buckets.delete(k);
    // Still full of throttled keys: forget the oldest (Map keeps insertion order).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < this.maxKeys) break;
      this.buckets.delete(k);
    }
  }
}
