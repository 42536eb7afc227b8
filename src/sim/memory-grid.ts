/**
 * @module sim/memory-grid
 * The in-memory grid of a simulation: K virtual clients in this process, reached through the same
 * bytes-in/bytes-out interface a network transport implements. A client is materialized only while
 * it handles a request — its data subset is cut from the shared dataset by index and dropped after
 * — so memory grows with the number of clients sampled per round, not with K. Stored bases are
 * deduplicated: one copy per version, plus the set of clients that hold it.
 */
import type { ImageDataset } from "../data/dataset.js";
import { subset } from "../data/dataset.js";
import type { ClientEngine, ClientStorage } from "../fl/client.js";
import { type Grid, type GridReply, type GridRequest, missedReason, type SendOptions } from "../fl/grid.js";

/** A virtual client: an id and the indices of its examples in the shared datasets. */
export interface VirtualClient {
  readonly clientId: string;
  readonly train: readonly number[];
  /** Indices into the shared test set for client-side evaluation (optional). */
  readonly test?: readonly number[];
}

/** Bases held by virtual clients: one copy per version and who has it (version 0 is everyone's). */
export class SharedBaseStore {
  private readonly versions = new Map<number, ReadonlyMap<string, Float32Array>>();
  private readonly holders = new Map<number, Set<string>>();

  constructor(pretrained: ReadonlyMap<string, Float32Array>) {
    this.versions.set(0, pretrained);
  }

  /** The storage one client sees. */
  view(clientId: string): ClientStorage {
    return {
      base: (version) => (version === 0 || this.holders.get(version)?.has(clientId) ? this.versions.get(version) : undefined),
      storeBase: (version, tensors) => {
        if (!this.versions.has(version)) this.versions.set(version, new Map(tensors));
        let set = this.holders.get(version);
        if (!set) this.holders.set(version, (set = new Set()));
        set.add(clientId);
      },
    };
  }

  /** Number of clients holding a stored copy of each version ≥ 1. */
  holderCounts(): Record<number, number> {
    return Object.fromEntries([...this.holders].map(([v, s]) => [v, s.size]));
  }
}

export class InMemoryGrid implements Grid {
  private readonly byId: Map<string, VirtualClient>;
  private closed = false;

  constructor(
    private readonly engine: ClientEngine,
    private readonly clients: readonly VirtualClient[],
    private readonly data: { readonly train: ImageDataset; readonly test?: ImageDataset },
    private readonly bases: SharedBaseStore,
  ) {
    this.byId = new Map(clients.map((c) => [c.clientId, c]));
    if (this.byId.size !== clients.length) throw new Error("InMemoryGrid: duplicate client ids");
  }

  async clientIds(): Promise<readonly string[]> {
    return this.clients.map((c) => c.clientId);
  }

  /**
   * Runs the clients one after another (each uses every runtime thread). The deadline and the
   * signal are checked between clients: one client's local training is not interrupted.
   */
  async send(requests: readonly GridRequest[], opts?: SendOptions): Promise<GridReply[]> {
    const replies: GridReply[] = [];
    for (const req of requests) {
      const missed = this.closed ? { code: "unavailable" as const, message: "the grid was closed" } : missedReason(opts);
      if (missed) {
        replies.push({ clientId: req.clientId, failure: missed });
        continue;
      }
      const vc = this.byId.get(req.clientId);
      if (!vc) {
        replies.push({ clientId: req.clientId, failure: { code: "unavailable", message: `no client "${req.clientId}" on this grid` } });
        continue;
      }
      const ctx = {
        clientId: vc.clientId,
        train: subset(this.data.train, vc.train),
        ...(vc.test && this.data.test ? { test: subset(this.data.test, vc.test) } : {}),
        storage: this.bases.view(vc.clientId),
      };
      const { reply, computeSeconds } = await this.engine.handle(ctx, req.payload);
      replies.push({ clientId: req.clientId, payload: reply, computeSeconds });
    }
    return replies;
  }

  /** Refuses further requests; the engine and its runtime belong to the caller. */
  async close(): Promise<void> {
    this.closed = true;
  }
}
