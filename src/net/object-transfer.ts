/**
 * @module net/object-transfer
 * Moving content-addressed objects over PullObject, for every client platform: reading an object
 * chunk by chunk (checking that the server's answers fit together), verifying it against its
 * SHA-256 name, and the names a cache gives objects and runs. Platform-free (util/sha256, no
 * node:*): the Node cache (net/client-cache) and the browser's (web/storage) build on it.
 */
import { ErrorCode, SaflError } from "../errors.js";
import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32 } from "../io/safetensors.js";
import { sha256Hex } from "../util/sha256.js";

export const OBJECT_ID_RE = /^[0-9a-f]{64}$/;

/** One chunk as PullObject returns it. */
export interface PulledChunk {
  readonly data: Uint8Array;
  readonly totalSize: number;
  readonly last: boolean;
}

/** Fetches the chunk starting at `offset` (retries and session handling are the caller's). */
export type PullChunk = (offset: number) => Promise<PulledChunk>;

/**
 * Reads a whole object chunk by chunk from `start`, checking that the server's answers fit
 * together, and hands each chunk to `sink` in order. Returns the object's size.
 */
export async function pullChunks(id: string, size: number, start: number, pull: PullChunk, sink: (chunk: Uint8Array) => Promise<void> | void): Promise<number> {
  let offset = start;
  while (offset < size) {
    const c = await pull(offset);
    if (c.totalSize !== size) throw new SaflError(ErrorCode.Io, `object ${id.slice(0, 12)}…: the server says it has ${c.totalSize} bytes, the task said ${size}`);
    if (c.data.length === 0 && !c.last) throw new SaflError(ErrorCode.Io, `object ${id.slice(0, 12)}…: empty chunk at offset ${offset} of ${size}`);
    if (offset + c.data.length > size) throw new SaflError(ErrorCode.Io, `object ${id.slice(0, 12)}…: a chunk at ${offset} of ${c.data.length} bytes runs past its size ${size}`);
    await sink(c.data);
    offset += c.data.length;
    if (c.last) break;
  }
  if (offset !== size) throw new SaflError(ErrorCode.Io, `object ${id.slice(0, 12)}…: the download ended at ${offset} of ${size} bytes`);
  return offset;
}

/** Downloads an object into memory and verifies its SHA-256. */
export async function pullToMemory(id: string, size: number, pull: PullChunk): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let at = 0;
  await pullChunks(id, size, 0, pull, (c) => {
    out.set(c, at);
    at += c.length;
  });
  const got = sha256Hex(out);
  if (got !== id) throw new SaflError(ErrorCode.Io, `object ${id.slice(0, 12)}…: the downloaded bytes hash to ${got.slice(0, 12)}…`);
  return out;
}

/** Throws unless `id` is an object id (64 lower-case hex digits). */
export function checkId(id: string): string {
  if (!OBJECT_ID_RE.test(id)) throw new SaflError(ErrorCode.Io, `not an object id (64 lower-case hex digits): ${JSON.stringify(id.slice(0, 80))}`);
  return id;
}

/** A directory name for a run id: the id itself when it is a plain name, else a hash of it. */
export function runDirName(runId: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(runId) ? runId : `run-${sha256Hex(new TextEncoder().encode(runId)).slice(0, 32)}`;
}

/** A frozen base as a client caches it: flat float32 tensors (the engine knows the shapes) in safetensors. */
export function encodeBaseFile(version: number, tensors: ReadonlyMap<string, Float32Array>): Uint8Array {
  return serializeSafetensors(new Map([...tensors].map(([n, v]) => [n, fromFloat32(v, [v.length])])), { format: "pt", "safl.base_version": String(version) });
}

/** The tensors of a cached base file; throws on a damaged one (the caller treats it as missing). */
export function decodeBaseFile(bytes: Uint8Array, where: string): Map<string, Float32Array> {
  const file = parseSafetensors(bytes, where);
  const tensors = new Map<string, Float32Array>();
  for (const [name, entry] of file.tensors) tensors.set(name, toFloat32(entry, name));
  return tensors;
}
