/**
 * @module web/client
 * The federated client in a browser: the client loop of `safl client` (net/client-core) on the
 * browser's platform — the Connect protocol over fetch (connect-web, binary, HTTP/1.1 or 2), the
 * OPFS / IndexedDB cache (web/storage), onnxruntime-web (web/runtime), and data that is either the
 * run's demo partition the server hands to the token that plays it (`GET /api/demo-partition`) or
 * the user's own images, decoded in the page (web/pages/join). Nothing of the user's data leaves
 * the page: only the replies the protocol defines (adapter tensors, counts, metrics) are sent.
 *
 * A closed tab is a client that stopped answering: the server closes the round without it at its
 * deadline (a dropout) and samples it again once it rejoins; a reopened page joins again, reports
 * the backbone it still holds in its cache, and downloads nothing it already has.
 */
import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { type ImageDataset, parseClassList } from "../data/dataset.js";
import { argError, ErrorCode, SaflError } from "../errors.js";
import { parseSafetensors, toFloat32 } from "../io/safetensors.js";
import { parseVitConfig, withLabels } from "../nn/config.js";
import { type ClientCoreOptions, type ClientData, type ClientExit, type ClientPlatform, type DataRequest, runClientOn } from "../net/client-core.js";
import { BrowserBaseStore, BrowserObjectStore, type FileStore, openFileStore } from "./storage.js";
import { WebRuntime, type WebRuntimeOptions } from "./runtime.js";

/** The path of the demo data route (net/join-pages). */
const DEMO_PARTITION_PATH = "/api/demo-partition";

/** What the run's backbone takes, for a page that decodes the user's images. */
export interface WantedImages {
  readonly imageSize: number;
  readonly channels: number;
  readonly normalization?: { readonly mean: readonly number[]; readonly std: readonly number[] };
  /** The run's class ids (data.classes), when it names them: label k is class `classes[k]`. */
  readonly classes?: readonly number[];
}

/** A user's own labelled images, already decoded and normalized to the backbone's input. */
export interface OwnImages {
  readonly train: ImageDataset;
  readonly test?: ImageDataset;
}

export interface BrowserClientOptions extends Omit<ClientCoreOptions, "identities"> {
  /** The bearer token (from `safl token create`); the client's id is the token's id. */
  readonly token: string;
  /** Play this demo partition of the run (the server sends its examples). */
  readonly partition?: number;
  /** Or train on the user's own images (see `decodeImages` in web/images). */
  readonly own?: OwnImages | ((wanted: WantedImages) => Promise<OwnImages>);
  /** onnxruntime-web settings (threads default to the device's when the page is cross-origin isolated). */
  readonly runtime?: WebRuntimeOptions;
  /** Where the cache lives (default: OPFS, else IndexedDB, else memory). */
  readonly files?: FileStore;
}

interface BrowserGlobals {
  navigator?: { userAgent?: string; hardwareConcurrency?: number };
  location?: { origin?: string };
}

/** The dataset a demo-partition file holds under `prefix` ("train" or "test"). */
function datasetOf(file: ReturnType<typeof parseSafetensors>, prefix: string, classes: readonly number[], name: string): ImageDataset | undefined {
  const px = file.tensors.get(`${prefix}.pixel_values`);
  const lb = file.tensors.get(`${prefix}.labels`);
  if (!px || !lb) return undefined;
  const [count, channels, height, width] = px.shape;
  if (px.shape.length !== 4 || lb.shape.length !== 1 || lb.shape[0] !== count) {
    throw new SaflError(ErrorCode.Io, `${name}: ${prefix} tensors have shapes [${px.shape}] and [${lb.shape}], expected [N,C,H,W] and [N]`);
  }
  const labels = Int32Array.from(toFloat32(lb, `${prefix}.labels`));
  return { name: `${name}/${prefix}`, images: toFloat32(px, `${prefix}.pixel_values`), labels, count: count!, channels: channels!, height: height!, width: width!, classes };
}

class BrowserPlatform implements ClientPlatform {
  readonly deviceKind = "browser";
  readonly software = "sa-fedlora web";
  readonly platform: string;
  readonly threads: number;
  objects!: BrowserObjectStore;
  private files!: FileStore;
  private runtimeValue: WebRuntime | undefined;

  constructor(private readonly opts: BrowserClientOptions) {
    const g = globalThis as unknown as BrowserGlobals;
    this.platform = g.navigator?.userAgent ?? "browser";
    this.runtimeValue = undefined;
    this.threads = new WebRuntime(opts.runtime ?? {}).threads;
  }

  async open(): Promise<void> {
    this.files = this.opts.files ?? (await openFileStore());
    this.objects = new BrowserObjectStore(this.files);
  }

  get storageKind(): string {
    return this.files.kind;
  }

  transport(interceptors: Interceptor[]) {
    return createConnectTransport({ baseUrl: this.opts.server, useBinaryFormat: true, interceptors });
  }

  loadRecord(name: string): Promise<string | undefined> {
    return this.files.get(`records/${name}.json`).then((b) => (b ? new TextDecoder().decode(b) : undefined));
  }

  saveRecord(name: string, text: string): Promise<void> {
    return this.files.put(`records/${name}.json`, new TextEncoder().encode(text));
  }

  baseStore(runId: string, backboneSha256: string, pretrained: ReadonlyMap<string, Float32Array>, warn: (message: string) => void): Promise<BrowserBaseStore> {
    return BrowserBaseStore.open(this.files, runId, backboneSha256, pretrained, warn);
  }

  runtime(): WebRuntime {
    this.runtimeValue ??= new WebRuntime(this.opts.runtime ?? {});
    return this.runtimeValue;
  }

  async data(r: DataRequest): Promise<ClientData> {
    if (r.partition !== undefined) return this.demoPartition(r);
    const own = this.opts.own;
    if (!own) throw argError("this client has no data: choose images, or open the page with a demo partition (?partition=I)");
    const cfg = r.backbone.config;
    const source = (cfg as Record<string, unknown>)["safl_source"] as { normalization?: { mean: number[]; std: number[] } | null } | undefined;
    const wanted: WantedImages = {
      imageSize: cfg.image_size,
      channels: cfg.num_channels,
      ...(source?.normalization ? { normalization: source.normalization } : {}),
      ...(r.cfg.data.classes ? { classes: parseClassList(r.cfg.data.classes) } : {}),
    };
    const images = typeof own === "function" ? await own(wanted) : own;
    const t = images.train;
    if (t.channels !== cfg.num_channels || t.height !== cfg.image_size || t.width !== cfg.image_size) {
      throw new SaflError(ErrorCode.Shape, `the images are ${t.channels}x${t.height}x${t.width}, but the run's backbone expects ${cfg.num_channels}x${cfg.image_size}x${cfg.image_size}`);
    }
    const config = withLabels(cfg, t.classes.length, t.classNames);
    return { config, train: t, ...(images.test ? { test: images.test } : {}) };
  }

  private async demoPartition(r: DataRequest): Promise<ClientData> {
    const url = new URL(DEMO_PARTITION_PATH, this.opts.server).href;
    const res = await fetch(url, { headers: { authorization: `Bearer ${r.token}` } });
    if (!res.ok) {
      let why = `HTTP ${res.status}`;
      try {
        why = ((await res.json()) as { error?: string }).error ?? why;
      } catch {
        // Not JSON: keep the status.
      }
      throw new SaflError(ErrorCode.Io, `the server did not send partition ${r.partition}'s data: ${why}`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const file = parseSafetensors(bytes, "demo partition");
    const meta = file.metadata ?? {};
    const config = parseVitConfig(JSON.parse(meta["safl.config"] ?? "null"), "the demo partition's model config");
    const classes = JSON.parse(meta["safl.classes"] ?? "[]") as number[];
    const name = `${meta["safl.dataset"] ?? "demo"}#${r.partition}`;
    const train = datasetOf(file, "train", classes, name);
    if (!train) throw new SaflError(ErrorCode.Io, "the demo partition file holds no train.pixel_values / train.labels");
    const test = datasetOf(file, "test", classes, name);
    return { config, train, ...(test ? { test } : {}) };
  }

  private lastYield = 0;

  /**
   * Lets the page run between training steps, at most every 50 ms: the steps chain promises, and
   * without a task boundary the page would not paint its progress, run its timers or take clicks.
   * A message to a channel of our own is a task without setTimeout's 4 ms clamping.
   */
  afterStep(): Promise<void> | undefined {
    const now = performance.now();
    if (now - this.lastYield < 50 || typeof MessageChannel === "undefined") return undefined;
    this.lastYield = now;
    return new Promise((resolve) => {
      const ch = new MessageChannel();
      const port = ch.port1 as unknown as { onmessage: (() => void) | null; close(): void };
      port.onmessage = () => {
        port.close();
        resolve();
      };
      ch.port2.postMessage(0);
    });
  }

  log(line: string): void {
    console.log(line);
  }

  out(line: string): void {
    console.log(line);
  }

  async close(): Promise<void> {
    await this.runtimeValue?.release();
  }
}

/** What `runBrowserClient` reports besides the exit: where the cache lives. */
export interface BrowserClientExit extends ClientExit {
  readonly storage: string;
}

/**
 * Joins the run at `opts.server` with one token and contributes until the run finishes, the
 * signal aborts (the page is leaving), or it cannot go on; `opts.onEvent` receives every progress
 * event ("joined", "backbone", "step", "task", "retry", "finished", "exit").
 */
export async function runBrowserClient(opts: BrowserClientOptions): Promise<BrowserClientExit> {
  const server = opts.server !== "" ? opts.server : ((globalThis as unknown as BrowserGlobals).location?.origin ?? "");
  const { token, partition, ...rest } = opts;
  const platform = new BrowserPlatform({ ...opts, server });
  await platform.open();
  // A page on loopback or with TLS is a secure context; plain http elsewhere would expose the token.
  const insecure = opts.insecure ?? /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(new URL(server).origin);
  const exit = await runClientOn(platform, { ...rest, server, insecure, identities: [{ token, ...(partition !== undefined ? { partition } : {}) }] });
  return { ...exit, storage: platform.storageKind };
}
