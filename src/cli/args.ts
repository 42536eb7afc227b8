/**
 * @module cli/args
 * Flag parsing for the subcommands on top of node:util's parseArgs, with one clear message per bad
 * value (naming the flag, the value and what was expected).
 */
import { parseArgs } from "node:util";
import { argError } from "../errors.js";

export type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string; default?: string | boolean }>;

export function parseFlags(argv: string[], spec: FlagSpec, command: string): Record<string, string | boolean | undefined> {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: spec as never, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw argError(`${command}: unexpected argument "${positionals[0]}"`);
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) throw argError(`${command}: ${(e as Error).message} (see safl ${command} --help)`);
    throw e;
  }
}

export function intFlag(value: string | boolean | undefined, flag: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== "string" || !Number.isInteger(n) || n < min || n > max) {
    throw argError(`--${flag} must be an integer between ${min} and ${max}, got "${String(value)}"`);
  }
  return n;
}

export function choiceFlag<T extends string>(value: string | boolean | undefined, flag: string, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !choices.includes(value as T)) {
    throw argError(`--${flag} must be one of ${choices.join(", ")}, got "${String(value)}"`);
  }
  return value as T;
}

export function requiredString(value: string | boolean | undefined, flag: string, command: string): string {
  if (typeof value !== "string" || value.length === 0) throw argError(`${command}: --${flag} is required`);
  return value;
}

export function numberFlag(value: string | boolean | undefined, flag: string, fallback: number, min = 0, max = Number.POSITIVE_INFINITY): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw argError(`--${flag} must be a number between ${min} and ${max}, got "${String(value)}"`);
  }
  return n;
}

export function optionalString(value: string | boolean | undefined): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}
