/**
 * @module cli/commands/server
 * `safl server`: a deployed federated run (net/server) — the run config of `safl simulate` plus its
 * `deployment` section, clients connecting with tokens from `safl token create`, state in a SQLite
 * file so the same command continues a crashed run, outputs as `safl simulate` writes them.
 */
import { readFile } from "node:fs/promises";
import { argError, ErrorCode, SaflError } from "../../errors.js";
import type { RoundRecord } from "../../fl/records.js";
import { runServer, type TlsFiles } from "../../net/server.js";
import { formatRoundLine } from "../../sim/report.js";
import { defineFlags } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { JSON_OUTPUT } from "../flags.js";
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
  json: { ...JSON_OUTPUT, description: "print one JSON object per round and the summary as JSON" },
});

export const serverCommand = defineCommand({
  name: "server",
  summary: "serve a federated run to network clients (Connect/gRPC, TLS, tokens, crash-safe state)",
  usage: "--state <file> --out <dir> --tokens <file> (--tls-cert <pem> --tls-key <pem> | --insecure) [--config <file>] [--set k=v] [--listen host:port]",
  description:
    "Runs the rounds of the run config with clients that connect over the network (safl client, or browsers). Clients pull their tasks; the server never dials out. Every accepted reply and every round boundary is committed to --state, so after a crash the same command continues the run.",
  epilog: "Stop with Ctrl-C: the state keeps the last finished round, and the same command continues from there.",
  flags,
  run: serverRun,
});

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw argError(`--listen ${JSON.stringify(text)}: expected host:port, e.g. 127.0.0.1:7443 or [::1]:7443`);
  return { host: (m[1] ?? m[2])!, port };
}

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
      onListening: (a) => {
        if (v.json) console.log(JSON.stringify({ listening: { address: a.address, port: a.port } }));
      },
      onRound: (r: RoundRecord) => {
        if (v.json) console.log(JSON.stringify({ round: r }));
        else console.log(`${formatRoundLine(r, cfg.rounds)}  clients ${r.clients.accepted.length}/${r.clients.sampled.length}`);
      },
    });
    if (v.json) console.log(JSON.stringify({ summary: result.summary }));
    else if (result.records.length === cfg.rounds) console.log(`run complete: ${result.records.length} rounds; wrote ${v.out}/ (metrics.jsonl, summary.json, plots, model/)`);
    return stop.signal.aborted ? 130 : 0;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
