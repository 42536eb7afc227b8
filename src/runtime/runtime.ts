/**
 * @module runtime/runtime
 * The platform-free contract every execution backend implements: compile a graph (the values to
 * compute, by name) once for a batch size, then run it many times with host tensors. Backends:
 * onnxruntime-node (`runtime/node.ts`), the float64 reference interpreter (`runtime/reference.ts`).
 */
import { ErrorCode, SaflError } from "../errors.js";
import type { Value } from "../graph/node.js";
import type { IoSpec } from "../onnx/lower.js";
import { type HostData, type HostTensor, allocate } from "../tensor.js";

export interface CompileOptions {
  /** Concrete batch size for graphs with batch dimensions. */
  batch?: number;
  /** Inputs baked into the compiled model as constants (frozen weights), by input name. */
  initializers?: ReadonlyMap<string, HostTensor>;
  /** Identifies the content of `initializers` for the session cache (required with initializers). */
  initializersKey?: string;
}

/** A compiled graph. Feeds may be host tensors or bare typed arrays (the shape comes from the graph). */
export interface Executable {
  readonly inputs: readonly IoSpec[];
  readonly outputs: readonly IoSpec[];
  run(feeds: Readonly<Record<string, HostTensor | HostData>>): Promise<Record<string, HostTensor>>;
}

export interface Runtime {
  /** Number of intra-op threads the backend uses. */
  readonly threads: number;
  compile(outputs: Readonly<Record<string, Value>>, opts?: CompileOptions): Promise<Executable>;
  /** Frees every cached session. */
  release(): Promise<void>;
}

/**
 * Checks feeds against the compiled inputs (names, dtypes, element counts) and returns them as host
 * tensors with the compiled shapes. Every mismatch is reported by input name with both shapes.
 */
export function checkFeeds(specs: readonly IoSpec[], feeds: Readonly<Record<string, HostTensor | HostData>>): HostTensor[] {
  const known = new Set(specs.map((s) => s.name));
  for (const name of Object.keys(feeds)) {
    if (!known.has(name)) {
      throw new SaflError(ErrorCode.InvalidArgument, `unknown feed "${name}"; the graph's inputs are: ${[...known].join(", ") || "(none)"}`);
    }
  }
  return specs.map((spec) => {
    const feed = feeds[spec.name];
    if (feed === undefined) throw new SaflError(ErrorCode.InvalidArgument, `missing feed for input "${spec.name}" (${spec.dtype}[${spec.shape.join(",")}])`);
    const isTensor = !ArrayBuffer.isView(feed);
    const data = isTensor ? (feed as HostTensor).data : (feed as HostData);
    const expectedCtor = allocate(spec.dtype, 0).constructor;
    if (data.constructor !== expectedCtor) {
      throw new SaflError(ErrorCode.DType, `feed "${spec.name}": expected ${spec.dtype} (${expectedCtor.name}), got ${data.constructor.name}`);
    }
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (isTensor) {
      const t = feed as HostTensor;
      if (t.shape.length !== spec.shape.length || t.shape.some((d, i) => d !== spec.shape[i])) {
        throw new SaflError(ErrorCode.Shape, `feed "${spec.name}": expected shape [${spec.shape.join(",")}], got [${t.shape.join(",")}]`);
      }
    }
    if (data.length !== n) {
      throw new SaflError(ErrorCode.Shape, `feed "${spec.name}": expected ${n} values for shape [${spec.shape.join(",")}], got ${data.length}`);
    }
    return { dtype: spec.dtype, shape: spec.shape, data };
  });
}
