/**
 * @module nn/train
 * Compiles forward + loss + gradients for a chosen trainable set into one executable, so a training
 * step is one runtime call. Only trainable parameters are differentiated (autodiff prunes the rest),
 * and frozen parameters can be baked into the compiled model as constants, so the runtime pre-packs
 * them once instead of reading them as feeds on every step.
 */
import { ErrorCode, SaflError } from "../errors.js";
import { add, crossEntropy, input } from "../graph/builder.js";
import { grad } from "../graph/autodiff/grad.js";
import type { Value } from "../graph/node.js";
import { BATCH } from "../graph/shape.js";
import type { Executable, Runtime } from "../runtime/runtime.js";
import type { HostTensor } from "../tensor.js";
import type { ParamStore } from "./params.js";
import type { VitGraph } from "./vit.js";

export interface TrainStepOptions {
  /** Which parameters are trained (the rest are frozen). */
  trainable: (name: string) => boolean;
  /** Batch size the step is compiled for. */
  batch: number;
  /** Bake frozen parameters into the model as constants (default false: measured slower, see docs/benchmarks.md). */
  bakeFrozen?: boolean;
  /** Extra scalar terms added to the loss (regularizers); may use any parameter value of the graph. */
  extraLoss?: (model: VitGraph) => Value | undefined;
}

let bakeCounter = 0;

/** One compiled training step: feeds images, labels and trainable parameters; returns loss and gradients. */
export class TrainStep {
  private constructor(
    private readonly exe: Executable,
    readonly trainable: readonly string[],
    private readonly feedNames: readonly string[],
    private readonly params: ParamStore,
  ) {}

  static async create(runtime: Runtime, model: VitGraph, params: ParamStore, opts: TrainStepOptions): Promise<TrainStep> {
    const reg = model.registry;
    const labels = input("labels", "int64", [BATCH]);
    let loss = crossEntropy(model.logits, labels);
    // Built before the store is checked: a loss term may declare buffers of its own (a proximal
    // term's copy of the global weights), which the store must then hold too.
    const extra = opts.extraLoss?.(model);
    if (extra) loss = add(loss, extra);
    params.check(reg.specs.values(), "the parameter store");
    const trainable = reg.paramNames().filter(opts.trainable);
    if (trainable.length === 0) throw new SaflError(ErrorCode.InvalidArgument, "the trainable set is empty: nothing would be trained");
    const grads = grad(
      loss,
      trainable.map((n) => reg.value(n)),
    );
    const outputs: Record<string, Value> = { loss };
    trainable.forEach((n, i) => {
      outputs[`grad:${n}`] = grads[i]!;
    });
    // Buffers are never baked: they change between steps (a rank mask) without a recompile.
    const frozen = reg.paramNames().filter((n) => !opts.trainable(n));
    const bake = opts.bakeFrozen ?? false;
    const initializers = new Map<string, HostTensor>();
    if (bake) for (const n of frozen) initializers.set(n, { dtype: "float32", shape: params.shape(n), data: params.get(n) });
    const exe = await runtime.compile(outputs, {
      batch: opts.batch,
      ...(bake ? { initializers, initializersKey: `frozen#${bakeCounter++}` } : {}),
    });
    const buffers = [...reg.specs.values()].filter((s) => s.buffer).map((s) => s.name);
    const feedNames = bake ? [...trainable, ...buffers] : [...reg.specs.keys()];
    return new TrainStep(exe, trainable, feedNames, params);
  }

  /** Runs forward and backward on one batch with the store's current parameter values. */
  async run(pixels: Float32Array, labels: BigInt64Array): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    const feeds: Record<string, Float32Array | BigInt64Array> = { pixel_values: pixels, labels };
    for (const n of this.feedNames) feeds[n] = this.params.get(n);
    const out = await this.exe.run(feeds);
    const grads = new Map<string, Float32Array>();
    for (const n of this.trainable) grads.set(n, out[`grad:${n}`]!.data as Float32Array);
    return { loss: (out["loss"].data as Float32Array)[0]!, grads };
  }
}

/** A compiled forward pass returning logits. */
export class EvalStep {
  private constructor(
    private readonly exe: Executable,
    private readonly feedNames: readonly string[],
    private readonly params: ParamStore,
  ) {}

  static async create(runtime: Runtime, model: VitGraph, params: ParamStore, batch: number): Promise<EvalStep> {
    params.check(model.registry.specs.values(), "the parameter store");
    const exe = await runtime.compile({ logits: model.logits }, { batch });
    return new EvalStep(exe, [...model.registry.specs.keys()], params);
  }

  async run(pixels: Float32Array): Promise<HostTensor> {
    const feeds: Record<string, Float32Array> = { pixel_values: pixels };
    for (const n of this.feedNames) feeds[n] = this.params.get(n);
    return (await this.exe.run(feeds))["logits"]!;
  }
}
