/**
 * @module util/svg
 * A minimal, dependency-free SVG chart writer for run reports: line charts (accuracy vs round,
 * accuracy vs cumulative bytes on a log axis, budget vs round as a step function), scatter charts
 * with whiskers and a Pareto staircase (accuracy vs traffic, one point per method) and heat maps
 * (rank allocation per layer and round). Output is a standalone SVG document string, so it can be
 * written to a file by the CLI or inlined into a page; nothing here touches the platform. Charts use
 * no element ids (clipping is done with nested <svg> viewports, the colour bar with plain rects), so
 * several charts can be inlined into one HTML page without id clashes.
 */

/** One line: (x, y) points; non-finite points (and x <= 0 on a log axis) are skipped. */
export interface Series {
  readonly label: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

/** What line and scatter charts share: captions, size and the x scale. */
export interface XYChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Pixels, default 640. */
  width?: number;
  /** Pixels, default 400. */
  height?: number;
  /** Logarithmic x axis with decade ticks. */
  xLog?: boolean;
}

export interface LineChartOptions extends XYChartOptions {
  /** Fixed y range ends; points outside are clipped. Default: nice bounds around the data. */
  yMin?: number;
  yMax?: number;
  /** Draw each series as a step function (value holds until the next x). */
  step?: boolean;
}

export interface HeatmapOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** One per row of values. */
  rowLabels: readonly string[];
  /** One per column; default 0..cols-1. */
  colLabels?: readonly string[];
  /** Pixels, default 640. */
  width?: number;
  /** Pixels, default 400. */
  height?: number;
  /** Caption of the colour bar. */
  valueLabel?: string;
}

/**
 * Okabe–Ito colours, reordered so the first few contrast best on white; its yellow is left out
 * because it is unreadable as a thin line on white. Beyond seven series the colours repeat with a
 * different dash pattern, so series stay distinguishable.
 */
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"] as const;
const DASHES = ["", "6 3", "2 2", "8 3 2 3"] as const;

/** Viridis at ten evenly spaced stops: perceptually uniform and readable by colour-blind viewers. */
const VIRIDIS: ReadonlyArray<readonly [number, number, number]> = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 73, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [110, 206, 88],
  [181, 222, 43],
  [253, 231, 37],
];

const FONT = "Helvetica, Arial, sans-serif";
/** Rough width of one 11px character, used to reserve room for labels without measuring text. */
const CHAR_W = 6.5;

/**
 * About `count` evenly spaced "nice" values (steps of 1, 2 or 5 times a power of ten) whose first and
 * last values enclose [min, max]. Equal ends get a small range around them; non-finite ends give [].
 *
 * @example niceTicks(0, 97) // [0, 20, 40, 60, 80, 100]
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  let lo = Math.min(min, max);
  let hi = Math.max(min, max);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const n = Math.max(1, Math.round(Number.isFinite(count) ? count : 5));
  const raw = (hi - lo) / n;
  const exp = Math.floor(Math.log10(raw));
  const base = 10 ** exp;
  // Pick the multiplier whose step count is closest to the request on a log scale (as d3 does).
  const err = raw / base;
  const mult = err >= Math.sqrt(50) ? 10 : err >= Math.sqrt(10) ? 5 : err >= Math.sqrt(2) ? 2 : 1;
  const step = mult * base;
  // A small tolerance so that e.g. 0.6000000000000001 does not get a tick of its own.
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const out: number[] = [];
  for (let i = first; i <= last; i++) out.push(clean(Number((i * step).toFixed(Math.min(decimals, 100)))));
  return out;
}

/** Turns -0 into 0 so it never prints as "-0". */
function clean(v: number): number {
  return v === 0 ? 0 : v;
}

/** Powers of ten enclosing [min, max] (both > 0), thinned to at most ~7; within two decades also 2x and 5x. */
function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min) + 1e-9);
  let hi = Math.ceil(Math.log10(max) - 1e-9);
  if (hi === lo) hi++;
  const decades = hi - lo;
  const out: number[] = [];
  if (decades <= 2) {
    for (let e = lo; e < hi; e++) for (const m of [1, 2, 5]) out.push(pow10(e) * m);
    out.push(pow10(hi));
    return out.map((v) => Number(v.toPrecision(12)));
  }
  const every = Math.ceil(decades / 6);
  for (let e = lo; e < hi + every; e += every) out.push(pow10(e));
  return out;
}

/** 10^e, exact for negative e too (10 ** -3 is 0.0010000000000000002). */
function pow10(e: number): number {
  return e >= 0 ? 10 ** e : 1 / 10 ** -e;
}

const UNITS = [
  [1e3, "k"],
  [1e6, "M"],
  [1e9, "G"],
  [1e12, "T"],
] as const;

/**
 * A short label for a number: up to three significant digits below 1000, otherwise one decimal with
 * a k/M/G/T suffix (no decimal from 100 up, and no trailing ".0").
 *
 * @example formatCompact(1234) // "1.2k";  formatCompact(3e9) // "3G";  formatCompact(0.8534) // "0.853"
 */
export function formatCompact(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const sign = v < 0 ? "-" : "";
  const a = Math.abs(v);
  let unit = -1;
  for (let i = 0; i < UNITS.length; i++) if (a >= UNITS[i]![0]) unit = i;
  if (unit < 0) {
    const r = Number(a.toPrecision(3));
    if (r < 1000) return sign + String(r);
    unit = 0; // 999.7 rounds up to 1000: say "1k", not "1000"
  }
  for (;;) {
    const [scale, suffix] = UNITS[unit]!;
    const s = a / scale;
    const r = s < 100 ? Math.round(s * 10) / 10 : Math.round(s);
    if (r >= 1000 && unit < UNITS.length - 1) {
      unit++;
      continue;
    }
    return sign + String(r) + suffix;
  }
}

/** Escapes text for element content and double-quoted attributes, dropping characters XML 1.0 forbids. */
function esc(s: string): string {
  let kept = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    // Lone surrogates (a pair iterates as one code point >= 0x10000) cannot be encoded either.
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || (c >= 0xd800 && c <= 0xdfff) || c === 0xfffe || c === 0xffff) continue;
    kept += ch;
  }
  return kept
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** A coordinate with at most two decimals; never NaN in the output because callers pass finite values. */
function num(v: number): string {
  return String(clean(Math.round(v * 100) / 100));
}

/**
 * Cuts a label to `max` characters (code points) with an ellipsis where text was dropped: at the end
 * by default, at the start with `keep = "tail"`. Heat-map rows are usually dotted module paths
 * ("vit.encoder.layer.11.attention.query") that share their start, so there the tail is what
 * tells rows apart.
 */
function truncate(s: string, max: number, keep: "head" | "tail" = "head"): string {
  const chars = Array.from(s);
  if (chars.length <= max) return s;
  const n = Math.max(1, max - 1);
  return keep === "head" ? `${chars.slice(0, n).join("")}…` : `…${chars.slice(chars.length - n).join("")}`;
}

function checkSize(width: number, height: number, minW: number, minH: number, what: string): void {
  if (!(Number.isFinite(width) && width >= minW && Number.isFinite(height) && height >= minH)) {
    throw new Error(`${what}: size ${width}x${height} is too small or not finite (need at least ${minW}x${minH})`);
  }
}

function open(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" viewBox="0 0 ${num(width)} ${num(height)}" font-family="${FONT}" font-size="11" role="img">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${num(width)}" height="${num(height)}" fill="#ffffff"/>`,
    `<text x="${num(width / 2)}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
}

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${num(x)}" y="${num(y)}"${attrs ? ` ${attrs}` : ""}>${esc(s)}</text>`;
}

/** Tick labels, falling back to full precision when compact labels would repeat (e.g. 100.1k, 100.15k). */
function tickLabels(ticks: readonly number[]): string[] {
  const compact = ticks.map(formatCompact);
  return new Set(compact).size === compact.length ? compact : ticks.map((t) => String(t));
}

/** The axes of a chart: where the plot area sits and how data coordinates map into it. */
interface Frame {
  readonly out: string[];
  readonly left: number;
  readonly top: number;
  /** Plot-area width and height in pixels. */
  readonly pw: number;
  readonly ph: number;
  readonly ix: (x: number) => number;
  readonly iy: (y: number) => number;
  /** Legend labels, cut to fit. */
  readonly legendLabels: readonly string[];
}

interface FrameSpec {
  readonly what: string;
  readonly width: number;
  readonly height: number;
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  /** Every x and y the chart must show (finite; x > 0 on a log axis). */
  readonly xs: readonly number[];
  readonly ys: readonly number[];
  readonly xLog: boolean;
  readonly yMin?: number | undefined;
  readonly yMax?: number | undefined;
  readonly legend: readonly string[];
}

/**
 * Opens a chart document and draws its frame: title, the legend's reserved room on the right, x and
 * y axes with nice ticks, compact tick labels, light grid lines and axis captions. Line and scatter
 * charts share it so both read the same way.
 */
function plotFrame(spec: FrameSpec): Frame {
  const W = spec.width;
  const H = spec.height;
  checkSize(W, H, 160, 120, spec.what);
  const log = spec.xLog;
  // Legend width from the longest label, capped at 30% of the chart; longer labels are cut.
  const maxLegendChars = Math.max(4, Math.floor((W * 0.3 - 30) / CHAR_W));
  const legendLabels = spec.legend.map((l) => truncate(l, maxLegendChars));
  const legendW = legendLabels.length === 0 ? 0 : 30 + CHAR_W * Math.max(...legendLabels.map((l) => Array.from(l).length));
  const left = 64;
  const top = 36;
  const bottom = 48;
  const right = 16 + (legendW > 0 ? legendW + 8 : 0);
  const pw = W - left - right;
  const ph = H - top - bottom;
  if (pw < 40 || ph < 40) throw new Error(`${spec.what}: ${W}x${H} leaves no room for the plot area`);

  // x axis
  let xTicks: number[];
  if (spec.xs.length === 0) xTicks = log ? [1, 10] : niceTicks(0, 1);
  else {
    const lo = Math.min(...spec.xs);
    const hi = Math.max(...spec.xs);
    xTicks = log ? logTicks(lo, hi) : niceTicks(lo, hi);
  }
  const x0 = xTicks[0]!;
  const x1 = xTicks[xTicks.length - 1]!;
  const tx = log ? Math.log10 : (v: number) => v;
  const span = tx(x1) - tx(x0);
  const ix = (x: number) => ((tx(x) - tx(x0)) / span) * pw;

  // y axis: fixed ends win, the rest comes from the data
  if (spec.yMin !== undefined && !Number.isFinite(spec.yMin)) throw new Error(`${spec.what}: yMin ${spec.yMin} is not finite`);
  if (spec.yMax !== undefined && !Number.isFinite(spec.yMax)) throw new Error(`${spec.what}: yMax ${spec.yMax} is not finite`);
  let yLo = spec.yMin ?? (spec.ys.length > 0 ? Math.min(...spec.ys) : 0);
  let yHi = spec.yMax ?? (spec.ys.length > 0 ? Math.max(...spec.ys) : 1);
  if (spec.yMin !== undefined && spec.yMax !== undefined && spec.yMin >= spec.yMax) {
    throw new Error(`${spec.what}: yMin ${spec.yMin} must be below yMax ${spec.yMax}`);
  }
  // Only one end fixed and the data entirely beyond it: keep the fixed end and open a unit range.
  if (yLo > yHi) {
    if (spec.yMin !== undefined) yHi = yLo + 1;
    else yLo = yHi - 1;
  }
  const yNice = niceTicks(yLo, yHi);
  const y0 = spec.yMin ?? yNice[0]!;
  const y1 = spec.yMax ?? yNice[yNice.length - 1]!;
  const yTicks = yNice.filter((t) => t >= y0 - 1e-9 * Math.abs(y1 - y0) && t <= y1 + 1e-9 * Math.abs(y1 - y0));
  const iy = (y: number) => ph - ((y - y0) / (y1 - y0)) * ph;

  const out = open(W, H, spec.title);
  const xl = tickLabels(xTicks);
  for (const [i, t] of xTicks.entries()) {
    const x = left + ix(t);
    out.push(`<line x1="${num(x)}" y1="${num(top)}" x2="${num(x)}" y2="${num(top + ph)}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${num(x)}" y1="${num(top + ph)}" x2="${num(x)}" y2="${num(top + ph + 4)}" stroke="#333333"/>`);
    out.push(text(x, top + ph + 16, xl[i]!, `text-anchor="middle"`));
  }
  const yl = tickLabels(yTicks);
  for (const [i, t] of yTicks.entries()) {
    const y = top + iy(t);
    out.push(`<line x1="${num(left)}" y1="${num(y)}" x2="${num(left + pw)}" y2="${num(y)}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${num(left - 4)}" y1="${num(y)}" x2="${num(left)}" y2="${num(y)}" stroke="#333333"/>`);
    out.push(text(left - 7, y, yl[i]!, `text-anchor="end" dy="0.32em"`));
  }
  out.push(`<path d="M${num(left)} ${num(top)}V${num(top + ph)}H${num(left + pw)}" fill="none" stroke="#333333"/>`);
  out.push(text(left + pw / 2, H - 10, spec.xLabel, `text-anchor="middle" font-size="12"`));
  out.push(text(16, top + ph / 2, spec.yLabel, `text-anchor="middle" font-size="12" transform="rotate(-90 16 ${num(top + ph / 2)})"`));
  return { out, left, top, pw, ph, ix, iy, legendLabels };
}

/** Padding of the clipping viewport, so lines and markers on the plot edge are not cut in half. */
const CLIP_PAD = 6;

/** Opens the nested viewport that clips what is drawn to the (padded) plot area. */
function openClip(f: Frame): string {
  return `<svg x="${num(f.left - CLIP_PAD)}" y="${num(f.top - CLIP_PAD)}" width="${num(f.pw + 2 * CLIP_PAD)}" height="${num(f.ph + 2 * CLIP_PAD)}" overflow="hidden">`;
}

/**
 * The legend on the right: one row per entry, its swatch drawn by `swatch(x, y, i)` (x is the row's
 * left edge, y its middle), cut off with "+N more" when it does not fit the plot height.
 */
function drawLegend(f: Frame, swatch: (x: number, y: number, i: number) => string, extra: readonly { label: string; swatch: (x: number, y: number) => string }[] = []): void {
  const rowH = 16;
  const entries = [...f.legendLabels.map((label, i) => ({ label, draw: (x: number, y: number) => swatch(x, y, i) })), ...extra.map((e) => ({ label: e.label, draw: e.swatch }))];
  const fit = Math.max(1, Math.floor(f.ph / rowH));
  const shown = entries.length > fit ? fit - 1 : entries.length;
  const lx = f.left + f.pw + 14;
  for (let i = 0; i < shown; i++) {
    const y = f.top + 8 + i * rowH;
    f.out.push(entries[i]!.draw(lx, y));
    f.out.push(text(lx + 26, y, entries[i]!.label, `dy="0.32em"`));
  }
  if (shown < entries.length) f.out.push(text(lx, f.top + 8 + shown * rowH, `+${entries.length - shown} more`, `dy="0.32em" fill="#555555"`));
}

const seriesColor = (i: number) => PALETTE[i % PALETTE.length]!;
const seriesDash = (i: number) => DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;

/**
 * A line chart as a complete SVG document: title, axes with nice ticks and compact tick labels,
 * light grid lines, one coloured line per series (with point markers when a series has few points,
 * so single points show) and a legend on the right. Empty input gives labelled empty axes.
 *
 * @throws Error when the size is too small or yMin >= yMax.
 */
export function lineChart(series: readonly Series[], opts: LineChartOptions): string {
  const log = opts.xLog === true;
  const data = series.map((s) =>
    s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || x > 0))
      .sort((a, b) => a[0] - b[0]),
  );
  const all = data.flat();
  const f = plotFrame({
    what: "lineChart",
    width: opts.width ?? 640,
    height: opts.height ?? 400,
    title: opts.title,
    xLabel: opts.xLabel,
    yLabel: opts.yLabel,
    xs: all.map((p) => p[0]),
    ys: all.map((p) => p[1]),
    xLog: log,
    yMin: opts.yMin,
    yMax: opts.yMax,
    legend: series.map((s) => s.label),
  });
  const { out } = f;

  // Series in a nested viewport, which clips lines that leave a fixed y range.
  out.push(openClip(f));
  for (const [i, pts] of data.entries()) {
    const color = seriesColor(i);
    const dash = seriesDash(i);
    const dashAttr = dash === "" ? "" : ` stroke-dasharray="${dash}"`;
    const xy = pts.map(([x, y]) => [f.ix(x) + CLIP_PAD, f.iy(y) + CLIP_PAD] as const);
    if (xy.length >= 2) {
      let d = `M${num(xy[0]![0])} ${num(xy[0]![1])}`;
      for (let j = 1; j < xy.length; j++) {
        const [x, y] = xy[j]!;
        d += opts.step === true ? `H${num(x)}V${num(y)}` : `L${num(x)} ${num(y)}`;
      }
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.75" stroke-linejoin="round"${dashAttr}/>`);
    }
    if (xy.length <= 40) {
      for (const [x, y] of xy) out.push(`<circle cx="${num(x)}" cy="${num(y)}" r="2.5" fill="${color}"/>`);
    }
  }
  out.push("</svg>");
  if (all.length === 0) out.push(text(f.left + f.pw / 2, f.top + f.ph / 2, "no data", `text-anchor="middle" fill="#888888"`));
  drawLegend(f, (x, y, i) => {
    const dash = seriesDash(i);
    return `<line x1="${num(x)}" y1="${num(y)}" x2="${num(x + 20)}" y2="${num(y)}" stroke="${seriesColor(i)}" stroke-width="2"${dash === "" ? "" : ` stroke-dasharray="${dash}"`}/>`;
  });
  out.push("</svg>");
  return out.join("\n");
}

/** One point of a scatter chart, with optional whiskers (e.g. the spread over seeds). */
export interface ScatterPoint {
  readonly label: string;
  readonly x: number;
  readonly y: number;
  /** Horizontal whisker ends, e.g. [min, max] over seeds. */
  readonly xRange?: readonly [number, number] | undefined;
  /** Vertical whisker ends. */
  readonly yRange?: readonly [number, number] | undefined;
  /** Points of the same group share a marker shape (e.g. "method", "sweep variant"); default 0. */
  readonly group?: number | undefined;
}

export interface ScatterChartOptions extends XYChartOptions {
  /**
   * Indices of points joined by a staircase, drawn under the points: read left to right it is the
   * best y reached at or below each x (the Pareto front when the points are its members).
   */
  front?: readonly number[];
  /** Legend caption of the staircase; default "Pareto front". */
  frontLabel?: string;
}

/** Marker shapes by group: circle, square, triangle, diamond. */
function marker(shape: number, x: number, y: number, color: string): string {
  const r = 4;
  switch (shape % 4) {
    case 1:
      return `<rect x="${num(x - r)}" y="${num(y - r)}" width="${num(2 * r)}" height="${num(2 * r)}" fill="${color}" stroke="#ffffff" stroke-width="0.75"/>`;
    case 2:
      return `<path d="M${num(x)} ${num(y - r - 1)}L${num(x + r + 1)} ${num(y + r)}L${num(x - r - 1)} ${num(y + r)}Z" fill="${color}" stroke="#ffffff" stroke-width="0.75"/>`;
    case 3:
      return `<path d="M${num(x)} ${num(y - r - 1)}L${num(x + r + 1)} ${num(y)}L${num(x)} ${num(y + r + 1)}L${num(x - r - 1)} ${num(y)}Z" fill="${color}" stroke="#ffffff" stroke-width="0.75"/>`;
    default:
      return `<circle cx="${num(x)}" cy="${num(y)}" r="${r}" fill="${color}" stroke="#ffffff" stroke-width="0.75"/>`;
  }
}

/**
 * A scatter chart as a complete SVG document: one marker per point (colour by point, shape by
 * group), whiskers for the given ranges, an optional staircase through chosen points (the Pareto
 * front) and a legend naming every point. Points with a non-finite coordinate (or x <= 0 on a log
 * axis) are left out of the plot but keep their legend row, marked "(no data)". The axes enclose the
 * whiskers as well as the points.
 *
 * @throws Error when the size is too small or a front index is not a point.
 */
export function scatterChart(points: readonly ScatterPoint[], opts: ScatterChartOptions): string {
  const log = opts.xLog === true;
  const okX = (x: number) => Number.isFinite(x) && (!log || x > 0);
  const shown = points.map((p) => okX(p.x) && Number.isFinite(p.y));
  for (const i of opts.front ?? []) {
    if (!Number.isInteger(i) || i < 0 || i >= points.length) throw new Error(`scatterChart: front index ${i} is not one of the ${points.length} points`);
  }
  const xs: number[] = [];
  const ys: number[] = [];
  for (const [i, p] of points.entries()) {
    if (!shown[i]) continue;
    xs.push(p.x, ...(p.xRange ?? []).filter(okX));
    ys.push(p.y, ...(p.yRange ?? []).filter(Number.isFinite));
  }
  const front = (opts.front ?? []).filter((i) => shown[i]).sort((a, b) => points[a]!.x - points[b]!.x);
  const f = plotFrame({
    what: "scatterChart",
    width: opts.width ?? 640,
    height: opts.height ?? 400,
    title: opts.title,
    xLabel: opts.xLabel,
    yLabel: opts.yLabel,
    xs,
    ys,
    xLog: log,
    legend: points.map((p, i) => (shown[i] ? p.label : `${p.label} (no data)`)),
  });
  const { out } = f;
  const px = (x: number) => f.ix(x) + CLIP_PAD;
  const py = (y: number) => f.iy(y) + CLIP_PAD;
  out.push(openClip(f));
  if (front.length > 0) {
    // Holds each member's y until the next member's x, then steps up: the best y attainable so far.
    let d = `M${num(px(points[front[0]!]!.x))} ${num(py(points[front[0]!]!.y))}`;
    for (const i of front.slice(1)) d += `H${num(px(points[i]!.x))}V${num(py(points[i]!.y))}`;
    d += `H${num(f.pw + CLIP_PAD)}`;
    out.push(`<path d="${d}" fill="none" stroke="#888888" stroke-width="1.25" stroke-dasharray="4 3"/>`);
  }
  for (const [i, p] of points.entries()) {
    if (!shown[i]) continue;
    const color = seriesColor(i);
    const [x, y] = [px(p.x), py(p.y)];
    if (p.xRange) {
      const [a, b] = p.xRange.filter(okX).length === 2 ? p.xRange : [p.x, p.x];
      out.push(`<path d="M${num(px(a))} ${num(y)}H${num(px(b))}M${num(px(a))} ${num(y - 3)}V${num(y + 3)}M${num(px(b))} ${num(y - 3)}V${num(y + 3)}" stroke="${color}" stroke-width="1"/>`);
    }
    if (p.yRange?.every(Number.isFinite)) {
      const [a, b] = p.yRange;
      out.push(`<path d="M${num(x)} ${num(py(a))}V${num(py(b))}M${num(x - 3)} ${num(py(a))}H${num(x + 3)}M${num(x - 3)} ${num(py(b))}H${num(x + 3)}" stroke="${color}" stroke-width="1"/>`);
    }
    out.push(marker(p.group ?? 0, x, y, color));
  }
  out.push("</svg>");
  if (xs.length === 0) out.push(text(f.left + f.pw / 2, f.top + f.ph / 2, "no data", `text-anchor="middle" fill="#888888"`));
  const frontEntry =
    front.length > 0
      ? [{ label: opts.frontLabel ?? "Pareto front", swatch: (x: number, y: number) => `<line x1="${num(x)}" y1="${num(y)}" x2="${num(x + 20)}" y2="${num(y)}" stroke="#888888" stroke-width="1.25" stroke-dasharray="4 3"/>` }]
      : [];
  drawLegend(f, (x, y, i) => marker(points[i]!.group ?? 0, x + 10, y, seriesColor(i)), frontEntry);
  out.push("</svg>");
  return out.join("\n");
}

/** Viridis colour for t in [0, 1]. */
function viridis(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  const hex = (k: 0 | 1 | 2) =>
    Math.round(a[k] + (b[k] - a[k]) * f)
      .toString(16)
      .padStart(2, "0");
  return `#${hex(0)}${hex(1)}${hex(2)}`;
}

/**
 * A heat map as a complete SVG document: one cell per value (rows top to bottom, columns left to
 * right) coloured on the viridis scale from the smallest to the largest finite value, a colour bar
 * with its range on the right, row labels on the left (cut past 22 characters, keeping the end, after an ellipsis) and
 * column labels below, thinned when they would overlap. Missing cells of ragged rows and non-finite
 * values are drawn grey. Each cell carries a <title> tooltip with its exact value.
 *
 * @throws Error when rowLabels (or colLabels) do not match the rows (columns), or the size is too small.
 */
export function heatmap(values: readonly (readonly number[])[], opts: HeatmapOptions): string {
  const W = opts.width ?? 640;
  const H = opts.height ?? 400;
  checkSize(W, H, 200, 120, "heatmap");
  const rows = values.length;
  const cols = rows === 0 ? 0 : Math.max(...values.map((r) => r.length));
  if (opts.rowLabels.length !== rows) throw new Error(`heatmap: ${opts.rowLabels.length} row labels for ${rows} rows`);
  if (opts.colLabels !== undefined && opts.colLabels.length !== cols) {
    throw new Error(`heatmap: ${opts.colLabels.length} column labels for ${cols} columns`);
  }
  const rowLabels = opts.rowLabels.map((l) => truncate(l, 22, "tail"));
  const colLabels = opts.colLabels ?? Array.from({ length: cols }, (_, j) => String(j));

  const finite = values.flat().filter(Number.isFinite);
  const vMin = finite.length > 0 ? Math.min(...finite) : 0;
  const vMax = finite.length > 0 ? Math.max(...finite) : 0;
  const scale = (v: number) => (vMax > vMin ? (v - vMin) / (vMax - vMin) : 0.5);

  const labelChars = Math.max(1, ...rowLabels.map((l) => Array.from(l).length));
  const left = 30 + labelChars * CHAR_W + 8;
  const top = 36;
  const bottom = 48;
  const right = opts.valueLabel === undefined ? 80 : 98;
  const pw = W - left - right;
  const ph = H - top - bottom;
  if (pw < 40 || ph < 40) throw new Error(`heatmap: ${W}x${H} leaves no room for the cells`);

  const out = open(W, H, opts.title);
  out.push(text(left + pw / 2, H - 10, opts.xLabel, `text-anchor="middle" font-size="12"`));
  out.push(text(14, top + ph / 2, opts.yLabel, `text-anchor="middle" font-size="12" transform="rotate(-90 14 ${num(top + ph / 2)})"`));

  if (rows === 0 || cols === 0) {
    out.push(`<rect x="${num(left)}" y="${num(top)}" width="${num(pw)}" height="${num(ph)}" fill="none" stroke="#cccccc"/>`);
    out.push(text(left + pw / 2, top + ph / 2, "no data", `text-anchor="middle" fill="#888888"`));
    out.push("</svg>");
    return out.join("\n");
  }

  const cw = pw / cols;
  const ch = ph / rows;
  const showValues = cw >= 34 && ch >= 16 && rows * cols <= 400;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = values[r]![c];
      const ok = v !== undefined && Number.isFinite(v);
      const fill = ok ? viridis(scale(v)) : "#dddddd";
      const tip = `${opts.rowLabels[r]!} / ${colLabels[c]!}: ${ok ? String(v) : "n/a"}`;
      const x = left + c * cw;
      const y = top + r * ch;
      // Cells overlap by a hair so no white seams show between them when anti-aliased.
      out.push(`<rect x="${num(x)}" y="${num(y)}" width="${num(cw + 0.5)}" height="${num(ch + 0.5)}" fill="${fill}"><title>${esc(tip)}</title></rect>`);
      if (showValues && ok) {
        const ink = scale(v) < 0.6 ? "#ffffff" : "#000000";
        out.push(text(x + cw / 2, y + ch / 2, formatCompact(v), `text-anchor="middle" dy="0.32em" fill="${ink}" font-size="10"`));
      }
    }
  }

  // Label every k-th row/column so labels never overlap.
  const rowEvery = Math.max(1, Math.ceil(12 / ch));
  for (let r = 0; r < rows; r += rowEvery) out.push(text(left - 6, top + (r + 0.5) * ch, rowLabels[r]!, `text-anchor="end" dy="0.32em"`));
  const colChars = Math.max(1, ...colLabels.map((l) => Array.from(l).length));
  const colEvery = Math.max(1, Math.ceil((colChars * CHAR_W + 6) / cw));
  for (let c = 0; c < cols; c += colEvery) {
    out.push(text(left + (c + 0.5) * cw, top + ph + 16, truncate(colLabels[c]!, 12), `text-anchor="middle"`));
  }

  // colour bar: stacked rects rather than a gradient, which would need a document-unique id
  const bx = left + pw + 14;
  const bw = 14;
  const steps = 48;
  for (let i = 0; i < steps; i++) {
    const y = top + (i / steps) * ph;
    out.push(`<rect x="${num(bx)}" y="${num(y)}" width="${bw}" height="${num(ph / steps + 0.5)}" fill="${viridis(1 - (i + 0.5) / steps)}"/>`);
  }
  out.push(`<rect x="${num(bx)}" y="${num(top)}" width="${bw}" height="${num(ph)}" fill="none" stroke="#333333" stroke-width="0.5"/>`);
  const barLabels: [number, number][] =
    vMax > vMin
      ? [
          [vMax, top],
          [(vMin + vMax) / 2, top + ph / 2],
          [vMin, top + ph],
        ]
      : [[vMin, top + ph / 2]];
  for (const [v, y] of barLabels) out.push(text(bx + bw + 4, y, formatCompact(v), `dy="0.32em"`));
  if (opts.valueLabel !== undefined) {
    const vx = W - 10;
    out.push(text(vx, top + ph / 2, opts.valueLabel, `text-anchor="middle" font-size="12" transform="rotate(90 ${num(vx)} ${num(top + ph / 2)})"`));
  }
  out.push("</svg>");
  return out.join("\n");
}
