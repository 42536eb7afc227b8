/**
 * The SVD-form adapter in a ViT: a fresh adapter leaves the logits unchanged; gradients of P, λ, Q
 * (with and without the orthogonality penalty, in both norms) match finite differences; masked
 * triplets contribute nothing and get exactly zero gradient; and `freezeMaskedEntries` keeps them
 * unchanged through an AdamW step that would otherwise decay them.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import * as g from "../../graph/builder.js";
import { grad } from "../../graph/autodiff/grad.js";
import type { Value } from "../../graph/node.js";
import { BATCH } from "../../graph/shape.js";
import { parseVitConfig } from "../../nn/config.js";
import { AdamW } from "../../nn/optim.js";
import { ParamStore } from "../../nn/params.js";
import { EvalStep } from "../../nn/train.js";
import { buildVit } from "../../nn/vit.js";
import { checkGrads } from "../../runtime/gradcheck.js";
import { NodeRuntime } from "../../runtime/node.js";
import { evaluate } from "../../runtime/reference.js";
import type { HostTensor } from "../../tensor.js";
import { Rng } from "../../util/rng.js";
import { buildAdaptedVit } from "../model.js";
import { parseAdapterSpec } from "../registry.js";
import { freezeMaskedEntries, svdE, svdMask, svdP, svdQ } from "./layer.js";

const cfg = parseVitConfig({
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 12,
  image_size: 4,
  patch_size: 2,
  num_channels: 2,
  layer_norm_eps: 1e-5,
  num_labels: 3,
});
const runtime = new NodeRuntime({ threads: 1 });
after(() => runtime.release());

function float64Feeds(specs: Map<string, { shape: readonly number[]; buffer?: boolean }>, rng: Rng, batch: number): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const [name, spec] of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const ln = /layernorm(_before|_after)?\.weight$/.test(name);
    const data = spec.buffer ? new Float64Array(n).fill(1) : Float64Array.from({ length: n }, () => (ln ? 1 : 0) + 0.3 * rng.normal());
    feeds[name] = { dtype: "float64", shape: [...spec.shape], data };
  }
  feeds["pixel_values"] = { dtype: "float64", shape: [batch, 2, 4, 4], data: Float64Array.from({ length: batch * 32 }, () => rng.normal()) };
  feeds["labels"] = { dtype: "int64", shape: [batch], data: BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % 3)) };
  return feeds;
}

const query = "vit.encoder.layer.0.attention.attention.query";

describe("SVD-form adapter", () => {
  test("a fresh adapter (λ = 0) leaves the logits unchanged; a nonzero λ changes them", async () => {
    const { model, adapter } = buildAdaptedVit(cfg, parseAdapterSpec({ kind: "adalora", initRank: 3, targetRank: 1 }));
    assert.equal(adapter.modules().length, 6);
    const rng = new Rng(2);
    const params = ParamStore.init(model.registry.specs.values(), rng);
    const px = Float32Array.from({ length: 2 * 32 }, () => rng.normal());
    const plain = await (await EvalStep.create(runtime, buildVit(cfg), params, 2)).run(px);
    const fresh = await (await EvalStep.create(runtime, model, params, 2)).run(px);
    assert.deepEqual(Array.from(fresh.data as Float32Array), Array.from(plain.data as Float32Array));
    params.get(svdE(query)).fill(0.7);
    const moved = await (await EvalStep.create(runtime, model, params, 2)).run(px);
    assert.notDeepEqual(Array.from(moved.data as Float32Array), Array.from(plain.data as Float32Array));
  });

  for (const orthNorm of ["frobenius", "squared"] as const) {
    test(`gradients of P, λ, Q and the head match finite differences (orthogonality penalty, ${orthNorm} norm)`, () => {
      const spec = parseAdapterSpec({ kind: "adalora", initRank: 3, targetRank: 1, orthWeight: 0.3, orthNorm });
      const { model, adapter } = buildAdaptedVit(cfg, spec, { dtype: "float64" });
      const labels = g.input("labels", "int64", [BATCH]);
      const loss = g.add(g.crossEntropy(model.logits, labels), adapter.regularizer!(model.registry)!);
      const feeds = float64Feeds(model.registry.specs, new Rng(5), 3);
      (feeds[svdMask(query)]!.data as Float64Array)[1] = 0; // one masked triplet inside the check
      const wrt = [...model.registry.values.entries()].filter(([n]) => adapter.isTrainable(n) || n.startsWith("classifier.")).map(([, v]) => v);
      checkGrads(loss, wrt, feeds, { rtol: 1e-5 });
    });
  }

  test("a masked triplet contributes nothing and gets exactly zero gradient in P, λ and Q", () => {
    const spec = parseAdapterSpec({ kind: "adalora", initRank: 3, targetRank: 1, orthWeight: 0.3 });
    const { model, adapter } = buildAdaptedVit(cfg, spec, { dtype: "float64" });
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.add(g.crossEntropy(model.logits, labels), adapter.regularizer!(model.registry)!);
    const feeds = float64Feeds(model.registry.specs, new Rng(6), 2);
    (feeds[svdMask(query)]!.data as Float64Array)[1] = 0;
    const names = [svdP(query), svdE(query), svdQ(query)];
    const grads = grad(
      loss,
      names.map((n) => model.registry.value(n)),
    );
    const [gp, ge, gq] = evaluate(grads as Value[], feeds).map((t) => t.data as Float64Array) as [Float64Array, Float64Array, Float64Array];
    const r = 3;
    assert.ok(ge[1] === 0); // -0 or 0
    for (let o = 0; o < 8; o++) assert.ok(gp[o * r + 1] === 0, `P[${o},1]`);
    for (let i = 0; i < 8; i++) assert.ok(gq[1 * 8 + i] === 0, `Q[1,${i}]`);
    // active triplets do get gradient (so the assertions above are not vacuous)
    assert.ok(Math.abs(ge[0]!) > 0 && Math.abs(gp[0]!) > 0 && Math.abs(gq[0]!) > 0);
    // and the masked triplet's values do not reach the logits: changing them leaves the output as is
    const before = (evaluate([model.logits], feeds, {})[0].data as Float64Array).slice();
    const e = feeds[svdE(query)]!.data as Float64Array;
    e[1] = e[1]! + 5;
    const afterChange = evaluate([model.logits], feeds, {})[0].data as Float64Array;
    assert.deepEqual(Array.from(afterChange), Array.from(before));
  });

  test("a module with every triplet pruned still has finite gradients (the Frobenius norm at zero)", () => {
    const spec = parseAdapterSpec({ kind: "adalora", initRank: 3, targetRank: 1, orthWeight: 0.3, orthNorm: "frobenius" });
    const { model, adapter } = buildAdaptedVit(cfg, spec, { dtype: "float64" });
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.add(g.crossEntropy(model.logits, labels), adapter.regularizer!(model.registry)!);
    const feeds = float64Feeds(model.registry.specs, new Rng(8), 2);
    (feeds[svdMask(query)]!.data as Float64Array).fill(0);
    const names = [svdP(query), svdE(query), svdQ(query)];
    const grads = grad(
      loss,
      names.map((n) => model.registry.value(n)),
    );
    for (const t of evaluate(grads as Value[], feeds)) for (const v of t.data as Float64Array) assert.ok(Number.isFinite(v));
  });

  test("freezeMaskedEntries keeps pruned triplets unchanged through an AdamW step with weight decay", () => {
    const { model, adapter } = buildAdaptedVit(cfg, parseAdapterSpec({ kind: "adalora", initRank: 3, targetRank: 1 }));
    const store = ParamStore.init(model.registry.specs.values(), new Rng(7));
    store.get(svdMask(query))[2] = 0;
    const names = [svdP(query), svdE(query), svdQ(query)];
    for (const n of names) store.get(n).fill(0.5);
    const before = names.map((n) => store.get(n).slice());
    const grads = new Map(names.map((n) => [n, new Float32Array(store.get(n).length).fill(0.1)]));
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.1 });
    const restore = freezeMaskedEntries(store, adapter.modules());
    opt.step(new Map(names.map((n) => [n, store.get(n)])), grads);
    restore();
    const [p, e, q] = names.map((n) => store.get(n)) as [Float32Array, Float32Array, Float32Array];
    assert.equal(e[2], before[1]![2]);
    assert.notEqual(e[0], before[1]![0]);
    for (let o = 0; o < 8; o++) assert.equal(p[o * 3 + 2], 0.5);
    for (let i = 0; i < 8; i++) assert.equal(q[2 * 8 + i], 0.5);
    assert.notEqual(p[0], 0.5);
  });
});
