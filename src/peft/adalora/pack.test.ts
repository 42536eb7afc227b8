/**
 * Packing: the parameter count of a packed adapter equals Σ over active triplets of (out + in + 1),
 * computed here independently from the shapes; unpack(pack(x)) restores active entries exactly and
 * leaves inactive ones as the destination held them; malformed packed modules are rejected.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseVitConfig } from "../../nn/config.js";
import { ParamStore } from "../../nn/params.js";
import { Rng } from "../../util/rng.js";
import { buildAdaptedVit } from "../model.js";
import { parseAdapterSpec } from "../registry.js";
import { svdE, svdMask, svdP, svdQ } from "./layer.js";
import { pack, packedParamCount, unpack } from "./pack.js";

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

function setup(seed: number) {
  const { model, adapter } = buildAdaptedVit(cfg, parseAdapterSpec({ kind: "adalora", initRank: 4, targetRank: 2 }));
  const rng = new Rng(seed);
  const store = ParamStore.init(model.registry.specs.values(), rng);
  for (const m of adapter.modules()) {
    const e = store.get(svdE(m.name));
    for (let i = 0; i < e.length; i++) e[i] = rng.normal();
  }
  return { adapter, store, rng };
}

describe("pack / unpack", () => {
  test("packed parameter count is Σ over active triplets of (out + in + 1)", () => {
    const { adapter, store, rng } = setup(1);
    let expected = 0;
    for (const m of adapter.modules()) {
      const mask = store.get(svdMask(m.name));
      for (let k = 0; k < 4; k++) {
        mask[k] = rng.next() < 0.5 ? 0 : 1;
        // out and in read from the parameter shapes, not from the module record
        if (mask[k]) expected += store.shape(svdP(m.name))[0]! + store.shape(svdQ(m.name))[1]! + 1;
      }
    }
    const packed = pack(store, adapter.modules());
    assert.equal(packedParamCount(packed), expected);
    assert.ok(expected > 0 && expected < adapter.modules().length * 4 * (8 + 8 + 1) + 2 * 4 * (12 - 8) * 2);
  });

  test("unpack(pack(x)) equals x on active entries and leaves inactive entries of the destination alone", () => {
    const src = setup(2);
    const dst = setup(3);
    const mods = src.adapter.modules();
    for (const m of mods) src.store.get(svdMask(m.name)).set([1, 0, 1, 0]);
    unpack(pack(src.store, mods), dst.store);
    for (const m of mods) {
      const r = 4;
      const out = m.outFeatures;
      const inF = m.inFeatures;
      const [sp, se, sq] = [svdP, svdE, svdQ].map((f) => src.store.get(f(m.name)));
      const fresh = setup(3).store;
      const [dp, de, dq] = [svdP, svdE, svdQ].map((f) => dst.store.get(f(m.name)));
      const [fp, fe, fq] = [svdP, svdE, svdQ].map((f) => fresh.get(f(m.name)));
      for (const k of [0, 1, 2, 3]) {
        const want = k % 2 === 0 ? { p: sp!, e: se!, q: sq! } : { p: fp!, e: fe!, q: fq! };
        assert.equal(de![k], want.e[k]);
        for (let o = 0; o < out; o++) assert.equal(dp![o * r + k], want.p[o * r + k]);
        for (let i = 0; i < inF; i++) assert.equal(dq![k * inF + i], want.q[k * inF + i]);
      }
      assert.deepEqual([...dst.store.get(svdMask(m.name))], [1, 0, 1, 0]);
    }
  });

  test("rejects a packed module whose sizes do not fit the model", () => {
    const { adapter, store } = setup(4);
    const packed = pack(store, adapter.modules());
    const m0 = packed.modules[0]!;
    assert.throws(() => unpack({ modules: [{ ...m0, e: m0.e.subarray(1) }] }, store), /e has 3 values, expected 4 for 4 active triplets/);
    assert.throws(() => unpack({ modules: [{ ...m0, mask: new Uint8Array(5), initRank: 5 }] }, store), /mask has 5 entries/);
    assert.throws(() => unpack({ modules: [{ ...m0, name: "nope" }] }, store), /"nope" is not an adapted module/);
  });
});
