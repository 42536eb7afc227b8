/**
 * Server-side cost of one federated round's aggregation at small-cifar LoRA size (rank 8 on the
 * default targets, plus the 10-label head): N distinct client replies are encoded once with the wire
 * format, then each repetition times what the server does with the bytes — decodeMessage every reply (in place, as the driver does),
 * validateReply each against the round's expectation, aggregateReplies over the accepted ones. Reports
 * the median and min of the total, the median of each part, the bytes per reply, and whether the
 * 50 ms target is met. Checks once (untimed) that one aggregated entry is the sample-weighted mean.
 *
 *   node dist/bench/aggregate.js [--replies 100] [--reps 20] [--dtype float32|float16|bfloat16] [--json]
 */
import { parseArgs } from "node:util";
import { aggregateReplies, type ReplyExpectation, validateReply } from "../src/fl/aggregate.js";
import { type DecodedMessage, decodeMessage, encodeMessage, type PayloadDType, type WireMessage, type WireTensor } from "../src/fl/wire.js";
import { presetConfig } from "../src/nn/config.js";
import { ParamStore } from "../src/nn/params.js";
import { adapterTrainable, buildAdaptedVit } from "../src/peft/model.js";
import { parseAdapterSpec } from "../src/peft/registry.js";
import { Rng } from "../src/util/rng.js";

const { values } = parseArgs({
  options: {
    replies: { type: "string", default: "100" },
    reps: { type: "string", default: "20" },
    dtype: { type: "string", default: "float32" },
    seed: { type: "string", default: "0" },
    json: { type: "boolean", default: false },
  },
});
const DTYPES: readonly PayloadDType[] = ["float32", "float16", "bfloat16"];
const dtype = values.dtype as PayloadDType;
const nReplies = Number(values.replies);
const reps = Number(values.reps);
const seed = Number(values.seed);
if (!DTYPES.includes(dtype) || !(Number.isInteger(nReplies) && nReplies > 0) || !(Number.isInteger(reps) && reps > 0) || !Number.isFinite(seed)) {
  console.error("usage: node dist/bench/aggregate.js [--replies N>0] [--reps N>0] [--dtype float32|float16|bfloat16] [--seed S] [--json]");
  process.exit(2);
}
const ROUND = 5;
const WARMUP = 2;
const TARGET_MS = 50;

// The model: small-cifar with a 10-label head and LoRA rank 8 on the default targets.
const preset = "small-cifar";
const config = { ...presetConfig(preset).config, num_labels: 10 };
const { model, adapter } = buildAdaptedVit(config, parseAdapterSpec({ kind: "lora", rank: 8 }));
const store = ParamStore.init(model.registry.specs.values(), new Rng(seed));
const trainable = model.registry.paramNames().filter(adapterTrainable(adapter));
const base: WireTensor[] = trainable.map((name) => ({ name, shape: store.shape(name), data: store.get(name) }));
const paramsPerReply = base.reduce((n, t) => n + t.data.length, 0);

// N distinct replies: the trainable tensors shifted by one random value per client.
const rng = new Rng(seed + 1);
const encoded: Uint8Array[] = [];
for (let i = 0; i < nReplies; i++) {
  const delta = rng.uniform(-0.05, 0.05);
  const msg: WireMessage = {
    kind: "reply",
    round: ROUND,
    clientId: `c${i}`,
    sampleCount: 50 + i,
    metrics: { trainLoss: 2.3 - 0.01 * i },
    tensors: base.map((t) => ({ name: t.name, shape: t.shape, data: t.data.map((v) => v + delta) })),
    packed: [],
    scores: [],
  };
  encoded.push(encodeMessage(msg, { dtype }));
}
// Reply sizes differ only by the clientId's length ("c9" vs "c10").
const sizes = encoded.map((b) => b.length);
const bytesPerReplyMin = Math.min(...sizes);
const bytesPerReplyMax = Math.max(...sizes);
const bytesTotal = sizes.reduce((a, b) => a + b, 0);
const expectation: ReplyExpectation = {
  round: ROUND,
  tensors: new Map(base.map((t) => [t.name, t.shape])),
  packed: new Map(),
  scores: new Map(),
};

/** One server pass over the bytes; returns the part times (ms) and what it produced. */
function serverPass() {
  const t0 = performance.now();
  // As the server does (fl/driver): views, not copies, since replies are only read.
  const decoded: DecodedMessage[] = encoded.map((b) => decodeMessage(b, { views: true }));
  const t1 = performance.now();
  const accepted: DecodedMessage[] = [];
  const rejected: string[] = [];
  for (const m of decoded) {
    const v = validateReply(m, expectation);
    if (v.ok) accepted.push(m);
    else rejected.push(`${m.clientId}: ${v.failure.message}`);
  }
  const t2 = performance.now();
  const agg = aggregateReplies(accepted);
  const t3 = performance.now();
  return { decodeMs: t1 - t0, validateMs: t2 - t1, aggregateMs: t3 - t2, totalMs: t3 - t0, decoded, accepted, rejected, agg };
}

// Correctness, once and untimed: every reply accepted, and one entry equals the hand-computed
// sample-weighted mean of the decoded values (what the server received, so exact for any dtype).
{
  const { decoded, accepted, rejected, agg } = serverPass();
  if (accepted.length !== nReplies) {
    console.error(`correctness: ${rejected.length} of ${nReplies} replies rejected, e.g. ${rejected[0]}`);
    process.exit(1);
  }
  const ti = base.findIndex((t) => t.name.includes("lora_A"));
  const tensor = base[ti >= 0 ? ti : 0]!;
  const entry = tensor.data.length >> 1;
  let num = 0;
  let den = 0;
  for (const m of decoded) {
    const t = m.tensors.find((x) => x.name === tensor.name)!;
    num += m.sampleCount! * t.data[entry]!;
    den += m.sampleCount!;
  }
  const want = num / den;
  const got = agg.tensors.find((t) => t.name === tensor.name)!.data[entry]!;
  const rel = Math.abs(got - want) / Math.max(Math.abs(want), 1e-30);
  if (!(rel <= 1e-6)) {
    console.error(`correctness: aggregated ${tensor.name}[${entry}] = ${got}, hand-computed sample-weighted mean ${want} (relative error ${rel.toExponential(2)} > 1e-6)`);
    process.exit(1);
  }
}

for (let i = 0; i < WARMUP; i++) serverPass();
const runs: { decodeMs: number; validateMs: number; aggregateMs: number; totalMs: number }[] = [];
for (let i = 0; i < reps; i++) {
  const { decodeMs, validateMs, aggregateMs, totalMs } = serverPass();
  runs.push({ decodeMs, validateMs, aggregateMs, totalMs });
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const totals = runs.map((r) => r.totalMs);
const result = {
  preset,
  adapter: "lora rank 8",
  dtype,
  replies: nReplies,
  reps,
  warmup: WARMUP,
  tensorsPerReply: base.length,
  paramsPerReply,
  bytesPerReplyMin,
  bytesPerReplyMax,
  bytesTotal,
  totalMsMedian: median(totals),
  totalMsMin: Math.min(...totals),
  decodeMsMedian: median(runs.map((r) => r.decodeMs)),
  validateMsMedian: median(runs.map((r) => r.validateMs)),
  aggregateMsMedian: median(runs.map((r) => r.aggregateMs)),
  targetMs: TARGET_MS,
  targetMet: median(totals) < TARGET_MS,
};

if (values.json) {
  console.log(JSON.stringify(result));
} else {
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  console.log(`${preset}, ${result.adapter} + head: ${base.length} tensors, ${paramsPerReply.toLocaleString("en")} parameters per reply`);
  const perReply = bytesPerReplyMin === bytesPerReplyMax ? bytesPerReplyMin.toLocaleString("en") : `${bytesPerReplyMin.toLocaleString("en")}-${bytesPerReplyMax.toLocaleString("en")}`;
  console.log(`${nReplies} replies, payload ${dtype}: ${perReply} bytes per reply, ${(bytesTotal / 1e6).toFixed(2)} MB in all`);
  console.log(`server pass (${reps} reps after ${WARMUP} warm-up): total median ${ms(result.totalMsMedian)}, min ${ms(result.totalMsMin)}`);
  console.log(`  decode    median ${ms(result.decodeMsMedian)}`);
  console.log(`  validate  median ${ms(result.validateMsMedian)}`);
  console.log(`  aggregate median ${ms(result.aggregateMsMedian)}`);
  console.log(`target < ${TARGET_MS} ms: ${result.targetMet ? "met" : "not met"}`);
}
