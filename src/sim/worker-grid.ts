/**
 * @module sim/worker-grid
 * A grid whose virtual clients run in a pool of worker threads, each with its own onnxruntime
 * session at one intra-op thread — the alternative to running clients one after another with every
 * thread (docs/benchmarks.md compares the two). Each virtual client lives in one worker (client
 * index mod pool size), so a base it stored is there next time, as it would be on a device. Only
 * bytes cross to and from a worker, like a network.
 */
import { Worker } from "node:worker_threads";
import { type Grid, type GridReply, type GridRequest, missedReason, type SendOptions } from "../fl/grid.js";
import type { RunConfig } from "./config.js";
import type { SimulationSetup } from "./simulate.js";

interface Pending {
  readonly resolve: (r: GridReply) => void;
}

class PoolWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private dead: string | undefined;
  readonly ready: Promise<void>;

  constructor(cfg: RunConfig) {
    this.worker = new Worker(new URL("./worker-entry.js", import.meta.url), { workerData: { cfg } });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once("message", (m: { ready?: boolean; error?: string }) => (m.ready ? resolve() : reject(new Error(m.error ?? "worker failed to start"))));
      this.worker.once("error", reject);
    });
    this.ready
      .then(() => {
        this.worker.on("message", (m: { id: number; reply: GridReply }) => {
          this.pending.get(m.id)?.resolve(m.reply);
          this.pending.delete(m.id);
        });
      })
      .catch(() => {});
    this.worker.on("error", (e) => this.fail(`worker crashed: ${e.message}`));
    this.worker.on("exit", (code) => this.fail(`worker exited with code ${code}`));
  }

  private fail(reason: string): void {
    this.dead ??= reason;
    for (const [id, p] of this.pending) p.resolve({ clientId: `#${id}`, failure: { code: "unavailable", message: reason } });
    this.pending.clear();
  }

  run(req: GridRequest): Promise<GridReply> {
    if (this.dead) return Promise.resolve({ clientId: req.clientId, failure: { code: "unavailable", message: this.dead } });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve: (r) => resolve("failure" in r ? { clientId: req.clientId, failure: r.failure } : r) });
      this.worker.postMessage({ id, clientId: req.clientId, payload: req.payload });
    });
  }

  async close(): Promise<void> {
    this.dead ??= "the pool was closed";
    await this.worker.terminate();
  }
}

export class WorkerPoolGrid implements Grid {
  private readonly index: Map<string, number>;

  private constructor(
    private readonly ids: readonly string[],
    private readonly workers: readonly PoolWorker[],
  ) {
    this.index = new Map(ids.map((id, i) => [id, i]));
  }

  /** Starts `size` workers; each loads the task and partition from the same config (deterministic). */
  static async start(cfg: RunConfig, ids: readonly string[], size: number): Promise<WorkerPoolGrid> {
    const workers = Array.from({ length: size }, () => new PoolWorker(cfg));
    try {
      await Promise.all(workers.map((w) => w.ready));
    } catch (e) {
      await Promise.all(workers.map((w) => w.close()));
      throw e;
    }
    return new WorkerPoolGrid(ids, workers);
  }

  async clientIds(): Promise<readonly string[]> {
    return this.ids;
  }

  /** The deadline and the signal are checked before each client starts; a running client finishes. */
  async send(requests: readonly GridRequest[], opts?: SendOptions): Promise<GridReply[]> {
    // Each worker handles its clients one after another; workers run in parallel.
    const queues = this.workers.map(() => [] as number[]);
    requests.forEach((r, i) => {
      const k = this.index.get(r.clientId);
      queues[(k ?? i) % this.workers.length]!.push(i);
    });
    const replies: GridReply[] = new Array(requests.length);
    await Promise.all(
      queues.map(async (q, w) => {
        for (const i of q) {
          const req = requests[i]!;
          const missed = missedReason(opts);
          if (missed) replies[i] = { clientId: req.clientId, failure: missed };
          else if (!this.index.has(req.clientId)) replies[i] = { clientId: req.clientId, failure: { code: "unavailable", message: `no client "${req.clientId}" on this grid` } };
          else replies[i] = await this.workers[w]!.run(req);
        }
      }),
    );
    return replies;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

/** The `makeGrid` hook of `simulate` for `execution.workers > 0`. */
export function workerGridFactory(cfg: RunConfig): (setup: SimulationSetup) => Promise<WorkerPoolGrid> {
  return (setup) =>
    WorkerPoolGrid.start(
      cfg,
      setup.clients.map((c) => c.clientId),
      cfg.execution.workers,
    );
}
