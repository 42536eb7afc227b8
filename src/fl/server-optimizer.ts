/**
 * @module fl/server-optimizer
 * Server optimizers: an optional step the server takes on each round's aggregate instead of using
 * it as the new global model as it is (FedAvgM, Hsu et al. 2019; FedAdagrad, FedAdam and FedYogi,
 * Reddi et al., ICLR 2021, "Adaptive Federated Optimization"). Per tensor, Δ = aggregate − global
 * is the pseudo-gradient, signed so that x + Δ is plain FedAvg; FedAvgM keeps a momentum m, the
 * adaptive three a first moment m and a second moment v and move by η·m/(√v + τ).
 *
 * One registry entry per optimizer (a zod schema with a `name` literal and its defaults, and the
 * update rule it builds), the `serverOptimizer` schema of the run config built from the entries,
 * and the optimizer with its state: m, v and a step count per tensor name. The state goes into
 * the strategy's snapshot (`withOptimizerState` / `restoreOptimizerState`), so a resumed run
 * continues exactly. A tensor whose shape differs from its state's starts afresh; entries marked
 * inactive (pruned SVD triplets) keep their value and have their state reset (docs/algorithm.md).
 */
import { z } from "zod";
import { argError } from "../errors.js";
import type { ParamStore } from "../nn/params.js";
import { parseWith } from "../validate.js";
import type { StrategySnapshot } from "./strategy.js";
import type { WireTensor } from "./wire.js";

/** How one optimizer moves one entry: the per-element part of the step. */
export interface UpdateRule {
  /** The initial second moment v₀ (τ²), or undefined for a rule without v (FedAvgM). */
  readonly v0: number | undefined;
  /** Updates m[i] (and v[i]) for the pseudo-gradient d and returns the change of x[i]. */
  update(d: number, m: Float32Array, v: Float32Array, i: number): number;
}

export interface ServerOptimizerEntry<S extends z.ZodObject = z.ZodObject> {
  readonly name: string;
  /** One line for help texts and docs. */
  readonly summary: string;
  readonly schema: S;
  rule(spec: z.output<S>): UpdateRule;
}

/** Types an entry against its own schema. */
export const defineServerOptimizer = <S extends z.ZodObject>(entry: ServerOptimizerEntry<S>): ServerOptimizerEntry<S> => entry;

// Field builders: the server learning rate η > 0, decay rates β in [0, 1), the adaptivity τ > 0.
const lrField = (d: number) => z.number().positive().default(d);
const decayField = (d: number) => z.number().min(0).lt(1).default(d);
const tauField = (d: number) => z.number().positive().default(d);

/**
 * The adaptive family: m = β₁·m + (1−β₁)·Δ, v = next(v, Δ²), x += η·m/(√v + τ), from v₀ = τ²
 * (Reddi et al., Algorithm 2: v₋₁ ≥ τ²; Flower starts from 0). No bias correction, as in the paper.
 */
function adaptiveRule(s: { lr: number; beta1: number; tau: number }, next: (v: number, d2: number) => number): UpdateRule {
  const { lr, beta1, tau } = s;
  return {
    v0: tau * tau,
    update(d, m, v, i) {
      const mi = beta1 * m[i]! + (1 - beta1) * d;
      const vi = next(v[i]!, d * d);
      m[i] = mi;
      v[i] = vi;
      return (lr * mi) / (Math.sqrt(vi) + tau);
    },
  };
}

export const fedavgmOptimizer = defineServerOptimizer({
  name: "fedavgm",
  summary: "FedAvgM: server momentum, m = β·m + Δ, x += η·m",
  schema: z
    .object({
      name: z.literal("fedavgm"),
      /** η (Flower's server_learning_rate default). */
      lr: lrField(1.0),
      /** β (Flower's default is 0, which is plain FedAvg at η = 1; 0.9 is the usual momentum, Hsu et al. 2019). */
      momentum: decayField(0.9),
    })
    .strict(),
  rule: ({ lr, momentum }) => ({
    v0: undefined,
    update(d, m, _v, i) {
      const mi = momentum * m[i]! + d;
      m[i] = mi;
      return lr * mi;
    },
  }),
});

export const fedadagradOptimizer = defineServerOptimizer({
  name: "fedadagrad",
  summary: "FedAdagrad: v = v + Δ², x += η·m/(√v + τ)",
  schema: z
    .object({
      name: z.literal("fedadagrad"),
      /** η, τ: Flower's FedAdagrad defaults. */
      lr: lrField(0.1),
      /** β₁: Flower's FedAdagrad fixes 0 (m = Δ); Reddi et al. use 0.9 in their experiments. */
      beta1: decayField(0),
      tau: tauField(1e-9),
    })
    .strict(),
  rule: (s) => adaptiveRule(s, (v, d2) => v + d2),
});

export const fedadamOptimizer = defineServerOptimizer({
  name: "fedadam",
  summary: "FedAdam: v = β₂·v + (1−β₂)·Δ², x += η·m/(√v + τ)",
  schema: z
    .object({
      name: z.literal("fedadam"),
      /** η, β₁, β₂, τ: Flower's FedAdam defaults. */
      lr: lrField(0.1),
      beta1: decayField(0.9),
      beta2: decayField(0.99),
      tau: tauField(1e-9),
    })
    .strict(),
  rule: (s) => adaptiveRule(s, (v, d2) => s.beta2 * v + (1 - s.beta2) * d2),
});

export const fedyogiOptimizer = defineServerOptimizer({
  name: "fedyogi",
  summary: "FedYogi: v = v − (1−β₂)·Δ²·sign(v − Δ²), x += η·m/(√v + τ)",
  schema: z
    .object({
      name: z.literal("fedyogi"),
      /** η, β₁, β₂, τ: Flower's FedYogi defaults. */
      lr: lrField(0.01),
      beta1: decayField(0.9),
      beta2: decayField(0.99),
      tau: tauField(1e-3),
    })
    .strict(),
  rule: (s) => adaptiveRule(s, (v, d2) => v - (1 - s.beta2) * d2 * Math.sign(v - d2)),
});

/** Every server optimizer, in the order help texts and docs list them. */
export const SERVER_OPTIMIZER_ENTRIES = [fedavgmOptimizer, fedadagradOptimizer, fedadamOptimizer, fedyogiOptimizer] as const;

type Schemas<T extends readonly ServerOptimizerEntry<z.ZodObject>[]> = { -readonly [K in keyof T]: T[K]["schema"] };

/** `strategy.serverOptimizer` of the run config: `{ name, ...fields }`, discriminated by name. */
export const serverOptimizerSpecSchema = z.discriminatedUnion("name", SERVER_OPTIMIZER_ENTRIES.map((e) => e.schema) as unknown as Schemas<typeof SERVER_OPTIMIZER_ENTRIES>);

export type ServerOptimizerSpec = z.output<typeof serverOptimizerSpecSchema>;
export type ServerOptimizerName = ServerOptimizerSpec["name"];
export const SERVER_OPTIMIZER_NAMES = SERVER_OPTIMIZER_ENTRIES.map((e) => e.name) as readonly ServerOptimizerName[];

const byName = new Map<string, ServerOptimizerEntry>(SERVER_OPTIMIZER_ENTRIES.map((e) => [e.name, e as unknown as ServerOptimizerEntry]));

/** The registry entry of an optimizer; an unknown name is a user error naming the known ones. */
export function serverOptimizerEntry(name: string): ServerOptimizerEntry {
  const e = byName.get(name);
  if (!e) throw argError(`unknown server optimizer "${name}"; expected one of ${SERVER_OPTIMIZER_NAMES.join(", ")}`);
  return e;
}

/** Validates a server optimizer spec (every problem at once) and fills in the defaults. */
export function parseServerOptimizerSpec(raw: unknown, what = "server optimizer"): ServerOptimizerSpec {
  return parseWith(serverOptimizerSpecSchema, raw, what);
}

interface TensorState {
  readonly shape: readonly number[];
  readonly m: Float32Array;
  /** Empty for a rule without a second moment. */
  readonly v: Float32Array;
  steps: number;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const EMPTY = new Float32Array(0);

/**
 * One strategy's server optimizer. m and v are float32 like the model, so a snapshot holds them
 * bit for bit; each entry's arithmetic is float64.
 */
export class ServerOptimizer {
  private readonly state = new Map<string, TensorState>();

  constructor(
    readonly spec: ServerOptimizerSpec,
    private readonly rule: UpdateRule,
  ) {}

  get name(): ServerOptimizerName {
    return this.spec.name;
  }

  private fresh(shape: readonly number[]): TensorState {
    const n = numel(shape);
    const v0 = this.rule.v0;
    return { shape: [...shape], m: new Float32Array(n), v: v0 === undefined ? EMPTY : new Float32Array(n).fill(v0), steps: 0 };
  }

  /**
   * The new global value of tensor `name` from its current global value and the round's aggregate.
   * A tensor seen with another shape before (a new adapter layout) starts from fresh state. Where
   * `active` is 0 the entry keeps its current value and its m and v return to their initial values
   * (a pruned SVD triplet: not trained this round, and revived later as a new parameter).
   */
  step(name: string, shape: readonly number[], current: Float32Array, aggregate: Float32Array, active?: Uint8Array): Float32Array {
    const n = numel(shape);
    if (current.length !== n || aggregate.length !== n || (active && active.length !== n)) {
      throw new Error(`${this.name}: "${name}" has ${current.length} current values, ${aggregate.length} aggregated${active ? ` and ${active.length} mask entries` : ""} for shape [${shape.join(",")}]`);
    }
    let s = this.state.get(name);
    if (!s || !sameShape(s.shape, shape)) {
      s = this.fresh(shape);
      this.state.set(name, s);
    }
    const { m, v } = s;
    const hasV = this.rule.v0 !== undefined;
    const v0 = this.rule.v0 ?? 0;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const x = current[i]!;
      if (active && !active[i]) {
        out[i] = x;
        m[i] = 0;
        if (hasV) v[i] = v0;
        continue;
      }
      out[i] = x + this.rule.update(aggregate[i]! - x, m, v, i);
    }
    s.steps++;
    return out;
  }

  /** Forgets the state of `names` (all tensors when omitted). */
  reset(names?: readonly string[]): void {
    if (!names) this.state.clear();
    else for (const n of names) this.state.delete(n);
  }

  /** Steps taken per tensor since its state was created. */
  steps(): Record<string, number> {
    return Object.fromEntries([...this.state].map(([n, s]) => [n, s.steps]));
  }

  /** m (and v) per tensor as `m/<name>`, `v/<name>` (copies), and the step counts. */
  snapshot(): StrategySnapshot {
    const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const [n, s] of this.state) {
      tensors.set(`m/${n}`, { shape: s.shape, data: s.m.slice() });
      if (this.rule.v0 !== undefined) tensors.set(`v/${n}`, { shape: s.shape, data: s.v.slice() });
    }
    return { tensors, meta: { name: this.name, steps: this.steps() } };
  }

  /** Replaces the state with a snapshot's (taken by an optimizer of the same name). */
  restore(snap: StrategySnapshot, what: string = this.name): void {
    const meta = snap.meta as { name?: unknown; steps?: unknown };
    if (meta.name !== this.name) throw argError(`${what}: the snapshot's server optimizer is ${JSON.stringify(meta.name ?? null)}, the strategy's is "${this.name}"`);
    const steps = meta.steps;
    if (steps === null || typeof steps !== "object" || Array.isArray(steps)) throw argError(`${what}: the snapshot's server optimizer step counts are malformed`);
    const names = Object.keys(steps);
    const perTensor = this.rule.v0 === undefined ? 1 : 2;
    if (snap.tensors.size !== names.length * perTensor) throw argError(`${what}: the snapshot's server optimizer has ${snap.tensors.size} tensors for ${names.length} parameters`);
    const state = new Map<string, TensorState>();
    for (const n of names) {
      const count = (steps as Record<string, unknown>)[n];
      const m = snap.tensors.get(`m/${n}`);
      const v = perTensor === 2 ? snap.tensors.get(`v/${n}`) : undefined;
      if (typeof count !== "number" || !Number.isInteger(count) || count < 0 || !m || (perTensor === 2 && (!v || !sameShape(v.shape, m.shape)))) {
        throw argError(`${what}: the snapshot's server optimizer state of "${n}" is missing or malformed`);
      }
      if (m.data.length !== numel(m.shape) || (v && v.data.length !== m.data.length)) throw argError(`${what}: the snapshot's server optimizer state of "${n}" has the wrong length`);
      state.set(n, { shape: [...m.shape], m: m.data.slice(), v: v ? v.data.slice() : EMPTY, steps: count });
    }
    this.state.clear();
    for (const [n, s] of state) this.state.set(n, s);
  }
}

/** The optimizer of a validated spec (none for none). */
export function createServerOptimizer(spec: ServerOptimizerSpec): ServerOptimizer;
export function createServerOptimizer(spec: ServerOptimizerSpec | undefined): ServerOptimizer | undefined;
export function createServerOptimizer(spec: ServerOptimizerSpec | undefined): ServerOptimizer | undefined {
  return spec && new ServerOptimizer(spec, serverOptimizerEntry(spec.name).rule(spec as never));
}

/**
 * Writes a round's aggregated dense tensors into the global store: as they are without an
 * optimizer (plain averaging, the aggregate itself), or the optimizer's step from the current values.
 */
export function applyAggregate(store: ParamStore, tensors: readonly WireTensor[], optimizer: ServerOptimizer | undefined): void {
  for (const t of tensors) store.set(t.name, t.shape, optimizer ? optimizer.step(t.name, t.shape, store.get(t.name), t.data) : t.data);
}

/** The `serverOptimizer` entry of a strategy summary (nothing without an optimizer). */
export function optimizerSummary(optimizer: ServerOptimizer | undefined): Record<string, unknown> {
  return optimizer ? { serverOptimizer: optimizer.spec } : {};
}

const PREFIX = "serverOptimizer/";
const META_KEY = "serverOptimizer";

/** A strategy snapshot with the optimizer's state added (tensors under "serverOptimizer/"); the same snapshot without one. */
export function withOptimizerState(snap: StrategySnapshot, optimizer: ServerOptimizer | undefined): StrategySnapshot {
  if (!optimizer) return snap;
  const o = optimizer.snapshot();
  const tensors = new Map(snap.tensors);
  for (const [n, t] of o.tensors) tensors.set(PREFIX + n, t);
  return { tensors, meta: { ...snap.meta, [META_KEY]: o.meta } };
}

/**
 * Restores the optimizer from its part of a strategy snapshot and returns the rest. A snapshot
 * with optimizer state for a strategy without an optimizer (or the reverse) is refused: the run
 * would not continue as it started.
 */
export function restoreOptimizerState(snap: StrategySnapshot, optimizer: ServerOptimizer | undefined, what: string): StrategySnapshot {
  const own = snap.meta[META_KEY];
  if (!optimizer) {
    if (own !== undefined) throw argError(`${what}: the snapshot holds server optimizer state, the strategy has no server optimizer`);
    return snap;
  }
  if (own === undefined || own === null || typeof own !== "object") throw argError(`${what}: the snapshot holds no server optimizer state, the strategy has "${optimizer.name}"`);
  const mine = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  const rest = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [n, t] of snap.tensors) (n.startsWith(PREFIX) ? mine : rest).set(n.startsWith(PREFIX) ? n.slice(PREFIX.length) : n, t);
  optimizer.restore({ tensors: mine, meta: own as Record<string, unknown> }, what);
  const meta = { ...snap.meta };
  delete meta[META_KEY];
  return { tensors: rest, meta };
}
