/**
 * The dashboard's state model (sim/run-feed): late subscribers get a snapshot with everything so
 * far, then only changes; rounds update the client counts (retried attempts included) and the run
 * status; unchanged client samples push nothing; a throwing subscriber is dropped without hurting
 * the others; and the observed grid marks asked clients as training until their replies are in.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Grid, GridReply, GridRequest } from "../fl/grid.js";
import type { RoundFailure, RoundRecord } from "../fl/records.js";
import { type FeedEvent, observedGrid, RunFeed, type RunInfo, roundPoint } from "./run-feed.js";

const info: RunInfo = { mode: "deployment", strategy: "sa-fedlora", rounds: 3, clients: 3, perRound: 2, task: "mnist 5-9, iid" };
const traffic = (bytes: number) => ({ params: bytes / 4, bytes });

function record(round: number, sampled: string[], accepted: string[], failures: RoundFailure[] = [], extra: Partial<RoundRecord> = {}): RoundRecord {
  return {
    round,
    stage: "annealing",
    sampled: sampled.length,
    accepted: accepted.length,
    failures,
    clients: { sampled, accepted },
    testAccuracy: 0.5 + round / 10,
    down: traffic(100),
    up: traffic(40),
    evalTraffic: traffic(0),
    cumulativeDown: traffic(100 * round),
    cumulativeUp: traffic(40 * round),
    fedavgCumulative: traffic(1000 * round),
    seconds: 1,
    timing: { clientTrain: 1, evaluate: 0, codec: 0, aggregate: 0, other: 0 },
    ...extra,
  };
}

describe("sim/run-feed", () => {
  it("gives a late subscriber a snapshot of everything so far, then only changes", () => {
    let clock = 1000;
    const feed = new RunFeed(info, () => clock);
    assert.equal(feed.snapshot().status, "waiting");
    feed.roundStarted(1);
    feed.addRound(record(1, ["a", "b"], ["a", "b"]));
    clock = 2000;
    const got: FeedEvent[] = [];
    const unsubscribe = feed.subscribe((e) => got.push(e));
    assert.equal(got.length, 1);
    const first = got[0]!;
    assert.equal(first.type, "snapshot");
    if (first.type !== "snapshot") return;
    assert.equal(first.snapshot.rounds.length, 1);
    assert.equal(first.snapshot.rounds[0]!.round, 1);
    assert.equal(first.snapshot.nowMs, 2000);
    assert.deepEqual(
      first.snapshot.clients.map((c) => [c.id, c.total.replied]),
      [
        ["a", 1],
        ["b", 1],
      ],
    );
    feed.roundStarted(2);
    assert.deepEqual(got[1], { type: "status", status: "running", activeRound: 2 });
    feed.roundStarted(2);
    assert.equal(got.length, 2, "the same round again is no change");
    unsubscribe();
    feed.addRound(record(2, ["a", "c"], ["a"]));
    assert.equal(got.length, 2, "nothing after unsubscribing");
    assert.equal(feed.subscriberCount, 0);
  });

  it("counts replies and failures per client for the latest round and the run, retried attempts included", () => {
    const feed = new RunFeed(info);
    feed.addRound(record(1, ["a", "b"], ["a", "b"]));
    feed.addRound(
      record(2, ["a", "c"], ["a"], [{ clientId: "c", code: "diverged", reason: "nan" }], {
        retriedAttempts: [{ attempt: 1, sampled: ["b", "c"], failures: [{ clientId: "b", code: "deadline-exceeded", reason: "late" }, { clientId: "c", code: "unavailable", reason: "gone" }] }],
      }),
    );
    const rows = new Map(feed.snapshot().clients.map((c) => [c.id, c]));
    assert.deepEqual(rows.get("a")!.last, { sampled: 1, replied: 1, failed: 0 });
    assert.deepEqual(rows.get("a")!.total, { sampled: 2, replied: 2, failed: 0 });
    assert.deepEqual(rows.get("b")!.last, { sampled: 1, replied: 0, failed: 1 });
    assert.deepEqual(rows.get("b")!.total, { sampled: 2, replied: 1, failed: 1 });
    assert.equal(rows.get("b")!.lastFailure, "deadline-exceeded");
    assert.deepEqual(rows.get("c")!.last, { sampled: 1, replied: 0, failed: 2 });
    assert.equal(rows.get("c")!.lastFailure, "diverged", "the final attempt's code wins");
    assert.equal(feed.snapshot().rounds[1]!.failed, 3);
    // A round that does not sample b resets b's latest counts but not its totals.
    feed.addRound(record(3, ["a"], ["a"]));
    const b = feed.snapshot().clients.find((c) => c.id === "b")!;
    assert.deepEqual(b.last, { sampled: 0, replied: 0, failed: 0 });
    assert.equal(b.total.sampled, 2);
  });

  it("ignores a round it already holds and finishes after the last planned round", () => {
    const feed = new RunFeed(info);
    const got: FeedEvent[] = [];
    feed.subscribe((e) => got.push(e));
    feed.addRound(record(1, ["a"], ["a"]));
    feed.addRound(record(1, ["a"], ["a"]));
    assert.equal(feed.snapshot().rounds.length, 1);
    assert.equal(feed.snapshot().clients[0]!.total.replied, 1, "a replayed record is not counted twice");
    feed.addRound(record(3, ["a"], ["a"]));
    feed.addRound(record(2, ["a"], ["a"]));
    assert.deepEqual(
      feed.snapshot().rounds.map((p) => p.round),
      [1, 2, 3],
      "kept in round order",
    );
    assert.equal(feed.snapshot().status, "finished");
    assert.ok(got.some((e) => e.type === "status" && e.status === "finished"));
    feed.roundStarted(4);
    assert.equal(feed.snapshot().status, "finished", "a finished run stays finished");
  });

  it("pushes the client table only when it changed, and keeps clients that went away as offline", () => {
    const feed = new RunFeed(info);
    const got: FeedEvent[] = [];
    feed.subscribe((e) => got.push(e));
    const a = { id: "a", online: true, state: "training" as const, device: "node", threads: 2, imagesPerSecond: 120, lastSeenMs: 5 };
    feed.setClients([a]);
    feed.setClients([a]);
    assert.equal(got.filter((e) => e.type === "clients").length, 1);
    // Between tasks a client reports no rate; its last one stands.
    feed.setClients([{ ...a, state: "idle", imagesPerSecond: 0 }]);
    assert.equal(feed.snapshot().clients[0]!.imagesPerSecond, 120);
    feed.setClients([]);
    const last = got[got.length - 1]!;
    assert.equal(last.type, "clients");
    if (last.type !== "clients") return;
    assert.deepEqual(
      last.clients.map((c) => [c.id, c.online, c.state, c.device]),
      [["a", false, "idle", "node"]],
    );
  });

  it("drops a subscriber that throws; the others still get every event", () => {
    const feed = new RunFeed(info);
    let calls = 0;
    feed.subscribe(() => {
      calls++;
      if (calls > 1) throw new Error("socket gone");
    });
    const got: FeedEvent[] = [];
    feed.subscribe((e) => got.push(e));
    feed.roundStarted(1);
    feed.roundStarted(2);
    assert.equal(calls, 2);
    assert.equal(feed.subscriberCount, 1);
    assert.equal(got.length, 3);
  });

  it("records stopped and failed runs with their reason", () => {
    const feed = new RunFeed({ ...info, mode: "simulation" });
    assert.equal(feed.snapshot().status, "waiting");
    feed.end("failed", "out of memory");
    assert.equal(feed.snapshot().status, "failed");
    assert.equal(feed.snapshot().message, "out of memory");
  });

  it("roundPoint keeps what the dashboard draws and drops the client lists", () => {
    const p = roundPoint(record(2, ["a", "b"], ["a"], [], { phase: "cooling", budget: 12, ranks: { "layer.0.attention.attention.query": 2 } }));
    assert.equal(p.cumulativeDownBytes, 200);
    assert.equal(p.fedavgCumulativeBytes, 2000);
    assert.equal(p.phase, "cooling");
    assert.deepEqual(p.ranks, { "layer.0.attention.attention.query": 2 });
    assert.ok(!("clients" in p));
  });

  it("observedGrid shows asked clients training until their replies are in, then their images/s", async () => {
    const feed = new RunFeed({ ...info, mode: "simulation" });
    let during: string[] = [];
    const inner: Grid = {
      clientIds: async () => ["a", "b"],
      close: async () => {},
      send: async (requests: readonly GridRequest[]): Promise<GridReply[]> => {
        during = feed.snapshot().clients.map((c) => `${c.id}:${c.state}`);
        return requests.map((r) => (r.clientId === "a" ? { clientId: "a", payload: new Uint8Array(1), computeSeconds: 0.5 } : { clientId: r.clientId, failure: { code: "diverged", message: "nan" } }));
      },
    };
    feed.roundStarted(3);
    const grid = observedGrid(inner, feed, () => 64, () => 7);
    const replies = await grid.send([
      { clientId: "a", payload: new Uint8Array(1) },
      { clientId: "b", payload: new Uint8Array(1) },
    ], { purpose: "train" });
    assert.equal(replies.length, 2);
    assert.deepEqual(during, ["a:training", "b:training"]);
    const rows = new Map(feed.snapshot().clients.map((c) => [c.id, c]));
    assert.equal(rows.get("a")!.state, "idle");
    assert.equal(rows.get("a")!.imagesPerSecond, 128);
    assert.equal(rows.get("a")!.lastSeenMs, 7);
    assert.equal(rows.get("a")!.round, 3);
    assert.equal(rows.get("b")!.imagesPerSecond, 0);
    assert.deepEqual(await grid.clientIds(), ["a", "b"]);
  });
});
