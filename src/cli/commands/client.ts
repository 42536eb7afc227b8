/**
 * @module cli/commands/client
 * `safl client`: a long-running federated client (net/client) that joins `safl server`, plays a
 * demo partition of the run (`--partition I`) or trains on its own data (`--data-dir D`), and exits
 * when the run is over. `--partition A-B --tokens-file F` plays several partitions in one process
 * (one identity each, one shared runtime), for scale tests without a process per client.
 *
 * The token can come from SAFL_TOKEN instead of --token, because a command line is visible to
 * every user of the machine (ps); --tokens-file is read, never printed.
 */
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { argError, ErrorCode, SaflError } from "../../errors.js";
import { type ClientIdentity, runClient } from "../../net/client.js";
import { opensslReason } from "../../net/tls-errors.js";
import { defaultCacheDir } from "../../net/client-cache.js";
import { defineFlags, withDefault } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { JSON_OUTPUT, THREADS } from "../flags.js";

const flags = defineFlags({
  server: { type: "string", value: "<url>", required: true, description: "the server, https://host:port (or http://host:port with --insecure)" },
  token: { type: "string", value: "<token>", defaultText: "$SAFL_TOKEN", description: "this client's bearer token safl_<id>_<secret> (from safl token create); prefer SAFL_TOKEN, a command line is visible to other users" },
  "tokens-file": {
    type: "string",
    value: "<file>",
    description: 'JSON {"<partition>": "<token>", ...}: one token per partition of --partition (several identities in one process)',
  },
  ca: { type: "string", value: "<ca.pem>", defaultText: "the system's CAs", description: "PEM certificate(s) to trust for the server's TLS certificate (a private CA)" },
  cert: { type: "string", value: "<client.pem>", description: "client certificate (PEM, chain) for a server that requires mutual TLS (safl server --tls-client-ca)" },
  key: { type: "string", value: "<client.key>", description: "private key (PEM) of --cert" },
  insecure: { type: "boolean", description: "allow a cleartext http:// server (h2c), for local tests; TLS verification is never turned off" },
  cache: { type: "string", value: "<dir>", defaultText: "~/.cache/safl", description: "cache of the backbone and the run's frozen bases (kept across restarts)" },
  threads: withDefault(THREADS, 1),
  dataset: { type: "string", value: "<name>", description: "with --partition: the dataset the run must use (a guard; the run config names it)" },
  partition: { type: "string", value: "<I|A-B>", description: "play demo partition I of the run (the run's partitioning of its dataset), or partitions A..B with --tokens-file" },
  "data-dir": { type: "string", value: "<dir>", description: "train on this dataset directory instead (train/test.safetensors, IDX files or CIFAR-10 batches)" },
  "max-retry-seconds": { type: "number", value: "<s>", min: 0, defaultText: "retry forever", description: "give up (exit 8) when the server has been unreachable this long" },
  json: { ...JSON_OUTPUT, description: "print progress (stderr) and the summary (stdout) as JSON lines" },
});

export const clientCommand = defineCommand({
  name: "client",
  summary: "join a federated server and train until the run is over",
  usage: "--server <url> [--token <token>] (--partition I | --data-dir D) [--ca ca.pem] [--cert client.pem --key client.key] [--insecure] [--cache DIR] [--threads N] [--json]",
  description: `Joins the server's run, downloads its backbone once into the cache (resuming an interrupted download), then pulls tasks, trains locally and uploads the replies, printing one line per task on stderr. Connection problems are retried with backoff for as long as it takes (or --max-retry-seconds); a server restart is joined again. Ctrl-C leaves the run cleanly.

With --partition I the client plays virtual client I of the run's simulation (client-000I): the same data, the same seeds, the same replies.`,
  epilog:
    "Exit codes: 0 the run finished (or the client was stopped); 2 the token was refused, the flags, data or partition do not fit the run, or TLS failed (the server's certificate is not trusted, or the server wants a client certificate); 5 the server refused the Join (protocol version, backbone, partition taken); 8 the server stayed unreachable for --max-retry-seconds.",
  flags,
  run: client,
});

/** "3" or "0-9" (inclusive). */
export function parsePartitionRange(text: string): number[] {
  const m = /^(\d{1,6})(?:-(\d{1,6}))?$/.exec(text.trim());
  if (!m) throw argError(`--partition ${JSON.stringify(text)}: expected a partition index such as 3, or a range such as 0-9`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a) throw argError(`--partition ${text}: the range ends before it starts`);
  if (b - a >= 10_000) throw argError(`--partition ${text}: at most 10000 partitions in one process`);
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

async function readTokensFile(file: string): Promise<Map<number, string>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new SaflError(ErrorCode.Io, `cannot read the tokens file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw argError(`tokens file ${file}: expected a JSON object {"<partition>": "<token>", ...}`);
  const out = new Map<number, string>();
  for (const [k, v] of Object.entries(raw)) {
    if (!/^\d{1,6}$/.test(k)) throw argError(`tokens file ${file}: key ${JSON.stringify(k.slice(0, 20))} is not a partition index`);
    if (typeof v !== "string" || v === "") throw argError(`tokens file ${file}: the token of partition ${k} must be a non-empty string`);
    out.set(Number(k), v);
  }
  return out;
}

async function readPem(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new SaflError(ErrorCode.Io, `cannot read --${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

async function client({ values: v }: CommandInput<typeof flags>): Promise<number> {
  if (v.partition !== undefined && v["data-dir"] !== undefined) throw argError("client: --partition and --data-dir exclude each other (a demo partition, or your own data)");
  if (v.partition === undefined && v["data-dir"] === undefined) throw argError("client: pass --partition I (a demo partition of the run) or --data-dir D (your own data)");
  if (v.dataset !== undefined && v.partition === undefined) throw argError("client: --dataset goes with --partition (with --data-dir the data is yours)");
  const partitions = v.partition === undefined ? [undefined] : parsePartitionRange(v.partition);
  const single = v.token ?? process.env["SAFL_TOKEN"];
  let identities: ClientIdentity[];
  if (v["tokens-file"] !== undefined) {
    if (v.token !== undefined) throw argError("client: --token and --tokens-file exclude each other");
    if (v.partition === undefined) throw argError("client: --tokens-file maps partitions to tokens, so it needs --partition");
    const tokens = await readTokensFile(v["tokens-file"]);
    identities = partitions.map((p) => {
      const token = tokens.get(p!);
      if (token === undefined) throw argError(`client: the tokens file ${v["tokens-file"]} has no token for partition ${p}`);
      return { token, partition: p! };
    });
  } else {
    if (single === undefined || single === "") throw argError("client: no token: pass --token or set SAFL_TOKEN (or --tokens-file with a --partition range)");
    if (partitions.length > 1) throw argError("client: several partitions need one token each: pass --tokens-file");
    identities = [{ token: single, ...(partitions[0] !== undefined ? { partition: partitions[0] } : {}) }];
  }
  const ca = v.ca === undefined ? undefined : await readPem(v.ca, "ca");
  if ((v.cert === undefined) !== (v.key === undefined)) throw argError("client: --cert and --key go together (a client certificate and its private key)");
  const cert = v.cert === undefined ? undefined : await readPem(v.cert, "cert");
  const key = v.key === undefined ? undefined : await readPem(v.key, "key");
  try {
    // Unreadable PEM or a key that does not belong to the certificate: say so now, not at the first call.
    createSecureContext({ ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) });
  } catch (e) {
    const reason = opensslReason((e as Error).message);
    throw argError(`client: --ca/--cert/--key: ${reason === "key values mismatch" ? "the --key does not belong to the --cert" : reason}`);
  }

  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: string) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`safl client: ${name}: leaving the run (again to quit at once)\n`);
      controller.abort();
    } else process.exit(130);
  };
  const onInt = () => onSignal("SIGINT");
  const onTerm = () => onSignal("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  try {
    const exit = await runClient({
      server: v.server,
      identities,
      ...(v["data-dir"] !== undefined ? { dataDir: v["data-dir"] } : {}),
      ...(v.dataset !== undefined ? { dataset: v.dataset } : {}),
      ...(ca !== undefined ? { ca } : {}),
      ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
      insecure: v.insecure,
      cacheDir: v.cache ?? defaultCacheDir(),
      threads: v.threads,
      ...(v["max-retry-seconds"] !== undefined ? { maxRetrySeconds: v["max-retry-seconds"] } : {}),
      json: v.json,
      signal: controller.signal,
    });
    return exit.code;
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
  }
}
