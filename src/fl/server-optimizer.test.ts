/**
 * Server optimizers (fl/server-optimizer): each update rule against values worked out by hand for a
 * 3-element tensor over two or three steps; the defaults; v₀ = τ²; snapshot / restore continuing
 * bit for bit; a new shape or a masked entry resetting the state; and the hook in the strategies
 * with fabricated replies (no training): no optimizer is exactly plain averaging, FedAvgM on a
 * full-model round, pruned SVD triplets left untouched, fresh state after SA-FedLoRA's stage switch,
 * and a resumed SA-FedLoRA run identical to the uninterrupted one.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseVitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { buildVit } from "../nn/vit.js";
import { svdE, svdP, svdQ } from "../peft/adalora/layer.js";
import { Rng } from "../util/rng.js";
import { aggregateReplies, validateReply } from "./aggregate.js";
import {
  createServerOptimizer,
  parseServerOptimizerSpec,
  SERVER_OPTIMIZER_NAMES,
  type ServerOptimizer,
  type ServerOptimizerSpec,
  serverOptimizerEntry,
} from "./server-optimizer.js";
import { createStrategy, type StrategySpec, strategySpecSchema } from "./strategies/index.js";
import type { AcceptedReply, LocalTraining, Strategy, StrategySnapshot, TrainPlan } from "./strategy.js";

const close = (actual: ArrayLike<number>, expected: readonly number[], what: string, tol = 1e-6) => {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol * Math.max(1, Math.abs(expected[i]!)), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
};

const f32 = (xs: readonly number[]) => Float32Array.from(xs);

/**
 * Runs `opt` on tensor "w" from x0 with pseudo-gradients `deltas`: each round's aggregate is the
 * hand-computed expected x plus Δ, so the code sees (up to float32 rounding) exactly these Δ.
 */
function run(opt: ServerOptimizer, x0: readonly number[], deltas: readonly (readonly number[])[], expected: readonly (readonly number[])[]): Float32Array {
  let x: Float32Array = f32(x0);
  deltas.forEach((d, t) => {
    const from = t === 0 ? x0 : expected[t - 1]!;
    x = opt.step("w", [x0.length], x, f32(from.map((v, i) => v + d[i]!)));
    close(x, expected[t]!, `step ${t + 1}`);
  });
  return x;
}

const stateOf = (opt: ServerOptimizer, name = "w") => {
  const s = opt.snapshot();
  return { m: s.tensors.get(`m/${name}`)?.data, v: s.tensors.get(`v/${name}`)?.data, steps: (s.meta["steps"] as Record<string, number>)[name] };
};

const spec = (raw: unknown) => parseServerOptimizerSpec(raw);

describe("server optimizer update rules (hand-computed)", () => {
  const x0 = [1, -2, 0.5];

  test("fedavgm: m = β·m + Δ, x += η·m", () => {
    const opt = createServerOptimizer(spec({ name: "fedavgm", lr: 0.5, momentum: 0.9 }));
    // m1 = Δ1 = [0.5, -1, 0]                          x1 = x0 + 0.5·m1 = [1.25, -2.5, 0.5]
    // m2 = 0.9·m1 + Δ2 = [0.7, -0.4, -0.5]           x2 = x1 + 0.5·m2 = [1.6, -2.7, 0.25]
    // m3 = 0.9·m2 + Δ3 = [-0.37, -0.36, -0.2]        x3 = x2 + 0.5·m3 = [1.415, -2.88, 0.15]
    const deltas = [[0.5, -1, 0], [0.25, 0.5, -0.5], [-1, 0, 0.25]];
    run(opt, x0, deltas, [[1.25, -2.5, 0.5], [1.6, -2.7, 0.25], [1.415, -2.88, 0.15]]);
    const s = stateOf(opt);
    close(s.m!, [-0.37, -0.36, -0.2], "m3");
    assert.equal(s.v, undefined, "FedAvgM keeps no second moment");
    assert.equal(s.steps, 3);
  });

  // The adaptive three with η = 1, β₁ = 0.5, β₂ = 0.75, τ = 0.5 (so v₀ = τ² = 0.25), Δ1 = [1, -2, 0],
  // Δ2 = [0.5, 2, 0]: m1 = 0.5·Δ1 = [0.5, -1, 0], m2 = 0.5·m1 + 0.5·Δ2 = [0.5, 0.5, 0].
  const deltas = [[1, -2, 0], [0.5, 2, 0]];
  const m2 = [0.5, 0.5, 0];
  const adaptive = { lr: 1, beta1: 0.5, tau: 0.5 };
  const xs = (v1: readonly number[], v2: readonly number[]) => {
    const x1 = [1 + 0.5 / (Math.sqrt(v1[0]!) + 0.5), -2 - 1 / (Math.sqrt(v1[1]!) + 0.5), 0.5];
    const x2 = [x1[0]! + 0.5 / (Math.sqrt(v2[0]!) + 0.5), x1[1]! + 0.5 / (Math.sqrt(v2[1]!) + 0.5), 0.5];
    return [x1, x2];
  };

  test("fedadagrad: v = v + Δ², x += η·m/(√v + τ)", () => {
    // v1 = 0.25 + [1, 4, 0] = [1.25, 4.25, 0.25]; v2 = v1 + [0.25, 4, 0] = [1.5, 8.25, 0.25]
    const v1 = [1.25, 4.25, 0.25];
    const v2 = [1.5, 8.25, 0.25];
    const opt = createServerOptimizer(spec({ name: "fedadagrad", ...adaptive }));
    run(opt, x0, deltas, xs(v1, v2));
    close(stateOf(opt).m!, m2, "m2");
    close(stateOf(opt).v!, v2, "v2");
  });

  test("fedadam: v = β₂·v + (1−β₂)·Δ², x += η·m/(√v + τ)", () => {
    // v1 = 0.75·0.25 + 0.25·[1, 4, 0] = [0.4375, 1.1875, 0.1875]
    // v2 = 0.75·v1 + 0.25·[0.25, 4, 0] = [0.390625, 1.890625, 0.140625]
    const v1 = [0.4375, 1.1875, 0.1875];
    const v2 = [0.390625, 1.890625, 0.140625];
    const opt = createServerOptimizer(spec({ name: "fedadam", ...adaptive, beta2: 0.75 }));
    const [, x2] = xs(v1, v2);
    assert.ok(Math.abs(x2![0]! - (1 + 0.5 / (Math.sqrt(0.4375) + 0.5) + 0.5 / (0.625 + 0.5))) < 1e-12, "√0.390625 = 0.625");
    run(opt, x0, deltas, xs(v1, v2));
    close(stateOf(opt).v!, v2, "v2");
  });

  test("fedyogi: v = v − (1−β₂)·Δ²·sign(v − Δ²), x += η·m/(√v + τ)", () => {
    // step 1: v0 − Δ1² = [-0.75, -3.75, 0.25] → signs [−, −, +]: v1 = 0.25 + 0.25·[1, 4, 0] = [0.5, 1.25, 0.25]
    // step 2: v1 − Δ2² = [0.25, -2.75, 0.25] → signs [+, −, +]: v2 = [0.5 − 0.0625, 1.25 + 1, 0.25] = [0.4375, 2.25, 0.25]
    const v1 = [0.5, 1.25, 0.25];
    const v2 = [0.4375, 2.25, 0.25];
    const opt = createServerOptimizer(spec({ name: "fedyogi", ...adaptive, beta2: 0.75 }));
    run(opt, x0, deltas, xs(v1, v2));
    close(stateOf(opt).v!, v2, "v2");
    close(stateOf(opt).m!, m2, "m2");
  });

  test("v starts at τ² (Reddi et al., Algorithm 2); m at 0", () => {
    for (const name of ["fedadagrad", "fedadam", "fedyogi"] as const) {
      const opt = createServerOptimizer(spec({ name, tau: 0.25 }));
      // Δ = 0 everywhere: x stays, m stays 0; Adagrad and Yogi keep v = τ², Adam decays it to β₂·τ².
      const x = opt.step("w", [2], f32([3, -4]), f32([3, -4]));
      assert.deepEqual([...x], [3, -4]);
      const s = stateOf(opt);
      assert.deepEqual([...s.m!], [0, 0]);
      const expected = name === "fedadam" ? 0.99 * 0.0625 : 0.0625;
      close(s.v!, [expected, expected], `${name} v`);
    }
  });

  test("defaults (Flower's where it has them; FedAvgM's momentum 0.9)", () => {
    assert.deepEqual(spec({ name: "fedavgm" }), { name: "fedavgm", lr: 1, momentum: 0.9 });
    assert.deepEqual(spec({ name: "fedadagrad" }), { name: "fedadagrad", lr: 0.1, beta1: 0, tau: 1e-9 });
    assert.deepEqual(spec({ name: "fedadam" }), { name: "fedadam", lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9 });
    assert.deepEqual(spec({ name: "fedyogi" }), { name: "fedyogi", lr: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
  });
});

describe("server optimizer state", () => {
  const specs: ServerOptimizerSpec[] = SERVER_OPTIMIZER_NAMES.map((name) => spec({ name, lr: 0.3 }));
  const rng = new Rng(5);
  const rounds = Array.from({ length: 5 }, () => ({ a: f32([rng.normal(), rng.normal(), rng.normal()]), b: f32([rng.normal(), rng.normal()]) }));

  for (const s of specs) {
    test(`${s.name}: snapshot after step k and restore into a fresh optimizer continues bit for bit`, () => {
      type X = { a: Float32Array; b: Float32Array };
      const drive = (opt: ServerOptimizer, from: number, x: X) => {
        for (let t = from; t < rounds.length; t++) x = { a: opt.step("a", [3], x.a, rounds[t]!.a), b: opt.step("b", [2, 1], x.b, rounds[t]!.b) };
        return x;
      };
      const start: X = { a: f32([0, 0, 0]), b: f32([1, 1]) };
      const whole = drive(createServerOptimizer(s), 0, start);
      const head = createServerOptimizer(s);
      let x = start;
      for (let t = 0; t < 2; t++) x = { a: head.step("a", [3], x.a, rounds[t]!.a), b: head.step("b", [2, 1], x.b, rounds[t]!.b) };
      const snap = head.snapshot();
      // Through JSON for the facts, as the state file carries them.
      const resumed = createServerOptimizer(s);
      resumed.restore({ tensors: snap.tensors, meta: JSON.parse(JSON.stringify(snap.meta)) });
      assert.deepEqual(resumed.steps(), { a: 2, b: 2 });
      const tail = drive(resumed, 2, x);
      assert.deepEqual([...tail.a], [...whole.a]);
      assert.deepEqual([...tail.b], [...whole.b]);
    });
  }

  test("a snapshot of another optimizer or with missing state is refused", () => {
    const adam = createServerOptimizer(spec({ name: "fedadam" }));
    adam.step("w", [2], f32([0, 0]), f32([1, 1]));
    assert.throws(() => createServerOptimizer(spec({ name: "fedyogi" })).restore(adam.snapshot()), /server optimizer is "fedadam", the strategy's is "fedyogi"/);
    const snap = adam.snapshot();
    const noV = { tensors: new Map([...snap.tensors].filter(([n]) => !n.startsWith("v/"))), meta: snap.meta };
    assert.throws(() => createServerOptimizer(spec({ name: "fedadam" })).restore(noV), /has 1 tensors for 1 parameters/);
  });

  test("a tensor seen with a new shape starts from fresh state", () => {
    const opt = createServerOptimizer(spec({ name: "fedadam", lr: 0.5 }));
    opt.step("w", [4], f32([0, 0, 0, 0]), f32([1, 2, 3, 4]));
    opt.step("w", [4], f32([0, 0, 0, 0]), f32([1, 2, 3, 4]));
    assert.equal(opt.steps()["w"], 2);
    const reshaped = opt.step("w", [2, 2], f32([1, 1, 1, 1]), f32([2, 0, 3, 1]));
    const fresh = createServerOptimizer(spec({ name: "fedadam", lr: 0.5 })).step("w", [2, 2], f32([1, 1, 1, 1]), f32([2, 0, 3, 1]));
    assert.deepEqual([...reshaped], [...fresh]);
    assert.equal(opt.steps()["w"], 1);
  });

  test("inactive entries keep their value exactly and their state returns to m = 0, v = τ²", () => {
    const opt = createServerOptimizer(spec({ name: "fedadagrad", lr: 1, tau: 0.5 }));
    opt.step("w", [3], f32([0, 0, 0]), f32([1, -2, 3]));
    const x = opt.step("w", [3], f32([0.125, 0.25, 0.375]), f32([9, 9, 9]), Uint8Array.from([1, 0, 1]));
    assert.equal(x[1], 0.25);
    assert.notEqual(x[0], 0.125);
    const s = stateOf(opt);
    assert.equal(s.m![1], 0);
    assert.equal(s.v![1], 0.25);
    assert.ok(s.v![0]! > 1, "active entries keep accumulating");
  });

  test("an unknown name lists the known ones", () => {
    assert.throws(() => serverOptimizerEntry("sgd"), /unknown server optimizer "sgd"; expected one of fedavgm, fedadagrad, fedadam, fedyogi/);
    assert.throws(() => spec({ name: "sgd" }), /name: Invalid discriminator value\. Expected 'fedavgm' \| 'fedadagrad' \| 'fedadam' \| 'fedyogi'/);
  });
});

// Strategies on a tiny ViT, with replies made up from the broadcast (no client trains).
const config = parseVitConfig({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 12, image_size: 4, patch_size: 2, num_channels: 1, num_labels: 3 });
const initial = ParamStore.init(buildVit(config).registry.specs.values(), new Rng(7));
const training: LocalTraining = { optimizer: "adamw", lr: 0.01, weightDecay: 0, localEpochs: 1, localSteps: 0, batch: 4 };

function strategy(raw: unknown, rounds: number): Strategy {
  const s = strategySpecSchema.parse(raw) as StrategySpec;
  return createStrategy(s, { config, initial, training: { full: training, adapter: () => training }, rounds, seed: 0 });
}

/** Replies to a round's broadcasts: every value perturbed by seeded noise, random triplet scores; all valid. */
function replies(plan: TrainPlan, round: number, clients: readonly string[]): AcceptedReply[] {
  return plan.messages.map((msg, k) => {
    const rng = new Rng(round * 101 + k);
    const noisy = (data: Float32Array) => Float32Array.from(data, (x) => x + 0.05 * rng.normal());
    const sent = new Map(msg.tensors.map((t) => [t.name, t]));
    const message = {
      kind: "reply" as const,
      round,
      clientId: clients[k]!,
      sampleCount: 3 + k,
      metrics: { trainLoss: 1 },
      tensors: [...plan.expectation.tensors].map(([name, shape]) => ({ name, shape, data: noisy(sent.get(name)!.data) })),
      packed: msg.packed.map((p) => ({ ...p, mask: p.mask.slice(), p: noisy(p.p), e: noisy(p.e), q: noisy(p.q) })),
      scores: [...plan.expectation.scores].map(([module, r]) => ({ module, scores: Float64Array.from({ length: r }, () => rng.next()) })),
    };
    assert.deepEqual(validateReply(message, plan.expectation), { ok: true });
    return { clientId: clients[k]!, message };
  });
}

const CLIENTS = ["c0", "c1", "c2"];

/** Rounds from..to of a strategy on made-up replies; returns each round's plan and replies. */
function drive(s: Strategy, from: number, to: number): { plan: TrainPlan; replies: AcceptedReply[] }[] {
  const out = [];
  for (let r = from; r <= to; r++) {
    const plan = s.configureTrain(r, CLIENTS);
    const rs = replies(plan, r, CLIENTS);
    s.aggregateTrain(r, rs);
    out.push({ plan, replies: rs });
  }
  return out;
}

const bits = (store: ParamStore) => store.names().map((n) => [n, [...store.get(n)]]);

describe("server optimizers in the strategies", () => {
  test("without serverOptimizer a round's global model is exactly the plain aggregate, and the snapshot has no optimizer state", () => {
    for (const raw of [{ name: "fedavg" }, { name: "fedlora", adapter: { rank: 2 } }]) {
      const s = strategy(raw, 2);
      const rs = drive(s, 1, 1)[0]!.replies;
      const agg = aggregateReplies(rs.map((r) => r.message));
      const snap = s.snapshot();
      for (const t of agg.tensors) assert.deepEqual([...snap.tensors.get(t.name)!.data], [...t.data], `${raw.name}: ${t.name}`);
      assert.ok(![...snap.tensors.keys()].some((n) => n.startsWith("serverOptimizer/")));
      assert.equal(snap.meta["serverOptimizer"], undefined);
      assert.equal((s.summary() as Record<string, unknown>)["serverOptimizer"], undefined);
    }
  });

  test("fedavg + fedavgm: round 1 is x + η·Δ, round 2 adds the momentum of round 1", () => {
    const s = strategy({ name: "fedavg", serverOptimizer: { name: "fedavgm", lr: 0.5, momentum: 0.5 } }, 2);
    const x0 = initial.clone();
    const [r1, r2] = drive(s, 1, 2);
    const a1 = aggregateReplies(r1!.replies.map((r) => r.message));
    const x1 = new Map<string, number[]>();
    for (const t of a1.tensors) {
      const x = [...x0.get(t.name)];
      x1.set(t.name, x.map((v, i) => v + 0.5 * (t.data[i]! - v)));
    }
    // Round 2's broadcast carries x1.
    for (const t of r2!.plan.messages[0]!.tensors) close(t.data, x1.get(t.name)!, t.name);
    const a2 = aggregateReplies(r2!.replies.map((r) => r.message));
    const g = s.globalModel();
    for (const t of a2.tensors) {
      const prev = x1.get(t.name)!;
      const d1 = a1.tensors.find((u) => u.name === t.name)!.data;
      const x0t = x0.get(t.name);
      // m2 = 0.5·Δ1 + Δ2, x2 = x1 + 0.5·m2 (Δ2 against the float32 x1 the strategy holds).
      const held = r2!.plan.messages[0]!.tensors.find((u) => u.name === t.name)!.data;
      close(g.get(t.name), prev.map((v, i) => v + 0.5 * (0.5 * (d1[i]! - x0t[i]!) + (t.data[i]! - held[i]!))), t.name, 1e-5);
    }
    assert.deepEqual((s.summary() as Record<string, unknown>)["serverOptimizer"], { name: "fedavgm", lr: 0.5, momentum: 0.5 });
  });

  test("fedadalora: pruned triplets' P, λ, Q stay exactly as they were; their state is reset", () => {
    const s = strategy({ name: "fedadalora", adapter: { initRank: 3, targetRank: 1 }, heatRounds: 1, coolRounds: 1, serverOptimizer: { name: "fedavgm", lr: 0.5 } }, 4);
    drive(s, 1, 1);
    const before = s.snapshot();
    const [r2] = drive(s, 2, 2);
    const after = s.snapshot();
    const masks = after.meta["masks"] as Record<string, number[]>;
    let pruned = 0;
    for (const [module, mask] of Object.entries(masks)) {
      const r = mask.length;
      const p0 = before.tensors.get(svdP(module))!.data;
      const p1 = after.tensors.get(svdP(module))!.data;
      const mP = after.tensors.get(`serverOptimizer/m/${svdP(module)}`)!.data;
      const e0 = before.tensors.get(svdE(module))!.data;
      const e1 = after.tensors.get(svdE(module))!.data;
      const q0 = before.tensors.get(svdQ(module))!.data;
      const q1 = after.tensors.get(svdQ(module))!.data;
      const inF = q1.length / r;
      for (let i = 0; i < r; i++) {
        if (mask[i]) {
          assert.notEqual(e1[i], e0[i], `${module} λ${i} is active and moves`);
          continue;
        }
        pruned++;
        assert.equal(e1[i], e0[i], `${module} λ${i}`);
        for (let o = 0; o < p1.length / r; o++) {
          assert.equal(p1[o * r + i], p0[o * r + i], `${module} P[${o},${i}]`);
          assert.equal(mP[o * r + i], 0, `${module} m of P[${o},${i}]`);
        }
        for (let j = 0; j < inF; j++) assert.equal(q1[i * inF + j], q0[i * inF + j], `${module} Q[${i},${j}]`);
      }
    }
    assert.equal(r2!.plan.info.budget, 7, "round 2 keeps 7 of 18 triplets");
    assert.equal(pruned, 18 - 7);
  });

  test("sa-fedlora: the annealing stage starts with fresh optimizer state (its first step is x + η·Δ)", () => {
    const s = strategy({ name: "sa-fedlora", initiating: { rounds: 1 }, adapter: { initRank: 2, targetRank: 1 }, heatRounds: 1, coolRounds: 1, serverOptimizer: { name: "fedavgm", lr: 0.5 } }, 4);
    drive(s, 1, 1);
    const head = s.globalModel().clone();
    const [r2] = drive(s, 2, 2);
    const meta = s.snapshot().meta as { first: { serverOptimizer: { steps: Record<string, number> } }; second: { serverOptimizer: { steps: Record<string, number> } } };
    assert.ok(Object.values(meta.first.serverOptimizer.steps).every((n) => n === 1));
    const second = meta.second.serverOptimizer.steps;
    assert.ok(Object.keys(second).every((n) => n.startsWith("classifier.") || /lora_[ABE]$/.test(n)), Object.keys(second).join(", "));
    assert.ok(Object.values(second).every((n) => n === 1));
    const agg = aggregateReplies(r2!.replies.map((r) => r.message));
    const g = s.globalModel();
    for (const t of agg.tensors) {
      const x = head.get(t.name);
      close(g.get(t.name), [...x].map((v, i) => v + 0.5 * (t.data[i]! - v)), t.name);
    }
  });

  for (const opt of ["fedadam", "fedyogi"] as const) {
    test(`sa-fedlora + ${opt}: stopping after round k and restoring into a fresh strategy gives the uninterrupted run`, () => {
      const raw = { name: "sa-fedlora", initiating: { rounds: 2 }, adapter: { initRank: 3, targetRank: 1 }, heatRounds: 1, coolRounds: 1, serverOptimizer: { name: opt, lr: 0.01 } };
      const rounds = 6;
      const whole = strategy(raw, rounds);
      drive(whole, 1, rounds);
      for (const k of [1, 2, 4]) {
        const before = strategy(raw, rounds);
        drive(before, 1, k);
        const snap = before.snapshot();
        const carried: StrategySnapshot = { tensors: new Map([...snap.tensors].map(([n, t]) => [n, { shape: [...t.shape], data: t.data.slice() }])), meta: JSON.parse(JSON.stringify(snap.meta)) };
        const after = strategy(raw, rounds);
        after.restore(carried);
        drive(after, k + 1, rounds);
        assert.deepEqual(bits(after.globalModel()), bits(whole.globalModel()), `resumed after round ${k}`);
      }
    });
  }

  test("a snapshot with optimizer state is refused by a strategy without one, and the reverse", () => {
    const withOpt = strategy({ name: "fedlora", adapter: { rank: 2 }, serverOptimizer: { name: "fedadam" } }, 2);
    const without = strategy({ name: "fedlora", adapter: { rank: 2 } }, 2);
    drive(withOpt, 1, 1);
    drive(without, 1, 1);
    assert.throws(() => without.restore(withOpt.snapshot()), /the snapshot holds server optimizer state, the strategy has no server optimizer/);
    assert.throws(() => withOpt.restore(without.snapshot()), /the snapshot holds no server optimizer state, the strategy has "fedadam"/);
    const yogi = strategy({ name: "fedlora", adapter: { rank: 2 }, serverOptimizer: { name: "fedyogi" } }, 2);
    assert.throws(() => yogi.restore(withOpt.snapshot()), /server optimizer is "fedadam", the strategy's is "fedyogi"/);
  });

  test("the strategy schema takes serverOptimizer for every strategy and names the field of a mistake", () => {
    for (const name of ["fedavg", "fedprox", "fedlora", "ffa-lora", "fedadalora", "sa-fedlora"]) {
      const parsed = strategySpecSchema.parse({ name, serverOptimizer: { name: "fedyogi" } }) as { serverOptimizer?: unknown };
      assert.deepEqual(parsed.serverOptimizer, { name: "fedyogi", lr: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 }, name);
      assert.equal((strategySpecSchema.parse({ name }) as { serverOptimizer?: unknown }).serverOptimizer, undefined);
    }
    const issues = (raw: unknown) => strategySpecSchema.safeParse(raw).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    assert.match(issues({ name: "fedavg", serverOptimizer: { name: "fedadam", lr: -0.1 } }).join("\n"), /serverOptimizer\.lr: Too small: expected number to be >0/);
    assert.match(issues({ name: "fedavg", serverOptimizer: { name: "fedadam", beta2: 1 } }).join("\n"), /serverOptimizer\.beta2: Too small|serverOptimizer\.beta2: Too big/);
    assert.match(issues({ name: "fedavg", serverOptimizer: { name: "fedavgm", beta1: 0.5 } }).join("\n"), /serverOptimizer: Unrecognized key/);
    assert.match(issues({ name: "fedavg", serverOptimizer: { name: "adam" } }).join("\n"), /serverOptimizer\.name: Invalid discriminator value\. Expected 'fedavgm' \| 'fedadagrad' \| 'fedadam' \| 'fedyogi'/);
  });
});
