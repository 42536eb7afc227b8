/**
 * @module cli/commands/simulate
 * `safl simulate`: the project's main job. Runs one federated simulation from a run config (the
 * embedded default when none is given: SA-FedLoRA on the default backbone, MNIST digits 5-9) and
 * writes metrics.jsonl (one line per round, streamed), summary.json, the resolved config, the
 * partition summary and SVG plots into an output directory that appears whole or not at all.
 * With --ui it also serves the live dashboard of the run (net/ui) on loopback.
 */
import { appendFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { formatPartitionSummary } from "../../data/partition.js";
import { argError, ErrorCode, SaflError } from "../../errors.js";
import type { RoundRecord } from "../../fl/records.js";
import { saveCheckpoint } from "../../io/checkpoint.js";
import { createUi, runInfoOf, serveUi, type UiServer } from "../../net/ui.js";
import { NodeRuntime } from "../../runtime/node.js";
import { applyOverrides, parseRunConfig, type RunConfig } from "../../sim/config.js";
import { formatRoundLine, formatSummaryTable, partitionPlot, runPlots } from "../../sim/report.js";
import { observedGrid, RunFeed } from "../../sim/run-feed.js";
import { localGrid, prepareSimulation, type SimulationSetup, simulate } from "../../sim/simulate.js";
import { workerGridFactory } from "../../sim/worker-grid.js";
import { defineFlags } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { FORCE, JSON_OUTPUT, OUT } from "../flags.js";
import { parseListen } from "../listen.js";
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
  ui: { type: "boolean", description: "serve the live dashboard of the run in a browser (docs/browser.md); prints its URL" },
  "ui-listen": { type: "string", value: "<host:port>", default: "127.0.0.1:7480", description: "where --ui serves the dashboard (port 0: any free port)" },
  "ui-wait": {
    type: "number",
    value: "<seconds>",
    min: 0,
    defaultText: "until Ctrl-C",
    description: "with --ui, keep serving the finished run's dashboard this long, then exit",
  },
});

export const simulateCommand = defineCommand({
  name: "simulate",
  summary: "run a federated simulation (the main job; SA-FedLoRA on the default backbone)",
  usage: "[--config <file.json>] [--set key.path=value ...] [--out <dir>] [--force] [--json] [--ui [--ui-listen host:port] [--ui-wait s]]",
  description: `With no config, runs SA-FedLoRA on the shipped backbone (MNIST digits 0-4) with the target task
MNIST digits 5-9: 20 clients, Dirichlet(0.5) label skew, 10 clients per round, 30 rounds.`,
  epilog:
    "Writes <out>/metrics.jsonl, summary.json, config.json, partition.txt, SVG plots and model/ (the final global model as a HF checkpoint, adapters merged). With --ui the dashboard stays up after the run (its outputs are written by then) until Ctrl-C or --ui-wait seconds.",
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

async function simulateRun({ values: f, given }: CommandInput<typeof flags>): Promise<number> {
  if (!f.ui) for (const k of ["ui-listen", "ui-wait"]) if (given[k] !== undefined) throw argError(`--${k} needs --ui`);
  const cfg = await runConfigFromArgs(f.config, f.set);
  const out = f.out;
  const listen = f.ui ? parseListen(f["ui-listen"], "ui-listen") : undefined;
  const pending = await prepareOutput(out, f.force);
  let ui: { feed: RunFeed; server: UiServer } | undefined;
  try {
    if (listen) {
      // Listening before the data and model load, so a page opened at once sees the run from its first round.
      const feed = new RunFeed(runInfoOf(cfg, "simulation"));
      ui = { feed, server: await serveUi(createUi({ feed }), listen.host, listen.port) };
      process.stderr.write(`dashboard: ${ui.server.url}\n`);
    }
    const setup = await prepareSimulation(cfg);
    ui?.feed.setClients(setup.clients.map((c) => ({ id: c.clientId, online: true, state: "idle", device: "simulated", threads: cfg.execution.threads })));
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
    const feed = ui?.feed;
    const makeGrid = async (s: SimulationSetup) => {
      const grid = cfg.execution.workers > 0 ? await workerGridFactory(cfg)(s) : localGrid(s, runtime, cfg.wire.dtype);
      return feed ? observedGrid(grid, feed, imagesPerRequest(cfg, s)) : grid;
    };
    const result = await simulate(
      cfg,
      runtime,
      {
        onRoundStart: (round: number) => feed?.roundStarted(round),
        onRound: (r: RoundRecord) => {
          writes = writes.then(() => appendFile(metricsPath, `${JSON.stringify(r)}\n`));
          progress.tick(1, r.testAccuracy !== undefined ? `acc ${(100 * r.testAccuracy).toFixed(2)}%` : "");
          progress.line(formatRoundLine(r, cfg.rounds));
          feed?.addRound(r);
        },
        ...(cfg.execution.workers > 0 || feed ? { makeGrid } : {}),
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
    if (ui) {
      ui.feed.end("finished");
      await lingerForUi(ui.server.url, f["ui-wait"]);
    }
    return 0;
  } catch (e) {
    ui?.feed.end("failed", e instanceof Error ? e.message : String(e));
    await pending.abandon();
    throw e;
  } finally {
    await ui?.server.close();
  }
}

/**
 * How many images one training request covers per client (for the dashboard's images/s from a
 * reply's compute time): localSteps × batch, else the client's examples × localEpochs.
 */
function imagesPerRequest(cfg: RunConfig, setup: SimulationSetup): (clientId: string) => number | undefined {
  const sizes = new Map(setup.clients.map((c) => [c.clientId, c.train.length]));
  const t = cfg.training;
  return (id) => (t.localSteps > 0 ? t.localSteps * t.batch : (sizes.get(id) ?? 0) * t.localEpochs || undefined);
}

/**
 * After a run with --ui: the page is why the user asked for --ui, so it stays up (with the run's
 * final state) until Ctrl-C, or for `seconds` when given (scripts, tests).
 */
async function lingerForUi(url: string, seconds: number | undefined): Promise<void> {
  process.stderr.write(`dashboard: still serving the finished run at ${url} ${seconds === undefined ? "until Ctrl-C" : `for ${seconds} s`}\n`);
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      resolve();
    };
    const timer = seconds === undefined ? undefined : setTimeout(done, seconds * 1000);
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
}
