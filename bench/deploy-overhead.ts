/**
 * What a deployment costs over a simulation of the same run: the main job (SA-FedLoRA, 20 clients,
 * 10 per round, MNIST digits 5-9, Dirichlet(0.5)) cut to `--rounds` rounds, once as `safl simulate`
 * (the default execution: a pool of 2 worker threads with 1 onnxruntime thread each) and once as a
 * deployed run on loopback — `safl server --insecure` and 2 `safl client` processes playing 10
 * partitions each (`--partition 0-9` / `10-19 --tokens-file`, `--threads 1`), so client compute
 * matches the 2 workers — with the same config file. Each repetition runs both, in alternating
 * order; client caches start empty, so the backbone download is part of the deployed run.
 *
 * Reports per run: the wall time (spawn to the exit of every process), split into start-up (spawn
 * to the start of round 1), the time in rounds (start of round 1 to the last round's record, from
 * each round's `seconds` and the moment its record line was printed) and teardown (the last record
 * to the exit of every process); the median round seconds over rounds 2..N (round 1 compiles the
 * onnxruntime sessions, and in the deployment also waits for the clients to join); then the
 * overhead deployed / simulated − 1 of each (goal ≤ 10% on the wall time), and checks that every
 * round's test accuracy (and test loss, and the final model's bytes) are identical. For the
 * deployment it also reads the clients' `--json` task events: per round the compute seconds of the
 * busiest process against the mean (the contiguous 0-9 / 10-19 split against the simulation pool's
 * index-mod-2 split, computed from the same per-client times). Medians and ranges over the
 * repetitions. SA-FedLoRA runs shorter than its default schedule needs (9 rounds) use 1 initiating
 * round and, room permitting, 1 heating and 1 cooling round. `--keep DIR` keeps every run's files
 * and the server's and clients' logs.
 *
 *   npm run build
 *   node dist/bench/deploy-overhead.js [--rounds 10] [--reps 1] [--set key.path=value ...] [--keep DIR] [--json]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { applyOverrides, parseRunConfig } from "../src/sim/config.js";
import { Harness, readRun, root, safl } from "../test/deploy-harness.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "10" },
    reps: { type: "string", default: "1" },
    set: { type: "string", multiple: true, default: [] },
    keep: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const rounds = Number(values.rounds);
const reps = Number(values.reps);
if (!(Number.isInteger(rounds) && rounds >= 2) || !(Number.isInteger(reps) && reps > 0)) {
  console.error("usage: node dist/bench/deploy-overhead.js [--rounds N>1] [--reps N>0] [--set key.path=value ...] [--keep DIR] [--json]");
  process.exit(2);
}
const GOAL = 0.1;
const CLIENTS = 20;
const PROCESSES = 2;

/** One initiating round, then 1 heating and 1 cooling round when they fit (SA-FedLoRA needs 9 rounds by default). */
function shortSchedule(n: number): string[] {
  if (n >= 9) return [];
  const annealing = n - 1;
  return ["strategy.initiating.rounds=1", `strategy.heatRounds=${annealing >= 3 ? 1 : 0}`, `strategy.coolRounds=${annealing >= 2 ? 1 : 0}`];
}
const overrides = [`rounds=${rounds}`, ...shortSchedule(rounds), ...values.set];
const rawConfig = applyOverrides({}, overrides);
const cfg = parseRunConfig(rawConfig, "deploy-overhead config");
if (cfg.clients.count !== CLIENTS) {
  console.error(`this benchmark plays ${CLIENTS} clients in ${PROCESSES} processes; clients.count must stay ${CLIENTS}`);
  process.exit(2);
}

interface Rec {
  round: number;
  stage: string;
  seconds: number;
  testAccuracy?: number;
  testLoss?: number;
  timing: { clientTrain: number; evaluate: number };
  failures: unknown[];
}

interface RunFigures {
  wallSeconds: number;
  /** Start of round 1 to the last round's record (seconds). */
  roundsSeconds: number;
  /** Spawn to the start of round 1. */
  startupSeconds: number;
  /** Last round's record to the exit of every process. */
  teardownSeconds: number;
  medianRoundSeconds: number;
  medianClientTrainSeconds: number;
  medianEvaluateSeconds: number;
  roundSeconds: number[];
  accuracies: (number | null)[];
  losses: (number | null)[];
  failures: number;
}

/** Per round, what each client process computed (from its --json task events). */
interface ProcessLoad {
  round: number;
  /** Tasks and summed compute seconds per process. */
  tasks: number[];
  computeSeconds: number[];
  /** max over processes / mean over processes of the compute seconds (1 = perfectly balanced). */
  imbalance: number;
  /**
   * The busiest worker's compute seconds had the same clients been split as the simulation's pool
   * splits them (client index mod 2) instead of in two contiguous ranges: what the static split
   * costs, from the deployment's own per-client compute times.
   */
  busiestModSplitSeconds: number;
}

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Calls `onLine(line, tMs)` for every line a stream prints, stamped when it arrives. */
function stampLines(stream: NodeJS.ReadableStream, onLine: (line: string, t: number) => void): void {
  let buf = "";
  stream.on("data", (chunk: Buffer) => {
    const t = performance.now();
    buf += chunk.toString("utf8");
    let i = buf.indexOf("\n");
    while (i >= 0) {
      onLine(buf.slice(0, i), t);
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  });
}

const exited = (p: ChildProcess): Promise<number | null> => new Promise((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once("exit", (code) => resolve(code))));

function figures(records: Rec[], t0: number, tEnd: number, recordAt: Map<number, number>): RunFigures {
  const first = records[0]!;
  const last = records[records.length - 1]!;
  const firstStart = recordAt.get(first.round)! - 1000 * first.seconds;
  const lastAt = recordAt.get(last.round)!;
  const later = records.filter((r) => r.round > 1);
  return {
    wallSeconds: (tEnd - t0) / 1000,
    roundsSeconds: (lastAt - firstStart) / 1000,
    startupSeconds: (firstStart - t0) / 1000,
    teardownSeconds: (tEnd - lastAt) / 1000,
    medianRoundSeconds: median(later.map((r) => r.seconds)),
    medianClientTrainSeconds: median(later.map((r) => r.timing.clientTrain)),
    medianEvaluateSeconds: median(later.map((r) => r.timing.evaluate)),
    roundSeconds: records.map((r) => r.seconds),
    accuracies: records.map((r) => r.testAccuracy ?? null),
    losses: records.map((r) => r.testLoss ?? null),
    failures: records.reduce((n, r) => n + r.failures.length, 0),
  };
}

async function simulateRun(dir: string, cfgPath: string): Promise<{ fig: RunFigures; out: string }> {
  const out = join(dir, "sim-out");
  const recordAt = new Map<number, number>();
  const t0 = performance.now();
  const p = spawn(process.execPath, [safl, "simulate", "--force", "--config", cfgPath, "--out", out], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  const onLine = (line: string, t: number) => {
    tail.push(line);
    if (tail.length > 30) tail.shift();
    const m = /^round (\d+)\/\d+ /.exec(line);
    if (m) recordAt.set(Number(m[1]), t);
  };
  stampLines(p.stdout!, onLine);
  stampLines(p.stderr!, onLine);
  const code = await exited(p);
  const tEnd = performance.now();
  if (code !== 0) throw new Error(`safl simulate exited ${code}:\n${tail.join("\n")}`);
  const { records } = await readRun(out);
  return { fig: figures(records as unknown as Rec[], t0, tEnd, recordAt), out };
}

/** Per-round load of each client process from the task events its --json output carries. */
function processLoads(outputs: readonly string[]): ProcessLoad[] {
  const byRound = new Map<number, { process: number; partition: number; computeSeconds: number }[]>();
  outputs.forEach((text, p) => {
    for (const line of text.split("\n")) {
      if (!line.startsWith("{")) continue;
      let e: { event?: string; kind?: string; round?: number; status?: string; clientId?: string; computeSeconds?: number };
      try {
        e = JSON.parse(line) as typeof e;
      } catch {
        continue;
      }
      if (e.event !== "task" || e.kind !== "train" || e.status !== "accepted" || typeof e.round !== "number") continue;
      let r = byRound.get(e.round);
      if (!r) byRound.set(e.round, (r = []));
      r.push({ process: p, partition: Number(/(\d+)$/.exec(e.clientId ?? "")?.[1] ?? -1), computeSeconds: e.computeSeconds ?? 0 });
    }
  });
  return [...byRound.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([round, tasks]) => {
      const sum = (f: (t: (typeof tasks)[number]) => boolean) => tasks.filter(f).reduce((a, t) => a + t.computeSeconds, 0);
      const computeSeconds = outputs.map((_, p) => sum((t) => t.process === p));
      const mean = computeSeconds.reduce((a, b) => a + b, 0) / computeSeconds.length;
      return {
        round,
        tasks: outputs.map((_, p) => tasks.filter((t) => t.process === p).length),
        computeSeconds,
        imbalance: mean > 0 ? Math.max(...computeSeconds) / mean : 1,
        busiestModSplitSeconds: Math.max(...outputs.map((_, p) => sum((t) => t.partition % outputs.length === p))),
      };
    });
}

async function deployRun(dir: string, cfgPath: string, h: Harness): Promise<{ fig: RunFigures; out: string; joinedSeconds: number; loads: ProcessLoad[] }> {
  const ids = Array.from({ length: CLIENTS }, (_, i) => `p${i}`);
  const tokens = await h.tokens(ids);
  const per = CLIENTS / PROCESSES;
  const groups = Array.from({ length: PROCESSES }, (_, g) => Array.from({ length: per }, (_, k) => g * per + k));
  const files: string[] = [];
  for (const [g, parts] of groups.entries()) {
    files.push(await h.writeConfig(`tokens-${g}.json`, Object.fromEntries(parts.map((i) => [String(i), tokens.tokens.get(`p${i}`)!]))));
  }
  const out = join(dir, "deploy-out");
  const recordAt = new Map<number, number>();
  let joinedAt = Number.NaN;
  let joined = 0;
  const t0 = performance.now();
  const server = h.server(["--config", cfgPath, "--state", join(dir, "deploy.db"), "--out", out, "--tokens", tokens.file]);
  stampLines(server.proc.stdout!, (line, t) => {
    const m = /^\{"round":\{"round":(\d+),/.exec(line);
    if (m) recordAt.set(Number(m[1]), t);
    if (line.startsWith('{"log":"joined: ') && ++joined === CLIENTS) joinedAt = t;
  });
  const port = await server.port;
  const clients = groups.map((parts, g) =>
    h.client(port, "", ["--dataset", cfg.data.dataset, "--partition", `${parts[0]}-${parts[parts.length - 1]}`, "--tokens-file", files[g]!, "--cache", join(dir, `cache-${g}`), "--json"]),
  );
  const code = await server.exited;
  const codes = await Promise.all(clients.map((c) => c.exited));
  const tEnd = performance.now();
  if (code !== 0) throw new Error(`safl server exited ${code}:\n${server.lines.slice(-30).join("\n")}`);
  codes.forEach((c, i) => {
    if (c !== 0) throw new Error(`client process ${i} exited ${c}:\n${clients[i]!.output().slice(-3000)}`);
  });
  if (values.keep !== undefined) {
    await writeFile(join(dir, "server.log"), `${server.lines.join("\n")}\n`);
    for (const [i, c] of clients.entries()) await writeFile(join(dir, `client-${i}.log`), c.output());
  }
  const { records } = await readRun(out);
  return { fig: figures(records as unknown as Rec[], t0, tEnd, recordAt), out, joinedSeconds: (joinedAt - t0) / 1000, loads: processLoads(clients.map((c) => c.output())) };
}

interface Rep {
  order: string;
  sim: RunFigures;
  deploy: RunFigures;
  deployAllJoinedSeconds: number;
  /** Rounds 2..N: median over rounds of the busiest process's compute seconds, of the mean process's, and of their ratio. */
  deployCompute: { medianBusiestSeconds: number; medianMeanSeconds: number; medianImbalance: number; medianBusiestModSplitSeconds: number; loads: ProcessLoad[] };
  overhead: { wall: number; rounds: number; medianRound: number };
  accuraciesIdentical: boolean;
  lossesIdentical: boolean;
  modelIdentical: boolean;
  firstAccuracyDifference?: { round: number; simulate: number | null; deploy: number | null };
}

async function oneRep(rep: number): Promise<Rep> {
  const dir = values.keep !== undefined ? join(values.keep, `rep-${rep}`) : await mkdtemp(join(tmpdir(), "safl-deploy-overhead-"));
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const h = new Harness(dir);
  try {
    const cfgPath = join(dir, "run.json");
    await writeFile(cfgPath, JSON.stringify(rawConfig));
    // Alternate which goes first, so a drift in the machine's load does not always favour one.
    const simFirst = rep % 2 === 0;
    let sim: Awaited<ReturnType<typeof simulateRun>>;
    let dep: Awaited<ReturnType<typeof deployRun>>;
    if (simFirst) {
      sim = await simulateRun(dir, cfgPath);
      dep = await deployRun(dir, cfgPath, h);
    } else {
      dep = await deployRun(dir, cfgPath, h);
      sim = await simulateRun(dir, cfgPath);
    }
    const [simModel, depModel] = await Promise.all([readFile(join(sim.out, "model", "model.safetensors")), readFile(join(dep.out, "model", "model.safetensors"))]);
    const diff = sim.fig.accuracies.findIndex((a, i) => a !== dep.fig.accuracies[i]);
    const r: Rep = {
      order: simFirst ? "simulate, deploy" : "deploy, simulate",
      sim: sim.fig,
      deploy: dep.fig,
      deployAllJoinedSeconds: dep.joinedSeconds,
      deployCompute: (() => {
        const later = dep.loads.filter((l) => l.round > 1);
        return {
          medianBusiestSeconds: median(later.map((l) => Math.max(...l.computeSeconds))),
          medianMeanSeconds: median(later.map((l) => l.computeSeconds.reduce((a, b) => a + b, 0) / l.computeSeconds.length)),
          medianImbalance: median(later.map((l) => l.imbalance)),
          medianBusiestModSplitSeconds: median(later.map((l) => l.busiestModSplitSeconds)),
          loads: dep.loads,
        };
      })(),
      overhead: {
        wall: dep.fig.wallSeconds / sim.fig.wallSeconds - 1,
        rounds: dep.fig.roundsSeconds / sim.fig.roundsSeconds - 1,
        medianRound: dep.fig.medianRoundSeconds / sim.fig.medianRoundSeconds - 1,
      },
      accuraciesIdentical: sim.fig.accuracies.length === dep.fig.accuracies.length && diff < 0,
      lossesIdentical: sim.fig.losses.every((l, i) => l === dep.fig.losses[i]),
      modelIdentical: simModel.equals(depModel),
      ...(diff >= 0 ? { firstAccuracyDifference: { round: diff + 1, simulate: sim.fig.accuracies[diff] ?? null, deploy: dep.fig.accuracies[diff] ?? null } } : {}),
    };
    return r;
  } finally {
    h.dispose();
    if (values.keep === undefined) await rm(dir, { recursive: true, force: true });
  }
}

const s = (x: number) => `${x.toFixed(2)} s`;
const pct = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}%`;
const spread = (xs: number[], f: (x: number) => string) => (xs.length > 1 ? `${f(median(xs))} (range ${f(Math.min(...xs))} to ${f(Math.max(...xs))})` : f(xs[0]!));

const results: Rep[] = [];
for (let rep = 0; rep < reps; rep++) {
  if (!values.json) console.error(`repetition ${rep + 1}/${reps} (${rep % 2 === 0 ? "simulate first" : "deploy first"})`);
  const r = await oneRep(rep);
  results.push(r);
  if (!values.json) {
    console.log(`\nrepetition ${rep + 1}/${reps} (${r.order}):`);
    for (const [name, f] of [["simulate", r.sim], ["deploy", r.deploy]] as const) {
      console.log(
        `  ${name.padEnd(8)} wall ${s(f.wallSeconds)} (startup ${s(f.startupSeconds)}, rounds ${s(f.roundsSeconds)}, teardown ${s(f.teardownSeconds)}); ` +
          `median round ${s(f.medianRoundSeconds)}, client training summed over clients ${name === "simulate" ? s(f.medianClientTrainSeconds) : "n/a (not in the server's record)"}, server evaluation ${s(f.medianEvaluateSeconds)}; failures ${f.failures}`,
      );
    }
    console.log(`  deploy: all ${CLIENTS} identities joined ${s(r.deployAllJoinedSeconds)} after the server was spawned`);
    const c = r.deployCompute;
    console.log(
      `  deploy compute per round (client task events): busiest process ${s(c.medianBusiestSeconds)}, mean process ${s(c.medianMeanSeconds)}, imbalance busiest/mean ${c.medianImbalance.toFixed(2)}x ` +
        `(busiest with the simulation's split, index mod 2: ${s(c.medianBusiestModSplitSeconds)}); ` +
        `tasks per process ${c.loads.filter((l) => l.round > 1).map((l) => l.tasks.join("+")).join(" ")}`,
    );
    console.log(`  overhead: wall ${pct(r.overhead.wall)}, rounds ${pct(r.overhead.rounds)}, median round ${pct(r.overhead.medianRound)}`);
    console.log(
      `  per-round test accuracy identical: ${r.accuraciesIdentical ? "yes" : `NO (first difference in round ${r.firstAccuracyDifference?.round})`}; test loss identical: ${r.lossesIdentical ? "yes" : "NO"}; final model bit-identical: ${r.modelIdentical ? "yes" : "NO"}`,
    );
    console.log(`  round seconds: simulate ${r.sim.roundSeconds.map((x) => x.toFixed(2)).join(" ")}; deploy ${r.deploy.roundSeconds.map((x) => x.toFixed(2)).join(" ")}`);
    console.log(`  accuracies: ${r.sim.accuracies.map((a) => (a === null ? "-" : (100 * a).toFixed(2))).join(" ")}`);
  }
}

const col = (f: (r: Rep) => number) => results.map(f);
const summary = {
  rounds,
  reps,
  overrides,
  clients: CLIENTS,
  perRound: cfg.clients.perRound,
  strategy: cfg.strategy.name,
  simulate: `safl simulate, execution.workers=${cfg.execution.workers} (1 onnxruntime thread each), evaluation threads ${cfg.execution.threads}`,
  deploy: `safl server --insecure on loopback (evaluation threads ${cfg.execution.threads}) + ${PROCESSES} safl client processes x ${CLIENTS / PROCESSES} identities, --threads 1`,
  medianRoundSkips: [1],
  goal: GOAL,
  median: {
    simWallSeconds: median(col((r) => r.sim.wallSeconds)),
    deployWallSeconds: median(col((r) => r.deploy.wallSeconds)),
    simMedianRoundSeconds: median(col((r) => r.sim.medianRoundSeconds)),
    deployMedianRoundSeconds: median(col((r) => r.deploy.medianRoundSeconds)),
    overheadWall: median(col((r) => r.overhead.wall)),
    overheadRounds: median(col((r) => r.overhead.rounds)),
    overheadMedianRound: median(col((r) => r.overhead.medianRound)),
  },
  allAccuraciesIdentical: results.every((r) => r.accuraciesIdentical),
  allModelsIdentical: results.every((r) => r.modelIdentical),
  goalMet: median(col((r) => r.overhead.wall)) <= GOAL,
  results,
};

if (values.json) {
  console.log(JSON.stringify(summary));
} else {
  console.log(`\n${cfg.strategy.name}, ${CLIENTS} clients, ${cfg.clients.perRound} per round, ${rounds} rounds (${overrides.join(" ")}); ${reps} repetition(s), medians with ranges; round medians skip round 1`);
  console.log(`  simulate: ${summary.simulate}`);
  console.log(`  deploy:   ${summary.deploy}`);
  console.log(`  wall:          simulate ${spread(col((r) => r.sim.wallSeconds), s)}, deploy ${spread(col((r) => r.deploy.wallSeconds), s)}`);
  console.log(`  time in rounds: simulate ${spread(col((r) => r.sim.roundsSeconds), s)}, deploy ${spread(col((r) => r.deploy.roundsSeconds), s)}`);
  console.log(`  median round:  simulate ${spread(col((r) => r.sim.medianRoundSeconds), s)}, deploy ${spread(col((r) => r.deploy.medianRoundSeconds), s)}`);
  console.log(`  overhead (deploy / simulate - 1): wall ${spread(col((r) => r.overhead.wall), pct)}, rounds ${spread(col((r) => r.overhead.rounds), pct)}, median round ${spread(col((r) => r.overhead.medianRound), pct)}`);
  console.log(`  per-round test accuracies identical in every repetition: ${summary.allAccuraciesIdentical ? "yes" : "NO"}; final models identical: ${summary.allModelsIdentical ? "yes" : "NO"}`);
  console.log(`  goal: wall overhead <= ${100 * GOAL}%: ${summary.goalMet ? "met" : "NOT met"}`);
}
if (!summary.allAccuraciesIdentical) process.exitCode = 1;
