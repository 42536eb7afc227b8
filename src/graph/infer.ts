/**
 * @module graph/infer
 * Shape and dtype inference, one entry for every op. Each rule checks its inputs and throws a
 * `SaflError` naming the op and the shapes involved, so a mistake in model code is reported when the
 * graph is built, never deep inside onnxruntime.
 */
import { ErrorCode, SaflError, shapeError } from "../errors.js";
import type { Value } from "./node.js";
import { Op, type OpAttrs } from "./ops.js";
import {
  type Dim,
  type DType,
  type Shape,
  broadcastShapes,
  dimEq,
  dimStr,
  isBatchDim,
  isFloat,
  numel,
  shapeStr,
} from "./shape.js";

export interface OutputType {
  dtype: DType;
  shape: Shape;
}

type InferRule<K extends Op> = (inputs: readonly Value[], attrs: OpAttrs[K]) => OutputType[];

function arity(op: Op, inputs: readonly Value[], ...allowed: number[]): void {
  if (!allowed.includes(inputs.length)) {
    throw new SaflError(ErrorCode.InvalidArgument, `${op}: expected ${allowed.join(" or ")} inputs, got ${inputs.length}`);
  }
}

function dtypeError(op: Op, message: string): SaflError {
  return new SaflError(ErrorCode.DType, `${op}: ${message}`);
}

function requireFloat(op: Op, v: Value, which = "input"): void {
  if (!isFloat(v.dtype)) throw dtypeError(op, `${which} must be float32 or float64, got ${v.dtype}`);
}

function sameDtype(op: Op, inputs: readonly Value[]): DType {
  const dt = inputs[0]!.dtype;
  for (const v of inputs) {
    if (v.dtype !== dt) throw dtypeError(op, `inputs must share one dtype, got ${inputs.map((x) => x.dtype).join(" and ")}`);
  }
  return dt;
}

const unaryFloat =
  (op: Op): InferRule<Op> =>
  (inputs) => {
    arity(op, inputs, 1);
    requireFloat(op, inputs[0]!);
    return [{ dtype: inputs[0]!.dtype, shape: inputs[0]!.shape }];
  };

const binary =
  (op: Op, out: "same" | "bool", floatOnly: boolean): InferRule<Op> =>
  (inputs) => {
    arity(op, inputs, 2);
    const dt = sameDtype(op, inputs);
    if (floatOnly) requireFloat(op, inputs[0]!);
    if (dt === "bool" && op !== Op.Equal) throw dtypeError(op, "bool operands are not supported (ONNX has no bool kernel)");
    const shape = broadcastShapes(op, inputs[0]!.shape, inputs[1]!.shape);
    return [{ dtype: out === "bool" ? "bool" : dt, shape }];
  };

const reduce =
  (op: Op) =>
  (inputs: readonly Value[], { axes, keepdims }: { axes: readonly number[]; keepdims: boolean }): OutputType[] => {
    arity(op, inputs, 1);
    const x = inputs[0]!;
    if (x.dtype === "bool") throw dtypeError(op, "cannot reduce a bool tensor");
    for (const a of axes) {
      if (!Number.isInteger(a) || a < 0 || a >= x.rank) throw shapeError(`${op}: axis ${a} is out of range for ${shapeStr(x.shape)}`);
    }
    const shape: Dim[] = [];
    x.shape.forEach((d, i) => {
      if (!axes.includes(i)) shape.push(d);
      else if (keepdims) shape.push(1);
    });
    return [{ dtype: x.dtype, shape }];
  };

function checkAxis(op: Op, axis: number, rank: number): void {
  if (!Number.isInteger(axis) || axis < 0 || axis >= rank) {
    throw shapeError(`${op}: axis ${axis} is out of range for rank ${rank} (axes are normalized before the node is built)`);
  }
}

export const inferRules: { [K in Op]: InferRule<K> } = {
  [Op.Input]: (inputs, { name, dtype, shape }) => {
    arity(Op.Input, inputs, 0);
    for (const d of shape) {
      const n = typeof d === "number" ? d : d.batch;
      if (!Number.isInteger(n) || n < (typeof d === "number" ? 0 : 1)) throw shapeError(`Input "${name}": invalid dimension ${dimStr(d)} in ${shapeStr(shape)}`);
    }
    return [{ dtype, shape }];
  },
  [Op.Constant]: (inputs, { dtype, shape, data }) => {
    arity(Op.Constant, inputs, 0);
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw shapeError(`Constant: ${data.length} values for shape ${shapeStr(shape)} (expected ${n})`);
    return [{ dtype, shape }];
  },
  [Op.Identity]: (inputs) => {
    arity(Op.Identity, inputs, 1);
    return [{ dtype: inputs[0]!.dtype, shape: inputs[0]!.shape }];
  },
  [Op.Neg]: unaryFloat(Op.Neg),
  [Op.Abs]: unaryFloat(Op.Abs),
  [Op.Sign]: unaryFloat(Op.Sign),
  [Op.Exp]: unaryFloat(Op.Exp),
  [Op.Log]: unaryFloat(Op.Log),
  [Op.Sqrt]: unaryFloat(Op.Sqrt),
  [Op.Tanh]: unaryFloat(Op.Tanh),
  [Op.Erf]: unaryFloat(Op.Erf),
  [Op.Gelu]: unaryFloat(Op.Gelu),
  [Op.Cast]: (inputs, { to }) => {
    arity(Op.Cast, inputs, 1);
    return [{ dtype: to, shape: inputs[0]!.shape }];
  },
  [Op.Add]: binary(Op.Add, "same", false),
  [Op.Sub]: binary(Op.Sub, "same", false),
  [Op.Mul]: binary(Op.Mul, "same", false),
  [Op.Div]: binary(Op.Div, "same", false),
  [Op.Pow]: binary(Op.Pow, "same", true),
  [Op.Equal]: binary(Op.Equal, "bool", false),
  [Op.Greater]: binary(Op.Greater, "bool", false),
  [Op.Where]: (inputs) => {
    arity(Op.Where, inputs, 3);
    const [c, x, y] = inputs as [Value, Value, Value];
    if (c.dtype !== "bool") throw dtypeError(Op.Where, `condition must be bool, got ${c.dtype}`);
    const dt = sameDtype(Op.Where, [x, y]);
    return [{ dtype: dt, shape: broadcastShapes(Op.Where, c.shape, x.shape, y.shape) }];
  },
  [Op.MatMul]: (inputs) => {
    arity(Op.MatMul, inputs, 2);
    const [a, b] = inputs as [Value, Value];
    const dt = sameDtype(Op.MatMul, inputs);
    requireFloat(Op.MatMul, a);
    if (a.rank < 2 || b.rank < 2) throw shapeError(`MatMul: both operands need rank >= 2, got ${shapeStr(a.shape)} x ${shapeStr(b.shape)}`);
    const k1 = a.shape[a.rank - 1]!;
    const k2 = b.shape[b.rank - 2]!;
    if (!dimEq(k1, k2)) {
      throw shapeError(`MatMul: inner dimensions differ: ${shapeStr(a.shape)} x ${shapeStr(b.shape)} (${dimStr(k1)} vs ${dimStr(k2)})`);
    }
    const batch = broadcastShapes("MatMul (batch dimensions)", a.shape.slice(0, -2), b.shape.slice(0, -2));
    return [{ dtype: dt, shape: [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!] }];
  },
  [Op.Gemm]: (inputs, { transA, transB }) => {
    arity(Op.Gemm, inputs, 2, 3);
    const dt = sameDtype(Op.Gemm, inputs);
    requireFloat(Op.Gemm, inputs[0]!);
    const [a, b] = inputs as [Value, Value];
    if (a.rank !== 2 || b.rank !== 2) throw shapeError(`Gemm: A and B must be 2-D, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
    const [m, ka] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const [kb, n] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
    if (!dimEq(ka, kb)) {
      throw shapeError(`Gemm: inner dimensions differ: A ${shapeStr(a.shape)}${transA ? "ᵀ" : ""} x B ${shapeStr(b.shape)}${transB ? "ᵀ" : ""}`);
    }
    const out = [m, n];
    if (inputs.length === 3) {
      const c = inputs[2]!;
      const bc = broadcastShapes("Gemm (bias C)", c.shape, out);
      if (!dimEq(bc[0]!, m) || !dimEq(bc[1]!, n) || bc.length !== 2) {
        throw shapeError(`Gemm: C ${shapeStr(c.shape)} does not broadcast to the result ${shapeStr(out)}`);
      }
    }
    return [{ dtype: dt, shape: out }];
  },
  [Op.ReduceSum]: reduce(Op.ReduceSum),
  [Op.ReduceMean]: reduce(Op.ReduceMean),
  [Op.ReduceMax]: reduce(Op.ReduceMax),
  [Op.Softmax]: (inputs, { axis }) => {
    arity(Op.Softmax, inputs, 1);
    requireFloat(Op.Softmax, inputs[0]!);
    checkAxis(Op.Softmax, axis, inputs[0]!.rank);
    return [{ dtype: inputs[0]!.dtype, shape: inputs[0]!.shape }];
  },
  [Op.LogSoftmax]: (inputs, { axis }) => {
    arity(Op.LogSoftmax, inputs, 1);
    requireFloat(Op.LogSoftmax, inputs[0]!);
    checkAxis(Op.LogSoftmax, axis, inputs[0]!.rank);
    return [{ dtype: inputs[0]!.dtype, shape: inputs[0]!.shape }];
  },
  [Op.LayerNormalization]: (inputs, { axis, epsilon }) => {
    arity(Op.LayerNormalization, inputs, 3);
    const [x, scale, bias] = inputs as [Value, Value, Value];
    sameDtype(Op.LayerNormalization, inputs);
    requireFloat(Op.LayerNormalization, x);
    checkAxis(Op.LayerNormalization, axis, x.rank);
    if (!(epsilon > 0)) throw new SaflError(ErrorCode.InvalidArgument, `LayerNormalization: epsilon must be > 0, got ${epsilon}`);
    const normShape = x.shape.slice(axis);
    for (const [name, p] of [["scale", scale], ["bias", bias]] as const) {
      if (p.rank !== normShape.length || !p.shape.every((d, i) => dimEq(d, normShape[i]!))) {
        throw shapeError(`LayerNormalization: ${name} ${shapeStr(p.shape)} must equal the normalized shape ${shapeStr(normShape)} of input ${shapeStr(x.shape)}`);
      }
    }
    const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
    return [
      { dtype: x.dtype, shape: x.shape },
      { dtype: x.dtype, shape: statShape },
      { dtype: x.dtype, shape: statShape },
    ];
  },
  [Op.Reshape]: (inputs, { shape }) => {
    arity(Op.Reshape, inputs, 1);
    const x = inputs[0]!;
    if (!dimEq(numel(x.shape), numel(shape))) {
      throw shapeError(`Reshape: cannot reshape ${shapeStr(x.shape)} (${dimStr(numel(x.shape))} elements) to ${shapeStr(shape)} (${dimStr(numel(shape))})`);
    }
    return [{ dtype: x.dtype, shape }];
  },
  [Op.Transpose]: (inputs, { perm }) => {
    arity(Op.Transpose, inputs, 1);
    const x = inputs[0]!;
    const sorted = [...perm].sort((a, b) => a - b);
    if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) {
      throw shapeError(`Transpose: perm [${perm.join(",")}] is not a permutation of the ${x.rank} axes of ${shapeStr(x.shape)}`);
    }
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }];
  },
  [Op.Concat]: (inputs, { axis }) => {
    if (inputs.length < 1) throw new SaflError(ErrorCode.InvalidArgument, "Concat: needs at least one input");
    const dt = sameDtype(Op.Concat, inputs);
    const first = inputs[0]!;
    checkAxis(Op.Concat, axis, first.rank);
    let total: number = 0;
    for (const v of inputs) {
      const ok = v.rank === first.rank && v.shape.every((d, i) => i === axis || dimEq(d, first.shape[i]!));
      if (!ok) throw shapeError(`Concat: shapes ${inputs.map((x) => shapeStr(x.shape)).join(", ")} differ outside axis ${axis}`);
      const d = v.shape[axis]!;
      if (isBatchDim(d)) throw shapeError(`Concat: cannot concatenate along the batch dimension (axis ${axis})`);
      total += d;
    }
    return [{ dtype: dt, shape: first.shape.map((d, i) => (i === axis ? total : d)) }];
  },
  [Op.Split]: (inputs, { axis, sizes }) => {
    arity(Op.Split, inputs, 1);
    const x = inputs[0]!;
    checkAxis(Op.Split, axis, x.rank);
    const d = x.shape[axis]!;
    const total = sizes.reduce((a, b) => a + b, 0);
    if (typeof d !== "number" || total !== d || sizes.some((s) => !Number.isInteger(s) || s < 1)) {
      throw shapeError(`Split: sizes [${sizes.join(",")}] do not partition axis ${axis} of ${shapeStr(x.shape)}`);
    }
    return sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((e, i) => (i === axis ? s : e)) }));
  },
  [Op.Slice]: (inputs, { axes, starts, ends, steps }) => {
    arity(Op.Slice, inputs, 1);
    const x = inputs[0]!;
    const shape = [...x.shape];
    axes.forEach((a, k) => {
      checkAxis(Op.Slice, a, x.rank);
      const d = x.shape[a]!;
      if (isBatchDim(d)) throw shapeError(`Slice: cannot slice the batch dimension (axis ${a} of ${shapeStr(x.shape)})`);
      const [s, e, st] = [starts[k]!, ends[k]!, steps[k]!];
      if (!(st > 0) || s < 0 || e > d || s > e) {
        throw shapeError(`Slice: start ${s}, end ${e}, step ${st} is not a valid range of axis ${a} (size ${d}) of ${shapeStr(x.shape)}`);
      }
      shape[a] = Math.ceil((e - s) / st);
    });
    return [{ dtype: x.dtype, shape }];
  },
  [Op.Pad]: (inputs, { pads }) => {
    arity(Op.Pad, inputs, 1);
    const x = inputs[0]!;
    if (pads.length !== 2 * x.rank || pads.some((p) => !Number.isInteger(p) || p < 0)) {
      throw shapeError(`Pad: pads [${pads.join(",")}] must be ${2 * x.rank} non-negative integers for ${shapeStr(x.shape)}`);
    }
    const shape = x.shape.map((d, i) => {
      const extra = pads[i]! + pads[i + x.rank]!;
      if (extra === 0) return d;
      if (isBatchDim(d)) throw shapeError(`Pad: cannot pad the batch dimension of ${shapeStr(x.shape)}`);
      return d + extra;
    });
    return [{ dtype: x.dtype, shape }];
  },
  [Op.Gather]: (inputs, { axis }) => {
    arity(Op.Gather, inputs, 2);
    const [x, idx] = inputs as [Value, Value];
    if (idx.dtype !== "int64") throw dtypeError(Op.Gather, `indices must be int64, got ${idx.dtype}`);
    checkAxis(Op.Gather, axis, x.rank);
    return [{ dtype: x.dtype, shape: [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)] }];
  },
  [Op.ScatterElements]: (inputs, { axis }) => {
    arity(Op.ScatterElements, inputs, 3);
    const [x, idx, upd] = inputs as [Value, Value, Value];
    if (idx.dtype !== "int64") throw dtypeError(Op.ScatterElements, `indices must be int64, got ${idx.dtype}`);
    sameDtype(Op.ScatterElements, [x, upd]);
    checkAxis(Op.ScatterElements, axis, x.rank);
    const same = idx.rank === upd.rank && idx.shape.every((d, i) => dimEq(d, upd.shape[i]!));
    if (!same || idx.rank !== x.rank) {
      throw shapeError(`ScatterElements: indices ${shapeStr(idx.shape)} and updates ${shapeStr(upd.shape)} must have one shape of the rank of data ${shapeStr(x.shape)}`);
    }
    return [{ dtype: x.dtype, shape: x.shape }];
  },
  [Op.Expand]: (inputs, { shape }) => {
    arity(Op.Expand, inputs, 1);
    const x = inputs[0]!;
    const out = broadcastShapes("Expand", x.shape, shape);
    return [{ dtype: x.dtype, shape: out }];
  },
};

/** Infers and checks the outputs of applying `op` to `inputs`. */
export function inferOutputs<K extends Op>(op: K, inputs: readonly Value[], attrs: OpAttrs[K]): OutputType[] {
  const rule = inferRules[op] as InferRule<K> | undefined;
  if (!rule) throw new SaflError(ErrorCode.Unsupported, `unknown op "${String(op)}"`);
  return rule(inputs, attrs);
}
