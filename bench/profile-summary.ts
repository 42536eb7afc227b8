/**
 * Summarizes an onnxruntime profile (written by `safl bench step --profile <prefix>`): kernel time per
 * op type per run, and the costliest (op, input shapes) groups. This is how docs/benchmarks.md's
 * breakdown of a step was made.
 *
 *   node dist/bench/profile-summary.js <prefix_...json> [--top 15]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({ options: { top: { type: "string", default: "15" } }, allowPositionals: true });
if (positionals.length !== 1) {
  console.error("usage: node dist/bench/profile-summary.js <profile.json> [--top N]");
  process.exit(2);
}
interface TraceEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; input_type_shape?: unknown };
}
const events = JSON.parse(readFileSync(positionals[0]!, "utf8")) as TraceEvent[];
const runs = events.filter((e) => e.name === "model_run");
const n = Math.max(runs.length, 1);
const byOp = new Map<string, { ms: number; count: number }>();
const byShape = new Map<string, number>();
for (const e of events) {
  if (e.cat !== "Node" || !e.name?.endsWith("_kernel_time")) continue;
  const op = e.args?.op_name ?? "?";
  const cur = byOp.get(op) ?? { ms: 0, count: 0 };
  cur.ms += (e.dur ?? 0) / 1000;
  cur.count++;
  byOp.set(op, cur);
  const key = `${op} ${JSON.stringify(e.args?.input_type_shape)}`;
  byShape.set(key, (byShape.get(key) ?? 0) + (e.dur ?? 0) / 1000);
}
const total = [...byOp.values()].reduce((a, b) => a + b.ms, 0);
const med = runs.map((r) => (r.dur ?? 0) / 1000).sort((a, b) => a - b)[runs.length >> 1] ?? 0;
console.log(`${runs.length} runs (warm-up included); kernel time ${(total / n).toFixed(1)} ms/run; median run ${med.toFixed(1)} ms`);
for (const [op, { ms, count }] of [...byOp].sort((a, b) => b[1].ms - a[1].ms)) {
  console.log(`  ${op.padEnd(22)} ${(ms / n).toFixed(2).padStart(8)} ms/run  ${Math.round(count / n)} nodes`);
}
console.log("costliest op + input shapes:");
for (const [k, ms] of [...byShape].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
  console.log(`  ${(ms / n).toFixed(2).padStart(8)} ms/run  ${k}`);
}
