/**
 * @module sim/grid-contract.test
 * The transport contract (fl/grid-contract.test) run against the simulation's two grids: the
 * in-memory grid (clients one after another in this process) and the worker-pool grid (clients in
 * worker threads, bytes posted across). Both are built from one small run config on the embedded
 * MNIST and the shipped backbone, with FedLoRA's round-1 broadcasts as the valid requests.
 */
import { gridContract } from "../fl/grid-contract.test.js";
import { createStrategy } from "../fl/strategies/index.js";
import { encodeMessage } from "../fl/wire.js";
import { NodeRuntime } from "../runtime/node.js";
import { parseRunConfig } from "./config.js";
import { localGrid, localTraining, prepareSimulation } from "./simulate.js";
import { WorkerPoolGrid } from "./worker-grid.js";

const cfg = parseRunConfig({
  rounds: 2,
  data: { dataset: "mnist", classes: "5-9", trainLimit: 120 },
  clients: { count: 4, perRound: 4 },
  strategy: { name: "fedlora", adapter: { rank: 2 } },
  training: { localSteps: 1, batch: 8 },
  execution: { workers: 2, threads: 1 },
});

async function fixture() {
  const setup = await prepareSimulation(cfg);
  const strategy = createStrategy(cfg.strategy, { config: setup.config, initial: setup.initial, training: localTraining(cfg), rounds: cfg.rounds, seed: cfg.seed });
  const ids = setup.clients.map((c) => c.clientId);
  const trainRequest = (clientId: string, round: number) => encodeMessage(strategy.configureTrain(round, [clientId]).messages[0]!);
  return { setup, ids, trainRequest };
}

gridContract("InMemoryGrid", async () => {
  const { setup, ids, trainRequest } = await fixture();
  const runtime = new NodeRuntime({ threads: 1 });
  return { grid: localGrid(setup, runtime, cfg.wire.dtype), clientIds: ids, trainRequest, dispose: () => runtime.release() };
});

gridContract("WorkerPoolGrid", async () => {
  const { ids, trainRequest } = await fixture();
  return { grid: await WorkerPoolGrid.start(cfg, ids, cfg.execution.workers), clientIds: ids, trainRequest };
});
