/**
 * The practical ceiling for our GFLOP/s figures: onnxruntime's own rate on single large products on
 * this machine (a 1024³ MatMul, and the Gemm shapes of a small-cifar step), through the same
 * lowering and runtime the training step uses. Prints one line per product.
 *
 *   node dist/bench/matmul-ceiling.js [--threads 2] [--runs 30]
 */
import { parseArgs } from "node:util";
import * as g from "../src/graph/builder.js";
import { NodeRuntime } from "../src/runtime/node.js";

const { values } = parseArgs({ options: { threads: { type: "string", default: "2" }, runs: { type: "string", default: "30" } } });
const runtime = new NodeRuntime({ threads: Number(values.threads) });
const shapes: [string, number, number, number][] = [
  ["MatMul 1024x1024x1024", 1024, 1024, 1024],
  ["Gemm x·Wᵀ [4160,192]x[768,192]ᵀ (fc1)", 4160, 192, 768],
  ["Gemm x·Wᵀ [4160,768]x[192,768]ᵀ (fc2)", 4160, 768, 192],
  ["Gemm x·Wᵀ [4160,192]x[576,192]ᵀ (qkv)", 4160, 192, 576],
];
for (const [label, m, k, n] of shapes) {
  const x = g.input("x", "float32", [m, k]);
  const w = g.input("w", "float32", label.startsWith("MatMul") ? [k, n] : [n, k]);
  const y = label.startsWith("MatMul") ? g.matmul(x, w) : g.gemm(x, w, undefined, { transB: true });
  // Reduce to a scalar inside the graph so copying the output back to JavaScript is not timed.
  const exe = await runtime.compile({ s: g.sum(g.slice(y, 0, 0, 1)) });
  const feeds = { x: new Float32Array(m * k).fill(0.5), w: new Float32Array(k * n).fill(0.01) };
  for (let i = 0; i < 3; i++) await exe.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < Number(values.runs); i++) {
    const t = performance.now();
    await exe.run(feeds);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const med = times[times.length >> 1]!;
  console.log(`${label}: median ${med.toFixed(2)} ms, ${((2 * m * k * n) / med / 1e6).toFixed(0)} GFLOP/s (${values.threads} threads)`);
}
await runtime.release();
