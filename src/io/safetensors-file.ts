/**
 * @module io/safetensors-file
 * Node file helpers for safetensors: read a whole file and parse it, or serialize and write it
 * atomically (to a temporary sibling, then rename), so a crash never leaves a half-written file at
 * the target path. The format itself lives in the platform-free `./safetensors.ts`.
 */

import { open, readFile, rename, rm } from "node:fs/promises";
import { ErrorCode, SaflError } from "../errors.js";
import { parseSafetensors, type SafetensorsFile, serializeSafetensors, type TensorCollection } from "./safetensors.js";

function reason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "no such file";
    if (code === "EISDIR") return "is a directory";
    if (code === "EACCES" || code === "EPERM") return "permission denied";
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}

/**
 * Reads and parses a safetensors file. Tensor data are views into the file's bytes.
 *
 * @throws SaflError(Io) naming `path` when the file is missing, unreadable or malformed.
 */
export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  let buf: Uint8Array;
  try {
    buf = await readFile(path);
  } catch (cause) {
    throw new SaflError(ErrorCode.Io, `cannot read safetensors file ${path}: ${reason(cause)}`, { cause });
  }
  return parseSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

/**
 * Serializes tensors (and optional string metadata) and writes them to `path` atomically: the bytes
 * go to `path + ".tmp-<pid>"`, are flushed to disk, and the temporary file is renamed over `path`.
 * On failure the temporary file is removed and `path` is left as it was.
 *
 * @throws SaflError(InvalidArgument) for inconsistent tensors (see `serializeSafetensors`);
 *   SaflError(Io) naming `path` when writing fails.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: TensorCollection,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new SaflError(ErrorCode.Io, `cannot write safetensors file ${path}: ${reason(cause)}`, { cause });
  }
}
