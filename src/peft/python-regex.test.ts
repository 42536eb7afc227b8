/**
 * Python `re` patterns carried over to JavaScript: the translated pattern accepts exactly the module
 * names Python's `re.fullmatch` / PEFT's pattern-key rule accepts (expected results written from
 * Python's semantics), and constructs without a JavaScript equivalent fail naming the construct.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PythonRegexError, pythonFullmatch, pythonPatternKey, pythonRegexSource } from "./python-regex.js";
import { parseAdapterSpec } from "./registry.js";
import { patternLookup, targetMatcher } from "./targets.js";

const q0 = "vit.encoder.layer.0.attention.attention.query";
const q1 = "vit.encoder.layer.1.attention.attention.query";
const ao1 = "vit.encoder.layer.1.attention.output.dense";
const o1 = "vit.encoder.layer.1.output.dense";

describe("Python regex translation", () => {
  test("fullmatch: the whole name must match, alternation included", () => {
    const re = pythonFullmatch(".*\\.(query|value)");
    assert.ok(re.test(q0));
    assert.ok(!re.test(`${q0}.x`));
    assert.ok(!pythonFullmatch("query").test(q0), "fullmatch, not search");
    // without the outer group, a|b would only anchor one side
    assert.ok(!pythonFullmatch(".*query|xyz").test(`${q0}.lora_A`));
    assert.ok(pythonFullmatch(".*query|xyz").test(q0));
  });

  test("\\A, \\Z, \\a, {,n}, {,} and a leading ] in a class mean what they mean in Python", () => {
    assert.ok(pythonFullmatch("\\Avit.*query\\Z").test(q0));
    assert.equal(pythonRegexSource("\\Aa\\Z"), "^a$");
    assert.ok(pythonFullmatch("a\\a").test("a\x07"));
    assert.ok(pythonFullmatch("x{,2}").test("xx"));
    assert.ok(pythonFullmatch("x{,2}").test(""));
    assert.ok(!pythonFullmatch("x{,2}").test("xxx"));
    assert.ok(pythonFullmatch("x{,}").test("xxxx"));
    assert.ok(pythonFullmatch("x{}").test("x{}"), "{} is a literal in Python");
    assert.ok(pythonFullmatch("[]a]+").test("]a]"));
    assert.ok(pythonFullmatch("[^]]+").test("abc"));
    assert.ok(!pythonFullmatch("[^]]+").test("a]c"));
    assert.ok(pythonFullmatch("a(?#a comment)b").test("ab"));
    assert.ok(pythonFullmatch("(a)\\1").test("aa"));
    assert.ok(pythonFullmatch("layer\\.[0-9]+\\.(?!output).*dense").test("layer.1.intermediate.dense"));
    assert.ok(!pythonFullmatch("layer\\.[0-9]+\\.(?!output).*dense").test("layer.1.output.dense"));
  });

  test("pattern keys: (.*\\.)?(key)$ from the start, first matching key wins", () => {
    assert.ok(pythonPatternKey("query").test(q0));
    assert.ok(!pythonPatternKey("uery").test(q0), "the key must start at a dot boundary");
    assert.ok(pythonPatternKey("output.dense").test(ao1));
    assert.ok(pythonPatternKey("^vit.encoder.layer.1.output.dense").test(o1));
    assert.ok(!pythonPatternKey("^vit.encoder.layer.1.output.dense").test(ao1));
    const record = { "layer\\.0\\.attention\\.attention\\.query": 1, query: 3 };
    assert.deepEqual(patternLookup(record, q0), { key: "layer\\.0\\.attention\\.attention\\.query", value: 1 });
    assert.deepEqual(patternLookup(record, q1), { key: "query", value: 3 });
    assert.equal(patternLookup(record, o1), undefined);
  });

  test("list targets keep PEFT's exact-or-suffix rule; regex targets use fullmatch", () => {
    assert.ok(targetMatcher(["output.dense"])(ao1));
    assert.ok(targetMatcher(["output.dense"])(o1));
    assert.ok(!targetMatcher(["put.dense"])(o1));
    assert.ok(targetMatcher({ regex: ".*layer\\.1\\.output\\.dense" })(o1));
    assert.ok(!targetMatcher({ regex: ".*layer\\.1\\.output\\.dense" })(ao1));
  });

  test("constructs JavaScript lacks are refused, naming the construct", () => {
    const cases: Array<[string, RegExp]> = [
      ["(?P<name>query)", /named group "\(\?P<name>\.\.\.\)"/],
      ["(?P<n>a)(?P=n)", /named group/],
      ["(?i)query", /inline flags/],
      ["(?i:query)", /inline flags/],
      ["(?>query)", /atomic group/],
      ["query++", /possessive quantifier "\+\+"/],
      ["quer*+y", /possessive quantifier "\*\+"/],
      ["a{1,2}+", /possessive quantifier/],
      ["(a)?(?(1)b|c)", /conditional group/],
      ["\\U0001F600", /\\U/],
      ["\\N{DASH}", /\\N\{\.\.\.\}/],
      ["\\q", /unknown escape "\\q"/],
      ["(?<name>a)", /JavaScript syntax, not Python's/],
      ["[a", /unterminated character class/],
      ["a\\", /trailing backslash/],
      ["(a", /not a valid pattern/],
    ];
    for (const [p, re] of cases) {
      assert.throws(() => pythonRegexSource(p), (e: unknown) => e instanceof PythonRegexError && re.test((e as Error).message), p);
    }
  });

  test("adapter specs validate regex targets and pattern keys, naming the field", () => {
    assert.throws(() => parseAdapterSpec({ kind: "lora", targetModules: { regex: "(?i)query" } }), /targetModules\.regex: unsupported regular expression: inline flags/);
    assert.throws(() => parseAdapterSpec({ kind: "lora", rankPattern: { "(?P<x>a)": 2 } }), /rankPattern\.\(\?P<x>a\): unsupported regular expression in the key: a named group/);
    assert.throws(() => parseAdapterSpec({ kind: "adalora", targetModules: "query" }), /targetModules: expected a list of module names or suffixes, or \{ "regex"/);
    const spec = parseAdapterSpec({ kind: "lora", rank: 2, targetModules: { regex: ".*query" }, alphaPattern: {}, useRslora: false });
    assert.deepEqual(spec, { kind: "lora", rank: 2, alpha: 4, targetModules: { regex: ".*query" } }, "empty patterns and a false useRslora leave a plain spec");
  });
});
