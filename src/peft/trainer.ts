/**
 * @module peft/trainer
 * One local training step for any trainable set (full fine-tuning, LoRA, FFA-LoRA, the SVD form):
 * forward and backward in one compiled call, then the adapter kind's step hooks (peft/kind: for the
 * SVD form, the importance update from this step's weights and gradients, and pruned triplets held
 * fixed through the update), then the optimizer step. Centralized fine-tuning and federated clients
 * use the same step.
 */
import { add as addValues } from "../graph/builder.js";
import type { Value } from "../graph/node.js";
import type { LabeledBatch } from "../nn/evaluate.js";
import type { Optimizer } from "../nn/optim.js";
import type { ParamStore } from "../nn/params.js";
import { TrainStep } from "../nn/train.js";
import type { VitGraph } from "../nn/vit.js";
import type { Runtime } from "../runtime/runtime.js";
import type { Adapter } from "./adapter.js";
import type { AdapterStepHooks } from "./kind.js";
import { adapterLoss } from "./model.js";
import { adapterKind } from "./registry.js";

export interface TrainerOptions {
  readonly trainable: (name: string) => boolean;
  readonly batch: number;
  readonly optimizer: Optimizer;
  /** The adapter on the model, if any (its regularizer joins the loss; its kind's step hooks run every step). */
  readonly adapter?: Adapter;
  /** Extra loss terms on top of the adapter's regularizer (e.g. a proximal term). */
  readonly extraLoss?: (model: VitGraph) => Value | undefined;
}

export class Trainer {
  /** The adapter kind's per-step hooks (undefined when the kind has none, or without an adapter). */
  readonly hooks: AdapterStepHooks | undefined;
  private steps = 0;

  private constructor(
    private readonly step: TrainStep,
    private readonly store: ParamStore,
    private readonly opts: TrainerOptions,
  ) {
    const a = opts.adapter;
    this.hooks = a ? adapterKind(a.kind).stepHooks?.(a) : undefined;
  }

  static async create(runtime: Runtime, model: VitGraph, store: ParamStore, opts: TrainerOptions): Promise<Trainer> {
    const adapterExtra = opts.adapter ? adapterLoss(opts.adapter) : undefined;
    const extras = [adapterExtra, opts.extraLoss].filter((f) => f !== undefined);
    const extraLoss =
      extras.length === 0
        ? undefined
        : (m: VitGraph) => {
            const terms = extras.map((f) => f(m)).filter((t) => t !== undefined);
            return terms.length === 0 ? undefined : terms.reduce((a, b) => addValues(a, b));
          };
    const step = await TrainStep.create(runtime, model, store, { trainable: opts.trainable, batch: opts.batch, ...(extraLoss ? { extraLoss } : {}) });
    return new Trainer(step, store, opts);
  }

  /** Names of the parameters this trainer updates. */
  get trainable(): readonly string[] {
    return this.step.trainable;
  }

  get stepCount(): number {
    return this.steps;
  }

  /**
   * Forgets everything learned from past steps (optimizer moments, the hooks' statistics, the step
   * count), so one compiled trainer can serve a new local training run — a federated client's round.
   */
  reset(): void {
    this.opts.optimizer.reset();
    this.hooks?.reset();
    this.steps = 0;
  }

  /** The optimizer (its `lr` may be set between runs). */
  get optimizer(): Optimizer {
    return this.opts.optimizer;
  }

  /** One optimizer step on a full batch; returns the loss before the update. */
  async train(batch: LabeledBatch): Promise<number> {
    const { loss, grads } = await this.step.run(batch.pixels, batch.labels);
    const restore = this.hooks?.beforeUpdate(this.store, grads);
    const values = new Map(this.step.trainable.map((n) => [n, this.store.get(n)]));
    this.opts.optimizer.step(values, grads);
    restore?.();
    this.steps++;
    return loss;
  }
}
