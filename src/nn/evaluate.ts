/**
 * @module nn/evaluate
 * Accuracy and mean cross-entropy of a model over labelled batches. Logits come from compiled eval
 * steps (one per distinct batch size, so a final partial batch costs one extra compile, not padding
 * that would distort the figures); loss and accuracy are computed on the host in float64.
 */
import type { Runtime } from "../runtime/runtime.js";
import type { ParamStore } from "./params.js";
import { EvalStep } from "./train.js";
import type { VitGraph } from "./vit.js";

/** Images [size, C, H, W] flattened, with int64 labels. */
export interface LabeledBatch {
  readonly pixels: Float32Array;
  readonly labels: BigInt64Array;
  readonly size: number;
}

export interface EvalResult {
  readonly accuracy: number;
  readonly loss: number;
  readonly count: number;
}

/** Sum of per-example cross-entropy and the number of correct argmax predictions in a logits block. */
export function scoreLogits(logits: Float32Array, labels: BigInt64Array, classes: number): { lossSum: number; correct: number } {
  let lossSum = 0;
  let correct = 0;
  for (let b = 0; b < labels.length; b++) {
    const row = b * classes;
    let max = Number.NEGATIVE_INFINITY;
    let arg = 0;
    for (let c = 0; c < classes; c++) {
      const v = logits[row + c]!;
      if (v > max) {
        max = v;
        arg = c;
      }
    }
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(logits[row + c]! - max);
    const y = Number(labels[b]!);
    lossSum += Math.log(z) + max - logits[row + y]!;
    if (arg === y) correct++;
  }
  return { lossSum, correct };
}

export class Evaluator {
  private readonly steps = new Map<number, EvalStep>();

  constructor(
    private readonly runtime: Runtime,
    private readonly model: VitGraph,
    private readonly params: ParamStore,
  ) {}

  async logits(batch: LabeledBatch): Promise<Float32Array> {
    let step = this.steps.get(batch.size);
    if (!step) {
      step = await EvalStep.create(this.runtime, this.model, this.params, batch.size);
      this.steps.set(batch.size, step);
    }
    return (await step.run(batch.pixels)).data as Float32Array;
  }

  async run(batches: Iterable<LabeledBatch>): Promise<EvalResult> {
    const classes = this.model.config.num_labels;
    let lossSum = 0;
    let correct = 0;
    let count = 0;
    for (const b of batches) {
      const s = scoreLogits(await this.logits(b), b.labels, classes);
      lossSum += s.lossSum;
      correct += s.correct;
      count += b.size;
    }
    return { accuracy: count ? correct / count : 0, loss: count ? lossSum / count : 0, count };
  }
}
