/**
 * @module graph/autodiff/rules
 * Vector-Jacobian products, one entry for every op (JAX's `primitive_transposes`, tinygrad's
 * `pm_gradient`). A rule receives the node, the cotangents of its outputs and which inputs need a
 * gradient, and returns one cotangent per input (`undefined` = none / zero). Rules only build what is
 * asked for: a frozen weight's `need` is false, so no weight-gradient product is ever built for it.
 *
 * Backward rules for the fused ops (Softmax, LayerNorm, GELU) reuse forward results (the softmax
 * output, the LayerNorm mean and inverse std) to keep the elementwise chain short: onnxruntime fuses
 * forward patterns but nothing in a hand-built backward.
 */
import { ErrorCode, SaflError } from "../../errors.js";
import * as g from "../builder.js";
import type { Node, Value } from "../node.js";
import { Op, type OpAttrs } from "../ops.js";
import { type Dim, dimEq, shapeEq } from "../shape.js";

export type Cotangents = readonly (Value | undefined)[];
export type VjpRule<K extends Op> = (node: Node<K>, cts: Cotangents, need: readonly boolean[]) => (Value | undefined)[];

/** Sums `ct` (a broadcast result) back down to `shape`: the one place broadcasting is undone. */
export function unbroadcast(ct: Value, shape: readonly Dim[]): Value {
  if (shapeEq(ct.shape, shape)) return ct;
  const extra = ct.rank - shape.length;
  let out = ct;
  if (extra > 0) out = g.sum(out, [...Array(extra).keys()], false);
  const axes: number[] = [];
  shape.forEach((d, i) => {
    if (d === 1 && !dimEq(out.shape[i]!, 1)) axes.push(i);
  });
  if (axes.length > 0) out = g.sum(out, axes, true);
  return out;
}

const noGradient: VjpRule<Op> = (node) => node.inputs.map(() => undefined);

/** Rule for an elementwise unary op: ct · f'(x, y). */
const elementwise =
  <K extends Op>(dydx: (x: Value, y: Value) => Value): VjpRule<K> =>
  (node, [ct]) => [g.mul(ct!, dydx(node.inputs[0]!, node.outputs[0]!))];

const SQRT1_2 = Math.SQRT1_2;
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function reduceBackward(node: Node<Op.ReduceSum | Op.ReduceMean | Op.ReduceMax>, ct: Value): Value {
  const x = node.inputs[0]!;
  const { axes, keepdims } = node.attrs as OpAttrs[Op.ReduceSum];
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return keepdims ? ct : g.reshape(ct, kept);
}

/**
 * 1 / (number of reduced elements). Static when the reduced dims are; a mean over the batch dimension
 * (a loss averaged over the batch) counts its elements in the graph, so the same graph serves every
 * batch size.
 */
function inverseCount(node: Node, axes: readonly number[]): Value | number {
  const x = node.inputs[0]!;
  let n = 1;
  let symbolic = false;
  for (const a of axes) {
    const d = x.shape[a]!;
    if (typeof d === "number") n *= d;
    else symbolic = true;
  }
  if (!symbolic) return 1 / n;
  const ones = g.expand(g.scalar(1, x.dtype), axes.map((a) => x.shape[a]!));
  return g.div(1, g.sum(ones));
}

/** Whether v is a Transpose that only swaps its last two axes. */
function isLastAxesSwap(v: Value): boolean {
  if (v.node.op !== Op.Transpose) return false;
  const perm = (v.node.attrs as OpAttrs[Op.Transpose]).perm;
  const r = perm.length;
  return r >= 2 && perm[r - 1] === r - 2 && perm[r - 2] === r - 1 && perm.slice(0, r - 2).every((p, i) => p === i);
}

/** Gemm with the given flags, as a helper for the four transpose cases. */
function gm(a: Value, b: Value, transA: boolean, transB: boolean, alpha: number): Value {
  return g.gemm(a, b, undefined, { transA, transB, alpha });
}

export const vjpRules: { [K in Op]: VjpRule<K> } = {
  [Op.Input]: () => [],
  [Op.Constant]: () => [],
  [Op.Identity]: (_n, [ct]) => [ct],
  [Op.Neg]: (_n, [ct]) => [g.neg(ct!)],
  [Op.Abs]: elementwise((x) => g.sign(x)),
  [Op.Sign]: noGradient,
  [Op.Exp]: elementwise((_x, y) => y),
  [Op.Log]: (node, [ct]) => [g.div(ct!, node.inputs[0]!)],
  [Op.Sqrt]: (node, [ct]) => [g.div(g.mul(ct!, 0.5), node.outputs[0]!)],
  [Op.Tanh]: elementwise((_x, y) => g.sub(1, g.mul(y, y))),
  [Op.Erf]: elementwise((x) => g.mul(g.exp(g.neg(g.mul(x, x))), TWO_OVER_SQRT_PI)),
  // GELU'(x) = Φ(x) + x·φ(x), with Φ = (1 + erf(x/√2))/2 and φ = exp(-x²/2)/√(2π).
  [Op.Gelu]: elementwise((x) => {
    const u = g.mul(x, SQRT1_2);
    const cdf = g.add(g.mul(g.erf(u), 0.5), 0.5);
    const pdfTimesX = g.mul(g.mul(x, g.exp(g.neg(g.mul(u, u)))), INV_SQRT_2PI);
    return g.add(cdf, pdfTimesX);
  }),
  [Op.Cast]: (node, [ct]) => {
    const x = node.inputs[0]!;
    return x.dtype === "float32" || x.dtype === "float64" ? [g.cast(ct!, x.dtype)] : [undefined];
  },
  [Op.Add]: (node, [ct], need) => [
    need[0] ? unbroadcast(ct!, node.inputs[0]!.shape) : undefined,
    need[1] ? unbroadcast(ct!, node.inputs[1]!.shape) : undefined,
  ],
  [Op.Sub]: (node, [ct], need) => [
    need[0] ? unbroadcast(ct!, node.inputs[0]!.shape) : undefined,
    need[1] ? unbroadcast(g.neg(ct!), node.inputs[1]!.shape) : undefined,
  ],
  [Op.Mul]: (node, [ct], need) => {
    const [a, b] = node.inputs as [Value, Value];
    return [need[0] ? unbroadcast(g.mul(ct!, b), a.shape) : undefined, need[1] ? unbroadcast(g.mul(ct!, a), b.shape) : undefined];
  },
  [Op.Div]: (node, [ct], need) => {
    const [a, b] = node.inputs as [Value, Value];
    const y = node.outputs[0]!;
    return [
      need[0] ? unbroadcast(g.div(ct!, b), a.shape) : undefined,
      need[1] ? unbroadcast(g.neg(g.div(g.mul(ct!, y), b)), b.shape) : undefined,
    ];
  },
  [Op.Pow]: (node, [ct], need) => {
    const [a, b] = node.inputs as [Value, Value];
    const y = node.outputs[0]!;
    return [
      need[0] ? unbroadcast(g.mul(ct!, g.mul(b, g.pow(a, g.sub(b, 1)))), a.shape) : undefined,
      need[1] ? unbroadcast(g.mul(ct!, g.mul(y, g.log(a))), b.shape) : undefined,
    ];
  },
  [Op.Equal]: noGradient,
  [Op.Greater]: noGradient,
  [Op.Where]: (node, [ct], need) => {
    const [c, x, y] = node.inputs as [Value, Value, Value];
    return [
      undefined,
      need[1] ? unbroadcast(g.where(c, ct!, 0), x.shape) : undefined,
      need[2] ? unbroadcast(g.where(c, 0, ct!), y.shape) : undefined,
    ];
  },
  [Op.MatMul]: (node, [ct], need) => {
    const [a, b] = node.inputs as [Value, Value];
    let da: Value | undefined;
    let db: Value | undefined;
    if (need[0]) {
      da = a.rank > 2 && b.rank === 2 ? g.reshape(gm(g.reshape(ct!, [-1, ct!.shape[ct!.rank - 1]!]), b, false, true, 1), a.shape) : unbroadcast(g.matmul(ct!, g.mT(b)), a.shape);
    }
    if (need[1]) {
      if (a.rank > 2 && b.rank === 2) {
        // A weight shared over a batch of rows: one 2-D product over all rows instead of a batched one.
        db = gm(g.reshape(a, [-1, a.shape[a.rank - 1]!]), g.reshape(ct!, [-1, ct!.shape[ct!.rank - 1]!]), true, false, 1);
      } else if (isLastAxesSwap(b) && a.rank === b.rank) {
        // B = Kᵀ (attention scores): produce dB as (Gᵀ·A)ᵀ so the transpose rule's own transpose
        // cancels against it and dK = Gᵀ·A is one product with no materialized transpose.
        db = g.mT(unbroadcast(g.matmul(g.mT(ct!), a), b.node.inputs[0]!.shape));
      } else {
        db = unbroadcast(g.matmul(g.mT(a), ct!), b.shape);
      }
    }
    return [da, db];
  },
  [Op.Gemm]: (node, [ct], need) => {
    const [a, b, c] = node.inputs as [Value, Value, Value | undefined];
    const { transA, transB, alpha, beta } = node.attrs;
    const G = ct!;
    let da: Value | undefined;
    let db: Value | undefined;
    if (need[0]) {
      if (!transA) da = gm(G, b, false, !transB, alpha);
      else da = gm(b, G, transB, true, alpha);
    }
    if (need[1]) {
      if (!transB) db = gm(a, G, !transA, false, alpha);
      else db = gm(G, a, true, transA, alpha);
    }
    const dc = c && need[2] ? unbroadcast(beta === 1 ? G : g.mul(G, beta), c.shape) : undefined;
    return c ? [da, db, dc] : [da, db];
  },
  [Op.ReduceSum]: (node, [ct]) => [g.expand(reduceBackward(node, ct!), node.inputs[0]!.shape)],
  [Op.ReduceMean]: (node, [ct]) => {
    return [g.expand(g.mul(reduceBackward(node, ct!), inverseCount(node, node.attrs.axes)), node.inputs[0]!.shape)];
  },
  // Ties share the gradient evenly (as PyTorch's amax does).
  [Op.ReduceMax]: (node, [ct]) => {
    const x = node.inputs[0]!;
    const { axes } = node.attrs;
    const y = node.attrs.keepdims ? node.outputs[0]! : g.reshape(node.outputs[0]!, x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const mask = g.cast(g.equal(x, y), x.dtype);
    const share = g.div(mask, g.sum(mask, axes, true));
    return [g.mul(share, reduceBackward(node, ct!))];
  },
  [Op.Softmax]: (node, [ct]) => {
    const y = node.outputs[0]!;
    const axis = node.attrs.axis;
    return [g.mul(y, g.sub(ct!, g.sum(g.mul(ct!, y), axis, true)))];
  },
  [Op.LogSoftmax]: (node, [ct]) => {
    const y = node.outputs[0]!;
    return [g.sub(ct!, g.mul(g.exp(y), g.sum(ct!, node.attrs.axis, true)))];
  },
  [Op.LayerNormalization]: (node, cts, need) => {
    if (cts[1] || cts[2]) {
      throw new SaflError(ErrorCode.Unsupported, "LayerNormalization: gradients through the Mean/InvStdDev outputs are not supported");
    }
    const ct = cts[0]!;
    const [x, scale] = node.inputs as [Value, Value, Value];
    const [, mu, invStd] = node.outputs as [Value, Value, Value];
    const axis = node.attrs.axis;
    const normAxes = [...Array(x.rank - axis).keys()].map((i) => i + axis);
    const lead = [...Array(axis).keys()];
    const xhat = g.mul(g.sub(x, mu), invStd);
    let dx: Value | undefined;
    if (need[0]) {
      const gs = g.mul(ct, scale);
      const m1 = g.mean(gs, normAxes, true);
      const m2 = g.mean(g.mul(gs, xhat), normAxes, true);
      dx = g.mul(g.sub(g.sub(gs, m1), g.mul(xhat, m2)), invStd);
    }
    const dScale = need[1] ? (lead.length ? g.sum(g.mul(ct, xhat), lead) : g.mul(ct, xhat)) : undefined;
    const dBias = need[2] ? (lead.length ? g.sum(ct, lead) : ct) : undefined;
    return [dx, dScale, dBias];
  },
  [Op.Reshape]: (node, [ct]) => [g.reshape(ct!, node.inputs[0]!.shape)],
  [Op.Transpose]: (node, [ct]) => {
    const inv: number[] = [];
    node.attrs.perm.forEach((p, i) => {
      inv[p] = i;
    });
    return [g.transpose(ct!, inv)];
  },
  [Op.Concat]: (node, [ct], need) => {
    const axis = node.attrs.axis;
    let offset = 0;
    return node.inputs.map((x, i) => {
      const len = x.shape[axis] as number;
      const out = need[i] ? g.slice(ct!, axis, offset, offset + len) : undefined;
      offset += len;
      return out;
    });
  },
  // The parts' cotangents concatenated back (a zero block for a part that received none).
  [Op.Split]: (node, cts) => [
    g.concat(
      node.outputs.map((o, i) => cts[i] ?? g.expand(g.scalar(0, o.dtype), o.shape)),
      node.attrs.axis,
    ),
  ],
  [Op.Slice]: (node, [ct]) => {
    const x = node.inputs[0]!;
    const { axes, starts, ends, steps } = node.attrs;
    if (steps.some((s) => s !== 1)) throw new SaflError(ErrorCode.Unsupported, "Slice: gradient of a strided slice is not supported");
    const pads = new Array<number>(2 * x.rank).fill(0);
    axes.forEach((a, k) => {
      pads[a] = starts[k]!;
      pads[a + x.rank] = (x.shape[a] as number) - ends[k]!;
    });
    return [g.pad(ct!, pads)];
  },
  [Op.Pad]: (node, [ct]) => {
    const x = node.inputs[0]!;
    let out = ct!;
    const { pads } = node.attrs;
    for (let a = 0; a < x.rank; a++) {
      if (pads[a] !== 0 || pads[a + x.rank] !== 0) out = g.slice(out, a, pads[a]!, pads[a]! + (x.shape[a] as number));
    }
    return [out];
  },
  [Op.Gather]: (node, [ct], need) => {
    const [x, idx] = node.inputs as [Value, Value];
    if (!need[0]) return [undefined, undefined];
    if (idx.rank !== 1) throw new SaflError(ErrorCode.Unsupported, "Gather: gradient needs 1-D indices");
    const axis = node.attrs.axis;
    const idxShape = ct!.shape.map((d, i) => (i === axis ? d : 1));
    const idxFull = g.expand(g.reshape(idx, idxShape), ct!.shape);
    const zeros = g.expand(g.scalar(0, x.dtype), x.shape);
    return [g.scatterAdd(zeros, idxFull, ct!, axis), undefined];
  },
  [Op.ScatterElements]: (node, [ct], need) => {
    if (need[2]) throw new SaflError(ErrorCode.Unsupported, "ScatterElements: gradient with respect to updates is not supported");
    if (node.attrs.reduction !== "add") throw new SaflError(ErrorCode.Unsupported, "ScatterElements: gradient needs reduction=add");
    return [ct, undefined, undefined];
  },
  [Op.Expand]: (node, [ct]) => [unbroadcast(ct!, node.inputs[0]!.shape)],
};
