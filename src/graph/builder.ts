/**
 * @module graph/builder
 * Array-code functions that build graph nodes: `add(x, y)`, `matmul(a, b)`, `layerNorm(x, g, b)`.
 * Numbers are accepted wherever a tensor is and become scalar constants of the other operand's
 * dtype. Axes may be negative here; they are normalized before a node is made. Composite helpers
 * (linear, crossEntropy, patchify) are built from the primitives so autodiff and lowering only ever
 * see the closed op set.
 *
 * @example
 * const x = input("x", "float32", [BATCH, 4]);
 * const w = input("w", "float32", [3, 4]);
 * const y = softmax(linear(x, w), -1);
 */
import { argError, shapeError } from "../errors.js";
import { type Value, apply, applyMulti } from "./node.js";
import { Op, type TensorData } from "./ops.js";
import { type Dim, type DType, type Shape, isBatchDim, normAxis, numel, shapeStr } from "./shape.js";

export type ValueLike = Value | number;

// ---------------------------------------------------------------- sources

/** A named graph input (parameters are inputs too: they are fed on every run). */
export function input(name: string, dtype: DType, shape: Shape): Value {
  if (!/^[A-Za-z0-9_.:/-]+$/.test(name)) throw argError(`input name "${name}" may only contain letters, digits and _ . : / -`);
  return apply(Op.Input, [], { name, dtype, shape: [...shape] });
}

/** A constant tensor (copied). */
export function constant(data: TensorData | readonly number[], shape: readonly number[], dtype: DType = "float32"): Value {
  let arr: TensorData;
  if (dtype === "float32") arr = Float32Array.from(data as ArrayLike<number>);
  else if (dtype === "float64") arr = Float64Array.from(data as ArrayLike<number>);
  else if (dtype === "int64") arr = data instanceof BigInt64Array ? data.slice() : BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(v)));
  else arr = Uint8Array.from(data as ArrayLike<number>, (v) => (v ? 1 : 0));
  return apply(Op.Constant, [], { dtype, shape: [...shape], data: arr });
}

/** A scalar constant. */
export function scalar(value: number, dtype: DType = "float32"): Value {
  return constant([value], [], dtype);
}

function lift(v: ValueLike, like: Value): Value {
  return typeof v === "number" ? scalar(v, like.dtype) : v;
}

function lift2(a: ValueLike, b: ValueLike): [Value, Value] {
  if (typeof a === "number" && typeof b === "number") return [scalar(a), scalar(b)];
  if (typeof a === "number") return [lift(a, b as Value), b as Value];
  if (typeof b === "number") return [a as Value, lift(b, a as Value)];
  return [a as Value, b as Value];
}

// ---------------------------------------------------------------- elementwise

export const add = (a: ValueLike, b: ValueLike): Value => apply(Op.Add, lift2(a, b), {});
export const sub = (a: ValueLike, b: ValueLike): Value => apply(Op.Sub, lift2(a, b), {});
export const mul = (a: ValueLike, b: ValueLike): Value => apply(Op.Mul, lift2(a, b), {});
export const div = (a: ValueLike, b: ValueLike): Value => apply(Op.Div, lift2(a, b), {});
export const pow = (a: ValueLike, b: ValueLike): Value => apply(Op.Pow, lift2(a, b), {});
export const equal = (a: ValueLike, b: ValueLike): Value => apply(Op.Equal, lift2(a, b), {});
export const greater = (a: ValueLike, b: ValueLike): Value => apply(Op.Greater, lift2(a, b), {});
export const neg = (x: Value): Value => apply(Op.Neg, [x], {});
export const abs = (x: Value): Value => apply(Op.Abs, [x], {});
export const sign = (x: Value): Value => apply(Op.Sign, [x], {});
export const exp = (x: Value): Value => apply(Op.Exp, [x], {});
export const log = (x: Value): Value => apply(Op.Log, [x], {});
export const sqrt = (x: Value): Value => apply(Op.Sqrt, [x], {});
export const tanh = (x: Value): Value => apply(Op.Tanh, [x], {});
export const erf = (x: Value): Value => apply(Op.Erf, [x], {});
/** Exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2)) (HF `hidden_act: "gelu"`). */
export const gelu = (x: Value): Value => apply(Op.Gelu, [x], {});
export const identity = (x: Value): Value => apply(Op.Identity, [x], {});
export const cast = (x: Value, to: DType): Value => (x.dtype === to ? x : apply(Op.Cast, [x], { to }));
export const square = (x: Value): Value => mul(x, x);

/** cond ? a : b, with broadcasting. */
export function where(cond: Value, a: ValueLike, b: ValueLike): Value {
  const [x, y] = lift2(a, b);
  return apply(Op.Where, [cond, x, y], {});
}

// ---------------------------------------------------------------- products

/** numpy matmul for operands of rank >= 2 (leading dims broadcast). */
export const matmul = (a: Value, b: Value): Value => apply(Op.MatMul, [a, b], {});

/** alpha·op(A)·op(B) + beta·C on 2-D operands. */
export function gemm(
  a: Value,
  b: Value,
  c?: Value,
  opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
): Value {
  const attrs = { transA: opts.transA ?? false, transB: opts.transB ?? false, alpha: opts.alpha ?? 1, beta: opts.beta ?? 1 };
  return apply(Op.Gemm, c ? [a, b, c] : [a, b], attrs);
}

/**
 * A PyTorch/HF Linear on a 2-D activation: x [N, in] · Wᵀ (W is [out, in]) + b. Higher-rank inputs are
 * flattened to 2-D and restored, so the product is always one Gemm.
 */
export function linear(x: Value, weight: Value, bias?: Value): Value {
  if (x.rank === 2) return gemm(x, weight, bias, { transB: true });
  const lead = x.shape.slice(0, -1);
  const flat = reshape(x, [-1, x.shape[x.rank - 1]!]);
  const y = gemm(flat, weight, bias, { transB: true });
  return reshape(y, [...lead, weight.shape[0]!]);
}

// ---------------------------------------------------------------- reductions

function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  const list = axes === undefined ? [...Array(rank).keys()] : typeof axes === "number" ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(a, rank, op)))].sort((a, b) => a - b);
  return out;
}

/** Sum over `axes` (all when omitted). */
export const sum = (x: Value, axes?: number | readonly number[], keepdims = false): Value =>
  apply(Op.ReduceSum, [x], { axes: normAxes("ReduceSum", axes, x.rank), keepdims });
export const mean = (x: Value, axes?: number | readonly number[], keepdims = false): Value =>
  apply(Op.ReduceMean, [x], { axes: normAxes("ReduceMean", axes, x.rank), keepdims });
export const max = (x: Value, axes?: number | readonly number[], keepdims = false): Value =>
  apply(Op.ReduceMax, [x], { axes: normAxes("ReduceMax", axes, x.rank), keepdims });

// ---------------------------------------------------------------- normalization

export const softmax = (x: Value, axis = -1): Value => apply(Op.Softmax, [x], { axis: normAxis(axis, x.rank, "Softmax") });
export const logSoftmax = (x: Value, axis = -1): Value =>
  apply(Op.LogSoftmax, [x], { axis: normAxis(axis, x.rank, "LogSoftmax") });

/** LayerNorm over the trailing dims from `axis` (default: the last), with scale and bias. */
export function layerNorm(x: Value, scale: Value, bias: Value, epsilon = 1e-5, axis = -1): Value {
  return applyMulti(Op.LayerNormalization, [x, scale, bias], { axis: normAxis(axis, x.rank, "LayerNormalization"), epsilon })[0]!;
}

// ---------------------------------------------------------------- movement

/** Reshape; one entry may be -1 (inferred). */
export function reshape(x: Value, shape: readonly Dim[]): Value {
  const holes = shape.filter((d) => d === -1).length;
  if (holes > 1) throw shapeError(`Reshape: at most one -1 allowed, got ${shapeStr(shape)}`);
  let resolved: Dim[] = [...shape];
  if (holes === 1) {
    const known = numel(shape.filter((d) => d !== -1));
    const total = numel(x.shape);
    let fill: Dim;
    if (typeof total === "number" && typeof known === "number") fill = total / known;
    else if (isBatchDim(total) && typeof known === "number") fill = { batch: total.batch / known };
    else if (isBatchDim(total) && isBatchDim(known)) fill = total.batch / known.batch;
    else throw shapeError(`Reshape: cannot infer -1 in ${shapeStr(shape)} from ${shapeStr(x.shape)}`);
    const frac = typeof fill === "number" ? fill : fill.batch;
    if (!Number.isInteger(frac)) throw shapeError(`Reshape: cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
    resolved = shape.map((d) => (d === -1 ? fill : d));
  }
  if (resolved.some((d) => typeof d === "number" && (d < 0 || !Number.isInteger(d)))) {
    throw shapeError(`Reshape: invalid target shape ${shapeStr(shape)}`);
  }
  return apply(Op.Reshape, [x], { shape: resolved });
}

/**
 * Permutes axes. A transpose of a transpose is composed into one, and one that cancels returns the
 * original value, so rules that transpose twice (common in backward graphs) cost nothing.
 */
export function transpose(x: Value, perm: readonly number[]): Value {
  let p = perm.map((a) => normAxis(a, x.rank, "Transpose"));
  let src = x;
  if (x.node.op === Op.Transpose && p.length === x.rank) {
    const inner = (x.node.attrs as { perm: readonly number[] }).perm;
    p = p.map((a) => inner[a]!);
    src = x.node.inputs[0]!;
  }
  if (p.every((a, i) => a === i) && p.length === src.rank) return src;
  return apply(Op.Transpose, [src], { perm: p });
}

/** Swaps the last two axes. */
export function mT(x: Value): Value {
  const perm = [...Array(x.rank).keys()];
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
}

export function concat(xs: readonly Value[], axis: number): Value {
  if (xs.length === 0) throw argError("concat: needs at least one tensor");
  return apply(Op.Concat, xs, { axis: normAxis(axis, xs[0]!.rank, "Concat") });
}

/** Consecutive parts of x along `axis` with the given sizes (one pass, no per-part slicing). */
export function split(x: Value, sizes: readonly number[], axis: number): Value[] {
  return [...applyMulti(Op.Split, [x], { axis: normAxis(axis, x.rank, "Split"), sizes: [...sizes] })];
}

/** x[..., start:end:step, ...] along one axis (negative start/end count from the end). */
export function slice(x: Value, axis: number, start: number, end: number, step = 1): Value {
  const a = normAxis(axis, x.rank, "Slice");
  const d = x.shape[a]!;
  if (typeof d !== "number") throw shapeError(`Slice: cannot slice the batch dimension (axis ${axis} of ${shapeStr(x.shape)})`);
  const s = Math.min(Math.max(start < 0 ? start + d : start, 0), d);
  const e = Math.min(Math.max(end < 0 ? end + d : end, s), d);
  return apply(Op.Slice, [x], { axes: [a], starts: [s], ends: [e], steps: [step] });
}

/** Zero padding: `pads` = [begin_0..begin_{r-1}, end_0..end_{r-1}]. */
export const pad = (x: Value, pads: readonly number[]): Value => apply(Op.Pad, [x], { pads: [...pads] });

export const gather = (x: Value, indices: Value, axis = 0): Value =>
  apply(Op.Gather, [x, indices], { axis: normAxis(axis, x.rank, "Gather") });

/** data with `updates` added at `indices` along `axis` (duplicates accumulate). */
export const scatterAdd = (data: Value, indices: Value, updates: Value, axis = 0): Value =>
  apply(Op.ScatterElements, [data, indices, updates], { axis: normAxis(axis, data.rank, "ScatterElements"), reduction: "add" });

/** Broadcasts x to `shape` (numpy rules). */
export const expand = (x: Value, shape: readonly Dim[]): Value => apply(Op.Expand, [x], { shape: [...shape] });

/** Inserts a size-1 axis at `axis`. */
export function unsqueeze(x: Value, axis: number): Value {
  const a = normAxis(axis, x.rank + 1, "Unsqueeze");
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

// ---------------------------------------------------------------- composites

/**
 * Mean cross-entropy of `logits` [N, C] against int64 class ids `labels` [N]: the one-hot mask is
 * built in the graph (labels == arange(C)), so the loss needs no gather and its gradient is dense.
 */
export function crossEntropy(logits: Value, labels: Value): Value {
  if (logits.rank !== 2) throw shapeError(`crossEntropy: logits must be [N, C], got ${shapeStr(logits.shape)}`);
  if (labels.rank !== 1) throw shapeError(`crossEntropy: labels must be [N], got ${shapeStr(labels.shape)}`);
  const c = logits.shape[1]!;
  if (typeof c !== "number") throw shapeError(`crossEntropy: the class dimension cannot be the batch dimension`);
  const classes = constant(Array.from({ length: c }, (_, i) => i), [1, c], "int64");
  const onehot = cast(equal(reshape(labels, [labels.shape[0]!, 1]), classes), logits.dtype);
  const picked = sum(mul(onehot, logSoftmax(logits, -1)), 1);
  return neg(mean(picked));
}

/**
 * Non-overlapping p×p patches of images [B, C, H, W] as rows [B·(H/p)·(W/p), C·p·p] in (c, kh, kw)
 * order: multiplying by a conv weight reshaped to [D, C·p·p] equals a stride-p convolution.
 */
export function patchify(images: Value, patch: number): Value {
  if (images.rank !== 4) throw shapeError(`patchify: images must be [B, C, H, W], got ${shapeStr(images.shape)}`);
  const [b, c, h, w] = images.shape as [Dim, number, number, number];
  if (h % patch !== 0 || w % patch !== 0) {
    throw shapeError(`patchify: image size ${h}x${w} is not a multiple of the patch size ${patch}`);
  }
  const gh = h / patch;
  const gw = w / patch;
  const x = reshape(images, [b, c, gh, patch, gw, patch]);
  const t = transpose(x, [0, 2, 4, 1, 3, 5]);
  return reshape(t, [-1, c * patch * patch]);
}
