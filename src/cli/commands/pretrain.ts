/**
 * @module cli/commands/pretrain
 * `safl pretrain`: trains a ViT from scratch on a source task (AdamW, warm-up + cosine learning
 * rate) and writes an HF checkpoint directory whose config.json records the source task, so a
 * backbone always says what it was trained on. The project's default backbone is made by this
 * command (docs/pretraining.md has the exact invocation).
 */
import { join } from "node:path";
import { augmentBatch, describeAugmentation, parseAugmentation } from "../../data/augment.js";
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
import { defineFlags, withDefault } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { normalizationFromFlags, taskFlags, trainEpochs } from "../common.js";
import { DATA_FLAGS, PRESET, TRAINING_FLAGS } from "../flags.js";
import { prepareOutput } from "../output-dir.js";
import { Progress } from "../progress.js";

const flags = defineFlags({
  ...DATA_FLAGS,
  classes: { ...DATA_FLAGS.classes, description: "source classes, e.g. 0-4 or 1,3,5-7" },
  mean: { ...DATA_FLAGS.mean, defaultText: "none, pixels in [0,1]" },
  std: { ...DATA_FLAGS.std, defaultText: "none, pixels in [0,1]" },
  preset: withDefault(PRESET, "micro-mnist"),
  augment: { type: "string", value: "<list>", defaultText: "none", description: "training-time augmentation: flip, shift:<pixels>, e.g. flip,shift:2" },
  ...TRAINING_FLAGS,
  epochs: withDefault(TRAINING_FLAGS.epochs, 10),
  batch: withDefault(TRAINING_FLAGS.batch, 64),
  lr: { ...withDefault(TRAINING_FLAGS.lr, 0.002), description: "peak AdamW learning rate, 5% warm-up then cosine decay" },
  "weight-decay": withDefault(TRAINING_FLAGS["weight-decay"], 0.05),
  out: { ...TRAINING_FLAGS.out, description: "checkpoint directory to write (config.json + model.safetensors)" },
});

export const pretrainCommand = defineCommand({
  name: "pretrain",
  summary: "train a ViT from scratch on a source task (makes a backbone)",
  usage: "--out <dir> [--dataset mnist] [--classes 0-4] [--preset micro-mnist] [--epochs 10] [--augment flip,shift:2] [--seed 0] [options]",
  description: "Saves an HF checkpoint whose config.json records the source task (safl_source); docs/pretraining.md has the command behind the shipped backbone.",
  flags,
  run: pretrain,
});

async function pretrain({ values: f, argv }: CommandInput<typeof flags>): Promise<number> {
  const { out, dataset, preset: presetName, epochs, batch, lr, seed, threads } = f;
  const weightDecay = f["weight-decay"];
  const normalization = normalizationFromFlags(f);
  const augmentation = parseAugmentation(f.augment ?? "none");
  const preset = presetConfig(presetName);
  const pending = await prepareOutput(out, f.force);

  const runtime = new NodeRuntime({ threads });
  try {
    const task = await loadTask(dataset, { ...taskFlags(f), ...(normalization ? { normalization } : {}) });
    checkImagesFit(task, preset.config, `preset ${presetName}`);
    const config = withLabels(preset.config, task.classes.length, task.classNames);
    const model = buildVit(config);
    const rng = new Rng(seed);
    // Its own stream, so turning augmentation on leaves the initialization and batch order alone.
    const augmentRng = new Rng(seed + 0x5eed);
    const store = ParamStore.init(model.registry.specs.values(), rng);
    const optimizer = new AdamW({ lr, weightDecay });
    const trainer = await Trainer.create(runtime, model, store, { trainable: () => true, batch, optimizer });
    const totalSteps = epochs * Math.floor(task.train.count / batch);
    const schedule = warmupCosineLr(lr, totalSteps, Math.floor(totalSteps * 0.05));
    const progress = new Progress(0, "pretrain");
    progress.line(
      `pretrain: ${presetName} (${store.count().toLocaleString("en")} parameters) on ${dataset} classes [${task.classes.join(",")}]: ${task.train.count} train / ${task.test.count} test images, ${epochs} epochs of ${Math.floor(task.train.count / batch)} steps, augmentation ${describeAugmentation(augmentation)}`,
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
      ...(augmentation.flip || augmentation.shift > 0 ? { augment: (b) => augmentBatch(b, task.train, augmentation, augmentRng) } : {}),
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
      augment: describeAugmentation(augmentation),
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
    if (f.json) console.log(JSON.stringify(summary));
    else console.log(`pretrain: test accuracy ${(100 * last.test.accuracy).toFixed(2)}% on ${dataset} [${task.classes.join(",")}]; wrote ${join(out, "model.safetensors")}`);
    return 0;
  } catch (e) {
    await pending.abandon();
    throw e;
  } finally {
    await runtime.release();
  }
}
