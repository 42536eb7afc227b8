/**
 * @module sim/report.test
 * Tests for the run report: which plot files a run produces (budget and rank plots only for
 * SVD-form runs), that the SVGs carry their titles, short module labels and the right points, and the
 * text outputs (summary table, per-round line, byte and count formatting) by exact value.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { PartitionSummary } from "../data/partition.js";
import type { RoundRecord, RunSummary, Traffic } from "../fl/records.js";
import {
  formatBytes,
  formatCount,
  formatRoundLine,
  formatSummaryTable,
  partitionPlot,
  runPlots,
  runPlotsMulti,
  shortModuleName,
} from "./report.js";

const t = (params: number, bytes: number): Traffic => ({ params, bytes });
const TIMING = { clientTrain: 1, evaluate: 0.5, codec: 0.2, aggregate: 0.1, other: 0.1 };
const Q0 = "vit.encoder.layer.0.attention.attention.query";
const O0 = "vit.encoder.layer.0.attention.output.dense";
const I3 = "vit.encoder.layer.3.intermediate.dense";
const D1 = "vit.encoder.layer.1.output.dense";

function record(round: number, over: Partial<RoundRecord>): RoundRecord {
  return {
    round,
    stage: "annealing",
    sampled: 10,
    accepted: 10,
    failures: [],
    clients: { sampled: [], accepted: [] },
    down: t(100, 1_000),
    up: t(100, 1_000),
    evalTraffic: t(0, 0),
    cumulativeDown: t(100 * round, 1_000 * round),
    cumulativeUp: t(100 * round, 1_000 * round),
    fedavgCumulative: t(10_000 * round, 40_000 * round),
    seconds: 2,
    timing: TIMING,
    ...over,
  };
}

/** An initiating round (no budget, no ranks) followed by three annealing rounds; round 3 is not evaluated. */
const RECORDS: RoundRecord[] = [
  record(1, { stage: "initiating", testAccuracy: 0.5, testLoss: 1.2, trainLoss: 1.5 }),
  record(2, { phase: "heating", budget: 48, ranks: { [Q0]: 8, [O0]: 8, [I3]: 16, [D1]: 16 }, testAccuracy: 0.75 }),
  record(3, { phase: "annealing", budget: 40, ranks: { [Q0]: 7, [O0]: 9, [I3]: 12, [D1]: 12 } }),
  record(4, { phase: "cooling", budget: 32, ranks: { [Q0]: 5, [O0]: 11, [I3]: 8, [D1]: 8 }, testAccuracy: 0.9123 }),
];

/** The circles (point markers) of a line chart, in document order. */
function markers(svg: string): [number, number][] {
  return [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

function assertSvg(svg: string, title: string): void {
  assert.ok(svg.startsWith("<svg "), "does not start with <svg");
  assert.ok(svg.trimEnd().endsWith("</svg>"), "does not end with </svg>");
  assert.ok(svg.includes(`<title>${title}`), `title ${JSON.stringify(title)} missing`);
  assert.ok(!/NaN|Infinity|undefined/.test(svg), "non-finite value or undefined leaked into the SVG");
}

describe("runPlots", () => {
  test("an SVD-form run gets accuracy, budget and rank plots with titles", () => {
    const plots = runPlots(RECORDS, { title: "demo run" });
    assert.deepEqual([...plots.keys()].sort(), ["accuracy-vs-bytes.svg", "accuracy-vs-round.svg", "budget-vs-round.svg", "ranks-heatmap.svg"]);
    for (const svg of plots.values()) assertSvg(svg, "demo run");
    assert.ok(plots.get("accuracy-vs-round.svg")!.includes("test accuracy vs round"));
    assert.ok(plots.get("budget-vs-round.svg")!.includes("rank budget vs round"));
  });

  test("accuracy plots skip rounds without test accuracy; budget omits the initiating round", () => {
    const plots = runPlots(RECORDS, { title: "demo" });
    // Three evaluated rounds (1, 2, 4) -> three markers; three rounds with a budget (2, 3, 4).
    assert.equal(markers(plots.get("accuracy-vs-round.svg")!).length, 3);
    assert.equal(markers(plots.get("accuracy-vs-bytes.svg")!).length, 3);
    assert.equal(markers(plots.get("budget-vs-round.svg")!).length, 3);
    // The budget is a step function: horizontal then vertical segments.
    assert.match(plots.get("budget-vs-round.svg")!, /<path d="M[\d.]+ [\d.]+H[\d.]+V[\d.]+H/);
    // Bytes 2 kB .. 8 kB span less than two decades: linear axis, no "log scale" note.
    assert.ok(!plots.get("accuracy-vs-bytes.svg")!.includes("log scale"));
  });

  test("accuracy vs bytes switches to a log axis beyond two decades", () => {
    const wide = [
      record(1, { cumulativeDown: t(1, 500), cumulativeUp: t(1, 500), testAccuracy: 0.2 }),
      record(2, { cumulativeDown: t(1, 500_000), cumulativeUp: t(1, 500_000), testAccuracy: 0.6 }),
    ];
    const svg = runPlots(wide, { title: "wide" }).get("accuracy-vs-bytes.svg")!;
    assert.ok(svg.includes("cumulative bytes, down + up (log scale)"));
    // Decade ticks 1k .. 1M on the log axis.
    assert.ok(svg.includes(">1k</text>") && svg.includes(">1M</text>"));
  });

  test("a run without budgets gets only the accuracy plots", () => {
    const plain = [record(1, { stage: "train", testAccuracy: 0.4 }), record(2, { stage: "train", testAccuracy: 0.6 })];
    assert.deepEqual([...runPlots(plain, { title: "fedavg" }).keys()].sort(), ["accuracy-vs-bytes.svg", "accuracy-vs-round.svg"]);
  });

  test("the rank heat map has one short-labelled row per module and one column per ranked round", () => {
    const svg = runPlots(RECORDS, { title: "demo" }).get("ranks-heatmap.svg")!;
    for (const label of ["L0 query", "L0 attn.out", "L3 intermediate", "L1 output"]) assert.ok(svg.includes(`>${label}</text>`), `row label ${label} missing`);
    // 4 modules x 3 ranked rounds (2, 3, 4) = 12 cells, each with an exact-value tooltip.
    assert.equal([...svg.matchAll(/<rect [^>]*><title>/g)].length, 12);
    assert.ok(svg.includes(`<title>L0 attn.out / 4: 11</title>`));
    assert.ok(svg.includes(`<title>L3 intermediate / 2: 16</title>`));
    // Column labels are round numbers; round 1 (initiating, no ranks) is not a column.
    assert.ok(!svg.includes("/ 1: "));
    // Row order follows the first ranked record's keys.
    const order = ["L0 query", "L0 attn.out", "L3 intermediate", "L1 output"].map((l) => svg.indexOf(`>${l}</text>`));
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
    );
  });
});

describe("shortModuleName", () => {
  test("shortens ViT module names and leaves others alone", () => {
    assert.equal(shortModuleName(Q0), "L0 query");
    assert.equal(shortModuleName("vit.encoder.layer.11.attention.attention.value"), "L11 value");
    assert.equal(shortModuleName(O0), "L0 attn.out");
    assert.equal(shortModuleName(I3), "L3 intermediate");
    assert.equal(shortModuleName(D1), "L1 output");
    assert.equal(shortModuleName("classifier"), "classifier");
    assert.equal(shortModuleName("vit.encoder.layer.2.layernorm_before"), "vit.encoder.layer.2.layernorm_before");
  });
});

describe("runPlotsMulti", () => {
  test("one series per run in both accuracy plots", () => {
    const plots = runPlotsMulti(
      [
        { label: "sa-fedlora", records: RECORDS },
        { label: "fedavg", records: [record(1, { stage: "train", testAccuracy: 0.55 })] },
      ],
      { title: "compare" },
    );
    assert.deepEqual([...plots.keys()].sort(), ["accuracy-vs-bytes.svg", "accuracy-vs-round.svg"]);
    for (const svg of plots.values()) {
      assertSvg(svg, "compare");
      assert.ok(svg.includes(">sa-fedlora</text>") && svg.includes(">fedavg</text>"));
      assert.equal(markers(svg).length, 4);
    }
  });
});

describe("partitionPlot", () => {
  const summary = (clients: number): PartitionSummary => {
    const histograms = Array.from({ length: clients }, (_, c) => [c, 2 * c, 3]);
    const sizes = histograms.map((h) => h[0]! + h[1]! + h[2]!);
    return { sizes, histograms, minSize: Math.min(...sizes), maxSize: Math.max(...sizes), meanClassesPerClient: 3 };
  };

  test("clients x classes, with class names", () => {
    const svg = partitionPlot(summary(3), ["cat", "dog", "ship"]);
    assertSvg(svg, "Samples per client and class");
    assert.ok(!svg.includes("first 50"));
    assert.equal([...svg.matchAll(/<rect [^>]*><title>/g)].length, 9);
    assert.ok(svg.includes("<title>client 2 / dog: 4</title>"));
  });

  test("more than 50 clients: the first 50 rows and a title that says so", () => {
    const svg = partitionPlot(summary(60));
    assert.ok(svg.includes("<title>Samples per client and class (first 50 of 60 clients)</title>"));
    assert.equal([...svg.matchAll(/<rect [^>]*><title>/g)].length, 150);
    assert.ok(svg.includes("<title>client 49 / 1: 98</title>"));
    assert.ok(!svg.includes("client 50 /"));
  });

  test("class names must match the classes", () => {
    assert.throws(() => partitionPlot(summary(2), ["a", "b"]), /2 class names for 3 classes/);
  });
});

describe("formatting", () => {
  test("formatBytes uses decimal units", () => {
    assert.equal(formatBytes(1234567), "1.23 MB");
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(512), "512 B");
    assert.equal(formatBytes(1500), "1.50 kB");
    assert.equal(formatBytes(999_999), "1.00 MB");
    assert.equal(formatBytes(2.5e9), "2.50 GB");
    assert.equal(formatBytes(1_234_567, 1), "1.2 MB");
  });

  test("formatCount groups thousands", () => {
    assert.equal(formatCount(0), "0");
    assert.equal(formatCount(999), "999");
    assert.equal(formatCount(1000), "1,000");
    assert.equal(formatCount(1234567), "1,234,567");
    assert.equal(formatCount(-9876543210), "-9,876,543,210");
    assert.equal(formatCount(1234.5), "1,234.50");
  });

  test("formatSummaryTable shows totals, FedAvg and the reduction", () => {
    const s: RunSummary = {
      strategy: "sa-fedlora",
      rounds: 20,
      finalAccuracy: 0.9123,
      bestAccuracy: 0.925,
      bestRound: 17,
      totalDown: t(600, 1_000_000),
      totalUp: t(400, 234_567),
      total: t(1_000, 1_234_567),
      fedavgTotal: t(10_000, 9_876_536),
      // 1 - 1000/10000 = 0.9; 1 - 1234567/9876536 = 0.875
      reduction: { params: 1 - 1_000 / 10_000, bytes: 1 - 1_234_567 / 9_876_536 },
      modelParams: 5_000,
      seconds: 123.456,
      details: {},
    };
    const table = formatSummaryTable(s);
    const lines = table.split("\n");
    const row = (label: string) => {
      const line = lines.find((l) => l.startsWith(label));
      assert.ok(line !== undefined, `row ${label} missing`);
      return line.slice(label.length).trim();
    };
    assert.equal(row("final test accuracy"), "91.23%");
    assert.equal(row("best test accuracy"), "92.50% (round 17)");
    assert.equal(row("rounds"), "20");
    assert.equal(row("params total"), "1,000");
    assert.equal(row("bytes total"), "1.23 MB (1,234,567)");
    assert.equal(row("bytes up"), "234.57 kB (234,567)");
    assert.equal(row("FedAvg params (same schedule)"), "10,000");
    assert.equal(row("FedAvg bytes (same schedule)"), "9.88 MB (9,876,536)");
    assert.equal(row("reduction vs FedAvg, params"), "90.00%");
    assert.equal(row("reduction vs FedAvg, bytes"), "87.50%");
    assert.equal(row("wall time"), "123.5 s");
    // Values start in one column.
    const starts = new Set(lines.map((l) => l.search(/ {2}\S/) + 2));
    assert.equal(starts.size, 1, table);
  });

  test("formatSummaryTable without an evaluation says n/a", () => {
    const s: RunSummary = {
      strategy: "fedavg",
      rounds: 1,
      finalAccuracy: undefined,
      bestAccuracy: undefined,
      bestRound: undefined,
      totalDown: t(1, 4),
      totalUp: t(1, 4),
      total: t(2, 8),
      fedavgTotal: t(2, 8),
      reduction: { params: 0, bytes: 0 },
      modelParams: 1,
      seconds: 0.5,
      details: {},
    };
    const table = formatSummaryTable(s);
    assert.match(table, /^final test accuracy +n\/a$/m);
    assert.match(table, /^reduction vs FedAvg, bytes +0\.00%$/m);
    assert.match(table, /^bytes total +8 B \(8\)$/m);
  });

  test("formatRoundLine", () => {
    const r = record(3, {
      phase: "heating",
      budget: 288,
      testAccuracy: 0.9123,
      testLoss: 0.28764,
      trainLoss: 0.312,
      up: t(10, 1_234_567),
      down: t(10, 1_300_000),
      cumulativeDown: t(30, 2_700_000),
      cumulativeUp: t(30, 2_700_000),
      seconds: 4.06,
      failures: [{ clientId: "c7", code: "deadline-exceeded", reason: "timeout" }],
    });
    assert.equal(
      formatRoundLine(r, 20),
      "round 3/20 annealing(heating) budget 288  acc 91.23%  loss 0.2876  train 0.3120  up 1.2 MB down 1.3 MB (cum 5.4 MB)  4.1s  [1 failure]",
    );
    const init = record(1, { stage: "initiating", seconds: 2, failures: [] });
    assert.equal(formatRoundLine(init, 20), "round 1/20 initiating  up 1.0 kB down 1.0 kB (cum 2.0 kB)  2.0s");
    const two = record(2, { stage: "train", failures: [{ clientId: "a", code: "internal", reason: "x" }, { clientId: "b", code: "internal", reason: "y" }] });
    assert.ok(formatRoundLine(two, 5).endsWith("[2 failures]"));
  });
});
