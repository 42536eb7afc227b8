/**
 * Merging: the plain model with W + ΔW gives the adapter model's logits within 1e-5 relative (LoRA,
 * FFA-LoRA and the SVD form with a partial mask), and unmerging gives back the base weights.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { parseVitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { EvalStep } from "../nn/train.js";
import { buildVit } from "../nn/vit.js";
import { NodeRuntime } from "../runtime/node.js";
import { Rng } from "../util/rng.js";
import { svdMask } from "./adalora/layer.js";
import { mergeAdapter, unmergeAdapter } from "./merge.js";
import { buildAdaptedVit } from "./model.js";
import { type AdapterSpecInput, parseAdapterSpec } from "./registry.js";

const cfg = parseVitConfig({
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 24,
  image_size: 8,
  patch_size: 4,
  num_channels: 1,
  num_labels: 4,
  layer_norm_eps: 1e-6,
});
const runtime = new NodeRuntime({ threads: 1 });
after(() => runtime.release());

const specs: AdapterSpecInput[] = [
  { kind: "lora", rank: 4, targetModules: ["query", "value", "output.dense"] },
  { kind: "ffa-lora", rank: 2 },
  { kind: "adalora", initRank: 4, targetRank: 2 },
];

describe("merge / unmerge", () => {
  for (const raw of specs) {
    test(`${raw.kind}: merged forward equals adapter forward (1e-5 relative), unmerge restores the base`, async () => {
      const { model, adapter } = buildAdaptedVit(cfg, parseAdapterSpec(raw));
      const rng = new Rng(9);
      const store = ParamStore.init(model.registry.specs.values(), rng);
      // every adapter parameter random and sizeable, so ΔW is far from zero
      for (const n of store.names()) {
        if (!adapter.isAdapterParam(n)) continue;
        const v = store.get(n);
        for (let i = 0; i < v.length; i++) v[i] = 0.3 * rng.normal();
      }
      if (raw.kind === "adalora") for (const m of adapter.modules()) store.get(svdMask(m.name)).set([1, 0, 1, 1]);
      const px = Float32Array.from({ length: 3 * 64 }, () => rng.normal());
      const adapted = (await (await EvalStep.create(runtime, model, store, 3)).run(px)).data as Float32Array;
      const merged = mergeAdapter(store, adapter);
      const plain = buildVit(cfg);
      merged.check(plain.registry.specs.values(), "merged store", true);
      const viaMerge = (await (await EvalStep.create(runtime, plain, merged, 3)).run(px)).data as Float32Array;
      const base = (await (await EvalStep.create(runtime, plain, store, 3)).run(px)).data as Float32Array;
      const scale = Math.max(...adapted.map(Math.abs));
      let worst = 0;
      let moved = 0;
      for (let i = 0; i < adapted.length; i++) {
        worst = Math.max(worst, Math.abs(viaMerge[i]! - adapted[i]!) / scale);
        moved = Math.max(moved, Math.abs(base[i]! - adapted[i]!) / scale);
      }
      assert.ok(worst < 1e-5, `merged vs adapter: ${worst}`);
      assert.ok(moved > 1e-2, `the adapter must change the logits for the check to mean anything (${moved})`);
      const back = unmergeAdapter(merged, adapter, store);
      for (const m of adapter.modules()) {
        const w0 = store.get(`${m.name}.weight`);
        const w1 = back.get(`${m.name}.weight`);
        for (let i = 0; i < w0.length; i++) assert.ok(Math.abs(w1[i]! - w0[i]!) < 1e-6, `${m.name}[${i}]`);
      }
    });
  }
});
