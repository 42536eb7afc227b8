/**
 * @module peft/adalora/allocator
 * Global rank allocation: keep the `budget` highest-scoring triplets over all modules, mask the rest.
 * Unlike PEFT's threshold (which can prune extra triplets on ties), exactly `budget` triplets stay
 * active: ties are broken by module order, then triplet index, so the result is deterministic. The
 * allocation looks only at scores, not at the previous mask, so a pruned triplet whose score now
 * ranks in the top `budget` is revived.
 */
import { argError } from "../../errors.js";
import type { ModuleScores } from "./importance.js";

export interface Allocation {
  /** 0/1 per triplet, per module, in the input order. */
  readonly masks: ReadonlyMap<string, Uint8Array>;
  /** Active triplets per module. */
  readonly ranks: ReadonlyMap<string, number>;
  /** The lowest score that was kept (−Infinity when the budget is 0). */
  readonly threshold: number;
}

export function allocate(scores: readonly ModuleScores[], budget: number): Allocation {
  const total = scores.reduce((n, s) => n + s.scores.length, 0);
  if (!Number.isInteger(budget) || budget < 0 || budget > total) {
    throw argError(`rank budget must be an integer in 0..${total} (the number of triplets), got ${budget}`);
  }
  const entries: Array<{ score: number; module: number; index: number }> = [];
  scores.forEach((s, module) => {
    s.scores.forEach((score, index) => {
      if (!Number.isFinite(score)) throw argError(`triplet score of "${s.module}" [${index}] is ${score}; expected a finite number`);
      entries.push({ score, module, index });
    });
  });
  entries.sort((a, b) => b.score - a.score || a.module - b.module || a.index - b.index);
  const masks = new Map<string, Uint8Array>(scores.map((s) => [s.module, new Uint8Array(s.scores.length)]));
  for (let k = 0; k < budget; k++) {
    const e = entries[k]!;
    masks.get(scores[e.module]!.module)![e.index] = 1;
  }
  const ranks = new Map<string, number>([...masks].map(([m, mask]) => [m, mask.reduce((a, b) => a + b, 0)]));
  return { masks, ranks, threshold: budget > 0 ? entries[budget - 1]!.score : Number.NEGATIVE_INFINITY };
}
