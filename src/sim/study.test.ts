/**
 * Study plans and their report: plan validation names every problem, expansion gives one resolved
 * config per cell and folds a sweep's default into the matrix cell it equals, and the report's
 * statistics (mean ± sample std, rounds to target, reduction vs the reference, seed-mean curves)
 * match values computed by hand from synthetic records.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import type { RoundRecord, RunSummary } from "../fl/records.js";
import { canonicalJson, expandPlan, mergeConfigs, parseStudyPlan } from "./study.js";
import { ANALYSIS_BEGIN, ANALYSIS_END, buildStudyReport, type CellResult, meanCurve, meanStd, mergeAnalysis, paretoFront, roundsToTarget } from "./study-report.js";

const plan = (extra: Record<string, unknown> = {}) =>
  parseStudyPlan({
    title: "t",
    base: { rounds: 10, data: { dataset: "mnist" } },
    methods: [
      { id: "fedavg", config: { strategy: { name: "fedavg" } } },
      { id: "sa", config: { strategy: { name: "sa-fedlora" } } },
    ],
    partitions: [
      { id: "iid", partition: "iid" },
      { id: "d", partition: "dirichlet:0.5" },
    ],
    seeds: [0, 1],
    reference: "fedavg",
    flagship: "sa",
    targetAccuracy: 0.5,
    ...extra,
  });

function expectInvalid(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SaflError && e.code === ErrorCode.InvalidArgument, String(e));
    for (const p of parts) assert.ok(e.message.includes(p), `"${p}" missing from: ${e.message}`);
    return true;
  });
}

describe("study plan", () => {
  test("mergeConfigs merges objects deeply and replaces scalars and arrays", () => {
    assert.deepEqual(mergeConfigs({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] } }, { a: { e: 2 }, d: 2 }), { a: { b: 1, c: [3], e: 2 }, d: 2 });
    assert.equal(canonicalJson({ b: 1, a: { d: 2, c: 1 } }), canonicalJson({ a: { c: 1, d: 2 }, b: 1 }));
  });

  test("every problem of a plan is reported at once, with its path", () => {
    expectInvalid(
      () =>
        parseStudyPlan({
          title: "t",
          methods: [
            { id: "a", config: {} },
            { id: "a", config: {} },
          ],
          partitions: [{ id: "Bad Id", partition: "iid" }],
          seeds: [0, 0],
          reference: "nope",
          flagship: "a",
          targetAccuracy: 1.5,
        }),
      "methods.1.id: duplicate id",
      "partitions.0.id",
      "seeds: seeds repeat",
      'reference: "nope" is not one of the plan\'s methods',
      "targetAccuracy",
    );
  });

  test("expansion resolves one config per cell, and a sweep's default is the matrix cell", () => {
    const p = plan({
      sweeps: [
        {
          id: "init",
          label: "initiating rounds",
          method: "sa",
          partition: "d",
          seeds: [0],
          variants: [
            { id: "default", label: "1", config: {} },
            { id: "two", label: "2", config: { strategy: { initiating: { rounds: 2 } } } },
          ],
        },
      ],
    });
    const cells = expandPlan(p);
    assert.equal(cells.length, 2 * 2 * 2 + 1);
    const sa = cells.find((c) => c.id === "sa.d.s0")!;
    assert.equal(sa.config.strategy.name, "sa-fedlora");
    assert.equal(sa.config.clients.partition, "dirichlet:0.5");
    assert.equal(sa.config.rounds, 10);
    assert.deepEqual(sa.sweeps, [{ sweep: "init", variant: "default", seed: 0 }]);
    const two = cells.find((c) => c.id === "sweep-init-two.d.s0")!;
    assert.equal(two.matrix, undefined);
    assert.ok(two.config.strategy.name === "sa-fedlora" && two.config.strategy.initiating.rounds === 2);
    assert.equal(cells.find((c) => c.id === "fedavg.iid.s1")!.config.seed, 1);
  });

  test("invalid cell configs are reported together, naming the cell", () => {
    const p = plan({ methods: [
      { id: "fedavg", config: { strategy: { name: "fedavg" } } },
      { id: "sa", config: { strategy: { name: "sa-fedlora", initiating: { rounds: 10 } } } },
    ] });
    expectInvalid(() => expandPlan(p), "4 invalid cells", "cell sa.iid.s0", "cell sa.d.s1", "initiating rounds leave no annealing round");
  });

  test("two methods with the same config are an error, not a silent duplicate", () => {
    const p = plan({ methods: [
      { id: "fedavg", config: { strategy: { name: "fedavg" } } },
      { id: "sa", config: { strategy: { name: "fedavg" } } },
    ] });
    expectInvalid(() => expandPlan(p), "cell sa.iid.s0 has the same config as fedavg.iid.s0");
  });
});

/** A synthetic run: accuracy per evaluated round, fixed traffic per round. */
function records(acc: readonly (number | undefined)[], perRound: { up: number; down: number }, fedavgPerRound: number): RoundRecord[] {
  return acc.map((a, i) => {
    const n = i + 1;
    const t = (x: number) => ({ params: x, bytes: 4 * x });
    return {
      round: n,
      stage: "train",
      sampled: 2,
      accepted: 2,
      failures: [],
      clients: { sampled: ["a", "b"], accepted: ["a", "b"] },
      ...(a === undefined ? {} : { testAccuracy: a }),
      down: t(perRound.down),
      up: t(perRound.up),
      evalTraffic: t(0),
      cumulativeDown: t(n * perRound.down),
      cumulativeUp: t(n * perRound.up),
      fedavgCumulative: t(n * fedavgPerRound),
      seconds: 1,
      timing: { clientTrain: 1, evaluate: 0, codec: 0, aggregate: 0, other: 0 },
    };
  });
}

function summaryOf(name: string, rs: RoundRecord[]): RunSummary {
  const last = rs[rs.length - 1]!;
  const evaluated = rs.filter((r) => r.testAccuracy !== undefined);
  const best = evaluated.reduce((b, r) => (r.testAccuracy! > b.testAccuracy! ? r : b));
  const total = { params: last.cumulativeDown.params + last.cumulativeUp.params, bytes: last.cumulativeDown.bytes + last.cumulativeUp.bytes };
  return {
    strategy: name,
    rounds: rs.length,
    finalAccuracy: last.testAccuracy,
    bestAccuracy: best.testAccuracy,
    bestRound: best.round,
    totalDown: last.cumulativeDown,
    totalUp: last.cumulativeUp,
    total,
    fedavgTotal: last.fedavgCumulative,
    reduction: { params: 1 - total.params / last.fedavgCumulative.params, bytes: 1 - total.bytes / last.fedavgCumulative.bytes },
    modelParams: 100,
    seconds: 2,
    details: {},
  };
}

describe("study report", () => {
  test("meanStd uses the sample standard deviation", () => {
    const s = meanStd([0.8, 0.9]);
    assert.ok(Math.abs(s.mean - 0.85) < 1e-12);
    assert.ok(Math.abs(s.std - Math.SQRT1_2 * 0.1) < 1e-12);
    assert.equal(meanStd([0.5]).std, 0);
  });

  test("rounds to target is the first evaluated round at or above it", () => {
    const rs = records([0.4, undefined, 0.6, 0.55, 0.7], { up: 1, down: 1 }, 10);
    assert.equal(roundsToTarget(rs, 0.6), 3);
    assert.equal(roundsToTarget(rs, 0.65), 5);
    assert.equal(roundsToTarget(rs, 0.9), undefined);
  });

  test("seed-mean curves average accuracy and cumulative bytes at rounds evaluated in every seed", () => {
    const a = records([0.4, 0.5, 0.6], { up: 1, down: 1 }, 10);
    const b = records([0.6, undefined, 0.8], { up: 2, down: 2 }, 10);
    const c = meanCurve([a, b]);
    assert.deepEqual(c.map((x) => x.round), [1, 3]);
    assert.ok(Math.abs(c[1]!.accuracy - 70) < 1e-9);
    // round 3: seed a sent 3*(1+1) params = 24 bytes, seed b 3*(2+2) = 48 bytes
    assert.equal(c[1]!.bytes, 36);
  });

  test("tables, the target check and the sweeps come from the cells' numbers", () => {
    const p = plan({
      sweeps: [
        {
          id: "init",
          label: "initiating rounds",
          method: "sa",
          partition: "d",
          variants: [
            { id: "default", label: "1", config: {} },
            { id: "two", label: "2", config: { strategy: { initiating: { rounds: 2 } } } },
          ],
        },
      ],
    });
    const cells = expandPlan(p);
    const results: CellResult[] = cells.map((cell) => {
      const isFedavg = cell.config.strategy.name === "fedavg";
      // FedAvg: 0.80/0.90 final (seed 0/1); SA: 0.79/0.85, 5% of FedAvg's traffic; sweep cell: 0.5.
      const seed = cell.config.seed;
      const final = cell.matrix ? (isFedavg ? [0.8, 0.9] : [0.79, 0.85])[seed]! : 0.5;
      const rs = records(Array.from({ length: 10 }, (_, i) => (i === 9 ? final : 0.1 * (i + 1) * final)), isFedavg ? { up: 100, down: 100 } : { up: 5, down: 5 }, 200);
      return { cell, records: rs, summary: summaryOf(cell.config.strategy.name, rs) };
    });
    const { markdown, plots } = buildStudyReport(p, results, { plotsHref: "results/plots", cellsHref: "results/cells", command: "safl study --plan x" });
    // Over the last 5 evaluations (rounds 6-10, at 0.6, 0.7, 0.8, 0.9 and 1 times the final
    // accuracy) each run averages 0.8 of its final accuracy: FedAvg 0.8 * 85 = 68.00, SA 0.8 * 82 =
    // 65.60, so -2.40 points; the paired differences 0.8 * -1 and 0.8 * -5 points have a sample std
    // of 3.2 / sqrt(2) = 2.26. In the final round alone: -3.00. Traffic 5.00%, 2 paired seeds.
    const lastMean = (f: number) => [0.6, 0.7, 0.8, 0.9, 1].reduce((a, x) => a + (x === 1 ? f : x * f), 0) / 5;
    assert.ok(markdown.includes("| iid | 68.00 | 65.60 | -2.40 ± 2.26 | -3.00 | 5.00% | 2 | **not met** | met |"), markdown);
    // Per-partition rows: mean ± sample std of final accuracy, reduction 95%.
    assert.ok(markdown.includes(`| fedavg | 85.00 ± ${(100 * meanStd([0.8, 0.9]).std).toFixed(2)} | ${(100 * (lastMean(0.8) + lastMean(0.9)) / 2).toFixed(2)} ± `), markdown);
    assert.ok(markdown.includes("| 95.0% | 95.0% |"));
    // Rounds to 50%: FedAvg reaches 0.5 at round 7 (0.07*... ) -- computed: first i with 0.1*(i+1)*final >= 0.5.
    const first = (f: number) => Array.from({ length: 10 }, (_, i) => (i === 9 ? f : 0.1 * (i + 1) * f)).findIndex((a) => a >= 0.5) + 1;
    assert.ok(markdown.includes(`| ${(first(0.8) + first(0.9)) / 2} |`) || markdown.includes(`| ${((first(0.8) + first(0.9)) / 2).toFixed(1)} |`));
    // Sweep: the default variant is the matrix cell, the other its own cells.
    assert.ok(markdown.includes("sa.d.s0, sa.d.s1"));
    assert.ok(markdown.includes("sweep-init-two.d.s0, sweep-init-two.d.s1"));
    // The sweep variant: final 50.00, last 5 evaluations 0.8 * 50 = 40.00, vs FedAvg's 68.00: -28.00.
    assert.ok(markdown.includes("| 2 | `{\"strategy\":{\"initiating\":{\"rounds\":2}}}` | 50.00 ± 0.00 | 40.00 ± 0.00 | -28.00 |"), markdown);
    // The Pareto front on partition d: SA (5% of the traffic, 65.60) and FedAvg (100%, 68.00); the
    // sweep variant sends as much as SA for less accuracy, so it is plotted but not on the front.
    const front = markdown.slice(markdown.indexOf("| on the front |", markdown.indexOf("## d (")));
    const frontRows = front.slice(0, front.indexOf("\n\n")).split("\n").slice(2);
    assert.deepEqual(frontRows.map((r) => r.split(" | ")[0]), ["| sa", "| fedavg"]);
    assert.match(frontRows[0]!, /\| 5\.00% \| 65\.60 ± [\d.]+ \| 2 \|$/);
    const pareto = plots.get("pareto-d.svg");
    assert.ok(pareto?.includes(">init: two<") && pareto.includes(">Pareto front<"), "the sweep variant is a point of d's plot");
    assert.ok(!plots.get("pareto-iid.svg")!.includes("init: two"), "a sweep shows only on its own partition");
    // Traffic by stage: the synthetic flagship sends 5% of FedAvg, all in plain training rounds.
    assert.ok(markdown.includes("| iid | – | – | – | – | 5.00% | 0.00% | – |"), markdown);
    for (const f of ["accuracy-vs-round-iid.svg", "accuracy-vs-traffic-d.svg", "sweep-init.svg"]) assert.ok(plots.has(f), f);
    assert.ok(markdown.includes("](results/plots/accuracy-vs-round-iid.svg)"));
  });

  test("an interim report says how many cells are finished and skips partitions without any", () => {
    const p = plan();
    // Seed 0 on iid is finished for both methods; seed 1 only for FedAvg (accuracy 0.9), which must
    // not count yet: FedAvg's figures are seed 0's alone.
    const cells = expandPlan(p).filter((c) => c.matrix!.partition === "iid" && (c.matrix!.seed === 0 || c.matrix!.method === "fedavg"));
    const results: CellResult[] = cells.map((cell) => {
      const rs = records(cell.matrix!.seed === 0 ? [0.5, 0.6] : [0.9, 0.9], { up: 1, down: 1 }, 10);
      return { cell, records: rs, summary: summaryOf(cell.config.strategy.name, rs) };
    });
    const { markdown } = buildStudyReport(p, results, { plotsHref: "p", cellsHref: "c", command: "safl study", planned: 8 });
    assert.ok(markdown.includes("**Interim report: 3 of 8 cells finished.**") && markdown.includes("(1 finished cell waits for that)"), markdown);
    assert.match(markdown, /\| fedavg \| 60\.00 \| 55\.00 \|/);
    assert.ok(markdown.includes("run all 8 from scratch"));
    assert.ok(markdown.includes("## d (`dirichlet:0.5`)\n\n_No finished cell on this partition yet._"), markdown);
    assert.ok(!buildStudyReport(p, results, { plotsHref: "p", cellsHref: "c", command: "safl study" }).markdown.includes("Interim"));
    assert.throws(() => buildStudyReport(p, [], { plotsHref: "p", cellsHref: "c", command: "safl study" }), /no finished cells/);
  });

  test("the Pareto front keeps the points nothing beats on both axes, cheapest first", () => {
    // Hand-checked: (1, 90) cheapest; (2, 80) is beaten by it; (3, 95) and (10, 96) each buy accuracy;
    // (10, 96) again is a duplicate (the first one counts); (5, 95) is beaten by (3, 95); NaN is out.
    const pts = [
      { x: 10, y: 96 },
      { x: 2, y: 80 },
      { x: 1, y: 90 },
      { x: 5, y: 95 },
      { x: 3, y: 95 },
      { x: 10, y: 96 },
      { x: Number.NaN, y: 99 },
    ];
    assert.deepEqual(paretoFront(pts), [2, 4, 0]);
    assert.deepEqual(paretoFront([]), []);
    assert.deepEqual(paretoFront([{ x: 1, y: 1 }]), [0]);
  });

  test("the hand-written analysis survives regeneration", () => {
    const fresh = `# r\n\n${ANALYSIS_BEGIN}\n_No analysis written yet._\n${ANALYSIS_END}\n\n| t | 1 |\n`;
    const edited = fresh.replace("_No analysis written yet._", "It stands.").replace("| t | 1 |", "| t | stale |");
    const merged = mergeAnalysis(fresh.replace("| t | 1 |", "| t | 2 |"), edited);
    assert.ok(merged.includes("It stands.") && merged.includes("| t | 2 |") && !merged.includes("stale"));
    assert.equal(mergeAnalysis(fresh, undefined), fresh);
    assert.equal(mergeAnalysis(fresh, "no markers"), fresh);
  });
});
