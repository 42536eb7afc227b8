/**
 * @module cli/commands/pretrain
 * `safl pretrain`: trains a ViT from scratch on a source task (AdamW, warm-up + cosine learning
 * rate) and writes an HF checkpoint directory whose config.json records the source task, so a
 * backbone always says what it was trained on. The project's default backbone is made by this
 * command (docs/pretraining.md has the exact invocation).
 */
import { join } from "node:path";
import { checkImagesFit, loadTask, withLabels } from "../../data/task.js";
import { saveCheckpoint } from "../../io/checkpoint.js";
import { presetConfig } from "../../nn/config.js";
import { Evaluator } from "../../nn/evaluate.js";
import { warmupCosineLr } from "../../nn/lr-schedule.js";
import { AdamW } from "../../nn/optim.js";
import { ParamStore } from "../../nn/params.js";
import { buildVit } from "../../nn/vit.js";
import { Trainer } from "../../peft/trainer.js";
import { NodeRuntime } from "../../runtime/node.js";
import { Rng } from "../../util/rng.js";
import { intFlag, numberFlag, optionalString, parseFlags, requiredString } from "../args.js";
import { normalizationFromFlags, TRAINING_FLAGS, taskFlags, trainEpochs } from "../common.js";
import { prepareOutput } from "../output-dir.js";
import { Progress } from "../progress.js";

export const pretrainHelp = `safl pretrain — train a ViT from scratch on a source task, save an HF checkpoint

Usage: safl pretrain --out <dir> [--dataset mnist] [--classes 0-4] [--preset micro-mnist]
                     [--epochs 10] [--seed 0] [options]

  --dataset       mnist (embedded), fashion-mnist, cifar10, or a directory (IDX files,
                  CIFAR-10 binary batches, or train/test.safetensors)   (default mnist)
  --data-dir      where fashion-mnist / cifar10 files are
  --classes       source classes, e.g. 0-4 or 1,3,5-7 (default: all)
  --mean, --std   per-channel normalization, e.g. --mean 0.5 --std 0.5 (default: none, pixels in [0,1])
  --preset        architecture: micro-mnist, tiny-mnist, small-cifar, vit-tiny-224 (default micro-mnist)
  --epochs        passes over the training set (default 10)
  --batch         batch size (default 64)
  --lr            peak AdamW learning rate (default 0.002), 5% warm-up then cosine decay
  --weight-decay  AdamW weight decay (default 0.05)
  --seed          initialization and shuffling seed (default 0)
  --threads       onnxruntime threads (default 2)
  --out           checkpoint directory to write (config.json + model.safetensors)
  --force         replace --out if it exists
  --json          print the summary as JSON`;

export async function pretrain(argv: string[]): Promise<number> {
  const f = parseFlags(
    argv,
    { ...TRAINING_FLAGS, preset: { type: "string" } },
    "pretrain",
  );
  if (f["help"]) {
    console.log(pretrainHelp);
    return 0;
  }
  const out = requiredString(f["out"], "out", "pretrain");
  const dataset = optionalString(f["dataset"]) ?? "mnist";
  const presetName = optionalString(f["preset"]) ?? "micro-mnist";
  const epochs = intFlag(f["epochs"], "epochs", 10, 1, 10_000);
  const batch = intFlag(f["batch"], "batch", 64, 1, 65_536);
  const lr = numberFlag(f["lr"], "lr", 0.002, 0, 10);
  const weightDecay = numberFlag(f["weight-decay"], "weight-decay", 0.05, 0, 10);
  const seed = intFlag(f["seed"], "seed", 0, 0);
  const threads = intFlag(f["threads"], "threads", 2, 1, 256);
  const normalization = normalizationFromFlags(f);
  const preset = presetConfig(presetName);
  const pending = await prepareOutput(out, Boolean(f["force"]));

  const runtime = new NodeRuntime({ threads });
  try {
    const task = await loadTask(dataset, { ...taskFlags(f), ...(normalization ? { normalization } : {}) });
    checkImagesFit(task, preset.config, `preset ${presetName}`);
    const config = withLabels(preset.config, task.classes.length, task.classNames);
    const model = buildVit(config);
    const rng = new Rng(seed);
    const store = ParamStore.init(model.registry.specs.values(), rng);
    const optimizer = new AdamW({ lr, weightDecay });
    const trainer = await Trainer.create(runtime, model, store, { trainable: () => true, batch, optimizer });
    const totalSteps = epochs * Math.floor(task.train.count / batch);
    const schedule = warmupCosineLr(lr, totalSteps, Math.floor(totalSteps * 0.05));
    const progress = new Progress(0, "pretrain");
    progress.line(
      `pretrain: ${presetName} (${store.count().toLocaleString("en")} parameters) on ${dataset} classes [${task.classes.join(",")}]: ${task.train.count} train / ${task.test.count} test images, ${epochs} epochs of ${Math.floor(task.train.count / batch)} steps`,
    );
    const logs = await trainEpochs({
      trainer,
      evaluator: new Evaluator(runtime, model, store),
      task,
      epochs,
      batch,
      rng,
      progress,
      beforeStep: (step) => {
        optimizer.lr = schedule(step);
      },
    });
    progress.finish();
    const last = logs[logs.length - 1]!;
    const source = {
      dataset,
      classes: task.classes,
      preset: presetName,
      epochs,
      batch,
      lr,
      weight_decay: weightDecay,
      seed,
      normalization: normalization ?? null,
      train_images: task.train.count,
      test_images: task.test.count,
      test_accuracy: Number(last.test.accuracy.toFixed(6)),
      command: `safl pretrain ${argv.filter((a) => a !== "--force").join(" ")}`,
    };
    await saveCheckpoint(pending.tmp, config, store, { safl_source: source });
    await pending.commit();
    const summary = { out, parameters: store.count(), testAccuracy: last.test.accuracy, testLoss: last.test.loss, epochs: logs.length, seconds: logs.reduce((s, l) => s + l.seconds, 0) };
    if (f["json"]) console.log(JSON.stringify(summary));
    else console.log(`pretrain: test accuracy ${(100 * last.test.accuracy).toFixed(2)}% on ${dataset} [${task.classes.join(",")}]; wrote ${join(out, "model.safetensors")}`);
    return 0;
  } catch (e) {
    await pending.abandon();
    throw e;
  } finally {
    await runtime.release();
  }
}
