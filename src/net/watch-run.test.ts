/**
 * WatchRun (net/routes) against the in-process hub: the stream opens with the run state and the
 * client table, carries each round the server publishes as it is committed, and ends with the
 * client table and FINISHED when the run finishes; a stream opened after the end says FINISHED and
 * ends at once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RunState } from "./gen/safl/v1/federation_pb.js";
import { auth, type Fixture, joinRequest, startFixture } from "./hub-fixture.test.util.js";

describe("net/routes WatchRun", () => {
  let f: Fixture;
  before(async () => {
    f = await startFixture();
  });
  after(async () => {
    await f?.close();
  });

  it("streams the state, the clients, every published round, then FINISHED", async () => {
    const c = f.client("grpc");
    await c.join(joinRequest(), auth(f.tokens.bob));
    const stream = c.watchRun({}, auth(f.tokens.alice))[Symbol.asyncIterator]();
    const next = async () => {
      const r = await stream.next();
      assert.ok(!r.done, "the stream ended early");
      return r.value.event;
    };
    assert.deepEqual(await next(), { case: "state", value: RunState.RUNNING });
    const clients = await next();
    assert.equal(clients.case, "clients");
    assert.deepEqual(
      clients.case === "clients" ? clients.value.clients.map((x) => [x.clientId, x.online, x.deviceKind]) : [],
      [["bob", true, "node"]],
    );
    f.hub.publishRound(JSON.stringify({ round: 1, testAccuracy: 0.5 }));
    f.hub.publishRound(JSON.stringify({ round: 2, testAccuracy: 0.6 }));
    // Client tables may come in between (every 2 s); the rounds come in order.
    const rounds: unknown[] = [];
    while (rounds.length < 2) {
      const e = await next();
      if (e.case === "roundRecordJson") rounds.push(JSON.parse(e.value));
    }
    assert.deepEqual(rounds, [{ round: 1, testAccuracy: 0.5 }, { round: 2, testAccuracy: 0.6 }]);
    f.hub.finish(JSON.stringify({ rounds: 2 }));
    const tail: string[] = [];
    for (;;) {
      const r = await stream.next();
      if (r.done) break;
      tail.push(r.value.event.case === "state" ? `state ${RunState[r.value.event.value]}` : String(r.value.event.case));
    }
    assert.deepEqual(tail.slice(-2), ["clients", "state FINISHED"]);

    // Opened after the end: FINISHED and the clients, then the end of the stream.
    const after: string[] = [];
    for await (const e of c.watchRun({}, auth(f.tokens.carol))) after.push(e.event.case === "state" ? `state ${RunState[e.event.value]}` : String(e.event.case));
    assert.deepEqual(after, ["state FINISHED", "clients"]);
  });
});
