/**
 * @module peft/adalora/schedule
 * The rank-budget schedule of SA-FedLoRA's annealing stage (DESIGN.md §5; the cubic form is
 * AdaLoRA's, Zhang et al. 2023, applied per federated round instead of per step):
 *
 * - heating, annealing rounds 1..T_heat: b = b₀ (every triplet active);
 * - annealing, between the end of heating t_h = T_heat and the start of cooling t_c = T − T_cool:
 *   b(t) = b_T + (b₀ − b_T)·(1 − (t − t_h)/(t_c − t_h))³, floored to an integer;
 * - cooling, the last T_cool rounds (t > t_c): b = b_T, and the mask no longer changes.
 *
 * Rounds are counted from 1 within the annealing stage. The budget is monotone non-increasing and
 * equals b₀ at t_h and b_T at t_c exactly.
 */
import { argError } from "../../errors.js";

export interface BudgetScheduleConfig {
  /** b₀: active triplets during heating (r_init × number of adapted modules). */
  initialBudget: number;
  /** b_T: active triplets during cooling (r_target × number of adapted modules). */
  targetBudget: number;
  /** T: number of annealing-stage rounds. */
  rounds: number;
  /** T_heat: rounds at the full budget. */
  heatRounds: number;
  /** T_cool: final rounds at the target budget. */
  coolRounds: number;
}

export type SchedulePhase = "heating" | "annealing" | "cooling";

/** Validates the config and returns budget(t) for annealing rounds t = 1..T. */
export function budgetSchedule(cfg: BudgetScheduleConfig): { budget(t: number): number; phase(t: number): SchedulePhase } {
  const { initialBudget: b0, targetBudget: bT, rounds: T, heatRounds: th, coolRounds: tcool } = cfg;
  const isInt = (v: number) => Number.isInteger(v) && v >= 0;
  for (const [k, v] of Object.entries(cfg)) if (!isInt(v)) throw argError(`budget schedule: ${k} must be a non-negative integer, got ${v}`);
  if (bT > b0) throw argError(`budget schedule: targetBudget ${bT} exceeds initialBudget ${b0}`);
  if (T < 1) throw argError(`budget schedule: rounds must be at least 1, got ${T}`);
  if (th + tcool >= T) {
    throw argError(`budget schedule: heatRounds ${th} + coolRounds ${tcool} must leave at least one annealing round out of ${T}`);
  }
  const tc = T - tcool;
  const phase = (t: number): SchedulePhase => {
    if (!Number.isInteger(t) || t < 1 || t > T) throw argError(`budget schedule: round ${t} is outside 1..${T}`);
    return t <= th ? "heating" : t > tc ? "cooling" : "annealing";
  };
  const budget = (t: number): number => {
    const p = phase(t);
    if (p === "heating") return b0;
    if (p === "cooling") return bT;
    const progress = (t - th) / (tc - th);
    return Math.floor(bT + (b0 - bT) * (1 - progress) ** 3);
  };
  return { budget, phase };
}
