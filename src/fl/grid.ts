/**
 * @module fl/grid
 * How the driver reaches clients (Flower's `Grid`): deliver encoded requests, get encoded replies.
 * Only bytes cross this interface, so the driver never shares memory with a client and every byte it
 * counts is one a network transport would carry. sim/ implements it in memory and in a worker pool,
 * net/ over the network; one contract suite (fl/grid-contract.test.ts) runs against every implementation.
 *
 * Written for a network from the start:
 * - the client list is read every round (`clientIds()` is async: clients come and go);
 * - `send` takes a deadline and an abort signal; a request that has no reply by then comes back as a
 *   `deadline-exceeded` failure, so a round completes with the clients that answered;
 * - an unreachable or crashed client is a coded failure entry — never a rejected promise;
 * - `close()` releases what the grid holds (workers, sockets).
 */
import type { Failure } from "./failure.js";

export interface GridRequest {
  readonly clientId: string;
  readonly payload: Uint8Array;
}

/**
 * Bytes that crossed the network for one request, protocol framing included, when the grid is a
 * network (in memory, the payloads themselves are what would cross, and this is absent).
 */
export interface TransportBytes {
  readonly down: number;
  readonly up: number;
}

export type GridReply =
  | {
      readonly clientId: string;
      readonly payload: Uint8Array;
      /** Seconds the client spent computing (training or evaluating), when it can tell (simulation telemetry). */
      readonly computeSeconds?: number;
      readonly transport?: TransportBytes;
    }
  | { readonly clientId: string; readonly failure: Failure; readonly transport?: TransportBytes };

export interface SendOptions {
  /** Time (Date.now() milliseconds) by which replies must be in; later ones are `deadline-exceeded` failures. */
  readonly deadlineMs?: number;
  /** Aborting ends the exchange early: requests without a reply become `unavailable` failures. */
  readonly signal?: AbortSignal;
  /** What the requests ask for: a round's training (a server persists those replies) or a client-side evaluation. */
  readonly purpose?: "train" | "evaluate";
  /** 1 for a round's first try, 2… when a round is retried with a fresh sample. */
  readonly attempt?: number;
}

export interface Grid {
  /** The clients the grid can reach now, in a stable order (sampling is seeded over this order). */
  clientIds(): Promise<readonly string[]>;
  /** Delivers each request and resolves with one reply per request, in request order. Never rejects for a client's fault. */
  send(requests: readonly GridRequest[], opts?: SendOptions): Promise<GridReply[]>;
  close(): Promise<void>;
  /**
   * What one request/reply pair of these payload sizes costs on this grid's network, framing
   * included (network grids only): how the FedAvg reference is counted the same way as the run.
   */
  transportCost?(round: number, clientId: string, requestBytes: number, replyBytes: number): TransportBytes;
}

/** Why a request that got no reply got none: the abort signal, else the deadline, else undefined (still in time). */
export function missedReason(opts: SendOptions | undefined, nowMs = Date.now()): Failure | undefined {
  if (opts?.signal?.aborted) return { code: "unavailable", message: "the exchange was aborted before this client answered" };
  if (opts?.deadlineMs !== undefined && nowMs >= opts.deadlineMs) return { code: "deadline-exceeded", message: "no reply by the round's deadline" };
  return undefined;
}
