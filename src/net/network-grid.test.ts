/**
 * @module net/network-grid.test
 * The transport contract (fl/grid-contract.test) run against the network grid: a hub and its
 * Connect routes on loopback HTTP/2, four in-process `runClient` identities playing partitions 0-3
 * over the real protocol, and FedLoRA broadcasts of the run's config as the requests. The same
 * suite passes for the in-memory and worker-pool grids (sim/grid-contract.test.ts).
 */
import { mkdtemp, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { gridContract } from "../fl/grid-contract.test.js";
import { createStrategy } from "../fl/strategies/index.js";
import { encodeMessage } from "../fl/wire.js";
import { parseRunConfig } from "../sim/config.js";
import { localTraining, prepareSimulation } from "../sim/simulate.js";
import { packBackbone } from "./backbone.js";
import { runClient } from "./client.js";
import { FederationHub } from "./hub.js";
import { NetworkGrid } from "./network-grid.js";
import { MAX_MESSAGE_BYTES } from "./protocol.js";
import { federationRoutes, kRemoteAddress } from "./routes.js";
import { StateStore } from "./state.js";
import { createToken, RateLimiter, TokenVerifier } from "./tokens.js";

const cfg = parseRunConfig({
  rounds: 2,
  data: { dataset: "mnist", classes: "5-9", trainLimit: 120 },
  clients: { count: 4, perRound: 4 },
  strategy: { name: "fedlora", adapter: { rank: 2 } },
  training: { localSteps: 1, batch: 8 },
  execution: { workers: 0, threads: 1 },
});

gridContract("NetworkGrid (Connect over loopback HTTP/2, in-process clients)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "safl-netgrid-"));
  const setup = await prepareSimulation(cfg);
  const backbone = await packBackbone(setup.backboneDir);
  const tokensFile = join(dir, "tokens.json");
  const tokens = await Promise.all([0, 1, 2, 3].map((i) => createToken(tokensFile, `n${i}`)));
  const state = StateStore.open(join(dir, "state.db"));
  state.initRun({ runId: "contract", configJson: JSON.stringify(cfg), configHash: "x" });
  const hub = new FederationHub({
    runId: "contract",
    runConfigJson: JSON.stringify(cfg),
    backbone,
    heartbeatSeconds: 2,
    partitions: cfg.clients.count,
    tokens: TokenVerifier.load(tokensFile),
    state,
    joinLimiter: new RateLimiter({ capacity: 100, refillPerSecond: 100 }),
    maxReplyBytes: 1 << 30,
    log: () => {},
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer(
    connectNodeAdapter({
      routes: federationRoutes(hub),
      readMaxBytes: MAX_MESSAGE_BYTES,
      writeMaxBytes: MAX_MESSAGE_BYTES,
      contextValues: (req) => createContextValues().set(kRemoteAddress, req.socket?.remoteAddress ?? "unknown"),
    }),
  );
  server.on("session", (s) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const stop = new AbortController();
  const clients = runClient({
    server: `http://127.0.0.1:${port}`,
    insecure: true,
    identities: tokens.map((token, partition) => ({ token, partition })),
    dataset: "mnist",
    cacheDir: join(dir, "cache"),
    threads: 1,
    log: () => {},
    out: () => {},
    signal: stop.signal,
  });
  const grid = new NetworkGrid({ runId: "contract", hub, state, minClients: 4, waitForClientsSeconds: 60, defaultTimeoutSeconds: 60, log: () => {} });
  await grid.clientIds();
  const strategy = createStrategy(cfg.strategy, { config: setup.config, initial: setup.initial, training: localTraining(cfg), rounds: cfg.rounds, seed: cfg.seed });
  return {
    grid,
    clientIds: setup.clients.map((c) => c.clientId),
    trainRequest: (clientId: string, round: number) => encodeMessage(strategy.configureTrain(round, [clientId]).messages[0]!),
    dispose: async () => {
      hub.finish("{}");
      stop.abort();
      await clients;
      for (const s of sessions) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      state.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
