/**
 * @module data/files
 * Small filesystem helpers shared by the dataset loaders, so every loader reports a missing or
 * unreadable file the same way: one SaflError(Io) that names the path and says what the file is.
 */

import { readFile, stat } from "node:fs/promises";
import { ErrorCode, SaflError } from "../errors.js";

/** A short human reason for a failed filesystem call (errno codes are unhelpful on their own). */
export function fsReason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "no such file";
    if (code === "EISDIR") return "is a directory";
    if (code === "ENOTDIR") return "a parent is not a directory";
    if (code === "EACCES" || code === "EPERM") return "permission denied";
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}

/**
 * Reads a whole file as bytes.
 *
 * @param what What the file is for, e.g. "CIFAR-10 batch", used in the error message.
 * @throws SaflError(Io) naming `path` when the file cannot be read.
 */
export async function readBytes(path: string, what: string): Promise<Uint8Array> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (cause) {
    throw new SaflError(ErrorCode.Io, `cannot read ${what} ${path}: ${fsReason(cause)}`, { cause });
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** What sits at a path. Errors other than "does not exist" count as missing too: the caller reports them when it tries to read. */
export async function pathKind(path: string): Promise<"file" | "dir" | "missing"> {
  try {
    const s = await stat(path);
    if (s.isDirectory()) return "dir";
    return s.isFile() ? "file" : "missing";
  } catch {
    return "missing";
  }
}

/** Scales bytes 0..255 to floats in [0, 1], the convention every loader here uses for 8-bit pixels. */
export function bytesToUnit(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i]! / 255;
  return out;
}
