/**
 * Training-step throughput in the browser against onnxruntime-node, in the same sitting: the main
 * job's local step (the shipped backbone models/vit-micro-mnist-0-4, preset micro-mnist, with its
 * 5-class head for digits 5-9; LoRA rank 8 on query, key, value, attention output, intermediate
 * and output dense plus the head, or with --adapter adalora SA-FedLoRA's annealing-stage SVD
 * adapter r0 = 8; batch 16 as training.batch; one Trainer step = forward + backward in one session
 * run, the adapter's step hooks and AdamW) on random weights and data, in headless Chromium
 * (onnxruntime-web's WebAssembly build in a cross-origin isolated page, 1 thread and all
 * navigator.hardwareConcurrency threads; optionally the JSEP build on 1 thread) and on
 * onnxruntime-node (1 and 2 threads). Both sides run the same scenario code (test/browser-harness.ts).
 * After a warm-up per config (at least --warmup steps and --warmup-seconds: the browser re-compiles
 * hot WebAssembly optimized in the background for seconds), --repeats rounds each time --steps steps of every config,
 * the order rotating between rounds; a round's figure is batch / median step time, and the table
 * reports the median over rounds, and browser/node for the same thread count (all threads vs 2).
 * Needs /usr/bin/chromium and a built dist/web (npm run build).
 *
 *   node dist/bench/browser-step.js [--adapter lora|adalora] [--batch 16] [--steps 20] [--warmup 10]
 *        [--warmup-seconds 5] [--repeats 5] [--jsep] [--json]
 */
import { parseArgs } from "node:util";
import { withLabels } from "../src/data/task.js";
import { readConfig } from "../src/io/checkpoint.js";
import { defaultBackboneDir } from "../src/io/paths.js";
import { type Browser, BrowserSide, NodeSide, type PageReport, type Scenario, type Side, type WebServer, browserUnavailable, launchBrowser, startWebServer } from "../test/browser-harness.js";

const { values } = parseArgs({
  options: {
    adapter: { type: "string", default: "lora" },
    batch: { type: "string", default: "16" },
    steps: { type: "string", default: "20" },
    warmup: { type: "string", default: "10" },
    "warmup-seconds": { type: "string", default: "5" },
    repeats: { type: "string", default: "5" },
    jsep: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const int = (name: string, v: string | undefined, min: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}, got ${v}`);
    process.exit(2);
  }
  return n;
};
const batch = int("batch", values.batch, 1);
const steps = int("steps", values.steps, 1);
const warmup = int("warmup", values.warmup, 0);
const repeats = int("repeats", values.repeats, 1);
const warmupSeconds = int("warmup-seconds", values["warmup-seconds"], 0);
const ADAPTERS: Record<string, Record<string, unknown>> = {
  lora: { kind: "lora", rank: 8 },
  adalora: { kind: "adalora", initRank: 8, targetRank: 2 },
};
const adapter = ADAPTERS[values.adapter!];
if (!adapter) {
  console.error(`--adapter must be one of ${Object.keys(ADAPTERS).join(", ")}, got ${values.adapter}`);
  process.exit(2);
}
const unavailable = browserUnavailable();
if (unavailable) {
  console.error(`cannot run the browser side: ${unavailable}`);
  process.exit(2);
}

interface BenchSpec {
  readonly config: Record<string, unknown>;
  readonly adapter: Record<string, unknown>;
  readonly batch: number;
  readonly warmup: number;
  readonly warmupSeconds: number;
  readonly seed: number;
}
interface SetupResult {
  readonly firstStepMs: number;
  readonly warmupSteps: number;
  readonly params: number;
  readonly trainable: number;
}

/** Builds the step and keeps the trainer in `state`; times the first step (compile and backend start-up) and runs the warm-up. */
const setupScenario: Scenario<BenchSpec, SetupResult> = async (lib, runtime, spec, state) => {
  const config = lib.parseVitConfig(spec.config);
  const { model, adapter } = lib.buildAdaptedVit(config, lib.parseAdapterSpec(spec.adapter));
  const rng = new lib.Rng(spec.seed);
  const store = lib.ParamStore.init(model.registry.specs.values(), rng);
  const c = config;
  const pixels = Float32Array.from({ length: spec.batch * c.num_channels * c.image_size * c.image_size }, () => rng.normal());
  const labels = BigInt64Array.from({ length: spec.batch }, () => BigInt(rng.int(c.num_labels)));
  const t0 = performance.now();
  const trainer = await lib.Trainer.create(runtime, model, store, {
    trainable: lib.adapterTrainable(adapter),
    batch: spec.batch,
    optimizer: new lib.AdamW({ lr: 1e-3, weightDecay: 0.01 }),
    adapter,
  });
  const data = { pixels, labels, size: spec.batch };
  await trainer.train(data);
  const firstStepMs = performance.now() - t0;
  // Warm-up by count and by time: the browser compiles hot WebAssembly functions again, optimized,
  // in the background for seconds after they first run, and steps before that are slower.
  const w0 = performance.now();
  let warmupSteps = 0;
  while (warmupSteps < spec.warmup || performance.now() - w0 < spec.warmupSeconds * 1000) {
    await trainer.train(data);
    warmupSteps++;
  }
  state["trainer"] = trainer;
  state["data"] = data;
  return { firstStepMs, warmupSteps, params: store.count(), trainable: store.count(trainer.trainable) };
};

/** Times `steps` steps of the trainer set up in `state` (after one untimed step); returns ms per step. */
const timeScenario: Scenario<{ steps: number }, number[]> = async (_lib, _runtime, arg, state) => {
  const trainer = state["trainer"] as { train(b: unknown): Promise<number> };
  const data = state["data"];
  await trainer.train(data);
  const times: number[] = [];
  for (let i = 0; i < arg.steps; i++) {
    const t0 = performance.now();
    await trainer.train(data);
    times.push(performance.now() - t0);
  }
  return times;
};

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Config {
  readonly key: string;
  readonly side: Side;
  readonly threads: number;
  readonly report?: PageReport;
  setup?: SetupResult;
  readonly imgPerSec: number[];
  readonly stepMs: number[];
}

const config = withLabels(await readConfig(defaultBackboneDir()), 5, ["5", "6", "7", "8", "9"]);
const spec: BenchSpec = { config: config as unknown as Record<string, unknown>, adapter, batch, warmup, warmupSeconds, seed: 0 };
const log = (s: string) => {
  if (!values.json) console.error(s);
};

let server: WebServer | undefined;
let browser: Browser | undefined;
const configs: Config[] = [];
try {
  server = await startWebServer();
  browser = await launchBrowser();
  const open = (key: string, runtime: { threads?: number; build?: "wasm" | "jsep" }) => BrowserSide.open(browser!, server!, { isolated: true, runtime, label: key });
  const sides: { key: string; side: Side; browser: boolean }[] = [
    { key: "browser wasm, 1 thread", side: await open("browser wasm, 1 thread", { threads: 1 }), browser: true },
    { key: "browser wasm, all threads", side: await open("browser wasm, all threads", {}), browser: true },
    ...(values.jsep ? [{ key: "browser jsep build, 1 thread", side: await open("browser jsep build, 1 thread", { threads: 1, build: "jsep" }), browser: true }] : []),
    { key: "node, 1 thread", side: new NodeSide("node, 1 thread", 1), browser: false },
    { key: "node, 2 threads", side: new NodeSide("node, 2 threads", 2), browser: false },
  ];
  for (const s of sides) {
    log(`setting up ${s.key} ...`);
    const setup = await s.side.call(setupScenario, spec);
    const report = s.side instanceof BrowserSide ? await s.side.report() : undefined;
    const threads = report ? report.info!.threads : (s.side as NodeSide).runtime.threads;
    if (report && !report.crossOriginIsolated) throw new Error(`${s.key}: the page is not cross-origin isolated`);
    configs.push({ key: s.key, side: s.side, threads, ...(report ? { report } : {}), setup, imgPerSec: [], stepMs: [] });
    log(`  first step ${setup.firstStepMs.toFixed(0)} ms (compile and start-up), ${setup.warmupSteps} warm-up steps, ${threads} thread(s)`);
  }
  for (let r = 0; r < repeats; r++) {
    const order = configs.map((_, i) => configs[(i + r) % configs.length]!);
    for (const c of order) {
      const times = await c.side.call(timeScenario, { steps });
      const med = median(times);
      c.stepMs.push(med);
      c.imgPerSec.push((batch * 1000) / med);
      log(`  round ${r + 1}/${repeats} ${c.key}: median ${med.toFixed(2)} ms/step, ${((batch * 1000) / med).toFixed(1)} img/s`);
    }
  }
  for (const c of configs) await c.side.release();
} finally {
  await browser?.close();
  await server?.close();
}

const byKey = new Map(configs.map((c) => [c.key, c]));
const nodeFor = (c: Config) => (c.threads > 1 ? byKey.get("node, 2 threads") : byKey.get("node, 1 thread"));
const rows = configs.map((c) => {
  const imgs = median(c.imgPerSec);
  const node = c.key.startsWith("browser") ? nodeFor(c) : undefined;
  return {
    config: c.key,
    threads: c.threads,
    imgPerSec: imgs,
    stepMs: median(c.stepMs),
    firstStepMs: c.setup!.firstStepMs,
    vsNode: node ? imgs / median(node.imgPerSec) : undefined,
    vsNodeConfig: node?.key,
    rounds: c.imgPerSec,
  };
});
const result = {
  step: `micro-mnist backbone, 5-class head, ${values.adapter} ${JSON.stringify(adapter)}, batch ${batch}, Trainer step with AdamW`,
  params: configs[0]!.setup!.params,
  trainable: configs[0]!.setup!.trainable,
  steps,
  warmup,
  warmupSeconds,
  repeats,
  hardwareConcurrency: configs.find((c) => c.report)?.report?.hardwareConcurrency,
  rows,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`\n${result.step}; ${result.params} parameters, ${result.trainable} trained; ${repeats} rounds x ${steps} timed steps after a warm-up of at least ${warmup} steps and ${warmupSeconds} s`);
  console.log("| config | threads | img/s (median of rounds) | median step ms | first step ms | browser/node |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) {
    const ratio = r.vsNode === undefined ? "" : `${r.vsNode.toFixed(2)}x (vs ${r.vsNodeConfig})`;
    console.log(`| ${r.config} | ${r.threads} | ${r.imgPerSec.toFixed(1)} | ${r.stepMs.toFixed(2)} | ${r.firstStepMs.toFixed(0)} | ${ratio} |`);
  }
}
