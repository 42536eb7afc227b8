/**
 * @module nn/lr-schedule
 * Learning rate per step: linear warm-up from 0 over `warmup` steps, then cosine decay to
 * `minFactor`·base at the last step (the usual recipe for training ViTs from scratch); `constant`
 * keeps the base rate (fine-tuning runs that are a few hundred steps long).
 */
import { argError } from "../errors.js";

export type LrSchedule = (step: number) => number;

export function constantLr(base: number): LrSchedule {
  return () => base;
}

/** `step` counts from 0; `total` is the number of steps. */
export function warmupCosineLr(base: number, total: number, warmup: number, minFactor = 0.05): LrSchedule {
  if (!(total >= 1) || !(warmup >= 0) || warmup >= total) throw argError(`lr schedule: need 0 <= warmup < total, got warmup ${warmup}, total ${total}`);
  return (step) => {
    if (step < warmup) return (base * (step + 1)) / warmup;
    const progress = total - warmup <= 1 ? 1 : (step - warmup) / (total - warmup - 1);
    return base * (minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
  };
}
