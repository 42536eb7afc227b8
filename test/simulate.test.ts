/**
 * `safl simulate` end to end on the shipped backbone and MNIST digits 5-9, scaled down to a few
 * rounds: the same config and seed give identical metrics.jsonl apart from timing fields; the output
 * directory holds every promised file and is not replaced without --force; bad configs report every
 * problem at once and leave nothing behind.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { TIMING_FIELDS } from "../src/fl/records.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const safl = join(root, "bin", "safl.js");
const run = (...args: string[]) => spawnSync(process.execPath, [safl, "simulate", ...args], { encoding: "utf8", cwd: root, env: { ...process.env, SAFL_THREADS: "1" } });
// Small enough for CI: 6 clients, 3 per round, 4 rounds (1 initiating, then heating 1, decay 1, cooling 1),
// with client-side evaluation every other round.
const SMALL = [
  "--set",
  "rounds=4",
  "--set",
  "clients.count=6",
  "--set",
  "clients.perRound=3",
  "--set",
  "strategy.initiating.rounds=1",
  "--set",
  "strategy.heatRounds=1",
  "--set",
  "strategy.coolRounds=1",
  "--set",
  "execution.threads=1",
  "--set",
  "clients.localTestFraction=0.2",
  "--set",
  "evaluation.clientEvery=2",
];
let tmp = "";
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "safl-sim-"));
});
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const withoutTiming = (line: string) => {
  const o = JSON.parse(line) as Record<string, unknown>;
  for (const k of TIMING_FIELDS) delete o[k];
  return o;
};

describe("safl simulate", () => {
  test("runs twice with the same config and seed to identical metrics (apart from timing) and writes every output", async () => {
    const a = run(...SMALL, "--out", join(tmp, "a"));
    assert.equal(a.status, 0, a.stderr);
    const b = run(...SMALL, "--out", join(tmp, "b"));
    assert.equal(b.status, 0, b.stderr);
    const la = (await readFile(join(tmp, "a", "metrics.jsonl"), "utf8")).trim().split("\n");
    const lb = (await readFile(join(tmp, "b", "metrics.jsonl"), "utf8")).trim().split("\n");
    assert.equal(la.length, 4);
    assert.deepEqual(la.map(withoutTiming), lb.map(withoutTiming));
    assert.notDeepEqual(la, lb.map((l) => l), "timing fields are expected to differ between runs");
    const files = await readdir(join(tmp, "a"));
    for (const f of ["metrics.jsonl", "summary.json", "config.json", "partition.txt", "partition.svg", "accuracy-vs-round.svg", "accuracy-vs-bytes.svg", "budget-vs-round.svg", "ranks-heatmap.svg"]) {
      assert.ok(files.includes(f), `missing ${f} in ${files.join(", ")}`);
    }
    const first = JSON.parse(la[0]!);
    assert.equal(first.stage, "initiating");
    // Client-side evaluation on local held-out data every 2nd round, its traffic kept apart.
    assert.equal(first.clientAccuracy, undefined);
    const second = JSON.parse(la[1]!);
    assert.ok(second.clientAccuracy > 0 && second.clientAccuracy <= 1, `client accuracy ${second.clientAccuracy}`);
    assert.ok(second.evalTraffic.bytes > 0);
    const last = JSON.parse(la[3]!);
    assert.equal(last.phase, "cooling");
    assert.equal(last.budget, 2 * 24, "cooling holds r_T = 2 triplets on each of 24 modules");
    const summary = JSON.parse(await readFile(join(tmp, "a", "summary.json"), "utf8"));
    assert.equal(summary.finalAccuracy, last.testAccuracy);
    const total = summary.total.params;
    assert.equal(total, last.cumulativeDown.params + last.cumulativeUp.params);
    assert.equal(summary.reduction.params, 1 - total / last.fedavgCumulative.params);
    assert.match(a.stdout, /reduction vs FedAvg, params\s+\d+\.\d\d%/);
    assert.match(a.stderr, /round 4\/4 annealing\(cooling\) budget 48/);
  });

  test("an existing output directory is kept unless --force", async () => {
    const out = join(tmp, "a");
    const before = (await stat(join(out, "metrics.jsonl"))).mtimeMs;
    const r = run(...SMALL, "--set", "rounds=2", "--set", "strategy.heatRounds=0", "--set", "strategy.coolRounds=0", "--out", out);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /already exists and is not empty; pass --force/);
    assert.equal((await stat(join(out, "metrics.jsonl"))).mtimeMs, before);
  });

  test("a bad config reports every problem at once, with its path and value, and writes nothing", async () => {
    const cfg = join(tmp, "bad.json");
    await writeFile(cfg, JSON.stringify({ rounds: 0, clients: { count: 5, perRound: 9, partiton: "iid" }, strategy: { name: "sa-fedlora", adapter: { initRank: 2, targetRank: 4 } } }));
    const out = join(tmp, "never");
    const r = run("--config", cfg, "--set", "clients.partition=dirichlet:-1", "--out", out);
    assert.equal(r.status, 2, r.stderr);
    for (const want of [/rounds/, /partiton/, /clients\.partition/, /targetRank 4 is above initRank 2/]) assert.match(r.stderr, want);
    await assert.rejects(stat(out));
  });

  test("--set needs key=value, and config files must exist and be JSON", async () => {
    assert.match(run("--set", "rounds").stderr, /expected key\.path=value/);
    assert.match(run("--config", join(tmp, "missing.json")).stderr, /cannot read run config .*missing\.json: ENOENT/);
    await writeFile(join(tmp, "broken.json"), "{ rounds: 3");
    assert.match(run("--config", join(tmp, "broken.json")).stderr, /is not valid JSON/);
  });
});
