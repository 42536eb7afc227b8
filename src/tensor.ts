/**
 * @module tensor
 * Host tensors: a dtype, a concrete shape and a typed array, as fed to and fetched from a runtime.
 * Platform-free, so the same type serves onnxruntime-node, onnxruntime-web and the reference
 * interpreter.
 */
import { ErrorCode, SaflError } from "./errors.js";
import type { DType } from "./graph/shape.js";

export type HostData = Float32Array | Float64Array | BigInt64Array | Uint8Array;

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: HostData;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The typed-array constructor for a dtype. */
export function allocate(dtype: DType, n: number): HostData {
  switch (dtype) {
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int64":
      return new BigInt64Array(n);
    case "bool":
      return new Uint8Array(n);
  }
}

/** Checks that `data` has the array type of `dtype` and the element count of `shape`. */
export function tensor(dtype: DType, shape: readonly number[], data: HostData, what = "tensor"): HostTensor {
  const expected = allocate(dtype, 0).constructor;
  if (data.constructor !== expected) {
    throw new SaflError(ErrorCode.DType, `${what}: ${dtype} data must be a ${expected.name}, got ${data.constructor.name}`);
  }
  if (data.length !== sizeOf(shape)) {
    throw new SaflError(ErrorCode.Shape, `${what}: ${data.length} values do not fill shape [${shape.join(",")}] (${sizeOf(shape)} expected)`);
  }
  return { dtype, shape: [...shape], data };
}

export const f32 = (data: Float32Array | readonly number[], shape: readonly number[]): HostTensor =>
  tensor("float32", shape, data instanceof Float32Array ? data : Float32Array.from(data));
export const f64 = (data: Float64Array | readonly number[], shape: readonly number[]): HostTensor =>
  tensor("float64", shape, data instanceof Float64Array ? data : Float64Array.from(data));
export const i64 = (data: BigInt64Array | readonly number[], shape: readonly number[]): HostTensor =>
  tensor("int64", shape, data instanceof BigInt64Array ? data : BigInt64Array.from(data.map((v) => BigInt(v))));
