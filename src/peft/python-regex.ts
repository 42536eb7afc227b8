/**
 * @module peft/python-regex
 * PEFT matches module names with Python's `re`; this turns such a pattern into a JavaScript RegExp
 * that accepts exactly the same (ASCII) module names, or fails with a message saying which Python
 * construct has no JavaScript equivalent. Two match forms are needed:
 *
 * - `target_modules` as a string: `re.fullmatch(p, name)` → `^(?:p)$`;
 * - `rank_pattern` / `alpha_pattern` keys: `re.match(rf"(.*\.)?({k})$", name)` → `^(.*\.)?(k)$`
 *   (the same groups, so backreferences inside `k` number as in Python).
 *
 * What differs between the dialects and is handled:
 * - `\A`, `\Z` (and Python 3.14's `\z`) become `^` / `$` (JavaScript has no such escapes; without
 *   the `m` flag `^` and `$` anchor the whole string);
 * - `\a` (bell) becomes `\x07` (in JavaScript it is a plain "a");
 * - a `]` right after `[` or `[^` is a literal in Python, an empty class in JavaScript: escaped;
 * - `{,n}` means `{0,n}` in Python and a literal in JavaScript: rewritten;
 * - `(?#...)` comments are dropped.
 *
 * Refused (no JavaScript equivalent, or not valid Python): named groups `(?P<name>...)` and
 * `(?P=name)`, inline flags `(?i)` / `(?i:...)`, atomic groups `(?>...)`, possessive quantifiers
 * (`*+`, `++`, `?+`, `{m,n}+`), conditionals `(?(1)...)`, `\U`, `\N{...}`, unknown letter escapes
 * (`\q`; Python rejects them too) and JavaScript-only `(?<name>...)`.
 * Python's `\d`, `\w`, `\s` are Unicode-aware while JavaScript's are ASCII; module names are ASCII.
 */

/** A pattern that cannot be carried over; `message` says which construct and why. */
export class PythonRegexError extends Error {
  override readonly name = "PythonRegexError";
}

const PASS_THROUGH_LETTER_ESCAPES = new Set(["d", "D", "w", "W", "s", "S", "b", "B", "f", "n", "r", "t", "v"]);

/**
 * The JavaScript source of a Python pattern (to be wrapped by the caller), checked to compile.
 * Throws PythonRegexError naming the unsupported construct.
 */
export function pythonRegexSource(pattern: string): string {
  let out = "";
  let i = 0;
  const n = pattern.length;
  const fail = (what: string): never => {
    throw new PythonRegexError(`${what} at position ${i} of ${JSON.stringify(pattern)}`);
  };
  /** One escape sequence starting at pattern[i] === "\\"; `inClass` for escapes inside [...]. */
  const readEscape = (inClass: boolean): string => {
    const c = pattern[i + 1];
    if (c === undefined) return fail("a trailing backslash");
    if (c === "A" || c === "Z" || c === "z") {
      if (inClass) return fail(`"\\${c}" inside a character class (Python rejects it)`);
      i += 2;
      return c === "A" ? "^" : "$";
    }
    if (c === "a") {
      i += 2;
      return "\\x07";
    }
    if (c === "x") {
      const hex = pattern.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return fail('"\\x" without two hex digits');
      i += 4;
      return `\\x${hex}`;
    }
    if (c === "u") {
      const hex = pattern.slice(i + 2, i + 6);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) return fail('"\\u" without four hex digits');
      i += 6;
      return `\\u${hex}`;
    }
    if (c === "U") return fail('"\\U" (an 8-digit code point escape; JavaScript has no equivalent without the u flag)');
    if (c === "N") return fail('"\\N{...}" (a named character escape; JavaScript has none)');
    if (/[0-9]/.test(c)) {
      // Backreference (\1..\99) or octal escape (\0, \012): the same reading in both dialects.
      let j = i + 1;
      while (j < n && j < i + 4 && /[0-9]/.test(pattern[j]!)) j++;
      const s = pattern.slice(i, j);
      i = j;
      return s;
    }
    if (/[A-Za-z]/.test(c)) {
      if (!PASS_THROUGH_LETTER_ESCAPES.has(c) || (inClass && c === "B")) return fail(`unknown escape "\\${c}"${inClass ? " inside a character class" : ""} (Python rejects it)`);
      i += 2;
      return `\\${c}`;
    }
    i += 2;
    return `\\${c}`;
  };

  while (i < n) {
    const c = pattern[i]!;
    if (c === "\\") {
      out += readEscape(false);
      continue;
    }
    if (c === "[") {
      out += "[";
      i++;
      if (pattern[i] === "^") {
        out += "^";
        i++;
      }
      if (pattern[i] === "]") {
        out += "\\]";
        i++;
      }
      let closed = false;
      while (i < n) {
        const d = pattern[i]!;
        if (d === "\\") {
          out += readEscape(true);
          continue;
        }
        i++;
        if (d === "]") {
          closed = true;
          out += "]";
          break;
        }
        out += d === "[" ? "\\[" : d;
      }
      if (!closed) return fail("an unterminated character class");
      continue;
    }
    if (c === "(" && pattern[i + 1] === "?") {
      const rest = pattern.slice(i + 2);
      if (rest.startsWith(":") || rest.startsWith("=") || rest.startsWith("!") || rest.startsWith("<=") || rest.startsWith("<!")) {
        const len = rest.startsWith("<") ? 4 : 3;
        out += pattern.slice(i, i + len);
        i += len;
        continue;
      }
      if (rest.startsWith("#")) {
        const end = pattern.indexOf(")", i);
        if (end < 0) return fail("an unterminated (?#...) comment");
        i = end + 1;
        continue;
      }
      if (rest.startsWith("P<")) return fail('a named group "(?P<name>...)" (write a plain group "(...)" instead)');
      if (rest.startsWith("P=")) return fail('a named backreference "(?P=name)"');
      if (rest.startsWith("P")) return fail('a "(?P" extension');
      if (rest.startsWith("<")) return fail('"(?<name>...)", which is JavaScript syntax, not Python\'s');
      if (rest.startsWith(">")) return fail('an atomic group "(?>...)"');
      if (rest.startsWith("(")) return fail('a conditional group "(?(...)...)"');
      if (/^[-aiLmsux]/.test(rest)) return fail('inline flags "(?flags)" / "(?flags:...)"');
      return fail(`an unknown group extension "(?${rest[0] ?? ""}"`);
    }
    if (c === "*" || c === "+" || c === "?") {
      out += c;
      i++;
      if (pattern[i] === "+") return fail(`a possessive quantifier "${c}+"`);
      if (pattern[i] === "?") {
        out += "?";
        i++;
        if (pattern[i] === "+") return fail("a possessive quantifier");
      }
      continue;
    }
    if (c === "{") {
      const m = /^\{(\d*)(,(\d*))?\}/.exec(pattern.slice(i));
      if (m && (m[1] !== "" || m[2] !== undefined)) {
        // A quantifier: {m}, {m,}, {m,n}, or Python's {,n} = {0,n} and {,} = {0,}.
        out += `{${m[1] === "" ? "0" : m[1]}${m[2] ?? ""}}`;
        i += m[0].length;
        if (pattern[i] === "+") return fail('a possessive quantifier "{m,n}+"');
        if (pattern[i] === "?") {
          out += "?";
          i++;
          if (pattern[i] === "+") return fail("a possessive quantifier");
        }
        continue;
      }
      out += "\\{";
      i++;
      continue;
    }
    if (c === "}") {
      out += "\\}";
      i++;
      continue;
    }
    out += c;
    i++;
  }
  try {
    new RegExp(out);
  } catch (e) {
    throw new PythonRegexError(`${JSON.stringify(pattern)} is not a valid pattern: ${(e as Error).message.replace(/^Invalid regular expression: /, "")}`);
  }
  return out;
}

/** `re.fullmatch(pattern, name)` as a RegExp. */
export function pythonFullmatch(pattern: string): RegExp {
  return new RegExp(`^(?:${pythonRegexSource(pattern)})$`);
}

/** PEFT's pattern-key rule `re.match(rf"(.*\.)?({key})$", name)` as a RegExp. */
export function pythonPatternKey(key: string): RegExp {
  return new RegExp(`^(.*\\.)?(${pythonRegexSource(key)})$`);
}
