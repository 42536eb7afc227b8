/**
 * @module validate
 * Runs a zod schema and turns every issue into one line naming the field path, the problem and the
 * value that was given, so a config file with three mistakes is fixed in one go.
 */
import type { z } from "zod";
import { ErrorCode, SaflError } from "./errors.js";

/** The value at `path` inside `raw`, or undefined. */
function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Parses `raw` or throws one InvalidArgument error listing every problem as "path: message (got value)". */
export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const res = schema.safeParse(raw);
  if (res.success) return res.data;
  const lines = res.error.issues.map((i) => {
    const path = i.path.map(String).join(".") || "(root)";
    const keys = i.code === "unrecognized_keys" ? ` ${(i as { keys: string[] }).keys.map((k) => `"${k}"`).join(", ")}` : "";
    const got = i.code === "unrecognized_keys" || i.path.length === 0 ? "" : ` (got ${show(valueAt(raw, i.path))})`;
    return `  - ${path}: ${i.message}${keys}${got}`;
  });
  throw new SaflError(ErrorCode.InvalidArgument, `${what} is not valid:\n${lines.join("\n")}`);
}
