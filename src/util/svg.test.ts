/**
 * @module util/svg.test
 * Tests for the SVG chart writer: nice ticks and compact labels by value, and the charts by structure
 * (well-nested tags, no stray markup characters, no NaN/Infinity leaking into coordinates, escaped
 * text, log ticks, step paths, palette, label truncation). A tiny tag scanner stands in for an XML
 * parser, which Node does not ship.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatCompact, heatmap, lineChart, niceTicks, type ScatterPoint, scatterChart, type Series } from "./svg.js";

/**
 * Fails unless every "<" starts a well-formed tag with double-quoted attributes, tags nest properly
 * with a single root <svg>, and "&" only starts the entities we emit. Returns the element names seen.
 */
function assertWellFormed(svg: string): string[] {
  assert.ok(svg.startsWith("<svg "), "document does not start with <svg");
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  const stack: string[] = [];
  const names: string[] = [];
  let roots = 0;
  for (let i = svg.indexOf("<"); i >= 0; i = svg.indexOf("<", i + 1)) {
    tag.lastIndex = i;
    const m = tag.exec(svg);
    assert.ok(m !== null, `malformed markup at ${i}: ${JSON.stringify(svg.slice(i, i + 60))}`);
    const [, closing, name, , selfClosing] = m;
    if (closing === "/") {
      assert.equal(stack.pop(), name, `unbalanced </${name}> at ${i}`);
    } else {
      if (stack.length === 0) roots++;
      names.push(name!);
      if (selfClosing !== "/") stack.push(name!);
    }
  }
  assert.deepEqual(stack, [], "unclosed tags");
  assert.equal(roots, 1, "more than one root element");
  const textOnly = svg.replace(/<[^>]*>/g, "");
  assert.ok(!textOnly.includes(">"), "a raw > outside tags");
  for (const m of svg.matchAll(/&/g)) {
    assert.match(svg.slice(m.index, m.index + 6), /^&(?:amp|lt|gt|quot|#39);/, `raw & at ${m.index}`);
  }
  for (const bad of ["NaN", "Infinity", "undefined"]) assert.ok(!svg.includes(bad), `output contains ${bad}`);
  assert.equal(count(svg, "<svg"), count(svg, "</svg>"));
  return names;
}

function count(s: string, sub: string): number {
  return s.split(sub).length - 1;
}

/** Text content of the <text> elements. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
}

const base = { title: "Accuracy", xLabel: "round", yLabel: "accuracy" };

describe("niceTicks", () => {
  test("examples", () => {
    assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(0, 97), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(97, 0), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(0.91, 0.97), [0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97]);
    assert.deepEqual(niceTicks(-3.2, 7.9), [-4, -2, 0, 2, 4, 6, 8]);
    assert.deepEqual(niceTicks(0, 3e9), [0, 5e8, 1e9, 1.5e9, 2e9, 2.5e9, 3e9]);
    assert.deepEqual(niceTicks(0, 10, 2), [0, 5, 10]);
    assert.deepEqual(niceTicks(Number.NaN, 1), []);
    assert.deepEqual(niceTicks(0, Number.POSITIVE_INFINITY), []);
    assert.ok(!Object.is(niceTicks(-1, 1)[2], -0));
  });

  test("equal ends get a range around them", () => {
    const t = niceTicks(5, 5);
    assert.ok(t.length >= 2 && t[0]! < 5 && t.at(-1)! > 5, t.join(","));
    const z = niceTicks(0, 0);
    assert.ok(z[0]! < 0 && z.at(-1)! > 0, z.join(","));
  });

  test("always encloses the range with evenly spaced 1/2/5 x 10^k steps", () => {
    let seed = 17;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    for (let i = 0; i < 500; i++) {
      const scale = 10 ** Math.round(rand() * 8);
      const a = rand() * scale;
      const b = a + Math.abs(rand()) * scale + 1e-6 * scale;
      const t = niceTicks(a, b);
      assert.ok(t.length >= 3 && t.length <= 12, `${a}..${b}: ${t.length} ticks`);
      assert.ok(t[0]! <= a && t.at(-1)! >= b, `${a}..${b}: [${t.join(",")}] does not enclose`);
      const step = t[1]! - t[0]!;
      const mant = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
      assert.ok([1, 2, 5].some((m) => Math.abs(mant - m) < 1e-6), `step ${step}`);
      for (let j = 1; j < t.length; j++) assert.ok(Math.abs(t[j]! - t[j - 1]! - step) <= 1e-9 * Math.max(1, Math.abs(step)));
    }
  });
});

describe("formatCompact", () => {
  test("examples", () => {
    const cases: [number, string][] = [
      [0, "0"],
      [7, "7"],
      [999, "999"],
      [1000, "1k"],
      [1234, "1.2k"],
      [12345, "12.3k"],
      [123456, "123k"],
      [2.5e6, "2.5M"],
      [3e9, "3G"],
      [4.2e12, "4.2T"],
      [-1234, "-1.2k"],
      [0.8534, "0.853"],
      [0.2, "0.2"],
      [999.7, "1k"],
      [999_960, "1M"],
      [12.5, "12.5"],
    ];
    for (const [v, s] of cases) assert.equal(formatCompact(v), s, String(v));
  });
});

describe("lineChart", () => {
  const series: Series[] = [
    { label: "FedAvg LoRA r=8", points: [[1, 0.42], [2, 0.61], [3, 0.7], [4, 0.74]] },
    { label: "SA-FedLoRA", points: [[1, 0.45], [2, 0.66], [3, 0.75], [4, 0.8]] },
  ];

  test("a well-formed document with title, axis labels, legend and one path per series", () => {
    const svg = lineChart(series, { ...base, yMin: 0, yMax: 1 });
    const names = assertWellFormed(svg);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="640" height="400"/);
    assert.equal(names.filter((n) => n === "path").length, 3); // two series and the axes
    const t = texts(svg);
    for (const s of ["Accuracy", "round", "accuracy", "FedAvg LoRA r=8", "SA-FedLoRA"]) assert.ok(t.includes(s), s);
    for (const s of ["0", "0.2", "0.4", "0.6", "0.8", "1"]) assert.ok(t.includes(s), `y tick ${s}`);
  });

  test("escapes text", () => {
    const svg = lineChart([{ label: 'a<b & "c"', points: [[0, 1]] }], { title: "x > y & z", xLabel: "<x>", yLabel: "it's" });
    assertWellFormed(svg);
    assert.ok(svg.includes("a&lt;b &amp; &quot;c&quot;"));
    assert.ok(svg.includes("x &gt; y &amp; z"));
    assert.ok(svg.includes("&lt;x&gt;"));
    assert.ok(svg.includes("it&#39;s"));
    // Control characters are not allowed in XML 1.0, even escaped, so they are dropped.
    assert.ok(lineChart([], { ...base, title: "a\u0001b\u0000" }).includes(">ab</text>"));
  });

  test("empty input and single points", () => {
    for (const input of [[], [{ label: "none", points: [] }]] as Series[][]) {
      const svg = lineChart(input, base);
      assertWellFormed(svg);
      assert.ok(texts(svg).includes("no data"));
    }
    const one = lineChart([{ label: "one", points: [[3, 0.5]] }], base);
    assertWellFormed(one);
    assert.equal(count(one, "<circle"), 1);
    const logOne = lineChart([{ label: "one", points: [[3e6, 0.5]] }], { ...base, xLog: true });
    assertWellFormed(logOne);
  });

  test("skips non-finite points", () => {
    const svg = lineChart(
      [{ label: "gaps", points: [[0, 1], [1, Number.NaN], [Number.POSITIVE_INFINITY, 2], [2, 3]] }],
      base,
    );
    assertWellFormed(svg);
    assert.equal(count(svg, "<circle"), 2);
  });

  test("xLog uses decade ticks and drops x <= 0", () => {
    const pts: [number, number][] = [[0, 0.1], [-5, 0.2], [1200, 0.3], [4.5e4, 0.5], [8e5, 0.7], [9.9e6, 0.8]];
    const svg = lineChart([{ label: "bytes", points: pts }], { ...base, xLabel: "cumulative bytes", xLog: true });
    assertWellFormed(svg);
    const t = texts(svg);
    for (const s of ["1k", "10k", "100k", "1M", "10M"]) assert.ok(t.includes(s), `log tick ${s} in ${t.join("|")}`);
    for (const s of ["2M", "4M", "5M"]) assert.ok(!t.includes(s), `linear tick ${s} on a log axis`);
    assert.equal(count(svg, "<circle"), 4);
    // Linear for comparison: ticks like 2M appear.
    assert.ok(texts(lineChart([{ label: "bytes", points: pts }], base)).includes("2M"));
  });

  test("a narrow log range also gets 2x and 5x ticks", () => {
    const t = texts(lineChart([{ label: "s", points: [[150, 1], [800, 2]] }], { ...base, xLog: true }));
    for (const s of ["100", "200", "500", "1k"]) assert.ok(t.includes(s), s);
  });

  test("step draws horizontal-then-vertical segments", () => {
    const svg = lineChart([{ label: "budget", points: [[0, 10], [5, 8], [10, 6]] }], { ...base, step: true });
    assertWellFormed(svg);
    const d = /<path d="(M[^"]*)" fill="none" stroke="#0072B2"/.exec(svg)?.[1];
    assert.ok(d !== undefined);
    assert.match(d, /^M[\d.]+ [\d.]+H[\d.]+V[\d.]+H[\d.]+V[\d.]+$/);
    const plain = /<path d="(M[^"]*)" fill="none" stroke="#0072B2"/.exec(lineChart([{ label: "b", points: [[0, 10], [5, 8]] }], base))?.[1];
    assert.match(plain!, /^M[\d.]+ [\d.]+L[\d.]+ [\d.]+$/);
  });

  test("distinct colours, then dashes, and a legend that says when it is cut", () => {
    const many: Series[] = Array.from({ length: 9 }, (_, i) => ({ label: `s${i}`, points: [[0, i], [1, i + 1]] }));
    const svg = lineChart(many, base);
    assertWellFormed(svg);
    const strokes = [...svg.matchAll(/<path d="M[^"]*" fill="none" stroke="(#[0-9A-Fa-f]{6})"/g)].map((m) => m[1]).filter((c) => c !== "#333333");
    assert.equal(strokes.length, 9);
    assert.equal(new Set(strokes.slice(0, 7)).size, 7);
    assert.equal(count(svg, 'stroke-dasharray="6 3"'), 4); // series 7 and 8: line + legend sample
    const tiny = lineChart(many, { ...base, height: 140 });
    assertWellFormed(tiny);
    assert.ok(texts(tiny).some((t) => /^\+\d+ more$/.test(t)));
  });

  test("long legend labels are cut with an ellipsis", () => {
    const label = "x".repeat(300);
    const t = texts(lineChart([{ label, points: [[0, 1]] }], base));
    const cut = t.find((s) => s.startsWith("xxx"));
    assert.ok(cut?.endsWith("…") && cut.length < 40, cut);
  });

  test("large y values get compact tick labels", () => {
    const t = texts(lineChart([{ label: "bytes", points: [[0, 0], [10, 3.2e9]] }], base));
    assert.ok(t.includes("1G") && t.includes("3G") && t.includes("3.5G"), t.join("|"));
  });

  test("rejects a bad size or y range", () => {
    assert.throws(() => lineChart(series, { ...base, width: 10 }), /size 10x400/);
    assert.throws(() => lineChart(series, { ...base, yMin: 1, yMax: 1 }), /yMin 1 must be below yMax 1/);
  });
});

describe("heatmap", () => {
  const values = [
    [8, 8, 6, 4],
    [8, 6, 4, 2],
    [8, 10, 12, 14],
  ];
  const opts = { title: "Rank allocation", xLabel: "round", yLabel: "module", rowLabels: ["q", "k", "v"], valueLabel: "rank" };

  test("one cell per value with a tooltip, a colour bar and labels", () => {
    const svg = heatmap(values, opts);
    assertWellFormed(svg);
    assert.equal(count(svg, "<title>"), 1 + 12);
    const t = texts(svg);
    for (const s of ["Rank allocation", "round", "module", "rank", "q", "k", "v", "0", "3", "2", "14", "8"]) assert.ok(t.includes(s), s);
    // smallest and largest values take the ends of the scale
    assert.ok(svg.includes("<title>k / 3: 2</title>"));
    const fillOf = (tip: string) => new RegExp(`fill="(#[0-9a-f]{6})"><title>${tip}</title>`).exec(svg)?.[1];
    assert.equal(fillOf("k / 3: 2"), "#440154");
    assert.equal(fillOf("v / 3: 14"), "#fde725");
  });

  test("truncates long row labels and escapes text", () => {
    const svg = heatmap([[1], [2]], {
      ...opts,
      rowLabels: ["vit.encoder.layer.11.attention.attention.query", "a<b&c"],
      colLabels: ['"r1"'],
    });
    assertWellFormed(svg);
    const t = texts(svg);
    // The end is kept (it tells dotted module paths apart); the tooltip keeps the full name.
    assert.ok(t.includes("…ntion.attention.query"), t.join("|"));
    assert.ok(svg.includes("<title>vit.encoder.layer.11.attention.attention.query / &quot;r1&quot;: 1</title>"));
    assert.ok(svg.includes("a&lt;b&amp;c"));
    assert.ok(svg.includes("&quot;r1&quot;"));
  });

  test("ragged rows, non-finite values, constant values and empty input", () => {
    const ragged = heatmap([[1, 2, 3], [Number.NaN], [4, Number.POSITIVE_INFINITY]], { ...opts });
    assertWellFormed(ragged);
    assert.equal(count(ragged, 'fill="#dddddd"'), 5); // NaN, Infinity and three missing cells
    assertWellFormed(heatmap([[3, 3], [3, 3]], { ...opts, rowLabels: ["a", "b"] }));
    const empty = heatmap([], { ...opts, rowLabels: [] });
    assertWellFormed(empty);
    assert.ok(texts(empty).includes("no data"));
  });

  test("many columns: labels thinned, cell values not printed", () => {
    const wide = [Array.from({ length: 200 }, (_, j) => j)];
    const svg = heatmap(wide, { ...opts, rowLabels: ["layer"] });
    assertWellFormed(svg);
    const colTicks = texts(svg).filter((s) => /^\d+$/.test(s));
    assert.ok(colTicks.length < 60, `${colTicks.length} column labels`);
  });

  test("rejects label counts that do not match", () => {
    assert.throws(() => heatmap(values, { ...opts, rowLabels: ["q"] }), /1 row labels for 3 rows/);
    assert.throws(() => heatmap(values, { ...opts, colLabels: ["a"] }), /1 column labels for 4 columns/);
  });
});

describe("scatterChart", () => {
  const pts: ScatterPoint[] = [
    { label: "FedAvg", x: 4.8e8, y: 94.3, xRange: [4.8e8, 4.8e8], yRange: [94.0, 94.6] },
    { label: "FedLoRA", x: 4.5e7, y: 93.6, yRange: [93.2, 93.9] },
    { label: "SA-FedLoRA", x: 3.2e7, y: 94.0, xRange: [3.0e7, 3.4e7], yRange: [93.7, 94.2] },
    { label: "rank 4/1", x: 2.0e7, y: 92.5, group: 1 },
  ];

  /** Pixel centre of each marker, in document order (circles, rects, paths ending in Z). */
  function centres(svg: string): [number, number][] {
    const out: [number, number][] = [];
    for (const m of svg.matchAll(/<circle cx="([\d.-]+)" cy="([\d.-]+)" r="4"|<rect x="([\d.-]+)" y="([\d.-]+)" width="8" height="8"/g)) {
      out.push(m[1] !== undefined ? [Number(m[1]), Number(m[2])] : [Number(m[3]) + 4, Number(m[4]) + 4]);
    }
    return out;
  }

  test("one marker per point plus its legend swatch, whiskers, and every label", () => {
    const svg = scatterChart(pts, { ...base, xLabel: "parameters sent", xLog: true });
    assertWellFormed(svg);
    const t = texts(svg);
    for (const s of ["FedAvg", "FedLoRA", "SA-FedLoRA", "rank 4/1", "parameters sent"]) assert.ok(t.includes(s), s);
    // three circles (group 0) and one square (group 1) in the plot, the same again in the legend
    assert.equal(count(svg, 'r="4"'), 6);
    assert.equal(count(svg, 'width="8" height="8"'), 2);
    // whiskers: three vertical (every point with a yRange) and two horizontal
    assert.equal(count(svg, 'stroke-width="1"/>'), 5);
    for (const s of ["10M", "100M", "1G"]) assert.ok(t.includes(s), `log tick ${s} in ${t.join("|")}`);
  });

  test("markers sit in data order: more traffic further right, higher accuracy further up", () => {
    const c = centres(scatterChart(pts, { ...base, xLog: true }));
    const [fedavg, fedlora, sa, r41] = [c[0]!, c[1]!, c[2]!, c[3]!];
    assert.ok(r41[0] < sa[0] && sa[0] < fedlora[0] && fedlora[0] < fedavg[0], JSON.stringify(c));
    assert.ok(fedavg[1] < sa[1] && sa[1] < fedlora[1] && fedlora[1] < r41[1], JSON.stringify(c));
    // On a log axis equal ratios are equal distances: 2e7→3.2e7 vs 3.2e7→5.12e7 would match; check
    // the mapping against log10 directly.
    const k = (fedavg[0] - r41[0]) / Math.log10(4.8e8 / 2e7);
    assert.ok(Math.abs((sa[0] - r41[0]) - k * Math.log10(3.2e7 / 2e7)) < 0.02, "log x mapping");
  });

  test("the front is a staircase through its members in x order, with a legend row", () => {
    const svg = scatterChart(pts, { ...base, xLog: true, front: [0, 2, 3] });
    assertWellFormed(svg);
    const d = /<path d="(M[^"]*)" fill="none" stroke="#888888" stroke-width="1.25" stroke-dasharray="4 3"\/>/.exec(svg)?.[1];
    assert.ok(d !== undefined, "no front path");
    // start at the cheapest member, then two H/V steps, then hold to the right edge
    assert.match(d, /^M[\d.]+ [\d.]+H[\d.]+V[\d.]+H[\d.]+V[\d.]+H[\d.]+$/);
    const c = centres(svg);
    const start = d.slice(1).split(/[HV ]/).map(Number);
    assert.ok(Math.abs(start[0]! - c[3]![0]) < 0.02 && Math.abs(start[1]! - c[3]![1]) < 0.02, "front starts at rank 4/1");
    assert.ok(texts(svg).includes("Pareto front"));
    assert.throws(() => scatterChart(pts, { ...base, front: [4] }), /front index 4 is not one of the 4 points/);
  });

  test("points without data keep a legend row; the axes enclose the whiskers", () => {
    const svg = scatterChart(
      [
        { label: "ok", x: 10, y: 5, yRange: [1, 9] },
        { label: "missing", x: Number.NaN, y: 3 },
      ],
      { ...base },
    );
    assertWellFormed(svg);
    assert.ok(texts(svg).includes("missing (no data)"));
    assert.equal(count(svg, 'r="4"'), 3); // one point, two legend swatches
    const t = texts(svg);
    assert.ok(t.includes("0") || t.includes("1"), "y axis reaches the lower whisker");
    assert.ok(t.includes("10") || t.includes("9"), "y axis reaches the upper whisker");
    assert.ok(texts(scatterChart([], base)).includes("no data"));
  });
});
