/**
 * @module data/partition.test
 * Tests for the federated partitioners: exact cover and determinism for every kind, the skew each
 * kind promises (IID balance, at most k classes per client for shards, Dirichlet alpha controlling
 * label and quantity skew), the Gamma sampler's mean, spec parsing, the summary table and the error
 * messages users see.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import { Rng } from "../util/rng.js";
import {
  formatPartitionSummary,
  type PartitionSpec,
  parsePartitionSpec,
  partition,
  partitionSummary,
  sampleDirichlet,
  sampleGamma,
} from "./partition.js";

function expectError(fn: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SaflError, `expected a SaflError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.InvalidArgument, caught.message);
  for (const f of fragments) assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(f)}`);
}

/** `perClass` examples of each of `k` classes, interleaved (label = index mod k). */
function balancedLabels(k: number, perClass: number): Int32Array {
  return Int32Array.from({ length: k * perClass }, (_, i) => i % k);
}

/** Class c has (c+1)*step examples, in a scrambled but fixed order. */
function unbalancedLabels(k: number, step: number): Int32Array {
  const out: number[] = [];
  for (let c = 0; c < k; c++) for (let j = 0; j < (c + 1) * step; j++) out.push(c);
  new Rng(123).shuffle(out);
  return Int32Array.from(out);
}

function assertExactCover(parts: number[][], n: number, clients: number): void {
  assert.equal(parts.length, clients);
  const seen = new Uint8Array(n);
  for (const [c, p] of parts.entries()) {
    assert.ok(p.length >= 1, `client ${c} is empty`);
    for (let j = 0; j < p.length; j++) {
      const i = p[j]!;
      assert.ok(Number.isInteger(i) && i >= 0 && i < n, `client ${c} has bad index ${i}`);
      assert.equal(seen[i], 0, `index ${i} appears twice`);
      seen[i] = 1;
      if (j > 0) assert.ok(p[j - 1]! < i, `client ${c} is not sorted ascending`);
    }
  }
  assert.ok(
    seen.every((s) => s === 1),
    "some index is not assigned",
  );
}

const allSpecs: PartitionSpec[] = [
  { kind: "iid" },
  { kind: "dirichlet", alpha: 0.5 },
  { kind: "dirichlet", alpha: 0.05 },
  { kind: "shards", classesPerClient: 2 },
  { kind: "quantity", alpha: 1 },
  { kind: "quantity", alpha: 0.1 },
];

describe("partition", () => {
  for (const spec of allSpecs) {
    test(`${JSON.stringify(spec)}: every index exactly once, no empty client`, () => {
      for (const [labels, k] of [
        [balancedLabels(10, 50), 10],
        [unbalancedLabels(7, 13), 7],
      ] as const) {
        for (const clients of [1, 3, 20]) assertExactCover(partition(labels, k, clients, spec, 7), labels.length, clients);
      }
    });

    test(`${JSON.stringify(spec)}: same seed same result, different seed different`, () => {
      const labels = balancedLabels(10, 40);
      const a = partition(labels, 10, 8, spec, 1);
      assert.deepEqual(partition(labels, 10, 8, spec, 1), a);
      assert.notDeepEqual(partition(labels, 10, 8, spec, 2), a);
    });
  }

  test("covers with as many clients as examples", () => {
    const labels = balancedLabels(4, 5);
    for (const spec of allSpecs) {
      const parts = partition(labels, 4, 20, spec.kind === "shards" ? { kind: "shards", classesPerClient: 1 } : spec, 3);
      assertExactCover(parts, 20, 20);
      assert.ok(
        parts.every((p) => p.length === 1),
        JSON.stringify(spec),
      );
    }
  });

  test("iid sizes differ by at most 1 and each client sees most classes", () => {
    const labels = balancedLabels(10, 101);
    const parts = partition(labels, 10, 7, { kind: "iid" }, 5);
    const s = partitionSummary(parts, labels, 10);
    assert.ok(s.maxSize - s.minSize <= 1, `sizes ${s.sizes.join(",")}`);
    assert.equal(s.meanClassesPerClient, 10);
  });

  test("shards: each client sees at most classesPerClient classes, also with unbalanced classes", () => {
    for (const [labels, k] of [
      [balancedLabels(10, 60), 10],
      [unbalancedLabels(6, 17), 6],
    ] as const) {
      for (const perClient of [1, 2, 3]) {
        for (const clients of [5, 10, 17]) {
          // With fewer shards than classes some shard must span classes; that case is tested below.
          if (clients * perClient < k) continue;
          const parts = partition(labels, k, clients, { kind: "shards", classesPerClient: perClient }, 11);
          assertExactCover(parts, labels.length, clients);
          const s = partitionSummary(parts, labels, k);
          for (const [c, h] of s.histograms.entries()) {
            const seen = h.filter((x) => x > 0).length;
            assert.ok(seen <= perClient, `client ${c} of ${clients} sees ${seen} classes with ${perClient} shards: ${h.join(",")}`);
          }
        }
      }
    }
  });

  test("shards: balanced data gives equal shard sizes", () => {
    const labels = balancedLabels(10, 60);
    const s = partitionSummary(partition(labels, 10, 30, { kind: "shards", classesPerClient: 2 }, 4), labels, 10);
    assert.deepEqual(new Set(s.sizes), new Set([20]));
  });

  test("shards: fewer shards than classes still covers (shards must then span classes)", () => {
    const labels = balancedLabels(10, 10);
    const parts = partition(labels, 10, 2, { kind: "shards", classesPerClient: 2 }, 4);
    assertExactCover(parts, 100, 2);
  });

  test("dirichlet: small alpha gives far fewer classes per client than large alpha", () => {
    const labels = balancedLabels(10, 200);
    const skewed = partitionSummary(partition(labels, 10, 20, { kind: "dirichlet", alpha: 0.1 }, 9), labels, 10);
    const flat = partitionSummary(partition(labels, 10, 20, { kind: "dirichlet", alpha: 100 }, 9), labels, 10);
    assert.ok(flat.meanClassesPerClient > 9.5, `alpha 100: ${flat.meanClassesPerClient}`);
    assert.ok(skewed.meanClassesPerClient < 6, `alpha 0.1: ${skewed.meanClassesPerClient}`);
    assert.ok(flat.meanClassesPerClient - skewed.meanClassesPerClient > 4);
  });

  test("dirichlet: tiny alpha and many clients still leaves nobody empty", () => {
    const labels = balancedLabels(10, 20);
    assertExactCover(partition(labels, 10, 100, { kind: "dirichlet", alpha: 0.001 }, 2), 200, 100);
  });

  test("quantity: alpha 0.5 gives a larger max/min size ratio than iid, labels stay mixed", () => {
    const labels = balancedLabels(10, 200);
    const q = partitionSummary(partition(labels, 10, 20, { kind: "quantity", alpha: 0.5 }, 3), labels, 10);
    const iid = partitionSummary(partition(labels, 10, 20, { kind: "iid" }, 3), labels, 10);
    assert.ok(iid.maxSize / iid.minSize <= 1.01);
    assert.ok(q.maxSize / q.minSize > 5, `quantity sizes ${q.sizes.join(",")}`);
    // The largest client's labels are IID, so it sees every class.
    const big = q.sizes.indexOf(q.maxSize);
    assert.equal(q.histograms[big]!.filter((x) => x > 0).length, 10);
  });

  test("rejects bad arguments with messages naming the values", () => {
    const labels = balancedLabels(3, 4);
    expectError(() => partition(labels, 3, 13, { kind: "iid" }, 0), "13 clients", "12 examples");
    expectError(() => partition([], 3, 1, { kind: "iid" }, 0), "1 clients", "0 examples");
    expectError(() => partition(labels, 3, 0, { kind: "iid" }, 0), "number of clients 0");
    expectError(() => partition(labels, 3, 2.5, { kind: "iid" }, 0), "number of clients 2.5");
    expectError(() => partition(labels, 0, 2, { kind: "iid" }, 0), "number of classes 0");
    expectError(() => partition(labels, 3, 2, { kind: "iid" }, 0.5), "seed 0.5");
    expectError(() => partition([0, 1, 3], 3, 1, { kind: "iid" }, 0), "label 3 at index 2", "0..2");
    expectError(() => partition(labels, 3, 2, { kind: "dirichlet", alpha: 0 }, 0), "alpha 0");
    expectError(() => partition(labels, 3, 2, { kind: "quantity", alpha: Number.NaN }, 0), "alpha NaN");
    expectError(() => partition(labels, 3, 2, { kind: "shards", classesPerClient: 4 }, 0), "classes per client 4", "1..3");
    expectError(() => partition(labels, 3, 2, { kind: "shards", classesPerClient: 0 }, 0), "classes per client 0");
    expectError(() => partition(labels, 3, 5, { kind: "shards", classesPerClient: 3 }, 0), "15 shards", "12 examples");
    expectError(() => partition(labels, 3, 2, { kind: "bogus" } as unknown as PartitionSpec, 0), '"bogus"');
  });
});

describe("sampleGamma / sampleDirichlet", () => {
  for (const k of [0.3, 1, 5]) {
    test(`Gamma(${k}) sample mean over 20000 draws is within 3% of ${k}`, () => {
      const rng = new Rng(2024);
      let sum = 0;
      for (let i = 0; i < 20000; i++) {
        const g = sampleGamma(rng, k);
        assert.ok(g >= 0 && Number.isFinite(g));
        sum += g;
      }
      const mean = sum / 20000;
      assert.ok(Math.abs(mean - k) <= 0.03 * k, `mean ${mean} for shape ${k}`);
    });
  }

  test("Dirichlet draws are finite proportions summing to 1, even for tiny alpha", () => {
    const rng = new Rng(5);
    for (const alpha of [1e-4, 0.1, 1, 50]) {
      for (let t = 0; t < 50; t++) {
        const p = sampleDirichlet(rng, alpha, 12);
        assert.equal(p.length, 12);
        assert.ok(p.every((x) => Number.isFinite(x) && x >= 0));
        assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
      }
    }
  });

  test("rejects a bad shape", () => {
    expectError(() => sampleGamma(new Rng(1), 0), "shape 0");
    expectError(() => sampleDirichlet(new Rng(1), -1, 3), "alpha -1");
  });
});

describe("parsePartitionSpec", () => {
  test("accepts the four forms", () => {
    assert.deepEqual(parsePartitionSpec("iid"), { kind: "iid" });
    assert.deepEqual(parsePartitionSpec(" IID "), { kind: "iid" });
    assert.deepEqual(parsePartitionSpec("dirichlet:0.5"), { kind: "dirichlet", alpha: 0.5 });
    assert.deepEqual(parsePartitionSpec("dirichlet: .1"), { kind: "dirichlet", alpha: 0.1 });
    assert.deepEqual(parsePartitionSpec("shards:2"), { kind: "shards", classesPerClient: 2 });
    assert.deepEqual(parsePartitionSpec("quantity:1.0"), { kind: "quantity", alpha: 1 });
    assert.deepEqual(parsePartitionSpec("quantity:1e-2"), { kind: "quantity", alpha: 0.01 });
  });

  test("rejects anything else, naming the text and the accepted forms", () => {
    const forms = ['"iid"', '"dirichlet:<alpha>"', '"shards:<classes per client>"', '"quantity:<alpha>"'];
    expectError(() => parsePartitionSpec("noniid"), '"noniid"', "unknown partition kind", ...forms);
    expectError(() => parsePartitionSpec(""), "empty", ...forms);
    expectError(() => parsePartitionSpec("dirichlet"), "needs a parameter");
    expectError(() => parsePartitionSpec("dirichlet:"), '"dirichlet:"', "not a number > 0");
    expectError(() => parsePartitionSpec("dirichlet:0"), "alpha \"0\"");
    expectError(() => parsePartitionSpec("quantity:-1"), "alpha \"-1\"");
    expectError(() => parsePartitionSpec("quantity:abc"), "alpha \"abc\"");
    expectError(() => parsePartitionSpec("shards:1.5"), 'classes per client "1.5"');
    expectError(() => parsePartitionSpec("shards:0"), 'classes per client "0"');
    expectError(() => parsePartitionSpec("iid:2"), "takes no parameter");
    expectError(() => parsePartitionSpec("label:3"), 'unknown partition kind "label"');
  });
});

describe("partitionSummary / formatPartitionSummary", () => {
  const labels = [0, 1, 2, 0, 1, 2, 0, 0];
  const parts = [[0, 3, 6], [1, 4], [2, 5, 7]];

  test("sizes, histograms and class counts", () => {
    const s = partitionSummary(parts, labels, 3);
    assert.deepEqual(s.sizes, [3, 2, 3]);
    assert.deepEqual(s.histograms, [
      [3, 0, 0],
      [0, 2, 0],
      [1, 0, 2],
    ]);
    assert.equal(s.minSize, 2);
    assert.equal(s.maxSize, 3);
    assert.equal(s.meanClassesPerClient, 4 / 3);
    const empty = partitionSummary([], labels, 3);
    assert.deepEqual([empty.minSize, empty.maxSize, empty.meanClassesPerClient], [0, 0, 0]);
    expectError(() => partitionSummary([[8]], labels, 3), "client 0 has index 8");
  });

  test("a table with a totals header, class names and truncation", () => {
    const s = partitionSummary(parts, labels, 3);
    const text = formatPartitionSummary(s, { classNames: ["cat", "dog", "airplane"] });
    const lines = text.split("\n");
    assert.match(lines[0]!, /^3 clients, 8 examples, 3 classes; client size min 2, max 3, mean 2\.7; 1\.33 classes per client/);
    assert.deepEqual(lines.slice(1), [
      "client  size  cat  dog  airplane",
      "     0     3    3    0         0",
      "     1     2    0    2         0",
      "     2     3    1    0         2",
    ]);
    const cut = formatPartitionSummary(s, { maxRows: 1 }).split("\n");
    assert.deepEqual(cut.slice(1), ["client  size  0  1  2", "     0     3  3  0  0", "... 2 more clients"]);
    const many = partitionSummary(
      partition(balancedLabels(4, 30), 4, 25, { kind: "iid" }, 1),
      balancedLabels(4, 30),
      4,
    );
    const manyLines = formatPartitionSummary(many).split("\n");
    assert.equal(manyLines.length, 1 + 1 + 20 + 1);
    assert.equal(manyLines.at(-1), "... 5 more clients");
    expectError(() => formatPartitionSummary(s, { classNames: ["a"] }), "1 class names for 3 classes");
    expectError(() => formatPartitionSummary(s, { maxRows: -1 }), "maxRows -1");
  });
});
