/**
 * @module cli/output-dir
 * Output directories that appear whole or not at all: results are written into a hidden sibling
 * directory and renamed into place at the end, so an interrupted run leaves no half-written output.
 * An existing directory is only replaced with --force.
 */
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { ErrorCode, SaflError } from "../errors.js";

export interface PendingOutput {
  /** Where to write now. */
  readonly tmp: string;
  /** Moves the finished output into place. */
  commit(): Promise<void>;
  /** Removes the partial output (on failure). */
  abandon(): Promise<void>;
}

export async function prepareOutput(dir: string, force: boolean): Promise<PendingOutput> {
  const target = resolve(dir);
  const existing = await stat(target).catch(() => undefined);
  if (existing) {
    if (!existing.isDirectory()) throw new SaflError(ErrorCode.InvalidArgument, `--out ${dir} exists and is not a directory`);
    const entries = await readdir(target);
    if (entries.length > 0 && !force) {
      throw new SaflError(ErrorCode.InvalidArgument, `--out ${dir} already exists and is not empty; pass --force to replace it or choose another directory`);
    }
  }
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  return {
    tmp,
    async commit() {
      if (existing) await rm(target, { recursive: true, force: true });
      await rename(tmp, target);
    },
    async abandon() {
      await rm(tmp, { recursive: true, force: true });
    },
  };
}
