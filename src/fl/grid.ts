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

export type GridReply =
  | {
      readonly clientId: string;
      readonly payload: Uint8Array;
      /** Seconds the client spent computing (training or evaluating), when it can tell (simulation telemetry). */
      readonly computeSeconds?: number;
    }
  | { readonly clientId: string; readonly failure: Failure };

export interface SendOptions {
  /** Time (Date.now() milliseconds) by which replies must be in; later ones are `deadline-exceeded` failures. */
  readonly deadlineMs?: number;
  /** Aborting ends the exchange early: requests without a reply become `unavailable` failures. */
  readonly signal?: AbortSignal;
}

export interface Grid {
  /** The clients the grid can reach now, in a stable order (sampling is seeded over this order). */
  clientIds(): Promise<readonly string[]>;
  /** Delivers each request and resolves with one reply per request, in request order. Never rejects for a client's fault. */
  send(requests: readonly GridRequest[], opts?: SendOptions): Promise<GridReply[]>;
  close(): Promise<void>;
}

/** Why a request that got no reply got none: the abort signal, else the deadline, else undefined (still in time). */
export function missedReason(opts: SendOptions | undefined, nowMs = Date.now()): Failure | undefined {
  if (opts?.signal?.aborted) return { code: "unavailable", message: "the exchange was aborted before this client answered" };
  if (opts?.deadlineMs !== undefined && nowMs >= opts.deadlineMs) return { code: "deadline-exceeded", message: "no reply by the round's deadline" };
  return undefined;
}
