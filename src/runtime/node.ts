/**
 * @module runtime/node
 * The onnxruntime-node backend: lowers a graph to ONNX once per (graph, batch size, frozen
 * initializers) and caches the session, then runs it with typed arrays as feeds (wrapped, not
 * copied). The lowering, the cache and the executable are shared with the browser backend
 * (runtime/session-cache.ts); this file only sets up onnxruntime-node's CPU sessions. Platform
 * code: the only module that imports onnxruntime-node.
 */
import * as ort from "onnxruntime-node";
import { argError } from "../errors.js";
import type { Value } from "../graph/node.js";
import type { CompileOptions, Executable, Runtime } from "./runtime.js";
import { type OnnxGraph, OrtExecutable, type OrtTensorFactory, SessionCache, compileError } from "./session-cache.js";

export interface NodeRuntimeOptions {
  /** Intra-op threads (default: 2, or the SAFL_THREADS environment variable). */
  threads?: number;
  /** onnxruntime graph optimization level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Write onnxruntime's per-node JSON trace with this file prefix. */
  profilePrefix?: string;
}

const makeTensor: OrtTensorFactory<ort.Tensor> = (dtype, data, dims) => new ort.Tensor(dtype, data as never, dims as number[]);

/** A Runtime over onnxruntime-node's CPU execution provider. */
export class NodeRuntime implements Runtime {
  readonly threads: number;
  private readonly optimization: NonNullable<NodeRuntimeOptions["optimization"]>;
  private readonly profilePrefix: string | undefined;
  private readonly cache = new SessionCache((graph) => this.create(graph));

  constructor(opts: NodeRuntimeOptions = {}) {
    const threads = opts.threads ?? Number(process.env["SAFL_THREADS"] ?? 2);
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw argError(`threads must be an integer between 1 and 256, got ${threads}`);
    }
    this.threads = threads;
    this.optimization = opts.optimization ?? "all";
    this.profilePrefix = opts.profilePrefix;
  }

  compile(outputs: Readonly<Record<string, Value>>, opts: CompileOptions = {}): Promise<Executable> {
    return this.cache.get(outputs, opts);
  }

  private async create(graph: OnnxGraph): Promise<OrtExecutable<ort.Tensor>> {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: ["cpu"],
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: this.optimization,
      enableCpuMemArena: true,
      enableMemPattern: true,
      ...(this.profilePrefix ? { enableProfiling: true, profileFilePrefix: this.profilePrefix } : {}),
    };
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(graph.bytes, sessionOptions);
    } catch (e) {
      throw compileError(graph, e);
    }
    return new OrtExecutable(session, makeTensor, graph.inputs, graph.outputs);
  }

  async release(): Promise<void> {
    await this.cache.releaseAll();
  }
}
