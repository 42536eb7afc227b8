/**
 * @module runtime/node
 * The onnxruntime-node backend: lowers a graph to ONNX once per (graph, batch size, frozen
 * initializers) and caches the session, then runs it with typed arrays as feeds (wrapped, not
 * copied). Platform code: the only module that imports onnxruntime-node.
 */
import * as ort from "onnxruntime-node";
import { ErrorCode, SaflError, argError } from "../errors.js";
import type { Value } from "../graph/node.js";
import type { DType } from "../graph/shape.js";
import { lower } from "../onnx/lower.js";
import { encodeModel } from "../onnx/proto.js";
import { type CompileOptions, type Executable, type Runtime, checkFeeds } from "./runtime.js";
import type { HostData, HostTensor } from "../tensor.js";

export interface NodeRuntimeOptions {
  /** Intra-op threads (default: 2, or the SAFL_THREADS environment variable). */
  threads?: number;
  /** onnxruntime graph optimization level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Write onnxruntime's per-node JSON trace with this file prefix. */
  profilePrefix?: string;
}

const ortType: Record<DType, ort.Tensor.Type> = { float32: "float32", float64: "float64", int64: "int64", bool: "bool" };

class NodeExecutable implements Executable {
  constructor(
    private readonly session: ort.InferenceSession,
    readonly inputs: Executable["inputs"],
    readonly outputs: Executable["outputs"],
  ) {}

  async run(feeds: Readonly<Record<string, HostTensor | HostData>>): Promise<Record<string, HostTensor>> {
    const checked = checkFeeds(this.inputs, feeds);
    const ortFeeds: Record<string, ort.Tensor> = {};
    checked.forEach((t, i) => {
      ortFeeds[this.inputs[i]!.name] = new ort.Tensor(ortType[t.dtype], t.data as never, t.shape as number[]);
    });
    let result: ort.InferenceSession.ReturnType;
    try {
      result = await this.session.run(ortFeeds);
    } catch (e) {
      throw new SaflError(ErrorCode.Runtime, `onnxruntime failed to run the graph: ${(e as Error).message}`, { cause: e });
    }
    const out: Record<string, HostTensor> = {};
    for (const spec of this.outputs) {
      const t = result[spec.name]!;
      out[spec.name] = { dtype: spec.dtype, shape: [...t.dims], data: t.data as HostData };
    }
    return out;
  }

  /** Writes the profile (when profiling) and frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** A Runtime over onnxruntime-node's CPU execution provider. */
export class NodeRuntime implements Runtime {
  readonly threads: number;
  private readonly optimization: NonNullable<NodeRuntimeOptions["optimization"]>;
  private readonly profilePrefix: string | undefined;
  private readonly cache = new Map<string, Promise<NodeExecutable>>();

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
    if (opts.initializers && opts.initializersKey === undefined) {
      throw argError("compile: initializers need an initializersKey that identifies their content for the session cache");
    }
    const ids = Object.entries(outputs)
      .map(([k, v]) => `${k}=${v.node.id}:${v.index}`)
      .join(",");
    const key = `${ids}|b=${opts.batch ?? "-"}|i=${opts.initializersKey ?? ""}`;
    let hit = this.cache.get(key);
    if (!hit) {
      hit = this.create(outputs, opts);
      this.cache.set(key, hit);
      hit.catch(() => this.cache.delete(key));
    }
    return hit;
  }

  private async create(outputs: Readonly<Record<string, Value>>, opts: CompileOptions): Promise<NodeExecutable> {
    const lowered = lower(outputs, { batch: opts.batch, initializers: opts.initializers });
    const bytes = encodeModel(lowered.model);
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
      session = await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (e) {
      throw new SaflError(ErrorCode.Runtime, `onnxruntime could not compile the graph (${lowered.model.graph.nodes.length} nodes): ${(e as Error).message}`, {
        cause: e,
      });
    }
    return new NodeExecutable(session, lowered.inputs, lowered.outputs);
  }

  async release(): Promise<void> {
    const all = [...this.cache.values()];
    this.cache.clear();
    for (const p of all) {
      try {
        await (await p).release();
      } catch {
        // a session that failed to compile has nothing to free
      }
    }
  }
}
