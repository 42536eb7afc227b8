/**
 * The `--ui` page handler (net/ui) over real sockets: MIME types (wasm, .mjs), the isolation and
 * nosniff headers on every response (errors included), ETag revalidation, refused path traversal
 * (encoded, literal, through a symlink), the 405 and 404 answers, `/api/state`, and the event
 * stream: its framing (retry, snapshot, changes, keep-alive comments) over HTTP/1.1 and over the
 * server front's HTTP/2, and the cleanup of a stream whose client went away.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { RunFeed } from "../sim/run-feed.js";
import { type Front, listenFront } from "./http-front.js";
import { composePages, createUi, resolveStatic, type Ui, type UiServer, serveUi, sseFrame } from "./ui.js";

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request with the path sent exactly as written (a URL string would have its dot segments removed first). */
function request(url: string, opts: http.RequestOptions = {}): Promise<Got> {
  const m = /^http:\/\/([^/]+):(\d+)(\/.*)$/.exec(url)!;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: m[1], port: Number(m[2]), path: m[3], ...opts }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Reads SSE text until `until` holds for what arrived, then hands back the frames and the open request. */
function openStream(url: string): { frames: () => string[]; text: () => string; request: http.ClientRequest; response: Promise<http.IncomingMessage> } {
  let text = "";
  let resolveResponse: (r: http.IncomingMessage) => void = () => {};
  const response = new Promise<http.IncomingMessage>((r) => {
    resolveResponse = r;
  });
  const request = http.get(url, (res) => {
    res.setEncoding("utf8");
    res.on("data", (c: string) => {
      text += c;
    });
    resolveResponse(res);
  });
  request.on("error", () => {});
  return { frames: () => text.split("\n\n").filter((f) => f !== ""), text: () => text, request, response };
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function assertIsolationHeaders(h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders, what: string): void {
  assert.equal(h["cross-origin-opener-policy"], "same-origin", what);
  assert.equal(h["cross-origin-embedder-policy"], "require-corp", what);
  assert.equal(h["cross-origin-resource-policy"], "same-origin", what);
  assert.equal(h["x-content-type-options"], "nosniff", what);
}

describe("net/ui", () => {
  let dir = "";
  let root = "";
  let feed: RunFeed;
  let ui: Ui;
  let server: UiServer;
  let base = "";

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "safl-ui-"));
    root = join(dir, "web");
    mkdirSync(join(root, "ort"), { recursive: true });
    writeFileSync(join(root, "dashboard.html"), "<!doctype html><title>d</title>");
    writeFileSync(join(root, "dashboard.js"), "export {};");
    writeFileSync(join(root, "ort", "loader.mjs"), "export {};");
    writeFileSync(join(root, "ort", "x.wasm"), Buffer.from([0, 0x61, 0x73, 0x6d]));
    writeFileSync(join(root, ".hidden"), "no");
    writeFileSync(join(dir, "secret.txt"), "do not serve");
    symlinkSync(join(dir, "secret.txt"), join(root, "link.txt"));
    feed = new RunFeed({ mode: "simulation", strategy: "fedavg", rounds: 2, clients: 2, perRound: 2 });
    ui = createUi({ feed, webRoot: root, keepAliveMs: 40 });
    server = await serveUi(ui, "127.0.0.1", 0);
    base = server.url.replace(/\/$/, "");
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the dashboard at / with the isolation headers and its own content policy", async () => {
    const r = await request(`${base}/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "text/html; charset=utf-8");
    assertIsolationHeaders(r.headers, "/");
    assert.match(String(r.headers["content-security-policy"]), /default-src 'none'/);
    assert.match(r.body, /<title>d<\/title>/);
  });

  it("serves dist/web files with their MIME types, and revalidates with the ETag", async () => {
    for (const [path, type] of [
      ["/web/dashboard.js", "text/javascript; charset=utf-8"],
      ["/web/ort/loader.mjs", "text/javascript; charset=utf-8"],
      ["/web/ort/x.wasm", "application/wasm"],
    ] as const) {
      const r = await request(`${base}${path}`);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers["content-type"], type, path);
      assert.equal(r.headers["cache-control"], "no-cache", path);
      assertIsolationHeaders(r.headers, path);
      const again = await request(`${base}${path}`, { headers: { "if-none-match": String(r.headers.etag) } });
      assert.equal(again.status, 304, `${path} unchanged`);
      assert.equal(again.body, "");
      assertIsolationHeaders(again.headers, `${path} 304`);
    }
    const head = await request(`${base}/web/ort/x.wasm`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], "4");
    assert.equal(head.body, "");
  });

  it("refuses every way out of dist/web, and hidden files", async () => {
    for (const path of ["/web/../secret.txt", "/web/%2e%2e/secret.txt", "/web/..%2fsecret.txt", "/web/ort/..%2f..%2fsecret.txt", "/web/%2e%2e%5csecret.txt", "/web/link.txt", "/web/.hidden", "/web/ort/%00x.wasm", "/web/%E0%A4%A", "/web/", "/web/ort"]) {
      const r = await request(`${base}${path}`);
      assert.equal(r.status, 404, path);
      assert.ok(!r.body.includes("do not serve"), path);
      assertIsolationHeaders(r.headers, path);
    }
    assert.equal(resolveStatic(root, "../secret.txt"), undefined);
    assert.equal(resolveStatic(root, "ort/x.wasm"), join(root, "ort", "x.wasm"));
  });

  it("answers /join with a clear 404 page when this build has none, 405 for other methods, and leaves unknown paths to the next handler", async () => {
    const join404 = await request(`${base}/join?token=T&partition=0`);
    assert.equal(join404.status, 404);
    assert.equal(join404.headers["content-type"], "text/html; charset=utf-8");
    assert.match(join404.body, /No join page in this build/);
    assertIsolationHeaders(join404.headers, "/join");
    const post = await request(`${base}/`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
    const handled: string[] = [];
    const composed = composePages(ui.handler, (req) => {
      handled.push(req.url ?? "");
      return false;
    });
    const fake = { url: "/api/demo-partition", method: "GET", headers: {} } as unknown as http.IncomingMessage;
    assert.equal(composed(fake, {} as unknown as http.ServerResponse), false);
    assert.deepEqual(handled, ["/api/demo-partition"]);
    const unknown = await request(`${base}/nope`);
    assert.equal(unknown.status, 404);
  });

  it("serves the feed's snapshot at /api/state", async () => {
    const r = await request(`${base}/api/state`);
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "application/json; charset=utf-8");
    assert.equal(r.headers["cache-control"], "no-store");
    const s = JSON.parse(r.body) as { info: { strategy: string }; status: string };
    assert.equal(s.info.strategy, "fedavg");
    assert.equal(s.status, "waiting");
  });

  it("streams a snapshot, then changes and keep-alive comments, and cleans up when the client goes", async () => {
    const before = feed.subscriberCount;
    const s = openStream(`${base}/events`);
    const res = await s.response;
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["content-type"], "text/event-stream; charset=utf-8");
    assertIsolationHeaders(res.headers, "/events");
    await until("the snapshot", () => s.frames().length >= 2);
    assert.equal(s.frames()[0], "retry: 2000");
    const snap = s.frames()[1]!;
    assert.match(snap, /^event: snapshot\ndata: \{.*\}$/);
    assert.equal((JSON.parse(snap.slice(snap.indexOf("data: ") + 6)) as { type: string }).type, "snapshot");
    assert.equal(ui.openStreams(), 1);
    assert.equal(feed.subscriberCount, before + 1);
    feed.roundStarted(1);
    await until("the status event", () => s.frames().some((f) => f.startsWith("event: status")));
    const status = s.frames().find((f) => f.startsWith("event: status"))!;
    assert.equal(status, sseFrame({ type: "status", status: "running", activeRound: 1 }).trimEnd());
    await until("a keep-alive comment", () => s.frames().some((f) => f === ": keep-alive"));
    s.request.destroy();
    await until("the stream's cleanup", () => ui.openStreams() === 0 && feed.subscriberCount === before);
  });

  it("works the same behind the server's front over HTTP/2 (browsers over TLS), and close() ends open streams", async () => {
    const front: Front = await listenFront({
      host: "127.0.0.1",
      port: 0,
      rpc: (_req, res) => {
        res.writeHead(404);
        res.end();
      },
      pages: ui.handler,
    });
    const session = http2.connect(`http://127.0.0.1:${front.address.port}`);
    try {
      const wasm = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const r = session.request({ ":path": "/web/ort/x.wasm" });
        r.on("response", (h) => resolve(h));
        r.on("error", reject);
        r.resume();
      });
      assert.equal(wasm[":status"], 200);
      assert.equal(wasm["content-type"], "application/wasm");
      assertIsolationHeaders(wasm, "h2 wasm");
      let text = "";
      const ev = session.request({ ":path": "/events" });
      ev.setEncoding("utf8");
      ev.on("data", (c: string) => {
        text += c;
      });
      await until("the h2 snapshot", () => text.includes("event: snapshot\n"));
      assert.equal(ui.openStreams(), 1);
      ui.close();
      await until("the h2 stream's end", () => ui.openStreams() === 0);
      ev.close();
    } finally {
      session.destroy();
      await front.close();
    }
  });
});
