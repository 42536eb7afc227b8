/**
 * `safl study` end to end on a tiny plan (the shipped backbone, MNIST digits 5-9, 2 rounds, 2 methods,
 * 1 partition, 2 seeds): it writes every cell and the report; a second run without --resume refuses
 * to mix with finished cells; --resume re-runs exactly the missing cell, clears a partial cell left
 * by an interrupted run and keeps the hand-written analysis; a finished cell whose config no longer
 * matches the plan is refused; a missing Fashion-MNIST says how to get it; a bad plan names its
 * problems and writes nothing.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const safl = join(root, "bin", "safl.js");
const run = (...args: string[]) => spawnSync(process.execPath, [safl, "study", ...args], { encoding: "utf8", cwd: root });

const PLAN = {
  title: "tiny study",
  base: {
    rounds: 2,
    data: { dataset: "mnist", classes: "5-9", trainLimit: 300 },
    clients: { count: 4, perRound: 2 },
    training: { localSteps: 2 },
    execution: { workers: 0, threads: 1 },
  },
  methods: [
    { id: "fedavg", label: "FedAvg", config: { strategy: { name: "fedavg" } } },
    { id: "ffa", label: "FFA-LoRA", config: { strategy: { name: "ffa-lora" } } },
  ],
  partitions: [{ id: "iid", partition: "iid" }],
  seeds: [0, 1],
  reference: "fedavg",
  flagship: "ffa",
  targetAccuracy: 0.3,
};

let tmp = "";
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "safl-study-"));
});
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("safl study", () => {
  test("runs every cell, refuses to overwrite, resumes only what is missing, keeps the analysis", async () => {
    const planPath = join(tmp, "plan.json");
    await writeFile(planPath, JSON.stringify(PLAN));
    const out = join(tmp, "out");
    const report = join(tmp, "results.md");
    const first = run("--plan", planPath, "--out", out, "--report", report);
    assert.equal(first.status, 0, first.stderr);
    const cells = (await readdir(join(out, "cells"))).sort();
    assert.deepEqual(cells, ["fedavg.iid.s0", "fedavg.iid.s1", "ffa.iid.s0", "ffa.iid.s1"]);
    for (const c of cells) {
      const lines = (await readFile(join(out, "cells", c, "metrics.jsonl"), "utf8")).trim().split("\n");
      assert.equal(lines.length, 2, c);
      const summary = JSON.parse(await readFile(join(out, "cells", c, "summary.json"), "utf8"));
      assert.equal(summary.finalAccuracy, JSON.parse(lines[1]!).testAccuracy);
    }
    let md = await readFile(report, "utf8");
    assert.match(md, /## Target check/);
    assert.match(md, /\| FFA-LoRA \| \d+\.\d\d ± \d+\.\d\d \|/);
    assert.ok((await stat(join(out, "plots", "accuracy-vs-round-iid.svg"))).size > 0);

    // Without --resume, finished cells are not silently mixed with new ones.
    const again = run("--plan", planPath, "--out", out, "--report", report);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /already holds 4 finished cell\(s\).*--resume/);

    // An interrupted run leaves a hidden partial cell; a missing cell is re-run, the others are kept.
    await writeFile(report, md.replace("_No analysis written yet._", "Hand-written conclusion."));
    await mkdir(join(out, "cells", ".ffa.iid.s1.partial-12345"));
    const keptBefore = (await stat(join(out, "cells", "fedavg.iid.s0", "summary.json"))).mtimeMs;
    const oldMetrics = await readFile(join(out, "cells", "ffa.iid.s1", "metrics.jsonl"), "utf8");
    await rm(join(out, "cells", "ffa.iid.s1"), { recursive: true });
    // An interim report from the 3 finished cells runs nothing and keeps the analysis.
    const interim = run("--plan", planPath, "--out", out, "--report", report, "--interim");
    assert.equal(interim.status, 0, interim.stderr);
    md = await readFile(report, "utf8");
    assert.ok(md.includes("**Interim report: 3 of 4 cells finished.**") && md.includes("Hand-written conclusion."), md);
    assert.deepEqual((await readdir(join(out, "cells"))).filter((c) => !c.startsWith(".")).sort(), cells.filter((c) => c !== "ffa.iid.s1"));
    const resumed = run("--plan", planPath, "--out", out, "--report", report, "--resume");
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /4 cells \(3 done, 1 to run\); removed 1 partial cell/);
    assert.deepEqual((await readdir(join(out, "cells"))).sort(), cells);
    assert.equal((await stat(join(out, "cells", "fedavg.iid.s0", "summary.json"))).mtimeMs, keptBefore);
    const strip = (t: string) => t.trim().split("\n").map((l) => {
      const o = JSON.parse(l);
      delete o.seconds;
      delete o.timing;
      return JSON.stringify(o);
    });
    assert.deepEqual(strip(await readFile(join(out, "cells", "ffa.iid.s1", "metrics.jsonl"), "utf8")), strip(oldMetrics), "the re-run cell reproduces its metrics");
    md = await readFile(report, "utf8");
    assert.ok(md.includes("Hand-written conclusion.") && !md.includes("Interim report"));

    // A plan edit that changes a finished cell's config is refused rather than reported on.
    await writeFile(planPath, JSON.stringify({ ...PLAN, base: { ...PLAN.base, rounds: 3 } }));
    const stale = run("--plan", planPath, "--out", out, "--report", report, "--resume");
    assert.notEqual(stale.status, 0);
    assert.match(stale.stderr, /4 finished cell\(s\) .* were run with a config the plan no longer gives/);
  });

  test("a missing Fashion-MNIST says how to get it and leaves no partial cell", async () => {
    const empty = join(tmp, "no-data");
    await mkdir(empty);
    const planPath = join(tmp, "fmnist.json");
    await writeFile(planPath, JSON.stringify({ ...PLAN, base: { ...PLAN.base, data: { dataset: "fashion-mnist", dataDir: empty } } }));
    const out = join(tmp, "fmnist-out");
    const r = run("--plan", planPath, "--out", out);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cell fedavg\.iid\.s0 failed: Fashion-MNIST files not found/);
    assert.match(r.stderr, /apt-get install dataset-fashion-mnist/);
    assert.deepEqual(await readdir(join(out, "cells")), []);
  });

  test("a bad plan reports its problems and writes nothing", async () => {
    const planPath = join(tmp, "bad.json");
    await writeFile(planPath, JSON.stringify({ ...PLAN, reference: "fedsgd", seeds: [] }));
    const out = join(tmp, "bad-out");
    const r = run("--plan", planPath, "--out", out);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /reference: "fedsgd" is not one of the plan's methods/);
    assert.match(r.stderr, /seeds/);
    await assert.rejects(stat(out));
  });
});
