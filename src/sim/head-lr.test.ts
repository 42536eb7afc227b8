/**
 * `training.lr.head`, the classification head's own learning rate in adapter rounds: how the run
 * config resolves it (absent: the adapter kind's federated head rate — 0.003 for the SVD form, none
 * for LoRA and FFA-LoRA, whose instructions stay byte-for-byte as before; set: on every adapter
 * kind's rounds, never on full-model rounds; bad values named by path), and what a federated round does with it on a tiny
 * ViT — after one AdamW step from fresh moments every head entry has moved by the head's rate, the
 * head equals that of a run at the head's rate and the adapter that of a run at the adapter's rate,
 * and a head rate equal to the adapter's changes nothing.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { type ImageDataset, makeDataset } from "../data/dataset.js";
import { ClientEngine } from "../fl/client.js";
import { runRounds } from "../fl/driver.js";
import { instructionConfig } from "../fl/instruction.js";
import { createStrategy, type StrategySpec, strategySpecSchema } from "../fl/strategies/index.js";
import type { LocalTraining } from "../fl/strategy.js";
import { parseVitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { buildVit } from "../nn/vit.js";
import { isHeadParam } from "../peft/model.js";
import { NodeRuntime } from "../runtime/node.js";
import { Rng } from "../util/rng.js";
import { parseRunConfig } from "./config.js";
import { InMemoryGrid, SharedBaseStore } from "./memory-grid.js";
import { localTraining } from "./simulate.js";

const runtime = new NodeRuntime({ threads: 1 });
after(() => runtime.release());

const config = parseVitConfig({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 12, image_size: 4, patch_size: 2, num_channels: 1, num_labels: 3 });
const initial = ParamStore.init(buildVit(config).registry.specs.values(), new Rng(11));

function data(n: number): ImageDataset {
  const rng = new Rng(5);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const images = Float32Array.from({ length: n * 16 }, (_, k) => rng.normal() + (k % 3 === labels[Math.floor(k / 16)] ? 1 : 0));
  return makeDataset({ name: "synthetic", images, labels, channels: 1, height: 4, width: 4, classes: [0, 1, 2] });
}

/** The global model after one round of one client taking one AdamW step (no weight decay) on 8 examples. */
async function oneStep(strategyRaw: unknown, lr: number, headLr?: number): Promise<ParamStore> {
  const training: LocalTraining = { optimizer: "adamw", lr, weightDecay: 0, localEpochs: 0, localSteps: 1, batch: 8, ...(headLr === undefined ? {} : { headLr }) };
  const spec = strategySpecSchema.parse(strategyRaw) as StrategySpec;
  const strategy = createStrategy(spec, { config, initial, training: { full: training, adapter: () => training }, rounds: 1, seed: 0 });
  const backbone = new Map(initial.names().filter((n) => !isHeadParam(n)).map((n) => [n, initial.get(n)]));
  const grid = new InMemoryGrid(new ClientEngine(runtime, config), [{ clientId: "c0", train: [0, 1, 2, 3, 4, 5, 6, 7] }], { train: data(8) }, new SharedBaseStore(backbone));
  await runRounds(strategy, grid, { rounds: 1, clientsPerRound: 1, seed: 0, dtype: "float32", evalEvery: 0, clientEvalEvery: 0, training });
  return strategy.globalModel();
}

const same = (a: ParamStore, b: ParamStore, names: readonly string[]) => names.every((n) => a.get(n).every((v, i) => v === b.get(n)[i]));

describe("training.lr.head", () => {
  test("absent: the kind's federated head rate (SVD form 0.003, LoRA none: instructions unchanged); set: every adapter kind, never full rounds; a bad value is named by path", () => {
    const plain = localTraining(parseRunConfig({}));
    assert.equal(plain.adapter("adalora").headLr, 0.003, "the SVD form's head learns at LoRA's rate by default");
    assert.equal(plain.adapter("adalora").lr, 0.01, "its factors keep the kind's rate");
    for (const kind of ["lora", "ffa-lora"] as const) assert.equal("headLr" in plain.adapter(kind), false, `${kind}: the head at the kind's own rate, no key`);
    assert.equal("headLr" in plain.full, false);
    const instr = { task: "train", mode: "lora", adapterSpec: undefined, ...plain.adapter("lora"), mu: 0, seed: 1, initSeed: 2, baseVersion: 0 } as const;
    assert.equal("headLr" in instructionConfig(instr), false);

    const withHead = localTraining(parseRunConfig({ training: { lr: { head: 0.001 } } }));
    assert.equal(withHead.adapter("adalora").headLr, 0.001, "the config's rate wins over the kind's");
    assert.equal(withHead.adapter("adalora").lr, 0.01);
    assert.equal(withHead.adapter("lora").headLr, 0.001);
    assert.equal("headLr" in withHead.full, false, "full-model rounds train the head with every other weight at lr.full");

    assert.throws(() => parseRunConfig({ training: { lr: { head: 0 } } }), /- training\.lr\.head: Too small: expected number to be >0 \(got 0\)/);
    assert.throws(() => parseRunConfig({ training: { lr: { head: "fast" } } }), /- training\.lr\.head: Invalid input: expected number/);
  });

  test("one AdamW step: the head moves by the head's rate and matches a run at that rate; the adapter matches a run at its own rate", async () => {
    const svd8 = { name: "sa-fedlora", initiating: { rounds: 0 }, fixedRank: true, adapter: { targetRank: 2 } };
    const names = initial.names();
    const head = names.filter(isHeadParam);
    const backbone = names.filter((n) => !isHeadParam(n));
    const split = await oneStep(svd8, 0.01, 0.003);
    const atAdapterRate = await oneStep(svd8, 0.01);
    const atHeadRate = await oneStep(svd8, 0.003);
    // Independent of the code under test: from zero moments AdamW's first step is lr·g/(|g| + eps), i.e. lr per entry.
    for (const n of head) {
      const moved = split.get(n).map((v, i) => Math.abs(v - initial.get(n)[i]!));
      for (const d of moved) assert.ok(Math.abs(d - 0.003) < 1e-6, `${n}: an entry moved by ${d}, expected the head rate 0.003`);
    }
    assert.ok(same(split, atHeadRate, head), "the head as in a run at lr 0.003");
    assert.ok(same(split, atAdapterRate, backbone), "the merged adapter as in a run at lr 0.01");
    assert.ok(!same(split, atAdapterRate, head), "the head rate must make a difference");
    const equal = await oneStep(svd8, 0.01, 0.01);
    assert.ok(same(equal, atAdapterRate, names), "a head rate equal to the adapter's is the same run");
  });

  test("FedLoRA takes the head rate too", async () => {
    const names = initial.names();
    const head = names.filter(isHeadParam);
    const split = await oneStep({ name: "fedlora" }, 0.003, 0.001);
    const atHeadRate = await oneStep({ name: "fedlora" }, 0.001);
    const atLr = await oneStep({ name: "fedlora" }, 0.003);
    assert.ok(same(split, atHeadRate, head));
    assert.ok(same(split, atLr, names.filter((n) => !isHeadParam(n))));
  });
});
