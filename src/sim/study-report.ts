/**
 * @module sim/study-report
 * Turns the finished cells of a study into its report: a Markdown document (the setting, the target
 * check, one table per partition, the flagship's budget and rank allocation, the sensitivity
 * sweeps, and where the raw per-round metrics are) and the SVG plots it links to. Every number is
 * computed here from the cells' records and summaries, which are the committed raw metrics; nothing
 * is typed in by hand. A hand-written analysis lives between two markers and survives regeneration
 * (`mergeAnalysis`). Pure functions: the CLI writes the files.
 */
import type { RoundRecord, RunSummary } from "../fl/records.js";
import { lineChart, type ScatterPoint, scatterChart, type Series } from "../util/svg.js";
import { formatBytes, formatCount, runPlots, shortModuleName } from "./report.js";
import type { StudyCell, StudyPlan } from "./study.js";

export interface CellResult {
  readonly cell: StudyCell;
  readonly records: readonly RoundRecord[];
  readonly summary: RunSummary;
}

export interface StudyReport {
  readonly markdown: string;
  /** File name → SVG document. */
  readonly plots: Map<string, string>;
}

export const ANALYSIS_BEGIN = "<!-- analysis:begin (hand-written; kept when the report is regenerated) -->";
export const ANALYSIS_END = "<!-- analysis:end -->";
const NO_ANALYSIS = "_No analysis written yet._";

/** Mean and sample standard deviation (0 for a single value). */
export function meanStd(xs: readonly number[]): { mean: number; std: number; n: number } {
  const n = xs.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN, n };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** First evaluated round whose test accuracy reaches `target`, or undefined. */
export function roundsToTarget(records: readonly RoundRecord[], target: number): number | undefined {
  return records.find((r) => r.testAccuracy !== undefined && r.testAccuracy >= target)?.round;
}

/**
 * The seed-mean curve of a group of runs: at every round evaluated in all of them, the mean test
 * accuracy (%) and the mean cumulative training bytes (down + up).
 */
export function meanCurve(runs: readonly (readonly RoundRecord[])[]): { round: number; accuracy: number; bytes: number }[] {
  if (runs.length === 0) return [];
  const byRound = runs.map((rs) => new Map(rs.filter((r) => r.testAccuracy !== undefined).map((r) => [r.round, r])));
  const out: { round: number; accuracy: number; bytes: number }[] = [];
  for (const round of [...byRound[0]!.keys()].sort((a, b) => a - b)) {
    const rs = byRound.map((m) => m.get(round));
    if (rs.some((r) => r === undefined)) continue;
    const acc = rs.map((r) => r!.testAccuracy! * 100);
    const bytes = rs.map((r) => r!.cumulativeDown.bytes + r!.cumulativeUp.bytes);
    out.push({ round, accuracy: meanStd(acc).mean, bytes: meanStd(bytes).mean });
  }
  return out;
}

const pct = (x: number, digits = 2) => (Number.isFinite(x) ? `${(100 * x).toFixed(digits)}` : "–");
const pm = (xs: readonly number[]) => {
  const s = meanStd(xs);
  return s.n > 1 ? `${pct(s.mean)} ± ${pct(s.std)}` : pct(s.mean);
};
const mib = (bytes: number) => formatBytes(bytes);
const mparams = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : formatCount(Math.round(n)));

/** How many of the last evaluations the smoothed final accuracy averages (single rounds are noisy under label skew). */
export const LAST_EVALS = 5;

/** Mean test accuracy of the last `n` evaluated rounds. */
export function lastEvalsMean(records: readonly RoundRecord[], n = LAST_EVALS): number {
  const acc = records.filter((r) => r.testAccuracy !== undefined).map((r) => r.testAccuracy!);
  return meanStd(acc.slice(-n)).mean;
}

/**
 * Indices of the Pareto-optimal points when less x (traffic) and more y (accuracy) are better: those
 * no other point matches or beats on both axes while beating on one. Of exact duplicates only the
 * first counts. Sorted by increasing x (so also increasing y); points with a non-finite coordinate
 * never belong.
 */
export function paretoFront(points: readonly { readonly x: number; readonly y: number }[]): number[] {
  const ok = (i: number) => Number.isFinite(points[i]!.x) && Number.isFinite(points[i]!.y);
  const front: number[] = [];
  for (let i = 0; i < points.length; i++) {
    if (!ok(i)) continue;
    const a = points[i]!;
    const beaten = points.some((b, j) => j !== i && ok(j) && b.x <= a.x && b.y >= a.y && (b.x < a.x || b.y > a.y || j < i));
    if (!beaten) front.push(i);
  }
  return front.sort((i, j) => points[i]!.x - points[j]!.x);
}

/** Statistics of one group of runs (one method on one partition, over seeds). */
interface GroupStats {
  readonly final: number[];
  readonly last: number[];
  readonly best: number[];
  readonly bestRound: number[];
  readonly toTarget: (number | undefined)[];
  readonly up: { params: number; bytes: number };
  readonly down: { params: number; bytes: number };
  readonly total: { params: number; bytes: number };
  readonly seconds: number;
}

function groupStats(results: readonly CellResult[], target: number): GroupStats {
  const avg = (f: (s: RunSummary) => number) => meanStd(results.map((r) => f(r.summary))).mean;
  return {
    final: results.map((r) => r.summary.finalAccuracy ?? Number.NaN),
    last: results.map((r) => lastEvalsMean(r.records)),
    best: results.map((r) => r.summary.bestAccuracy ?? Number.NaN),
    bestRound: results.map((r) => r.summary.bestRound ?? Number.NaN),
    toTarget: results.map((r) => roundsToTarget(r.records, target)),
    up: { params: avg((s) => s.totalUp.params), bytes: avg((s) => s.totalUp.bytes) },
    down: { params: avg((s) => s.totalDown.params), bytes: avg((s) => s.totalDown.bytes) },
    total: { params: avg((s) => s.total.params), bytes: avg((s) => s.total.bytes) },
    seconds: results.reduce((a, r) => a + r.summary.seconds, 0),
  };
}

function formatToTarget(rounds: readonly (number | undefined)[]): string {
  const reached = rounds.filter((r): r is number => r !== undefined);
  if (reached.length === 0) return "not reached";
  const mean = meanStd(reached).mean;
  const text = Number.isInteger(mean) ? String(mean) : mean.toFixed(1);
  return reached.length === rounds.length ? text : `${text} (${reached.length}/${rounds.length} seeds)`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[], align?: readonly ("l" | "r")[]): string {
  const sep = header.map((_, i) => ((align?.[i] ?? (i === 0 ? "l" : "r")) === "r" ? "---:" : "---"));
  return [header, sep, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** Mean of a value over the reference's cells of the same partition and seeds (the reduction's denominator). */
function referenceTotal(results: readonly CellResult[], plan: StudyPlan, partition: string, seeds: readonly number[]): { params: number; bytes: number } | undefined {
  const ref = results.filter((r) => r.cell.matrix?.method === plan.reference && r.cell.matrix.partition === partition && seeds.includes(r.cell.matrix.seed));
  if (ref.length === 0) return undefined;
  return { params: meanStd(ref.map((r) => r.summary.total.params)).mean, bytes: meanStd(ref.map((r) => r.summary.total.bytes)).mean };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
const label = (items: readonly { id: string; label?: string | undefined }[], id: string) => items.find((x) => x.id === id)?.label ?? id;

/** Builds the report from the finished cells of the plan: all of them, or (an interim report) some, with `planned` saying how many there are. */
export function buildStudyReport(
  plan: StudyPlan,
  finished: readonly CellResult[],
  opts: { plotsHref: string; cellsHref: string; command: string; /** Cells in the plan, when only some are finished (an interim report). */ planned?: number },
): StudyReport {
  if (finished.length === 0) throw new Error("buildStudyReport: no finished cells to report on");
  // An interim report compares methods on the same seeds only: a matrix cell counts once its seed
  // is finished for every method on its partition (a full report has every seed finished anyway).
  const seedComplete = (partition: string, seed: number) =>
    plan.methods.every((m) => finished.some((r) => r.cell.matrix?.method === m.id && r.cell.matrix.partition === partition && r.cell.matrix.seed === seed));
  const results = opts.planned === undefined ? finished : finished.filter((r) => r.cell.matrix === undefined || seedComplete(r.cell.matrix.partition, r.cell.matrix.seed));
  const waiting = finished.length - results.length;
  const plots = new Map<string, string>();
  const md: string[] = [];
  const target = plan.targetAccuracy;
  const matrix = (method: string, partition: string) => results.filter((r) => r.cell.matrix?.method === method && r.cell.matrix.partition === partition);
  const variantCells = (sweep: string, variant: string) => results.filter((r) => r.cell.sweeps.some((x) => x.sweep === sweep && x.variant === variant));
  const img = (file: string, alt: string) => `![${alt}](${opts.plotsHref}/${file})`;
  const first = finished[0]!;
  const cfg = first.cell.config;
  const totalSeconds = results.reduce((a, r) => a + r.summary.seconds, 0);

  md.push(`# ${plan.title}`, "");
  md.push(
    `<!-- Generated by \`${opts.command}\`. Everything outside the analysis markers is rewritten on every run; edit the plan or the analysis, not the tables. -->`,
    "",
  );
  if (opts.planned !== undefined && finished.length < opts.planned) {
    md.push(
      `> **Interim report: ${finished.length} of ${opts.planned} cells finished.** Every figure averages the seeds that are finished (the "seeds" columns); a matrix cell counts only once its seed is finished for every method on its partition, so methods are compared on the same seeds${waiting > 0 ? ` (${waiting === 1 ? "1 finished cell waits" : `${waiting} finished cells wait`} for that)` : ""}; a method or variant with no counted cell is missing. Nothing here is a conclusion until the study is complete.`,
      "",
    );
  }
  if (plan.description) md.push(plan.description, "");
  md.push(`Reproduce every number below with \`${opts.command}\` (it re-runs only missing cells; delete the cells directory to run all ${opts.planned ?? results.length} from scratch).`, "");

  md.push("## Setting", "");
  const lrs = cfg.training.lr;
  md.push(
    table(
      ["", "value"],
      [
        ["backbone", `${cfg.model.backbone === "default" ? "the shipped `models/vit-micro-mnist-0-4`" : `\`${cfg.model.backbone}\``} (${formatCount(first.summary.modelParams)} parameters with the target head)`],
        ["target task", `${cfg.data.dataset}${cfg.data.classes ? ` classes ${cfg.data.classes}` : ""}${cfg.data.trainLimit ? `, ${formatCount(cfg.data.trainLimit)} training images (seeded subset)` : ""}; test set whole`],
        ["clients", `${cfg.clients.count}, ${cfg.clients.perRound} sampled per round`],
        ["partitions", plan.partitions.map((p) => `${p.label ?? p.id} (\`${p.partition}\`)`).join(", ")],
        ["seeds", plan.seeds.join(", ")],
        ["rounds", String(cfg.rounds)],
        ["local training", `${cfg.training.optimizer}, ${cfg.training.localSteps > 0 ? `${cfg.training.localSteps} steps` : `${cfg.training.localEpochs} epoch(s)`}, batch ${cfg.training.batch}, weight decay ${cfg.training.weightDecay}; lr full ${lrs.full}, LoRA ${lrs.lora}, FFA-LoRA ${lrs["ffa-lora"]}, SVD form ${lrs.adalora}; the head in adapter rounds ${lrs.head ?? "at each adapter kind's federated head rate (docs/algorithm.md)"}`],
        ["evaluation", `server-side on the whole test set ${cfg.evaluation.every === 1 ? "every round" : `every ${cfg.evaluation.every} rounds and after the last`}`],
        ["wire", `${cfg.wire.dtype} payloads; traffic counted from the encoded messages`],
        ["cells", `${plural(results.length, "simulation")}, ${(totalSeconds / 60).toFixed(1)} min of simulation wall time in total`],
      ],
    ),
    "",
  );
  md.push(
    "Methods (each cell's full resolved config is its `config.json`):",
    "",
    ...plan.methods.map((m) => `- **${m.label ?? m.id}** (\`${m.id}\`): \`${JSON.stringify(m.config)}\``),
    "",
  );

  md.push("## Analysis", "", ANALYSIS_BEGIN, NO_ANALYSIS, ANALYSIS_END, "");

  // The claim, per partition.
  const flag = label(plan.methods, plan.flagship);
  const ref = label(plan.methods, plan.reference);
  md.push("## Target check", "");
  md.push(
    `${flag} against ${ref}: test accuracy (the mean of the last ${LAST_EVALS} evaluations, which single noisy rounds under label skew do not swing) at most ${(100 * plan.targets.accuracyGap).toFixed(1)} points below (or better), with cumulative traffic at most ${(100 * plan.targets.trafficRatio).toFixed(0)}% of ${ref}'s. Means over seeds; traffic in parameters (bytes agree within a fraction of a percent).`,
    "",
  );
  const checkRows: string[][] = [];
  for (const p of plan.partitions) {
    const f = matrix(plan.flagship, p.id);
    const r = matrix(plan.reference, p.id);
    if (f.length === 0 || r.length === 0) continue;
    // Seeds pair up (same training subset, partition and sampling), so the paired differences show the spread.
    const paired = (value: (x: CellResult) => number) =>
      meanStd(
        f.flatMap((x) => {
          const twin = r.find((y) => y.cell.matrix!.seed === x.cell.matrix!.seed);
          return twin ? [value(x) - value(twin)] : [];
        }),
      );
    const last = (x: CellResult) => lastEvalsMean(x.records);
    const final = (x: CellResult) => x.summary.finalAccuracy ?? Number.NaN;
    const fl = meanStd(f.map(last)).mean;
    const rl = meanStd(r.map(last)).mean;
    const lastDiff = paired(last);
    const finalDiff = meanStd(f.map(final)).mean - meanStd(r.map(final)).mean;
    const ratio = meanStd(f.map((x) => x.summary.total.params)).mean / meanStd(r.map((x) => x.summary.total.params)).mean;
    const accOk = fl >= rl - plan.targets.accuracyGap;
    const trafficOk = ratio <= plan.targets.trafficRatio;
    const signed = (d: number) => `${d >= 0 ? "+" : ""}${(100 * d).toFixed(2)}`;
    checkRows.push([
      p.label ?? p.id,
      pct(rl),
      pct(fl),
      `${signed(fl - rl)}${lastDiff.n > 1 ? ` ± ${(100 * lastDiff.std).toFixed(2)}` : ""}`,
      signed(finalDiff),
      `${(100 * ratio).toFixed(2)}%`,
      `${lastDiff.n}`,
      accOk ? "met" : "**not met**",
      trafficOk ? "met" : "**not met**",
    ]);
  }
  md.push(
    table(
      ["partition", `${ref} %`, `${flag} %`, "difference (points; ± std of the paired per-seed differences)", "difference in the final round", "traffic vs reference", "paired seeds", "accuracy target", "traffic target"],
      checkRows,
    ),
    "",
  );

  /**
   * Accuracy against traffic on one partition, one point per method and per sweep variant run
   * there (a variant whose cells are all matrix cells is that method's point already), whiskers from
   * the lowest to the highest seed, and the Pareto front as a table: the best method at each
   * traffic level.
   */
  const paretoSection = (p: StudyPlan["partitions"][number]) => {
    const groups: { label: string; long: string; group: number; cells: readonly CellResult[] }[] = [];
    for (const m of plan.methods) groups.push({ label: m.label ?? m.id, long: m.label ?? m.id, group: 0, cells: matrix(m.id, p.id) });
    for (const [si, sw] of plan.sweeps.entries()) {
      if (sw.partition !== p.id) continue;
      for (const v of sw.variants) {
        const cells = variantCells(sw.id, v.id);
        if (cells.length === 0 || cells.every((c) => c.cell.matrix !== undefined)) continue;
        const few = cells.length < plan.seeds.length ? ` (${plural(cells.length, "seed")})` : "";
        groups.push({ label: `${sw.id}: ${v.id}${few}`, long: `${sw.label}: ${v.label}${few}`, group: si + 1, cells });
      }
    }
    const placed = groups.filter((g) => g.cells.length > 0);
    if (placed.length === 0) return;
    const points: ScatterPoint[] = placed.map((g) => {
      const acc = g.cells.map((c) => 100 * lastEvalsMean(c.records));
      const traffic = g.cells.map((c) => c.summary.total.params);
      return {
        label: g.label,
        x: meanStd(traffic).mean,
        y: meanStd(acc).mean,
        xRange: [Math.min(...traffic), Math.max(...traffic)],
        yRange: g.cells.length > 1 ? [Math.min(...acc), Math.max(...acc)] : undefined,
        group: g.group,
      };
    });
    const front = paretoFront(points);
    const file = `pareto-${p.id}.svg`;
    plots.set(
      file,
      scatterChart(points, {
        title: `${p.label ?? p.id}: accuracy vs traffic (mean over seeds; whiskers: lowest to highest seed)`,
        xLabel: "parameters sent, down + up, whole run (log scale)",
        yLabel: `test accuracy, last ${LAST_EVALS} evaluations (%)`,
        xLog: true,
        width: 860,
        height: 460,
        front,
      }),
    );
    const refTotal = referenceTotal(results, plan, p.id, plan.seeds);
    md.push(
      `**Accuracy against traffic.** Each point is one method${placed.some((g) => g.group > 0) ? " or sweep variant (squares and triangles: the sweeps on this partition)" : ""}; the dashed staircase is the Pareto front, the best accuracy reached at or below each traffic level. The methods on it, from the cheapest:`,
      "",
      table(
        ["on the front", "params total", `traffic vs ${ref}`, `last ${LAST_EVALS} evaluations %`, "seeds"],
        front.map((i) => {
          const g = placed[i]!;
          const acc = g.cells.map((c) => lastEvalsMean(c.records));
          return [g.long, mparams(points[i]!.x), refTotal ? `${(100 * (points[i]!.x / refTotal.params)).toFixed(2)}%` : "–", pm(acc), String(g.cells.length)];
        }),
      ),
      "",
      img(file, `${p.label ?? p.id}: accuracy vs traffic, Pareto front`),
      "",
    );
  };

  // One table and two plots per partition.
  for (const p of plan.partitions) {
    md.push(`## ${p.label ?? p.id} (\`${p.partition}\`)`, "");
    if (!results.some((r) => r.cell.matrix?.partition === p.id)) {
      md.push("_No finished cell on this partition yet._", "");
      continue;
    }
    const refTotal = referenceTotal(results, plan, p.id, plan.seeds);
    const rows: string[][] = [];
    const series: { round: Series[]; bytes: Series[] } = { round: [], bytes: [] };
    for (const m of plan.methods) {
      const group = matrix(m.id, p.id);
      if (group.length === 0) continue;
      const s = groupStats(group, target);
      const best = meanStd(s.best).mean;
      rows.push([
        m.label ?? m.id,
        pm(s.final),
        pm(s.last),
        `${pct(best)} (r${meanStd(s.bestRound).mean.toFixed(0)})`,
        formatToTarget(s.toTarget),
        mparams(s.up.params),
        mparams(s.down.params),
        mparams(s.total.params),
        mib(s.total.bytes),
        refTotal ? `${pct(1 - s.total.params / refTotal.params, 1)}%` : "–",
        refTotal ? `${pct(1 - s.total.bytes / refTotal.bytes, 1)}%` : "–",
        String(group.length),
      ]);
      const curve = meanCurve(group.map((g) => g.records));
      series.round.push({ label: m.label ?? m.id, points: curve.map((c) => [c.round, c.accuracy]) });
      series.bytes.push({ label: m.label ?? m.id, points: curve.map((c) => [c.bytes, c.accuracy]) });
    }
    md.push(
      table(
        ["method", `final acc % (mean ± std, ${plural(plan.seeds.length, "seed")})`, `last ${LAST_EVALS} evaluations %`, "best acc % (round)", `rounds to ${pct(target, 0)}%${cfg.evaluation.every > 1 ? ` (evaluated every ${cfg.evaluation.every})` : ""}`, "params up", "params down", "params total", "bytes total", `params saved vs ${ref}`, `bytes saved vs ${ref}`, "seeds"],
        rows,
      ),
      "",
    );
    const accRound = `accuracy-vs-round-${p.id}.svg`;
    const accBytes = `accuracy-vs-traffic-${p.id}.svg`;
    plots.set(accRound, lineChart(series.round, { title: `${p.label ?? p.id}: test accuracy vs round (mean over seeds)`, xLabel: "round", yLabel: "test accuracy (%)", width: 760 }));
    plots.set(
      accBytes,
      lineChart(series.bytes, { title: `${p.label ?? p.id}: test accuracy vs cumulative traffic (mean over seeds)`, xLabel: "cumulative bytes, down + up (log scale)", yLabel: "test accuracy (%)", xLog: true, width: 760 }),
    );
    md.push(img(accRound, `${p.label ?? p.id}: accuracy vs round`), "", img(accBytes, `${p.label ?? p.id}: accuracy vs traffic`), "");
    paretoSection(p);
  }

  // Where the flagship's traffic goes, by stage and budget phase.
  md.push(`## Where ${flag}'s traffic goes`, "");
  md.push(
    `Parameters sent (down + up, mean over seeds) in the rounds of each stage and budget phase, as a share of ${ref}'s total on the same partition. The base downloads (the initiating stage's result, sent once to each client the first time it takes part in the annealing stage) are counted in the annealing rounds where they happen, and shown on their own as well.`,
    "",
  );
  const phases = ["initiating", "heating", "annealing", "cooling", "train"] as const;
  const phaseRows: string[][] = [];
  for (const p of plan.partitions) {
    const group = matrix(plan.flagship, p.id);
    const refTotal = referenceTotal(results, plan, p.id, plan.seeds);
    if (group.length === 0 || !refTotal) continue;
    const share = new Map<string, number>();
    let base = 0;
    for (const g of group) {
      for (const r of g.records) {
        const key = r.stage === "annealing" ? (r.phase ?? "annealing") : r.stage;
        share.set(key, (share.get(key) ?? 0) + (r.down.params + r.up.params) / group.length / refTotal.params);
        // An annealing round sends the same head and active triplets down as it gets back up, so
        // what goes down beyond what comes up is the base (exact when every reply was accepted).
        if (r.stage === "annealing") base += (r.down.params - (r.accepted === r.sampled ? r.up.params : (r.up.params * r.sampled) / Math.max(1, r.accepted))) / group.length / refTotal.params;
      }
    }
    const downloads = meanStd(group.map((g) => baseDownloads(g.summary) ?? Number.NaN)).mean;
    const total = [...share.values()].reduce((a, b) => a + b, 0);
    phaseRows.push([
      p.label ?? p.id,
      ...phases.slice(0, 4).map((ph) => (share.has(ph) ? `${(100 * share.get(ph)!).toFixed(2)}%` : "–")),
      `${(100 * total).toFixed(2)}%`,
      `${(100 * base).toFixed(2)}%`,
      Number.isFinite(downloads) ? downloads.toFixed(1) : "–",
    ]);
  }
  md.push(table(["partition", "initiating rounds", "heating rounds", "decay rounds", "cooling rounds", "total", "of which base downloads", "base downloads (clients)"], phaseRows), "");

  // The flagship's budget (the same schedule in every cell) and where its rank went, per partition.
  const withBudget = plan.partitions.flatMap((p) => {
    const cell = matrix(plan.flagship, p.id)[0];
    return cell?.records.some((r) => r.budget !== undefined) ? [{ p, cell: cell! }] : [];
  });
  if (withBudget.length > 0) {
    const budget = withBudget[0]!.cell.records.filter((r) => r.budget !== undefined).map((r) => [r.round, r.budget!] as [number, number]);
    plots.set("budget.svg", lineChart([{ label: "budget (active triplets)", points: budget }], { title: `${flag}: rank budget per round (the same schedule in every cell)`, xLabel: "round", yLabel: "active triplets (all modules)", step: true, width: 760 }));
    md.push(`## ${flag}: rank budget and per-layer allocation`, "", img("budget.svg", "budget per round"), "");
  }
  for (const { p, cell } of withBudget) {
    const seed = cell.cell.matrix!.seed;
    const file = `ranks-${p.id}.svg`;
    plots.set(file, runPlots(cell.records, { title: `${flag}, ${p.label ?? p.id}, seed ${seed}` }).get("ranks-heatmap.svg")!);
    const ranked = cell.records.filter((r) => r.ranks !== undefined);
    md.push(`**${p.label ?? p.id}** (seed ${seed}): ${rankSummary(ranked, Object.keys(ranked[0]!.ranks!))}`, "", img(file, `${p.label ?? p.id}: ranks per module`), "");
  }

  // Sensitivity sweeps.
  if (plan.sweeps.length > 0) {
    md.push("## Sensitivity", "");
    for (const s of plan.sweeps) {
      const inSweep = (v: string) => variantCells(s.id, v);
      const seeds = s.seeds ?? plan.seeds;
      const refTotal = referenceTotal(results, plan, s.partition, seeds);
      const refLast = meanStd(matrix(plan.reference, s.partition).filter((r) => seeds.includes(r.cell.matrix!.seed)).map((r) => lastEvalsMean(r.records))).mean;
      md.push(`### ${s.label} (${label(plan.methods, s.method)}, ${label(plan.partitions, s.partition)}, ${seeds.length === 1 ? "seed" : "seeds"} ${seeds.join(", ")})`, "");
      const rows: string[][] = [];
      const curves: Series[] = [];
      for (const v of s.variants) {
        const group = inSweep(v.id);
        if (group.length === 0) continue;
        const st = groupStats(group, target);
        const last = meanStd(st.last).mean;
        rows.push([
          v.label,
          `\`${JSON.stringify(v.config)}\``,
          pm(st.final),
          pm(st.last),
          Number.isFinite(refLast) ? `${last - refLast >= 0 ? "+" : ""}${(100 * (last - refLast)).toFixed(2)}` : "–",
          mparams(st.total.params),
          refTotal ? `${(100 * (st.total.params / refTotal.params)).toFixed(2)}%` : "–",
          group.map((g) => g.cell.id).join(", "),
        ]);
        curves.push({ label: v.label, points: meanCurve(group.map((g) => g.records)).map((c) => [c.round, c.accuracy]) });
      }
      md.push(table(["variant", "change", "final acc %", `last ${LAST_EVALS} evaluations %`, `vs ${ref}, last ${LAST_EVALS} (points)`, "params total", `traffic vs ${ref}`, "cells"], rows), "");
      const file = `sweep-${s.id}.svg`;
      plots.set(file, lineChart(curves, { title: `${s.label}: test accuracy vs round`, xLabel: "round", yLabel: "test accuracy (%)", width: 760 }));
      md.push(img(file, `${s.label}: accuracy vs round`), "");
    }
  }

  md.push("## Raw data", "");
  md.push(
    `Every table and plot above is computed from the files in [\`${opts.cellsHref}/\`](${opts.cellsHref}/): one directory per cell with the resolved \`config.json\`, the per-round \`metrics.jsonl\` (accuracy, loss, exact traffic up and down, budget and ranks; fields in docs/simulation.md) and \`summary.json\`. The plan is copied next to them as \`plan.json\`.`,
    "",
  );
  return { markdown: `${md.join("\n").trimEnd()}\n`, plots };
}

/** How many clients were sent the initiating stage's base (SA-FedLoRA's summary details), if recorded. */
function baseDownloads(summary: RunSummary): number | undefined {
  const second = summary.details["secondStage"];
  if (second === null || typeof second !== "object") return undefined;
  const n = (second as Record<string, unknown>)["baseDownloads"];
  return typeof n === "number" ? n : undefined;
}

/** One sentence on where the flagship's rank went by the last round. */
function rankSummary(ranked: readonly RoundRecord[], modules: readonly string[]): string {
  const last = ranked[ranked.length - 1]!;
  const byKind = new Map<string, number>();
  for (const m of modules) {
    const kind = shortModuleName(m).replace(/^L\d+ /, "");
    byKind.set(kind, (byKind.get(kind) ?? 0) + (last.ranks![m] ?? 0));
  }
  const byLayer = new Map<string, number>();
  for (const m of modules) {
    const layer = shortModuleName(m).split(" ")[0]!;
    byLayer.set(layer, (byLayer.get(layer) ?? 0) + (last.ranks![m] ?? 0));
  }
  const fmt = (m: Map<string, number>) => [...m.entries()].map(([k, v]) => `${k} ${v}`).join(", ");
  return `in round ${last.round} the ${last.budget ?? "–"} active triplets sit by module type: ${fmt(byKind)}; by layer: ${fmt(byLayer)}.`;
}

/**
 * The new report with the analysis of the previous one (the text between the markers) carried
 * over, so regenerating tables never loses the written part.
 */
export function mergeAnalysis(markdown: string, previous: string | undefined): string {
  if (previous === undefined) return markdown;
  const a = previous.indexOf(ANALYSIS_BEGIN);
  const b = previous.indexOf(ANALYSIS_END);
  if (a < 0 || b < a) return markdown;
  const kept = previous.slice(a + ANALYSIS_BEGIN.length, b);
  const x = markdown.indexOf(ANALYSIS_BEGIN);
  const y = markdown.indexOf(ANALYSIS_END);
  return `${markdown.slice(0, x + ANALYSIS_BEGIN.length)}${kept}${markdown.slice(y)}`;
}
