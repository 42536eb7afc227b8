/**
 * @module web/runtime
 * The onnxruntime-web backend, for browsers: the same compile-once, run-many contract as
 * runtime/node.ts, with the lowering, session cache and executable shared with it
 * (runtime/session-cache.ts). Runs onnxruntime's WebAssembly build (always SIMD) with worker
 * threads when the page is cross-origin isolated (COOP/COEP headers, see docs/browser.md) and on one
 * thread otherwise; WebGPU can be asked for and falls back to WebAssembly where the browser has no
 * GPU adapter or the session cannot be created on it.
 *
 * onnxruntime-web comes in builds, and the runtime loads one per page, lazily, at its first compile:
 * the plain WebAssembly build (`onnxruntime-web/wasm`, a 14 MB binary) unless WebGPU is asked for
 * and an adapter exists, then the JSEP build (`onnxruntime-web`, 28 MB, WebGPU and WebAssembly).
 * The plain build is the default: half the download, a quicker start and WebAssembly steps 10-25%
 * faster than the JSEP build's in our runs (bench/browser-step.ts --jsep, docs/browser.md). Their `.mjs`/`.wasm` files are loaded from `wasmPaths`, by default the `ort/`
 * folder beside the bundle (never from a CDN). Platform code: the only module that imports onnxruntime-web.
 */
import type * as OrtModule from "onnxruntime-web";
import { ErrorCode, SaflError, argError } from "../errors.js";
import type { Value } from "../graph/node.js";
import type { CompileOptions, Executable, Runtime } from "../runtime/runtime.js";
import { type OnnxGraph, OrtExecutable, type OrtTensorFactory, SessionCache, compileError } from "../runtime/session-cache.js";

export type WebExecutionProvider = "webgpu" | "wasm";
/** Which onnxruntime-web build a page runs: "wasm" (WebAssembly only) or "jsep" (WebGPU and WebAssembly). */
export type OrtBuild = "wasm" | "jsep";

export interface WebRuntimeOptions {
  /**
   * WebAssembly threads. Default: `navigator.hardwareConcurrency` in a cross-origin isolated page,
   * else 1. Outside cross-origin isolation the browser offers no shared memory, so the runtime runs
   * on one thread whatever is asked (`threads` then reads 1).
   */
  threads?: number;
  /**
   * Execution providers in order of preference (default `["wasm"]`). `"webgpu"` is used when the
   * browser gives a GPU adapter and onnxruntime can create the session on it; otherwise the runtime
   * falls back to WebAssembly. Ops WebGPU lacks run on WebAssembly inside a WebGPU session.
   */
  executionProviders?: readonly WebExecutionProvider[];
  /**
   * URL prefix (ending in "/") of onnxruntime-web's `ort-wasm-simd-threaded{,.jsep}.{mjs,wasm}`.
   * Default: the `ort/` folder beside the bundle (`dist/web/ort/`), resolved from the bundle's URL.
   * Set it when the bundle is re-bundled or the files are served from elsewhere.
   */
  wasmPaths?: string;
  /** onnxruntime graph optimization level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /**
   * Which onnxruntime-web build to load (see the module comment). Default: "jsep" when WebGPU is
   * asked for first and an adapter exists, else "wasm". "jsep" without WebGPU runs its WebAssembly
   * provider; "wasm" with WebGPU asked for falls back to WebAssembly, saying so.
   */
  build?: OrtBuild;
}

/** What a runtime runs on, known after its first compile (see {@link WebRuntime.info}). */
export interface WebRuntimeInfo {
  readonly crossOriginIsolated: boolean;
  /** Threads onnxruntime-web's WebAssembly backend runs with (its own reading, after start-up). */
  readonly threads: number;
  /** The provider sessions are created on: "webgpu" only when a WebGPU session was created. */
  readonly executionProvider: WebExecutionProvider;
  /** Why "webgpu" was asked for and not used (undefined when it was used or not asked for). */
  readonly webgpuFallback: string | undefined;
  /** The onnxruntime-web build the page loaded. */
  readonly build: OrtBuild;
  readonly wasmPaths: string;
}

/** The slice of the browser globals this module reads (typed here, so no DOM library is needed). */
interface BrowserGlobals {
  crossOriginIsolated?: boolean;
  navigator?: { hardwareConcurrency?: number; gpu?: { requestAdapter(): Promise<unknown> } };
}
const browser = globalThis as unknown as BrowserGlobals;

/** Whether this page may use WebAssembly threads (shared memory needs cross-origin isolation). */
export function isCrossOriginIsolated(): boolean {
  return browser.crossOriginIsolated === true && typeof SharedArrayBuffer !== "undefined";
}

type Ort = typeof OrtModule;

/**
 * onnxruntime-web's settings are global to the page and fixed when its backend starts (on the
 * first session). The first runtime to compile loads a build and sets them; a later runtime that
 * asks for another build or other settings is refused rather than silently run with the first one's.
 */
let started: { build: OrtBuild; threads: number; wasmPaths: string; ort: Promise<Ort> } | undefined;

/** Loads a build; each is a separate chunk of the bundle, fetched only when a page asks for it. */
const loadBuild = (build: OrtBuild): Promise<Ort> => (build === "jsep" ? import("onnxruntime-web") : import("onnxruntime-web/wasm"));

const defaultWasmPaths = (): string => new URL("./ort/", import.meta.url).href;

interface Picked {
  readonly provider: WebExecutionProvider;
  readonly fallback: string | undefined;
}

/** A Runtime over onnxruntime-web (WebAssembly, optionally WebGPU). */
export class WebRuntime implements Runtime {
  readonly threads: number;
  readonly wasmPaths: string;
  private readonly wanted: readonly WebExecutionProvider[];
  private readonly optimization: NonNullable<WebRuntimeOptions["optimization"]>;
  private readonly build: OrtBuild | undefined;
  private readonly cache = new SessionCache((graph) => this.create(graph));
  private picked: Promise<Picked> | undefined;
  private resolved: (Picked & { ort: Ort }) | undefined;

  constructor(opts: WebRuntimeOptions = {}) {
    const requested = opts.threads ?? browser.navigator?.hardwareConcurrency ?? 1;
    if (!Number.isInteger(requested) || requested < 1 || requested > 256) {
      throw argError(`threads must be an integer between 1 and 256, got ${requested}`);
    }
    this.threads = isCrossOriginIsolated() ? requested : 1;
    const eps = opts.executionProviders ?? ["wasm"];
    if (eps.length === 0 || eps.some((e) => e !== "webgpu" && e !== "wasm")) {
      throw argError(`executionProviders must be a non-empty list of "webgpu" and "wasm", got ${JSON.stringify(eps)}`);
    }
    this.wanted = eps;
    this.wasmPaths = opts.wasmPaths ?? defaultWasmPaths();
    this.optimization = opts.optimization ?? "all";
    if (opts.build !== undefined && opts.build !== "wasm" && opts.build !== "jsep") throw argError(`build must be "wasm" or "jsep", got ${JSON.stringify(opts.build)}`);
    this.build = opts.build;
  }

  compile(outputs: Readonly<Record<string, Value>>, opts: CompileOptions = {}): Promise<Executable> {
    return this.cache.get(outputs, opts);
  }

  /** What the runtime runs on; undefined before its first compile has started the backend. */
  info(): WebRuntimeInfo | undefined {
    const r = this.resolved;
    if (!r || !started) return undefined;
    return {
      crossOriginIsolated: isCrossOriginIsolated(),
      threads: r.ort.env.wasm.numThreads ?? this.threads,
      executionProvider: r.provider,
      webgpuFallback: r.fallback,
      build: started.build,
      wasmPaths: this.wasmPaths,
    };
  }

  /** Picks the provider once: WebGPU when asked for first and an adapter exists, else WebAssembly. */
  private pickProvider(): Promise<Picked> {
    this.picked ??= (async (): Promise<Picked> => {
      if (this.wanted[0] !== "webgpu") return { provider: "wasm", fallback: undefined };
      if (this.build === "wasm") return { provider: "wasm", fallback: 'the "wasm" build of onnxruntime-web has no WebGPU' };
      const gpu = browser.navigator?.gpu;
      if (!gpu) return { provider: "wasm", fallback: "this browser has no WebGPU (navigator.gpu is undefined)" };
      let adapter: unknown;
      try {
        adapter = await gpu.requestAdapter();
      } catch (e) {
        return { provider: "wasm", fallback: `navigator.gpu.requestAdapter() failed: ${(e as Error).message}` };
      }
      if (!adapter) return { provider: "wasm", fallback: "navigator.gpu.requestAdapter() gave no adapter" };
      return { provider: "webgpu", fallback: undefined };
    })();
    return this.picked;
  }

  /** Loads the build the provider needs and sets the page-wide settings, or checks that they are ours. */
  private startBackend(build: OrtBuild): Promise<Ort> {
    if (started) {
      if (started.build !== build || started.threads !== this.threads || started.wasmPaths !== this.wasmPaths) {
        throw new SaflError(
          ErrorCode.InvalidArgument,
          `onnxruntime-web already runs in this page (${started.build} build, ${started.threads} thread(s), wasmPaths ${started.wasmPaths}); ` +
            `a second runtime asked for the ${build} build, ${this.threads} thread(s) and ${this.wasmPaths} (these settings are page-wide: use one runtime, or a page per setting)`,
        );
      }
      return started.ort;
    }
    const ort = loadBuild(build).then((m) => {
      m.env.wasm.numThreads = this.threads;
      m.env.wasm.wasmPaths = this.wasmPaths;
      m.env.wasm.proxy = false;
      return m;
    });
    started = { build, threads: this.threads, wasmPaths: this.wasmPaths, ort };
    // A build that failed to load (a missing chunk) is not remembered: the next compile tries again.
    ort.catch(() => {
      if (started?.ort === ort) started = undefined;
    });
    return ort;
  }

  private sessionOptions(provider: WebExecutionProvider): OrtModule.InferenceSession.SessionOptions {
    return {
      executionProviders: provider === "webgpu" ? ["webgpu", "wasm"] : ["wasm"],
      executionMode: "sequential",
      graphOptimizationLevel: this.optimization,
      enableCpuMemArena: true,
      enableMemPattern: true,
    };
  }

  private async create(graph: OnnxGraph): Promise<OrtExecutable<OrtModule.Tensor>> {
    let picked = await this.pickProvider();
    const ort = await this.startBackend(this.build ?? (picked.provider === "webgpu" ? "jsep" : "wasm"));
    let session: OrtModule.InferenceSession | undefined;
    if (picked.provider === "webgpu") {
      try {
        session = await ort.InferenceSession.create(graph.bytes, this.sessionOptions("webgpu"));
      } catch (e) {
        // Later compiles of this runtime go straight to WebAssembly (in the same build) instead of failing on WebGPU again.
        picked = { provider: "wasm", fallback: `onnxruntime could not create a WebGPU session: ${(e as Error).message}` };
        this.picked = Promise.resolve(picked);
      }
    }
    if (!session) {
      try {
        session = await ort.InferenceSession.create(graph.bytes, this.sessionOptions("wasm"));
      } catch (e) {
        throw compileError(graph, e);
      }
    }
    this.resolved = { ...picked, ort };
    const makeTensor: OrtTensorFactory<OrtModule.Tensor> = (dtype, data, dims) => new ort.Tensor(dtype, data as never, dims as number[]);
    return new OrtExecutable(session, makeTensor, graph.inputs, graph.outputs);
  }

  async release(): Promise<void> {
    await this.cache.releaseAll();
  }
}
