/**
 * @module fl/grid-contract.test
 * The transport contract every `Grid` keeps, as a node:test suite a grid's own test file runs with a
 * factory: sim/ runs it for the in-memory and worker-pool grids, net/ for the network grid. A grid
 * that passes can carry a run without the driver knowing which one it is:
 * - `clientIds()` resolves to the clients it was given, in a stable order;
 * - `send` resolves with one reply per request, in request order, each naming its client; the
 *   replies to a valid broadcast decode as replies of that round, and the same request twice gives
 *   the same bytes (clients are deterministic);
 * - nothing a peer or a caller gets wrong rejects: an unknown client is `unavailable`, garbage bytes
 *   get a `bad-message` failure reply from the client, a past deadline is `deadline-exceeded`, an
 *   aborted signal `unavailable`, and a closed grid answers `unavailable`;
 * - `close()` resolves (twice, too).
 *
 * Named .test.ts so it stays with the tests (node:test may import it; it registers nothing by itself).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Grid, GridReply, GridRequest } from "./grid.js";
import { decodeMessage } from "./wire.js";

export interface GridContractSetup {
  readonly grid: Grid;
  /** The client ids the grid was built with. */
  readonly clientIds: readonly string[];
  /** A valid encoded round-`round` training broadcast for `clientId`. */
  readonly trainRequest: (clientId: string, round: number) => Uint8Array;
  readonly dispose?: () => Promise<void>;
}

const failureOf = (r: GridReply) => ("failure" in r ? r.failure : undefined);

export function gridContract(name: string, make: () => Promise<GridContractSetup>): void {
  describe(`Grid contract: ${name}`, () => {
    let s: GridContractSetup;
    // Rounds only go forward, as the driver's do (a network grid persists each training round).
    let round = 0;
    const next = () => ++round;
    before(async () => {
      s = await make();
    });
    after(async () => {
      await s.grid.close();
      await s.dispose?.();
    });

    test("clientIds() resolves to the grid's clients, in a stable order", async () => {
      const a = await s.grid.clientIds();
      assert.deepEqual([...a].sort(), [...s.clientIds].sort());
      assert.deepEqual(await s.grid.clientIds(), a);
    });

    test("one reply per request, in request order, each a reply of the round for its client", async () => {
      const ids = [...s.clientIds].slice(0, 3).reverse();
      const round1 = next();
      const reqs: GridRequest[] = ids.map((clientId) => ({ clientId, payload: s.trainRequest(clientId, round1) }));
      const replies = await s.grid.send(reqs);
      assert.equal(replies.length, reqs.length);
      replies.forEach((r, i) => {
        assert.equal(r.clientId, ids[i]);
        assert.ok("payload" in r, `client ${ids[i]} failed: ${JSON.stringify(failureOf(r))}`);
        const msg = decodeMessage(r.payload);
        assert.equal(msg.kind, "reply");
        assert.equal(msg.round, round1);
        assert.equal(msg.clientId, ids[i]);
        assert.equal(msg.failure, undefined);
        assert.ok((msg.sampleCount ?? 0) > 0);
      });
    });

    test("the same request twice gives the same reply bytes", async () => {
      const id = s.clientIds[0]!;
      const req = { clientId: id, payload: s.trainRequest(id, next()) };
      const [a] = await s.grid.send([req]);
      const [b] = await s.grid.send([req]);
      assert.ok(a && b && "payload" in a && "payload" in b);
      assert.deepEqual(Buffer.from(a.payload), Buffer.from(b.payload));
    });

    test("an unknown client is an 'unavailable' failure, and the others still answer", async () => {
      const known = s.clientIds[0]!;
      const r = next();
      const replies = await s.grid.send([
        { clientId: "no-such-client", payload: s.trainRequest(known, r) },
        { clientId: known, payload: s.trainRequest(known, r) },
      ]);
      assert.equal(failureOf(replies[0]!)?.code, "unavailable");
      assert.ok("payload" in replies[1]!);
    });

    test("garbage bytes reach the client, which answers with a 'bad-message' failure reply", async () => {
      const id = s.clientIds[0]!;
      const [r] = await s.grid.send([{ clientId: id, payload: Uint8Array.of(1, 2, 3, 4, 5) }]);
      assert.ok(r && "payload" in r, "a client answers garbage with a failure reply, not a transport failure");
      assert.equal(decodeMessage(r.payload).failure?.code, "bad-message");
    });

    test("a deadline in the past: every request is 'deadline-exceeded', at once", async () => {
      const t = Date.now();
      const replies = await s.grid.send(
        s.clientIds.slice(0, 2).map((clientId) => ({ clientId, payload: s.trainRequest(clientId, next()) })),
        { deadlineMs: Date.now() - 1 },
      );
      assert.deepEqual(
        replies.map((r) => failureOf(r)?.code),
        ["deadline-exceeded", "deadline-exceeded"],
      );
      assert.ok(Date.now() - t < 1000, "no client trained");
    });

    test("an aborted signal: requests are 'unavailable'", async () => {
      const ac = new AbortController();
      ac.abort();
      const replies = await s.grid.send([{ clientId: s.clientIds[0]!, payload: s.trainRequest(s.clientIds[0]!, next()) }], { signal: ac.signal });
      assert.equal(failureOf(replies[0]!)?.code, "unavailable");
    });

    test("after close(): send answers 'unavailable' instead of throwing; close() again resolves", async () => {
      await s.grid.close();
      const replies = await s.grid.send([{ clientId: s.clientIds[0]!, payload: s.trainRequest(s.clientIds[0]!, next()) }]);
      assert.equal(failureOf(replies[0]!)?.code, "unavailable");
      await s.grid.close();
    });
  });
}
