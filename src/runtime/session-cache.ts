/**
 * @module runtime/session-cache
 * What every onnxruntime backend (onnxruntime-node in runtime/node.ts, onnxruntime-web in
 * web/runtime.ts) shares, written against the small structural slice of onnxruntime's API that both
 * packages expose, so it imports neither: lowering a graph to ONNX bytes, one cached session per
 * (graph, batch size, baked initializers) whose failed compiles are forgotten, and the executable
 * that checks feeds, wraps them as onnxruntime tensors and returns host tensors. A backend only says
 * how to create a session from the bytes and how to make one of its tensors.
 */
import { ErrorCode, SaflError, argError } from "../errors.js";
import type { Value } from "../graph/node.js";
import type { DType } from "../graph/shape.js";
import { type IoSpec, lower } from "../onnx/lower.js";
import { encodeModel } from "../onnx/proto.js";
import type { HostData, HostTensor } from "../tensor.js";
import { type CompileOptions, type Executable, checkFeeds } from "./runtime.js";

/** A graph lowered for onnxruntime: the encoded ModelProto and its input and output specs. */
export interface OnnxGraph {
  readonly bytes: Uint8Array;
  readonly inputs: readonly IoSpec[];
  readonly outputs: readonly IoSpec[];
  /** ONNX nodes in the model (for error messages). */
  readonly nodeCount: number;
}

/** Lowers `outputs` for one batch size (and optional baked initializers) and encodes the model. */
export function lowerToOnnx(outputs: Readonly<Record<string, Value>>, opts: CompileOptions = {}): OnnxGraph {
  const lowered = lower(outputs, { batch: opts.batch, initializers: opts.initializers });
  return { bytes: encodeModel(lowered.model), inputs: lowered.inputs, outputs: lowered.outputs, nodeCount: lowered.model.graph.nodes.length };
}

/**
 * The cache key of a compile: the requested values (by node identity), the batch size and the
 * initializers' content key. Throws when initializers come without a key, since their content
 * could not then tell two compiles apart.
 */
export function compileKey(outputs: Readonly<Record<string, Value>>, opts: CompileOptions = {}): string {
  if (opts.initializers && opts.initializersKey === undefined) {
    throw argError("compile: initializers need an initializersKey that identifies their content for the session cache");
  }
  const ids = Object.entries(outputs)
    .map(([k, v]) => `${k}=${v.node.id}:${v.index}`)
    .join(",");
  return `${ids}|b=${opts.batch ?? "-"}|i=${opts.initializersKey ?? ""}`;
}

/** Anything the cache holds must be releasable. */
export interface Releasable {
  release(): Promise<void>;
}

/**
 * One compiled entry per compile key. Concurrent compiles of the same key share one promise; a
 * compile that fails is removed, so the next call tries again.
 */
export class SessionCache<E extends Releasable> {
  private readonly entries = new Map<string, Promise<E>>();

  constructor(private readonly create: (graph: OnnxGraph) => Promise<E>) {}

  get(outputs: Readonly<Record<string, Value>>, opts: CompileOptions = {}): Promise<E> {
    const key = compileKey(outputs, opts);
    let hit = this.entries.get(key);
    if (!hit) {
      // Lowering runs inside the promise: a graph that cannot be lowered rejects like a failed session.
      hit = Promise.resolve().then(() => this.create(lowerToOnnx(outputs, opts)));
      this.entries.set(key, hit);
      hit.catch(() => this.entries.delete(key));
    }
    return hit;
  }

  /** Number of cached (or compiling) entries. */
  get size(): number {
    return this.entries.size;
  }

  /** Forgets every entry and releases those that compiled. */
  async releaseAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const p of all) {
      try {
        await (await p).release();
      } catch {
        // a session that failed to compile has nothing to free
      }
    }
  }
}

/** The part of an onnxruntime tensor (node or web) read back from a run. */
export interface OrtTensorLike {
  readonly dims: readonly number[];
  readonly data: unknown;
}

/** The part of an onnxruntime InferenceSession (node or web) an executable uses. */
export interface OrtSessionLike<T> {
  run(feeds: Record<string, T>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}

/** Makes a backend tensor that wraps (does not copy) host data. Our dtype names are onnxruntime's. */
export type OrtTensorFactory<T> = (dtype: DType, data: HostData, dims: readonly number[]) => T;

/** An executable over one onnxruntime session: checked feeds in, host tensors with the compiled dtypes out. */
export class OrtExecutable<T> implements Executable, Releasable {
  constructor(
    private readonly session: OrtSessionLike<T>,
    private readonly makeTensor: OrtTensorFactory<T>,
    readonly inputs: readonly IoSpec[],
    readonly outputs: readonly IoSpec[],
  ) {}

  async run(feeds: Readonly<Record<string, HostTensor | HostData>>): Promise<Record<string, HostTensor>> {
    const checked = checkFeeds(this.inputs, feeds);
    const ortFeeds: Record<string, T> = {};
    checked.forEach((t, i) => {
      ortFeeds[this.inputs[i]!.name] = this.makeTensor(t.dtype, t.data, t.shape);
    });
    let result: Record<string, OrtTensorLike>;
    try {
      result = await this.session.run(ortFeeds);
    } catch (e) {
      throw new SaflError(ErrorCode.Runtime, `onnxruntime failed to run the graph: ${(e as Error).message}`, { cause: e });
    }
    const out: Record<string, HostTensor> = {};
    for (const spec of this.outputs) {
      const t = result[spec.name];
      if (!t) throw new SaflError(ErrorCode.Runtime, `onnxruntime returned no output "${spec.name}"`);
      out[spec.name] = { dtype: spec.dtype, shape: [...t.dims], data: t.data as HostData };
    }
    return out;
  }

  /** Writes the profile (when profiling) and frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Wraps a session-creation failure as the runtime error both backends report. */
export function compileError(graph: OnnxGraph, e: unknown): SaflError {
  return new SaflError(ErrorCode.Runtime, `onnxruntime could not compile the graph (${graph.nodeCount} nodes): ${(e as Error).message}`, { cause: e });
}
