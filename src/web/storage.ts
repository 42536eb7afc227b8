/**
 * @module web/storage
 * The browser client's cache: content-addressed objects (the backbone), frozen bases per run and
 * small records, kept in the Origin Private File System (OPFS) where the browser has it, else in
 * IndexedDB, else (private windows that refuse both) in memory for the life of the page. With either
 * persistent store a reload does not download the backbone again, and a page reopened mid-run
 * still holds the bases it stored.
 *
 * Every file is written whole (OPFS: `createWritable`, which swaps the file in on close; IndexedDB:
 * one put per file), so a tab closed mid-write leaves the previous file or none, never a torn one;
 * objects are verified against their SHA-256 when read, so a damaged one is dropped and fetched
 * again. Downloads are kept in memory until complete (a browser's download is one page's life; the
 * backbone is a few MB), so `partialBytes` is always 0.
 */
import type { ClientBaseStore, ClientObjectStore } from "../net/client-core.js";
import { checkId, decodeBaseFile, encodeBaseFile, type PullChunk, pullToMemory, runDirName } from "../net/object-transfer.js";
import { sha256Hex } from "../util/sha256.js";

/** Named byte files under one root. */
export interface FileStore {
  /** "opfs", "indexeddb" or "memory". */
  readonly kind: string;
  get(name: string): Promise<Uint8Array | undefined>;
  put(name: string, bytes: Uint8Array): Promise<void>;
  delete(name: string): Promise<void>;
  /** Names that start with `prefix`. */
  list(prefix: string): Promise<string[]>;
}

// The few DOM APIs used here, typed locally: the library's own code is compiled without the DOM types.
interface FileHandleLike {
  getFile(): Promise<{ arrayBuffer(): Promise<ArrayBuffer> }>;
  createWritable(): Promise<{ write(data: Uint8Array): Promise<void>; close(): Promise<void> }>;
}
interface DirHandleLike {
  getDirectoryHandle(name: string, o?: { create?: boolean }): Promise<DirHandleLike>;
  getFileHandle(name: string, o?: { create?: boolean }): Promise<FileHandleLike>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}
interface BrowserGlobals {
  navigator?: { storage?: { getDirectory?: () => Promise<DirHandleLike>; persist?: () => Promise<boolean> } };
  indexedDB?: IdbFactoryLike;
}
interface IdbRequestLike<T> {
  result: T;
  error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface IdbStoreLike {
  get(key: string): IdbRequestLike<unknown>;
  put(value: unknown, key: string): IdbRequestLike<unknown>;
  delete(key: string): IdbRequestLike<unknown>;
  getAllKeys(): IdbRequestLike<unknown[]>;
}
interface IdbDatabaseLike {
  transaction(store: string, mode: "readonly" | "readwrite"): { objectStore(name: string): IdbStoreLike; oncomplete: (() => void) | null; onerror: (() => void) | null };
  createObjectStore(name: string): void;
  objectStoreNames: { contains(name: string): boolean };
}
interface IdbFactoryLike {
  open(name: string, version: number): IdbRequestLike<IdbDatabaseLike> & { onupgradeneeded: (() => void) | null };
}

/** OPFS files; names with "/" are nested directories. */
class OpfsStore implements FileStore {
  readonly kind = "opfs";
  constructor(private readonly root: DirHandleLike) {}

  private async dirOf(name: string, create: boolean): Promise<{ dir: DirHandleLike; leaf: string }> {
    const parts = name.split("/");
    let dir = this.root;
    for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p, { create });
    return { dir, leaf: parts.at(-1)! };
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    try {
      const { dir, leaf } = await this.dirOf(name, false);
      const file = await (await dir.getFileHandle(leaf)).getFile();
      return new Uint8Array(await file.arrayBuffer());
    } catch {
      return undefined;
    }
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    const { dir, leaf } = await this.dirOf(name, true);
    const w = await (await dir.getFileHandle(leaf, { create: true })).createWritable();
    await w.write(bytes);
    await w.close();
  }

  async delete(name: string): Promise<void> {
    try {
      const { dir, leaf } = await this.dirOf(name, false);
      await dir.removeEntry(leaf);
    } catch {
      // Already gone.
    }
  }

  async list(prefix: string): Promise<string[]> {
    const slash = prefix.lastIndexOf("/");
    const dirName = slash >= 0 ? prefix.slice(0, slash) : "";
    const start = slash >= 0 ? prefix.slice(slash + 1) : prefix;
    let dir = this.root;
    try {
      for (const p of dirName === "" ? [] : dirName.split("/")) dir = await dir.getDirectoryHandle(p);
    } catch {
      return [];
    }
    const out: string[] = [];
    for await (const k of dir.keys()) if (k.startsWith(start)) out.push(dirName === "" ? k : `${dirName}/${k}`);
    return out.sort();
  }
}

const STORE = "files";

function request<T>(r: IdbRequestLike<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** IndexedDB: one object store of byte arrays keyed by name. */
class IndexedDbStore implements FileStore {
  readonly kind = "indexeddb";
  constructor(private readonly db: IdbDatabaseLike) {}

  static async open(factory: IdbFactoryLike, name: string): Promise<IndexedDbStore> {
    const r = factory.open(name, 1);
    r.onupgradeneeded = () => {
      if (!r.result.objectStoreNames.contains(STORE)) r.result.createObjectStore(STORE);
    };
    return new IndexedDbStore(await request(r));
  }

  private store(mode: "readonly" | "readwrite"): IdbStoreLike {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    const v = await request(this.store("readonly").get(name));
    return v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v) : undefined;
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    await request(this.store("readwrite").put(bytes, name));
  }

  async delete(name: string): Promise<void> {
    await request(this.store("readwrite").delete(name));
  }

  async list(prefix: string): Promise<string[]> {
    const keys = await request(this.store("readonly").getAllKeys());
    return keys.filter((k): k is string => typeof k === "string" && k.startsWith(prefix)).sort();
  }
}

/** Files in memory (no persistent storage offered). */
export class MemoryStore implements FileStore {
  readonly kind = "memory";
  private readonly files = new Map<string, Uint8Array>();
  async get(name: string): Promise<Uint8Array | undefined> {
    return this.files.get(name);
  }
  async put(name: string, bytes: Uint8Array): Promise<void> {
    this.files.set(name, bytes.slice());
  }
  async delete(name: string): Promise<void> {
    this.files.delete(name);
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.files.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

/**
 * The best store this browser offers under `root` (a directory name in OPFS, a database name in
 * IndexedDB): OPFS, else IndexedDB, else memory. `prefer` forces one (tests use "indexeddb").
 */
export async function openFileStore(root = "sa-fedlora", prefer?: "opfs" | "indexeddb" | "memory"): Promise<FileStore> {
  const g = globalThis as unknown as BrowserGlobals;
  if (prefer === "memory") return new MemoryStore();
  if (prefer !== "indexeddb" && g.navigator?.storage?.getDirectory) {
    try {
      const top = await g.navigator.storage.getDirectory();
      // Ask the browser not to evict the cache under storage pressure (it may say no; that is fine).
      void g.navigator.storage.persist?.().catch(() => false);
      return new OpfsStore(await top.getDirectoryHandle(root, { create: true }));
    } catch {
      // OPFS refused (some private modes): fall through.
    }
  }
  if (prefer !== "opfs" && g.indexedDB) {
    try {
      return await IndexedDbStore.open(g.indexedDB, root);
    } catch {
      // IndexedDB refused: fall through.
    }
  }
  return new MemoryStore();
}

/** Content-addressed objects as files `objects/<sha256>`. */
export class BrowserObjectStore implements ClientObjectStore {
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  constructor(private readonly files: FileStore) {}

  describe(id: string): string {
    return `${this.files.kind}:objects/${id}`;
  }

  async read(id: string): Promise<Uint8Array | undefined> {
    const bytes = await this.files.get(`objects/${checkId(id)}`);
    if (!bytes) return undefined;
    if (sha256Hex(bytes) !== id) {
      await this.files.delete(`objects/${id}`);
      return undefined;
    }
    return bytes;
  }

  async held(limit = 200): Promise<string[]> {
    const names = await this.files.list("objects/");
    return names
      .map((n) => n.slice("objects/".length))
      .filter((n) => /^[0-9a-f]{64}$/.test(n))
      .slice(0, limit);
  }

  async partialBytes(): Promise<number> {
    return 0;
  }

  fetch(id: string, size: number, pull: PullChunk): Promise<Uint8Array> {
    checkId(id);
    let p = this.inflight.get(id);
    if (!p) {
      p = (async () => {
        const have = await this.read(id);
        if (have) return have;
        const bytes = await pullToMemory(id, size, pull);
        await this.files.put(`objects/${id}`, bytes);
        return bytes;
      })().finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    return p;
  }
}

/**
 * Frozen bases of one run as files `runs/<run>/<backbone>-base-<version>.safetensors`, all read
 * into memory when the store opens (`ClientStorage.base` is synchronous and browsers read files
 * asynchronously); stored bases are written in the background until `flush()`.
 */
export class BrowserBaseStore implements ClientBaseStore {
  private readonly memory = new Map<number, ReadonlyMap<string, Float32Array>>();
  private pending: Promise<void> = Promise.resolve();

  private constructor(
    private readonly files: FileStore,
    private readonly prefix: string,
    private readonly pretrained: ReadonlyMap<string, Float32Array>,
    private readonly warn: (message: string) => void,
  ) {}

  static async open(files: FileStore, runId: string, backboneSha256: string, pretrained: ReadonlyMap<string, Float32Array>, warn: (message: string) => void): Promise<BrowserBaseStore> {
    const prefix = `runs/${runDirName(runId)}/${backboneSha256.slice(0, 16)}-base-`;
    const store = new BrowserBaseStore(files, prefix, pretrained, warn);
    for (const name of await files.list(prefix)) {
      const version = Number(name.slice(prefix.length).replace(/\.safetensors$/, ""));
      if (!Number.isInteger(version) || version <= 0) continue;
      const bytes = await files.get(name);
      if (!bytes) continue;
      try {
        store.memory.set(version, decodeBaseFile(bytes, name));
      } catch (e) {
        // A damaged file is a missing base: the engine reports it and the server sends it again.
        warn(`ignoring the damaged base file ${files.kind}:${name}: ${(e as Error).message}`);
      }
    }
    return store;
  }

  /** Versions held besides the backbone (a reopened page reports them in its log). */
  versions(): number[] {
    return [...this.memory.keys()].sort((a, b) => a - b);
  }

  base(version: number): ReadonlyMap<string, Float32Array> | undefined {
    return version === 0 ? this.pretrained : this.memory.get(version);
  }

  storeBase(version: number, tensors: ReadonlyMap<string, Float32Array>): void {
    if (version === 0) return;
    const copy = new Map(tensors);
    this.memory.set(version, copy);
    const write = async () => {
      const bytes = encodeBaseFile(version, copy);
      await this.files.put(`${this.prefix}${version}.safetensors`, bytes);
    };
    this.pending = this.pending.then(write).catch((e: unknown) => this.warn(`cannot save base ${version} (${this.files.kind}): ${(e as Error).message}`));
  }

  flush(): Promise<void> {
    return this.pending;
  }
}
