/**
 * @module net/server
 * A deployed run: the same run config, driver and strategies as `safl simulate`, with the clients on
 * other machines. The server listens on one port (net/http-front: Connect, gRPC and gRPC-Web on
 * HTTP/2 for Node clients and on HTTP/1.1 for browsers, with TLS or in cleartext on loopback), keeps its state in a SQLite file, evaluates the global
 * model on its own copy of the test set, and writes the outputs `safl simulate` writes.
 *
 * Resuming. Started again with the same --state after a crash (or `kill -9`) at any moment, the
 * server restores the strategy and driver from the last round boundary and re-opens the round that
 * was in progress: replies committed before the crash are kept, the clients are asked for the rest
 * (they rejoin on their own). With deterministic clients the run ends with the metrics of an
 * uninterrupted one. A state file of another config is refused.
 */
import { randomUUID } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { argError } from "../errors.js";
import { type DriverCheckpoint, runRounds } from "../fl/driver.js";
import type { RoundRecord } from "../fl/records.js";
import { createStrategy } from "../fl/strategies/index.js";
import { saveCheckpoint } from "../io/checkpoint.js";
import { NodeRuntime } from "../runtime/node.js";
import { deploymentSettings, type RunConfig } from "../sim/config.js";
import { runPlots } from "../sim/report.js";
import { localTraining, prepareSimulation, runDriverOptions, summarize } from "../sim/simulate.js";
import { packBackbone, sha256Hex } from "./backbone.js";
import { FederationHub } from "./hub.js";
import { type Front, listenFront, type PageHandler } from "./http-front.js";
import { NetworkGrid } from "./network-grid.js";
import { federationHandler } from "./routes.js";
import { decodeBoundary, encodeBoundary } from "./snapshot.js";
import { StateStore } from "./state.js";
import { RateLimiter, TokenVerifier } from "./tokens.js";

export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Require client certificates signed by this CA (mutual TLS for Node clients). */
  readonly clientCa?: Buffer;
}

export interface ServerOptions {
  readonly cfg: RunConfig;
  readonly host: string;
  readonly port: number;
  readonly statePath: string;
  readonly outDir: string;
  readonly tokensPath: string;
  /** TLS, or undefined for plaintext h2c (only with `insecure`). */
  readonly tls: TlsFiles | undefined;
  readonly insecure: boolean;
  /** Allow plaintext on a non-loopback address. */
  readonly insecureAnywhere: boolean;
  /** onnxruntime threads of the server-side evaluation. */
  readonly threads: number;
  readonly log: (line: string) => void;
  /** Per-round record, as it is committed. */
  readonly onRound?: (record: RoundRecord) => void;
  readonly onListening?: (address: AddressInfo) => void;
  /** Stops the run (SIGINT): the open round is abandoned, the state keeps the last boundary. */
  readonly signal?: AbortSignal;
  /** Plain HTTP routes beside the service (the `--ui` pages, demo data), given the run's hub. */
  readonly pages?: (ctx: PageContext) => PageHandler;
}

/** What a page handler may use: the hub (sessions, tokens, clients) and the run being served. */
export interface PageContext {
  readonly hub: FederationHub;
  readonly cfg: RunConfig;
  readonly setup: Awaited<ReturnType<typeof prepareSimulation>>;
}

export interface ServerResult {
  readonly records: readonly RoundRecord[];
  readonly summary: Record<string, unknown>;
  readonly resumedFrom: number;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** Refuses a listen address that would expose a plaintext server (or one without TLS files) by mistake. */
export function checkListen(host: string, tls: TlsFiles | undefined, insecure: boolean, insecureAnywhere: boolean): void {
  if (tls && insecure) throw argError("--insecure and --tls-cert/--tls-key contradict each other; give one");
  if (!tls && !insecure) throw argError("give --tls-cert and --tls-key, or --insecure for plaintext (loopback only)");
  if (insecure && !LOOPBACK.has(host) && !insecureAnywhere) {
    throw argError(`--insecure serves plaintext; it is only allowed on loopback (127.0.0.1, ::1), not on ${host}, unless --insecure-anywhere`);
  }
}

/** Writes a file via a temporary name, so a crash never leaves it half written. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

export async function runServer(o: ServerOptions): Promise<ServerResult> {
  const { cfg } = o;
  checkListen(o.host, o.tls, o.insecure, o.insecureAnywhere);
  const dep = deploymentSettings(cfg);
  if (dep.minClients > cfg.clients.count) throw argError(`deployment.minClients ${dep.minClients} exceeds clients.count ${cfg.clients.count}`);
  const tokens = TokenVerifier.load(o.tokensPath);
  const configJson = JSON.stringify(cfg);
  const configHash = sha256Hex(new TextEncoder().encode(configJson));
  const state = StateStore.open(o.statePath);
  let front: Front | undefined;
  const runtime = new NodeRuntime({ threads: o.threads });
  try {
    if (!state.run()) state.initRun({ runId: randomUUID(), configJson, configHash });
    state.assertSameRun(configHash);
    const runId = state.run()!.runId;
    const setup = await prepareSimulation(cfg);
    const backbone = await packBackbone(setup.backboneDir);
    const strategy = createStrategy(cfg.strategy, { config: setup.config, initial: setup.initial, training: localTraining(cfg), rounds: cfg.rounds, seed: cfg.seed });
    let resume: DriverCheckpoint | undefined;
    const boundary = state.latestBoundary();
    if (boundary) {
      const b = decodeBoundary(boundary.snapshot, o.statePath);
      strategy.restore(b.strategy);
      resume = b.driver;
      o.log(`resuming run ${runId} after round ${resume.round} of ${cfg.rounds} (state ${o.statePath})`);
    }
    const records: RoundRecord[] = state.records().map((line) => JSON.parse(line) as RoundRecord);
    await mkdir(o.outDir, { recursive: true });
    await writeAtomic(join(o.outDir, "config.json"), `${JSON.stringify(cfg, null, 2)}\n`);
    await writeAtomic(join(o.outDir, "metrics.jsonl"), records.map((r) => `${JSON.stringify(r)}\n`).join(""));

    const stop = new AbortController();
    o.signal?.addEventListener("abort", () => stop.abort(), { once: true });
    const hub = new FederationHub({
      runId,
      runConfigJson: configJson,
      backbone,
      heartbeatSeconds: dep.heartbeatSeconds,
      partitions: cfg.clients.count,
      tokens,
      state,
      joinLimiter: new RateLimiter({ capacity: 20, refillPerSecond: 2 }),
      maxReplyBytes: 2 * 1024 * 1024 * 1024 - 1,
      log: o.log,
    });
    front = await listenFront({
      host: o.host,
      port: o.port,
      ...(o.tls ? { tls: o.tls } : {}),
      rpc: federationHandler(hub),
      ...(o.pages ? { pages: o.pages({ hub, cfg, setup }) } : {}),
    });
    const address = front.address;
    o.log(`listening on ${o.tls ? "https" : "http"}://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port} (run ${runId}, ${cfg.strategy.name}, ${cfg.rounds} rounds, waiting for ${dep.minClients} clients)`);
    o.onListening?.(address);

    const grid = new NetworkGrid({ runId, hub, state, minClients: dep.minClients, waitForClientsSeconds: dep.waitForClientsSeconds, defaultTimeoutSeconds: dep.roundTimeoutSeconds, log: o.log, signal: stop.signal });
    const resumedFrom = resume?.round ?? 0;
    if (resumedFrom < cfg.rounds) {
      await runRounds(strategy, grid, {
        ...runDriverOptions(cfg, setup, runtime),
        roundTimeoutSeconds: dep.roundTimeoutSeconds,
        minReplies: (n) => Math.max(1, Math.ceil(dep.minReplyFraction * n)),
        maxAttempts: dep.maxRoundAttempts,
        signal: stop.signal,
        ...(resume ? { resume } : {}),
        onRoundEnd: async (record, cp) => {
          // One transaction: the state after this round, its record, and the open round cleared.
          state.commitBoundary({ round: record.round, snapshot: encodeBoundary(strategy.snapshot(), cp), record: JSON.stringify(record) });
          records.push(record);
          hub.publishRound(JSON.stringify(record));
          await writeAtomic(join(o.outDir, "metrics.jsonl"), records.map((r) => `${JSON.stringify(r)}\n`).join(""));
          o.onRound?.(record);
        },
      }).catch((e) => {
        // Stopping while waiting for clients or in a round is not an error: the state keeps the last boundary.
        if (!stop.signal.aborted) throw e;
      });
    }
    if (stop.signal.aborted && records.length < cfg.rounds) {
      o.log(`stopped after round ${records.length}; the same command continues the run from the state file`);
      return { records, summary: {}, resumedFrom };
    }
    const summary = {
      ...summarize(strategy.name, records, setup.initial, strategy.summary(), 0),
      network: { measuredRpcBytes: { ...hub.measured }, note: "every RPC message of this server process, retries and control traffic included; per-round traffic is in metrics.jsonl" },
      runId,
    };
    await writeAtomic(join(o.outDir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    for (const [name, svg] of runPlots(records, { title: `${cfg.strategy.name}, ${cfg.clients.partition} (deployed)` })) await writeAtomic(join(o.outDir, name), svg);
    await saveCheckpoint(join(o.outDir, "model"), setup.config, strategy.globalModel(), { safl_run: { runId, strategy: cfg.strategy.name, rounds: cfg.rounds } });
    hub.finish(JSON.stringify({ runId, rounds: records.length, finalAccuracy: summary.finalAccuracy ?? null }));
    // Let connected clients hear that the run is over (their next PullTask answers RunFinished): wait
    // until every online session was told, or at most 3 s (or a heartbeat interval) for the rest.
    const lingerUntil = Date.now() + Math.min(3000, dep.heartbeatSeconds * 1000);
    while (hub.sessionsNotToldFinished() > 0 && Date.now() < lingerUntil) await new Promise((r) => setTimeout(r, 50));
    return { records, summary, resumedFrom };
  } finally {
    // Open client connections (long polls, event streams) are ended, not waited for.
    await front?.close();
    state.close();
    await runtime.release();
  }
}
