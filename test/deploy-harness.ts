/**
 * Test support for deployed runs: starts `safl server` and `safl client` processes on loopback,
 * reads the server's JSON lines (listening address, logs, round records), kills and restarts them,
 * and reads a run's outputs. Every process is killed when the harness is disposed, so a failing
 * test leaves nothing running.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createToken } from "../src/net/tokens.js";

export const root = fileURLToPath(new URL("../../", import.meta.url));
export const safl = join(root, "bin", "safl.js");

export interface ServerProc {
  readonly proc: ChildProcess;
  readonly port: Promise<number>;
  readonly lines: string[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Resolves when a line matching `re` has been printed (or rejects after `ms`). */
  waitFor(re: RegExp, ms?: number): Promise<string>;
}

/** TLS files of a server (paths): without them the server runs plaintext h2c with --insecure. */
export interface ServerTls {
  readonly cert: string;
  readonly key: string;
  /** Require client certificates signed by this CA (--tls-client-ca). */
  readonly clientCa?: string;
}

export interface ServerStart {
  /** Serve TLS with these files instead of --insecure. */
  readonly tls?: ServerTls;
  /** Run the command through this prefix, e.g. ["ip", "netns", "exec", "ns"] (it must exec the command). */
  readonly wrap?: readonly string[];
}

export interface ClientStart {
  /** Connect over https with these files (paths) instead of http:// with --insecure. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /** The server's host (default 127.0.0.1). */
  readonly host?: string;
  /** Run the command through this prefix, e.g. ["ip", "netns", "exec", "ns"]. */
  readonly wrap?: readonly string[];
}

/** spawn() of `node bin/safl.js <args>`, optionally through a prefix command. */
function spawnSafl(args: readonly string[], wrap: readonly string[] = []): ChildProcess {
  const argv = [...wrap, process.execPath, safl, ...args];
  return spawn(argv[0]!, argv.slice(1), { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
}

export class Harness {
  private readonly procs = new Set<ChildProcess>();

  constructor(readonly dir: string) {}

  async tokens(ids: readonly string[]): Promise<{ file: string; tokens: Map<string, string> }> {
    const file = join(this.dir, "tokens.json");
    const tokens = new Map<string, string>();
    for (const id of ids) tokens.set(id, await createToken(file, id));
    return { file, tokens };
  }

  async writeConfig(name: string, cfg: unknown): Promise<string> {
    const path = join(this.dir, name);
    await writeFile(path, JSON.stringify(cfg));
    return path;
  }

  server(args: readonly string[], listen = "127.0.0.1:0", start: ServerStart = {}): ServerProc {
    const transport = start.tls
      ? ["--tls-cert", start.tls.cert, "--tls-key", start.tls.key, ...(start.tls.clientCa !== undefined ? ["--tls-client-ca", start.tls.clientCa] : [])]
      : ["--insecure"];
    const proc = spawnSafl(["server", "--json", ...transport, "--listen", listen, ...args], start.wrap);
    this.procs.add(proc);
    const lines: string[] = [];
    const watchers: { re: RegExp; resolve: (l: string) => void }[] = [];
    let resolvePort: (p: number) => void = () => {};
    let rejectPort: (e: Error) => void = () => {};
    const port = new Promise<number>((res, rej) => {
      resolvePort = res;
      rejectPort = rej;
    });
    let buf = "";
    const onData = (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        try {
          const j = JSON.parse(line) as { listening?: { port: number } };
          if (j.listening) resolvePort(j.listening.port);
        } catch {
          // stderr lines are plain text
        }
        for (const w of [...watchers]) if (w.re.test(line)) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve(line);
        }
        i = buf.indexOf("\n");
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    // A server that is meant to fail before listening must not leave an unhandled rejection.
    port.catch(() => undefined);
    const exited = new Promise<number | null>((resolve) =>
      proc.once("exit", (code) => {
        this.procs.delete(proc);
        rejectPort(new Error(`server exited (${code}) before listening:\n${lines.slice(-20).join("\n")}`));
        resolve(code);
      }),
    );
    return {
      proc,
      port,
      lines,
      exited,
      waitFor: (re, ms = 120_000) =>
        new Promise<string>((resolve, reject) => {
          const hit = lines.find((l) => re.test(l));
          if (hit) return resolve(hit);
          const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} from the server; last lines:\n${lines.slice(-15).join("\n")}`)), ms);
          watchers.push({
            re,
            resolve: (l) => {
              clearTimeout(t);
              resolve(l);
            },
          });
        }),
    };
  }

  client(port: number, token: string, args: readonly string[], start: ClientStart = {}): { proc: ChildProcess; exited: Promise<number | null>; output: () => string } {
    const host = start.host ?? "127.0.0.1";
    const t = start.tls;
    const transport = t
      ? ["--server", `https://${host}:${port}`, ...(t.ca !== undefined ? ["--ca", t.ca] : []), ...(t.cert !== undefined ? ["--cert", t.cert] : []), ...(t.key !== undefined ? ["--key", t.key] : [])]
      : ["--server", `http://${host}:${port}`, "--insecure"];
    const proc = spawnSafl(["client", ...transport, ...(token ? ["--token", token] : []), "--threads", "1", ...args], start.wrap);
    this.procs.add(proc);
    let out = "";
    proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) =>
      proc.once("exit", (code) => {
        this.procs.delete(proc);
        resolve(code);
      }),
    );
    return { proc, exited, output: () => out };
  }

  simulate(args: readonly string[]): void {
    const r = spawnSync(process.execPath, [safl, "simulate", "--force", ...args], { cwd: root, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`safl simulate failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  }

  dispose(): void {
    for (const p of this.procs) p.kill("SIGKILL");
    this.procs.clear();
  }
}

export interface RunOutput {
  readonly records: Record<string, unknown>[];
  readonly model: Buffer;
}

export async function readRun(dir: string): Promise<RunOutput> {
  const text = await readFile(join(dir, "metrics.jsonl"), "utf8");
  return { records: text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>), model: await readFile(join(dir, "model", "model.safetensors")) };
}

/**
 * A client that joins (as partition `partition`), keeps its session alive with heartbeats and pulls
 * its tasks, but never answers one: a device that went silent mid-run without disconnecting.
 */
export async function silentClient(port: number, token: string, partition: number): Promise<() => void> {
  const { createClient } = await import("@connectrpc/connect");
  const { createGrpcTransport } = await import("@connectrpc/connect-node");
  const { FederationService } = await import("../src/net/gen/safl/v1/federation_pb.js");
  const { PROTOCOL_VERSION } = await import("../src/net/protocol.js");
  const transport = createGrpcTransport({
    baseUrl: `http://127.0.0.1:${port}`,
    interceptors: [(next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    }],
  });
  const c = createClient(FederationService, transport);
  const j = await c.join({ protocolVersion: PROTOCOL_VERSION, partitionRequest: String(partition), device: { kind: "silent", threads: 1, platform: "test" } });
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      try {
        await c.heartbeat({ sessionId: j.sessionId });
        await c.pullTask({ sessionId: j.sessionId, waitMs: 1000 });
      } catch {
        if (!stopped) await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  void loop();
  return () => {
    stopped = true;
  };
}
