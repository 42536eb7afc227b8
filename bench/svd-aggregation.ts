/**
 * How much the SVD adapter loses by averaging its factors: in every annealing round of an
 * SA-FedLoRA run, the server averages P, λ and Q separately, so the new adapter is
 * P̄·diag(λ̄)·Q̄ rather than the average of the clients' products mean_k(P_k·diag(λ_k)·Q_k). This
 * prints, per round and summed over modules, the round's aggregate update
 * U = ‖mean_k ΔW_k − ΔW_start‖ and the aggregation error E = ‖P̄ diag(λ̄) Q̄ − mean_k ΔW_k‖
 * (Frobenius over all modules, sample-weighted means, the α/r₀ scale left out since it cancels in
 * E/U), with the clients' spread S = sqrt(mean_k ‖ΔW_k − mean ΔW‖²) for context. E/U near 0 means factor averaging is
 * as good as averaging the products. E_svd/U is the same error for `strategy.aggregation: "product"`,
 * whose only loss is truncating the mean to rank k.
 *
 *   node dist/bench/svd-aggregation.js [--partition dirichlet:0.1] [--rounds 12] [--set key=value ...] [--json]
 *
 * Defaults are the study's setting (Fashion-MNIST, 10,000 training images, 20 clients, 10 per round,
 * SA-FedLoRA with its default schedule over `--rounds`); needs `dataset-fashion-mnist`.
 */
import { weightedMean } from "../src/fl/aggregate.js";
import { createStrategy } from "../src/fl/strategies/index.js";
import { packedProduct } from "../src/fl/strategies/svd.js";
import { runRounds } from "../src/fl/driver.js";
import type { AcceptedReply, Strategy } from "../src/fl/strategy.js";
import type { WirePackedModule } from "../src/fl/wire.js";
import { NodeRuntime } from "../src/runtime/node.js";
import { applyOverrides, parseRunConfig } from "../src/sim/config.js";
import { truncatedSvd } from "../src/util/linalg.js";
import { localGrid, localTraining, prepareSimulation } from "../src/sim/simulate.js";

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const sets = args.flatMap((a, i) => (a === "--set" && args[i + 1] ? [args[i + 1]!] : []));
const json = args.includes("--json");
const rounds = Number(flag("--rounds", "12"));
const cfg = parseRunConfig(
  applyOverrides(
    {
      rounds,
      data: { dataset: "fashion-mnist", trainLimit: 10000 },
      clients: { count: 20, perRound: 10, partition: flag("--partition", "dirichlet:0.1") },
      strategy: { name: "sa-fedlora", heatRounds: 2, coolRounds: 2 },
      evaluation: { every: 0 },
    },
    sets,
  ),
  "bench config",
);

const sq = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
};

interface Row {
  round: number;
  triplets: number;
  update: number;
  error: number;
  spread: number;
  ratio: number;
  /** The same error for "product" aggregation: ‖best rank-k approximation of the mean − mean‖ / U. */
  svdRatio: number;
}

function measure(round: number, start: readonly WirePackedModule[], replies: readonly AcceptedReply[]): Row {
  const weights = replies.map((r) => r.message.sampleCount ?? 1);
  let update = 0;
  let error = 0;
  let spread = 0;
  let truncation = 0;
  let triplets = 0;
  for (const s of start) {
    const mods = replies.map((r) => r.message.packed.find((p) => p.name === s.name)!);
    const d = mods.map(packedProduct);
    const mean = weightedMean(d, weights);
    const averagedFactors: WirePackedModule = {
      ...s,
      p: Float32Array.from(weightedMean(mods.map((m) => m.p), weights)),
      e: Float32Array.from(weightedMean(mods.map((m) => m.e), weights)),
      q: Float32Array.from(weightedMean(mods.map((m) => m.q), weights)),
    };
    update += sq(mean, packedProduct(s));
    error += sq(packedProduct(averagedFactors), mean);
    // What "product" aggregation loses instead: the best rank-k approximation of the mean.
    const { u, s: sigma, vt } = truncatedSvd(mean, s.outFeatures, s.inFeatures, s.e.length);
    const best = new Float64Array(mean.length);
    for (let o = 0; o < s.outFeatures; o++)
      for (let j = 0; j < sigma.length; j++) for (let i = 0; i < s.inFeatures; i++) best[o * s.inFeatures + i]! += u[o * sigma.length + j]! * sigma[j]! * vt[j * s.inFeatures + i]!;
    truncation += sq(best, mean);
    spread += d.reduce((a, x) => a + sq(x, mean), 0) / d.length;
    triplets += s.e.length;
  }
  return { round, triplets, update: Math.sqrt(update), error: Math.sqrt(error), spread: Math.sqrt(spread), ratio: Math.sqrt(error) / Math.sqrt(update), svdRatio: Math.sqrt(truncation) / Math.sqrt(update) };
}

const runtime = new NodeRuntime({ threads: cfg.execution.threads });
const setup = await prepareSimulation(cfg);
const inner = createStrategy(cfg.strategy, { config: setup.config, initial: setup.initial, training: localTraining(cfg), rounds: cfg.rounds, seed: cfg.seed });
const rows: Row[] = [];
let start: readonly WirePackedModule[] = [];
const probe: Strategy = {
  name: inner.name,
  configureTrain(round, clients) {
    const plan = inner.configureTrain(round, clients);
    start = plan.messages[0]?.packed ?? [];
    return plan;
  },
  aggregateTrain(round, replies) {
    if (start.length > 0) rows.push(measure(round, start, replies));
    inner.aggregateTrain(round, replies);
  },
  configureEvaluate: (round, clients) => inner.configureEvaluate(round, clients),
  globalModel: () => inner.globalModel(),
  snapshot: () => inner.snapshot(),
  restore: (snap) => inner.restore(snap),
  summary: () => inner.summary(),
};
await runRounds(probe, localGrid(setup, runtime, cfg.wire.dtype), {
  rounds: cfg.rounds,
  clientsPerRound: cfg.clients.perRound,
  seed: cfg.seed,
  dtype: cfg.wire.dtype,
  evalEvery: 0,
  clientEvalEvery: 0,
  training: localTraining(cfg).full,
  evaluate: async () => ({ accuracy: Number.NaN, loss: Number.NaN }),
});
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
if (json) console.log(JSON.stringify({ partition: cfg.clients.partition, rows, medianRatio: median(rows.map((r) => r.ratio)), medianSvdRatio: median(rows.map((r) => r.svdRatio)) }, null, 2));
else {
  console.log(`SA-FedLoRA, ${cfg.clients.partition}, seed ${cfg.seed}: factor-averaging error per annealing round (summed over modules)`);
  console.log("round  triplets   update U    error E   spread S    E/U  E_svd/U");
  for (const r of rows) {
    console.log(`${String(r.round).padStart(5)}  ${String(r.triplets).padStart(8)}  ${r.update.toExponential(3)}  ${r.error.toExponential(3)}  ${r.spread.toExponential(3)}  ${(100 * r.ratio).toFixed(2).padStart(6)}%  ${(100 * r.svdRatio).toFixed(2).padStart(6)}%`);
  }
  console.log(`median over ${rows.length} annealing rounds: E/U ${(100 * median(rows.map((r) => r.ratio))).toFixed(2)}% (factor averaging), E_svd/U ${(100 * median(rows.map((r) => r.svdRatio))).toFixed(2)}% (product aggregation)`);
}
