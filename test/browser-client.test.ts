/**
 * The browser client end to end, in headless Chromium against a real `safl server --ui` process:
 * - 2 Node clients (partitions 0, 1) and one browser tab opened at /join?token=T&partition=2: the
 *   run completes, the browser's replies are aggregated in every round (metrics.jsonl names
 *   client-0002 among the accepted), and the accuracies stay within rounding of `safl simulate` of
 *   the same config (the browser computes with onnxruntime-web, so equal up to float rounding, not
 *   bit for bit).
 * - A tab closed mid-training does not stall the round: it closes at its deadline without the
 *   browser (deadline-exceeded); the page reopened in the same browser profile rejoins, takes the
 *   backbone from its OPFS cache (nothing downloaded again), is not sent a base it should hold, and
 *   its replies are aggregated again.
 * Skipped only when Chromium or the web build is missing (the reason is in the skip message).
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Page } from "playwright-core";
import { type Browser, browserUnavailable, launchBrowser } from "./browser-harness.js";
import { Harness, readRun, root } from "./deploy-harness.js";

/** Where the screenshots go (not committed; .gitignore). */
const ARTIFACTS = join(root, "test-artifacts");

const unavailable = browserUnavailable();

const base = {
  seed: 5,
  data: { dataset: "mnist", classes: "5-9", trainLimit: 300 },
  clients: { count: 3, perRound: 3, partition: "iid" },
  training: { localSteps: 4, batch: 8 },
  evaluation: { every: 1 },
  execution: { workers: 1, threads: 1 },
};

interface PageState {
  state: string;
  clientId: string;
  round: number;
  step: number;
  steps: number;
  tasks: number;
  backbone: string;
  error: string;
  bytesDown: number;
}

const pageState = (page: Page): Promise<PageState> => page.evaluate(() => (globalThis as unknown as { saflJoin: PageState }).saflJoin);

async function waitForPage(page: Page, what: string, ok: (s: PageState) => boolean, ms = 120_000): Promise<PageState> {
  const until = Date.now() + ms;
  for (;;) {
    const s = await pageState(page);
    if (ok(s)) return s;
    if (s.state === "error") throw new Error(`the page failed while waiting for ${what}: ${s.error}`);
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; page state ${JSON.stringify({ ...s, events: undefined })}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

/** Waits until the server's metrics.jsonl holds `n` rounds. */
async function waitForRecords(out: string, n: number, ms = 120_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const text = await readFile(join(out, "metrics.jsonl"), "utf8").catch(() => "");
    if (text.split("\n").filter((l) => l.trim() !== "").length >= n) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${n} rounds in ${out}/metrics.jsonl`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const accepted = (r: Record<string, unknown>): readonly string[] => (r["clients"] as { accepted: string[] }).accepted;

describe("browser client", { skip: unavailable ?? false, timeout: 600_000 }, () => {
  let dir = "";
  let h: Harness;
  let browser: Browser;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "safl-browser-client-"));
    h = new Harness(dir);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    h?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("2 Node clients and 1 browser tab: the run completes and the browser's replies are aggregated", async (t) => {
    const rounds = 3;
    const cfg = { ...base, rounds, strategy: { name: "fedlora", adapter: { rank: 2 } }, deployment: { heartbeatSeconds: 2, roundTimeoutSeconds: 120 } };
    const cfgPath = await h.writeConfig("mixed.json", cfg);
    const tokens = await h.tokens(["mixed-n0", "mixed-n1", "mixed-web"]);
    const simOut = join(dir, "mixed-sim");
    h.simulate(["--config", cfgPath, "--out", simOut]);
    const out = join(dir, "mixed-out");
    const server = h.server(["--ui", "--config", cfgPath, "--state", join(dir, "mixed.db"), "--out", out, "--tokens", tokens.file]);
    const port = await server.port;
    const nodes = [0, 1].map((i) => h.client(port, tokens.tokens.get(`mixed-n${i}`)!, ["--dataset", "mnist", "--partition", String(i), "--cache", join(dir, `mixed-cache-${i}`)]));
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/join?token=${encodeURIComponent(tokens.tokens.get("mixed-web")!)}&partition=2`);
    // Mid-run, for the docs: the page while it trains.
    await waitForPage(page, "the page to train", (s) => s.tasks >= 1);
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "join.png"), fullPage: true });
    const finished = await waitForPage(page, "the run to finish", (s) => s.state === "finished", 300_000);
    assert.equal(await server.exited, 0, `server failed:\n${server.lines.slice(-30).join("\n")}`);
    for (const [i, c] of nodes.entries()) assert.equal(await c.exited, 0, `node client ${i} failed:\n${c.output().slice(-2000)}`);
    assert.deepEqual(errors, [], "no uncaught errors in the page");
    assert.equal(finished.clientId, "client-0002");
    assert.equal(finished.backbone, "downloaded");
    assert.ok(finished.tasks >= rounds, `the page answered ${finished.tasks} tasks`);
    const dep = await readRun(out);
    const sim = await readRun(simOut);
    assert.equal(dep.records.length, rounds);
    for (const r of dep.records) assert.ok(accepted(r).includes("client-0002"), `round ${String(r["round"])} aggregated ${JSON.stringify(accepted(r))}`);
    let maxDa = 0;
    let maxDl = 0;
    for (const [i, r] of dep.records.entries()) {
      const s = sim.records[i]!;
      assert.deepEqual(accepted(r), accepted(s));
      const da = Math.abs((r["testAccuracy"] as number) - (s["testAccuracy"] as number));
      assert.ok(da <= 0.005, `round ${i + 1}: test accuracy ${String(r["testAccuracy"])} against the simulation's ${String(s["testAccuracy"])}`);
      const dl = Math.abs((r["testLoss"] as number) / (s["testLoss"] as number) - 1);
      assert.ok(dl <= 1e-3, `round ${i + 1}: test loss ${String(r["testLoss"])} against the simulation's ${String(s["testLoss"])}`);
      maxDa = Math.max(maxDa, da);
      maxDl = Math.max(maxDl, dl);
    }
    t.diagnostic(`against simulate: max |test accuracy difference| ${maxDa}, max relative test loss difference ${maxDl.toExponential(2)}`);
    await page.close();
  });

  test("a tab closed mid-round does not stall the round; reopened, it rejoins from its cached backbone and base", async () => {
    const rounds = 5;
    const cfg = {
      ...base,
      rounds,
      training: { localSteps: 20, batch: 8 },
      strategy: { name: "sa-fedlora", initiating: { rounds: 1, handoff: "new-base" }, adapter: { initRank: 2, targetRank: 1 }, heatRounds: 1, coolRounds: 1 },
      deployment: { heartbeatSeconds: 2, roundTimeoutSeconds: 20, minReplyFraction: 0.5 },
    };
    const cfgPath = await h.writeConfig("closed.json", cfg);
    const tokens = await h.tokens(["closed-n0", "closed-n1", "closed-web"]);
    const out = join(dir, "closed-out");
    const server = h.server(["--ui", "--config", cfgPath, "--state", join(dir, "closed.db"), "--out", out, "--tokens", tokens.file]);
    const port = await server.port;
    const nodes = [0, 1].map((i) => h.client(port, tokens.tokens.get(`closed-n${i}`)!, ["--dataset", "mnist", "--partition", String(i), "--cache", join(dir, `closed-cache-${i}`)]));
    const link = `http://127.0.0.1:${port}/join?token=${encodeURIComponent(tokens.tokens.get("closed-web")!)}&partition=2`;
    const first = await browser.context.newPage();
    await first.goto(link);
    // The new-base handoff sends base version 1 in round 2, which the page keeps in its cache; round 3
    // comes after that.
    // Checked inside the page between two training steps, so the tab closes before its reply is sent.
    await first.waitForFunction(
      () => {
        const s = (globalThis as unknown as { saflJoin: PageState }).saflJoin;
        return s.state === "training" && s.round === 3 && s.step < s.steps;
      },
      undefined,
      { polling: 5, timeout: 240_000 },
    );
    const closedAt = await pageState(first);
    await first.close();
    await waitForRecords(out, 3);
    const reopened = await browser.context.newPage();
    await reopened.goto(link);
    const rejoined = await waitForPage(reopened, "the reopened page to join", (s) => s.backbone !== "");
    assert.equal(rejoined.backbone, "cached", "the reopened page took the backbone from its cache");
    const done = await waitForPage(reopened, "the run to finish", (s) => s.state === "finished", 300_000);
    const bases = await reopened.evaluate(() => (globalThis as unknown as { saflJoin: { events: { event: string; versions?: number[] }[] } }).saflJoin.events.filter((e) => e.event === "bases"));
    assert.deepEqual(bases.map((e) => e.versions), [[1]], "the reopened page read base version 1 back from its cache");
    assert.equal(await server.exited, 0, `server failed:\n${server.lines.slice(-30).join("\n")}`);
    for (const [i, c] of nodes.entries()) assert.equal(await c.exited, 0, `node client ${i} failed:\n${c.output().slice(-2000)}`);
    assert.ok(done.tasks >= 1, "the reopened page answered tasks");
    const dep = await readRun(out);
    assert.equal(dep.records.length, rounds, "the run completed");
    const r3 = dep.records[2]!;
    assert.equal(closedAt.round, 3);
    assert.ok(!accepted(r3).includes("client-0002"), `round 3 aggregated ${JSON.stringify(accepted(r3))} although the tab was closed`);
    const failures = dep.records.flatMap((r) => (r["failures"] as { clientId: string; code: string }[]).map((f) => ({ ...f, round: r["round"] })));
    assert.ok(
      failures.some((f) => f.clientId === "client-0002" && f.round === 3 && f.code === "deadline-exceeded"),
      `round 3 names the closed tab as deadline-exceeded: ${JSON.stringify(failures)}`,
    );
    assert.ok(!failures.some((f) => f.code === "missing-base"), `no client lacked a base it should hold: ${JSON.stringify(failures)}`);
    assert.ok(
      dep.records.slice(3).some((r) => accepted(r).includes("client-0002")),
      `the reopened page is aggregated again: ${JSON.stringify(dep.records.map(accepted))}`,
    );
    await reopened.close();
  });
});
