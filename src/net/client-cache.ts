/**
 * @module net/client-cache
 * The network client's disk cache (the platform part of net/client): content-addressed objects
 * under `<cache>/objects/<sha256>` and the frozen bases of each run under
 * `<cache>/runs/<run id>/base-<version>.safetensors`.
 *
 * Objects are downloaded into `<sha256>.partial` by appending chunks, so a download cut by a crash
 * or a lost connection resumes from the partial file's length on the next try (or the next start);
 * the whole file is verified against its SHA-256 before it is renamed into place, so a file under
 * its final name is always complete and correct. A lock file next to the partial keeps two client
 * processes sharing one cache from appending to the same partial file; within one process one
 * promise per object does. Bases are written to a temporary sibling and renamed, so a client killed
 * mid-write keeps the previous state rather than a torn file: a client restarted mid-run still
 * holds base 1, and a client whose cache was wiped reports the base missing (the server resends it).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { ErrorCode, SaflError } from "../errors.js";
import type { ClientStorage } from "../fl/client.js";
import { sha256Hex } from "./backbone.js";
import { checkId, decodeBaseFile, encodeBaseFile, OBJECT_ID_RE, type PullChunk, pullChunks } from "./object-transfer.js";

export { type PullChunk, type PulledChunk, pullChunks, pullToMemory, runDirName } from "./object-transfer.js";

const ID_RE = OBJECT_ID_RE;

/** `$XDG_CACHE_HOME/safl`, else `~/.cache/safl`. */
export function defaultCacheDir(): string {
  const xdg = process.env["XDG_CACHE_HOME"];
  return join(xdg !== undefined && xdg !== "" ? xdg : join(homedir(), ".cache"), "safl");
}

const pidAlive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The content-addressed object store `<cache>/objects`. */
export class ObjectCache {
  private readonly inflight = new Map<string, Promise<Uint8Array>>();

  constructor(readonly dir: string) {}

  path(id: string): string {
    return join(this.dir, checkId(id));
  }

  /** Where the object is kept, for messages. */
  describe(id: string): string {
    return this.path(id);
  }

  /** The object's bytes when the cache holds it and they hash to its id (a corrupt file is removed). */
  async read(id: string): Promise<Uint8Array | undefined> {
    let buf: Buffer;
    try {
      buf = await readFile(this.path(id));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new SaflError(ErrorCode.Io, `cannot read cached object ${this.path(id)}: ${(e as Error).message}`, { cause: e });
    }
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    if (sha256Hex(bytes) !== id) {
      await rm(this.path(id), { force: true });
      return undefined;
    }
    return bytes;
  }

  /** Ids of the complete objects held (at most `limit`, for Join.held_objects). */
  async held(limit = 200): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    return names.filter((n) => ID_RE.test(n)).sort().slice(0, limit);
  }

  /** Bytes of the partial download of an object (0 when there is none). */
  async partialBytes(id: string): Promise<number> {
    try {
      return (await stat(`${this.path(id)}.partial`)).size;
    } catch {
      return 0;
    }
  }

  /**
   * The object from the cache, or downloaded (resuming a partial download), verified and stored.
   * A partial file that does not verify is discarded, so the next call downloads from the start.
   */
  fetch(id: string, size: number, pull: PullChunk, onResume?: (offset: number) => void): Promise<Uint8Array> {
    checkId(id);
    let p = this.inflight.get(id);
    if (!p) {
      p = this.fetchLocked(id, size, pull, onResume).finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    return p;
  }

  private async fetchLocked(id: string, size: number, pull: PullChunk, onResume?: (offset: number) => void): Promise<Uint8Array> {
    await mkdir(this.dir, { recursive: true });
    for (;;) {
      const have = await this.read(id);
      if (have) return have;
      const release = await this.lock(id);
      if (!release) {
        // Another process is downloading it: wait for the object (or a stale lock).
        await sleep(250);
        continue;
      }
      try {
        const again = await this.read(id);
        if (again) return again;
        return await this.download(id, size, pull, onResume);
      } finally {
        await release();
      }
    }
  }

  /** Takes `<id>.lock`; undefined while a live process holds it (a dead holder's lock is broken). */
  private async lock(id: string): Promise<(() => Promise<void>) | undefined> {
    const file = `${this.path(id)}.lock`;
    for (let tries = 0; tries < 3; tries++) {
      try {
        const h = await open(file, "wx");
        try {
          await h.writeFile(String(process.pid));
        } finally {
          await h.close();
        }
        return () => rm(file, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new SaflError(ErrorCode.Io, `cannot create ${file}: ${(e as Error).message}`, { cause: e });
      }
      let holder = Number.NaN;
      try {
        holder = Number((await readFile(file, "utf8")).trim());
      } catch {
        continue; // removed meanwhile
      }
      // Our own pid can only be a leftover of an earlier process that had it (in-process callers share one promise).
      if (holder !== process.pid && pidAlive(holder)) return undefined;
      await rm(file, { force: true });
    }
    return undefined;
  }

  private async download(id: string, size: number, pull: PullChunk, onResume?: (offset: number) => void): Promise<Uint8Array> {
    const partial = `${this.path(id)}.partial`;
    let start = await this.partialBytes(id);
    if (start > size) {
      await truncate(partial, 0);
      start = 0;
    }
    if (start > 0) onResume?.(start);
    const h = await open(partial, "a");
    try {
      await pullChunks(id, size, start, pull, async (c) => {
        await h.write(c);
      });
      await h.sync();
    } finally {
      await h.close();
    }
    const buf = await readFile(partial);
    const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    const got = sha256Hex(bytes);
    if (got !== id) {
      await rm(partial, { force: true });
      throw new SaflError(ErrorCode.Io, `object ${id.slice(0, 12)}…: the downloaded ${bytes.length} bytes hash to ${got.slice(0, 12)}…; the partial download was discarded`);
    }
    await rename(partial, this.path(id));
    return bytes;
  }
}

/**
 * Frozen bases of one run: version 0 is the backbone (given), later versions are kept in memory and
 * persisted as `base-<version>.safetensors` (flat float32 tensors; the engine knows the shapes).
 * `ClientStorage` is synchronous, so a stored base is written in the background; `flush()` waits for
 * the writes, and the client calls it before it uploads the reply that followed the store. A base
 * that cannot be written stays in memory (the failure is reported through `onError`).
 */
export class DiskBaseStore implements ClientStorage {
  private readonly memory = new Map<number, ReadonlyMap<string, Float32Array>>();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    readonly dir: string,
    private readonly pretrained: ReadonlyMap<string, Float32Array>,
    private readonly onError: (message: string) => void = () => undefined,
  ) {}

  file(version: number): string {
    return join(this.dir, `base-${version}.safetensors`);
  }

  base(version: number): ReadonlyMap<string, Float32Array> | undefined {
    if (version === 0) return this.pretrained;
    const m = this.memory.get(version);
    if (m) return m;
    let buf: Buffer;
    try {
      buf = readFileSync(this.file(version));
    } catch {
      return undefined;
    }
    try {
      const tensors = decodeBaseFile(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), this.file(version));
      this.memory.set(version, tensors);
      return tensors;
    } catch (e) {
      // A damaged file is a missing base: the engine reports it and the server sends it again.
      this.onError(`ignoring the damaged base file ${this.file(version)}: ${(e as Error).message}`);
      return undefined;
    }
  }

  storeBase(version: number, tensors: ReadonlyMap<string, Float32Array>): void {
    if (version === 0) return;
    const copy = new Map(tensors);
    this.memory.set(version, copy);
    const write = async () => {
      const bytes = encodeBaseFile(version, copy);
      await mkdir(this.dir, { recursive: true });
      const target = this.file(version);
      const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
      try {
        await writeFile(tmp, bytes);
        await rename(tmp, target);
      } catch (e) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw e;
      }
    };
    this.pending = this.pending.then(write).catch((e: unknown) => this.onError(`cannot save base ${version} to ${this.dir}: ${(e as Error).message}`));
  }

  /** Waits for the bases stored so far to be on disk. */
  flush(): Promise<void> {
    return this.pending;
  }
}
