/**
 * The adapter workflow end to end on real data: the shipped default backbone is a trained model (its
 * accuracy on its own source test split, MNIST digits 0-4); one epoch of fine-tuning on the target
 * task (digits 5-9) with each adapter kind beats the untrained head by a wide margin; the saved PEFT
 * adapter, loaded by `safl predict --adapter`, reproduces the reported test accuracy exactly; and
 * `safl pretrain` writes a checkpoint that records its source task.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { batches, filterClasses } from "../src/data/dataset.js";
import { fashionMnistSearchPaths, loadFashionMnist } from "../src/data/fashion-mnist.js";
import { loadMnist } from "../src/data/mnist.js";
import { loadCheckpoint } from "../src/io/checkpoint.js";
import { fromFloat32, toFloat32 } from "../src/io/safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "../src/io/safetensors-file.js";
import { Evaluator } from "../src/nn/evaluate.js";
import { buildVit } from "../src/nn/vit.js";
import { NodeRuntime } from "../src/runtime/node.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const safl = join(root, "bin", "safl.js");
const backbone = join(root, "models", "vit-micro-mnist-0-4");
const run = (...args: string[]) => spawnSync(process.execPath, [safl, ...args], { encoding: "utf8", cwd: root });
let tmp = "";
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "safl-ft-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Test accuracy of a loaded checkpoint on a dataset (a fresh single-threaded runtime). */
async function evaluateOn(ckpt: Awaited<ReturnType<typeof loadCheckpoint>>, data: Parameters<typeof batches>[0]) {
  const runtime = new NodeRuntime({ threads: 1 });
  try {
    return await new Evaluator(runtime, buildVit(ckpt.config), ckpt.params).run(batches(data, 256));
  } finally {
    await runtime.release();
  }
}

describe("default backbone", () => {
  test("classifies its own source test split (MNIST digits 0-4) well, and records how it was made", async () => {
    const ckpt = await loadCheckpoint(backbone);
    const source = (ckpt.config as Record<string, unknown>)["safl_source"] as { dataset: string; classes: number[]; command: string };
    assert.equal(source.dataset, "mnist");
    assert.deepEqual(source.classes, [0, 1, 2, 3, 4]);
    assert.match(source.command, /^safl pretrain /);
    const r = await evaluateOn(ckpt, filterClasses(loadMnist().test, source.classes));
    assert.equal(r.count, 1025);
    assert.ok(r.accuracy > 0.93, `source accuracy ${r.accuracy}`);
  });
});

describe("study backbone (models/vit-small-fmnist-0-4)", () => {
  test("classifies its own source test split (Fashion-MNIST classes 0-4) as its config says, and records how it was made", async (t) => {
    const dir = fashionMnistSearchPaths().find((d) => existsSync(join(d, "t10k-images-idx3-ubyte.gz")));
    // .ci/run installs the Debian package, so this runs in CI; elsewhere it may be absent.
    if (!dir) return t.skip("dataset-fashion-mnist is not installed");
    const ckpt = await loadCheckpoint(join(root, "models", "vit-small-fmnist-0-4"));
    const source = (ckpt.config as Record<string, unknown>)["safl_source"] as { dataset: string; classes: number[]; preset: string; augment: string; test_accuracy: number; command: string };
    assert.equal(source.dataset, "fashion-mnist");
    assert.deepEqual(source.classes, [0, 1, 2, 3, 4]);
    assert.equal(source.preset, "small-fmnist");
    assert.match(source.command, /^safl pretrain .*--augment flip,shift:2/);
    const r = await evaluateOn(ckpt, filterClasses((await loadFashionMnist(dir)).test, source.classes));
    assert.equal(r.count, 5000);
    // The accuracy pretrain measured at the end of training, re-measured here from the shipped file.
    assert.ok(Math.abs(r.accuracy - source.test_accuracy) < 1e-4, `source accuracy ${r.accuracy}, config says ${source.test_accuracy}`);
    assert.ok(r.accuracy > 0.88, `source accuracy ${r.accuracy}`);
  });
});

describe("safl finetune on the target task (digits 5-9), one epoch", () => {
  const results = new Map<string, { untrainedHeadAccuracy: number; testAccuracy: number; adapterParameters?: number }>();
  for (const mode of ["lora", "ffa-lora", "adalora", "full"]) {
    test(`${mode} beats the untrained head by a wide margin`, () => {
      const out = join(tmp, mode);
      const r = run("finetune", "--classes", "5-9", "--adapter", mode, "--epochs", "1", "--threads", "1", "--out", out, "--json");
      assert.equal(r.status, 0, r.stderr);
      const s = JSON.parse(r.stdout.trim().split("\n").pop()!);
      results.set(mode, s);
      assert.ok(s.untrainedHeadAccuracy < 0.45, `untrained ${s.untrainedHeadAccuracy}`);
      assert.ok(s.testAccuracy > s.untrainedHeadAccuracy + 0.3, `${mode}: ${s.untrainedHeadAccuracy} -> ${s.testAccuracy}`);
    });
  }

  test("the SVD form ends at the target budget: 4 triplets per module on average", () => {
    const s = results.get("adalora") as unknown as { activeRanks: Record<string, number> } | undefined;
    assert.ok(s, "the adalora run must have succeeded");
    const ranks = Object.values(s.activeRanks);
    assert.equal(ranks.length, 24);
    assert.equal(
      ranks.reduce((a, b) => a + b, 0),
      4 * 24,
    );
  });

  test("predict --adapter on the whole target test split reproduces the reported accuracy", async () => {
    const s = results.get("lora");
    assert.ok(s, "the lora run must have succeeded");
    const test5to9 = filterClasses(loadMnist().test, [5, 6, 7, 8, 9]);
    const images = join(tmp, "images.safetensors");
    await writeSafetensorsFile(images, new Map([["pixel_values", fromFloat32(test5to9.images, [test5to9.count, 1, 28, 28])]]));
    const out = join(tmp, "logits.safetensors");
    const r = run("predict", "--model", backbone, "--adapter", join(tmp, "lora"), "--images", images, "--out", out, "--threads", "1");
    assert.equal(r.status, 0, r.stderr);
    const logits = (await readSafetensorsFile(out)).tensors.get("logits")!;
    assert.deepEqual(logits.shape, [test5to9.count, 5]);
    const l = toFloat32(logits);
    let correct = 0;
    for (let i = 0; i < test5to9.count; i++) {
      const row = Array.from(l.subarray(i * 5, i * 5 + 5));
      if (row.indexOf(Math.max(...row)) === test5to9.labels[i]) correct++;
    }
    assert.equal(correct / test5to9.count, s.testAccuracy);
    const metrics = JSON.parse(await readFile(join(tmp, "lora", "metrics.json"), "utf8"));
    assert.equal(metrics.testAccuracy, s.testAccuracy);
  });

  test("bad adapter flags fail with one message naming the value", () => {
    const cases: [string[], RegExp][] = [
      [["finetune", "--out", join(tmp, "x"), "--adapter", "adalora", "--init-rank", "4", "--target-rank", "6"], /targetRank 6 is above initRank 4/],
      [["finetune", "--out", join(tmp, "x"), "--adapter", "lora", "--rank", "200"], /lora rank 200 exceeds the dimensions of "vit\.encoder\.layer\.0\.attention\.attention\.query" \(out 64 x in 64\)/],
      [["finetune", "--out", join(tmp, "x"), "--targets", "q_proj"], /target_modules "q_proj" matches no Linear layer/],
      [["finetune", "--out", join(tmp, "x"), "--adapter", "adalora", "--heat", "0.6", "--cool", "0.5"], /must leave at least one annealing round/],
      [["finetune", "--out", join(tmp, "x"), "--adapter", "dora"], /--adapter must be one of lora, ffa-lora, adalora, full, head, got "dora"/],
      [["finetune", "--out", join(tmp, "lora")], /already exists and is not empty; pass --force/],
      [["finetune", "--out", join(tmp, "x"), "--classes", "5-3"], /5-3/],
    ];
    for (const [args, re] of cases) {
      const r = run(...args);
      assert.notEqual(r.status, 0, args.join(" "));
      assert.match(r.stderr, re);
      assert.ok(!/at .*\.js:\d+/.test(r.stderr), `no stack trace for ${args.join(" ")}`);
    }
  });
});

describe("safl pretrain", () => {
  test("writes a checkpoint recording its source task, and refuses an image size the preset cannot take", async () => {
    const out = join(tmp, "pre");
    const r = run("pretrain", "--classes", "0,1", "--epochs", "1", "--threads", "1", "--out", out, "--json");
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.ok(s.testAccuracy > 0.9, `two digits, one epoch: ${s.testAccuracy}`);
    const ckpt = await loadCheckpoint(out);
    assert.equal(ckpt.config.num_labels, 2);
    const src = (ckpt.config as Record<string, unknown>)["safl_source"] as { classes: number[] };
    assert.deepEqual(src.classes, [0, 1]);
    const bad = run("pretrain", "--preset", "small-cifar", "--epochs", "1", "--out", join(tmp, "pre2"));
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /mnist images are 1x28x28, but preset small-cifar expects 3x32x32/);
  });
});
