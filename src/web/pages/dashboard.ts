/**
 * The live dashboard (dashboard.html, served at / by net/ui): listens to /events (server-sent events
 * of the run feed, sim/run-feed), keeps the latest snapshot and redraws from it. Charts are drawn by
 * hand as SVG so the page needs no library and loads nothing from elsewhere. The browser's
 * EventSource reconnects by itself; every (re)connection starts with a full snapshot, so a page
 * that lost its connection never shows a mix of old and new state.
 */
import type { ClientRow, FeedEvent, FeedSnapshot, RoundPoint } from "../../sim/run-feed.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const W = 480;
const H = 240;
const M = { left: 52, right: 12, top: 14, bottom: 34 };

let snap: FeedSnapshot | undefined;
/** Browser clock minus the feed's clock, measured at each snapshot (for "last seen … ago"). */
let skewMs = 0;

const byId = <T extends Element = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`dashboard.html has no #${id}`);
  return e as unknown as T;
};

function setText(id: string, text: string, value?: string | number): void {
  const e = byId(id);
  e.textContent = text;
  if (value !== undefined) e.dataset["value"] = String(value);
}

// ---- formatting ---------------------------------------------------------------------------------

function bytes(n: number): string {
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

const pct = (x: number, digits = 2): string => `${(100 * x).toFixed(digits)}%`;

function ago(ms: number | undefined): string {
  if (ms === undefined) return "never";
  const s = Math.max(0, Math.round((Date.now() - skewMs - ms) / 1000));
  if (s < 2) return "just now";
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** "L0 query" for `vit.encoder.layer.0.attention.attention.query`, the whole name when it has no layer. */
function moduleLabel(name: string): string {
  const m = /(?:^|\.)layer\.(\d+)\.(.+)$/.exec(name);
  if (!m) return name;
  const rest = m[2]!.replace(/^attention\.attention\./, "").replace(/^attention\.output\.dense$/, "attn.out").replace(/\.dense$/, "");
  return `L${m[1]} ${rest}`;
}

// ---- SVG charts ---------------------------------------------------------------------------------

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k). */
function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

interface Series {
  readonly label: string;
  readonly cls: string;
  readonly points: readonly (readonly [number, number])[];
}

interface ChartOptions {
  readonly xLabel: string;
  readonly xFormat: (x: number) => string;
  readonly yFormat: (y: number) => string;
  readonly yRange?: readonly [number, number];
  readonly xInteger?: boolean;
  readonly empty: string;
}

function lineChart(svg: SVGSVGElement, series: readonly Series[], o: ChartOptions): void {
  svg.replaceChildren();
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    svg.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, o.empty));
    return;
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  let [y0, y1] = o.yRange ?? [Math.min(0, ...ys), Math.max(...ys)];
  if (!o.yRange) {
    const pad = (y1 - y0) * 0.05 || 1;
    y1 += pad;
  }
  if (y1 === y0) y1 = y0 + 1;
  const sx = (x: number) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const sy = (y: number) => H - M.bottom - ((y - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  for (const t of ticks(y0, y1)) {
    svg.append(el("line", { x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t), class: "grid" }));
    svg.append(el("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end" }, o.yFormat(t)));
  }
  const xt = ticks(x0, x1).filter((t) => !o.xInteger || Number.isInteger(t));
  for (const t of xt) svg.append(el("text", { x: sx(t), y: H - M.bottom + 16, "text-anchor": "middle" }, o.xFormat(t)));
  svg.append(el("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }));
  svg.append(el("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }));
  svg.append(el("text", { x: (M.left + W - M.right) / 2, y: H - 4, "text-anchor": "middle" }, o.xLabel));
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    svg.append(el("polyline", { points: s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "), class: `series ${s.cls}` }));
    if (s.points.length <= 60) for (const p of s.points) svg.append(el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, class: s.cls, "stroke-width": 0 }));
    // Legend, top left, one line per series.
    const ly = M.top + 4 + 14 * i;
    svg.append(el("line", { x1: M.left + 10, x2: M.left + 28, y1: ly, y2: ly, class: `series ${s.cls}` }));
    svg.append(el("text", { x: M.left + 33, y: ly + 4 }, s.label));
  });
}

/** Rows: modules; columns: rounds with ranks; darker is a higher rank (the number is drawn when it fits). */
function heatmap(svg: SVGSVGElement, points: readonly RoundPoint[]): void {
  svg.replaceChildren();
  const ranked = points.filter((p) => p.ranks !== undefined);
  if (ranked.length === 0) {
    const why = points.length === 0 ? "no round yet" : "this strategy's rounds carry no per-module ranks (fixed-rank or full-model)";
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, why));
    return;
  }
  const modules: string[] = [];
  for (const p of ranked) for (const m of Object.keys(p.ranks!)) if (!modules.includes(m)) modules.push(m);
  const max = Math.max(1, ...ranked.flatMap((p) => Object.values(p.ranks!)));
  const left = 96;
  const rowH = 14;
  const cellW = Math.max(3, Math.min(28, (W - left - 8) / ranked.length));
  const height = M.top + rowH * modules.length + 30;
  svg.setAttribute("viewBox", `0 0 ${W} ${height}`);
  modules.forEach((m, r) => {
    const y = M.top + r * rowH;
    svg.append(el("text", { x: left - 6, y: y + rowH - 3, "text-anchor": "end" }, moduleLabel(m)));
    ranked.forEach((p, c) => {
      const v = p.ranks![m];
      const x = left + c * cellW;
      const t = v === undefined ? 0 : v / max;
      // From a pale to a deep blue; a module without a value this round stays grey.
      const fill = v === undefined ? "#f1f3f6" : `rgb(${Math.round(236 - 200 * t)},${Math.round(242 - 164 * t)},${Math.round(250 - 94 * t)})`;
      const rect = el("rect", { x, y, width: Math.max(1, cellW - 1), height: rowH - 1, fill, "data-round": p.round, "data-module": m });
      rect.append(el("title", {}, `${m}, round ${p.round}: rank ${v ?? "–"}`));
      svg.append(rect);
      if (v !== undefined && cellW >= 14) svg.append(el("text", { x: x + cellW / 2, y: y + rowH - 3, "text-anchor": "middle", style: `fill:${t > 0.55 ? "#fff" : "#1d2430"}` }, String(v)));
    });
  });
  const step = Math.max(1, Math.ceil(ranked.length / Math.floor((W - left) / 28)));
  ranked.forEach((p, c) => {
    if (c % step === 0) svg.append(el("text", { x: left + c * cellW + cellW / 2, y: M.top + rowH * modules.length + 14, "text-anchor": "middle" }, String(p.round)));
  });
  svg.append(el("text", { x: left + (W - left) / 2, y: height - 2, "text-anchor": "middle" }, `round (max rank ${max})`));
}

// ---- rendering ----------------------------------------------------------------------------------

/** What each stage trains, under the stage's name. */
const STAGE_TRAINS: Record<string, string> = { train: "", initiating: "full model", annealing: "adapters" };

function renderHeader(s: FeedSnapshot): void {
  const i = s.info;
  setText("info", `${i.strategy} · ${i.mode === "simulation" ? "simulation" : "deployment"}${i.task ? ` · ${i.task}` : ""} · ${i.clients} clients, ${i.perRound} per round`);
  const last = s.rounds[s.rounds.length - 1];
  const done = last?.round ?? 0;
  setText("round", `${done} / ${i.rounds}`, done);
  const status =
    s.status === "waiting"
      ? i.mode === "deployment"
        ? "waiting for clients"
        : "preparing the run"
      : s.status === "running"
        ? s.activeRound !== undefined
          ? `round ${s.activeRound} in progress`
          : "running"
        : s.status === "finished"
          ? "finished"
          : s.status === "stopped"
            ? `stopped${s.message ? `: ${s.message}` : ""}`
            : `failed${s.message ? `: ${s.message}` : ""}`;
  setText("status", status, s.status);
  byId("status").dataset["activeRound"] = s.activeRound === undefined ? "" : String(s.activeRound);
  setText("stage", last ? last.stage : "–", last?.stage ?? "");
  const parts = [
    last ? STAGE_TRAINS[last.stage] : "",
    last?.phase ? `budget phase ${last.phase}` : "",
    last?.budget !== undefined ? `${last.budget} triplets` : "",
  ].filter((p) => p);
  setText("phase", parts.join(" · "), last?.phase ?? "");
  const evaluated = s.rounds.filter((p) => p.testAccuracy !== undefined);
  const acc = evaluated[evaluated.length - 1];
  setText("accuracy", acc ? pct(acc.testAccuracy!) : "–", acc?.testAccuracy ?? "");
  const best = evaluated.reduce<RoundPoint | undefined>((b, p) => (b === undefined || p.testAccuracy! > b.testAccuracy! ? p : b), undefined);
  setText("best", best ? `best ${pct(best.testAccuracy!)} (round ${best.round})` : "");
  if (last) {
    setText("traffic", `${bytes(last.cumulativeDownBytes)} / ${bytes(last.cumulativeUpBytes)}`, last.cumulativeDownBytes + last.cumulativeUpBytes);
    setText("traffic-round", `last round ${bytes(last.downBytes)} / ${bytes(last.upBytes)}`);
    const total = last.cumulativeDownBytes + last.cumulativeUpBytes;
    setText("fedavg", bytes(last.fedavgCumulativeBytes), last.fedavgCumulativeBytes);
    setText("reduction", last.fedavgCumulativeBytes > 0 ? `this run sent ${pct(total / last.fedavgCumulativeBytes, 1)} of it (−${pct(1 - total / last.fedavgCumulativeBytes, 1)})` : "");
  } else {
    for (const id of ["traffic", "fedavg"]) setText(id, "–");
    for (const id of ["traffic-round", "reduction"]) setText(id, "");
  }
}

function renderCharts(s: FeedSnapshot): void {
  const evaluated = s.rounds.filter((p) => p.testAccuracy !== undefined);
  const accFmt = (y: number) => `${Math.round(100 * y)}%`;
  lineChart(byId<SVGSVGElement>("chart-accuracy-round"), [{ label: "test accuracy", cls: "s0", points: evaluated.map((p) => [p.round, p.testAccuracy!]) }], {
    xLabel: "round",
    xFormat: String,
    yFormat: accFmt,
    yRange: [0, 1],
    xInteger: true,
    empty: "no evaluated round yet",
  });
  lineChart(
    byId<SVGSVGElement>("chart-accuracy-bytes"),
    [{ label: "test accuracy", cls: "s0", points: evaluated.map((p) => [p.cumulativeDownBytes + p.cumulativeUpBytes, p.testAccuracy!]) }],
    { xLabel: "bytes sent, down + up (cumulative)", xFormat: bytes, yFormat: accFmt, yRange: [0, 1], empty: "no evaluated round yet" },
  );
  lineChart(
    byId<SVGSVGElement>("chart-traffic"),
    [
      { label: "down (server → clients)", cls: "s0", points: s.rounds.map((p) => [p.round, p.cumulativeDownBytes]) },
      { label: "up (clients → server)", cls: "s1", points: s.rounds.map((p) => [p.round, p.cumulativeUpBytes]) },
      { label: "FedAvg, both ways (same schedule)", cls: "ref", points: s.rounds.map((p) => [p.round, p.fedavgCumulativeBytes]) },
    ],
    { xLabel: "round", xFormat: String, yFormat: bytes, xInteger: true, empty: "no round yet" },
  );
  heatmap(byId<SVGSVGElement>("heatmap"), s.rounds);
}

function cell(text: string, cls = "", col = ""): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (col) td.dataset["col"] = col;
  return td;
}

function renderClients(s: FeedSnapshot): void {
  const body = byId<HTMLTableElement>("clients").tBodies[0]!;
  const rows = s.clients.map((c: ClientRow) => {
    const tr = document.createElement("tr");
    tr.dataset["clientId"] = c.id;
    tr.dataset["online"] = String(c.online);
    tr.dataset["state"] = c.state;
    const name = cell(c.id, "", "id");
    name.prepend(Object.assign(document.createElement("span"), { className: "dot", title: c.online ? "online" : "offline" }));
    tr.append(
      name,
      cell(c.online ? c.state : "offline", c.online ? `state-${c.state}` : "muted", "state"),
      cell(c.round ? String(c.round) : "–", "num", "round"),
      cell(`${c.last.replied} / ${c.total.replied}`, "num", "replied"),
      cell(`${c.last.failed} / ${c.total.failed}`, c.last.failed > 0 ? "num failed" : "num", "failed"),
      cell(ago(c.lastSeenMs), "", "last-seen"),
      cell(c.device || "–", "", "device"),
      cell(c.threads ? String(c.threads) : "–", "num", "threads"),
      cell(c.imagesPerSecond > 0 ? c.imagesPerSecond.toFixed(1) : "–", "num", "rate"),
    );
    if (c.lastFailure) tr.title = `last failure: ${c.lastFailure}`;
    return tr;
  });
  body.replaceChildren(...rows);
  const online = s.clients.filter((c) => c.online).length;
  setText("online", `${online} / ${s.info.clients}`, online);
  const last = s.rounds[s.rounds.length - 1];
  setText("replies", last ? `last round: ${last.accepted} of ${last.sampled} replied${last.failed ? `, ${last.failed} failed` : ""}` : "");
}

function render(): void {
  if (!snap) return;
  renderHeader(snap);
  renderCharts(snap);
  renderClients(snap);
}

/** Applies one event to the snapshot held. */
function apply(e: FeedEvent): void {
  if (e.type === "snapshot") {
    snap = e.snapshot;
    skewMs = Date.now() - e.snapshot.nowMs;
    return;
  }
  if (!snap) return;
  if (e.type === "round") {
    const rounds = [...snap.rounds.filter((p) => p.round !== e.point.round), e.point].sort((a, b) => a.round - b.round);
    snap = { ...snap, rounds, clients: e.clients };
  } else if (e.type === "clients") {
    snap = { ...snap, clients: e.clients };
  } else {
    const { message: _old, ...rest } = snap;
    snap = { ...rest, status: e.status, activeRound: e.activeRound, ...(e.message !== undefined ? { message: e.message } : {}) };
  }
}

// ---- connection ---------------------------------------------------------------------------------

function setConnection(state: "connecting" | "live" | "lost"): void {
  const c = byId("connection");
  c.dataset["state"] = state;
  const ended = snap?.status === "finished" || snap?.status === "stopped" || snap?.status === "failed";
  c.textContent = state === "live" ? "live" : state === "connecting" ? "connecting…" : ended ? "connection lost, retrying (the run had ended; this is its final state)" : "connection lost, retrying…";
}

function connect(): void {
  const es = new EventSource("/events");
  for (const type of ["snapshot", "round", "clients", "status"] as const) {
    es.addEventListener(type, (m: MessageEvent<string>) => {
      apply(JSON.parse(m.data) as FeedEvent);
      setConnection("live");
      render();
    });
  }
  es.addEventListener("error", () => {
    setConnection("lost");
    // EventSource retries by itself after a dropped stream, but gives up on an HTTP error or a wrong
    // content type (readyState CLOSED): then start a new one.
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      setTimeout(connect, 3000);
    }
  });
}

connect();
// "Last seen" ages by the local clock; no request is made for it.
setInterval(() => {
  if (snap) renderClients(snap);
}, 1000);
