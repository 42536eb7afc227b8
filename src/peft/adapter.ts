/**
 * @module peft/adapter
 * What every adapter method provides, so training, merging, export and (later) federation treat LoRA,
 * FFA-LoRA and the SVD-form adaptive-rank adapter alike: a Linear hook that declares the adapter's
 * parameters while the model is built, the list of modules it adapted, which of its parameters are
 * trained, the weight update ΔW of a module computed on the host, and an optional loss regularizer.
 */
import { argError } from "../errors.js";
import type { Value } from "../graph/node.js";
import { type LinearAdapter, type ParamRegistry, matchesTarget } from "../nn/module.js";
import type { ParamStore } from "../nn/params.js";
import { type Targets, describeTargets, isRegexTargets, targetMatcher } from "./targets.js";
import type { RegisteredKind } from "./registry.js";

/** The registered adapter kinds (peft/registry owns the list). */
export type AdapterKind = RegisteredKind;

/** One Linear layer an adapter attached to. `rank` is the full (initial) rank of its factors. */
export interface AdaptedModule {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly rank: number;
}

export interface Adapter {
  readonly kind: AdapterKind;
  /**
   * HF module-name patterns with PEFT `target_modules` semantics: a list (exact name or ".pattern"
   * suffix) or `{ regex }` (a Python pattern matched against the whole name).
   */
  readonly targets: Targets;
  /** The hook handed to the model builder. */
  readonly linear: LinearAdapter;
  /** Adapted modules in model order; filled while the model is built. */
  modules(): readonly AdaptedModule[];
  /** Every Linear layer the hook was offered (adapted or not), for error messages. */
  linearNames(): readonly string[];
  /** Names of this adapter's parameters (not buffers) for one module. */
  paramNames(module: AdaptedModule): readonly string[];
  isAdapterParam(name: string): boolean;
  /** Adapter parameters that are trained (FFA-LoRA freezes A). */
  isTrainable(name: string): boolean;
  /** ΔW of one module, [out, in] row-major, in float64, with masks and scale applied. */
  delta(store: ParamStore, module: AdaptedModule): Float64Array;
  /** A scalar term added to the training loss (the SVD form's orthogonality penalty), if any. */
  regularizer?(reg: ParamRegistry): Value | undefined;
}

/** A module's rank and the setting it came from (for messages), when ranks differ per module. */
export type ModuleRank = (module: string) => { readonly rank: number; readonly field: string };

/**
 * Tracks which Linear layers a hook is offered and which it adapts, and validates the rank against
 * the layer: a rank above min(in, out) cannot add expressiveness and is almost always a typo.
 * `rank` is one rank for every module, or a function giving each module its own.
 */
export class ModuleRecorder {
  private readonly seen: string[] = [];
  private readonly adapted: AdaptedModule[] = [];
  private readonly matches: (name: string) => boolean;

  constructor(
    readonly targets: Targets,
    readonly rank: number | ModuleRank,
    readonly rankField: string,
  ) {
    this.matches = targetMatcher(targets);
  }

  /** Records a Linear layer; returns the adapted module when it matches a target. */
  offer(name: string, inFeatures: number, outFeatures: number): AdaptedModule | undefined {
    this.seen.push(name);
    if (!this.matches(name)) return undefined;
    const { rank, field } = typeof this.rank === "number" ? { rank: this.rank, field: this.rankField } : this.rank(name);
    if (rank > Math.min(inFeatures, outFeatures)) {
      throw argError(
        `${field} ${rank} exceeds the dimensions of "${name}" (out ${outFeatures} x in ${inFeatures}); expected at most ${Math.min(inFeatures, outFeatures)}`,
      );
    }
    const m = { name, inFeatures, outFeatures, rank };
    this.adapted.push(m);
    return m;
  }

  modules(): readonly AdaptedModule[] {
    return this.adapted;
  }

  linearNames(): readonly string[] {
    return this.seen;
  }
}

/** Fails when a target pattern matched no Linear layer of the built model (PEFT only fails when none match at all). */
export function checkTargetsMatched(adapter: Adapter): void {
  const names = adapter.linearNames();
  const targets = adapter.targets;
  const examples = () => [...new Set(names.map((n) => n.replace(/^vit\.encoder\.layer\.\d+\./, "")))].map((e) => `"${e}"`).join(", ");
  if (isRegexTargets(targets)) {
    const matches = targetMatcher(targets);
    if (names.some(matches)) return;
    throw argError(`target_modules ${describeTargets(targets)} matches no Linear layer of the model (it must match the whole module name); full names of the model's Linear layers look like ${names.filter((n) => !/^vit\.encoder\.layer\.[1-9]\d*\./.test(n)).map((n) => `"${n}"`).join(", ")}`);
  }
  const unmatched = targets.filter((t) => !names.some((n) => matchesTarget(n, [t])));
  if (unmatched.length === 0) return;
  throw argError(
    `target_modules ${unmatched.map((t) => `"${t}"`).join(", ")} match${unmatched.length === 1 ? "es" : ""} no Linear layer of the model; expected module names or suffixes such as ${examples()}`,
  );
}

/** s·B·diag(e)·A for B [out, r], A [r, in], e [r] (undefined = all ones), accumulated in float64. */
export function lowRankProduct(
  b: Float32Array,
  a: Float32Array,
  e: ArrayLike<number> | undefined,
  m: AdaptedModule,
  scale: number,
): Float64Array {
  const { inFeatures: nIn, outFeatures: nOut, rank: r } = m;
  const out = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    const row = o * nIn;
    for (let k = 0; k < r; k++) {
      const coef = scale * b[o * r + k]! * (e ? e[k]! : 1);
      if (coef === 0) continue;
      const aRow = k * nIn;
      for (let i = 0; i < nIn; i++) out[row + i] = out[row + i]! + coef * a[aRow + i]!;
    }
  }
  return out;
}
