/**
 * @module fl/strategies/lora
 * Fixed-rank adapter strategies on a frozen base: FedLoRA (a.k.a. FedIT: LoRA A and B trained and
 * averaged separately) and FFA-LoRA (Sun et al., 2024: A frozen at its seeded initial value, only B
 * trained and sent, so the average of B·A is exact). The head is trained and averaged in both.
 */
import { z } from "zod";
import type { VitConfig } from "../../nn/config.js";
import type { ParamStore } from "../../nn/params.js";
import { mergeAdapter } from "../../peft/merge.js";
import { isHeadParam } from "../../peft/model.js";
import { loraConfigSchema } from "../../peft/lora/config.js";
import { type AdapterSpec, federatedAdapterSchema, resolveAdapterSpec } from "../../peft/registry.js";
import { aggregateReplies, type ReplyExpectation } from "../aggregate.js";
import type { Instruction } from "../instruction.js";
import { buildRoundModel, initAdapterValues, type RoundModel } from "../model-state.js";
import { applyAggregate, createServerOptimizer, optimizerSummary, restoreOptimizerState, type ServerOptimizer, type ServerOptimizerSpec, withOptimizerState } from "../server-optimizer.js";
import { restoreStore, type StrategySnapshot, storeSnapshot } from "../strategy.js";
import { type AcceptedReply, broadcast, clientSeed, type LocalTraining, type Strategy, shapesOf, storeTensors, type TrainPlan } from "../strategy.js";
import type { RoundFailure } from "../records.js";
import type { WireMessage } from "../wire.js";
import { FrozenBase } from "./base.js";
import { defineStrategy, headOf } from "./entry.js";

export interface LoraStrategyOptions {
  readonly name: string;
  readonly config: VitConfig;
  readonly spec: AdapterSpec & { readonly kind: "lora" | "ffa-lora" };
  readonly base: FrozenBase;
  /** The head to start from (classifier.* entries are read). */
  readonly head: ParamStore;
  readonly training: LocalTraining;
  readonly seed: number;
  readonly initSeed: number;
  /** Proximal weight on the trained set (0 for plain FedLoRA). */
  readonly mu?: number;
  /** A server optimizer on every round's aggregate (the trained adapter factors and the head); absent: plain averaging. */
  readonly serverOptimizer?: ServerOptimizerSpec | undefined;
}

export class LoraStrategy implements Strategy {
  readonly name: string;
  private readonly rm: RoundModel;
  /** Global adapter values and head (and the frozen A of FFA-LoRA). */
  private readonly values: ParamStore;
  private readonly optimizer: ServerOptimizer | undefined;

  constructor(private readonly opts: LoraStrategyOptions) {
    this.name = opts.name;
    this.optimizer = createServerOptimizer(opts.serverOptimizer);
    this.rm = buildRoundModel(opts.config, opts.spec.kind, opts.spec);
    this.values = opts.head.clone();
    for (const n of this.values.names()) if (!isHeadParam(n)) throw new Error(`LoraStrategy: head store holds "${n}"`);
    initAdapterValues(this.rm, this.values, opts.initSeed);
  }

  private instruction(task: "train" | "evaluate", round: number, clientId: string): Instruction {
    const o = this.opts;
    return { task, mode: o.spec.kind, adapterSpec: o.spec, ...o.training, mu: o.mu ?? 0, seed: clientSeed(o.seed, round, clientId), initSeed: o.initSeed, baseVersion: o.base.version };
  }

  private messages(task: "train" | "evaluate", round: number, clients: readonly string[]): WireMessage[] {
    const tensors = storeTensors(this.values, this.rm.trainable);
    return clients.map((c) => broadcast(round, c, this.instruction(task, round, c), [...this.opts.base.tensorsFor(c), ...tensors]));
  }

  configureTrain(round: number, clients: readonly string[]): TrainPlan {
    const expectation: ReplyExpectation = { round, tensors: shapesOf(this.values, this.rm.trainable), packed: new Map(), scores: new Map() };
    return { messages: this.messages("train", round, clients), expectation, info: { stage: "train" } };
  }

  aggregateTrain(_round: number, replies: readonly AcceptedReply[]): void {
    const agg = aggregateReplies(replies.map((r) => r.message));
    applyAggregate(this.values, agg.tensors, this.optimizer);
    for (const r of replies) this.opts.base.received(r.clientId);
  }

  clientsFailed(_round: number, failures: readonly RoundFailure[]): void {
    this.opts.base.clientsFailed(failures);
  }

  configureEvaluate(round: number, clients: readonly string[]): readonly WireMessage[] {
    return this.messages("evaluate", round, clients);
  }

  globalModel(): ParamStore {
    const merged = mergeAdapter(this.opts.base.store, this.rm.adapter!, this.values);
    for (const n of this.values.names()) if (isHeadParam(n)) merged.set(n, this.values.shape(n), this.values.get(n));
    return merged;
  }

  summary(): Record<string, unknown> {
    return { adapter: this.opts.spec, trainedParams: this.values.count(this.rm.trainable), baseDownloads: this.opts.base.downloads, ...optimizerSummary(this.optimizer) };
  }

  snapshot(): StrategySnapshot {
    return withOptimizerState(storeSnapshot(this.values, { base: this.opts.base.state() }), this.optimizer);
  }

  restore(s: StrategySnapshot): void {
    restoreStore(this.values, restoreOptimizerState(s, this.optimizer, this.name), this.name);
    this.opts.base.setState((s.meta["base"] ?? {}) as Record<string, unknown>);
  }
}

/** FedLoRA and FFA-LoRA: the same strategy on the pre-trained base, with the LoRA or FFA-LoRA adapter. */
function loraFamily<N extends string>(name: N, kind: "lora" | "ffa-lora", summary: string) {
  return defineStrategy({
    name,
    summary,
    schema: z.object({ name: z.literal(name), adapter: federatedAdapterSchema(kind, loraConfigSchema).prefault({}) }).strict(),
    create(spec, { config, initial, training, seed, serverOptimizer }) {
      const adapter = resolveAdapterSpec(kind, spec.adapter) as AdapterSpec & { kind: "lora" | "ffa-lora" };
      return new LoraStrategy({ name, config, spec: adapter, base: new FrozenBase(0, initial), head: headOf(initial), training: training.adapter(kind), seed, initSeed: seed + 1, serverOptimizer });
    },
  });
}

export const fedloraStrategy = loraFamily("fedlora", "lora", "FedLoRA (FedIT): fixed-rank LoRA on the pre-trained base, A and B averaged");
export const ffaLoraStrategy = loraFamily("ffa-lora", "ffa-lora", "FFA-LoRA: LoRA with A frozen and shared, only B trained and averaged");
