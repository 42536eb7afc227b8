/**
 * SA-FedLoRA's delta-svd handoff against direct computations. The start itself (svdStartFromDelta)
 * on changes built from known singular triplets: the adapter's ΔW is the rank-r truncation written
 * out from those triplets, its residual is the Eckart–Young bound, P and Q are orthonormal, and a
 * change of lower rank keeps the seeded factors for the components it lacks. Then the whole
 * strategy on a tiny ViT: the model at the handoff is the pre-trained backbone plus the truncated
 * initiating change on every adapted weight (the change taken from a new-base run of the same
 * seed, whose first stage is the same), the head carried over, the other parameters pre-trained
 * ("drop") or the initiating stage's ("send"); the traffic records show no base download ("drop")
 * or exactly the non-target parameters once per client ("send"), and the clients train on the
 * base the server holds.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { type ImageDataset, makeDataset } from "../../data/dataset.js";
import { parseVitConfig } from "../../nn/config.js";
import { ParamStore } from "../../nn/params.js";
import { buildVit } from "../../nn/vit.js";
import { svdStartFromDelta } from "../../peft/adalora/from-delta.js";
import { isHeadParam } from "../../peft/model.js";
import { NodeRuntime } from "../../runtime/node.js";
import { parseRunConfig } from "../../sim/config.js";
import { InMemoryGrid, SharedBaseStore } from "../../sim/memory-grid.js";
import { truncatedSvd } from "../../util/linalg.js";
import { Rng } from "../../util/rng.js";
import { ClientEngine } from "../client.js";
import { runRounds } from "../driver.js";
import type { RoundRecord } from "../records.js";
import type { LocalTraining } from "../strategy.js";
import { createStrategy, type StrategySpec, strategySpecSchema } from "./index.js";

/** A rows×n matrix with orthonormal columns (Gram–Schmidt on seeded normals), row-major. */
function orthonormal(rows: number, n: number, rng: Rng): Float64Array {
  const m = new Float64Array(rows * n);
  for (let j = 0; j < n; j++) {
    const v = Float64Array.from({ length: rows }, () => rng.normal());
    for (let i = 0; i < j; i++) {
      let dot = 0;
      for (let r = 0; r < rows; r++) dot += v[r]! * m[r * n + i]!;
      for (let r = 0; r < rows; r++) v[r]! -= dot * m[r * n + i]!;
    }
    const norm = Math.hypot(...v);
    for (let r = 0; r < rows; r++) m[r * n + j] = v[r]! / norm;
  }
  return m;
}

/** Σ_{j<k} σ_j·u_j·v_jᵀ for U (rows×n) and V (cols×n) with orthonormal columns. */
function fromTriplets(u: Float64Array, s: readonly number[], v: Float64Array, rows: number, cols: number, n: number, k = s.length): Float64Array {
  const a = new Float64Array(rows * cols);
  for (let j = 0; j < k; j++) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) a[r * cols + c]! += s[j]! * u[r * n + j]! * v[c * n + j]!;
  return a;
}

/** The adapter's ΔW = P·diag(λ)·Q·scale, written out. */
function adapterDelta(p: Float32Array, e: Float32Array, q: Float32Array, out: number, inn: number, r: number, scale: number): Float64Array {
  const d = new Float64Array(out * inn);
  for (let o = 0; o < out; o++) for (let j = 0; j < r; j++) for (let i = 0; i < inn; i++) d[o * inn + i]! += scale * p[o * r + j]! * e[j]! * q[j * inn + i]!;
  return d;
}

const sq = (a: ArrayLike<number>) => Array.from(a).reduce((t, x) => t + x * x, 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
const sub = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (x, i) => x - b[i]!);

/** Max |G − I| of the Gram matrix of P's columns (out×r) or of Q's rows (r×in). */
function orthError(m: Float32Array, rows: number, cols: number, of: "columns" | "rows"): number {
  const k = of === "columns" ? cols : rows;
  const len = of === "columns" ? rows : cols;
  const at = (vec: number, i: number) => (of === "columns" ? m[i * cols + vec]! : m[vec * cols + i]!);
  let worst = 0;
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      let dot = 0;
      for (let i = 0; i < len; i++) dot += at(a, i) * at(b, i);
      worst = Math.max(worst, Math.abs(dot - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

const fallback = (out: number, inn: number, r: number, seed: number) => {
  const rng = new Rng(seed);
  return { p: Float32Array.from({ length: out * r }, () => rng.normal() * 0.02), q: Float32Array.from({ length: r * inn }, () => rng.normal() * 0.02) };
};

describe("svdStartFromDelta", () => {
  test("a change with known singular triplets: ΔW is its rank-r truncation, the residual the Eckart–Young bound", () => {
    const [OUT, IN, R, SCALE] = [7, 5, 3, 2.5];
    const rng = new Rng(3);
    const u = orthonormal(OUT, 5, rng);
    const v = orthonormal(IN, 5, rng);
    const sigma = [4, 2.5, 1.5, 0.3, 0.1];
    const d = fromTriplets(u, sigma, v, OUT, IN, 5);
    const start = svdStartFromDelta(d, OUT, IN, R, SCALE, fallback(OUT, IN, R, 1));
    const dw = adapterDelta(start.p, start.e, start.q, OUT, IN, R, SCALE);
    const truncation = fromTriplets(u, sigma, v, OUT, IN, 5, R);
    assert.ok(maxDiff(dw, truncation) < 2e-6, `ΔW vs the rank-3 truncation: ${maxDiff(dw, truncation)}`);
    const residual = sq(sub(d, dw));
    assert.ok(Math.abs(residual - (0.3 ** 2 + 0.1 ** 2)) < 1e-5, `‖D − ΔW‖² = ${residual}, Eckart–Young: 0.1`);
    const energy = (16 + 6.25 + 2.25) / sigma.reduce((t, x) => t + x * x, 0);
    assert.ok(Math.abs(start.energyKept - energy) < 1e-9);
    assert.equal(start.zeroComponents, 0);
    // λ carries σ/scale, so the adapter's own scale α/r₀ does not change ΔW.
    for (let j = 0; j < R; j++) assert.ok(Math.abs(start.e[j]! - sigma[j]! / SCALE) < 1e-5);
    assert.ok(orthError(start.p, OUT, R, "columns") < 1e-5);
    assert.ok(orthError(start.q, R, IN, "rows") < 1e-5);
  });

  test("low rank + noise: the residual is orthogonal to P and Q and smaller than the planted part's", () => {
    const [OUT, IN, R] = [12, 8, 2];
    const rng = new Rng(9);
    const planted = fromTriplets(orthonormal(OUT, R, rng), [3, 1], orthonormal(IN, R, rng), OUT, IN, R);
    const d = Float64Array.from(planted, (x) => x + 0.01 * rng.normal());
    const start = svdStartFromDelta(d, OUT, IN, R, 1, fallback(OUT, IN, R, 2));
    const res = sub(d, adapterDelta(start.p, start.e, start.q, OUT, IN, R, 1));
    // Pᵀ·R = 0 and R·Qᵀ = 0: ΔW holds whole singular components of D.
    for (let j = 0; j < R; j++) {
      for (let i = 0; i < IN; i++) {
        let dot = 0;
        for (let o = 0; o < OUT; o++) dot += start.p[o * R + j]! * res[o * IN + i]!;
        assert.ok(Math.abs(dot) < 1e-5, `Pᵀ·R[${j},${i}] = ${dot}`);
      }
      for (let o = 0; o < OUT; o++) {
        let dot = 0;
        for (let i = 0; i < IN; i++) dot += res[o * IN + i]! * start.q[j * IN + i]!;
        assert.ok(Math.abs(dot) < 1e-5, `R·Qᵀ[${o},${j}] = ${dot}`);
      }
    }
    assert.ok(sq(res) <= sq(sub(d, planted)), "no rank-2 matrix is closer to D than its truncation, the planted part included");
    assert.ok(Math.abs(sq(d) - sq(sub(d, res)) - sq(res)) < 1e-6, "‖D‖² = ‖ΔW‖² + ‖R‖²");
  });

  test("components the change lacks keep the seeded factors with λ = 0", () => {
    const [OUT, IN, R] = [6, 4, 3];
    const rng = new Rng(4);
    const d = fromTriplets(orthonormal(OUT, 1, rng), [2], orthonormal(IN, 1, rng), OUT, IN, 1);
    const fb = fallback(OUT, IN, R, 5);
    const start = svdStartFromDelta(d, OUT, IN, R, 1, fb);
    assert.equal(start.zeroComponents, 2);
    assert.ok(maxDiff(adapterDelta(start.p, start.e, start.q, OUT, IN, R, 1), d) < 1e-6);
    for (const j of [1, 2]) {
      assert.equal(start.e[j], 0);
      for (let o = 0; o < OUT; o++) assert.equal(start.p[o * R + j], fb.p[o * R + j]);
      for (let i = 0; i < IN; i++) assert.equal(start.q[j * IN + i], fb.q[j * IN + i]);
    }
    const none = svdStartFromDelta(new Float64Array(OUT * IN), OUT, IN, R, 1, fb);
    assert.deepEqual([none.zeroComponents, none.energyKept, [...none.e]], [3, 1, [0, 0, 0]]);
  });
});

describe("sa-fedlora initiating.handoff", () => {
  const runtime = new NodeRuntime({ threads: 1 });
  after(() => runtime.release());
  const config = parseVitConfig({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 12, image_size: 4, patch_size: 2, num_channels: 1, num_labels: 3 });
  const initial = ParamStore.init(buildVit(config).registry.specs.values(), new Rng(7));
  const backbone = initial.names().filter((n) => !isHeadParam(n));
  const head = initial.names().filter(isHeadParam);
  const adapted = backbone.filter((n) => /(query|key|value|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$/.test(n));
  const nonTarget = backbone.filter((n) => !adapted.includes(n));
  const count = (names: readonly string[]) => names.reduce((t, n) => t + initial.get(n).length, 0);
  const [K, PER_ROUND, ROUNDS, R0] = [4, 3, 4, 3];
  const training: LocalTraining = { optimizer: "adamw", lr: 0.01, weightDecay: 0, localEpochs: 1, localSteps: 0, batch: 4 };

  function data(n: number): ImageDataset {
    const rng = new Rng(13);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
    const images = Float32Array.from({ length: n * 16 }, (_, k) => rng.normal() + (k % 3 === labels[Math.floor(k / 16)] ? 1 : 0));
    return makeDataset({ name: "synthetic", images, labels, channels: 1, height: 4, width: 4, classes: [0, 1, 2] });
  }

  /** A 4-round run (2 initiating, then 2 annealing at r₀ = 3); the global model after round 2 and the clients' bases. */
  async function run(initiating: Record<string, unknown>) {
    const spec = strategySpecSchema.parse({ name: "sa-fedlora", initiating: { rounds: 2, ...initiating }, adapter: { initRank: R0, targetRank: 1 }, heatRounds: 1, coolRounds: 0 }) as StrategySpec;
    const strategy = createStrategy(spec, { config, initial, training: { full: training, adapter: () => training }, rounds: ROUNDS, seed: 0 });
    const bases = new SharedBaseStore(new Map(backbone.map((n) => [n, initial.get(n)])));
    const ds = data(40);
    const per = ds.count / K;
    const clients = Array.from({ length: K }, (_, k) => ({ clientId: `c${k}`, train: Array.from({ length: per }, (_, i) => k * per + i) }));
    const grid = new InMemoryGrid(new ClientEngine(runtime, config), clients, { train: ds }, bases);
    let atHandoff: ParamStore | undefined;
    const records: RoundRecord[] = await runRounds(strategy, grid, {
      rounds: ROUNDS,
      clientsPerRound: PER_ROUND,
      seed: 0,
      dtype: "float32",
      evalEvery: 1,
      clientEvalEvery: 0,
      training,
      onRoundEnd: async (r) => {
        if (r.round === 2) atHandoff = strategy.globalModel();
      },
    });
    for (const r of records) assert.equal(r.accepted, PER_ROUND, `round ${r.round}: ${JSON.stringify(r.failures)}`);
    return { records, atHandoff: atHandoff!, bases, summary: strategy.summary() as { secondStage: { baseDownloads: number; deltaStart?: { rank: number; meanEnergyKept: number } } } };
  }

  /** Parameters of round `round`'s training downloads besides the base: the head and every triplet (all active while heating). */
  const adapterPart = () => count(head) + adapted.reduce((t, n) => {
    const [out, inn] = initial.shape(n) as [number, number];
    return t + R0 * (out + inn + 1);
  }, 0);

  test("delta-svd: the handoff model is the pre-trained backbone plus the truncated initiating change; no base is sent", async () => {
    const reference = await run({ handoff: "new-base" });
    const delta = await run({ handoff: "delta-svd" });
    // The same first stage: the new-base run's model after round 2 is W_after.
    const wAfter = reference.atHandoff;
    for (const r of [0, 1]) assert.deepEqual(delta.records[r]!.up, reference.records[r]!.up);
    const g = delta.atHandoff;
    let energy = 0;
    for (const n of adapted) {
      const [out, inn] = initial.shape(n) as [number, number];
      const change = sub(wAfter.get(n), initial.get(n));
      const { u, s, vt } = truncatedSvd(change, out, inn, R0);
      const truncation = new Float64Array(out * inn);
      for (let j = 0; j < R0; j++) for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) truncation[o * inn + i]! += u[o * R0 + j]! * s[j]! * vt[j * inn + i]!;
      const got = sub(g.get(n), initial.get(n));
      assert.ok(maxDiff(got, truncation) < 1e-5, `${n}: handoff change vs rank-${R0} truncation, max diff ${maxDiff(got, truncation)}`);
      // Eckart–Young: what is left is the energy of the discarded singular values.
      const all = truncatedSvd(change, out, inn, Math.min(out, inn)).s;
      const discarded = Array.from(all).slice(R0).reduce((t, x) => t + x * x, 0);
      assert.ok(Math.abs(sq(sub(change, got)) - discarded) < 1e-6 * Math.max(1, sq(change)), `${n}: residual ${sq(sub(change, got))} vs ${discarded}`);
      energy += Array.from(s).reduce((t, x) => t + x * x, 0) / sq(change);
    }
    for (const n of head) assert.deepEqual(g.get(n), wAfter.get(n), `${n}: the head is carried over`);
    for (const n of nonTarget) assert.deepEqual(g.get(n), initial.get(n), `${n}: non-target parameters are the pre-trained ones ("drop")`);
    assert.ok(nonTarget.some((n) => maxDiff(wAfter.get(n), initial.get(n)) > 0), "the initiating stage did change non-target parameters");
    const ds = delta.summary.secondStage.deltaStart!;
    assert.equal(ds.rank, R0);
    assert.ok(Math.abs(ds.meanEnergyKept - energy / adapted.length) < 1e-6);

    // Traffic: the new-base run sends the backbone to each newcomer in round 3; delta-svd sends only the adapter rounds' payload.
    const r3 = delta.records[2]!;
    assert.equal(r3.down.params, PER_ROUND * adapterPart(), "round 3 carries no base");
    assert.equal(reference.records[2]!.down.params, PER_ROUND * adapterPart() + PER_ROUND * count(backbone));
    assert.equal(delta.summary.secondStage.baseDownloads, 0);
    assert.deepEqual(delta.bases.holderCounts(), {}, "no client stored a base version ≥ 1");
    // Every annealing round downloads exactly what comes back up (head and active triplets): nothing else.
    for (const r of delta.records.slice(2)) assert.equal(r.down.params, r.up.params, `round ${r.round}`);
  });

  test('delta-svd with nonTarget "send": the non-target parameters go once to each client as a partial base the clients complete from the pre-trained one', async () => {
    const reference = await run({ handoff: "new-base" });
    const send = await run({ handoff: "delta-svd", nonTarget: "send" });
    const g = send.atHandoff;
    for (const n of nonTarget) assert.deepEqual(g.get(n), reference.atHandoff.get(n), `${n}: the initiating stage's value`);
    const drop = await run({ handoff: "delta-svd" });
    for (const n of adapted) assert.deepEqual(g.get(n), drop.atHandoff.get(n), `${n}: the adapted weights as with "drop"`);
    const seen = new Set<string>();
    for (const r of send.records.slice(2)) {
      const newcomers = r.clients.sampled.filter((c) => !seen.has(c));
      for (const c of newcomers) seen.add(c);
      // Down = what comes back up (head and active triplets) + the partial base for newcomers.
      assert.equal(r.down.params, r.up.params + newcomers.length * count(nonTarget), `round ${r.round}`);
      if (r.round === 3) assert.equal(r.up.params, PER_ROUND * adapterPart());
    }
    assert.equal(send.summary.secondStage.baseDownloads, seen.size);
    // Every client that took part holds version 1 = pre-trained adapted weights + the initiating stage's rest.
    for (const c of seen) {
      const b = send.bases.view(c).base(1)!;
      for (const n of adapted) assert.deepEqual(b.get(n), initial.get(n), `${c} ${n}`);
      for (const n of nonTarget) assert.deepEqual(b.get(n), reference.atHandoff.get(n), `${c} ${n}`);
    }
  });

  test("delta-svd is the default; nonTarget without it is a config error naming the field", () => {
    assert.throws(() => parseRunConfig({ strategy: { initiating: { handoff: "new-base", nonTarget: "send" } } }), /strategy\.initiating\.nonTarget: nonTarget applies to handoff "delta-svd" only/);
    const resolved = parseRunConfig({}).strategy as unknown as { initiating: Record<string, unknown> };
    assert.equal(resolved.initiating["handoff"], "delta-svd", "the main job's default");
    assert.equal("nonTarget" in resolved.initiating, false, 'absent nonTarget stays absent (it means "drop")');
  });
});
