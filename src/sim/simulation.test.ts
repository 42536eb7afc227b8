/**
 * The federated core end to end on a tiny ViT and synthetic data (no dataset download): FedAvg with
 * one client and one SGD step against a centralized step, FedProx with μ = 0 against FedAvg,
 * SA-FedLoRA's per-round budgets and parameter counts against independent formulas (under both
 * handoffs, the base download counted only for new-base), snapshot/resume, and malformed
 * replies dropped while the round completes with the rest.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ImageDataset, makeDataset } from "../data/dataset.js";
import { ClientEngine } from "../fl/client.js";
import { runRounds, sampleClients } from "../fl/driver.js";
import type { Grid, GridReply } from "../fl/grid.js";
import type { RoundRecord } from "../fl/records.js";
import { type StrategySpec, createStrategy, strategySpecSchema } from "../fl/strategies/index.js";
import type { LocalTraining, Strategy } from "../fl/strategy.js";
import { decodeMessage, encodeMessage } from "../fl/wire.js";
import { type VitConfig, parseVitConfig } from "../nn/config.js";
import { Sgd } from "../nn/optim.js";
import { ParamStore } from "../nn/params.js";
import { TrainStep } from "../nn/train.js";
import { buildVit } from "../nn/vit.js";
import { NodeRuntime } from "../runtime/node.js";
import { Rng } from "../util/rng.js";
import { InMemoryGrid, SharedBaseStore, type VirtualClient } from "./memory-grid.js";
import { trainSubset } from "./simulate.js";

const runtime = new NodeRuntime({ threads: 1 });
const HIDDEN = 8;
const INTER = 12;
const CLASSES = 3;
const config: VitConfig = parseVitConfig({
  hidden_size: HIDDEN,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: INTER,
  image_size: 4,
  patch_size: 2,
  num_channels: 1,
  num_labels: CLASSES,
});

/** Images whose mean depends on the class, so the task is learnable. */
function syntheticData(n: number, seed: number): ImageDataset {
  const rng = new Rng(seed);
  const labels = Int32Array.from({ length: n }, (_, i) => i % CLASSES);
  const images = new Float32Array(n * 16);
  for (let i = 0; i < n; i++) for (let j = 0; j < 16; j++) images[i * 16 + j] = rng.normal() + (j % CLASSES === labels[i] ? 1 : 0);
  return makeDataset({ name: "synthetic", images, labels, channels: 1, height: 4, width: 4, classes: [0, 1, 2] });
}

const initial = ParamStore.init(buildVit(config).registry.specs.values(), new Rng(7));
const backboneMap = () => new Map(initial.names().filter((n) => !n.startsWith("classifier.")).map((n) => [n, initial.get(n)]));

function makeGrid(data: ImageDataset, clients: number): InMemoryGrid {
  const per = Math.floor(data.count / clients);
  const vcs: VirtualClient[] = Array.from({ length: clients }, (_, k) => ({ clientId: `c${k}`, train: Array.from({ length: per }, (_, i) => k * per + i) }));
  return new InMemoryGrid(new ClientEngine(runtime, config), vcs, { train: data }, new SharedBaseStore(backboneMap()));
}

const adamw = (lr: number, batch = 4): LocalTraining => ({ optimizer: "adamw", lr, weightDecay: 0, localEpochs: 1, localSteps: 0, batch });

function strategy(raw: unknown, rounds: number, training: LocalTraining, seed = 0): Strategy {
  const spec = strategySpecSchema.parse(raw) as StrategySpec;
  return createStrategy(spec, { config, initial, training: { full: training, adapter: () => training }, rounds, seed });
}

const driverOpts = (rounds: number, perRound: number, training: LocalTraining) => ({ rounds, clientsPerRound: perRound, seed: 0, dtype: "float32" as const, evalEvery: 1, clientEvalEvery: 0, training });

function maxAbsDiff(a: ParamStore, b: ParamStore, names: readonly string[]): number {
  let m = 0;
  for (const n of names) {
    const x = a.get(n);
    const y = b.get(n);
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}

describe("federated core on a tiny ViT", () => {
  test("FedAvg with one client, full participation and one SGD step equals centralized SGD on the same batch", async () => {
    const data = syntheticData(8, 1);
    const training: LocalTraining = { optimizer: "sgd", lr: 0.5, weightDecay: 0, localEpochs: 0, localSteps: 1, batch: 8 };
    const fedavg = strategy({ name: "fedavg" }, 1, training);
    await runRounds(fedavg, makeGrid(data, 1), driverOpts(1, 1, training));
    // Centralized: the same batch (all 8 examples; the mean loss does not depend on their order).
    const model = buildVit(config);
    const store = initial.clone();
    const names = model.registry.paramNames();
    const step = await TrainStep.create(runtime, model, store, { trainable: () => true, batch: 8 });
    const { grads } = await step.run(data.images, BigInt64Array.from(data.labels, (l) => BigInt(l)));
    new Sgd({ lr: 0.5 }).step(new Map(names.map((n) => [n, store.get(n)])), grads);
    const moved = maxAbsDiff(store, initial, names);
    assert.ok(moved > 1e-3, `the step must change the weights (moved ${moved})`);
    const diff = maxAbsDiff(fedavg.globalModel(), store, names);
    assert.ok(diff < 1e-5, `FedAvg vs centralized SGD: max |Δw| = ${diff}`);
  });

  test("FedProx with mu = 0 gives exactly FedAvg's weights; mu > 0 does not", async () => {
    const data = syntheticData(24, 2);
    const run = async (raw: unknown) => {
      const s = strategy(raw, 2, adamw(0.01));
      await runRounds(s, makeGrid(data, 3), driverOpts(2, 2, adamw(0.01)));
      return s.globalModel();
    };
    const avg = await run({ name: "fedavg" });
    const prox0 = await run({ name: "fedprox", mu: 0 });
    const prox1 = await run({ name: "fedprox", mu: 1 });
    const names = buildVit(config).registry.paramNames();
    assert.equal(maxAbsDiff(avg, prox0, names), 0);
    assert.ok(maxAbsDiff(avg, prox1, names) > 1e-6);
  });

  for (const handoff of ["delta-svd", "new-base"] as const) test(`SA-FedLoRA (handoff ${handoff}): the budget follows the schedule, parameter counts equal the sum over active triplets, FedAvg's reference is exact`, async () => {
    const data = syntheticData(40, 3);
    const K = 4;
    const perRound = 3;
    const rounds = 8;
    const s = strategy({ name: "sa-fedlora", initiating: { rounds: 2, mu: 0.1, handoff }, adapter: { initRank: 3, targetRank: 1 }, heatRounds: 1, coolRounds: 2 }, rounds, adamw(0.01));
    const records = await runRounds(s, makeGrid(data, K), driverOpts(rounds, perRound, adamw(0.01)));
    // Independent dimensions: 4 square attention projections, intermediate (8→12) and output (12→8).
    const dims: Record<string, [number, number]> = {
      query: [HIDDEN, HIDDEN],
      key: [HIDDEN, HIDDEN],
      value: [HIDDEN, HIDDEN],
      "attention.output.dense": [HIDDEN, HIDDEN],
      "intermediate.dense": [INTER, HIDDEN],
      "output.dense": [HIDDEN, INTER],
    };
    const kindOf = (m: string) => Object.keys(dims).find((k) => m.endsWith(`.${k}`) && !(k === "output.dense" && m.endsWith("attention.output.dense")))!;
    const head = HIDDEN * CLASSES + CLASSES;
    const full = initial.count();
    const backbone = full - head;
    const M = 6;
    const [b0, bT] = [3 * M, 1 * M];
    // Annealing rounds a = 1..6: heating 1, decay over a = 2..4 (t_h = 1, t_c = 4), cooling 5..6.
    const expectedBudget = (a: number) => (a <= 1 ? b0 : a > 4 ? bT : Math.floor(bT + (b0 - bT) * (1 - (a - 1) / 3) ** 3));
    let fedavgParams = 0;
    let baseDownloads = 0;
    const seen = new Set<string>();
    const sampler = new Rng(0);
    for (const r of records) {
      const sampled = sampleClients(sampler, ["c0", "c1", "c2", "c3"], perRound);
      assert.equal(r.accepted, perRound, `round ${r.round}: ${JSON.stringify(r.failures)}`);
      fedavgParams += 2 * perRound * full;
      assert.equal(r.fedavgCumulative.params, fedavgParams);
      if (r.round <= 2) {
        assert.equal(r.stage, "initiating");
        assert.equal(r.budget, undefined);
        assert.equal(r.up.params, perRound * full);
        assert.equal(r.down.params, perRound * full);
        continue;
      }
      const a = r.round - 2;
      assert.equal(r.stage, "annealing");
      assert.equal(r.budget, expectedBudget(a), `round ${r.round}`);
      const ranks = r.ranks!;
      assert.equal(Object.keys(ranks).length, M);
      assert.equal(
        Object.values(ranks).reduce((x, y) => x + y, 0),
        r.budget,
      );
      let adapterPart = head;
      for (const [m, k] of Object.entries(ranks)) {
        const [out, inF] = dims[kindOf(m)]!;
        adapterPart += k * (out + inF + 1);
      }
      assert.equal(r.up.params, perRound * adapterPart, `round ${r.round} up`);
      // new-base: the initiating stage's result goes once to each client on its first annealing round;
      // delta-svd: clients keep the pre-trained base, and nothing but the adapter and head is sent.
      const newcomers = handoff === "new-base" ? sampled.filter((c) => !seen.has(c)) : [];
      for (const c of newcomers) seen.add(c);
      baseDownloads += newcomers.length;
      assert.equal(r.down.params, perRound * adapterPart + newcomers.length * backbone, `round ${r.round} down`);
      assert.equal(r.phase, a <= 1 ? "heating" : a > 4 ? "cooling" : "annealing");
    }
    // Cooling freezes the mask.
    assert.deepEqual(records[6]!.ranks, records[7]!.ranks);
    const detail = s.summary() as { secondStage: { baseDownloads: number } };
    assert.equal(detail.secondStage.baseDownloads, baseDownloads);
    if (handoff === "new-base") assert.ok(baseDownloads > 0);
    const last = records[records.length - 1]!;
    assert.ok(last.cumulativeDown.params + last.cumulativeUp.params < last.fedavgCumulative.params);
  });

  test("FedAvg's own traffic equals the FedAvg reference, parameter for parameter and byte for byte", async () => {
    const data = syntheticData(24, 4);
    const records = await runRounds(strategy({ name: "fedavg" }, 2, adamw(0.01)), makeGrid(data, 3), driverOpts(2, 2, adamw(0.01)));
    const last = records[1]!;
    assert.equal(last.cumulativeDown.params + last.cumulativeUp.params, last.fedavgCumulative.params);
    assert.equal(last.cumulativeDown.bytes + last.cumulativeUp.bytes, last.fedavgCumulative.bytes);
  });

  test("malformed replies (wrong shape, NaN, zero samples, stale round, truncated, failure) are rejected and the round completes with the rest", async () => {
    const data = syntheticData(42, 5);
    const inner = makeGrid(data, 7);
    const corrupt: Record<string, (bytes: Uint8Array) => Uint8Array> = {
      c0: (b) => {
        const m = decodeMessage(b);
        const [t, ...rest] = m.tensors;
        return encodeMessage({ ...m, tensors: [{ ...t!, shape: [t!.data.length] }, ...rest] });
      },
      c1: (b) => {
        const m = decodeMessage(b);
        const t = m.tensors[0]!;
        const data = t.data.slice();
        data[3] = Number.NaN;
        return encodeMessage({ ...m, tensors: [{ ...t, data }, ...m.tensors.slice(1)] });
      },
      c2: (b) => encodeMessage({ ...decodeMessage(b), sampleCount: 0 }),
      c3: (b) => encodeMessage({ ...decodeMessage(b), round: 0 }),
      c4: (b) => b.subarray(0, b.length - 5),
      c5: (b) => encodeMessage({ ...decodeMessage(b), failure: { code: "out-of-memory", message: "out of memory" }, tensors: [] }),
    };
    const grid: Grid = {
      clientIds: () => inner.clientIds(),
      send: async (reqs) => (await inner.send(reqs)).map((r): GridReply => ("payload" in r && corrupt[r.clientId] ? { ...r, payload: corrupt[r.clientId]!(r.payload) } : r)),
      close: () => inner.close(),
    };
    const s = strategy({ name: "fedlora", adapter: { rank: 2 } }, 1, adamw(0.01));
    let evaluated = 0;
    const [rec] = (await runRounds(s, grid, {
      ...driverOpts(1, 7, adamw(0.01)),
      evaluate: async () => {
        evaluated++;
        return { accuracy: 0.5, loss: 1 };
      },
    })) as RoundRecord[];
    assert.equal(rec!.accepted, 1);
    assert.equal(evaluated, 1);
    const reasons = Object.fromEntries(rec!.failures.map((f) => [f.clientId, f.reason]));
    assert.match(reasons["c0"]!, /has shape \[\d+\], expected \[/);
    assert.match(reasons["c1"]!, /non-finite value \(NaN\) at index 3/);
    assert.match(reasons["c2"]!, /sample count is 0/);
    assert.match(reasons["c3"]!, /reply is for round 0, the server is in round 1/);
    assert.match(reasons["c4"]!, /malformed reply: .*wire/);
    assert.match(reasons["c5"]!, /client reported a failure: out of memory/);
    assert.equal(reasons["c6"], undefined);
    const codes = Object.fromEntries(rec!.failures.map((f) => [f.clientId, f.code]));
    assert.deepStrictEqual(codes, { c0: "rejected", c1: "rejected", c2: "rejected", c3: "rejected", c4: "rejected", c5: "out-of-memory" });
    assert.deepStrictEqual(rec!.clients.accepted, ["c6"]);
  });

  test("a client that lacks the base version it is told to use answers with a failure, not an exception", async () => {
    const data = syntheticData(12, 6);
    const engine = new ClientEngine(runtime, config);
    const msg = strategy({ name: "fedlora", adapter: { rank: 2 } }, 1, adamw(0.01)).configureTrain(1, ["c0"]).messages[0]!;
    const bad = { ...msg, config: { ...msg.config, baseVersion: 3 } };
    const storage = new SharedBaseStore(backboneMap()).view("c0");
    const { reply } = await engine.handle({ clientId: "c0", train: data, storage }, encodeMessage(bad));
    assert.equal(decodeMessage(reply).failure?.code, "missing-base");
    assert.match(decodeMessage(reply).failure?.message ?? "", /no base version 3/);
    const garbage = await engine.handle({ clientId: "c0", train: data, storage }, Uint8Array.of(1, 2, 3));
    assert.equal(decodeMessage(garbage.reply).failure?.code, "bad-message");
    assert.match(decodeMessage(garbage.reply).failure?.message ?? "", /wire/);
  });
});

describe("data.trainLimit", () => {
  // 50 one-pixel images whose pixel value is their index, so a subset shows which examples it kept.
  const ds = makeDataset({
    name: "toy",
    images: Float32Array.from({ length: 50 }, (_, i) => i),
    labels: Int32Array.from({ length: 50 }, (_, i) => i % 5),
    channels: 1,
    height: 1,
    width: 1,
    classes: [0, 1, 2, 3, 4],
  });
  test("keeps a seeded subset of distinct examples in their original order", () => {
    const a = trainSubset(ds, 20, 3);
    const kept = [...a.images];
    assert.equal(a.count, 20);
    assert.equal(new Set(kept).size, 20);
    assert.deepEqual(kept, [...kept].sort((x, y) => x - y));
    for (let j = 0; j < a.count; j++) assert.equal(a.labels[j], kept[j]! % 5);
    assert.deepEqual([...trainSubset(ds, 20, 3).images], kept, "same seed, same subset");
    assert.notDeepEqual([...trainSubset(ds, 20, 4).images], kept, "another seed, another subset");
    assert.equal(trainSubset(ds, 50, 3), ds);
    assert.equal(trainSubset(ds, 80, 3), ds);
  });
});

describe("resume from a strategy snapshot and a driver checkpoint", () => {
  const strip = (r: RoundRecord) => JSON.stringify({ ...r, seconds: 0, timing: undefined });
  // [name, strategy, rounds, stop after these rounds (default: 1 and rounds − 2)]
  const cases: [string, unknown, number, number[]?][] = [
    ["fedavg", { name: "fedavg" }, 5],
    ["fedlora", { name: "fedlora", adapter: { rank: 2 } }, 5],
    ["ffa-lora", { name: "ffa-lora", adapter: { rank: 2 } }, 5],
    ["fedadalora", { name: "fedadalora", adapter: { initRank: 3, targetRank: 1 }, heatRounds: 1, coolRounds: 2 }, 6],
    ["sa-fedlora new-base", { name: "sa-fedlora", initiating: { rounds: 2, handoff: "new-base" }, adapter: { initRank: 3, targetRank: 1 }, heatRounds: 1, coolRounds: 2 }, 7],
    // The default handoff, delta-svd. Round 2 is the handoff: its annealing stage is built eagerly then, so the snapshot holds it already.
    ["sa-fedlora", { name: "sa-fedlora", initiating: { rounds: 2 }, adapter: { initRank: 3, targetRank: 1 }, heatRounds: 1, coolRounds: 2 }, 7, [1, 2, 5]],
    ["sa-fedlora delta-svd, nonTarget send", { name: "sa-fedlora", initiating: { rounds: 2, handoff: "delta-svd", nonTarget: "send" }, adapter: { initRank: 3, targetRank: 1 }, heatRounds: 1, coolRounds: 2 }, 7, [2, 4]],
  ];
  for (const [name, raw, rounds, stops] of cases) {
    test(`${name}: stopping after each round k and continuing in a fresh strategy gives the uninterrupted run`, async () => {
      const data = syntheticData(48, 11);
      const training = adamw(0.01);
      const opts = { ...driverOpts(rounds, 3, training) };
      const whole = strategy(raw, rounds, training);
      const ref = await runRounds(whole, makeGrid(data, 6), opts);
      for (const k of stops ?? [1, rounds - 2]) {
        // The clients (and the bases they stored) outlive the server, as on a real network.
        const grid = makeGrid(data, 6);
        const before = strategy(raw, rounds, training);
        let saved: { snap: string; tensors: Map<string, { shape: readonly number[]; data: Float32Array }>; cp: unknown } | undefined;
        const head = await runRounds(before, grid, {
          ...opts,
          rounds: k,
          onRoundEnd: async (_r, cp) => {
            const s = before.snapshot();
            // Through JSON, as a state file would carry it.
            saved = { snap: JSON.stringify(s.meta), tensors: new Map([...s.tensors].map(([n, t]) => [n, { shape: [...t.shape], data: t.data.slice() }])), cp: JSON.parse(JSON.stringify(cp)) };
          },
        });
        const after = strategy(raw, rounds, training);
        after.restore({ tensors: saved!.tensors, meta: JSON.parse(saved!.snap) });
        const tail = await runRounds(after, grid, { ...opts, resume: saved!.cp as never });
        assert.deepEqual([...head, ...tail].map(strip), ref.map(strip), `resumed after round ${k}`);
        const g1 = whole.globalModel();
        const g2 = after.globalModel();
        assert.equal(maxAbsDiff(g1, g2, g1.names()), 0);
      }
    });
  }

  test("a snapshot of another strategy's shape is refused by name", () => {
    const a = strategy({ name: "fedlora", adapter: { rank: 2 } }, 3, adamw(0.01));
    const b = strategy({ name: "fedlora", adapter: { rank: 1 } }, 3, adamw(0.01));
    assert.throws(() => b.restore(a.snapshot()), /has shape \[.*\] in the snapshot/);
    const c = strategy({ name: "fedavg" }, 3, adamw(0.01));
    assert.throws(() => c.restore(a.snapshot()), /snapshot has \d+ tensors, the strategy has \d+/);
  });
});
