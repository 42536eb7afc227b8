/**
 * `strategy.serverOptimizer` in the run config: set through `--set` overrides (also on the default
 * SA-FedLoRA strategy, whose object has no name), defaults filled in, mistakes reported with their
 * field path, absent from a config that does not set it; and a short `simulate` run with FedAvgM
 * on the shipped backbone and embedded MNIST (both SA-FedLoRA stages, 3 rounds).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { NodeRuntime } from "../runtime/node.js";
import { applyOverrides, parseRunConfig } from "./config.js";
import { simulate } from "./simulate.js";

const fromSets = (...sets: string[]) => parseRunConfig(applyOverrides({}, sets));

describe("strategy.serverOptimizer in the run config", () => {
  test("--set strategy.serverOptimizer.name alone applies to the default SA-FedLoRA, with the optimizer's defaults", () => {
    const cfg = fromSets("strategy.serverOptimizer.name=fedadam");
    assert.equal(cfg.strategy.name, "sa-fedlora");
    assert.deepEqual(cfg.strategy.serverOptimizer, { name: "fedadam", lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9 });
    const avgm = fromSets("strategy.name=fedavg", "strategy.serverOptimizer.name=fedavgm", "strategy.serverOptimizer.lr=0.5");
    assert.deepEqual(avgm.strategy, { name: "fedavg", serverOptimizer: { name: "fedavgm", lr: 0.5, momentum: 0.9 } });
  });

  test("a config without it resolves exactly as before (no serverOptimizer key at all)", () => {
    assert.ok(!("serverOptimizer" in parseRunConfig({}).strategy));
    assert.ok(!("serverOptimizer" in parseRunConfig({ strategy: { name: "fedlora" } }).strategy));
  });

  test("mistakes name the field: unknown optimizer (with the known ones), negative lr, β outside [0, 1), unknown key", () => {
    assert.throws(() => fromSets("strategy.serverOptimizer.name=adam"), /strategy\.serverOptimizer\.name: Invalid discriminator value\. Expected 'fedavgm' \| 'fedadagrad' \| 'fedadam' \| 'fedyogi' \(got "adam"\)/);
    assert.throws(() => fromSets("strategy.serverOptimizer.name=fedyogi", "strategy.serverOptimizer.lr=-0.01"), /strategy\.serverOptimizer\.lr: Too small: expected number to be >0 \(got -0\.01\)/);
    assert.throws(() => fromSets("strategy.serverOptimizer.name=fedadam", "strategy.serverOptimizer.beta2=1"), /strategy\.serverOptimizer\.beta2: .* \(got 1\)/);
    assert.throws(() => fromSets("strategy.serverOptimizer.name=fedavgm", "strategy.serverOptimizer.beta1=0.9"), /strategy\.serverOptimizer: Unrecognized key: "beta1"/);
    // Without a name the optimizer is unknown, and the message says which field is missing.
    assert.throws(() => fromSets("strategy.serverOptimizer.lr=0.1"), /strategy\.serverOptimizer\.name: /);
  });
});

describe("simulate with a server optimizer", () => {
  const runtime = new NodeRuntime({ threads: 1 });
  after(() => runtime.release());

  const base = {
    rounds: 3,
    data: { dataset: "mnist", classes: "5-9", trainLimit: 120 },
    clients: { count: 4, perRound: 2 },
    strategy: { name: "sa-fedlora", initiating: { rounds: 1 }, adapter: { initRank: 2, targetRank: 1 }, heatRounds: 0, coolRounds: 1 },
    training: { localSteps: 1, batch: 8 },
    evaluation: { every: 0 },
    execution: { workers: 0, threads: 1 },
  };

  test("SA-FedLoRA + FedAvgM for 3 rounds runs both stages, reports the optimizer, and changes the model", async () => {
    const cfg = parseRunConfig(applyOverrides(base, ["strategy.serverOptimizer.name=fedavgm"]));
    const result = await simulate(cfg, runtime);
    assert.deepEqual(
      result.records.map((r) => [r.round, r.stage, r.accepted]),
      [
        [1, "initiating", 2],
        [2, "annealing", 2],
        [3, "annealing", 2],
      ],
    );
    const acc = result.summary.finalAccuracy;
    assert.ok(acc !== undefined && acc >= 0 && acc <= 1, `final accuracy ${acc}`);
    const details = result.summary.details as { firstStage: { serverOptimizer: unknown }; secondStage: { serverOptimizer: unknown } };
    assert.deepEqual(details.firstStage.serverOptimizer, { name: "fedavgm", lr: 1, momentum: 0.9 });
    assert.deepEqual(details.secondStage.serverOptimizer, { name: "fedavgm", lr: 1, momentum: 0.9 });
    for (const n of result.model.names()) assert.ok(result.model.get(n).every(Number.isFinite), n);
    // Round 3 is the annealing stage's second round: momentum makes it differ from plain averaging.
    const plain = await simulate(parseRunConfig(base), runtime);
    let diff = 0;
    for (const n of plain.model.names()) {
      const a = plain.model.get(n);
      const b = result.model.get(n);
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    }
    assert.ok(diff > 0, "FedAvgM's momentum should change the final model");
  });
});
