/**
 * @module fl/strategies/full
 * Full-model strategies: FedAvg (McMahan et al., 2017) and FedProx (Li et al., 2020). Every sampled
 * client receives all weights, trains all of them, and sends all of them back; the server takes the
 * sample-weighted mean. FedProx differs only by the proximal weight μ in the instruction, and
 * SA-FedLoRA's initiating stage is this strategy with μ > 0 for its first rounds.
 */
import { z } from "zod";
import type { ParamStore } from "../../nn/params.js";
import { aggregateReplies, type ReplyExpectation } from "../aggregate.js";
import type { Instruction } from "../instruction.js";
import type { Stage } from "../records.js";
import { applyAggregate, createServerOptimizer, optimizerSummary, restoreOptimizerState, type ServerOptimizer, type ServerOptimizerSpec, withOptimizerState } from "../server-optimizer.js";
import { restoreStore, type StrategySnapshot, storeSnapshot } from "../strategy.js";
import { type AcceptedReply, broadcast, clientSeed, type LocalTraining, type Strategy, shapesOf, storeTensors, type TrainPlan } from "../strategy.js";
import type { WireMessage } from "../wire.js";
import { defineStrategy } from "./entry.js";

export interface FullModelOptions {
  readonly name: string;
  /** Initial global weights (backbone and head); the strategy works on a copy. */
  readonly initial: ParamStore;
  readonly training: LocalTraining;
  /** FedProx's μ (0: FedAvg). */
  readonly mu: number;
  readonly seed: number;
  /** How rounds are labelled in the log ("train", or "initiating" inside SA-FedLoRA). */
  readonly stage?: Stage;
  /** A server optimizer on every round's aggregate (all weights); absent: the aggregate is the new global model. */
  readonly serverOptimizer?: ServerOptimizerSpec | undefined;
}

export class FullModelStrategy implements Strategy {
  readonly name: string;
  private readonly global: ParamStore;
  private readonly names: readonly string[];
  private readonly optimizer: ServerOptimizer | undefined;

  constructor(private readonly opts: FullModelOptions) {
    this.name = opts.name;
    this.global = opts.initial.clone();
    this.names = this.global.names();
    this.optimizer = createServerOptimizer(opts.serverOptimizer);
  }

  private instruction(task: "train" | "evaluate", round: number, clientId: string): Instruction {
    const t = this.opts.training;
    return { task, mode: "full", adapterSpec: undefined, ...t, mu: this.opts.mu, seed: clientSeed(this.opts.seed, round, clientId), initSeed: 0, baseVersion: 0 };
  }

  configureTrain(round: number, clients: readonly string[]): TrainPlan {
    const tensors = storeTensors(this.global, this.names);
    const messages = clients.map((c) => broadcast(round, c, this.instruction("train", round, c), tensors));
    const expectation: ReplyExpectation = { round, tensors: shapesOf(this.global, this.names), packed: new Map(), scores: new Map() };
    return { messages, expectation, info: { stage: this.opts.stage ?? "train" } };
  }

  aggregateTrain(_round: number, replies: readonly AcceptedReply[]): void {
    const agg = aggregateReplies(replies.map((r) => r.message));
    applyAggregate(this.global, agg.tensors, this.optimizer);
  }

  configureEvaluate(round: number, clients: readonly string[]): readonly WireMessage[] {
    const tensors = storeTensors(this.global, this.names);
    return clients.map((c) => broadcast(round, c, this.instruction("evaluate", round, c), tensors));
  }

  globalModel(): ParamStore {
    return this.global;
  }

  summary(): Record<string, unknown> {
    return { mu: this.opts.mu, ...optimizerSummary(this.optimizer) };
  }

  snapshot(): StrategySnapshot {
    return withOptimizerState(storeSnapshot(this.global), this.optimizer);
  }

  restore(s: StrategySnapshot): void {
    restoreStore(this.global, restoreOptimizerState(s, this.optimizer, this.name), this.name);
  }
}

export const fedavgStrategy = defineStrategy({
  name: "fedavg",
  summary: "FedAvg: every weight trained, sent and averaged",
  schema: z.object({ name: z.literal("fedavg") }).strict(),
  create: (_spec, { initial, training, seed, serverOptimizer }) => new FullModelStrategy({ name: "fedavg", initial, training: training.full, mu: 0, seed, serverOptimizer }),
});

export const fedproxStrategy = defineStrategy({
  name: "fedprox",
  summary: "FedProx: FedAvg with the proximal term μ/2·‖w − w_global‖² in local training",
  schema: z.object({ name: z.literal("fedprox"), mu: z.number().min(0).default(0.01) }).strict(),
  create: (spec, { initial, training, seed, serverOptimizer }) => new FullModelStrategy({ name: "fedprox", initial, training: training.full, mu: spec.mu, seed, serverOptimizer }),
});
