/**
 * Every op's gradient rule against central finite differences in float64 (one table of cases with
 * random shapes, broadcasting included), then whole models: one transformer block and a small ViT
 * with LoRA adapters.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as g from "../graph/builder.js";
import { type Value, apply } from "../graph/node.js";
import { Op } from "../graph/ops.js";
import { BATCH } from "../graph/shape.js";
import { parseVitConfig } from "../nn/config.js";
import { loraAdapter } from "../peft/lora/layer.js";
import { buildVit } from "../nn/vit.js";
import { Rng } from "../util/rng.js";
import { checkGrads } from "./gradcheck.js";
import type { HostTensor } from "../tensor.js";

interface Case {
  name: string;
  /** Input shapes; values are drawn from `positive` ranges when set. */
  inputs: Record<string, number[]>;
  build: (x: Record<string, Value>) => Value;
  positive?: boolean;
}

const cases: Case[] = [
  { name: "Neg", inputs: { a: [2, 3] }, build: ({ a }) => g.neg(a!) },
  { name: "Abs", inputs: { a: [3, 4] }, build: ({ a }) => g.abs(a!) },
  { name: "Exp", inputs: { a: [2, 3] }, build: ({ a }) => g.exp(a!) },
  { name: "Log", inputs: { a: [2, 3] }, build: ({ a }) => g.log(a!), positive: true },
  { name: "Sqrt", inputs: { a: [2, 3] }, build: ({ a }) => g.sqrt(a!), positive: true },
  { name: "Tanh", inputs: { a: [2, 3] }, build: ({ a }) => g.tanh(a!) },
  { name: "Erf", inputs: { a: [2, 3] }, build: ({ a }) => g.erf(a!) },
  { name: "Gelu", inputs: { a: [3, 5] }, build: ({ a }) => g.gelu(a!) },
  { name: "Identity", inputs: { a: [4] }, build: ({ a }) => g.identity(a!) },
  { name: "Cast", inputs: { a: [2, 2] }, build: ({ a }) => apply(Op.Cast, [a!], { to: "float64" }) },
  { name: "Add (broadcast)", inputs: { a: [2, 3, 4], b: [3, 1] }, build: ({ a, b }) => g.add(a!, b!) },
  { name: "Sub (broadcast)", inputs: { a: [4], b: [2, 1, 4] }, build: ({ a, b }) => g.sub(a!, b!) },
  { name: "Mul (broadcast)", inputs: { a: [2, 1, 4], b: [3, 1] }, build: ({ a, b }) => g.mul(a!, b!) },
  { name: "Div (broadcast)", inputs: { a: [2, 3], b: [3] }, build: ({ a, b }) => g.div(a!, b!), positive: true },
  { name: "Pow (broadcast)", inputs: { a: [2, 3], b: [1, 3] }, build: ({ a, b }) => g.pow(a!, b!), positive: true },
  {
    name: "Where (broadcast)",
    inputs: { c: [2, 3], a: [3], b: [2, 1] },
    build: ({ c, a, b }) => g.where(g.greater(c!, 0), a!, b!),
  },
  { name: "MatMul 3D x 2D", inputs: { a: [2, 3, 4], b: [4, 5] }, build: ({ a, b }) => g.matmul(a!, b!) },
  { name: "MatMul batch broadcast", inputs: { a: [2, 1, 3, 4], b: [3, 4, 2] }, build: ({ a, b }) => g.matmul(a!, b!) },
  { name: "MatMul 2D x 3D", inputs: { a: [3, 4], b: [2, 4, 5] }, build: ({ a, b }) => g.matmul(a!, b!) },
  ...([false, true] as const).flatMap((transA) =>
    ([false, true] as const).map(
      (transB): Case => ({
        name: `Gemm transA=${transA} transB=${transB} with C`,
        inputs: { a: transA ? [4, 3] : [3, 4], b: transB ? [5, 4] : [4, 5], c: [5] },
        build: ({ a, b, c }) => g.gemm(a!, b!, c!, { transA, transB, alpha: 0.7, beta: 1.3 }),
      }),
    ),
  ),
  { name: "Gemm C [M,1]", inputs: { a: [3, 4], b: [4, 2], c: [3, 1] }, build: ({ a, b, c }) => g.gemm(a!, b!, c!) },
  { name: "ReduceSum axes [0,2]", inputs: { a: [2, 3, 4] }, build: ({ a }) => g.sum(a!, [0, 2]) },
  { name: "ReduceSum keepdims", inputs: { a: [2, 3, 4] }, build: ({ a }) => g.sum(a!, 1, true) },
  { name: "ReduceMean axes [1]", inputs: { a: [2, 3, 4] }, build: ({ a }) => g.mean(a!, 1) },
  { name: "ReduceMax keepdims", inputs: { a: [2, 3, 4] }, build: ({ a }) => g.max(a!, -1, true) },
  { name: "Softmax axis 1", inputs: { a: [2, 3, 4] }, build: ({ a }) => g.softmax(a!, 1) },
  { name: "LogSoftmax axis -1", inputs: { a: [2, 3, 4] }, build: ({ a }) => g.logSoftmax(a!, -1) },
  {
    name: "LayerNormalization last axis",
    inputs: { a: [3, 5], s: [5], b: [5] },
    build: ({ a, s, b }) => g.layerNorm(a!, s!, b!, 1e-5),
  },
  {
    name: "LayerNormalization over two axes",
    inputs: { a: [2, 3, 4], s: [3, 4], b: [3, 4] },
    build: ({ a, s, b }) => g.layerNorm(a!, s!, b!, 1e-3, 1),
  },
  { name: "Reshape", inputs: { a: [2, 6] }, build: ({ a }) => g.mul(g.reshape(a!, [3, -1]), g.constant([1, 2, 3, 4], [4], "float64")) },
  { name: "Transpose", inputs: { a: [2, 3, 4] }, build: ({ a }) => g.transpose(a!, [2, 0, 1]) },
  { name: "Concat", inputs: { a: [2, 3], b: [2, 1], c: [2, 2] }, build: ({ a, b, c }) => g.concat([a!, b!, c!], 1) },
  {
    name: "Split (one part unused)",
    inputs: { a: [2, 7] },
    build: ({ a }) => {
      const [p, , r] = g.split(a!, [2, 1, 4], 1);
      return g.concat([g.mul(p!, 3), r!], 1);
    },
  },
  { name: "Slice", inputs: { a: [4, 5] }, build: ({ a }) => g.slice(a!, 1, 1, 4) },
  { name: "Pad", inputs: { a: [2, 3] }, build: ({ a }) => g.pad(a!, [1, 0, 0, 2]) },
  {
    name: "Gather (duplicate indices)",
    inputs: { a: [4, 3] },
    build: ({ a }) => g.gather(a!, g.constant([2, 0, 2, 3], [4], "int64"), 0),
  },
  { name: "Gather axis 1", inputs: { a: [2, 5] }, build: ({ a }) => g.gather(a!, g.constant([4, 1], [2], "int64"), 1) },
  {
    name: "ScatterElements add (data)",
    inputs: { a: [3, 2] },
    build: ({ a }) =>
      g.scatterAdd(a!, g.constant([0, 1, 0, 0], [2, 2], "int64"), g.constant([1, 2, 3, 4], [2, 2], "float64"), 0),
  },
  { name: "Expand", inputs: { a: [3, 1] }, build: ({ a }) => g.expand(a!, [2, 3, 4]) },
  { name: "crossEntropy", inputs: { a: [4, 5] }, build: ({ a }) => g.crossEntropy(a!, g.constant([0, 4, 2, 2], [4], "int64")) },
  { name: "patchify", inputs: { a: [2, 2, 4, 4] }, build: ({ a }) => g.patchify(a!, 2) },
];

function randomFeeds(shapes: Record<string, number[]>, rng: Rng, positive = false): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float64Array.from({ length: n }, () => (positive ? 0.5 + rng.next() : rng.normal()));
    feeds[name] = { dtype: "float64", shape, data };
  }
  return feeds;
}

/** Reduces any output to a scalar with fixed random weights, so the check sees a generic cotangent. */
function scalarize(y: Value, rng: Rng): Value {
  if (y.rank === 0) return y;
  const shape = y.shape as number[];
  const n = shape.reduce((a, b) => a * b, 1);
  return g.sum(g.mul(y, g.constant(Array.from({ length: n }, () => rng.normal()), shape, "float64")));
}

describe("gradient rules match finite differences (float64)", () => {
  for (const c of cases) {
    test(c.name, () => {
      const rng = new Rng(7);
      const inputs: Record<string, Value> = {};
      for (const [name, shape] of Object.entries(c.inputs)) inputs[name] = g.input(name, "float64", shape);
      const loss = scalarize(c.build(inputs), rng);
      const feeds = randomFeeds(c.inputs, rng, c.positive);
      const wrt = Object.values(inputs);
      const r = checkGrads(loss, wrt, feeds);
      assert.ok(r.worst <= 1);
      assert.ok(r.analytic.some((a) => Math.abs(a) > 1e-6), "the gradient should not vanish on these inputs");
    });
  }

  test("a mean over the batch dimension differentiates for any batch size", () => {
    const x = g.input("x", "float64", [BATCH, 3]);
    const loss = g.mean(g.square(x));
    for (const batch of [2, 5]) checkGrads(loss, [x], randomFeeds({ x: [batch, 3] }, new Rng(batch)), { batch });
  });

  test("the checker can fail: zero tolerance rejects any finite-difference noise", () => {
    const a = g.input("a", "float64", [3]);
    const feeds = randomFeeds({ a: [3] }, new Rng(1));
    assert.throws(() => checkGrads(g.sum(g.tanh(a)), [a], feeds, { rtol: 0, atol: 0 }), /gradient check failed/);
  });
});

function tinyConfig(layers: number) {
  return parseVitConfig({
    hidden_size: 8,
    num_hidden_layers: layers,
    num_attention_heads: 2,
    intermediate_size: 12,
    image_size: 4,
    patch_size: 2,
    num_channels: 2,
    layer_norm_eps: 1e-5,
    num_labels: 3,
  });
}

function modelFeeds(names: Map<string, { shape: readonly number[] }>, rng: Rng, batch: number, cfg: ReturnType<typeof tinyConfig>) {
  const feeds: Record<string, HostTensor> = {};
  for (const [name, spec] of names) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const scale = name.endsWith("layernorm_before.weight") || name.endsWith("layernorm_after.weight") || name.endsWith("layernorm.weight") ? 0 : 1;
    feeds[name] = { dtype: "float64", shape: [...spec.shape], data: Float64Array.from({ length: n }, () => scale + 0.3 * rng.normal()) };
  }
  const px = batch * cfg.num_channels * cfg.image_size * cfg.image_size;
  feeds["pixel_values"] = {
    dtype: "float64",
    shape: [batch, cfg.num_channels, cfg.image_size, cfg.image_size],
    data: Float64Array.from({ length: px }, () => rng.normal()),
  };
  feeds["labels"] = { dtype: "int64", shape: [batch], data: BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % cfg.num_labels)) };
  return feeds;
}

describe("whole-model gradients match finite differences (float64)", () => {
  test("one transformer block (a 1-layer ViT), every parameter", () => {
    const cfg = tinyConfig(1);
    const model = buildVit(cfg, [], { dtype: "float64" });
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.crossEntropy(model.logits, labels);
    const feeds = modelFeeds(model.registry.specs, new Rng(3), 2, cfg);
    const block = [...model.registry.values.entries()].filter(([n]) => n.startsWith("vit.encoder.layer.0.")).map(([, v]) => v);
    assert.equal(block.length, 16);
    checkGrads(loss, block, feeds, { rtol: 1e-5 });
  });

  test("a 2-layer ViT with LoRA adapters: LoRA factors, head and (separately) all parameters", () => {
    const cfg = tinyConfig(2);
    const model = buildVit(cfg, [loraAdapter({ rank: 2, alpha: 4 }).linear], { dtype: "float64" });
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.crossEntropy(model.logits, labels);
    // nonzero B so gradients flow into A as well
    const feeds = modelFeeds(model.registry.specs, new Rng(4), 3, cfg);
    const entries = [...model.registry.values.entries()];
    const lora = entries.filter(([n]) => n.includes("lora_") || n.startsWith("classifier.")).map(([, v]) => v);
    checkGrads(loss, lora, feeds, { rtol: 1e-5 });
    checkGrads(
      loss,
      entries.map(([, v]) => v),
      feeds,
      { rtol: 1e-5 },
    );
  });
});
