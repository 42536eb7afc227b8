/**
 * How a simulation scales with the number of virtual clients: for each client count in `--clients`
 * runs `--rounds` rounds of the main job (MNIST digits 5-9, Dirichlet(0.5) label skew, `--per-round`
 * clients sampled per round) in a fresh child process, so each run's memory is its own, and reports
 * per run the peak resident set size (the larger of `process.memoryUsage().rss` sampled every 50 ms
 * and `process.resourceUsage().maxRSS` at the end), the median round seconds, and the median
 * per-round overhead — the share of a round spent outside local training (timing.clientTrain) and
 * server-side evaluation (timing.evaluate) — with the medians of every timing part. Medians skip
 * round 1 (it compiles the onnxruntime sessions). Targets: peak RSS < 2048 MB and overhead < 5%.
 *
 * MNIST digits 5-9 has 3,898 training images, so 1000 clients hold about 4 each; `--batch`
 * (training.batch, default 4, for every run so they compare) keeps local steps sensible, and a
 * client with fewer examples than the batch wraps around its data. SA-FedLoRA runs shorter than its
 * default schedule needs (9 rounds) use 1 initiating round and, room permitting, 1 heating and 1
 * cooling round (the overrides are printed).
 *
 *   node dist/bench/sim-scale.js [--clients 20,1000] [--per-round 10] [--rounds 5] [--strategy sa-fedlora]
 *                                [--batch 4] [--set key.path=value ...] [--json]
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { RoundRecord, RoundTiming } from "../src/fl/records.js";
import { NodeRuntime } from "../src/runtime/node.js";
import { applyOverrides, parseRunConfig, type RunConfig } from "../src/sim/config.js";
import { prepareSimulation, simulate } from "../src/sim/simulate.js";
import { workerGridFactory } from "../src/sim/worker-grid.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "20,1000" },
    "per-round": { type: "string", default: "10" },
    rounds: { type: "string", default: "5" },
    strategy: { type: "string", default: "sa-fedlora" },
    batch: { type: "string", default: "4" },
    set: { type: "string", multiple: true, default: [] },
    json: { type: "boolean", default: false },
    // Internal: run one simulation (the first --clients entry) and print its measurements as JSON.
    child: { type: "boolean", default: false },
  },
});

const RSS_TARGET_MB = 2048;
const OVERHEAD_TARGET = 0.05;
const SAMPLE_MS = 50;
const USAGE =
  "usage: node dist/bench/sim-scale.js [--clients 20,1000] [--per-round N>0] [--rounds N>1] [--strategy sa-fedlora|fedavg|...] [--batch N>0] [--set key.path=value ...] [--json]";

const clientCounts = values.clients.split(",").map((s) => Number(s.trim()));
const perRound = Number(values["per-round"]);
const rounds = Number(values.rounds);
const batch = Number(values.batch);
const isPosInt = (n: number) => Number.isInteger(n) && n > 0;
if (!clientCounts.every(isPosInt) || !isPosInt(perRound) || !isPosInt(batch) || !(Number.isInteger(rounds) && rounds >= 2)) {
  console.error(USAGE);
  process.exit(2);
}

/**
 * Schedule overrides for runs shorter than the strategy's default schedule needs (SA-FedLoRA: 2
 * initiating + 2 heating + 1 decay + 4 cooling = 9 rounds; FedAdaLoRA: 7): one initiating round, then
 * one heating and one cooling round when the annealing rounds leave room for them.
 */
function shortSchedule(strategy: string, rounds: number): string[] {
  const fit = (annealing: number) => [`strategy.heatRounds=${annealing >= 3 ? 1 : 0}`, `strategy.coolRounds=${annealing >= 2 ? 1 : 0}`];
  if (strategy === "sa-fedlora" && rounds < 9) return ["strategy.initiating.rounds=1", ...fit(rounds - 1)];
  if (strategy === "fedadalora" && rounds < 7) return fit(rounds);
  return [];
}

/** The overrides of one run (the schedule is shortened when the default one does not fit). */
function overridesFor(clients: number): string[] {
  const o = [`clients.count=${clients}`, `clients.perRound=${perRound}`, `rounds=${rounds}`, "clients.partition=dirichlet:0.5", `training.batch=${batch}`, `strategy.name=${values.strategy}`];
  o.push(...shortSchedule(values.strategy, rounds));
  return [...o, ...values.set];
}

const configFor = (clients: number): RunConfig => parseRunConfig(applyOverrides({}, overridesFor(clients)), "sim-scale config");

interface RoundRow {
  round: number;
  stage: string;
  seconds: number;
  timing: RoundTiming;
  accepted: number;
  sampled: number;
  /** Training-message bytes server → clients and back this round. */
  downBytes: number;
  upBytes: number;
  testAccuracy?: number;
}

interface ChildResult {
  clients: number;
  overrides: string[];
  baselineRssMB: number;
  sampledPeakRssMB: number;
  maxRssMB: number;
  peakRssMB: number;
  setupSeconds: number;
  wallSeconds: number;
  partition: { minSize: number; maxSize: number };
  rounds: RoundRow[];
}

const MB = 1024 * 1024;

async function runChild(): Promise<void> {
  const clients = clientCounts[0]!;
  const cfg = configFor(clients);
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => {
    const rss = process.memoryUsage().rss;
    if (rss > peak) peak = rss;
  }, SAMPLE_MS);
  const t0 = performance.now();
  const rows: RoundRow[] = [];
  let setupSeconds = 0;
  let partitionSizes = { minSize: 0, maxSize: 0 };
  const runtime = new NodeRuntime({ threads: cfg.execution.threads });
  try {
    const setup = await prepareSimulation(cfg);
    setupSeconds = (performance.now() - t0) / 1000;
    partitionSizes = { minSize: setup.partition.minSize, maxSize: setup.partition.maxSize };
    await simulate(
      cfg,
      runtime,
      {
        onRound: (r: RoundRecord) => {
          rows.push({
            round: r.round,
            stage: r.stage,
            seconds: r.seconds,
            timing: r.timing,
            accepted: r.accepted,
            downBytes: r.down.bytes,
            upBytes: r.up.bytes,
            sampled: r.sampled,
            ...(r.testAccuracy !== undefined ? { testAccuracy: r.testAccuracy } : {}),
          });
          console.error(`  [${clients} clients] round ${r.round}/${cfg.rounds} (${r.stage}): ${r.seconds.toFixed(2)} s, ${r.accepted}/${r.sampled} accepted`);
        },
        ...(cfg.execution.workers > 0 ? { makeGrid: workerGridFactory(cfg) } : {}),
      },
      setup,
    );
  } finally {
    clearInterval(timer);
    await runtime.release();
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  const sampled = Math.max(peak, process.memoryUsage().rss);
  const maxRss = process.resourceUsage().maxRSS * 1024; // kB on Linux
  const result: ChildResult = {
    clients,
    overrides: overridesFor(clients),
    baselineRssMB: baseline / MB,
    sampledPeakRssMB: sampled / MB,
    maxRssMB: maxRss / MB,
    peakRssMB: Math.max(sampled, maxRss) / MB,
    setupSeconds,
    wallSeconds,
    partition: partitionSizes,
    rounds: rows,
  };
  console.log(JSON.stringify(result));
}

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function summarizeRun(r: ChildResult) {
  const measured = r.rounds.filter((x) => x.round > 1);
  const overhead = measured.map((x) => (x.seconds > 0 ? (x.seconds - x.timing.clientTrain - x.timing.evaluate) / x.seconds : 0));
  const part = (k: keyof RoundTiming) => median(measured.map((x) => x.timing[k]));
  const medianOverhead = median(overhead);
  return {
    clients: r.clients,
    peakRssMB: r.peakRssMB,
    sampledPeakRssMB: r.sampledPeakRssMB,
    maxRssMB: r.maxRssMB,
    baselineRssMB: r.baselineRssMB,
    setupSeconds: r.setupSeconds,
    wallSeconds: r.wallSeconds,
    partition: r.partition,
    roundsMeasured: measured.map((x) => x.round),
    stagesMeasured: measured.map((x) => x.stage),
    medianRoundSeconds: median(measured.map((x) => x.seconds)),
    medianOverheadFraction: medianOverhead,
    medianTiming: { clientTrain: part("clientTrain"), evaluate: part("evaluate"), codec: part("codec"), aggregate: part("aggregate"), other: part("other") },
    accepted: r.rounds.map((x) => x.accepted),
    medianDownMB: median(measured.map((x) => x.downBytes)) / 1e6,
    medianUpMB: median(measured.map((x) => x.upBytes)) / 1e6,
    finalAccuracy: r.rounds[r.rounds.length - 1]?.testAccuracy,
    rssOk: r.peakRssMB < RSS_TARGET_MB,
    overheadOk: medianOverhead < OVERHEAD_TARGET,
    rounds: r.rounds,
  };
}

async function runParent(): Promise<void> {
  // Validate every config up front, so a bad flag fails before minutes of work.
  try {
    for (const n of clientCounts) configFor(n);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  }
  const script = fileURLToPath(import.meta.url);
  const runs: ReturnType<typeof summarizeRun>[] = [];
  for (const n of clientCounts) {
    const args = [script, "--child", "--clients", String(n), "--per-round", String(perRound), "--rounds", String(rounds), "--strategy", values.strategy, "--batch", String(batch)];
    for (const s of values.set) args.push("--set", s);
    if (!values.json) console.log(`running ${n} clients: node ${args.map((a) => (a === script ? "dist/bench/sim-scale.js" : a)).join(" ")}`);
    const r = spawnSync(process.execPath, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 64 * MB });
    if (r.status !== 0) {
      console.error(`child run with ${n} clients failed (exit ${r.status}${r.signal ? `, signal ${r.signal}` : ""}); its stdout:\n${r.stdout}`);
      process.exit(1);
    }
    runs.push(summarizeRun(JSON.parse(r.stdout.trim().split("\n").pop()!) as ChildResult));
  }
  const cfg = configFor(clientCounts[0]!);
  const result = {
    strategy: cfg.strategy.name,
    perRound,
    rounds,
    batch,
    partition: cfg.clients.partition,
    dataset: `${cfg.data.dataset} ${cfg.data.classes ?? "all"}`,
    threads: cfg.execution.threads,
    workers: cfg.execution.workers,
    overrides: overridesFor(clientCounts[0]!).slice(1),
    skippedRounds: [1],
    targets: { peakRssMB: RSS_TARGET_MB, overheadFraction: OVERHEAD_TARGET },
    runs,
    allOk: runs.every((r) => r.rssOk && r.overheadOk),
  };
  if (values.json) {
    console.log(JSON.stringify(result));
    return;
  }
  const s = (x: number) => `${x.toFixed(3)} s`;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(
    `\n${result.strategy} on ${result.dataset}, ${result.partition}, ${perRound} clients per round, ${rounds} rounds, training.batch=${batch} ` +
      `(MNIST 5-9 has 3,898 training images: ~${Math.round(3898 / Math.max(...clientCounts))} per client at ${Math.max(...clientCounts)} clients; smaller clients wrap around their data)`,
  );
  console.log(`overrides: ${result.overrides.join(" ")}; execution: ${result.workers > 0 ? `${result.workers} workers` : `sequential, ${result.threads} onnxruntime threads`}`);
  console.log(`each client count runs in a fresh child process; medians skip round 1 (session compile warm-up)`);
  for (const r of runs) {
    console.log(`\n${r.clients} clients (client sizes ${r.partition.minSize}-${r.partition.maxSize} examples; measured rounds ${r.roundsMeasured.join(",")}: ${r.stagesMeasured.join(",")})`);
    console.log(
      `  peak RSS ${r.peakRssMB.toFixed(1)} MB (sampled every ${SAMPLE_MS} ms ${r.sampledPeakRssMB.toFixed(1)} MB, maxRSS ${r.maxRssMB.toFixed(1)} MB, at start ${r.baselineRssMB.toFixed(1)} MB)`,
    );
    console.log(`  setup ${s(r.setupSeconds)}, wall ${s(r.wallSeconds)}, accepted per round ${r.accepted.join(",")}, final test accuracy ${r.finalAccuracy === undefined ? "-" : pct(r.finalAccuracy)}`);
    console.log(`  median round ${s(r.medianRoundSeconds)}; median overhead (seconds - clientTrain - evaluate) / seconds = ${pct(r.medianOverheadFraction)}`);
    const t = r.medianTiming;
    console.log(`  median split: clientTrain ${s(t.clientTrain)}, evaluate ${s(t.evaluate)}, codec ${s(t.codec)}, aggregate ${s(t.aggregate)}, other ${s(t.other)}`);
    console.log(`  median traffic per round: down ${r.medianDownMB.toFixed(2)} MB, up ${r.medianUpMB.toFixed(2)} MB`);
    console.log(`  peak RSS < ${RSS_TARGET_MB} MB: ${r.rssOk ? "PASS" : "FAIL"}; overhead < ${100 * OVERHEAD_TARGET}%: ${r.overheadOk ? "PASS" : "FAIL"}`);
  }
  if (runs.length > 1) {
    const a = runs[0]!;
    const b = runs[runs.length - 1]!;
    console.log(
      `\n${a.clients} → ${b.clients} clients: peak RSS ${a.peakRssMB.toFixed(1)} → ${b.peakRssMB.toFixed(1)} MB (${(b.peakRssMB - a.peakRssMB >= 0 ? "+" : "") + (b.peakRssMB - a.peakRssMB).toFixed(1)} MB), ` +
        `median round ${s(a.medianRoundSeconds)} → ${s(b.medianRoundSeconds)}, overhead ${pct(a.medianOverheadFraction)} → ${pct(b.medianOverheadFraction)}`,
    );
  }
  console.log(`\nall targets: ${result.allOk ? "PASS" : "FAIL"}`);
}

if (values.child) await runChild();
else await runParent();
