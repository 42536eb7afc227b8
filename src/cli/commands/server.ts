/**
 * @module cli/commands/server
 * `safl server`: a deployed federated run (net/server) — the run config of `safl simulate` plus its
 * `deployment` section, clients connecting with tokens from `safl token create`, state in a SQLite
 * file so the same command continues a crashed run, outputs as `safl simulate` writes them.
 * With --ui the same port also serves the live dashboard (net/ui) and the browser join page.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { argError, ErrorCode, SaflError } from "../../errors.js";
import type { RoundRecord } from "../../fl/records.js";
import { joinRoutes } from "../../net/join-pages.js";
import { type PageContext, runServer, type TlsFiles } from "../../net/server.js";
import { composePages, createUi, runInfoOf, watchHub } from "../../net/ui.js";
import { formatRoundLine } from "../../sim/report.js";
import { RunFeed } from "../../sim/run-feed.js";
import { defineFlags } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { JSON_OUTPUT } from "../flags.js";
import { parseListen } from "../listen.js";
import { runConfigFromArgs } from "./simulate.js";

const flags = defineFlags({
  config: { type: "string", value: "<file>", defaultText: "the embedded default run", description: "run config (JSON), the schema of safl simulate plus a deployment section (docs/deployment.md)" },
  set: { type: "string", value: "<key.path=value>", multiple: true, description: "override one field, e.g. --set deployment.minClients=4" },
  listen: { type: "string", value: "<host:port>", default: "127.0.0.1:7443", description: "address to listen on (loopback unless you give another)" },
  state: { type: "string", value: "<file>", required: true, description: "SQLite state file; an existing one of the same config resumes the run" },
  out: { type: "string", value: "<dir>", required: true, description: "output directory (metrics.jsonl, summary.json, plots, model/)" },
  tokens: { type: "string", value: "<file>", required: true, description: "token file made by safl token create" },
  "tls-cert": { type: "string", value: "<pem>", description: "TLS certificate (chain) of the server" },
  "tls-key": { type: "string", value: "<pem>", description: "TLS private key of the server" },
  "tls-client-ca": { type: "string", value: "<pem>", description: "require client certificates signed by this CA (mutual TLS)" },
  insecure: { type: "boolean", description: "plaintext HTTP/2 (h2c), allowed on loopback only" },
  "insecure-anywhere": { type: "boolean", description: "allow --insecure on a non-loopback address (tests in network namespaces)" },
  threads: { type: "int", value: "<n>", min: 1, max: 256, defaultText: "execution.threads of the run config", description: "onnxruntime threads of the server-side evaluation (as the simulation's, so both evaluate alike)" },
  ui: { type: "boolean", description: "also serve the live dashboard at / and the browser join page at /join on the same port (docs/browser.md)" },
  json: { ...JSON_OUTPUT, description: "print one JSON object per round and the summary as JSON" },
});

export const serverCommand = defineCommand({
  name: "server",
  summary: "serve a federated run to network clients (Connect/gRPC, TLS, tokens, crash-safe state)",
  usage: "--state <file> --out <dir> --tokens <file> (--tls-cert <pem> --tls-key <pem> | --insecure) [--config <file>] [--set k=v] [--listen host:port] [--ui]",
  description:
    "Runs the rounds of the run config with clients that connect over the network (safl client, or browsers). Clients pull their tasks; the server never dials out. Every accepted reply and every round boundary is committed to --state, so after a crash the same command continues the run.",
  epilog:
    "Stop with Ctrl-C: the state keeps the last finished round, and the same command continues from there. With --ui, open the printed dashboard URL in a browser: it is read-only and needs no token, so it is visible to whoever can reach the port.",
  flags,
  run: serverRun,
});

async function readPem(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new SaflError(ErrorCode.Io, `--${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

async function serverRun({ values: v }: CommandInput<typeof flags>): Promise<number> {
  const cfg = await runConfigFromArgs(v.config, v.set);
  const { host, port } = parseListen(v.listen);
  if ((v["tls-cert"] === undefined) !== (v["tls-key"] === undefined)) throw argError("--tls-cert and --tls-key go together");
  let tls: TlsFiles | undefined;
  if (v["tls-cert"] !== undefined && v["tls-key"] !== undefined) {
    tls = {
      cert: await readPem(v["tls-cert"], "tls-cert"),
      key: await readPem(v["tls-key"], "tls-key"),
      ...(v["tls-client-ca"] !== undefined ? { clientCa: await readPem(v["tls-client-ca"], "tls-client-ca") } : {}),
    };
  }
  const stop = new AbortController();
  const onSignal = () => {
    process.stderr.write("safl server: stopping (the state keeps the last finished round)\n");
    stop.abort();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const log = (line: string) => (v.json ? console.log(JSON.stringify({ log: line })) : process.stderr.write(`${line}\n`));
  const feed = v.ui ? new RunFeed(runInfoOf(cfg, "deployment")) : undefined;
  let stopWatching = () => {};
  // The dashboard first, then the join page's routes: given to runServer, which calls it once the hub exists.
  const pages = feed
    ? (ctx: PageContext) => {
        for (const r of priorRecords(v.out)) feed.addRound(r);
        stopWatching = watchHub(ctx.hub, feed);
        return composePages(createUi({ feed }).handler, joinRoutes(ctx));
      }
    : undefined;
  try {
    const result = await runServer({
      cfg,
      host,
      port,
      statePath: v.state,
      outDir: v.out,
      tokensPath: v.tokens,
      tls,
      insecure: v.insecure,
      insecureAnywhere: v["insecure-anywhere"],
      threads: v.threads ?? cfg.execution.threads,
      log,
      signal: stop.signal,
      ...(pages ? { pages } : {}),
      onListening: (a) => {
        if (v.json) console.log(JSON.stringify({ listening: { address: a.address, port: a.port } }));
        if (feed) log(`dashboard: ${tls ? "https" : "http"}://${a.address.includes(":") ? `[${a.address}]` : a.address}:${a.port}/ (join page at /join)`);
      },
      onRound: (r: RoundRecord) => {
        feed?.addRound(r);
        if (v.json) console.log(JSON.stringify({ round: r }));
        else console.log(`${formatRoundLine(r, cfg.rounds)}  clients ${r.clients.accepted.length}/${r.clients.sampled.length}`);
      },
    });
    if (result.records.length < cfg.rounds) feed?.end("stopped", `after round ${result.records.length}`);
    if (v.json) console.log(JSON.stringify({ summary: result.summary }));
    else if (result.records.length === cfg.rounds) console.log(`run complete: ${result.records.length} rounds; wrote ${v.out}/ (metrics.jsonl, summary.json, plots, model/)`);
    return stop.signal.aborted ? 130 : 0;
  } catch (e) {
    feed?.end("failed", e instanceof Error ? e.message : String(e));
    throw e;
  } finally {
    stopWatching();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/**
 * The rounds a resumed server committed before this process (it rewrote <out>/metrics.jsonl from
 * its state file before listening), so the dashboard of a resumed run starts with its history.
 */
function priorRecords(outDir: string): RoundRecord[] {
  let text: string;
  try {
    text = readFileSync(join(outDir, "metrics.jsonl"), "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as RoundRecord);
}
