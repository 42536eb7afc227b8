/**
 * @module cli/commands/simulate
 * `safl simulate`: the project's main job. Runs one federated simulation from a run config (the
 * embedded default when none is given: SA-FedLoRA on the default backbone, MNIST digits 5-9) and
 * writes metrics.jsonl (one line per round, streamed), summary.json, the resolved config, the
 * partition summary and SVG plots into an output directory that appears whole or not at all.
 */
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { formatPartitionSummary } from "../../data/partition.js";
import { argError, ErrorCode, SaflError } from "../../errors.js";
import type { RoundRecord } from "../../fl/records.js";
import { saveCheckpoint } from "../../io/checkpoint.js";
import { NodeRuntime } from "../../runtime/node.js";
import { applyOverrides, parseRunConfig, type RunConfig } from "../../sim/config.js";
import { formatRoundLine, formatSummaryTable, partitionPlot, runPlots } from "../../sim/report.js";
import { prepareSimulation, simulate } from "../../sim/simulate.js";
import { workerGridFactory } from "../../sim/worker-grid.js";
import { defineFlags } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { FORCE, JSON_OUTPUT, OUT } from "../flags.js";
import { prepareOutput } from "../output-dir.js";
import { Progress } from "../progress.js";

const flags = defineFlags({
  config: { type: "string", value: "<file>", defaultText: "the embedded default run", description: "run config (JSON); see docs/simulation.md for every field and its default" },
  set: {
    type: "string",
    value: "<key.path=value>",
    multiple: true,
    description:
      "override one field, e.g. --set strategy.name=fedavg --set clients.partition=iid --set rounds=10 (values are read as JSON when they parse)",
  },
  out: { ...OUT, default: "runs/simulate", description: "output directory; replaced only with --force" },
  force: { ...FORCE, description: "replace an existing output directory" },
  json: { ...JSON_OUTPUT, description: "print the summary as JSON instead of a table" },
});

export const simulateCommand = defineCommand({
  name: "simulate",
  summary: "run a federated simulation (the main job; SA-FedLoRA on the default backbone)",
  usage: "[--config <file.json>] [--set key.path=value ...] [--out <dir>] [--force] [--json]",
  description: `With no config, runs SA-FedLoRA on the shipped backbone (MNIST digits 0-4) with the target task
MNIST digits 5-9: 20 clients, Dirichlet(0.5) label skew, 10 clients per round, 30 rounds.`,
  epilog: "Writes <out>/metrics.jsonl, summary.json, config.json, partition.txt, SVG plots and model/ (the final global model as a HF checkpoint, adapters merged).",
  flags,
  run: simulateRun,
});

/** Reads a JSON file; `what` names it in the two errors a user can cause (unreadable, not JSON). */
export async function readJsonFile(path: string, what: string): Promise<{ value: unknown; text: string }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new SaflError(ErrorCode.Io, `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return { value: JSON.parse(text), text };
  } catch (e) {
    throw argError(`${what} ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Reads --config and --set into a validated run config. */
export async function runConfigFromArgs(configPath: string | undefined, sets: readonly string[]): Promise<RunConfig> {
  const raw = configPath ? (await readJsonFile(configPath, "run config")).value : {};
  return parseRunConfig(applyOverrides(raw, sets), configPath ? `run config ${configPath}` : "run config");
}

async function simulateRun({ values: f }: CommandInput<typeof flags>): Promise<number> {
  const cfg = await runConfigFromArgs(f.config, f.set);
  const out = f.out;
  const pending = await prepareOutput(out, f.force);
  try {
    const setup = await prepareSimulation(cfg);
    const progress = new Progress(cfg.rounds, cfg.strategy.name);
    progress.line(
      `${cfg.strategy.name}: ${setup.clients.length} clients (${cfg.clients.partition}), ${cfg.clients.perRound} per round, ${cfg.rounds} rounds; ` +
        `task ${setup.task.dataset} classes ${setup.task.classes.join(",")} (${setup.task.train.count} train / ${setup.task.test.count} test); backbone ${setup.backboneDir}`,
    );
    const partitionText = formatPartitionSummary(setup.partition, { maxRows: 20, classNames: setup.task.classNames });
    progress.line(partitionText);
    await writeFile(join(pending.tmp, "config.json"), `${JSON.stringify(cfg, null, 2)}\n`);
    await writeFile(join(pending.tmp, "partition.txt"), `${formatPartitionSummary(setup.partition, { classNames: setup.task.classNames })}\n`);
    await writeFile(join(pending.tmp, "partition.svg"), partitionPlot(setup.partition, setup.task.classNames));
    const metricsPath = join(pending.tmp, "metrics.jsonl");
    await writeFile(metricsPath, "");
    let writes = Promise.resolve();
    const runtime = new NodeRuntime({ threads: cfg.execution.threads });
    const result = await simulate(
      cfg,
      runtime,
      {
        onRound: (r: RoundRecord) => {
          writes = writes.then(() => appendFile(metricsPath, `${JSON.stringify(r)}\n`));
          progress.tick(1, r.testAccuracy !== undefined ? `acc ${(100 * r.testAccuracy).toFixed(2)}%` : "");
          progress.line(formatRoundLine(r, cfg.rounds));
        },
        ...(cfg.execution.workers > 0 ? { makeGrid: workerGridFactory(cfg) } : {}),
      },
      setup,
    );
    await writes;
    progress.finish();
    await writeFile(join(pending.tmp, "summary.json"), `${JSON.stringify(result.summary, null, 2)}\n`);
    for (const [name, svg] of runPlots(result.records, { title: `${cfg.strategy.name}, ${cfg.clients.partition}` })) await writeFile(join(pending.tmp, name), svg);
    await saveCheckpoint(join(pending.tmp, "model"), setup.config, result.model, { safl_run: { strategy: cfg.strategy.name, rounds: cfg.rounds } });
    await pending.commit();
    if (f.json) console.log(JSON.stringify({ out, ...result.summary }, null, 2));
    else console.log(`${formatSummaryTable(result.summary)}\n\nwrote ${out}/ (metrics.jsonl, summary.json, plots)`);
    return 0;
  } catch (e) {
    await pending.abandon();
    throw e;
  }
}
