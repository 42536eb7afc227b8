/**
 * @module cli/args
 * Flag specs and parsing for the subcommands, on top of node:util's parseArgs. A command declares
 * each flag once (type, short name, default, value name, one-line description, and the choices or
 * range it accepts); the parseArgs options, the validated and defaulted values and the option lines
 * of the help text are all derived from that one declaration, so help cannot drift from parsing.
 * Every bad value gets one clear message naming the flag, the value and what was expected.
 */
import { parseArgs } from "node:util";
import { argError } from "../errors.js";

interface FlagBase {
  /** One-letter alias, e.g. "h" for -h. */
  readonly short?: string;
  /** What the value is called in the help, e.g. "<dir>"; choice flags default to "a|b|c". */
  readonly value?: string;
  /** One line saying what the flag means (wrapped when the help is printed). */
  readonly description: string;
  /** The default as the help should show it when the command computes it (it depends on other flags). */
  readonly defaultText?: string;
}

export interface BooleanFlag extends FlagBase {
  readonly type: "boolean";
}

export interface StringFlag extends FlagBase {
  readonly type: "string";
  readonly default?: string;
  readonly required?: boolean;
  /** Repeatable: the value is every occurrence, in order. */
  readonly multiple?: boolean;
}

export interface ChoiceFlag extends FlagBase {
  readonly type: "choice";
  readonly choices: readonly string[];
  readonly default?: string;
}

export interface NumericFlag extends FlagBase {
  /** "int" accepts integers only. */
  readonly type: "int" | "number";
  readonly default?: number;
  /** Inclusive bounds; 0 and the largest safe integer (int) or +Infinity (number) when absent. */
  readonly min?: number;
  readonly max?: number;
}

export type FlagDef = BooleanFlag | StringFlag | ChoiceFlag | NumericFlag;
export type FlagSpec = Readonly<Record<string, FlagDef>>;

/** What a flag's value is once parsed: flags with a default (or required ones) are never undefined. */
type Defaulted<D, T> = D extends { readonly default: unknown } | { readonly required: true } ? T : T | undefined;
export type FlagValue<D extends FlagDef> = D extends BooleanFlag
  ? boolean
  : D extends { readonly multiple: true }
    ? string[]
    : D extends NumericFlag
      ? Defaulted<D, number>
      : D extends { readonly choices: readonly (infer C extends string)[] }
        ? Defaulted<D, C>
        : Defaulted<D, string>;
export type FlagValues<S extends FlagSpec> = { readonly [K in keyof S]: FlagValue<S[K]> };

/** The flags exactly as typed (no defaults; the last one of a repeated flag), for cross-flag rules. */
export type GivenFlags = Readonly<Record<string, string | boolean | undefined>>;

/** Declares one flag, keeping its literal type so the parsed value gets the right type. */
export function flag<const D extends FlagDef>(def: D): D {
  return def;
}

/** Declares a command's flags (same reason as `flag`). */
export function defineFlags<const S extends FlagSpec>(spec: S): S {
  return spec;
}

/** A shared flag with this command's default. */
export function withDefault<D extends NumericFlag, V extends number>(def: D, value: V): D & { readonly default: V };
export function withDefault<D extends StringFlag | ChoiceFlag, V extends string>(def: D, value: V): D & { readonly default: V };
export function withDefault(def: FlagDef, value: string | number): FlagDef {
  return { ...def, default: value } as FlagDef;
}

/** Every command takes -h/--help; the dispatcher answers it before the flags are validated. */
export const HELP_FLAG = flag({ type: "boolean", short: "h", description: "show this help" });

/**
 * Reads argv against the spec (plus --help): unknown options, missing option values and stray
 * positionals are errors. Returns the raw values (repeatable flags as arrays) without defaults.
 */
export function readFlags(argv: readonly string[], spec: FlagSpec, command: string): Record<string, string | boolean | string[] | undefined> {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = { help: { type: "boolean", short: HELP_FLAG.short } };
  for (const [name, def] of Object.entries(spec)) {
    options[name] = {
      type: def.type === "boolean" ? "boolean" : "string",
      ...(def.short ? { short: def.short } : {}),
      ...(def.type === "string" && def.multiple ? { multiple: true } : {}),
    };
  }
  // parseArgs words a missing value as an "ambiguous argument" over three lines; say it in one.
  for (let i = 0; i < argv.length && argv[i] !== "--"; i++) {
    const def = argv[i]!.startsWith("--") ? spec[argv[i]!.slice(2)] : undefined;
    const next = argv[i + 1];
    if (!def || def.type === "boolean" || (next !== undefined && !next.startsWith("-"))) continue;
    if (next !== undefined && /^-[\d.]/.test(next)) throw argError(`${command}: write ${argv[i]}=${next} to give a value that starts with "-"`);
    throw argError(`${command}: ${argv[i]} needs a value${def.value ? ` ${def.value}` : ""} (see safl ${command} --help)`);
  }
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw argError(unknownOptionMessage(argv, options, command));
    if (code?.startsWith("ERR_PARSE_ARGS")) throw argError(`${command}: ${(e as Error).message} (see safl ${command} --help)`);
    throw e;
  }
  if (parsed.positionals.length > 0) throw argError(`${command}: unexpected argument "${parsed.positionals[0]}" (see safl ${command} --help)`);
  return parsed.values as Record<string, string | boolean | string[] | undefined>;
}

/** The raw values with repeated flags reduced to their last occurrence (what parseArgs did before). */
export function givenFlags(raw: Record<string, string | boolean | string[] | undefined>): GivenFlags {
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Array.isArray(v) ? v[v.length - 1] : v]));
}

/**
 * Validates the raw values against the spec in declaration order and fills in the defaults.
 * Empty strings count as absent, as they always have (`--out ""` is no output directory).
 */
export function resolveFlags<S extends FlagSpec>(raw: Record<string, string | boolean | string[] | undefined>, spec: S, command: string): FlagValues<S> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(spec)) {
    const v = raw[name];
    switch (def.type) {
      case "boolean":
        out[name] = v === true;
        break;
      case "string":
        if (def.multiple) out[name] = Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
        else {
          const s = optionalString(v as string | boolean | undefined) ?? def.default;
          if (s === undefined && def.required) throw argError(`${command}: --${name} is required`);
          out[name] = s;
        }
        break;
      case "choice":
        out[name] = v === undefined ? def.default : choiceFlag(v as string, name, def.choices, def.choices[0]!);
        break;
      case "int":
        out[name] = v === undefined ? def.default : intFlag(v as string, name, 0, def.min ?? 0, def.max ?? Number.MAX_SAFE_INTEGER);
        break;
      case "number":
        out[name] = v === undefined ? def.default : numberFlag(v as string, name, 0, def.min ?? 0, def.max ?? Number.POSITIVE_INFINITY);
        break;
    }
  }
  return out as FlagValues<S>;
}

/** readFlags then resolveFlags, for callers that do not need the raw values. */
export function parseFlags<S extends FlagSpec>(argv: readonly string[], spec: S, command: string): FlagValues<S> {
  return resolveFlags(readFlags(argv, spec, command), spec, command);
}

/** "unknown option --bogus" plus the closest real flag when one is near (a typo is the usual cause). */
function unknownOptionMessage(argv: readonly string[], options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>, command: string): string {
  // Re-read leniently to learn which token parseArgs rejected, rather than parsing its English message.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const bad = tokens.find((t) => t.kind === "option" && !(t.name in options));
  const rawName = bad && bad.kind === "option" ? bad.rawName : "?";
  const name = rawName.replace(/^-+/, "");
  const near = Object.keys(options)
    .map((o) => ({ o, d: editDistance(name, o) }))
    .filter(({ o, d }) => d <= (o.length >= 5 ? 2 : 1))
    .sort((a, b) => a.d - b.d)[0];
  return `${command}: unknown option ${rawName}${near ? ` (did you mean --${near.o}?)` : ""}; see safl ${command} --help for its options`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The "Options:" lines of a help text: name and value on the left, description and default on the right. */
export function formatFlags(spec: FlagSpec, width = 100): string {
  const all: [string, FlagDef][] = [...Object.entries(spec), ["help", HELP_FLAG]];
  const rows: [string, string][] = all.map(([name, def]) => {
    const value = def.type === "boolean" ? "" : ` ${def.value ?? (def.type === "choice" ? def.choices.join("|") : "<value>")}`;
    const left = `${def.short ? `-${def.short}, ` : ""}--${name}${value}`;
    const notes: string[] = [];
    // A no-break space keeps "default:" on the line of its value when the text is wrapped.
    if (def.type !== "boolean" && def.default !== undefined) notes.push(`default:${NBSP}${def.default}`);
    else if (def.defaultText) notes.push(`default:${NBSP}${def.defaultText}`);
    if (def.type === "string" && def.required) notes.push("required");
    if (def.type === "string" && def.multiple) notes.push("repeatable");
    return [left, notes.length ? `${def.description} (${notes.join("; ")})` : def.description];
  });
  // Long names (choice lists) get their description on the next line instead of a wide column.
  const col = Math.min(24, Math.max(...rows.map(([l]) => l.length))) + 4;
  const lines: string[] = [];
  for (const [left, text] of rows) {
    const wrapped = wrap(text, width - col).map((l) => l.replaceAll(NBSP, " "));
    if (left.length + 4 > col) lines.push(`  ${left}`);
    else lines.push(`  ${left.padEnd(col - 2)}${wrapped.shift() ?? ""}`);
    for (const w of wrapped) lines.push(`${" ".repeat(col)}${w}`);
  }
  return lines.join("\n");
}

const NBSP = "\u00a0";

/** Greedy word wrap (a word longer than the width gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/[ \t\n]+/).filter((w) => w !== "")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
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
