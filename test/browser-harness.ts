/**
 * Runs the browser bundle (dist/web, `node scripts/build-web.mjs`) in headless Chromium next to the
 * same code on onnxruntime-node, for test/browser-step.test.ts and bench/browser-step.ts. A loopback
 * HTTP server serves dist/web under /coi/ with the COOP/COEP headers that make a page cross-origin
 * isolated (so onnxruntime-web may use threads) and under /plain/ without them. A *scenario* is one
 * function `(lib, runtime, arg, state) => result` written against the library's exports: in the
 * browser `lib` is the bundle and `runtime` a WebRuntime, in Node `lib` is the Node entry and
 * `runtime` a NodeRuntime, so both sides run literally the same code. In the browser the function
 * travels as source text, so it may use only its parameters and globals, never its module's
 * imports; `arg` and the result must be JSON-like; `state` persists between calls on one side.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, type Page, chromium } from "playwright-core";
import * as nodeLib from "../src/index.js";
import type { Runtime } from "../src/runtime/runtime.js";
import type * as webLib from "../src/web/index.js";
import type { WebRuntimeInfo, WebRuntimeOptions } from "../src/web/runtime.js";

export const CHROMIUM = "/usr/bin/chromium";
/** dist/web, beside dist/test where this file is compiled to. */
export const WEB_DIST = fileURLToPath(new URL("../web/", import.meta.url));
export const BUNDLE = "sa-fedlora-web.js";

/** What a scenario may use from the library: exports both entries have, with the same code behind them. */
export type ScenarioLib = Pick<
  typeof webLib,
  "AdamW" | "ParamStore" | "Rng" | "TrainStep" | "Trainer" | "adapterTrainable" | "buildAdaptedVit" | "parseAdapterSpec" | "parseVitConfig" | "presetConfig" | "stepFlops"
>;
export type ScenarioState = Record<string, unknown>;
export type Scenario<A, R> = (lib: ScenarioLib, runtime: Runtime, arg: A, state: ScenarioState) => Promise<R>;

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserUnavailable(): string | undefined {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`;
  if (!existsSync(join(WEB_DIST, BUNDLE))) return `${join(WEB_DIST, BUNDLE)} is missing: run node scripts/build-web.mjs (npm run build does)`;
  return undefined;
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
};

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>sa-fedlora browser harness</title><link rel="icon" href="data:,"></head><body></body></html>`;

export interface WebServer {
  readonly origin: string;
  /** Requests served, by path (for checks that nothing came from elsewhere). */
  readonly served: string[];
  close(): Promise<void>;
}

/**
 * Serves `root` on 127.0.0.1 (an ephemeral port): /coi/<file> with Cross-Origin-Opener-Policy:
 * same-origin and Cross-Origin-Embedder-Policy: require-corp on every response (workers need COEP
 * too), /plain/<file> without; `page.html` under either is an empty page.
 */
export async function startWebServer(root = WEB_DIST): Promise<WebServer> {
  const served: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    served.push(url.pathname);
    const m = /^\/(coi|plain)\/(.*)$/.exec(url.pathname);
    const send = (status: number, type: string, body: Buffer | string) => {
      const headers: Record<string, string> = { "Content-Type": type, "Cache-Control": "no-store" };
      if (m?.[1] === "coi") {
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Embedder-Policy"] = "require-corp";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
      }
      res.writeHead(status, headers);
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (!m || (req.method !== "GET" && req.method !== "HEAD")) return send(404, MIME[".txt"]!, "not found\n");
    const rel = decodeURIComponent(m[2]!);
    if (rel === "page.html") return send(200, MIME[".html"]!, PAGE);
    const file = normalize(join(root, rel));
    if (!file.startsWith(normalize(root + sep)) || !existsSync(file) || !statSync(file).isFile()) return send(404, MIME[".txt"]!, "not found\n");
    send(200, MIME[extname(file)] ?? "application/octet-stream", readFileSync(file));
  };
  const server: Server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh profile, nothing from the network but our loopback server. */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "safl-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  return {
    context,
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

/** One side of a comparison: a runtime and the library to run scenarios with. */
export interface Side {
  readonly label: string;
  call<A, R>(scenario: Scenario<A, R>, arg: A): Promise<R>;
  release(): Promise<void>;
}

/** What a browser page reports about itself and its runtime. */
export interface PageReport {
  readonly crossOriginIsolated: boolean;
  readonly hardwareConcurrency: number;
  readonly info: WebRuntimeInfo | undefined;
  readonly runtimeThreads: number;
}

/** A page with the bundle loaded and one WebRuntime (page-wide onnxruntime-web settings, so one per page). */
export class BrowserSide implements Side {
  /** Console errors and uncaught page errors, for failure messages. */
  readonly errors: string[] = [];
  /** Every URL the page (and its workers) requested. */
  readonly requests: string[] = [];

  private constructor(
    readonly label: string,
    readonly page: Page,
  ) {
    page.on("console", (m) => {
      if (m.type() === "error") this.errors.push(`console: ${m.text()}`);
    });
    page.on("pageerror", (e) => this.errors.push(`pageerror: ${e.message}`));
    page.on("request", (r) => this.requests.push(r.url()));
  }

  static async open(browser: Browser, server: WebServer, opts: { isolated: boolean; runtime?: WebRuntimeOptions; label?: string }): Promise<BrowserSide> {
    const page = await browser.context.newPage();
    const base = `${server.origin}/${opts.isolated ? "coi" : "plain"}/`;
    const side = new BrowserSide(opts.label ?? `browser (${opts.isolated ? "isolated" : "not isolated"})`, page);
    await page.goto(`${base}page.html`);
    await page.evaluate(
      async ({ bundle, runtimeOpts }) => {
        const g = globalThis as unknown as Record<string, unknown>;
        const lib = (await import(bundle)) as typeof webLib;
        g["__safl"] = { lib, runtime: new lib.WebRuntime(runtimeOpts), state: {} };
      },
      { bundle: `${base}${BUNDLE}`, runtimeOpts: opts.runtime ?? {} },
    );
    return side;
  }

  async call<A, R>(scenario: Scenario<A, R>, arg: A): Promise<R> {
    // The scenario's source and its JSON argument, evaluated in the page as one expression (it uses only its parameters).
    const expression = `(async () => {
      const s = globalThis.__safl;
      const scenario = (${scenario.toString()});
      return scenario(s.lib, s.runtime, ${JSON.stringify(arg)}, s.state);
    })()`;
    try {
      return (await this.page.evaluate(expression)) as R;
    } catch (e) {
      const extra = this.errors.length > 0 ? `\n${this.errors.join("\n")}` : "";
      throw new Error(`${this.label}: ${(e as Error).message}${extra}`, { cause: e });
    }
  }

  /** The page's isolation, its core count, and what its runtime runs on (after a compile). */
  report(): Promise<PageReport> {
    return this.page.evaluate(() => {
      const s = (globalThis as unknown as Record<string, { runtime: { info(): unknown; threads: number } }>)["__safl"]!;
      const g = globalThis as unknown as { crossOriginIsolated?: boolean; navigator: { hardwareConcurrency: number } };
      return { crossOriginIsolated: g.crossOriginIsolated === true, hardwareConcurrency: g.navigator.hardwareConcurrency, info: s.runtime.info(), runtimeThreads: s.runtime.threads } as never;
    });
  }

  async release(): Promise<void> {
    await this.page.evaluate(async () => {
      const s = (globalThis as unknown as Record<string, { runtime: { release(): Promise<void> } }>)["__safl"]!;
      await s.runtime.release();
    });
    await this.page.close();
  }
}

/** The same scenarios on onnxruntime-node, with the Node entry as the library. */
export class NodeSide implements Side {
  private readonly state: ScenarioState = {};
  readonly runtime: nodeLib.NodeRuntime;

  constructor(
    readonly label: string,
    threads: number,
  ) {
    this.runtime = new nodeLib.NodeRuntime({ threads });
  }

  call<A, R>(scenario: Scenario<A, R>, arg: A): Promise<R> {
    // Through JSON like the browser's results, so both sides hand back the same kind of values.
    return scenario(nodeLib, this.runtime, JSON.parse(JSON.stringify(arg)) as A, this.state).then((r) => JSON.parse(JSON.stringify(r)) as R);
  }

  release(): Promise<void> {
    return this.runtime.release();
  }
}
