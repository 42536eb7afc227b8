/**
 * A deployed run with many client identities: `safl server --insecure` on loopback and `--processes`
 * `safl client` processes (default 4) playing `--clients` partitions between them (default 200, i.e.
 * 50 identities per process, one token each, `--partition A-B --tokens-file F --threads 1`),
 * `--per-round` sampled per round (default 20), `--rounds` rounds (default 10), with
 * `deployment.minClients` = every identity, so round 1 starts only when all of them have joined. The
 * setting is small so the run measures the server, not training: MNIST digits 5-9 cut to
 * data.trainLimit 2000 (about 10 examples per client), Dirichlet(0.5), training.localSteps 2, and
 * the default strategy (SA-FedLoRA, which sends each newly sampled client the frozen base once) or
 * `--strategy fedlora` (LoRA rank 2).
 *
 * Reports: the server's peak resident set (VmHWM from /proc/<pid>/status, sampled every 250 ms
 * with VmRSS; the last sample before it exits), the client processes' peaks, the time until every
 * identity had joined (Join is rate limited per remote address, and all of these share
 * 127.0.0.1), the median round seconds over rounds 2..N, and failures: task failures and retried
 * round attempts in the records, client processes that exited non-zero, and the clients' retry and
 * rejoin events (Join refusals for the rate limit are counted apart, they are expected here).
 * Goals: server peak RSS < 500 MB and 0 failures. Linux only (/proc).
 *
 *   npm run build
 *   node dist/bench/deploy-scale.js [--clients 200] [--processes 4] [--per-round 20] [--rounds 10]
 *                                   [--strategy sa-fedlora|fedlora] [--set key.path=value ...] [--keep DIR] [--json]
 */
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { applyOverrides, deploymentSettings, parseRunConfig } from "../src/sim/config.js";
import { Harness, readRun } from "../test/deploy-harness.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "200" },
    processes: { type: "string", default: "4" },
    "per-round": { type: "string", default: "20" },
    rounds: { type: "string", default: "10" },
    strategy: { type: "string", default: "sa-fedlora" },
    set: { type: "string", multiple: true, default: [] },
    keep: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const nClients = Number(values.clients);
const nProcs = Number(values.processes);
const perRound = Number(values["per-round"]);
const rounds = Number(values.rounds);
const isPosInt = (n: number) => Number.isInteger(n) && n > 0;
if (!isPosInt(nClients) || !isPosInt(nProcs) || nClients % nProcs !== 0 || !isPosInt(perRound) || perRound > nClients || !(isPosInt(rounds) && rounds >= 2) || !["sa-fedlora", "fedlora"].includes(values.strategy)) {
  console.error(
    "usage: node dist/bench/deploy-scale.js [--clients N (a multiple of --processes)] [--processes N] [--per-round N<=clients] [--rounds N>1] [--strategy sa-fedlora|fedlora] [--set key.path=value ...] [--keep DIR] [--json]",
  );
  process.exit(2);
}
const RSS_GOAL_MB = 500;
const SAMPLE_MS = 250;

/** SA-FedLoRA needs 9 rounds by default: shorter runs get 1 initiating round and, room permitting, 1 heating and 1 cooling round. */
function strategyOverrides(): string[] {
  if (values.strategy === "fedlora") return ["strategy.name=fedlora", "strategy.adapter.rank=2"];
  if (rounds >= 9) return [];
  return ["strategy.initiating.rounds=1", `strategy.heatRounds=${rounds - 1 >= 3 ? 1 : 0}`, `strategy.coolRounds=${rounds - 1 >= 2 ? 1 : 0}`];
}
const overrides = [
  `rounds=${rounds}`,
  "data.trainLimit=2000",
  `clients.count=${nClients}`,
  `clients.perRound=${perRound}`,
  "training.localSteps=2",
  `deployment.minClients=${nClients}`,
  ...strategyOverrides(),
  ...values.set,
];
const rawConfig = applyOverrides({}, overrides);
const cfg = parseRunConfig(rawConfig, "deploy-scale config");
const dep = deploymentSettings(cfg);

interface Rec {
  round: number;
  stage: string;
  seconds: number;
  accepted: number;
  sampled: number;
  testAccuracy?: number;
  failures: { clientId: string; code: string }[];
  retriedAttempts?: unknown[];
  down: { bytes: number };
  up: { bytes: number };
}

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** VmRSS and VmHWM of a live process in MB, or undefined once it is gone. */
function memOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
    return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
  } catch {
    return undefined;
  }
}

class MemWatch {
  peakRss = 0;
  lastRss = 0;
  lastHwm = 0;
  samples = 0;
  constructor(readonly pid: number) {}
  sample(): void {
    const m = memOf(this.pid);
    // A process that has exited but not been reaped has a status file without these lines.
    if (!m || Number.isNaN(m.rss)) return;
    this.samples++;
    this.lastRss = m.rss;
    if (m.rss > this.peakRss) this.peakRss = m.rss;
    if (m.hwm > this.lastHwm) this.lastHwm = m.hwm;
  }
  get peak(): number {
    return Math.max(this.peakRss, this.lastHwm);
  }
}

const dir = values.keep ?? (await mkdtemp(join(tmpdir(), "safl-deploy-scale-")));
if (values.keep !== undefined) {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
}
const h = new Harness(dir);
let exitCode = 0;
try {
  if (!values.json) console.error(`making ${nClients} tokens in ${dir}`);
  const ids = Array.from({ length: nClients }, (_, i) => `s${i}`);
  const tokens = await h.tokens(ids);
  const per = nClients / nProcs;
  const ranges = Array.from({ length: nProcs }, (_, g) => [g * per, (g + 1) * per - 1] as const);
  const files: string[] = [];
  for (const [g, [a, b]] of ranges.entries()) {
    const entries: [string, string][] = [];
    for (let i = a; i <= b; i++) entries.push([String(i), tokens.tokens.get(`s${i}`)!]);
    files.push(await h.writeConfig(`tokens-${g}.json`, Object.fromEntries(entries)));
  }
  const cfgPath = await h.writeConfig("run.json", rawConfig);
  const out = join(dir, "out");

  const t0 = performance.now();
  const server = h.server(["--config", cfgPath, "--state", join(dir, "state.db"), "--out", out, "--tokens", tokens.file]);
  const serverMem = new MemWatch(server.proc.pid!);
  let joined = 0;
  /** The server's VmRSS (MB) when it started listening and when every identity had joined. */
  const rssAt = { listening: Number.NaN, allJoined: Number.NaN };
  let allJoinedAt = Number.NaN;
  let firstRecordAt = Number.NaN;
  let buf = "";
  server.proc.stdout!.on("data", (c: Buffer) => {
    buf += c.toString("utf8");
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('{"log":"joined: ') && ++joined === nClients) {
        allJoinedAt = performance.now();
        rssAt.allJoined = memOf(server.proc.pid!)?.rss ?? Number.NaN;
      }
      if (Number.isNaN(firstRecordAt) && line.startsWith('{"round":')) firstRecordAt = performance.now();
      i = buf.indexOf("\n");
    }
  });
  const port = await server.port;
  const listeningAt = performance.now();
  rssAt.listening = memOf(server.proc.pid!)?.rss ?? Number.NaN;
  const clients = ranges.map(([a, b], g) => h.client(port, "", ["--dataset", cfg.data.dataset, "--partition", `${a}-${b}`, "--tokens-file", files[g]!, "--cache", join(dir, `cache-${g}`), "--json"]));
  const clientMem = clients.map((c) => new MemWatch(c.proc.pid!));
  const timer = setInterval(() => {
    serverMem.sample();
    for (const m of clientMem) m.sample();
  }, SAMPLE_MS);
  let serverCode: number | null;
  let clientCodes: (number | null)[];
  try {
    serverCode = await server.exited;
    clientCodes = await Promise.all(clients.map((c) => c.exited));
  } finally {
    clearInterval(timer);
  }
  const tEnd = performance.now();
  if (values.keep !== undefined) {
    await writeFile(join(dir, "server.log"), `${server.lines.join("\n")}\n`);
    for (const [i, c] of clients.entries()) await writeFile(join(dir, `client-${i}.log`), c.output());
  }
  if (serverCode !== 0) throw new Error(`safl server exited ${serverCode}:\n${server.lines.slice(-30).join("\n")}`);
  const records = (await readRun(out)).records as unknown as Rec[];

  // Client-side events: retries (by call and code) and rejoins.
  const retries = new Map<string, number>();
  let rejoins = 0;
  let tasks = 0;
  for (const c of clients) {
    for (const line of c.output().split("\n")) {
      if (!line.startsWith("{")) continue;
      let e: { event?: string; call?: string; code?: string; status?: string };
      try {
        e = JSON.parse(line) as typeof e;
      } catch {
        continue;
      }
      if (e.event === "retry") retries.set(`${e.call} ${e.code}`, (retries.get(`${e.call} ${e.code}`) ?? 0) + 1);
      else if (e.event === "rejoin") rejoins++;
      else if (e.event === "task" && e.status === "accepted") tasks++;
    }
  }
  const joinRateRetries = retries.get("Join ResourceExhausted") ?? 0;
  const otherRetries = [...retries].filter(([k]) => k !== "Join ResourceExhausted").reduce((n, [, v]) => n + v, 0);
  const taskFailures = records.reduce((n, r) => n + r.failures.length, 0);
  const retriedAttempts = records.reduce((n, r) => n + (r.retriedAttempts?.length ?? 0), 0);
  const badClients = clientCodes.filter((c) => c !== 0).length;
  const failures = taskFailures + retriedAttempts + badClients + otherRetries + rejoins;
  const later = records.filter((r) => r.round > 1);
  const result = {
    clients: nClients,
    processes: nProcs,
    perRound,
    rounds,
    strategy: cfg.strategy.name,
    overrides,
    heartbeatSeconds: dep.heartbeatSeconds,
    serverPeakRssMB: serverMem.peak,
    serverPeakSampledRssMB: serverMem.peakRss,
    serverLastVmHwmMB: serverMem.lastHwm,
    serverSamples: serverMem.samples,
    serverRssAtListeningMB: rssAt.listening,
    serverRssAllJoinedMB: rssAt.allJoined,
    serverRssLastSampleMB: serverMem.lastRss,
    clientPeakRssMB: clientMem.map((m) => m.peak),
    listeningSeconds: (listeningAt - t0) / 1000,
    allJoinedSeconds: (allJoinedAt - t0) / 1000,
    firstRoundEndSeconds: (firstRecordAt - t0) / 1000,
    wallSeconds: (tEnd - t0) / 1000,
    roundSeconds: records.map((r) => r.seconds),
    medianRoundSeconds: median(later.map((r) => r.seconds)),
    accepted: records.map((r) => `${r.accepted}/${r.sampled}`),
    medianDownMB: median(later.map((r) => r.down.bytes)) / 1e6,
    medianUpMB: median(later.map((r) => r.up.bytes)) / 1e6,
    finalAccuracy: records[records.length - 1]?.testAccuracy ?? null,
    acceptedTasks: tasks,
    failures: { total: failures, taskFailures, retriedAttempts, clientProcessesFailed: badClients, retries: otherRetries, rejoins },
    joinRateLimitRetries: joinRateRetries,
    retriesByCall: Object.fromEntries(retries),
    goals: { serverPeakRssMB: RSS_GOAL_MB, failures: 0 },
    rssOk: serverMem.peak < RSS_GOAL_MB,
    failuresOk: failures === 0,
  };
  if (!(result.rssOk && result.failuresOk)) exitCode = 1;
  if (values.json) console.log(JSON.stringify(result));
  else {
    const s = (x: number) => `${x.toFixed(2)} s`;
    console.log(`${result.strategy}: ${nClients} identities in ${nProcs} client processes (${per} each), ${perRound} per round, ${rounds} rounds, minClients ${nClients}`);
    console.log(`overrides: ${overrides.join(" ")}`);
    console.log(`server peak RSS ${result.serverPeakRssMB.toFixed(1)} MB (VmHWM ${result.serverLastVmHwmMB.toFixed(1)} MB, max sampled VmRSS ${result.serverPeakSampledRssMB.toFixed(1)} MB, ${result.serverSamples} samples every ${SAMPLE_MS} ms)`);
    console.log(`server VmRSS when listening ${result.serverRssAtListeningMB.toFixed(1)} MB, when all had joined ${result.serverRssAllJoinedMB.toFixed(1)} MB, at the last sample ${result.serverRssLastSampleMB.toFixed(1)} MB`);
    console.log(`client processes' peak RSS: ${result.clientPeakRssMB.map((x) => `${x.toFixed(0)} MB`).join(", ")}`);
    console.log(`server listening after ${s(result.listeningSeconds)}; all ${nClients} identities joined after ${s(result.allJoinedSeconds)} (${joinRateRetries} Join retries for the per-address rate limit); round 1 ended after ${s(result.firstRoundEndSeconds)}; wall ${s(result.wallSeconds)}`);
    console.log(`round seconds: ${result.roundSeconds.map((x) => x.toFixed(2)).join(" ")}; median over rounds 2..${rounds}: ${s(result.medianRoundSeconds)}`);
    console.log(`accepted per round: ${result.accepted.join(" ")}; ${tasks} tasks answered; median traffic per round down ${result.medianDownMB.toFixed(2)} MB, up ${result.medianUpMB.toFixed(2)} MB; final test accuracy ${result.finalAccuracy === null ? "-" : `${(100 * result.finalAccuracy).toFixed(2)}%`}`);
    console.log(
      `failures: ${failures} (task failures ${taskFailures}, retried round attempts ${retriedAttempts}, client processes failed ${badClients}, other retries ${otherRetries}${otherRetries > 0 ? ` ${JSON.stringify(Object.fromEntries([...retries].filter(([k]) => k !== "Join ResourceExhausted")))}` : ""}, rejoins ${rejoins})`,
    );
    console.log(`goals: server peak RSS < ${RSS_GOAL_MB} MB ${result.rssOk ? "met" : "NOT met"}; 0 failures ${result.failuresOk ? "met" : "NOT met"}`);
  }
} finally {
  h.dispose();
  if (values.keep === undefined) await rm(dir, { recursive: true, force: true });
}
process.exitCode = exitCode;
