/**
 * @module cli/commands/study
 * `safl study --plan <file> [--out <dir>] [--report <file>] [--resume] [--dry-run] [--interim]`: runs
 * every cell of a study plan (methods × partitions × seeds, plus sensitivity sweeps), one simulation
 * at a time, then writes the report (`--interim`: writes a report from the cells finished so far and
 * runs nothing, so a study that spans sessions can be looked at, and committed, part way). Each cell is written into a hidden directory and renamed into place when
 * it finishes, so an interrupted study leaves only whole cells behind; `--resume` skips them (after
 * checking they were run with the config the plan now gives) and runs the rest.
 */
import { appendFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { SaflError, argError } from "../../errors.js";
import type { RoundRecord, RunSummary } from "../../fl/records.js";
import { NodeRuntime } from "../../runtime/node.js";
import { parseRunConfig } from "../../sim/config.js";
import { formatBytes } from "../../sim/report.js";
import { prepareSimulation, simulate } from "../../sim/simulate.js";
import { expandPlan, parseStudyPlan, resultKey, type StudyCell, type StudyPlan } from "../../sim/study.js";
import { buildStudyReport, type CellResult, mergeAnalysis } from "../../sim/study-report.js";
import { workerGridFactory } from "../../sim/worker-grid.js";
import { readJsonFile } from "./simulate.js";
import { defineFlags } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { OUT } from "../flags.js";
import { formatSeconds, Progress } from "../progress.js";

const flags = defineFlags({
  plan: { type: "string", value: "<file>", required: true, description: "the study plan (JSON); studies/fmnist-5-9.json is the one behind docs/results.md (study v2), studies/fashion-mnist.json behind docs/results-v1.md" },
  out: {
    ...OUT,
    default: "runs/study",
    description: "where cells and plots go; each cell is cells/<id>/ with config.json, metrics.jsonl and summary.json, moved into place only when complete",
  },
  report: {
    type: "string",
    value: "<file>",
    defaultText: "<out>/report.md",
    description: 'the Markdown report; text between the "analysis" markers of an existing report is kept when it is regenerated',
  },
  resume: { type: "boolean", description: "keep the finished cells in --out and run only the missing ones" },
  "dry-run": { type: "boolean", description: "list the cells and whether they are done, and run nothing" },
  interim: {
    type: "boolean",
    description: "write an interim report from the cells finished so far (marked as such, with the seeds behind every figure) and run nothing; safe while another study process is filling --out",
  },
});

export const studyCommand = defineCommand({
  name: "study",
  summary: "run a reproduction study (methods x partitions x seeds) and write its report",
  usage: "--plan <plan.json> [--out <dir>] [--report <file.md>] [--resume] [--dry-run] [--interim]",
  description: `Runs every cell of the plan (methods x partitions x seeds, then the sensitivity sweeps) one after
another, then writes the report: tables per partition, the target check, the sweeps, and SVG plots.`,
  epilog: "Re-running with --resume when every cell is done only rewrites the report.",
  flags,
  run: studyRun,
});

async function readPlan(path: string): Promise<{ plan: StudyPlan; text: string }> {
  const { value, text } = await readJsonFile(path, "study plan");
  return { plan: parseStudyPlan(value, `study plan ${path}`), text };
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** A finished cell's files, or undefined when the cell has not finished. */
async function loadCell(dir: string): Promise<{ config: unknown; records: RoundRecord[]; summary: RunSummary } | undefined> {
  if (!(await exists(join(dir, "summary.json")))) return undefined;
  const [config, metrics, summary] = await Promise.all([readFile(join(dir, "config.json"), "utf8"), readFile(join(dir, "metrics.jsonl"), "utf8"), readFile(join(dir, "summary.json"), "utf8")]);
  const records = metrics
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as RoundRecord);
  return { config: JSON.parse(config), records, summary: JSON.parse(summary) as RunSummary };
}

/** Runs one cell into a hidden directory next to its final place and renames it when complete. */
async function runCell(cell: StudyCell, cellsDir: string, label: string): Promise<{ records: RoundRecord[]; summary: RunSummary }> {
  const final = join(cellsDir, cell.id);
  const tmp = join(cellsDir, `.${cell.id}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const cfg = cell.config;
    await writeFile(join(tmp, "config.json"), `${JSON.stringify(cfg, null, 2)}\n`);
    const metricsPath = join(tmp, "metrics.jsonl");
    await writeFile(metricsPath, "");
    const setup = await prepareSimulation(cfg);
    const progress = new Progress(cfg.rounds, label);
    let writes = Promise.resolve();
    const result = await simulate(
      cfg,
      new NodeRuntime({ threads: cfg.execution.threads }),
      {
        onRound: (r: RoundRecord) => {
          writes = writes.then(() => appendFile(metricsPath, `${JSON.stringify(r)}\n`));
          progress.tick(1, r.testAccuracy !== undefined ? `acc ${(100 * r.testAccuracy).toFixed(2)}%` : "");
        },
        ...(cfg.execution.workers > 0 ? { makeGrid: workerGridFactory(cfg) } : {}),
      },
      setup,
    );
    await writes;
    progress.finish();
    await writeFile(join(tmp, "summary.json"), `${JSON.stringify(result.summary, null, 2)}\n`);
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
    return { records: [...result.records], summary: result.summary };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Removes hidden partial cells left by an interrupted run. */
async function clearPartials(cellsDir: string): Promise<number> {
  const entries = await readdir(cellsDir).catch(() => [] as string[]);
  const partial = entries.filter((e) => e.startsWith(".") && e.includes(".partial-"));
  for (const p of partial) await rm(join(cellsDir, p), { recursive: true, force: true });
  return partial.length;
}

async function studyRun({ values: f }: CommandInput<typeof flags>): Promise<number> {
  const planPath = f.plan;
  const out = f.out;
  const reportPath = f.report ?? join(out, "report.md");
  const { plan, text: planText } = await readPlan(planPath);
  const cells = expandPlan(plan);
  const cellsDir = join(out, "cells");

  // What is already there: finished cells must match the plan, else the report would mix settings.
  const done = new Map<string, { records: RoundRecord[]; summary: RunSummary }>();
  const mismatched: string[] = [];
  for (const cell of cells) {
    const found = await loadCell(join(cellsDir, cell.id));
    if (!found) continue;
    let same = false;
    try {
      same = resultKey(parseRunConfig(found.config, `${cell.id}/config.json`)) === resultKey(cell.config);
    } catch {
      same = false;
    }
    if (same) done.set(cell.id, { records: found.records, summary: found.summary });
    else mismatched.push(cell.id);
  }
  const pending = cells.filter((c) => !done.has(c.id));

  if (f["dry-run"]) {
    for (const c of cells) console.log(`${done.has(c.id) ? "done   " : mismatched.includes(c.id) ? "STALE  " : "pending"} ${c.id}  (${c.config.rounds} rounds)`);
    console.log(`${cells.length} cells: ${done.size} done, ${pending.length} to run${mismatched.length ? ` (${mismatched.length} stale: run with a different config)` : ""}`);
    return 0;
  }
  if (mismatched.length > 0) {
    throw argError(
      `${mismatched.length} finished cell(s) in ${cellsDir} were run with a config the plan no longer gives (${mismatched.slice(0, 5).join(", ")}${mismatched.length > 5 ? ", ..." : ""}); ` +
        "delete them to re-run them, or use another --out",
    );
  }
  if (f.interim) {
    if (done.size === 0) throw argError(`--interim: ${cellsDir} holds no finished cell of this plan yet; run the study first`);
    const results: CellResult[] = cells.filter((c) => done.has(c.id)).map((c) => ({ cell: c, ...done.get(c.id)! }));
    await writeReport(results, cells.length);
    return 0;
  }
  if (done.size > 0 && !f.resume) {
    throw argError(`--out ${out} already holds ${done.size} finished cell(s) of this plan; pass --resume to keep them and run the other ${pending.length}, or choose another --out`);
  }
  await mkdir(cellsDir, { recursive: true });
  const cleared = await clearPartials(cellsDir);
  await writeFile(join(out, "plan.json"), planText.endsWith("\n") ? planText : `${planText}\n`);

  const log = new Progress(pending.length, "study");
  log.line(
    `study "${plan.title}": ${cells.length} cells (${done.size} done, ${pending.length} to run)${cleared ? `; removed ${cleared} partial cell(s) of an interrupted run` : ""}`,
  );
  const started = Date.now();
  for (const [i, cell] of pending.entries()) {
    const tag = `[${i + 1}/${pending.length}] ${cell.id}`;
    const cellStart = Date.now();
    try {
      const result = await runCell(cell, cellsDir, tag);
      done.set(cell.id, result);
    } catch (e) {
      const msg = e instanceof SaflError ? e.rawMessage : e instanceof Error ? e.message : String(e);
      const hint = `${done.size} cell(s) are finished in ${cellsDir}; after fixing this, run the same command with --resume to continue`;
      if (e instanceof SaflError) throw new SaflError(e.code, `cell ${cell.id} failed: ${msg}\n${hint}`);
      throw new Error(`cell ${cell.id} failed: ${msg}\n${hint}`, { cause: e });
    }
    const s = done.get(cell.id)!.summary;
    const elapsed = (Date.now() - started) / 1000;
    const eta = (elapsed / (i + 1)) * (pending.length - i - 1);
    log.line(
      `${tag}: final ${s.finalAccuracy === undefined ? "-" : `${(100 * s.finalAccuracy).toFixed(2)}%`}, ${formatBytes(s.total.bytes)} sent ` +
        `(${(100 * (1 - s.reduction.bytes)).toFixed(1)}% of FedAvg), ${formatSeconds((Date.now() - cellStart) / 1000)}; study eta ${formatSeconds(eta)}`,
    );
  }

  await writeReport(cells.map((c) => ({ cell: c, ...done.get(c.id)! })));
  return 0;

  /** Writes the plots and the report (atomically, keeping its analysis); `planned` marks an interim one. */
  async function writeReport(results: CellResult[], planned?: number): Promise<void> {
    const reportDir = dirname(resolve(reportPath));
    const plotsDir = join(out, "plots");
    const report = buildStudyReport(plan, results, {
      plotsHref: relative(reportDir, resolve(plotsDir)).split("\\").join("/"),
      cellsHref: relative(reportDir, resolve(cellsDir)).split("\\").join("/"),
      command: `npx safl study --plan ${planPath} --out ${out}${f.report ? ` --report ${reportPath}` : ""} --resume`,
      ...(planned !== undefined ? { planned } : {}),
    });
    await mkdir(plotsDir, { recursive: true });
    for (const [name, svg] of report.plots) await writeFile(join(plotsDir, name), svg);
    const previous = await readFile(reportPath, "utf8").catch(() => undefined);
    await mkdir(reportDir, { recursive: true });
    const tmpReport = `${reportPath}.partial-${process.pid}`;
    await writeFile(tmpReport, mergeAnalysis(report.markdown, previous));
    await rename(tmpReport, reportPath);
    console.error(`wrote ${reportPath}${planned !== undefined ? ` (interim: ${results.length} of ${planned} cells)` : ""} and ${report.plots.size} plots in ${plotsDir}/`);
  }
}
