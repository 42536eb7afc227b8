/**
 * The join page (join.html): reads the token and the data choice, decodes the user's images in the
 * page when they bring their own, runs the browser client (web/client) and shows its progress and
 * every failure in words. `/join?token=T&partition=I` starts at once (demos and tests drive it so);
 * `threads=N` and `webgpu=1` pass through to the runtime.
 *
 * The state the page shows is also on `window.saflJoin` (tests read it).
 */
import { type BrowserClientExit, type ClientEvent, type ImageDataset, type OwnImages, runBrowserClient, type WantedImages } from "../index.js";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

interface PageState {
  state: string;
  clientId: string;
  round: number;
  step: number;
  steps: number;
  loss: number | null;
  imagesPerSecond: number | null;
  tasks: number;
  bytesDown: number;
  bytesUp: number;
  backbone: "downloaded" | "cached" | "";
  error: string;
  events: ClientEvent[];
  exit?: BrowserClientExit;
}
const page: PageState = { state: "idle", clientId: "", round: 0, step: 0, steps: 0, loss: null, imagesPerSecond: null, tasks: 0, bytesDown: 0, bytesUp: 0, backbone: "", error: "", events: [] };
(window as unknown as { saflJoin: PageState }).saflJoin = page;

const fmtBytes = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);

function log(line: string): void {
  const el = $("log");
  el.textContent = `${new Date().toLocaleTimeString()}  ${line}\n${el.textContent ?? ""}`.slice(0, 20_000);
}

function render(): void {
  const st = $("state");
  st.textContent = page.state;
  st.dataset["state"] = page.state;
  $("client").textContent = page.clientId || "–";
  $("round").textContent = page.round > 0 ? String(page.round) : "–";
  $("step").textContent = page.steps > 0 ? `${page.step}/${page.steps}` : "–";
  $("loss").textContent = page.loss === null ? "–" : page.loss.toFixed(4);
  $("speed").textContent = page.imagesPerSecond === null ? "–" : page.imagesPerSecond.toFixed(0);
  $("tasks").textContent = String(page.tasks);
  $("down").textContent = fmtBytes(page.bytesDown);
  $("up").textContent = fmtBytes(page.bytesUp);
  $("error").textContent = page.error;
}

/** A failure in the words a person joining can act on. */
function explain(exit: BrowserClientExit): string {
  switch (exit.reason) {
    case "unauthenticated":
      return `The server refused this token. Check that it was copied whole and is not revoked (safl token list).\n${exit.message}`;
    case "unavailable":
      return `The server cannot be reached (is it still running?).\n${exit.message}`;
    case "refused":
      return `The server refused this client: ${exit.message}`;
    case "invalid":
      return `This data or partition does not fit the run: ${exit.message}`;
    default:
      return /out of memory|allocation failed|RangeError|Aborted\(\)/i.test(exit.message)
        ? `The browser ran out of memory while training (close other tabs, or use fewer images).\n${exit.message}`
        : exit.message;
  }
}

function onEvent(e: ClientEvent): void {
  page.events.push(e);
  if (page.events.length > 500) page.events.splice(0, page.events.length - 500);
  const n = (k: string): number => (typeof e[k] === "number" ? (e[k] as number) : 0);
  switch (e.event) {
    case "joined":
      page.state = "joined";
      page.clientId = String(e["clientId"] ?? "");
      log(`joined run ${String(e["runId"])} as ${page.clientId}${e["partition"] !== null && e["partition"] !== undefined ? ` (partition ${String(e["partition"])})` : ""}`);
      break;
    case "backbone":
      if (e["cached"] === true) {
        page.backbone = page.backbone === "downloaded" ? "downloaded" : "cached";
        log("backbone: from this browser's cache (nothing downloaded)");
      } else if (typeof e["bytes"] === "number") {
        page.backbone = "downloaded";
        page.bytesDown += n("bytes");
        log(`backbone downloaded and verified (${fmtBytes(n("bytes"))} in ${n("seconds").toFixed(1)} s)`);
      } else {
        page.state = "downloading";
        log(`downloading the backbone (${fmtBytes(n("size"))})`);
      }
      break;
    case "step":
      page.state = "training";
      page.round = n("round") || page.round;
      page.step = n("step");
      page.steps = n("steps");
      page.loss = n("loss");
      break;
    case "task": {
      page.state = "waiting";
      page.round = n("round") || page.round;
      page.tasks++;
      page.bytesDown += n("bytesDown");
      page.bytesUp += n("bytesUp");
      const steps = n("steps");
      const seconds = n("computeSeconds");
      log(`round ${n("round")} ${String(e["kind"])}: ${String(e["status"])}${steps > 0 ? `, ${steps} steps in ${seconds.toFixed(2)} s` : ""}, ${fmtBytes(n("bytesDown"))} received, ${fmtBytes(n("bytesUp"))} sent${e["message"] ? ` (${String(e["message"])})` : ""}`);
      break;
    }
    case "retry":
      page.state = "reconnecting";
      log(`${String(e["call"])} failed (${String(e["code"])}: ${String(e["message"])}); retrying in ${(n("delayMs") / 1000).toFixed(1)} s`);
      break;
    case "finished":
      page.state = "finished";
      log("the run is finished");
      break;
    case "bases":
      log(`holds base version(s) ${String(e["versions"])} of this run from an earlier visit (not downloaded again)`);
      break;
    case "warning":
      log(`warning: ${String(e["message"])}`);
      break;
    case "rejoin":
      log(`joining again: ${String(e["message"])}`);
      break;
    default:
      break;
  }
  render();
}

/** Images per second over the steps of the task in training (from the step events). */
let stepClock: { at: number; step: number } | undefined;
function trackSpeed(e: ClientEvent): void {
  if (e.event !== "step") return;
  const now = performance.now();
  const step = Number(e["step"]);
  const batch = Number(e["batch"] ?? 0);
  if (step === 1 || !stepClock || step < stepClock.step) stepClock = { at: now, step };
  else if (batch > 0 && now > stepClock.at) page.imagesPerSecond = ((step - stepClock.step) * batch * 1000) / (now - stepClock.at);
}

// ---- the user's own images ----

const IMAGE_RE = /\.(png|jpe?g|gif|bmp|webp)$/i;

/** Decodes, resizes (to the backbone's square input) and normalizes one image into `out` at `at`. */
async function decodeInto(file: File, w: WantedImages, out: Float32Array, at: number, ctx: OffscreenCanvasRenderingContext2D): Promise<void> {
  const bmp = await createImageBitmap(file);
  const s = w.imageSize;
  ctx.clearRect(0, 0, s, s);
  ctx.drawImage(bmp, 0, 0, s, s);
  bmp.close();
  const px = ctx.getImageData(0, 0, s, s).data;
  const plane = s * s;
  for (let i = 0; i < plane; i++) {
    const r = px[i * 4]! / 255;
    const g = px[i * 4 + 1]! / 255;
    const b = px[i * 4 + 2]! / 255;
    const values = w.channels === 1 ? [0.299 * r + 0.587 * g + 0.114 * b] : [r, g, b];
    for (let c = 0; c < w.channels; c++) {
      const mean = w.normalization?.mean[c] ?? w.normalization?.mean[0] ?? 0;
      const std = w.normalization?.std[c] ?? w.normalization?.std[0] ?? 1;
      out[at + c * plane + i] = (values[c]! - mean) / std;
    }
  }
}

/** The picked files with their class names: from sub-folders, or from a labels CSV. */
async function pickedImages(): Promise<{ file: File; label: string }[]> {
  const folder = [...($("folder") as HTMLInputElement).files ?? []].filter((f) => IMAGE_RE.test(f.name));
  if (folder.length > 0) {
    return folder.map((file) => {
      const parts = (file.webkitRelativePath || file.name).split("/");
      if (parts.length < 3) throw new Error(`${file.webkitRelativePath || file.name}: put each image in a sub-folder named after its class (folder/class/image.png)`);
      return { file, label: parts.at(-2)! };
    });
  }
  const files = [...($("files") as HTMLInputElement).files ?? []].filter((f) => IMAGE_RE.test(f.name));
  const csv = ($("csv") as HTMLInputElement).files?.[0];
  if (files.length === 0) throw new Error("no images picked: choose a folder (one sub-folder per class) or image files with a labels CSV");
  if (!csv) throw new Error("image files need a labels CSV (one line per image: file,label)");
  const labels = new Map<string, string>();
  for (const [n, line] of (await csv.text()).split(/\r?\n/).entries()) {
    if (line.trim() === "" || (n === 0 && /^\s*(file|filename|name)\s*,/i.test(line))) continue;
    const m = /^\s*"?([^",]+)"?\s*,\s*"?([^",]+?)"?\s*$/.exec(line);
    if (!m) throw new Error(`${csv.name} line ${n + 1}: expected file,label, got ${JSON.stringify(line.slice(0, 80))}`);
    labels.set(m[1]!.split("/").at(-1)!, m[2]!);
  }
  return files.map((file) => {
    const label = labels.get(file.name);
    if (label === undefined) throw new Error(`${file.name} has no line in ${csv.name}`);
    return { file, label };
  });
}

/** Maps class names to the run's labels: numeric names are the run's class ids when it names them. */
function labelOf(picked: readonly { file: File; label: string }[], w: WantedImages): Map<string, number> {
  const sorted = [...new Set(picked.map((p) => p.label))].sort((a, b) => (/^\d+$/.test(a) && /^\d+$/.test(b) ? Number(a) - Number(b) : a.localeCompare(b)));
  const isRunClass = (n: string): boolean => /^\d+$/.test(n) && w.classes!.includes(Number(n));
  if (w.classes && sorted.every(isRunClass)) return new Map(sorted.map((n) => [n, w.classes!.indexOf(Number(n))]));
  // Some names are the run's class ids and some are not: a mistake, not a naming of one's own
  // (which maps in sorted order and would silently shift the correctly named classes).
  const foreign = w.classes && sorted.some(isRunClass) ? sorted.filter((n) => !isRunClass(n)) : [];
  if (foreign.length > 0) {
    const first = picked.find((p) => p.label === foreign[0])!.file.name;
    throw new Error(`label ${foreign.slice(0, 10).map((n) => JSON.stringify(n)).join(", ")} (${first}${foreign.length > 1 ? ", …" : ""}) ${foreign.length === 1 ? "is not a class" : "are not classes"} of this run; its class ids are ${w.classes!.join(", ")}`);
  }
  if (w.classes && sorted.length !== w.classes.length) {
    throw new Error(`the run has ${w.classes.length} classes (ids ${w.classes.join(", ")}); the images have ${sorted.length} (${sorted.slice(0, 10).join(", ")}); name the class folders by the run's class ids`);
  }
  return new Map(sorted.map((n, i) => [n, i]));
}

async function ownImages(w: WantedImages): Promise<OwnImages> {
  const picked = await pickedImages();
  const map = labelOf(picked, w);
  const size = w.channels * w.imageSize * w.imageSize;
  const images = new Float32Array(picked.length * size);
  const labels = new Int32Array(picked.length);
  const ctx = new OffscreenCanvas(w.imageSize, w.imageSize).getContext("2d", { willReadFrequently: true })!;
  for (const [i, p] of picked.entries()) {
    try {
      await decodeInto(p.file, w, images, i * size, ctx);
    } catch (e) {
      throw new Error(`cannot decode ${p.file.name}: ${(e as Error).message}`);
    }
    labels[i] = map.get(p.label)!;
    if (i % 50 === 0) log(`decoded ${i + 1} of ${picked.length} images`);
  }
  const classes = w.classes ?? [...map.values()];
  const train: ImageDataset = { name: "my images", images, labels, count: picked.length, channels: w.channels, height: w.imageSize, width: w.imageSize, classes };
  log(`${picked.length} images in ${map.size} classes, decoded to ${w.channels}x${w.imageSize}x${w.imageSize}`);
  return { train };
}

// ---- start / stop ----

let stopper: AbortController | undefined;

async function start(): Promise<void> {
  const token = ($("token") as HTMLInputElement).value.trim();
  if (token === "") {
    page.error = "enter the token you were given (safl_…)";
    render();
    return;
  }
  const source = (document.querySelector("input[name=source]:checked") as HTMLInputElement | null)?.value ?? "partition";
  const partition = Number(($("partition") as HTMLInputElement).value);
  if (source === "partition" && (!Number.isInteger(partition) || partition < 0)) {
    page.error = `the partition must be a whole number ≥ 0, got ${JSON.stringify(($("partition") as HTMLInputElement).value)}`;
    render();
    return;
  }
  page.error = "";
  page.state = "joining";
  render();
  ($("start") as HTMLButtonElement).disabled = true;
  ($("stop") as HTMLButtonElement).disabled = false;
  stopper = new AbortController();
  const threads = params.get("threads");
  try {
    const exit = await runBrowserClient({
      server: location.origin,
      token,
      ...(source === "partition" ? { partition } : { own: ownImages }),
      runtime: { ...(threads ? { threads: Number(threads) } : {}), ...(params.get("webgpu") === "1" ? { executionProviders: ["webgpu", "wasm"] } : {}) },
      signal: stopper.signal,
      onEvent: (e) => {
        trackSpeed(e);
        onEvent(e);
      },
      log: (line) => console.log(line),
    });
    page.exit = exit;
    $("runtime").textContent = `${exit.storage} cache`;
    if (exit.reason === "finished") page.state = "finished";
    else if (exit.reason === "stopped") page.state = "left";
    else {
      page.state = "error";
      page.error = explain(exit);
    }
  } catch (e) {
    page.state = "error";
    page.error = (e as Error).message;
  } finally {
    ($("start") as HTMLButtonElement).disabled = false;
    ($("stop") as HTMLButtonElement).disabled = true;
    render();
  }
}

$("start").addEventListener("click", () => void start());
$("stop").addEventListener("click", () => stopper?.abort());
const givenToken = params.get("token");
const givenPartition = params.get("partition");
if (givenToken) ($("token") as HTMLInputElement).value = givenToken;
if (givenPartition !== null) ($("partition") as HTMLInputElement).value = givenPartition;
$("runtime").textContent = crossOriginIsolated ? `${navigator.hardwareConcurrency} threads available` : "1 thread (page not cross-origin isolated)";
render();
// A link that carries both starts at once; a token alone only fills the form.
if (givenToken && givenPartition !== null) void start();
