/**
 * The join page's "my images" path end to end, in headless Chromium against a real
 * `safl server --ui` process. The images are PNGs drawn here (a small PNG encoder below), one
 * simple pattern per class of the run (data.classes 5-9), picked with the image-files input and a
 * labels CSV, exactly as a person would:
 * - wrong labels are said in words before anything is trained: a CSV line naming a label that is
 *   not a run class, and an image without a CSV line, put the page in state "error" with a message
 *   in #error naming the label or the file (checked first, on the server that then runs the run:
 *   the failed page leaves before the run has its clients);
 * - 2 Node clients (partitions 0, 1) and the browser with its own images and no partition (its
 *   client id is then its token's id): deployment.minClients defaults to clients.count, so the run
 *   waits for all 3; it completes, the browser's replies are aggregated in every round, and the page
 *   ends "finished" without page errors, and the Node clients exit 0 (the server closes its
 *   connections gracefully, so no RunFinished answer is cut on the way).
 * Skipped only when Chromium or the web build is missing (the reason is in the skip message).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { deflateSync, inflateSync } from "node:zlib";
import type { Page } from "playwright-core";
import { type Browser, browserUnavailable, launchBrowser } from "./browser-harness.js";
import { Harness, readRun, type ServerProc } from "./deploy-harness.js";

const unavailable = browserUnavailable();

// ---- a minimal PNG encoder (8-bit grayscale, no interlace, filter 0 on every row) ----

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, tail]);
}

/** A grayscale PNG of `gray` (row-major, width*height bytes). */
function encodePng(width: number, height: number, gray: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: grayscale
  // compression, filter and interlace methods: 0
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk("IHDR", ihdr), pngChunk("IDAT", deflateSync(raw)), pngChunk("IEND", Buffer.alloc(0))]);
}

// ---- the images: one pattern per class, shifted per image ----

const SIZE = 28;
const CLASSES = ["5", "6", "7", "8", "9"];
const PER_CLASS = 8;

/** White strokes on black like MNIST: stripes across, stripes down, a diagonal, a ring, a block. */
function pattern(cls: string, v: number): Uint8Array {
  const px = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const dx = x - 14 - (v % 3) + 1;
      const dy = y - 14 - ((v >> 1) % 3) + 1;
      const r = Math.hypot(dx, dy);
      const on =
        cls === "5" ? (y + v) % 7 < 3 :
        cls === "6" ? (x + v) % 7 < 3 :
        cls === "7" ? Math.abs(x - y - (v - 4)) < 3 :
        cls === "8" ? r >= 6 && r <= 10 :
        x >= 6 + (v % 4) && x < 16 + (v % 4) && y >= 6 + (v >> 2) * 3 && y < 16 + (v >> 2) * 3;
      px[y * SIZE + x] = on ? 255 : 0;
    }
  }
  return px;
}

interface PickedFile {
  name: string;
  mimeType: string;
  buffer: Buffer;
}

const images: PickedFile[] = CLASSES.flatMap((cls) =>
  Array.from({ length: PER_CLASS }, (_, v) => ({ name: `img-${cls}-${v}.png`, mimeType: "image/png", buffer: encodePng(SIZE, SIZE, pattern(cls, v)) })),
);
const labelOfImage = (name: string): string => /^img-(\d)-/.exec(name)![1]!;

function csvFile(lines: readonly (readonly [string, string])[]): PickedFile {
  const text = ["file,label", ...lines.map(([f, l]) => `${f},${l}`), ""].join("\n");
  return { name: "labels.csv", mimeType: "text/csv", buffer: Buffer.from(text, "utf8") };
}

const goodCsv = csvFile(images.map((f) => [f.name, labelOfImage(f.name)] as const));

// ---- the page ----

interface PageState {
  state: string;
  clientId: string;
  round: number;
  tasks: number;
  backbone: string;
  error: string;
}

const pageState = (page: Page): Promise<PageState> => page.evaluate(() => (globalThis as unknown as { saflJoin: PageState }).saflJoin);

/** Polls the page's state until `ok`; a page in state "error" fails the wait unless `ok` accepts it. */
async function waitForPage(page: Page, what: string, ok: (s: PageState) => boolean, ms: number, context: () => string = () => ""): Promise<PageState> {
  const until = Date.now() + ms;
  for (;;) {
    const s = await pageState(page);
    if (ok(s)) return s;
    if (s.state === "error") throw new Error(`the page failed while waiting for ${what}: ${s.error}${context()}`);
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; page state ${JSON.stringify({ ...s, events: undefined })}${context()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The page's console and the server's last lines, for failure messages. */
function watch(page: Page, server: ServerProc): { errors: string[]; context: () => string } {
  const errors: string[] = [];
  const consoleLines: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  return { errors, context: () => `\npage console (last lines):\n${consoleLines.slice(-15).join("\n")}\nserver (last lines):\n${server.lines.slice(-15).join("\n")}` };
}

/** Opens /join (no token in the link, so nothing starts by itself) and joins with picked files and a CSV. */
async function joinWithFiles(page: Page, port: number, token: string, files: readonly PickedFile[], csv: PickedFile): Promise<void> {
  await page.goto(`http://127.0.0.1:${port}/join`);
  await page.check("input[name=source][value=files]");
  await page.setInputFiles("#files", [...files]);
  await page.setInputFiles("#csv", csv);
  await page.fill("#token", token);
  await page.click("#start");
}

const accepted = (r: Record<string, unknown>): readonly string[] => (r["clients"] as { accepted: string[] }).accepted;

describe("browser client with its own images", { skip: unavailable ?? false, timeout: 240_000 }, () => {
  const rounds = 2;
  let dir = "";
  let h: Harness;
  let browser: Browser;
  let server: ServerProc;
  let port = 0;
  let out = "";
  let tokens: Map<string, string>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "safl-browser-own-"));
    h = new Harness(dir);
    const cfg = {
      seed: 5,
      rounds,
      data: { dataset: "mnist", classes: "5-9", trainLimit: 300 },
      clients: { count: 3, perRound: 3, partition: "iid" },
      strategy: { name: "fedlora", adapter: { rank: 2 } },
      training: { localSteps: 4, batch: 8 },
      evaluation: { every: 0 },
      execution: { workers: 1, threads: 1 },
      // minClients defaults to clients.count: round 1 waits for both Node clients and the browser.
      deployment: { heartbeatSeconds: 2, roundTimeoutSeconds: 60 },
    };
    const cfgPath = await h.writeConfig("own.json", cfg);
    const t = await h.tokens(["own-n0", "own-n1", "own-web", "own-bad"]);
    tokens = t.tokens;
    out = join(dir, "own-out");
    server = h.server(["--ui", "--config", cfgPath, "--state", join(dir, "own.db"), "--out", out, "--tokens", t.file]);
    [port, browser] = await Promise.all([server.port, launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    h?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("the PNG encoder writes valid chunks", () => {
    assert.equal(crc32(Buffer.from("IEND", "latin1")), 0xae426082, "CRC32 of an empty IEND chunk");
    const png = images[0]!.buffer;
    assert.equal(png.readUInt32BE(16), SIZE);
    const idatLength = png.readUInt32BE(33);
    const raw = inflateSync(png.subarray(41, 41 + idatLength));
    assert.equal(raw.length, (SIZE + 1) * SIZE);
    assert.equal(new Set(CLASSES.map((c) => images.find((f) => labelOfImage(f.name) === c)!.buffer.toString("hex"))).size, CLASSES.length, "the classes look different");
  });

  test("labels that do not fit the run are said in #error (state error) before anything trains", async () => {
    const bad = tokens.get("own-bad")!;
    const cases: { what: string; files: PickedFile[]; csv: PickedFile; expect: RegExp[] }[] = [
      {
        what: "a CSV line naming a label that is not a run class",
        files: images,
        csv: csvFile(images.map((f, i) => [f.name, i === 0 ? "3" : labelOfImage(f.name)] as const)),
        expect: [/label "3"/, /img-5-0\.png/, /not a class of this run/, /5, 6, 7, 8, 9/],
      },
      {
        // As many class names as the run has classes, so the old mapping in sorted order would have taken it silently.
        what: "a label that is not a run class among as many names as the run has classes",
        files: images.filter((f) => labelOfImage(f.name) !== "9"),
        csv: csvFile(images.filter((f) => labelOfImage(f.name) !== "9").map((f) => [f.name, f.name === "img-8-0.png" ? "3" : labelOfImage(f.name)] as const)),
        expect: [/label "3"/, /img-8-0\.png/, /not a class of this run/],
      },
      {
        what: "an image without a CSV line",
        files: images,
        csv: csvFile(images.filter((f) => f.name !== "img-7-3.png").map((f) => [f.name, labelOfImage(f.name)] as const)),
        expect: [/img-7-3\.png has no line in labels\.csv/],
      },
    ];
    for (const [i, c] of cases.entries()) {
      const page = await browser.context.newPage();
      const { errors, context } = watch(page, server);
      await joinWithFiles(page, port, bad, c.files, c.csv);
      await waitForPage(page, `the error for ${c.what}`, (s) => s.state === "error", 30_000, context);
      const shown = (await page.textContent("#error")) ?? "";
      for (const re of c.expect) assert.match(shown, re, `${c.what}: #error says ${JSON.stringify(shown)}`);
      assert.equal((await pageState(page)).tasks, 0, `${c.what}: nothing was trained`);
      assert.deepEqual(errors, [], `${c.what}: no uncaught errors in the page`);
      // The failed client leaves the run, so it is not among the run's clients (the run waits for 3).
      const leaves = () => server.lines.filter((l) => /left: own-bad/.test(l)).length;
      const until = Date.now() + 10_000;
      while (leaves() < i + 1) {
        assert.ok(Date.now() < until, `${c.what}: the server saw own-bad leave; last lines:\n${server.lines.slice(-10).join("\n")}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await page.close();
    }
  });

  test("2 Node clients and a browser with its own images (labels CSV, no partition): the run completes with the browser's replies", async () => {
    const nodes = [0, 1].map((i) => h.client(port, tokens.get(`own-n${i}`)!, ["--dataset", "mnist", "--partition", String(i), "--cache", join(dir, `own-cache-${i}`)]));
    const page = await browser.context.newPage();
    const { errors, context } = watch(page, server);
    await joinWithFiles(page, port, tokens.get("own-web")!, images, goodCsv);
    // The server ends the run and exits; the page must have been told the run is finished by then.
    let exitCode: number | null | "running" = "running";
    void server.exited.then((code) => (exitCode = code));
    await waitForPage(page, "the run to finish", (s) => s.state === "finished" || exitCode !== "running", 150_000, context);
    assert.equal(await server.exited, 0, `server failed:\n${server.lines.slice(-30).join("\n")}`);
    const finished = await waitForPage(page, "the page to hear that the run finished (the server has exited)", (s) => s.state === "finished", 10_000, context);
    assert.deepEqual(errors, [], "no uncaught errors in the page");
    for (const [i, c] of nodes.entries()) {
      const code = await Promise.race([c.exited, new Promise<"running">((r) => setTimeout(() => r("running"), 10_000))]);
      assert.equal(code, 0, `node client ${i} ${code === "running" ? "did not exit within 10 s of the server" : `exited ${String(code)}`}: ${c.output().slice(-600)}`);
    }
    assert.equal(finished.error, "");
    assert.equal(finished.clientId, "own-web", "without a partition the browser's client id is its token's id");
    assert.ok(finished.tasks >= rounds, `the page answered ${finished.tasks} tasks`);
    const log = (await page.textContent("#log")) ?? "";
    assert.match(log, new RegExp(`${images.length} images in ${CLASSES.length} classes, decoded to 1x${SIZE}x${SIZE}`), "the page decoded every picked image");
    const dep = await readRun(out);
    assert.equal(dep.records.length, rounds, "the run completed");
    for (const r of dep.records) {
      assert.ok(accepted(r).includes("own-web"), `round ${String(r["round"])} aggregated ${JSON.stringify(accepted(r))}`);
      assert.equal(accepted(r).length, 3, `round ${String(r["round"])} aggregated all three clients: ${JSON.stringify(accepted(r))}`);
    }
    await page.close();
  });
});
