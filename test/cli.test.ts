/**
 * The `safl` command end to end: predict on an HF fixture writes the reference logits, bench step
 * prints the JSON the benchmark tooling reads, and bad input exits non-zero with one clear message.
 * The command table is checked as a whole: every command's help is generated from its flag spec and
 * lists every flag, and the dispatcher's errors name the valid commands.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { defineFlags, formatFlags, parseFlags } from "../src/cli/args.js";
import { commandHelp } from "../src/cli/command.js";
import { COMMANDS } from "../src/cli/commands/index.js";
import { findCommand } from "../src/cli/main.js";
import { SaflError } from "../src/errors.js";
import { toFloat32 } from "../src/io/safetensors.js";
import { readSafetensorsFile } from "../src/io/safetensors-file.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const safl = join(root, "bin", "safl.js");
const run = (...args: string[]) => spawnSync(process.execPath, [safl, ...args], { encoding: "utf8", cwd: root });
let tmp = "";
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("safl CLI", () => {
  test("predict writes the logits of an HF checkpoint", async () => {
    tmp = await mkdtemp(join(tmpdir(), "safl-cli-"));
    const fixture = join(root, "test", "fixtures", "hf-vit-tiny");
    const out = join(tmp, "logits.safetensors");
    const r = run("predict", "--model", fixture, "--images", join(fixture, "io.safetensors"), "--out", out, "--threads", "1", "--batch", "2");
    assert.equal(r.status, 0, r.stderr);
    const got = (await readSafetensorsFile(out)).tensors.get("logits")!;
    const want = (await readSafetensorsFile(join(fixture, "io.safetensors"))).tensors.get("logits")!;
    assert.deepEqual(got.shape, want.shape);
    const a = toFloat32(got);
    const b = toFloat32(want);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-4 * (1 + Math.abs(b[i]!)));
  });

  test("bench step --json prints imgPerSec, stepMsMedian and gflops", () => {
    const r = run("bench", "step", "--preset", "tiny-mnist", "--mode", "lora", "--batch", "4", "--steps", "2", "--warmup", "1", "--threads", "1", "--json");
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim());
    for (const k of ["imgPerSec", "stepMsMedian", "gflops"]) assert.ok(Number.isFinite(j[k]) && j[k] > 0, k);
    assert.equal(j.paramsTrainable < j.paramsTotal, true);
  });

  test("bad input exits non-zero with one message", () => {
    const cases: [string[], RegExp][] = [
      [["bench", "step", "--preset", "huge"], /--preset must be one of tiny-mnist, small-cifar, micro-mnist, small-fmnist, vit-tiny-224, got "huge"/],
      [["bench", "step", "--batch", "0"], /--batch must be an integer between 1 and 4096, got "0"/],
      [["predict", "--images", "x"], /predict: --model is required/],
      [["predict", "--model", "/nonexistent", "--images", "x", "--out", "y"], /cannot read \/nonexistent\/config\.json/],
      [["frobnicate"], /unknown command "frobnicate"/],
      [["bench", "step", "--bogus"], /bench step: unknown option --bogus; see safl bench step --help/],
      [["bench", "step", "--bach", "4"], /unknown option --bach \(did you mean --batch\?\)/],
      [["bench", "step", "extra"], /bench step: unexpected argument "extra"/],
      [["simulate", "--set"], /simulate: --set needs a value <key\.path=value>/],
      [["study"], /study: --plan is required/],
      [["finetune", "--out", "x", "--heat", "2"], /--heat must be a number between 0 and 1, got "2"/],
    ];
    for (const [args, re] of cases) {
      const r = run(...args);
      assert.notEqual(r.status, 0, args.join(" "));
      assert.match(r.stderr, re);
      assert.ok(!/at .*\.js:\d+/.test(r.stderr), `no stack trace for ${args.join(" ")}`);
    }
  });

  test("safl alone prints the usage with every command and exits 2; --help and help exit 0", () => {
    const alone = run();
    assert.equal(alone.status, 2);
    assert.match(alone.stdout, /^Usage: safl <command> \[options\]$/m);
    for (const c of COMMANDS) assert.match(alone.stdout, new RegExp(`^  ${c.name} +${escapeRe(c.summary)}$`, "m"), c.name);
    for (const args of [["--help"], ["-h"], ["help"]]) {
      const r = run(...args);
      assert.equal(r.status, 0, args.join(" "));
      assert.equal(r.stdout, alone.stdout, args.join(" "));
    }
  });

  test("every command in the table has generated help listing each of its flags", () => {
    for (const c of COMMANDS) {
      const r = run(...c.name.split(" "), "--help");
      assert.equal(r.status, 0, `${c.name} --help: ${r.stderr}`);
      assert.equal(r.stdout.trimEnd(), commandHelp(c), c.name);
      assert.ok(r.stdout.startsWith(`safl ${c.name} — ${c.summary}\n`), c.name);
      assert.match(r.stdout, new RegExp(`^Usage: safl ${c.name}`, "m"), c.name);
      for (const [name, def] of Object.entries(c.flags)) {
        // The flag's line: its name first, then the start of its description.
        const firstWords = escapeRe(def.description.split(" ").slice(0, 2).join(" "));
        assert.match(r.stdout, new RegExp(`^  (-\\w, )?--${escapeRe(name)}\\b.*(\\n {6,})?${firstWords}`, "m"), `${c.name} --${name}`);
        if ("default" in def && def.default !== undefined) assert.ok(r.stdout.includes(`default: ${def.default}`), `${c.name} --${name} shows its default`);
        else if (def.defaultText) assert.ok(r.stdout.replace(/\s+/g, " ").includes(`default: ${def.defaultText}`), `${c.name} --${name} shows its default`);
      }
      assert.match(r.stdout, /^ {2}-h, --help +show this help$/m, c.name);
      const viaHelp = run("help", ...c.name.split(" "));
      assert.equal(viaHelp.status, 0, `help ${c.name}`);
      assert.equal(viaHelp.stdout, r.stdout, `help ${c.name}`);
    }
  });

  test("the command table is well-formed", () => {
    const names = COMMANDS.map((c) => c.name);
    assert.equal(new Set(names).size, names.length, "command names are unique");
    for (const c of COMMANDS) {
      assert.ok(c.summary.length > 0 && !c.summary.includes("\n"), `${c.name} has a one-line summary`);
      assert.ok(!("help" in c.flags), `${c.name} does not redeclare --help`);
      for (const [name, def] of Object.entries(c.flags)) assert.ok(def.description.length > 0, `${c.name} --${name} is described`);
      assert.equal(findCommand([...c.name.split(" "), "--json"]).kind, "command", c.name);
    }
  });

  test("an unknown flag is a usage error (exit 2) naming the flag, for every command", () => {
    for (const c of COMMANDS) {
      const r = run(...c.name.split(" "), "--no-such-flag");
      assert.equal(r.status, 2, c.name);
      assert.match(r.stderr, new RegExp(`^safl: ${c.name}: unknown option --no-such-flag; see safl ${c.name} --help`), c.name);
      assert.ok(!/at .*\.js:\d+/.test(r.stderr), `no stack trace for ${c.name}`);
    }
  });

  test("unknown commands and subcommands list the valid ones (exit 2)", () => {
    const top = [...new Set(COMMANDS.map((c) => c.name.split(" ")[0]!))].join(", ");
    for (const args of [["frobnicate"], ["help", "frobnicate"]]) {
      const r = run(...args);
      assert.equal(r.status, 2, args.join(" "));
      assert.ok(r.stderr.includes(`safl: unknown command "frobnicate" (expected one of: ${top})`), r.stderr);
    }
    for (const args of [["bench", "frob"], ["help", "bench", "frob"]]) {
      const r = run(...args);
      assert.equal(r.status, 2, args.join(" "));
      assert.match(r.stderr, /safl bench: unknown subcommand "frob" \(expected one of: step\)/);
      assert.match(r.stderr, /^ {2}bench step +time a training/m);
    }
    const bare = run("bench");
    assert.equal(bare.status, 2);
    assert.match(bare.stderr, /safl bench: which one\? \(expected one of: step\)/);
    for (const args of [["bench", "--help"], ["help", "bench"]]) {
      const r = run(...args);
      assert.equal(r.status, 0, args.join(" "));
      assert.match(r.stdout, /^Usage: safl bench <subcommand> \[options\]/m);
    }
  });
});

describe("flag specs", () => {
  const spec = defineFlags({
    out: { type: "string", value: "<dir>", required: true, description: "where to write" },
    name: { type: "string", default: "x", description: "a name" },
    note: { type: "string", description: "a note" },
    set: { type: "string", multiple: true, description: "repeatable" },
    mode: { type: "choice", choices: ["a", "b"], default: "a", description: "the mode" },
    steps: { type: "int", value: "<n>", default: 3, min: 1, max: 10, description: "how many" },
    lr: { type: "number", min: 0, max: 1, defaultText: "depends", description: "rate" },
    json: { type: "boolean", description: "as JSON" },
  });
  const usageError = (fn: () => unknown, re: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof SaflError && e.code === "invalid_argument" && re.test(e.rawMessage));

  test("values are typed, validated and defaulted from the one spec", () => {
    const v = parseFlags(["--out", "d", "--set", "a=1", "--set=b=2", "--mode", "b", "--lr", "0.5", "--json"], spec, "t");
    assert.deepEqual(v, { out: "d", name: "x", note: undefined, set: ["a=1", "b=2"], mode: "b", steps: 3, lr: 0.5, json: true });
    const steps: number = v.steps; // typed: a defaulted int is a number
    assert.equal(steps, 3);
    assert.equal(parseFlags(["--out", "d", "--note", ""], spec, "t").note, undefined, "an empty string is absent");
  });

  test("bad values name the flag, the value and what was expected", () => {
    usageError(() => parseFlags([], spec, "t"), /^t: --out is required$/);
    usageError(() => parseFlags(["--out", "d", "--steps", "11"], spec, "t"), /^--steps must be an integer between 1 and 10, got "11"$/);
    usageError(() => parseFlags(["--out", "d", "--steps", "1.5"], spec, "t"), /^--steps must be an integer/);
    usageError(() => parseFlags(["--out", "d", "--lr", "abc"], spec, "t"), /^--lr must be a number between 0 and 1, got "abc"$/);
    usageError(() => parseFlags(["--out", "d", "--mode", "c"], spec, "t"), /^--mode must be one of a, b, got "c"$/);
    usageError(() => parseFlags(["--out", "d", "--stpes", "2"], spec, "t"), /^t: unknown option --stpes \(did you mean --steps\?\)/);
    usageError(() => parseFlags(["--out"], spec, "t"), /^t: --out needs a value <dir>/);
    usageError(() => parseFlags(["--out", "d", "--json=1"], spec, "t"), /^t: .*--json/);
  });

  test("the options text shows each flag with its value name, description and default", () => {
    const text = formatFlags(spec);
    assert.match(text, /^ {2}--out <dir> +where to write \(required\)$/m);
    assert.match(text, /^ {2}--name <value> +a name \(default: x\)$/m);
    assert.match(text, /^ {2}--set <value> +repeatable \(repeatable\)$/m);
    assert.match(text, /^ {2}--mode a\|b +the mode \(default: a\)$/m);
    assert.match(text, /^ {2}--steps <n> +how many \(default: 3\)$/m);
    assert.match(text, /^ {2}--lr <value> +rate \(default: depends\)$/m);
    assert.match(text, /^ {2}--json +as JSON$/m);
    assert.match(text, /^ {2}-h, --help +show this help$/m);
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

