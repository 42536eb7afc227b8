/**
 * @module peft/adalora/controller
 * Rank allocation inside a centralized training loop, the way AdaLoRA does it per step: the budget
 * follows the heating / cubic annealing / cooling schedule over steps; during annealing, every
 * `interval` steps, the triplets with the highest importance scores are kept; at the last annealing
 * step the final allocation at the target budget is made, and the mask stays frozen through cooling. (Federated training uses
 * the same schedule and allocator per round, with scores averaged by the server.)
 */
import { argError } from "../../errors.js";
import type { ParamStore } from "../../nn/params.js";
import { allocate } from "./allocator.js";
import type { ImportanceTracker } from "./importance.js";
import { type SvdAdapter, writeMask } from "./layer.js";
import { type SchedulePhase, budgetSchedule } from "./schedule.js";

export interface RankControlOptions {
  readonly totalSteps: number;
  /** Steps at the full budget before pruning starts (PEFT's tinit). */
  readonly heatSteps: number;
  /** Final steps at the target budget with the mask frozen (PEFT's tfinal). */
  readonly coolSteps: number;
  /** Re-allocate every this many steps during annealing (PEFT's deltaT). */
  readonly interval: number;
}

export interface RankEvent {
  readonly step: number;
  readonly phase: SchedulePhase;
  readonly budget: number;
  /** Whether the mask was re-allocated after this step. */
  readonly allocated: boolean;
}

export class RankController {
  private readonly schedule: ReturnType<typeof budgetSchedule>;
  readonly initialBudget: number;
  readonly targetBudget: number;
  private frozen = false;

  constructor(
    private readonly adapter: SvdAdapter,
    private readonly opts: RankControlOptions,
  ) {
    if (!Number.isInteger(opts.interval) || opts.interval < 1) throw argError(`rank allocation interval must be a positive integer, got ${opts.interval}`);
    const modules = adapter.modules().length;
    this.initialBudget = adapter.config.initRank * modules;
    this.targetBudget = adapter.config.targetRank * modules;
    this.schedule = budgetSchedule({
      initialBudget: this.initialBudget,
      targetBudget: this.targetBudget,
      rounds: opts.totalSteps,
      heatRounds: opts.heatSteps,
      coolRounds: opts.coolSteps,
    });
  }

  /** Call after training step `step` (1-based) with the trainer's importance statistics. */
  afterStep(step: number, store: ParamStore, importance: Pick<ImportanceTracker, "allScores">): RankEvent {
    const phase = this.schedule.phase(step);
    const budget = this.schedule.budget(step);
    const lastAnnealing = this.opts.totalSteps - this.opts.coolSteps;
    const due = phase === "annealing" && ((step - this.opts.heatSteps) % this.opts.interval === 0 || step === lastAnnealing);
    if (!due || this.frozen) return { step, phase, budget, allocated: false };
    const modules = this.adapter.modules();
    const { masks } = allocate(importance.allScores(modules), budget);
    for (const m of modules) writeMask(store, m.name, masks.get(m.name)!);
    if (step === lastAnnealing) this.frozen = true;
    return { step, phase, budget, allocated: true };
  }
}
