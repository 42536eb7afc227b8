/**
 * The `safl` command end to end: predict on an HF fixture writes the reference logits, bench step
 * prints the JSON the benchmark tooling reads, and bad input exits non-zero with one clear message.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
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
      [["bench", "step", "--preset", "huge"], /--preset must be one of tiny-mnist, small-cifar, micro-mnist, vit-tiny-224, got "huge"/],
      [["bench", "step", "--batch", "0"], /--batch must be an integer between 1 and 4096, got "0"/],
      [["predict", "--images", "x"], /predict: --model is required/],
      [["predict", "--model", "/nonexistent", "--images", "x", "--out", "y"], /cannot read \/nonexistent\/config\.json/],
      [["frobnicate"], /unknown command "frobnicate"/],
      [["bench", "step", "--bogus"], /Unknown option '--bogus'/],
    ];
    for (const [args, re] of cases) {
      const r = run(...args);
      assert.notEqual(r.status, 0, args.join(" "));
      assert.match(r.stderr, re);
      assert.ok(!/at .*\.js:\d+/.test(r.stderr), `no stack trace for ${args.join(" ")}`);
    }
  });
});
