/**
 * @module sim/report
 * Turns what a simulated run logs (RoundRecords, the RunSummary, the partition summary) into things a
 * person reads: SVG plots (accuracy vs round and vs cumulative bytes, budget vs round, the per-module
 * rank allocation as a heat map, samples per client and class), a plain-text summary table for the
 * terminal, and a one-line per-round log for non-TTY output. Pure functions returning strings: the
 * caller decides where they are written.
 */

import type { PartitionSummary } from "../data/partition.js";
import { argError } from "../errors.js";
import type { RoundRecord, RunSummary } from "../fl/records.js";
import { heatmap, lineChart, type Series } from "../util/svg.js";

/** Most clients drawn as rows of the partition heat map. */
const MAX_PARTITION_ROWS = 50;

/** Cumulative training bytes (down + up) through a round. */
function cumulativeBytes(r: RoundRecord): number {
  return r.cumulativeDown.bytes + r.cumulativeUp.bytes;
}

/** (round, accuracy %) for the rounds that were evaluated. */
function accuracyByRound(records: readonly RoundRecord[]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of records) if (r.testAccuracy !== undefined) out.push([r.round, r.testAccuracy * 100]);
  return out;
}

/** (cumulative bytes, accuracy %) for the rounds that were evaluated. */
function accuracyByBytes(records: readonly RoundRecord[]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of records) if (r.testAccuracy !== undefined) out.push([cumulativeBytes(r), r.testAccuracy * 100]);
  return out;
}

/** True when the positive x values span more than two decades (then a log axis reads better). */
function spansDecades(series: readonly Series[]): boolean {
  const xs = series.flatMap((s) => s.points.map((p) => p[0])).filter((x) => Number.isFinite(x) && x > 0);
  if (xs.length < 2) return false;
  return Math.max(...xs) / Math.min(...xs) > 100;
}

function accuracyVsRound(series: readonly Series[], title: string): string {
  return lineChart(series, { title: `${title}: test accuracy vs round`, xLabel: "round", yLabel: "test accuracy (%)" });
}

function accuracyVsBytes(series: readonly Series[], title: string): string {
  const xLog = spansDecades(series);
  return lineChart(series, {
    title: `${title}: test accuracy vs communication`,
    xLabel: `cumulative bytes, down + up${xLog ? " (log scale)" : ""}`,
    yLabel: "test accuracy (%)",
    xLog,
  });
}

/** Heat-map height that leaves about 14 px per row, so every row label shows. */
function heatmapHeight(rows: number): number {
  return Math.max(400, 84 + rows * 14);
}

/**
 * A short label for an adapted module of the ViT: "vit.encoder.layer.0.attention.attention.query" →
 * "L0 query", "….layer.3.intermediate.dense" → "L3 intermediate", "….layer.1.output.dense" →
 * "L1 output", "….layer.2.attention.output.dense" → "L2 attn.out". Other names are returned unchanged.
 */
export function shortModuleName(name: string): string {
  const m = /(?:^|\.)layer\.(\d+)\.(.+)$/.exec(name);
  if (m === null) return name;
  const layer = m[1]!;
  const rest = m[2]!;
  const attn = /^attention\.attention\.(query|key|value)$/.exec(rest);
  if (attn !== null) return `L${layer} ${attn[1]!}`;
  if (rest === "attention.output.dense") return `L${layer} attn.out`;
  if (rest === "intermediate.dense") return `L${layer} intermediate`;
  if (rest === "output.dense") return `L${layer} output`;
  return name;
}

/** Short labels for module names, keeping the full name wherever two would shorten to the same label. */
function moduleLabels(names: readonly string[]): string[] {
  const short = names.map(shortModuleName);
  const count = new Map<string, number>();
  for (const s of short) count.set(s, (count.get(s) ?? 0) + 1);
  return short.map((s, i) => (count.get(s)! > 1 ? names[i]! : s));
}

/**
 * The plots of one run, as file name → SVG document:
 * - `accuracy-vs-round.svg`: test accuracy (%) per evaluated round;
 * - `accuracy-vs-bytes.svg`: test accuracy (%) vs cumulative training bytes (down + up), on a log
 *   axis when the bytes span more than two decades;
 * - `budget-vs-round.svg` (only when some record has a budget): active triplets over all modules per
 *   round, as a step function; rounds without a budget (the initiating stage) are left out;
 * - `ranks-heatmap.svg` (only when some record has ranks): active triplets per module (rows, in the
 *   key order of the first record with ranks, short labels such as "L0 query") and round (columns).
 */
export function runPlots(records: readonly RoundRecord[], opts: { title: string }): Map<string, string> {
  const out = new Map<string, string>();
  out.set("accuracy-vs-round.svg", accuracyVsRound([{ label: "test accuracy", points: accuracyByRound(records) }], opts.title));
  out.set("accuracy-vs-bytes.svg", accuracyVsBytes([{ label: "test accuracy", points: accuracyByBytes(records) }], opts.title));

  const budget: [number, number][] = [];
  for (const r of records) if (r.budget !== undefined) budget.push([r.round, r.budget]);
  if (budget.length > 0) {
    out.set(
      "budget-vs-round.svg",
      lineChart([{ label: "budget", points: budget }], {
        title: `${opts.title}: rank budget vs round`,
        xLabel: "round",
        yLabel: "active triplets (all modules)",
        step: true,
      }),
    );
  }

  const ranked = records.filter((r) => r.ranks !== undefined);
  if (ranked.length > 0) {
    // Row order: the first ranked record's keys, then any module that only shows up later.
    const modules: string[] = [];
    const seen = new Set<string>();
    for (const r of ranked) {
      for (const k of Object.keys(r.ranks!)) {
        if (!seen.has(k)) {
          seen.add(k);
          modules.push(k);
        }
      }
    }
    const values = modules.map((m) => ranked.map((r) => r.ranks![m] ?? Number.NaN));
    out.set(
      "ranks-heatmap.svg",
      heatmap(values, {
        title: `${opts.title}: active triplets per module and round`,
        xLabel: "round",
        yLabel: "module",
        rowLabels: moduleLabels(modules),
        colLabels: ranked.map((r) => String(r.round)),
        valueLabel: "active triplets",
        height: heatmapHeight(modules.length),
      }),
    );
  }
  return out;
}

/**
 * Plots comparing several runs (e.g. strategies), one series per run: `accuracy-vs-round.svg` and
 * `accuracy-vs-bytes.svg` (log bytes axis when the runs together span more than two decades).
 */
export function runPlotsMulti(runs: readonly { label: string; records: readonly RoundRecord[] }[], opts: { title: string }): Map<string, string> {
  const byRound = runs.map((r) => ({ label: r.label, points: accuracyByRound(r.records) }));
  const byBytes = runs.map((r) => ({ label: r.label, points: accuracyByBytes(r.records) }));
  return new Map([
    ["accuracy-vs-round.svg", accuracyVsRound(byRound, opts.title)],
    ["accuracy-vs-bytes.svg", accuracyVsBytes(byBytes, opts.title)],
  ]);
}

/**
 * A heat map of samples per client (rows, at most the first 50; the title says so when there are
 * more) and class (columns, labelled with `classNames` when given, else the class index).
 *
 * @throws SaflError(InvalidArgument) when `classNames` does not have one name per class.
 */
export function partitionPlot(summary: PartitionSummary, classNames?: readonly string[]): string {
  const clients = summary.histograms.length;
  const rows = summary.histograms.slice(0, MAX_PARTITION_ROWS);
  const classes = Math.max(0, ...summary.histograms.map((h) => h.length));
  if (classNames !== undefined && classNames.length !== classes) {
    throw argError(`partition plot: ${classNames.length} class names for ${classes} classes`);
  }
  const title =
    clients > MAX_PARTITION_ROWS ? `Samples per client and class (first ${MAX_PARTITION_ROWS} of ${clients} clients)` : "Samples per client and class";
  return heatmap(rows, {
    title,
    xLabel: "class",
    yLabel: "client",
    rowLabels: rows.map((_, i) => `client ${i}`),
    colLabels: classNames ?? Array.from({ length: classes }, (_, j) => String(j)),
    valueLabel: "samples",
    height: heatmapHeight(rows.length),
  });
}

const BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"] as const;

/**
 * A byte count in decimal (1e3) units with `digits` decimals (none for plain bytes).
 *
 * @example formatBytes(1234567) // "1.23 MB";  formatBytes(512) // "512 B";  formatBytes(999999) // "1.00 MB"
 */
export function formatBytes(n: number, digits = 2): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? "-" : "";
  const a = Math.abs(n);
  let unit = 0;
  while (unit < BYTE_UNITS.length - 1 && a >= 1000 ** (unit + 1)) unit++;
  if (unit === 0) {
    const r = Math.round(a);
    if (r < 1000) return `${sign}${r} B`;
    unit = 1; // 999.6 B rounds up to 1000 B
  }
  let s = (a / 1000 ** unit).toFixed(digits);
  // 999.999 kB rounds to "1000.00 kB": say "1.00 MB" instead.
  if (Number(s) >= 1000 && unit < BYTE_UNITS.length - 1) {
    unit++;
    s = (a / 1000 ** unit).toFixed(digits);
  }
  return `${sign}${s} ${BYTE_UNITS[unit]!}`;
}

/**
 * A number with comma thousands separators (independent of the locale); non-integers keep two decimals.
 *
 * @example formatCount(1234567) // "1,234,567";  formatCount(-1000) // "-1,000"
 */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? "-" : "";
  const [int, frac] = (Number.isInteger(n) ? Math.abs(n).toFixed(0) : Math.abs(n).toFixed(2)).split(".");
  const grouped = int!.replace(/\B(?=(\d{3})+$)/g, ",");
  return `${sign}${grouped}${frac === undefined ? "" : `.${frac}`}`;
}

/** A fraction (0..1) as a percentage with two decimals, "n/a" when absent or not finite. */
function percent(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return "n/a";
  // A difference of a few bytes (e.g. FedProx's "mu":0.01 against FedAvg's 0) must not print as "-0.00%".
  const text = (v * 100).toFixed(2);
  return `${text === "-0.00" ? "0.00" : text}%`;
}

/** "1.23 MB (1,234,567)". */
function bytesWithExact(n: number): string {
  return `${formatBytes(n)} (${formatCount(n)})`;
}

/**
 * The run summary as a plain-text table for the terminal: one "label  value" row per line with the
 * values aligned: accuracies, rounds, parameters and bytes sent each way and in total, what FedAvg
 * would have sent on the same schedule, the reduction against it, and the wall time.
 */
export function formatSummaryTable(summary: RunSummary): string {
  const best =
    summary.bestAccuracy === undefined
      ? "n/a"
      : `${percent(summary.bestAccuracy)}${summary.bestRound === undefined ? "" : ` (round ${summary.bestRound})`}`;
  const rows: [string, string][] = [
    ["strategy", summary.strategy],
    ["final test accuracy", percent(summary.finalAccuracy)],
    ["best test accuracy", best],
    ["rounds", formatCount(summary.rounds)],
    ["params down", formatCount(summary.totalDown.params)],
    ["params up", formatCount(summary.totalUp.params)],
    ["params total", formatCount(summary.total.params)],
    ["bytes down", bytesWithExact(summary.totalDown.bytes)],
    ["bytes up", bytesWithExact(summary.totalUp.bytes)],
    ["bytes total", bytesWithExact(summary.total.bytes)],
    ["FedAvg params (same schedule)", formatCount(summary.fedavgTotal.params)],
    ["FedAvg bytes (same schedule)", bytesWithExact(summary.fedavgTotal.bytes)],
    ["reduction vs FedAvg, params", percent(summary.reduction.params)],
    ["reduction vs FedAvg, bytes", percent(summary.reduction.bytes)],
    ["wall time", Number.isFinite(summary.seconds) ? `${summary.seconds.toFixed(1)} s` : "n/a"],
  ];
  const w = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(w)}  ${value}`).join("\n");
}

/**
 * One log line per round for non-TTY output, e.g.
 * `round 3/20 annealing(heating) budget 288  acc 91.23%  loss 0.2876  train 0.3120  up 1.2 MB down 1.3 MB (cum 5.4 MB)  4.1s  [1 failure]`.
 * Metrics the round did not produce are left out.
 */
export function formatRoundLine(r: RoundRecord, totalRounds: number): string {
  let head = `round ${r.round}/${totalRounds} ${r.stage}${r.phase === undefined ? "" : `(${r.phase})`}`;
  if (r.budget !== undefined) head += ` budget ${r.budget}`;
  const parts = [head];
  if (r.testAccuracy !== undefined) parts.push(`acc ${(r.testAccuracy * 100).toFixed(2)}%`);
  if (r.testLoss !== undefined) parts.push(`loss ${r.testLoss.toFixed(4)}`);
  if (r.trainLoss !== undefined) parts.push(`train ${r.trainLoss.toFixed(4)}`);
  if (r.clientAccuracy !== undefined) parts.push(`client acc ${(r.clientAccuracy * 100).toFixed(2)}%`);
  parts.push(`up ${formatBytes(r.up.bytes, 1)} down ${formatBytes(r.down.bytes, 1)} (cum ${formatBytes(cumulativeBytes(r), 1)})`);
  parts.push(`${r.seconds.toFixed(1)}s`);
  const n = r.failures.length;
  if (n > 0) parts.push(`[${n} failure${n === 1 ? "" : "s"}]`);
  return parts.join("  ");
}
