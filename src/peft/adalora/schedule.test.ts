/** The budget schedule: exact values at the phase boundaries, integer and monotone, clear errors. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { budgetSchedule } from "./schedule.js";

describe("budget schedule", () => {
  const s = budgetSchedule({ initialBudget: 96, targetBudget: 24, rounds: 10, heatRounds: 2, coolRounds: 3 });

  test("heating, cubic annealing and cooling, by hand", () => {
    // t_h = 2, t_c = 7: b(t) = 24 + 72·(1 − (t − 2)/5)³
    const expected = [96, 96, 60, 39, 28, 24, 24, 24, 24, 24];
    // t=3: 24 + 72·0.8³ = 60.864 → 60; t=4: 24 + 72·0.216 = 39.552 → 39; t=5: 24 + 72·0.064 = 28.608 → 28;
    // t=6: 24 + 72·0.008 = 24.576 → 24; t=7 (= t_c): 24
    assert.deepEqual(
      Array.from({ length: 10 }, (_, i) => s.budget(i + 1)),
      expected,
    );
    assert.deepEqual(
      [1, 2, 3, 7, 8, 10].map((t) => s.phase(t)),
      ["heating", "heating", "annealing", "annealing", "cooling", "cooling"],
    );
  });

  test("integer and monotone non-increasing for many configurations", () => {
    for (let T = 2; T <= 30; T++) {
      for (let th = 0; th < T; th++) {
        for (let tcool = 0; th + tcool < T; tcool++) {
          const sched = budgetSchedule({ initialBudget: 200, targetBudget: 13, rounds: T, heatRounds: th, coolRounds: tcool });
          let prev = Number.POSITIVE_INFINITY;
          for (let t = 1; t <= T; t++) {
            const b = sched.budget(t);
            assert.ok(Number.isInteger(b) && b <= prev && b >= 13 && b <= 200);
            prev = b;
          }
          assert.equal(sched.budget(T - tcool), 13);
          if (th > 0) assert.equal(sched.budget(th), 200);
        }
      }
    }
  });

  test("bad configurations and rounds are rejected with the value", () => {
    assert.throws(() => budgetSchedule({ initialBudget: 10, targetBudget: 20, rounds: 5, heatRounds: 1, coolRounds: 1 }), /targetBudget 20 exceeds initialBudget 10/);
    assert.throws(() => budgetSchedule({ initialBudget: 10, targetBudget: 2, rounds: 5, heatRounds: 3, coolRounds: 2 }), /must leave at least one annealing round out of 5/);
    assert.throws(() => budgetSchedule({ initialBudget: 10.5, targetBudget: 2, rounds: 5, heatRounds: 1, coolRounds: 1 }), /initialBudget must be a non-negative integer, got 10.5/);
    assert.throws(() => s.budget(11), /round 11 is outside 1..10/);
  });
});
