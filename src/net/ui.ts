/**
 * @module net/ui
 * The `--ui` pages over HTTP (the Node edge of the dashboard): a page handler for the server's port
 * (net/http-front) and for the small server `safl simulate --ui` starts, serving
 *
 *   /             the dashboard (dist/web/dashboard.html)
 *   /join         the join page (dist/web/join.html), or a page saying this build has none
 *   /web/<file>   the files of dist/web (page scripts, the browser bundle, onnxruntime-web's wasm)
 *   /events       the run feed (sim/run-feed) as server-sent events: a snapshot, then each change
 *   /api/state    the feed's snapshot as JSON
 *
 * Every response carries COOP same-origin and COEP require-corp (the join page needs cross-origin
 * isolation for onnxruntime-web's threads, and a document is only isolated if everything it loads
 * says so, hence CORP same-origin too), `nosniff`, and no referrer (a join link carries its token in
 * the query). Nothing is fetched from elsewhere: pages load only /web/ files.
 *
 * No token for these routes: the dashboard is read-only and shows what metrics.jsonl holds plus
 * client ids and device kinds (token ids, never secrets). It is served on the server's own port, so
 * it reaches exactly who can reach the server; `--insecure` is loopback-only and `safl simulate
 * --ui` listens on loopback unless told otherwise (docs/browser.md).
 */
import { createReadStream, realpathSync, statSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { extname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode, SaflError } from "../errors.js";
import type { RunConfig } from "../sim/config.js";
import type { ClientActivity, FeedEvent, LiveClient, RunFeed, RunInfo } from "../sim/run-feed.js";
import { ClientState } from "./gen/safl/v1/federation_pb.js";
import type { AnyRequest, AnyResponse, PageHandler } from "./http-front.js";
import type { FederationHub } from "./hub.js";

/** dist/web: this module runs from dist/src/net/. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL("../../web/", import.meta.url));

export const MIME: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".txt": "text/plain; charset=utf-8",
};

/** Headers of every response (see the module comment). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/**
 * The dashboard's own policy: its script and the event stream, nothing else (styles are inline in
 * its HTML). The join page gets none from here: onnxruntime-web compiles WebAssembly and starts
 * workers, which a policy would have to be written around.
 */
const DASHBOARD_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** An event stream's unsent bytes beyond which the client is too slow: it is cut and reconnects to a fresh snapshot. */
const MAX_STREAM_BACKLOG = 4 * 1024 * 1024;

export interface UiOptions {
  readonly feed: RunFeed;
  /** The directory with dashboard.html, join.html and the bundle (default: the package's dist/web). */
  readonly webRoot?: string;
  /** Comment lines on idle event streams, so proxies and browsers keep them open (default 15 s). */
  readonly keepAliveMs?: number;
}

export interface Ui {
  readonly handler: PageHandler;
  /** Open event streams (tests check that a closed connection is cleaned up). */
  openStreams(): number;
  /** Ends every open event stream (before the listening socket closes). */
  close(): void;
}

type Headers = Record<string, string | number>;

function send(req: AnyRequest, res: AnyResponse, status: number, headers: Headers, body: string | Buffer): void {
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  res.writeHead(status, { ...SECURITY_HEADERS, ...headers, "content-length": bytes.length });
  if (req.method === "HEAD") res.end();
  else res.end(bytes);
}

function sendText(req: AnyRequest, res: AnyResponse, status: number, text: string, extra: Headers = {}): void {
  send(req, res, status, { "content-type": MIME[".txt"]!, "cache-control": "no-store", ...extra }, `${text}\n`);
}

const NO_JOIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>No join page</title><link rel="icon" href="data:,"></head>
<body><h1>No join page in this build</h1><p>This server was built without the browser join page (dist/web/join.html). The dashboard is at <a href="/">/</a>.</p></body></html>
`;

/**
 * Resolves `/web/<rel>` inside `root`, or undefined for anything that could leave it: encoded or
 * literal `..` segments, backslashes, NUL bytes, hidden files, and symlinks that point outside.
 */
export function resolveStatic(root: string, rel: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return undefined;
  }
  if (decoded === "" || decoded.includes("\0") || decoded.includes("\\")) return undefined;
  const segments = decoded.split("/");
  if (segments.some((s) => s === "" || s === "." || s === ".." || s.startsWith("."))) return undefined;
  const base = resolve(root);
  const file = resolve(base, ...segments);
  if (!file.startsWith(base + sep)) return undefined;
  try {
    const real = realpathSync(file);
    const realBase = realpathSync(base);
    if (!real.startsWith(realBase + sep)) return undefined;
    return statSync(real).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends a file with a validator: an ETag from size and modification time, `no-cache` so the browser
 * asks again each load (a rebuilt bundle shows at once) but gets a 304 instead of the bytes when
 * nothing changed — what matters for the ~10 MB WebAssembly files.
 */
function sendFile(req: AnyRequest, res: AnyResponse, file: string, extra: Headers = {}): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch {
    sendText(req, res, 404, "not found");
    return;
  }
  const etag = `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  const headers: Headers = { "content-type": MIME[extname(file).toLowerCase()] ?? "application/octet-stream", "cache-control": "no-cache", etag, ...extra };
  const match = req.headers["if-none-match"];
  if (typeof match === "string" && match.split(",").some((m) => m.trim() === etag)) {
    res.writeHead(304, { ...SECURITY_HEADERS, ...headers });
    res.end();
    return;
  }
  res.writeHead(200, { ...SECURITY_HEADERS, ...headers, "content-length": st.size });
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on("error", () => res.destroy());
  res.on("close", () => stream.destroy());
  stream.pipe(res as NodeJS.WritableStream);
}

/** One SSE frame: the event's type as the event name, its JSON (a single line) as the data. */
export function sseFrame(event: FeedEvent): string {
  return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

export function createUi(o: UiOptions): Ui {
  const root = o.webRoot ?? DEFAULT_WEB_ROOT;
  const keepAliveMs = o.keepAliveMs ?? 15_000;
  const streams = new Set<() => void>();

  const events = (res: AnyResponse) => {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      // Tells a buffering reverse proxy (nginx) to pass events through as they come.
      "x-accel-buffering": "no",
    });
    let closed = false;
    let timer: ReturnType<typeof setInterval> | undefined;
    let unsubscribe = () => {};
    const end = () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      unsubscribe();
      streams.delete(end);
      res.end();
    };
    const write = (text: string) => {
      if (closed) return;
      (res as http.ServerResponse).write(text);
      // (HTTP/2 compatibility responses do not report a backlog; their stream's flow control applies.)
      if ((res.writableLength ?? 0) > MAX_STREAM_BACKLOG) end();
    };
    // A reconnect delay for the browser's EventSource, then the snapshot (subscribe sends it first).
    write("retry: 2000\n\n");
    unsubscribe = o.feed.subscribe((e) => write(sseFrame(e)));
    timer = setInterval(() => write(": keep-alive\n\n"), keepAliveMs);
    timer.unref?.();
    streams.add(end);
    // The response closes when the browser goes away or the server shuts the connection.
    res.on("close", end);
  };

  const handler: PageHandler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const known = path === "/" || path === "/index.html" || path === "/join" || path === "/events" || path === "/api/state" || path.startsWith("/web/");
    if (!known) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendText(req, res, 405, "method not allowed", { allow: "GET, HEAD" });
      return true;
    }
    if (path === "/" || path === "/index.html") {
      const file = resolveStatic(root, "dashboard.html");
      if (!file) sendText(req, res, 404, "the dashboard is not built (dist/web/dashboard.html is missing): run npm run build");
      else sendFile(req, res, file, { "content-security-policy": DASHBOARD_CSP });
    } else if (path === "/join") {
      const file = resolveStatic(root, "join.html");
      if (!file) send(req, res, 404, { "content-type": MIME[".html"]!, "cache-control": "no-store" }, NO_JOIN_PAGE);
      else sendFile(req, res, file);
    } else if (path === "/events") {
      events(res);
    } else if (path === "/api/state") {
      send(req, res, 200, { "content-type": MIME[".json"]!, "cache-control": "no-store" }, JSON.stringify(o.feed.snapshot()));
    } else {
      const file = resolveStatic(root, path.slice("/web/".length));
      if (!file) sendText(req, res, 404, "not found");
      else sendFile(req, res, file);
    }
    return true;
  };

  return {
    handler,
    openStreams: () => streams.size,
    close: () => {
      for (const end of [...streams]) end();
    },
  };
}

/** What the dashboard shows of a run config before its first round. */
export function runInfoOf(cfg: RunConfig, mode: RunInfo["mode"]): RunInfo {
  const classes = cfg.data.classes !== undefined ? ` ${cfg.data.classes}` : "";
  return { mode, strategy: cfg.strategy.name, rounds: cfg.rounds, clients: cfg.clients.count, perRound: cfg.clients.perRound, task: `${cfg.data.dataset}${classes}, ${cfg.clients.partition}` };
}

/** Tries each handler in turn (the dashboard first, then the join page's routes). */
export function composePages(...handlers: readonly PageHandler[]): PageHandler {
  return (req, res) => handlers.some((h) => h(req, res));
}

const ACTIVITY: Readonly<Record<number, ClientActivity>> = {
  [ClientState.UNSPECIFIED]: "idle",
  [ClientState.IDLE]: "idle",
  [ClientState.DOWNLOADING]: "downloading",
  [ClientState.TRAINING]: "training",
  [ClientState.UPLOADING]: "uploading",
};

/** The hub's client table as the feed's live clients. */
export function liveClientsOf(hub: FederationHub, nowMs = Date.now()): LiveClient[] {
  return hub.clientTable(nowMs).map((c) => {
    // A client with a pulled evaluation task is evaluating, whatever its last heartbeat said.
    const state = c.task?.kind === "evaluate" && c.task.handedOut ? "evaluating" : (ACTIVITY[c.state] ?? "idle");
    return {
      id: c.id,
      online: c.online,
      state,
      round: c.task?.round ?? c.round,
      lastSeenMs: c.lastSeenMs,
      device: c.device.kind || "unknown",
      threads: c.device.threads,
      imagesPerSecond: c.imagesPerSecond,
    };
  });
}

/**
 * Samples the hub into the feed every `intervalMs` (default 1 s): its sessions as the client table
 * and its open exchange as the round in progress. The feed pushes only what changed, so an idle run
 * sends nothing. Returns the function that stops sampling.
 */
export function watchHub(hub: FederationHub, feed: RunFeed, intervalMs = 1000): () => void {
  const sample = () => {
    feed.setClients(liveClientsOf(hub));
    const round = hub.openRound();
    if (round !== undefined) feed.roundStarted(round);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref?.();
  return () => clearInterval(timer);
}

export interface UiServer {
  /** The URL to open, e.g. http://127.0.0.1:7480/ */
  readonly url: string;
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** An HTTP/1.1 server for the pages alone (`safl simulate --ui`: a local run has no federation port). */
export async function serveUi(ui: Ui, host: string, port: number): Promise<UiServer> {
  const server = http.createServer((req, res) => {
    try {
      if (ui.handler(req, res)) return;
    } catch {
      if (!res.headersSent) sendText(req, res, 500, "internal error");
      else res.end();
      return;
    }
    sendText(req, res, 404, "not found");
  });
  // Event streams stay open; the default request timeout must not cut them.
  server.requestTimeout = 0;
  await new Promise<void>((resolveListen, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(new SaflError(ErrorCode.Io, `cannot listen on ${host}:${port}: ${e.code ?? e.message}`)));
    server.listen(port, host, () => resolveListen());
  });
  const address = server.address() as AddressInfo;
  const shown = address.address.includes(":") ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}/`,
    address,
    close: () =>
      new Promise<void>((done) => {
        ui.close();
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
