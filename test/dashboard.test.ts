/**
 * The `--ui` dashboard in headless Chromium, fed by real runs:
 * - `safl simulate --ui`: the page, opened as soon as the URL is printed, shows the round counter
 *   moving through the run, the final accuracy of metrics.jsonl, the rank heat map of the SVD form,
 *   and one row per virtual client with the replies of the run counted;
 * - `safl server --ui --insecure` with two `safl client --partition I` processes: the page on the
 *   server's own port shows both Node clients online, the rounds and the accuracy as they come, and
 *   after the server exits keeps the final state under a "connection lost, retrying" banner.
 * DOM changes are recorded in the page by a MutationObserver, so the test sees every value the
 * page showed, not only the ones it happened to poll. Screenshots go to test-artifacts/.
 * Skips, saying why, only without /usr/bin/chromium.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Page } from "playwright-core";
import { type Browser, CHROMIUM, launchBrowser, WEB_DIST } from "./browser-harness.js";
import { Harness, root, safl } from "./deploy-harness.js";

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`;
const ARTIFACTS = join(root, "test-artifacts");

/** A small SVD-form run: one full-model round, then heating, annealing and cooling (ranks in every annealing record). */
const base = {
  seed: 1,
  data: { dataset: "mnist", classes: "5-9", trainLimit: 300 },
  training: { localSteps: 2, batch: 8 },
  evaluation: { every: 1 },
  execution: { workers: 0, threads: 1 },
  strategy: { name: "sa-fedlora", initiating: { rounds: 1 }, adapter: { initRank: 4, targetRank: 1 }, heatRounds: 1, coolRounds: 1 },
};

/** Records every value #round and #accuracy show and the client table's rows, from before the page's own script runs. */
const RECORDER = `
window.__seen = { round: [], accuracy: [], clients: [] };
document.addEventListener("DOMContentLoaded", () => {
  const push = (list, v) => { if (list[list.length - 1] !== v) list.push(v); };
  for (const id of ["round", "accuracy"]) {
    const el = document.getElementById(id);
    new MutationObserver(() => push(window.__seen[id], el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
  }
  const body = document.querySelector("#clients tbody");
  new MutationObserver(() => {
    const rows = [...body.rows].map((r) => r.dataset.clientId + "|" + r.dataset.online + "|" + r.querySelector('[data-col="replied"]').textContent);
    push(window.__seen.clients, rows.join(","));
  }).observe(body, { childList: true });
});
`;

interface Seen {
  readonly round: string[];
  readonly accuracy: string[];
  readonly clients: string[];
}

interface Row {
  readonly id: string;
  readonly online: string;
  readonly state: string;
  readonly device: string;
  readonly replied: string;
}

/**
 * Predicates run in the page, so they are functions that reach the page's document through
 * globalThis (this file is compiled without the DOM types); not strings, which Playwright evaluates
 * with eval, which the dashboard's content policy does not allow.
 */
// biome-ignore lint/suspicious/noExplicitAny: the page's DOM, untyped in this file
type AnyDom = any;

const seen = (page: Page): Promise<Seen> => page.evaluate("window.__seen") as Promise<Seen>;
const text = (page: Page, sel: string): Promise<string> => page.locator(sel).innerText();

function rows(page: Page): Promise<Row[]> {
  return page.evaluate(`[...document.querySelectorAll("#clients tbody tr")].map((r) => ({
    id: r.dataset.clientId, online: r.dataset.online, state: r.dataset.state,
    device: r.querySelector('[data-col="device"]').textContent, replied: r.querySelector('[data-col="replied"]').textContent,
  }))`) as Promise<Row[]>;
}

async function openDashboard(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1280, height: 1000 });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.addInitScript({ content: RECORDER });
  await page.goto(url);
  return { page, errors };
}

/** The test accuracy of the last record as the page formats it. */
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

async function metrics(dir: string): Promise<{ round: number; testAccuracy: number; accepted: number }[]> {
  return (await readFile(join(dir, "metrics.jsonl"), "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { round: number; testAccuracy: number; accepted: number });
}

/** Intermediate "k / n" values (0 < k < n): the counter moved while the run went, not only at its end. */
const intermediate = (values: readonly string[], n: number) => values.filter((v) => new RegExp(`^([1-9]\\d*) / ${n}$`).test(v) && Number(v.split(" ")[0]) < n);

describe("dashboard in headless Chromium", { skip, timeout: 120_000 }, () => {
  let dir = "";
  let browser: Browser;
  let h: Harness;
  const procs = new Set<ChildProcess>();

  before(async () => {
    assert.ok(existsSync(join(WEB_DIST, "dashboard.html")), `${WEB_DIST}dashboard.html is missing: run node scripts/build-web.mjs (npm run build does)`);
    dir = await mkdtemp(join(tmpdir(), "safl-dashboard-"));
    h = new Harness(dir);
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchBrowser();
  });
  after(async () => {
    for (const p of procs) p.kill("SIGKILL");
    h?.dispose();
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("safl simulate --ui: round, accuracy, heat map and clients follow the run; the finished run stays on show", async () => {
    const rounds = 5;
    const cfgPath = await h.writeConfig("sim.json", { ...base, rounds, clients: { count: 4, perRound: 3, partition: "iid" } });
    const out = join(dir, "sim-out");
    const proc = spawn(process.execPath, [safl, "simulate", "--config", cfgPath, "--out", out, "--force", "--ui", "--ui-listen", "127.0.0.1:0", "--ui-wait", "60"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    procs.add(proc);
    let stderr = "";
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      proc.stderr!.on("data", (c: Buffer) => {
        stderr += c.toString();
        const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      void exited.then((code) => reject(new Error(`simulate exited (${code}) before printing the dashboard URL:\n${stderr.slice(-2000)}`)));
    });
    proc.stdout!.resume();
    const { page, errors } = await openDashboard(browser, url);
    await page.waitForFunction(() => (globalThis as AnyDom).document.getElementById("status").dataset.value === "finished", undefined, { timeout: 60_000 });
    // The page says finished with the last round; the outputs are written just after.
    const end = Date.now() + 30_000;
    while (!/still serving the finished run/.test(stderr) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, /still serving the finished run at http/);
    const records = await metrics(out);
    assert.equal(records.length, rounds);
    assert.equal(await text(page, "#round"), `${rounds} / ${rounds}`);
    assert.equal(await text(page, "#accuracy"), pct(records[rounds - 1]!.testAccuracy));
    const s = await seen(page);
    assert.ok(intermediate(s.round, rounds).length >= 1, `the round counter moved during the run: ${JSON.stringify(s.round)}`);
    assert.ok(s.accuracy.length >= 2, `accuracy updated during the run: ${JSON.stringify(s.accuracy)}`);
    const table = await rows(page);
    assert.deepEqual(
      table.map((r) => r.id),
      ["client-0000", "client-0001", "client-0002", "client-0003"],
    );
    assert.ok(table.every((r) => r.device === "simulated" && r.online === "true"));
    const replied = table.reduce((n, r) => n + Number(r.replied.split(" / ")[1]), 0);
    assert.equal(replied, records.reduce((n, r) => n + r.accepted, 0), "the table counts every accepted reply");
    // The SVD form's annealing rounds carry ranks: one cell per module and ranked round.
    assert.ok((await page.locator("#heatmap rect[data-round]").count()) > 0, "the rank heat map has cells");
    assert.equal(await page.locator("#connection").getAttribute("data-state"), "live");
    assert.ok((await page.locator("#chart-accuracy-round polyline").count()) >= 1);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-simulate.png"), fullPage: true });
    assert.deepEqual(errors, [], "no page errors");
    proc.kill("SIGINT");
    assert.equal(await exited, 0, `simulate --ui exits 0 on Ctrl-C after the run:\n${stderr.slice(-2000)}`);
    procs.delete(proc);
    await page.close();
  });

  test("safl server --ui with two Node clients: clients, rounds and accuracy as the run goes, then the final state after the server exits", async () => {
    const rounds = 4;
    const cfgPath = await h.writeConfig("dep.json", {
      ...base,
      rounds,
      clients: { count: 2, perRound: 2, partition: "iid" },
      deployment: { heartbeatSeconds: 1, roundTimeoutSeconds: 60 },
    });
    const tokens = await h.tokens(["dash-c0", "dash-c1"]);
    const out = join(dir, "dep-out");
    const server = h.server(["--config", cfgPath, "--state", join(dir, "dep.db"), "--out", out, "--tokens", tokens.file, "--ui"]);
    const port = await server.port;
    const { page, errors } = await openDashboard(browser, `http://127.0.0.1:${port}/`);
    assert.match(await text(page, "#status"), /waiting for clients/);
    const clients = [0, 1].map((i) => h.client(port, tokens.tokens.get(`dash-c${i}`)!, ["--dataset", "mnist", "--partition", String(i), "--cache", join(dir, `cache-${i}`)]));
    await page.waitForFunction(() => (globalThis as AnyDom).document.querySelectorAll('#clients tbody tr[data-online="true"]').length === 2, undefined, { timeout: 60_000 });
    const live = await rows(page);
    assert.deepEqual(
      live.map((r) => [r.id, r.device]),
      [
        ["client-0000", "node"],
        ["client-0001", "node"],
      ],
    );
    await page.waitForFunction(() => Number((globalThis as AnyDom).document.getElementById("round").dataset.value) >= 2, undefined, { timeout: 60_000 });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    assert.equal(await server.exited, 0, `server failed:\n${server.lines.slice(-30).join("\n")}`);
    const codes = await Promise.all(clients.map((c) => c.exited));
    assert.deepEqual(codes, [0, 0], clients.map((c) => c.output().slice(-1000)).join("\n"));
    // The server is gone: the page says so and keeps what it showed last.
    await page.waitForFunction(() => (globalThis as AnyDom).document.getElementById("connection").dataset.state === "lost", undefined, { timeout: 15_000 });
    assert.match(await text(page, "#connection"), /connection lost, retrying/);
    const records = await metrics(out);
    assert.equal(records.length, rounds);
    assert.equal(await text(page, "#round"), `${rounds} / ${rounds}`);
    assert.equal(await page.locator("#status").getAttribute("data-value"), "finished");
    assert.equal(await text(page, "#accuracy"), pct(records[rounds - 1]!.testAccuracy));
    const s = await seen(page);
    assert.ok(intermediate(s.round, rounds).length >= 1, `the round counter moved during the run: ${JSON.stringify(s.round)}`);
    const repliedSums = new Set(s.clients.map((sig) => sig.split(",").reduce((n, r) => n + Number(r.split("|")[2]?.split(" / ")[1] ?? 0), 0)));
    assert.ok(repliedSums.size >= 3, `reply counts grew round by round: ${JSON.stringify(s.clients)}`);
    const final = await rows(page);
    assert.equal(final.reduce((n, r) => n + Number(r.replied.split(" / ")[1]), 0), records.reduce((n, r) => n + r.accepted, 0));
    assert.deepEqual(errors, [], "no page errors");
    await page.close();
  });
});
