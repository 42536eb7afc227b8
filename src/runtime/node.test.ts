/**
 * The onnxruntime-node backend against the reference interpreter on random inputs (every lowering is
 * checked against an independent evaluation), plus session caching and the errors for bad feeds.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { SaflError } from "../errors.js";
import { grad } from "../graph/autodiff/grad.js";
import * as g from "../graph/builder.js";
import type { Value } from "../graph/node.js";
import { BATCH } from "../graph/shape.js";
import { Rng } from "../util/rng.js";
import { NodeRuntime } from "./node.js";
import { evaluate } from "./reference.js";
import type { HostTensor } from "../tensor.js";

const runtime = new NodeRuntime({ threads: 1 });
after(() => runtime.release());

function feedsFor(shapes: Record<string, number[]>, rng: Rng): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [k, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    out[k] = { dtype: "float32", shape, data: Float32Array.from({ length: n }, () => rng.normal()) };
  }
  return out;
}

async function agree(outputs: Record<string, Value>, shapes: Record<string, number[]>, batch?: number, extra: Record<string, HostTensor> = {}): Promise<void> {
  const feeds = { ...feedsFor(shapes, new Rng(5)), ...extra };
  const exe = await runtime.compile(outputs, batch === undefined ? {} : { batch });
  const got = await exe.run(feeds);
  const want = evaluate(Object.values(outputs), feeds, batch === undefined ? {} : { batch });
  Object.keys(outputs).forEach((k, i) => {
    const a = got[k]!.data as Float32Array;
    const b = want[i]!.data as Float32Array;
    assert.deepEqual(got[k]!.shape, want[i]!.shape);
    for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j]! - b[j]!) <= 1e-4 * (1 + Math.abs(b[j]!)), `${k}[${j}]: ${a[j]} vs ${b[j]}`);
  });
}

describe("onnxruntime-node backend", () => {
  test("a training graph (layernorm, attention-style matmuls, gelu, softmax, CE and its gradients) agrees with the reference", async () => {
    const x = g.input("x", "float32", [BATCH, 3, 8]);
    const w = g.input("w", "float32", [8, 8]);
    const s = g.input("s", "float32", [8]);
    const b = g.input("b", "float32", [8]);
    const h = g.layerNorm(x, s, b, 1e-5);
    const q = g.matmul(h, w);
    const att = g.softmax(g.mul(g.matmul(q, g.mT(h)), 0.3), -1);
    const y = g.gelu(g.matmul(att, h));
    const logits = g.reshape(g.slice(y, 1, 0, 1), [BATCH, 8]);
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.crossEntropy(logits, labels);
    const [dw, ds, db] = grad(loss, [w, s, b]);
    const parts = g.split(y, [3, 5], 2);
    await agree({ loss, dw: dw!, ds: ds!, db: db!, y, part: parts[1]! }, { x: [2, 3, 8], w: [8, 8], s: [8], b: [8] }, 2, {
      labels: { dtype: "int64", shape: [2], data: new BigInt64Array([1n, 3n]) },
    });
  });

  test("sessions are cached per graph and batch size", async () => {
    const x = g.input("x", "float32", [BATCH, 2]);
    const y = g.mul(x, 2);
    const a = await runtime.compile({ y }, { batch: 3 });
    const b = await runtime.compile({ y }, { batch: 3 });
    const c = await runtime.compile({ y }, { batch: 4 });
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  test("bad feeds give one clear error naming the input", async () => {
    const x = g.input("x", "float32", [2, 3]);
    const exe = await runtime.compile({ y: g.exp(x) });
    const err = (re: RegExp) => (e: unknown) => e instanceof SaflError && re.test(e.message);
    await assert.rejects(exe.run({}), err(/missing feed for input "x" \(float32\[2,3\]\)/));
    await assert.rejects(exe.run({ x: new Float32Array(5) }), err(/feed "x": expected 6 values for shape \[2,3\], got 5/));
    await assert.rejects(exe.run({ x: new Float64Array(6) }), err(/feed "x": expected float32 \(Float32Array\), got Float64Array/));
    await assert.rejects(exe.run({ x: { dtype: "float32", shape: [3, 2], data: new Float32Array(6) } }), err(/expected shape \[2,3\], got \[3,2\]/));
    await assert.rejects(exe.run({ x: new Float32Array(6), z: new Float32Array(1) }), err(/unknown feed "z"/));
  });

  test("a graph with a batch dimension needs a batch size to compile", async () => {
    const x = g.input("x", "float32", [BATCH, 2]);
    await assert.rejects(runtime.compile({ y: g.neg(x) }), /no batch size was given/);
  });

  test("thread count is validated", () => {
    assert.throws(() => new NodeRuntime({ threads: 0 }), /threads must be an integer between 1 and 256, got 0/);
    assert.equal(new NodeRuntime({ threads: 3 }).threads, 3);
  });
});
