/**
 * @module graph/ops
 * The closed operator set of the IR. Op names are ONNX operator names (plus the two source
 * pseudo-ops `Input` and `Constant`), and `OpAttrs` gives each op its exact attribute type, so every
 * per-op table (shape inference, gradients, ONNX lowering, the reference interpreter) is typed as
 * "one entry for every Op" and forgetting one is a compile error.
 */
import type { DType, Shape } from "./shape.js";

export enum Op {
  // sources
  Input = "Input",
  Constant = "Constant",
  // elementwise, unary
  Identity = "Identity",
  Neg = "Neg",
  Abs = "Abs",
  Sign = "Sign",
  Exp = "Exp",
  Log = "Log",
  Sqrt = "Sqrt",
  Tanh = "Tanh",
  Erf = "Erf",
  Gelu = "Gelu",
  Cast = "Cast",
  // elementwise, binary and ternary (numpy broadcasting)
  Add = "Add",
  Sub = "Sub",
  Mul = "Mul",
  Div = "Div",
  Pow = "Pow",
  Equal = "Equal",
  Greater = "Greater",
  Where = "Where",
  // products
  MatMul = "MatMul",
  Gemm = "Gemm",
  // reductions
  ReduceSum = "ReduceSum",
  ReduceMean = "ReduceMean",
  ReduceMax = "ReduceMax",
  // normalization
  Softmax = "Softmax",
  LogSoftmax = "LogSoftmax",
  LayerNormalization = "LayerNormalization",
  // movement
  Reshape = "Reshape",
  Transpose = "Transpose",
  Concat = "Concat",
  Split = "Split",
  Slice = "Slice",
  Pad = "Pad",
  Gather = "Gather",
  ScatterElements = "ScatterElements",
  Expand = "Expand",
}

/** Typed storage of a constant tensor. */
export type TensorData = Float32Array | Float64Array | BigInt64Array | Uint8Array;

type NoAttrs = Record<string, never>;

/** Attributes of every op. Shapes/axes are IR-level (already normalized where noted). */
export interface OpAttrs {
  [Op.Input]: { name: string; dtype: DType; shape: Shape };
  [Op.Constant]: { dtype: DType; shape: readonly number[]; data: TensorData };
  [Op.Identity]: NoAttrs;
  [Op.Neg]: NoAttrs;
  [Op.Abs]: NoAttrs;
  [Op.Sign]: NoAttrs;
  [Op.Exp]: NoAttrs;
  [Op.Log]: NoAttrs;
  [Op.Sqrt]: NoAttrs;
  [Op.Tanh]: NoAttrs;
  [Op.Erf]: NoAttrs;
  /** Exact (erf) GELU: x · Φ(x). */
  [Op.Gelu]: NoAttrs;
  [Op.Cast]: { to: DType };
  [Op.Add]: NoAttrs;
  [Op.Sub]: NoAttrs;
  [Op.Mul]: NoAttrs;
  [Op.Div]: NoAttrs;
  [Op.Pow]: NoAttrs;
  [Op.Equal]: NoAttrs;
  [Op.Greater]: NoAttrs;
  [Op.Where]: NoAttrs;
  [Op.MatMul]: NoAttrs;
  /** alpha · op(A) · op(B) + beta · C, A and B 2-D; C optional and broadcastable to the result. */
  [Op.Gemm]: { transA: boolean; transB: boolean; alpha: number; beta: number };
  /** `axes` are normalized (non-negative, sorted, unique). */
  [Op.ReduceSum]: { axes: readonly number[]; keepdims: boolean };
  [Op.ReduceMean]: { axes: readonly number[]; keepdims: boolean };
  [Op.ReduceMax]: { axes: readonly number[]; keepdims: boolean };
  [Op.Softmax]: { axis: number };
  [Op.LogSoftmax]: { axis: number };
  /** Normalizes over dims axis..rank-1. Outputs: Y, Mean, InvStdDev (the last two keep rank, size 1 on normalized dims). */
  [Op.LayerNormalization]: { axis: number; epsilon: number };
  /** `shape` is fully resolved (no -1 or 0). */
  [Op.Reshape]: { shape: Shape };
  [Op.Transpose]: { perm: readonly number[] };
  [Op.Concat]: { axis: number };
  /** Splits into consecutive parts of the given sizes along `axis` (one output per part). */
  [Op.Split]: { axis: number; sizes: readonly number[] };
  /** One entry per sliced axis; ends are clamped, steps positive. */
  [Op.Slice]: { axes: readonly number[]; starts: readonly number[]; ends: readonly number[]; steps: readonly number[] };
  /** Constant-mode zero padding: `pads` = [begin_0..begin_{r-1}, end_0..end_{r-1}], non-negative. */
  [Op.Pad]: { pads: readonly number[] };
  [Op.Gather]: { axis: number };
  /** data, indices (same shape as updates), updates; reduction "add" accumulates duplicates. */
  [Op.ScatterElements]: { axis: number; reduction: "none" | "add" };
  [Op.Expand]: { shape: Shape };
}

export const unaryOps = [Op.Identity, Op.Neg, Op.Abs, Op.Sign, Op.Exp, Op.Log, Op.Sqrt, Op.Tanh, Op.Erf, Op.Gelu] as const;
export const binaryOps = [Op.Add, Op.Sub, Op.Mul, Op.Div, Op.Pow, Op.Equal, Op.Greater] as const;
export const reduceOps = [Op.ReduceSum, Op.ReduceMean, Op.ReduceMax] as const;
