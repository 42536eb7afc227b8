/**
 * @module sim/worker-entry
 * The body of one pool worker (sim/worker-grid): rebuilds the simulation's clients from the run
 * config, then answers requests — bytes in, bytes out — one at a time with a single-threaded
 * runtime.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { GridRequest } from "../fl/grid.js";
import { NodeRuntime } from "../runtime/node.js";
import type { RunConfig } from "./config.js";
import { localGrid, prepareSimulation } from "./simulate.js";

const port = parentPort;
if (!port) throw new Error("sim/worker-entry must run in a worker thread");

try {
  const cfg = (workerData as { cfg: RunConfig }).cfg;
  const setup = await prepareSimulation(cfg);
  const grid = localGrid(setup, new NodeRuntime({ threads: 1 }), cfg.wire.dtype);
  let queue = Promise.resolve();
  port.on("message", (m: GridRequest & { id: number }) => {
    queue = queue.then(async () => {
      const [reply] = await grid.send([{ clientId: m.clientId, payload: m.payload }]);
      const transfer = reply && "payload" in reply ? [reply.payload.buffer as ArrayBuffer] : [];
      port.postMessage({ id: m.id, reply }, transfer);
    });
  });
  port.postMessage({ ready: true });
} catch (e) {
  port.postMessage({ error: e instanceof Error ? e.message : String(e) });
}
