/**
 * @module peft/targets
 * Which Linear layers an adapter attaches to, with PEFT's `target_modules` semantics: a list of
 * module names, each matching a module whose name equals it or ends with "." + it; or one Python
 * regular expression that must match the whole module name (`re.fullmatch`). And PEFT's per-module
 * overrides (`rank_pattern`, `alpha_pattern`): the first key, in the record's order, that matches
 * `(.*\.)?(key)$` from the start of the module name gives the module its value.
 */
import { z } from "zod";
import { matchesTarget } from "../nn/module.js";
import { PythonRegexError, pythonFullmatch, pythonPatternKey } from "./python-regex.js";

/** Module names / suffixes, or `{ regex }`: a Python pattern matched against the full module name. */
export type Targets = readonly string[] | { readonly regex: string };

/** Adds a zod issue when `pattern` is not a Python regex that carries over to JavaScript. */
function checkPattern(pattern: string, ctx: z.RefinementCtx): void {
  try {
    pythonFullmatch(pattern);
  } catch (e) {
    if (!(e instanceof PythonRegexError)) throw e;
    ctx.addIssue({ code: "custom", message: `unsupported regular expression: ${e.message}` });
  }
}

export const targetsSchema = z.union(
  [z.array(z.string().min(1)).min(1), z.object({ regex: z.string().min(1).superRefine(checkPattern) }).strict()],
  { error: 'expected a list of module names or suffixes, or { "regex": "<Python pattern matched against the full module name>" }' },
);

/** A per-module override record: keys are PEFT pattern keys (regex-or-suffix), checked to carry over. */
export function patternRecordSchema<V extends z.ZodType>(value: V) {
  return z.record(z.string().min(1), value).superRefine((record, ctx) => {
    for (const key of Object.keys(record)) {
      try {
        pythonPatternKey(key);
      } catch (e) {
        if (!(e instanceof PythonRegexError)) throw e;
        ctx.addIssue({ code: "custom", path: [key], message: `unsupported regular expression in the key: ${e.message}` });
      }
    }
  });
}

export const isRegexTargets = (t: Targets): t is { readonly regex: string } => !Array.isArray(t);

/** A predicate for module names (the regex compiled once). */
export function targetMatcher(targets: Targets): (moduleName: string) => boolean {
  if (!isRegexTargets(targets)) return (name) => matchesTarget(name, targets);
  const re = pythonFullmatch(targets.regex);
  return (name) => re.test(name);
}

/** How a target set reads in messages. */
export function describeTargets(targets: Targets): string {
  return isRegexTargets(targets) ? `the regular expression ${JSON.stringify(targets.regex)}` : targets.map((t) => `"${t}"`).join(", ");
}

/** PEFT's `target_modules` value for a target set (a list, or the pattern string). */
export const targetsToPeft = (targets: Targets): string[] | string => (isRegexTargets(targets) ? targets.regex : [...targets]);

/**
 * The value a per-module override record gives `moduleName`, with the key that matched (PEFT's
 * `get_pattern_key`: first matching key in insertion order), or undefined when no key matches.
 */
export function patternLookup<V>(record: Readonly<Record<string, V>> | undefined, moduleName: string): { key: string; value: V } | undefined {
  if (!record) return undefined;
  for (const [key, value] of Object.entries(record)) if (pythonPatternKey(key).test(moduleName)) return { key, value };
  return undefined;
}
