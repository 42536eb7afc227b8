/**
 * How the SVD form's P and Q start (`init`): "orthonormal" gives PᵀP = I and QQᵀ = I with λ = 0 (so
 * ΔW = 0), deterministically per seed, and draws as many random numbers as the normal init, so the
 * values after it in the stream do not move; an absent `init` is PEFT's N(0, 0.02), bit for bit the
 * same as `"normal"`, and stays absent from the resolved spec (which travels in round instructions).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseVitConfig } from "../../nn/config.js";
import { ParamStore } from "../../nn/params.js";
import { Rng } from "../../util/rng.js";
import { buildAdaptedVit } from "../model.js";
import { parseAdapterSpec } from "../registry.js";
import { svdE, svdP, svdQ } from "./layer.js";

const cfg = parseVitConfig({
  hidden_size: 8,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 12,
  image_size: 4,
  patch_size: 2,
  num_channels: 1,
  num_labels: 3,
});

function init(fields: Record<string, unknown>, seed: number) {
  const spec = parseAdapterSpec({ kind: "adalora", initRank: 3, targetRank: 1, ...fields });
  const { model, adapter } = buildAdaptedVit(cfg, spec);
  return { spec, adapter, store: ParamStore.init(model.registry.specs.values(), new Rng(seed)) };
}

/** max |G − I| of the Gram matrix of k vectors of length len, vector v's entry j at x[v·vs + j·es]. */
function gramError(x: Float32Array, k: number, len: number, vs: number, es: number): number {
  let worst = 0;
  for (let u = 0; u < k; u++) {
    for (let v = 0; v < k; v++) {
      let dot = 0;
      for (let j = 0; j < len; j++) dot += x[u * vs + j * es]! * x[v * vs + j * es]!;
      worst = Math.max(worst, Math.abs(dot - (u === v ? 1 : 0)));
    }
  }
  return worst;
}

describe("SVD-form init", () => {
  test('"orthonormal": PᵀP = I and QQᵀ = I within 1e-5 in every module, λ = 0 and ΔW = 0', () => {
    const { adapter, store } = init({ init: "orthonormal" }, 3);
    const modules = adapter.modules();
    assert.equal(modules.length, 12);
    for (const m of modules) {
      const r = m.rank;
      // P [out, r]: columns are the vectors (entry j of column v at j·r + v); Q [r, in]: rows.
      const errP = gramError(store.get(svdP(m.name)), r, m.outFeatures, 1, r);
      const errQ = gramError(store.get(svdQ(m.name)), r, m.inFeatures, m.inFeatures, 1);
      assert.ok(errP <= 1e-5, `${m.name}: |PᵀP − I| = ${errP}`);
      assert.ok(errQ <= 1e-5, `${m.name}: |QQᵀ − I| = ${errQ}`);
      assert.ok(store.get(svdE(m.name)).every((v) => v === 0), `${m.name}: λ starts at 0`);
      assert.ok(adapter.delta(store, m).every((v) => v === 0), `${m.name}: ΔW = 0 at the start`);
    }
  });

  test('"orthonormal" is deterministic per seed, differs across seeds, and leaves the rest of the random stream where "normal" leaves it', () => {
    const a = init({ init: "orthonormal" }, 5);
    const b = init({ init: "orthonormal" }, 5);
    const c = init({ init: "orthonormal" }, 6);
    const normal = init({}, 5);
    const p0 = svdP(a.adapter.modules()[0]!.name);
    assert.deepEqual(a.store.get(p0), b.store.get(p0));
    assert.notDeepEqual(a.store.get(p0), c.store.get(p0));
    // Parameters declared after the adapter factors (layer norms of the next layer, the head) get the same draws.
    for (const n of ["classifier.weight", "vit.encoder.layer.1.attention.attention.query.weight"]) assert.deepEqual(a.store.get(n), normal.store.get(n), n);
  });

  test("absent init = \"normal\" = PEFT's N(0, 0.02), bit for bit, and the resolved spec keeps it absent", () => {
    const absent = init({}, 4);
    const normal = init({ init: "normal" }, 4);
    assert.equal("init" in absent.spec, false, "an absent init is not filled in (instructions and study keys stay as before)");
    assert.equal(normal.spec.kind === "adalora" && normal.spec.init, "normal");
    let sq = 0;
    let n = 0;
    for (const m of absent.adapter.modules()) {
      for (const name of [svdP(m.name), svdQ(m.name)]) {
        assert.deepEqual(absent.store.get(name), normal.store.get(name), name);
        for (const v of absent.store.get(name)) {
          sq += v * v;
          n++;
        }
      }
    }
    const std = Math.sqrt(sq / n);
    assert.ok(Math.abs(std - 0.02) < 0.003, `std of P and Q entries ${std}, expected about 0.02`);
  });

  test("a bad init is a schema error naming the field", () => {
    assert.throws(() => parseAdapterSpec({ kind: "adalora", init: "qr" }), /- init: Invalid option: expected one of "normal"\|"orthonormal" \(got "qr"\)/);
  });
});
