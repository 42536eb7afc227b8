/**
 * Sequential clients versus a worker pool, on the main job (20 clients, 10 per round, MNIST digits
 * 5-9, Dirichlet(0.5)) cut to `--rounds` rounds: "sequential" runs the sampled clients one after
 * another in this process with 2 onnxruntime threads (execution.workers=0, execution.threads=2);
 * "workers" runs them in a pool of 2 worker threads with 1 onnxruntime thread each
 * (execution.workers=2). Each mode runs `--reps` times, alternating, in this process. Reports per
 * mode the median round seconds and the median timing.clientTrain per round (both skipping round 1,
 * which compiles the sessions), and the wall time (setup + all rounds + pool start-up); prints the
 * speedup sequential/workers of the median round seconds and checks that both modes accepted the
 * same number of replies in every round. In worker mode timing.clientTrain sums the compute seconds
 * of the workers, which run in parallel, so compare round seconds, not clientTrain. SA-FedLoRA runs
 * shorter than its default schedule needs (9 rounds) use 1 initiating round and, room permitting, 1
 * heating and 1 cooling round.
 *
 *   node dist/bench/sim-execution.js [--rounds 4] [--strategy sa-fedlora|fedavg] [--reps 1] [--set key.path=value ...] [--json]
 */
import { parseArgs } from "node:util";
import type { RoundRecord, RoundTiming } from "../src/fl/records.js";
import { NodeRuntime } from "../src/runtime/node.js";
import { applyOverrides, parseRunConfig, type RunConfig } from "../src/sim/config.js";
import { prepareSimulation, simulate } from "../src/sim/simulate.js";
import { workerGridFactory } from "../src/sim/worker-grid.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "4" },
    strategy: { type: "string", default: "sa-fedlora" },
    reps: { type: "string", default: "1" },
    set: { type: "string", multiple: true, default: [] },
    json: { type: "boolean", default: false },
  },
});
const rounds = Number(values.rounds);
const reps = Number(values.reps);
const STRATEGIES = ["sa-fedlora", "fedavg"];
if (!(Number.isInteger(rounds) && rounds >= 2) || !(Number.isInteger(reps) && reps > 0) || !STRATEGIES.includes(values.strategy)) {
  console.error("usage: node dist/bench/sim-execution.js [--rounds N>1] [--strategy sa-fedlora|fedavg] [--reps N>0] [--set key.path=value ...] [--json]");
  process.exit(2);
}

const MODES = {
  sequential: ["execution.workers=0", "execution.threads=2"],
  workers: ["execution.workers=2"],
} as const;
type Mode = keyof typeof MODES;

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

function overridesFor(mode: Mode): string[] {
  const o = [`rounds=${rounds}`, `strategy.name=${values.strategy}`];
  o.push(...shortSchedule(values.strategy, rounds));
  return [...o, ...MODES[mode], ...values.set];
}
const configFor = (mode: Mode): RunConfig => parseRunConfig(applyOverrides({}, overridesFor(mode)), `sim-execution config (${mode})`);

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface RunResult {
  mode: Mode;
  rep: number;
  setupSeconds: number;
  wallSeconds: number;
  records: { round: number; stage: string; seconds: number; timing: RoundTiming; accepted: number; sampled: number; testAccuracy?: number }[];
  finalAccuracy: number | undefined;
}

async function runOnce(mode: Mode, rep: number, cfg: RunConfig): Promise<RunResult> {
  const t0 = performance.now();
  const runtime = new NodeRuntime({ threads: cfg.execution.threads });
  const records: RunResult["records"] = [];
  let setupSeconds = 0;
  let finalAccuracy: number | undefined;
  try {
    const setup = await prepareSimulation(cfg);
    setupSeconds = (performance.now() - t0) / 1000;
    const result = await simulate(
      cfg,
      runtime,
      {
        onRound: (r: RoundRecord) => {
          records.push({
            round: r.round,
            stage: r.stage,
            seconds: r.seconds,
            timing: r.timing,
            accepted: r.accepted,
            sampled: r.sampled,
            ...(r.testAccuracy !== undefined ? { testAccuracy: r.testAccuracy } : {}),
          });
          if (!values.json) console.error(`  [${mode} rep ${rep}] round ${r.round}/${cfg.rounds} (${r.stage}): ${r.seconds.toFixed(2)} s, ${r.accepted}/${r.sampled} accepted`);
        },
        ...(cfg.execution.workers > 0 ? { makeGrid: workerGridFactory(cfg) } : {}),
      },
      setup,
    );
    finalAccuracy = result.summary.finalAccuracy;
  } finally {
    await runtime.release();
  }
  return { mode, rep, setupSeconds, wallSeconds: (performance.now() - t0) / 1000, records, finalAccuracy };
}

let configs: Record<Mode, RunConfig>;
try {
  configs = { sequential: configFor("sequential"), workers: configFor("workers") };
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(2);
}

const runs: RunResult[] = [];
for (let rep = 1; rep <= reps; rep++) {
  // Alternate which mode goes first, so drift (thermal, page cache) does not favour one.
  const order: Mode[] = rep % 2 === 1 ? ["sequential", "workers"] : ["workers", "sequential"];
  for (const mode of order) runs.push(await runOnce(mode, rep, configs[mode]));
}

function modeSummary(mode: Mode) {
  const mine = runs.filter((r) => r.mode === mode);
  const measured = mine.flatMap((r) => r.records.filter((x) => x.round > 1));
  return {
    mode,
    overrides: overridesFor(mode),
    runs: mine.length,
    medianRoundSeconds: median(measured.map((x) => x.seconds)),
    medianClientTrainSeconds: median(measured.map((x) => x.timing.clientTrain)),
    medianEvaluateSeconds: median(measured.map((x) => x.timing.evaluate)),
    wallSeconds: mine.map((r) => r.wallSeconds),
    medianWallSeconds: median(mine.map((r) => r.wallSeconds)),
    setupSeconds: mine.map((r) => r.setupSeconds),
    accepted: mine.map((r) => r.records.map((x) => x.accepted)),
    finalAccuracy: mine.map((r) => r.finalAccuracy),
    stages: mine[0]?.records.map((x) => x.stage) ?? [],
  };
}

const seq = modeSummary("sequential");
const wrk = modeSummary("workers");
const acceptedKeys = new Set([...seq.accepted, ...wrk.accepted].map((a) => a.join(",")));
const sameAccepted = acceptedKeys.size === 1;
const speedup = seq.medianRoundSeconds / wrk.medianRoundSeconds;
const result = {
  strategy: values.strategy,
  rounds,
  reps,
  clients: configs.sequential.clients.count,
  perRound: configs.sequential.clients.perRound,
  skippedRounds: [1],
  sequential: seq,
  workers: wrk,
  speedupRoundSeconds: speedup,
  speedupWallSeconds: seq.medianWallSeconds / wrk.medianWallSeconds,
  sameAccepted,
};

if (values.json) {
  console.log(JSON.stringify(result));
} else {
  const s = (x: number) => `${x.toFixed(3)} s`;
  const acc = (xs: (number | undefined)[]) => xs.map((x) => (x === undefined ? "-" : `${(100 * x).toFixed(2)}%`)).join(", ");
  console.log(
    `\n${values.strategy}: ${result.clients} clients, ${result.perRound} per round, ${rounds} rounds (${seq.stages.join(",")}), ${reps} rep${reps === 1 ? "" : "s"} per mode, alternating; medians skip round 1 (session compile warm-up)`,
  );
  for (const m of [seq, wrk]) {
    const label = m.mode === "sequential" ? "sequential, 1 process, 2 onnxruntime threads" : "worker pool, 2 workers x 1 onnxruntime thread";
    console.log(`\n${label} (${m.overrides.join(" ")})`);
    console.log(`  median round ${s(m.medianRoundSeconds)}, median clientTrain per round ${s(m.medianClientTrainSeconds)}, median evaluate ${s(m.medianEvaluateSeconds)}`);
    console.log(`  wall ${m.wallSeconds.map(s).join(", ")} (setup ${m.setupSeconds.map(s).join(", ")}); final test accuracy ${acc(m.finalAccuracy)}`);
    console.log(`  accepted per round: ${m.accepted.map((a) => a.join(",")).join(" | ")}`);
  }
  console.log(`\nspeedup sequential/workers: median round ${speedup.toFixed(2)}x, median wall ${result.speedupWallSeconds.toFixed(2)}x`);
  console.log(`(worker clientTrain sums both workers' compute seconds, which overlap; compare round seconds)`);
  console.log(`same accepted counts in both modes: ${sameAccepted ? "yes" : "NO"}`);
}
if (!sameAccepted) process.exitCode = 1;
