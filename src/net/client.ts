/**
 * @module net/client
 * `safl client` on Node: the platform the client loop (net/client-core) runs on here — gRPC over
 * HTTP/2 (connect-node, one connection shared by the identities, TLS with an optional private CA and
 * client certificate), the disk cache (net/client-cache: objects and frozen bases under
 * `$XDG_CACHE_HOME/safl`), onnxruntime-node, and data from the run's own dataset (a demo partition,
 * computed as `safl simulate` computes it) or from a directory (`--data-dir`).
 */
import { readFileSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { arch, platform } from "node:os";
import { join } from "node:path";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { subset } from "../data/dataset.js";
import { checkImagesFit, loadTask, type Task as DataTask, withLabels } from "../data/task.js";
import { argError } from "../errors.js";
import { packageRoot } from "../io/paths.js";
import type { VitConfig } from "../nn/config.js";
import { NodeRuntime } from "../runtime/node.js";
import type { Runtime } from "../runtime/runtime.js";
import type { VirtualClient } from "../sim/memory-grid.js";
import { loadRunTask, partitionClients } from "../sim/simulate.js";
import {
  backboneNormalization,
  type ClientCoreOptions,
  type ClientData,
  type ClientExit,
  type ClientPlatform,
  checkCoreOptions,
  type DataRequest,
  runClientOn,
} from "./client-core.js";
import { DiskBaseStore, defaultCacheDir, ObjectCache } from "./client-cache.js";
import { runDirName } from "./object-transfer.js";
import { MAX_MESSAGE_BYTES } from "./protocol.js";

export { CLIENT_EXIT_CODES, type ClientExit, type ClientExitReason, type ClientIdentity, summaryLine, tokenLabel } from "./client-core.js";

export interface ClientOptions extends ClientCoreOptions {
  /** Train on this dataset (a directory or a dataset name, data/load) instead of a demo partition. */
  readonly dataDir?: string;
  /** PEM certificate(s) to trust for an https server (default: the system's CAs). */
  readonly ca?: string | Uint8Array;
  /** PEM client certificate (chain) and its private key, for a server that requires mutual TLS. */
  readonly cert?: string | Uint8Array;
  readonly key?: string | Uint8Array;
  /** Cache directory (default `$XDG_CACHE_HOME/safl` or `~/.cache/safl`). */
  readonly cacheDir?: string;
  /** onnxruntime intra-op threads when the client makes its own runtime (default 1). */
  readonly threads?: number;
  /** Use this runtime (not released) instead of making one. */
  readonly runtime?: Runtime;
}

function softwareVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

/** The Node platform of one `runClient` call. */
class NodePlatform implements ClientPlatform {
  readonly deviceKind = "node";
  readonly platform = `${platform()} ${arch()} node ${process.version}`;
  readonly software = `sa-fedlora/${softwareVersion()} node`;
  readonly threads: number;
  readonly objects: ObjectCache;
  private readonly cacheDir: string;
  private readonly manager: Http2SessionManager;
  private runtimeValue: Runtime | undefined;
  /** Demo partitions: the run's task and its virtual clients, computed once per (backbone, run config). */
  private readonly tasks = new Map<string, Promise<{ task: DataTask; config: VitConfig; clients: readonly VirtualClient[] }>>();
  private own: Promise<ClientData> | undefined;

  constructor(private readonly opts: ClientOptions) {
    this.cacheDir = opts.cacheDir ?? defaultCacheDir();
    this.objects = new ObjectCache(join(this.cacheDir, "objects"));
    this.threads = opts.threads ?? 1;
    this.runtimeValue = opts.runtime;
    const pem = (x: string | Uint8Array | undefined) => (x === undefined || typeof x === "string" ? x : Buffer.from(x));
    const tls = { ca: pem(opts.ca), cert: pem(opts.cert), key: pem(opts.key) };
    this.manager = new Http2SessionManager(opts.server, { pingIntervalMs: 30_000, pingTimeoutMs: 15_000 }, Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)));
  }

  transport(interceptors: Parameters<ClientPlatform["transport"]>[0]) {
    return createGrpcTransport({ baseUrl: this.opts.server, sessionManager: this.manager, interceptors, readMaxBytes: MAX_MESSAGE_BYTES, writeMaxBytes: MAX_MESSAGE_BYTES });
  }

  private recordFile(name: string): string {
    return join(this.cacheDir, "servers", `${name.replace(/^server-/, "")}.json`);
  }

  async loadRecord(name: string): Promise<string | undefined> {
    try {
      return await readFile(this.recordFile(name), "utf8");
    } catch {
      return undefined;
    }
  }

  async saveRecord(name: string, text: string): Promise<void> {
    const file = this.recordFile(name);
    await mkdir(join(this.cacheDir, "servers"), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, text);
    await rename(tmp, file);
  }

  async baseStore(runId: string, _backboneSha256: string, pretrained: ReadonlyMap<string, Float32Array>, warn: (message: string) => void): Promise<DiskBaseStore> {
    return new DiskBaseStore(join(this.cacheDir, "runs", runDirName(runId)), pretrained, warn);
  }

  runtime(): Runtime {
    this.runtimeValue ??= new NodeRuntime({ threads: this.threads });
    return this.runtimeValue;
  }

  async data(r: DataRequest): Promise<ClientData> {
    const name = `the backbone ${r.backbone.sha256.slice(0, 12)}…`;
    if (r.partition === undefined) {
      if (this.opts.dataDir === undefined) throw argError("this client has no data: pass --partition I (a demo partition of the run) or --data-dir D (its own data)");
      const dataDir = this.opts.dataDir;
      this.own ??= (async () => {
        const normalization = backboneNormalization(r.backbone.config);
        const task = await loadTask(dataDir, { ...(r.cfg.data.classes ? { classes: r.cfg.data.classes } : {}), ...(normalization ? { normalization } : {}) });
        const config = withLabels(r.backbone.config, task.classes.length, task.classNames);
        checkImagesFit(task, config, name);
        return { config, train: task.train, ...(task.test.count > 0 ? { test: task.test } : {}) };
      })();
      this.own.catch(() => (this.own = undefined));
      return this.own;
    }
    if (this.opts.dataDir !== undefined) throw argError("this client brings its own data (--data-dir) but asked for a partition");
    const key = `${r.backbone.sha256}\n${r.runConfigJson}`;
    let p = this.tasks.get(key);
    if (!p) {
      p = loadRunTask(r.cfg, r.backbone.config, name).then(({ task, config }) => ({ task, config, clients: partitionClients(r.cfg, task).clients }));
      this.tasks.set(key, p);
      p.catch(() => this.tasks.delete(key));
    }
    const { task, config, clients } = await p;
    const vc = clients[r.partition]!;
    // Local test shares index the training split, as in the simulation.
    return { config, train: subset(task.train, vc.train), ...(vc.test ? { test: subset(task.train, vc.test) } : {}) };
  }

  log(line: string): void {
    process.stderr.write(`${line}\n`);
  }

  out(line: string): void {
    process.stdout.write(`${line}\n`);
  }

  async close(): Promise<void> {
    try {
      if (this.opts.runtime === undefined && this.runtimeValue) await this.runtimeValue.release();
    } finally {
      this.manager.abort();
    }
  }
}

/** Checks options a command line can get wrong, before anything is started. */
function checkOptions(opts: ClientOptions): void {
  checkCoreOptions(opts);
  for (const id of opts.identities) {
    if (id.partition === undefined && opts.dataDir === undefined) throw argError("this client has no data: pass --partition I (a demo partition of the run) or --data-dir D (its own data)");
    if (id.partition !== undefined && opts.dataDir !== undefined) throw argError("--partition and --data-dir exclude each other: a client plays a demo partition or brings its own data");
  }
}

/**
 * Runs the client until the run finishes (code 0), it is stopped through `opts.signal` (it leaves
 * the run; code 0), or it cannot go on (see CLIENT_EXIT_CODES). Progress goes to `opts.log`, one
 * line per task; the run's summary to `opts.out`. Throws only for invalid options.
 */
export async function runClient(opts: ClientOptions): Promise<ClientExit> {
  checkOptions(opts);
  return runClientOn(new NodePlatform(opts), opts);
}
