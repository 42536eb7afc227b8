/**
 * @module fl/strategies/staged
 * Two strategies run one after the other: the first for its rounds, then the second, built from the
 * first's final global model. SA-FedLoRA is a FedProx initiating stage followed by the annealing
 * stage on the resulting weights as the new frozen base — composed, not inherited.
 *
 * When the second stage does not start from the first's model as it is (SA-FedLoRA's delta-svd
 * handoff keeps the pre-trained base and a truncated adapter), it is built eagerly, right after the
 * first stage's last aggregation: the evaluations of that round (server and client side) then measure
 * the model the second stage starts from, so the records show what the handoff costs.
 */
import type { ParamStore } from "../../nn/params.js";
import type { RoundFailure } from "../records.js";
import type { AcceptedReply, Strategy, StrategySnapshot, TrainPlan } from "../strategy.js";
import type { WireMessage } from "../wire.js";

export class StagedStrategy implements Strategy {
  private second: Strategy | undefined;

  constructor(
    readonly name: string,
    private readonly first: Strategy,
    /** Rounds 1..firstRounds belong to the first strategy. */
    private readonly firstRounds: number,
    private readonly makeSecond: (firstGlobal: ParamStore) => Strategy,
    /** Build the second stage right after round `firstRounds` is aggregated (default: when round firstRounds + 1 starts). */
    private readonly eager = false,
  ) {}

  private at(round: number): Strategy {
    if (round <= this.firstRounds) return this.first;
    this.second ??= this.makeSecond(this.first.globalModel());
    return this.second;
  }

  configureTrain(round: number, clients: readonly string[]): TrainPlan {
    return this.at(round).configureTrain(round, clients);
  }

  aggregateTrain(round: number, replies: readonly AcceptedReply[]): void {
    this.at(round).aggregateTrain(round, replies);
    if (this.eager && round === this.firstRounds) this.second ??= this.makeSecond(this.first.globalModel());
  }

  configureEvaluate(round: number, clients: readonly string[]): readonly WireMessage[] {
    // An eager second stage already holds the model of the handoff round.
    if (round === this.firstRounds && this.second) return this.second.configureEvaluate(round, clients);
    return this.at(round).configureEvaluate(round, clients);
  }

  /** The first stage's snapshot, and the second's once it exists (tensor names prefixed "first/" and "second/"). */
  snapshot(): StrategySnapshot {
    const tensors = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    const a = this.first.snapshot();
    for (const [n, t] of a.tensors) tensors.set(`first/${n}`, t);
    const b = this.second?.snapshot();
    if (b) for (const [n, t] of b.tensors) tensors.set(`second/${n}`, t);
    return { tensors, meta: { first: a.meta, ...(b ? { second: b.meta } : {}) } };
  }

  restore(s: StrategySnapshot): void {
    const part = (prefix: string) => new Map([...s.tensors].filter(([n]) => n.startsWith(prefix)).map(([n, t]) => [n.slice(prefix.length), t]));
    this.first.restore({ tensors: part("first/"), meta: (s.meta["first"] ?? {}) as Record<string, unknown> });
    this.second = undefined;
    if (s.meta["second"] !== undefined) {
      // The second stage starts from the first's final model, exactly as when the run crossed over.
      this.second = this.makeSecond(this.first.globalModel());
      this.second.restore({ tensors: part("second/"), meta: s.meta["second"] as Record<string, unknown> });
    }
  }

  clientsFailed(round: number, failures: readonly RoundFailure[]): void {
    this.at(round).clientsFailed?.(round, failures);
  }

  globalModel(): ParamStore {
    return (this.second ?? this.first).globalModel();
  }

  summary(): Record<string, unknown> {
    return { firstStage: this.first.summary(), ...(this.second ? { secondStage: this.second.summary() } : {}) };
  }
}
