/**
 * Where a simulation's round time goes, from its metrics.jsonl: median seconds per round and the
 * median split into client training, server-side evaluation, encoding/decoding, aggregation and
 * the rest, per stage. Run the main job first, then:
 *
 *   node dist/bench/round-split.js runs/main/metrics.jsonl [--skip 1] [--json]
 *
 * `--skip n` leaves out the first n rounds (graph compilation happens in round 1 and in the first
 * round of a new stage's trained set).
 */
import { readFileSync } from "node:fs";
import type { RoundRecord } from "../src/fl/records.js";

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith("--"));
const json = args.includes("--json");
const skipAt = args.indexOf("--skip");
const skip = skipAt >= 0 ? Number(args[skipAt + 1]) : 1;
if (!file || !Number.isInteger(skip) || skip < 0) {
  console.error("usage: node dist/bench/round-split.js <metrics.jsonl> [--skip n] [--json]");
  process.exit(2);
}
const records = readFileSync(file, "utf8")
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as RoundRecord)
  .slice(skip);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const parts = ["clientTrain", "evaluate", "codec", "aggregate", "other"] as const;
const groups = new Map<string, RoundRecord[]>([["all", records]]);
for (const r of records) groups.set(r.stage, [...(groups.get(r.stage) ?? []), r]);
const out: Record<string, Record<string, number>> = {};
for (const [stage, rs] of groups) {
  const row: Record<string, number> = { rounds: rs.length, seconds: median(rs.map((r) => r.seconds)) };
  for (const p of parts) row[p] = median(rs.map((r) => r.timing[p]));
  row["overheadPct"] = 100 * median(rs.map((r) => (r.seconds - r.timing.clientTrain - r.timing.evaluate) / r.seconds));
  out[stage] = row;
}
if (json) console.log(JSON.stringify({ file, skip, ...out }));
else {
  console.log(`${file}: medians over rounds after the first ${skip}`);
  console.log(["stage", "rounds", "round s", ...parts.map((p) => `${p} s`), "overhead %"].map((h) => h.padStart(14)).join(""));
  for (const [stage, row] of Object.entries(out)) {
    console.log(
      [stage, String(row["rounds"]), row["seconds"]!.toFixed(3), ...parts.map((p) => row[p]!.toFixed(3)), row["overheadPct"]!.toFixed(2)].map((c) => c.padStart(14)).join(""),
    );
  }
}
