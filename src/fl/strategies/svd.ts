/**
 * @module fl/strategies/svd
 * Adaptive-rank federated training with the SVD-form adapter ΔW = P·diag(λ⊙m)·Q·α/r₀ on a frozen
 * base: the annealing stage of SA-FedLoRA, and federated AdaLoRA (the same with no initiating stage).
 *
 * Per round t of the annealing stage, the budget b(t) follows heating / cubic decay / cooling
 * (peft/adalora/schedule). Clients compute AdaLoRA triplet scores during their local steps and send
 * them with their active triplets; the server averages the scores (sample-weighted), smooths them
 * across rounds, and before the next round keeps the top b(t) triplets over all modules: one global
 * mask that every client of the round uses, so triplets are averaged entry by entry. Masked triplets
 * stay on the server with their last values and are sent again if a later mask revives them; in
 * cooling the mask is frozen. Only active triplets, the head and the scores cross the network.
 *
 * Optionally the first `initiatingRounds` rounds train every triplet with a proximal term (the
 * "LoRA-only initiating stage" reading of the paper). Optionally (`startFrom`) the adapter starts
 * from the truncated SVD of a known weight change rather than λ = 0 (SA-FedLoRA's delta-svd handoff).
 *
 * With a server optimizer (fl/server-optimizer) the head and the full-size P, λ, Q tensors take its
 * step from their values before the round; entries of masked triplets are left exactly as they
 * were and their optimizer state is reset, so a revived triplet starts with fresh moments.
 */
import { z } from "zod";
import { argError } from "../../errors.js";
import type { VitConfig } from "../../nn/config.js";
import type { ParamStore } from "../../nn/params.js";
import { allocate } from "../../peft/adalora/allocator.js";
import type { ModuleScores } from "../../peft/adalora/importance.js";
import { svdE, svdP, svdQ, type SvdAdapter, writeMask } from "../../peft/adalora/layer.js";
import { svdStartFromDelta } from "../../peft/adalora/from-delta.js";
import { activeCount, type PackedModule, packModule, unpackModule } from "../../peft/adalora/pack.js";
import { budgetSchedule, type SchedulePhase } from "../../peft/adalora/schedule.js";
import { mergeAdapter } from "../../peft/merge.js";
import { isHeadParam } from "../../peft/model.js";
import { adaloraConfigSchema } from "../../peft/adalora/config.js";
import { type AdapterSpec, federatedAdapterSchema, resolveAdapterSpec } from "../../peft/registry.js";
import { aggregateReplies, type ReplyExpectation, weightedMean } from "../aggregate.js";
import type { Instruction } from "../instruction.js";
import { buildRoundModel, initAdapterValues, type RoundModel } from "../model-state.js";
import { applyAggregate, createServerOptimizer, optimizerSummary, restoreOptimizerState, type ServerOptimizer, type ServerOptimizerSpec, withOptimizerState } from "../server-optimizer.js";
import { restoreStore, type RoundInfo, type StrategySnapshot, storeSnapshot } from "../strategy.js";
import { type AcceptedReply, broadcast, clientSeed, type LocalTraining, type Strategy, shapesOf, storeTensors, type TrainPlan } from "../strategy.js";
import { truncatedSvd } from "../../util/linalg.js";
import type { RoundFailure } from "../records.js";
import type { WireMessage } from "../wire.js";
import { FrozenBase } from "./base.js";
import { defineStrategy, headOf, type StrategyIssue } from "./entry.js";

/** How the global mask is chosen from the averaged scores. */
export type Selection = "top-b" | "per-module";

export interface SvdStrategyOptions {
  readonly name: string;
  readonly config: VitConfig;
  readonly spec: AdapterSpec & { readonly kind: "adalora" };
  readonly base: FrozenBase;
  /** The head to start from (classifier.* entries). */
  readonly head: ParamStore;
  readonly training: LocalTraining;
  readonly seed: number;
  readonly initSeed: number;
  /** The global round number of this strategy's first round. */
  readonly firstRound: number;
  /** Rounds this strategy runs (adapter-initiating rounds included). */
  readonly rounds: number;
  /** Leading rounds that train every triplet with the proximal term μ (0: none). */
  readonly initiatingRounds: number;
  readonly mu: number;
  /** Annealing rounds at the full budget, and final rounds at the target budget with a frozen mask. */
  readonly heatRounds: number;
  readonly coolRounds: number;
  /** true: no annealing, the budget stays r₀ × modules (use initRank = the fixed rank). */
  readonly fixedRank: boolean;
  /** β of the server's score smoothing S ← β·S + (1−β)·S_round (0: this round's average only). */
  readonly scoreSmoothing: number;
  readonly selection: Selection;
  /** "factors": average P, λ, Q separately; "product": average P·diag(λ)·Q and re-factorize it. */
  readonly aggregation: "factors" | "product";
  /** A server optimizer on every round's aggregate (head and active triplets); absent: plain averaging. */
  readonly serverOptimizer?: ServerOptimizerSpec | undefined;
  /**
   * Start every adapted module from the truncated SVD of its weight change `after − before` (at the
   * adapter's rank, so that ΔW is the best rank-r₀ approximation of the change) instead of λ = 0:
   * SA-FedLoRA's "delta-svd" handoff. Absent: the seeded initial values.
   */
  readonly startFrom?: { readonly before: ParamStore; readonly after: ParamStore } | undefined;
}

/** What a start from a weight change kept: the share of each module's change energy in the adapter. */
export interface DeltaStartSummary {
  readonly rank: number;
  readonly meanEnergyKept: number;
  readonly minEnergyKept: number;
  readonly minEnergyModule: string;
}

export class SvdStrategy implements Strategy {
  readonly name: string;
  private readonly rm: RoundModel;
  private readonly adapter: SvdAdapter;
  private readonly values: ParamStore;
  private readonly headNames: string[];
  private readonly schedule: { budget(t: number): number; phase(t: number): SchedulePhase } | undefined;
  private readonly b0: number;
  private readonly bT: number;
  private scores: ModuleScores[] | undefined;
  private masks: Map<string, Uint8Array>;
  private frozenMask = false;
  private readonly optimizer: ServerOptimizer | undefined;
  private readonly deltaStart: DeltaStartSummary | undefined;

  constructor(private readonly opts: SvdStrategyOptions) {
    this.name = opts.name;
    this.optimizer = createServerOptimizer(opts.serverOptimizer);
    this.rm = buildRoundModel(opts.config, "adalora", opts.spec);
    this.adapter = this.rm.adapter as SvdAdapter;
    this.values = opts.head.clone();
    this.headNames = this.values.names().filter(isHeadParam);
    initAdapterValues(this.rm, this.values, opts.initSeed);
    this.deltaStart = opts.startFrom ? this.startFromDelta(opts.startFrom.before, opts.startFrom.after) : undefined;
    const modules = this.adapter.modules();
    this.b0 = opts.spec.initRank * modules.length;
    this.bT = opts.spec.targetRank * modules.length;
    this.masks = new Map(modules.map((m) => [m.name, new Uint8Array(m.rank).fill(1)]));
    const annealRounds = opts.rounds - opts.initiatingRounds;
    if (annealRounds < 1) throw argError(`${opts.name}: ${opts.rounds} rounds leave no annealing round after ${opts.initiatingRounds} initiating rounds`);
    if (!(opts.scoreSmoothing >= 0 && opts.scoreSmoothing < 1)) throw argError(`scoreSmoothing must be in [0, 1), got ${opts.scoreSmoothing}`);
    this.schedule = opts.fixedRank
      ? undefined
      : budgetSchedule({ initialBudget: this.b0, targetBudget: this.bT, rounds: annealRounds, heatRounds: opts.heatRounds, coolRounds: opts.coolRounds });
  }

  /**
   * Writes each module's start from the truncated SVD of `after − before` on its weight (computed in
   * float64) over the seeded initial values, and returns what the truncation kept.
   */
  private startFromDelta(before: ParamStore, after: ParamStore): DeltaStartSummary {
    const scale = this.adapter.scale;
    let sum = 0;
    let min = { module: "", energy: Number.POSITIVE_INFINITY };
    const modules = this.adapter.modules();
    for (const m of modules) {
      const w0 = before.get(`${m.name}.weight`);
      const w1 = after.get(`${m.name}.weight`);
      const delta = Float64Array.from(w1, (v, i) => v - w0[i]!);
      const pName = svdP(m.name);
      const eName = svdE(m.name);
      const qName = svdQ(m.name);
      const start = svdStartFromDelta(delta, m.outFeatures, m.inFeatures, m.rank, scale, { p: this.values.get(pName), q: this.values.get(qName) });
      this.values.set(pName, this.values.shape(pName), start.p);
      this.values.set(eName, this.values.shape(eName), start.e);
      this.values.set(qName, this.values.shape(qName), start.q);
      sum += start.energyKept;
      if (start.energyKept < min.energy) min = { module: m.name, energy: start.energyKept };
    }
    const rank = modules[0]?.rank ?? 0;
    return { rank, meanEnergyKept: modules.length > 0 ? sum / modules.length : 1, minEnergyKept: modules.length > 0 ? min.energy : 1, minEnergyModule: min.module };
  }

  /** The round's stage, phase and budget; `t` is 1-based within this strategy. */
  private plan(round: number): RoundInfo & { readonly budget: number } {
    const t = round - this.opts.firstRound + 1;
    if (t < 1 || t > this.opts.rounds) throw new Error(`${this.name}: round ${round} is outside its rounds ${this.opts.firstRound}..${this.opts.firstRound + this.opts.rounds - 1}`);
    if (t <= this.opts.initiatingRounds) return { stage: "initiating", budget: this.b0 };
    if (!this.schedule) return { stage: "annealing", budget: this.b0 };
    const a = t - this.opts.initiatingRounds;
    return { stage: "annealing", phase: this.schedule.phase(a), budget: this.schedule.budget(a) };
  }

  /** Sets this round's global mask (before any message is built). */
  private updateMask(info: RoundInfo & { readonly budget: number }): void {
    if (this.frozenMask) return;
    if (info.budget === this.b0) {
      for (const m of this.masks.values()) m.fill(1);
    } else {
      const scores = this.scores ?? this.adapter.modules().map((m) => ({ module: m.name, scores: new Float64Array(m.rank) }));
      this.masks = this.opts.selection === "top-b" ? new Map(allocate(scores, info.budget).masks) : perModuleAllocation(scores, info.budget);
    }
    if (info.phase === "cooling") this.frozenMask = true;
    for (const [module, mask] of this.masks) writeMask(this.values, module, mask);
  }

  private instruction(task: "train" | "evaluate", round: number, clientId: string, mu: number): Instruction {
    const o = this.opts;
    return { task, mode: "adalora", adapterSpec: o.spec, ...o.training, mu, seed: clientSeed(o.seed, round, clientId), initSeed: o.initSeed, baseVersion: o.base.version };
  }

  private messages(task: "train" | "evaluate", round: number, clients: readonly string[], mu: number): WireMessage[] {
    const head = storeTensors(this.values, this.headNames);
    const packed = this.adapter.modules().map((m) => packModule(this.values, m));
    return clients.map((c) => broadcast(round, c, this.instruction(task, round, c, mu), [...this.opts.base.tensorsFor(c), ...head], packed));
  }

  configureTrain(round: number, clients: readonly string[]): TrainPlan {
    const info = this.plan(round);
    this.updateMask(info);
    const modules = this.adapter.modules();
    const ranks = Object.fromEntries(modules.map((m) => [m.name, activeCount(this.masks.get(m.name)!)]));
    const budget = Object.values(ranks).reduce((a, b) => a + b, 0);
    if (budget !== info.budget) throw new Error(`${this.name}: mask keeps ${budget} triplets, the schedule says ${info.budget}`);
    const expectation: ReplyExpectation = {
      round,
      tensors: shapesOf(this.values, this.headNames),
      packed: new Map(modules.map((m) => [m.name, { inFeatures: m.inFeatures, outFeatures: m.outFeatures, mask: this.masks.get(m.name)! }])),
      scores: new Map(modules.map((m) => [m.name, m.rank])),
    };
    const mu = info.stage === "initiating" ? this.opts.mu : 0;
    return { messages: this.messages("train", round, clients, mu), expectation, info: { ...info, ranks } };
  }

  aggregateTrain(_round: number, replies: readonly AcceptedReply[]): void {
    const agg = aggregateReplies(replies.map((r) => r.message));
    applyAggregate(this.values, agg.tensors, this.optimizer);
    const before = this.optimizer ? this.factorValues() : undefined;
    if (this.opts.aggregation === "product") {
      // aggregateReplies has validated every reply against this round's expectation already.
      const weights = replies.map((r) => r.message.sampleCount ?? 0);
      for (const m of this.adapter.modules()) {
        const previous = packModule(this.values, m);
        const mods = replies.map((r) => r.message.packed.find((p) => p.name === m.name)!);
        unpackModule(refactorizedMean(mods, weights, previous), this.values);
      }
    } else {
      for (const p of agg.packed) unpackModule(p, this.values);
    }
    if (this.optimizer && before) this.stepFactors(this.optimizer, before);
    const beta = this.opts.scoreSmoothing;
    const prev = this.scores ? new Map(this.scores.map((s) => [s.module, s.scores])) : undefined;
    this.scores = agg.scores.map((s) => {
      const old = prev?.get(s.module);
      const fresh = Float64Array.from(s.scores);
      if (!old || beta === 0) return { module: s.module, scores: fresh };
      return { module: s.module, scores: fresh.map((v, i) => beta * old[i]! + (1 - beta) * v) };
    });
    for (const r of replies) this.opts.base.received(r.clientId);
  }

  /** Copies of every module's full-size P, λ and Q (the global values before this round's aggregate). */
  private factorValues(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const m of this.adapter.modules()) for (const n of [svdP(m.name), svdE(m.name), svdQ(m.name)]) out.set(n, this.values.get(n).slice());
    return out;
  }

  /**
   * The server optimizer's step on the factors, from their values before the round to the
   * aggregate now in the store. Only the round's active triplets move: P [out, r₀] column i, λ
   * entry i and Q [r₀, in] row i are active when mask[i] is 1; the rest keep their values exactly
   * and their state is reset.
   */
  private stepFactors(optimizer: ServerOptimizer, before: ReadonlyMap<string, Float32Array>): void {
    for (const m of this.adapter.modules()) {
      const mask = this.masks.get(m.name)!;
      const r = m.rank;
      const activeP = Uint8Array.from({ length: m.outFeatures * r }, (_, k) => mask[k % r]!);
      const activeQ = Uint8Array.from({ length: r * m.inFeatures }, (_, k) => mask[Math.floor(k / m.inFeatures)]!);
      for (const [name, active] of [[svdP(m.name), activeP], [svdE(m.name), mask], [svdQ(m.name), activeQ]] as const) {
        const shape = this.values.shape(name);
        this.values.set(name, shape, optimizer.step(name, shape, before.get(name)!, this.values.get(name), active));
      }
    }
  }

  clientsFailed(_round: number, failures: readonly RoundFailure[]): void {
    this.opts.base.clientsFailed(failures);
  }

  configureEvaluate(round: number, clients: readonly string[]): readonly WireMessage[] {
    return this.messages("evaluate", round, clients, 0);
  }

  globalModel(): ParamStore {
    const merged = mergeAdapter(this.opts.base.store, this.adapter, this.values);
    for (const n of this.headNames) merged.set(n, this.values.shape(n), this.values.get(n));
    return merged;
  }

  /** Active triplets per module of the current mask. */
  ranks(): Record<string, number> {
    return Object.fromEntries([...this.masks].map(([m, mask]) => [m, activeCount(mask)]));
  }

  snapshot(): StrategySnapshot {
    const snap = storeSnapshot(this.values, {
      base: this.opts.base.state(),
      scores: this.scores?.map((s) => ({ module: s.module, scores: [...s.scores] })) ?? null,
      masks: Object.fromEntries([...this.masks].map(([m, mask]) => [m, [...mask]])),
      frozenMask: this.frozenMask,
    });
    return withOptimizerState(snap, this.optimizer);
  }

  restore(snapshot: StrategySnapshot): void {
    const s = restoreOptimizerState(snapshot, this.optimizer, this.name);
    restoreStore(this.values, s, this.name);
    const m = s.meta as { base?: Record<string, unknown>; scores?: { module: string; scores: number[] }[] | null; masks?: Record<string, number[]>; frozenMask?: boolean };
    const modules = this.adapter.modules();
    if (!m.masks || typeof m.frozenMask !== "boolean") throw argError(`${this.name}: the snapshot lacks the masks or the frozen-mask flag`);
    const masks = new Map<string, Uint8Array>();
    for (const mod of modules) {
      const bits = m.masks[mod.name];
      if (!Array.isArray(bits) || bits.length !== mod.rank) throw argError(`${this.name}: the snapshot's mask of "${mod.name}" is missing or has the wrong length`);
      masks.set(mod.name, Uint8Array.from(bits));
    }
    this.masks = masks;
    this.scores = m.scores ? m.scores.map((x) => ({ module: x.module, scores: Float64Array.from(x.scores) })) : undefined;
    this.frozenMask = m.frozenMask;
    this.opts.base.setState(m.base ?? {});
  }

  summary(): Record<string, unknown> {
    return {
      adapter: this.opts.spec,
      initialBudget: this.b0,
      targetBudget: this.bT,
      finalRanks: this.ranks(),
      baseDownloads: this.opts.base.downloads,
      scoreSmoothing: this.opts.scoreSmoothing,
      selection: this.opts.selection,
      aggregation: this.opts.aggregation,
      ...(this.deltaStart ? { deltaStart: this.deltaStart } : {}),
      ...optimizerSummary(this.optimizer),
    };
  }
}

/** P·diag(λ)·Q of a packed module's active triplets, as a row-major out×in float64 matrix (the α/r₀ scale left out). */
export function packedProduct(pm: PackedModule): Float64Array {
  const k = pm.e.length;
  const out = new Float64Array(pm.outFeatures * pm.inFeatures);
  for (let o = 0; o < pm.outFeatures; o++) {
    for (let j = 0; j < k; j++) {
      const pe = pm.p[o * k + j]! * pm.e[j]!;
      if (pe === 0) continue;
      const row = o * pm.inFeatures;
      for (let i = 0; i < pm.inFeatures; i++) out[row + i]! += pe * pm.q[j * pm.inFeatures + i]!;
    }
  }
  return out;
}

/**
 * The sample-weighted mean of the clients' products P_k·diag(λ_k)·Q_k of one module (active
 * triplets only), re-factorized as its best rank-k approximation U·diag(σ)·Vᵀ (k = active
 * triplets): P = U, λ = σ, Q = Vᵀ, which also satisfies the adapter's orthogonality target. Unlike
 * averaging P, λ and Q separately, this is exact whenever the mean has rank ≤ k. The new components
 * are matched to the previous triplets by the overlap of their P columns (greedy, largest first,
 * sign-aligned) so that each triplet's smoothed importance score stays with its direction; a
 * component with σ = 0 keeps the previous triplet's P column and Q row with λ = 0.
 */
export function refactorizedMean(mods: readonly PackedModule[], weights: readonly number[], previous: PackedModule): PackedModule {
  const { outFeatures: out, inFeatures: inn } = previous;
  const k = previous.e.length;
  const mean = weightedMean(mods.map(packedProduct), weights);
  const { u, s, vt } = truncatedSvd(mean, out, inn, k);
  // overlap[a][b] = cos between previous P column a and new U column b.
  const overlap: number[][] = [];
  for (let a = 0; a < k; a++) {
    let norm = 0;
    for (let o = 0; o < out; o++) norm += previous.p[o * k + a]! ** 2;
    overlap.push(Array.from({ length: k }, (_, b) => {
      let dot = 0;
      for (let o = 0; o < out; o++) dot += previous.p[o * k + a]! * u[o * k + b]!;
      return norm > 0 ? dot / Math.sqrt(norm) : 0;
    }));
  }
  const slotOf = new Array<number>(k).fill(-1);
  const usedSlot = new Set<number>();
  const pairs = overlap.flatMap((row, a) => row.map((v, b) => ({ a, b, v: Math.abs(v) }))).sort((x, y) => y.v - x.v || x.b - y.b || x.a - y.a);
  for (const { a, b } of pairs) {
    if (slotOf[b] !== -1 || usedSlot.has(a)) continue;
    slotOf[b] = a;
    usedSlot.add(a);
  }
  const p = new Float32Array(out * k);
  const e = new Float32Array(k);
  const q = new Float32Array(k * inn);
  for (let b = 0; b < k; b++) {
    const a = slotOf[b]!;
    if (s[b] === 0) {
      for (let o = 0; o < out; o++) p[o * k + a] = previous.p[o * k + a]!;
      q.set(previous.q.subarray(a * inn, (a + 1) * inn), a * inn);
      e[a] = 0;
      continue;
    }
    const sign = overlap[a]![b]! < 0 ? -1 : 1;
    for (let o = 0; o < out; o++) p[o * k + a] = sign * u[o * k + b]!;
    for (let i = 0; i < inn; i++) q[a * inn + i] = sign * vt[b * inn + i]!;
    e[a] = s[b]!;
  }
  return { ...previous, p, e, q };
}

/**
 * The alternative to global top-b: every module keeps ⌊b/M⌋ triplets by its own scores, and the
 * remaining b mod M go to the modules with the highest total score (ties by module order).
 */
export function perModuleAllocation(scores: readonly ModuleScores[], budget: number): Map<string, Uint8Array> {
  const M = scores.length;
  const each = Math.floor(budget / M);
  const extra = budget - each * M;
  const totals = scores.map((s, i) => ({ i, total: s.scores.reduce((a, b) => a + b, 0) }));
  totals.sort((a, b) => b.total - a.total || a.i - b.i);
  const bonus = new Set(totals.slice(0, extra).map((t) => t.i));
  return new Map(
    scores.map((s, i) => {
      const k = Math.min(s.scores.length, each + (bonus.has(i) ? 1 : 0));
      const order = [...s.scores.keys()].sort((a, b) => s.scores[b]! - s.scores[a]! || a - b);
      const mask = new Uint8Array(s.scores.length);
      for (const j of order.slice(0, k)) mask[j] = 1;
      return [s.module, mask];
    }),
  );
}

/** The annealing fields FedAdaLoRA and SA-FedLoRA share (their defaults are set per strategy). */
export const annealingFields = {
  /** Annealing rounds at the full budget r₀ × modules. */
  heatRounds: z.number().int().min(0),
  /** Final rounds at the target budget, with the mask frozen. */
  coolRounds: z.number().int().min(0),
  /** β of the server-side EMA of triplet scores across rounds (0: each round's average alone). */
  scoreSmoothing: z.number().min(0).lt(1).default(0.5),
  /** "top-b": keep the b best triplets over all modules (AdaLoRA's global rule); "per-module": b/M per module. */
  selection: z.enum(["top-b", "per-module"]).default("top-b"),
  /**
   * How the server combines the clients' triplets: "factors" (the default when omitted) averages
   * P, λ and Q separately; "product" averages the clients' P·diag(λ)·Q and re-factorizes the mean
   * by a truncated SVD (docs/algorithm.md). Optional without a default because `safl study` keys
   * finished cells by a hash of the resolved config (sim/study.ts resultKey): a new default would
   * make every finished cell look stale.
   */
  aggregation: z.enum(["factors", "product"]).optional(),
};

/** A heating + cooling length that leaves no decay round is a config error, not a flat schedule. */
export function annealingIssues(spec: { heatRounds: number; coolRounds: number }, annealingRounds: number): StrategyIssue[] {
  if (spec.heatRounds + spec.coolRounds < annealingRounds) return [];
  return [{ path: ["heatRounds"], message: `heatRounds ${spec.heatRounds} + coolRounds ${spec.coolRounds} must leave at least one decay round out of ${annealingRounds} annealing rounds` }];
}

export const fedadaloraStrategy = defineStrategy({
  name: "fedadalora",
  summary: "federated AdaLoRA: the SVD-form adapter with the annealing budget from round 1, no initiating stage",
  schema: z
    .object({
      name: z.literal("fedadalora"),
      // The SVD form's federated defaults (peft/adalora/kind), PEFT's ranks.
      adapter: federatedAdapterSchema("adalora", adaloraConfigSchema).prefault({}),
      heatRounds: annealingFields.heatRounds.default(2),
      coolRounds: annealingFields.coolRounds.default(4),
      scoreSmoothing: annealingFields.scoreSmoothing,
      selection: annealingFields.selection,
      aggregation: annealingFields.aggregation,
    })
    .strict(),
  create: (spec, { config, initial, training, rounds, seed, serverOptimizer }) =>
    new SvdStrategy({
      name: "fedadalora",
      config,
      spec: resolveAdapterSpec("adalora", spec.adapter) as AdapterSpec & { kind: "adalora" },
      base: new FrozenBase(0, initial),
      head: headOf(initial),
      training: training.adapter("adalora"),
      seed,
      initSeed: seed + 1,
      firstRound: 1,
      rounds,
      initiatingRounds: 0,
      mu: 0,
      heatRounds: spec.heatRounds,
      coolRounds: spec.coolRounds,
      fixedRank: false,
      scoreSmoothing: spec.scoreSmoothing,
      selection: spec.selection,
      aggregation: spec.aggregation ?? "factors",
      serverOptimizer,
    }),
  check: (spec, run) => annealingIssues(spec, run.rounds),
});
