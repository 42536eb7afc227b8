/**
 * Rank allocation in a step loop: nothing changes while heating; during annealing the mask is
 * re-allocated every `interval` steps to exactly the scheduled budget, chosen by importance; the
 * last annealing step allocates the target budget and the mask then stays frozen through cooling.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseVitConfig } from "../../nn/config.js";
import { ParamStore } from "../../nn/params.js";
import { Rng } from "../../util/rng.js";
import { buildAdaptedVit } from "../model.js";
import { parseAdapterSpec } from "../registry.js";
import { RankController } from "./controller.js";
import { ImportanceTracker } from "./importance.js";
import { type SvdAdapter, readMask, svdE, svdP, svdQ } from "./layer.js";

const cfg = parseVitConfig({
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 12,
  image_size: 4,
  patch_size: 2,
  num_channels: 1,
  num_labels: 3,
});

describe("RankController", () => {
  test("follows the schedule, allocates by importance, freezes for cooling", () => {
    const { model, adapter } = buildAdaptedVit(cfg, parseAdapterSpec({ kind: "adalora", initRank: 4, targetRank: 1, targetModules: ["query", "value"] }));
    const store = ParamStore.init(model.registry.specs.values(), new Rng(1));
    const mods = adapter.modules();
    // Importance: λ entries with w·g growing with the triplet index, module "value" twice "query".
    const imp = new ImportanceTracker(0.5, 0.5);
    const feed = () => {
      const grads = new Map<string, Float32Array>();
      for (const [mi, m] of mods.entries()) {
        store.get(svdE(m.name)).set([1, 1, 1, 1]);
        grads.set(svdE(m.name), Float32Array.from([1, 2, 3, 4], (v) => v * (mi + 1)));
        grads.set(svdP(m.name), new Float32Array(store.get(svdP(m.name)).length));
        grads.set(svdQ(m.name), new Float32Array(store.get(svdQ(m.name)).length));
      }
      imp.update(store, grads, mods);
    };
    // 20 steps: heat 4, cool 6 → annealing steps 5..14, allocation every 3 steps from the end of heating
    const ctl = new RankController(adapter as SvdAdapter, { totalSteps: 20, heatSteps: 4, coolSteps: 6, interval: 3 });
    assert.equal(ctl.initialBudget, 8);
    assert.equal(ctl.targetBudget, 2);
    const events = [];
    for (let step = 1; step <= 20; step++) {
      feed();
      events.push(ctl.afterStep(step, store, imp));
    }
    assert.deepEqual(
      events.filter((e) => e.allocated).map((e) => e.step),
      [7, 10, 13, 14],
    );
    assert.ok(events.slice(0, 4).every((e) => e.phase === "heating" && e.budget === 8 && !e.allocated));
    assert.ok(events.slice(14).every((e) => e.phase === "cooling" && e.budget === 2 && !e.allocated));
    assert.equal(events[13]!.budget, 2);
    // budget non-increasing
    for (let i = 1; i < 20; i++) assert.ok(events[i]!.budget <= events[i - 1]!.budget);
    // Scores grow with |w·g|: the two kept triplets are value's [2] and [3] (w·g = 6 and 8).
    assert.deepEqual([...readMask(store, mods[0]!.name)], [0, 0, 0, 0]);
    assert.deepEqual([...readMask(store, mods[1]!.name)], [0, 0, 1, 1]);
  });

  test("rejects schedules without annealing steps and bad intervals", () => {
    const { adapter } = buildAdaptedVit(cfg, parseAdapterSpec({ kind: "adalora", initRank: 4, targetRank: 1 }));
    assert.throws(() => new RankController(adapter as SvdAdapter, { totalSteps: 10, heatSteps: 5, coolSteps: 5, interval: 1 }), /must leave at least one annealing round/);
    assert.throws(() => new RankController(adapter as SvdAdapter, { totalSteps: 10, heatSteps: 1, coolSteps: 1, interval: 0 }), /interval must be a positive integer, got 0/);
  });
});
