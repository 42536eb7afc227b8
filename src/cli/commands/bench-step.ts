/**
 * @module cli/commands/bench-step
 * `safl bench step`: times training (or eval) steps of a preset ViT on random data and prints the
 * median step time, images/s and achieved GFLOP/s (matmul FLOPs counted as the PyTorch reference
 * counts them), plus peak RSS. Same models, modes and LoRA placement as shared/anchors.
 */
import { presetConfig } from "../../nn/config.js";
import { stepFlops } from "../../nn/flops.js";
import { isLoraParam, loraAdapter } from "../../peft/lora/layer.js";
import { AdamW } from "../../nn/optim.js";
import { ParamStore } from "../../nn/params.js";
import { EvalStep, TrainStep } from "../../nn/train.js";
import { buildVit } from "../../nn/vit.js";
import { NodeRuntime } from "../../runtime/node.js";
import { Rng } from "../../util/rng.js";
import { defineFlags, withDefault } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { BATCH, JSON_OUTPUT, PRESET, THREADS } from "../flags.js";

export interface BenchResult {
  preset: string;
  mode: string;
  batch: number;
  threads: number;
  steps: number;
  stepMsMedian: number;
  stepMsMin: number;
  imgPerSec: number;
  gflops: number;
  gflopPerStep: number;
  compileMs: number;
  optimizerMsMedian: number;
  paramsTotal: number;
  paramsTrainable: number;
  peakRssMb: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const flags = defineFlags({
  preset: withDefault(PRESET, "small-cifar"),
  mode: {
    type: "choice",
    choices: ["lora", "full", "eval"],
    default: "lora",
    description:
      "lora: base frozen, rank-R LoRA (alpha 2R) on query, key, value, attention output, intermediate and output dense, head trained; full: every parameter; eval: forward only",
  },
  batch: { ...BATCH, max: 4096, defaultText: "the preset's batch", description: "images per step" },
  threads: THREADS,
  steps: { type: "int", value: "<n>", default: 20, min: 1, max: 100_000, description: "timed steps (after the --warmup ones)" },
  warmup: { type: "int", value: "<n>", default: 5, min: 0, max: 100_000, description: "untimed steps before the timed ones" },
  rank: { type: "int", value: "<r>", default: 8, min: 1, max: 4096, description: "LoRA rank for --mode lora" },
  json: { ...JSON_OUTPUT, description: "print one JSON object (imgPerSec, stepMsMedian, gflops, ...) instead of text" },
  profile: {
    type: "string",
    value: "<prefix>",
    description:
      "write onnxruntime's per-node JSON trace with this file prefix (summarize it with node dist/bench/profile-summary.js <trace.json>); profiling slows the steps down",
  },
});

export const benchStepCommand = defineCommand({
  name: "bench step",
  summary: "time a training/eval step of a preset ViT (images/s, GFLOP/s)",
  usage: "[--preset <name>] [--mode lora|full|eval] [--batch N] [--threads T] [--steps S] [--warmup W] [--rank R] [--json]",
  description: "Runs the step on random data; presets, modes and LoRA placement match shared/anchors/README.md.",
  flags,
  run: benchStep,
});

async function benchStep({ values: f }: CommandInput<typeof flags>): Promise<number> {
  const presetName = f.preset;
  const mode = f.mode;
  const { config, batch: defaultBatch } = presetConfig(presetName);
  const batch = f.batch ?? defaultBatch;
  const { threads, steps, warmup, rank, json } = f;
  const log = (s: string) => {
    if (!json) process.stderr.write(`${s}\n`);
  };

  const model = buildVit(config, mode === "lora" ? [loraAdapter({ rank, alpha: 2 * rank }).linear] : []);
  const rng = new Rng(0);
  const params = ParamStore.init(model.registry.specs.values(), rng);
  const trainable = mode === "lora" ? (n: string) => isLoraParam(n) || n.startsWith("classifier.") : () => mode === "full";
  const c = config;
  const pixels = new Float32Array(batch * c.num_channels * c.image_size * c.image_size);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rng.normal();
  const labels = BigInt64Array.from({ length: batch }, () => BigInt(rng.int(c.num_labels)));

  const profile = f.profile;
  const runtime = new NodeRuntime({ threads, ...(profile ? { profilePrefix: profile } : {}) });
  log(`compiling ${presetName} ${mode} step (batch ${batch}, ${threads} thread${threads > 1 ? "s" : ""})...`);
  const t0 = performance.now();
  const names = params.names();
  const trainNames = names.filter(trainable);
  const opt = new AdamW({ lr: 1e-3, weightDecay: 0.01 });
  const paramMap = new Map(names.map((n) => [n, params.get(n)]));
  let run: () => Promise<number>;
  if (mode === "eval") {
    const step = await EvalStep.create(runtime, model, params, batch);
    run = async () => {
      await step.run(pixels);
      return 0;
    };
  } else {
    const step = await TrainStep.create(runtime, model, params, { batch, trainable });
    run = async () => {
      const { grads } = await step.run(pixels, labels);
      const o0 = performance.now();
      opt.step(paramMap, grads);
      return performance.now() - o0;
    };
  }
  const compileMs = performance.now() - t0;
  for (let i = 0; i < warmup; i++) await run();
  const times: number[] = [];
  const optTimes: number[] = [];
  for (let i = 0; i < steps; i++) {
    const s0 = performance.now();
    optTimes.push(await run());
    times.push(performance.now() - s0);
    log(`  step ${i + 1}/${steps}: ${times[i]!.toFixed(1)} ms`);
  }
  await runtime.release();
  const med = median(times);
  const fl = stepFlops(config, batch, mode, rank);
  const gflopPerStep = (fl.forward + fl.backward) / 1e9;
  const result: BenchResult = {
    preset: presetName,
    mode,
    batch,
    threads,
    steps,
    stepMsMedian: med,
    stepMsMin: Math.min(...times),
    imgPerSec: (batch * 1000) / med,
    gflops: gflopPerStep / (med / 1000),
    gflopPerStep,
    compileMs,
    optimizerMsMedian: median(optTimes),
    paramsTotal: params.count(),
    paramsTrainable: mode === "eval" ? 0 : params.count(trainNames),
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  };
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(
      `${presetName} ${mode}: median ${med.toFixed(1)} ms/step (min ${result.stepMsMin.toFixed(1)}) | ${result.imgPerSec.toFixed(1)} img/s | ` +
        `${gflopPerStep.toFixed(2)} GFLOP/step | ${result.gflops.toFixed(1)} GFLOP/s | optimizer ${result.optimizerMsMedian.toFixed(1)} ms | ` +
        `params ${result.paramsTotal} (trainable ${result.paramsTrainable}) | peak RSS ${result.peakRssMb.toFixed(0)} MB`,
    );
  }
  return 0;
}
