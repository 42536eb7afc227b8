/**
 * @module fl/driver.test
 * The round loop against a scripted grid and a recording strategy (no model, no runtime): the
 * client list is read every round, the deadline and signal reach the grid, failures arrive coded in
 * the record and at the strategy, and an aborted run stops between rounds.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ParamStore } from "../nn/params.js";
import { runRounds, type DriverOptions } from "./driver.js";
import type { Grid, GridReply, GridRequest, SendOptions } from "./grid.js";
import type { RoundFailure } from "./records.js";
import { FrozenBase } from "./strategies/base.js";
import { type AcceptedReply, restoreStore, type Strategy, type StrategySnapshot, storeSnapshot, type TrainPlan } from "./strategy.js";
import { decodeMessage, encodeMessage } from "./wire.js";

const training = { optimizer: "sgd" as const, lr: 0.1, weightDecay: 0, localEpochs: 1, localSteps: 0, batch: 1 };

/** A one-tensor strategy that records what the driver tells it. */
class Recorder implements Strategy {
  readonly name = "recorder";
  readonly store = new ParamStore();
  readonly failed: { round: number; failures: readonly RoundFailure[] }[] = [];
  readonly aggregated: { round: number; clients: string[] }[] = [];
  constructor() {
    this.store.set("w", [1], Float32Array.of(0));
  }
  configureTrain(round: number, clients: readonly string[]): TrainPlan {
    return {
      messages: clients.map((c) => ({ kind: "broadcast", round, clientId: c, config: {}, tensors: [{ name: "w", shape: [1], data: this.store.get("w") }], packed: [], scores: [] })),
      expectation: { round, tensors: new Map([["w", [1]]]), packed: new Map(), scores: new Map() },
      info: { stage: "train" },
    };
  }
  aggregateTrain(round: number, replies: readonly AcceptedReply[]): void {
    this.aggregated.push({ round, clients: replies.map((r) => r.clientId) });
  }
  configureEvaluate() {
    return [];
  }
  globalModel(): ParamStore {
    return this.store;
  }
  summary() {
    return {};
  }
  clientsFailed(round: number, failures: readonly RoundFailure[]): void {
    this.failed.push({ round, failures });
  }
  snapshot(): StrategySnapshot {
    return storeSnapshot(this.store);
  }
  restore(snap: StrategySnapshot): void {
    restoreStore(this.store, snap, this.name);
  }
}

/** A grid whose population and answers are scripted per round. */
class ScriptedGrid implements Grid {
  round = 0;
  readonly seen: (SendOptions | undefined)[] = [];
  constructor(
    private readonly population: (round: number) => string[],
    private readonly answer: (round: number, req: GridRequest) => GridReply,
  ) {}
  async clientIds() {
    this.round++;
    return this.population(this.round);
  }
  async send(reqs: readonly GridRequest[], opts?: SendOptions) {
    this.seen.push(opts);
    return reqs.map((r) => this.answer(this.round, r));
  }
  async close() {}
}

const ok = (round: number, req: GridRequest): GridReply => {
  const m = decodeMessage(req.payload);
  return { clientId: req.clientId, payload: encodeMessage({ kind: "reply", round, clientId: req.clientId, sampleCount: 1, tensors: m.tensors, packed: [], scores: [] }) };
};

const opts = (over: Partial<DriverOptions> = {}): DriverOptions => ({ rounds: 3, clientsPerRound: 10, seed: 0, dtype: "float32", evalEvery: 0, clientEvalEvery: 0, training, ...over });

describe("runRounds over a changing network", () => {
  test("reads the client list every round and records who was sampled and accepted", async () => {
    const grid = new ScriptedGrid((r) => (r === 1 ? ["a", "b"] : r === 2 ? ["a", "b", "c"] : ["c"]), ok);
    const s = new Recorder();
    const records = await runRounds(s, grid, opts());
    assert.deepEqual(
      records.map((r) => r.clients.sampled),
      [["a", "b"], ["a", "b", "c"], ["c"]],
    );
    assert.deepEqual(
      records.map((r) => r.clients.accepted),
      [["a", "b"], ["a", "b", "c"], ["c"]],
    );
    assert.deepEqual(
      s.aggregated.map((a) => a.clients),
      [["a", "b"], ["a", "b", "c"], ["c"]],
    );
  });

  test("coded failures reach the record and the strategy; the round aggregates the rest", async () => {
    const grid = new ScriptedGrid(
      () => ["a", "b", "c"],
      (round, req) => (req.clientId === "b" ? { clientId: "b", failure: { code: "missing-base", message: "lost it" } } : ok(round, req)),
    );
    const s = new Recorder();
    const [r1] = await runRounds(s, grid, opts({ rounds: 1 }));
    assert.deepEqual(r1!.failures, [{ clientId: "b", code: "missing-base", reason: "lost it" }]);
    assert.deepEqual(r1!.clients.accepted, ["a", "c"]);
    assert.deepEqual(s.failed, [{ round: 1, failures: r1!.failures }]);
  });

  test("a reply the server refuses is coded 'rejected'", async () => {
    const grid = new ScriptedGrid(
      () => ["a"],
      (_round, req) => ({ clientId: req.clientId, payload: encodeMessage({ kind: "reply", round: 99, clientId: req.clientId, sampleCount: 1, tensors: [], packed: [], scores: [] }) }),
    );
    const [r1] = await runRounds(new Recorder(), grid, opts({ rounds: 1 }));
    assert.equal(r1!.failures[0]!.code, "rejected");
    assert.match(r1!.failures[0]!.reason, /round 99/);
  });

  test("the round timeout becomes a deadline on every send; the signal is passed through", async () => {
    const grid = new ScriptedGrid(() => ["a"], ok);
    const ac = new AbortController();
    const t = Date.now();
    await runRounds(new Recorder(), grid, opts({ rounds: 2, roundTimeoutSeconds: 30, signal: ac.signal }));
    assert.equal(grid.seen.length, 2);
    for (const o of grid.seen) {
      assert.ok(o?.deadlineMs !== undefined && o.deadlineMs >= t + 30_000 && o.deadlineMs <= Date.now() + 30_000);
      assert.equal(o.purpose, "train");
      assert.equal(o.signal, ac.signal);
    }
  });

  test("an aborted run stops between rounds and returns the records so far", async () => {
    const ac = new AbortController();
    const grid = new ScriptedGrid(
      () => ["a"],
      (round, req) => {
        if (round === 2) ac.abort();
        return ok(round, req);
      },
    );
    const records = await runRounds(new Recorder(), grid, opts({ rounds: 5, signal: ac.signal }));
    assert.equal(records.length, 2);
  });

  test("no clients in a round is an error naming the round", async () => {
    const grid = new ScriptedGrid((r) => (r === 1 ? ["a"] : []), ok);
    await assert.rejects(runRounds(new Recorder(), grid, opts({ rounds: 2 })), /round 2: the grid has no clients/);
  });
});

describe("FrozenBase", () => {
  test("a missing-base failure makes the base go to that client again, other failures do not", () => {
    const store = new ParamStore();
    store.set("vit.x", [2], Float32Array.of(1, 2));
    store.set("classifier.weight", [1], Float32Array.of(3));
    const base = new FrozenBase(1, store);
    assert.deepEqual(base.tensorsFor("a").map((t) => t.name), ["base:vit.x"]);
    base.received("a");
    base.received("b");
    assert.equal(base.tensorsFor("a").length, 0);
    base.clientsFailed([
      { clientId: "a", code: "missing-base", reason: "restarted" },
      { clientId: "b", code: "diverged", reason: "NaN" },
    ]);
    assert.equal(base.tensorsFor("a").length, 1, "a lost its base and gets it again");
    assert.equal(base.tensorsFor("b").length, 0, "b still holds it");
    assert.equal(base.downloads, 2);
  });

  test("version 0 (the pre-trained backbone) never travels", () => {
    const store = new ParamStore();
    store.set("vit.x", [1], Float32Array.of(1));
    const base = new FrozenBase(0, store);
    base.clientsFailed([{ clientId: "a", code: "missing-base", reason: "?" }]);
    assert.equal(base.tensorsFor("a").length, 0);
  });
});
