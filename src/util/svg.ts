/**
 * @module util/svg
 * A minimal, dependency-free SVG chart writer for run reports: line charts (accuracy vs round,
 * accuracy vs cumulative bytes on a log axis, budget vs round as a step function) and heat maps
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

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Pixels, default 640. */
  width?: number;
  /** Pixels, default 400. */
  height?: number;
  /** Logarithmic x axis with decade ticks. */
  xLog?: boolean;
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

/**
 * A line chart as a complete SVG document: title, axes with nice ticks and compact tick labels,
 * light grid lines, one coloured line per series (with point markers when a series has few points,
 * so single points show) and a legend on the right. Empty input gives labelled empty axes.
 *
 * @throws Error when the size is too small or yMin >= yMax.
 */
export function lineChart(series: readonly Series[], opts: LineChartOptions): string {
  const W = opts.width ?? 640;
  const H = opts.height ?? 400;
  checkSize(W, H, 160, 120, "lineChart");
  const log = opts.xLog === true;
  const data = series.map((s) =>
    s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || x > 0))
      .sort((a, b) => a[0] - b[0]),
  );
  const all = data.flat();

  // Legend width from the longest label, capped at 30% of the chart; longer labels are cut.
  const maxLegendChars = Math.max(4, Math.floor((W * 0.3 - 30) / CHAR_W));
  const legendLabels = series.map((s) => truncate(s.label, maxLegendChars));
  const legendW = series.length === 0 ? 0 : 30 + CHAR_W * Math.max(...legendLabels.map((l) => Array.from(l).length));
  const left = 64;
  const top = 36;
  const bottom = 48;
  const right = 16 + (legendW > 0 ? legendW + 8 : 0);
  const pw = W - left - right;
  const ph = H - top - bottom;
  if (pw < 40 || ph < 40) throw new Error(`lineChart: ${W}x${H} leaves no room for the plot area`);

  // x axis
  let xTicks: number[];
  if (all.length === 0) xTicks = log ? [1, 10] : niceTicks(0, 1);
  else {
    const xs = all.map((p) => p[0]);
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    xTicks = log ? logTicks(lo, hi) : niceTicks(lo, hi);
  }
  const x0 = xTicks[0]!;
  const x1 = xTicks[xTicks.length - 1]!;
  const tx = log ? Math.log10 : (v: number) => v;
  const span = tx(x1) - tx(x0);
  const ix = (x: number) => ((tx(x) - tx(x0)) / span) * pw;

  // y axis: fixed ends win, the rest comes from the data
  if (opts.yMin !== undefined && !Number.isFinite(opts.yMin)) throw new Error(`lineChart: yMin ${opts.yMin} is not finite`);
  if (opts.yMax !== undefined && !Number.isFinite(opts.yMax)) throw new Error(`lineChart: yMax ${opts.yMax} is not finite`);
  const ys = all.map((p) => p[1]);
  let yLo = opts.yMin ?? (ys.length > 0 ? Math.min(...ys) : 0);
  let yHi = opts.yMax ?? (ys.length > 0 ? Math.max(...ys) : 1);
  if (opts.yMin !== undefined && opts.yMax !== undefined && opts.yMin >= opts.yMax) {
    throw new Error(`lineChart: yMin ${opts.yMin} must be below yMax ${opts.yMax}`);
  }
  // Only one end fixed and the data entirely beyond it: keep the fixed end and open a unit range.
  if (yLo > yHi) {
    if (opts.yMin !== undefined) yHi = yLo + 1;
    else yLo = yHi - 1;
  }
  const yNice = niceTicks(yLo, yHi);
  const y0 = opts.yMin ?? yNice[0]!;
  const y1 = opts.yMax ?? yNice[yNice.length - 1]!;
  const yTicks = yNice.filter((t) => t >= y0 - 1e-9 * Math.abs(y1 - y0) && t <= y1 + 1e-9 * Math.abs(y1 - y0));
  const iy = (y: number) => ph - ((y - y0) / (y1 - y0)) * ph;

  const out = open(W, H, opts.title);
  // grid and ticks
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
  out.push(text(left + pw / 2, H - 10, opts.xLabel, `text-anchor="middle" font-size="12"`));
  out.push(text(16, top + ph / 2, opts.yLabel, `text-anchor="middle" font-size="12" transform="rotate(-90 16 ${num(top + ph / 2)})"`));

  // Series in a nested viewport, which clips lines that leave a fixed y range; the viewport is padded
  // so lines and markers on the plot edge are not cut in half.
  const pad = 4;
  out.push(`<svg x="${num(left - pad)}" y="${num(top - pad)}" width="${num(pw + 2 * pad)}" height="${num(ph + 2 * pad)}" overflow="hidden">`);
  for (const [i, pts] of data.entries()) {
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
    const dashAttr = dash === "" ? "" : ` stroke-dasharray="${dash}"`;
    const xy = pts.map(([x, y]) => [ix(x) + pad, iy(y) + pad] as const);
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
  if (all.length === 0) out.push(text(left + pw / 2, top + ph / 2, "no data", `text-anchor="middle" fill="#888888"`));

  // legend, cut off with "+N more" when it does not fit the plot height
  const rowH = 16;
  const fit = Math.max(1, Math.floor(ph / rowH));
  const shown = series.length > fit ? fit - 1 : series.length;
  const lx = left + pw + 14;
  for (let i = 0; i < shown; i++) {
    const y = top + 8 + i * rowH;
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length]!;
    out.push(
      `<line x1="${num(lx)}" y1="${num(y)}" x2="${num(lx + 20)}" y2="${num(y)}" stroke="${color}" stroke-width="2"${dash === "" ? "" : ` stroke-dasharray="${dash}"`}/>`,
    );
    out.push(text(lx + 26, y, legendLabels[i]!, `dy="0.32em"`));
  }
  if (shown < series.length) out.push(text(lx, top + 8 + shown * rowH, `+${series.length - shown} more`, `dy="0.32em" fill="#555555"`));
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
