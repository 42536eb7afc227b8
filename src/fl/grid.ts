/**
 * @module fl/grid
 * How the driver reaches clients (Flower's `Grid`): deliver encoded requests, get encoded replies.
 * Only bytes cross this interface, so the driver never shares memory with a client and every byte it
 * counts is one a network transport would carry. sim/ implements it in memory; a network transport
 * implements the same two methods. An unreachable or crashed client is an `error` entry in the
 * result — never a rejected promise — so a round completes with the clients that answered.
 */

export interface GridRequest {
  readonly clientId: string;
  readonly payload: Uint8Array;
}

export type GridReply =
  | {
      readonly clientId: string;
      readonly payload: Uint8Array;
      /** Seconds the client spent computing (training or evaluating), when it can tell. */
      readonly computeSeconds?: number;
    }
  | { readonly clientId: string; readonly error: string };

export interface Grid {
  /** Every client the grid can reach, in a fixed order. */
  clientIds(): readonly string[];
  /** Delivers each request and resolves with one reply per request, in request order. */
  send(requests: readonly GridRequest[]): Promise<GridReply[]>;
}
