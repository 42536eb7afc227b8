/**
 * @module graph/autodiff/grad
 * Reverse-mode differentiation of a scalar with respect to exactly the requested inputs (the teaching
 * version is micrograd's `backward`; the pruning follows tinygrad's `compute_gradient` and tfjs's
 * `getFilteredNodesXToY`). Only nodes on a path from a requested input to the loss are visited, so a
 * frozen weight (not requested) contributes no gradient work at all.
 */
import { ErrorCode, SaflError, shapeError } from "../../errors.js";
import * as g from "../builder.js";
import { type Node, type Value, topoSort } from "../node.js";
import type { Op } from "../ops.js";
import { isFloat, isStaticShape, shapeEq, shapeStr } from "../shape.js";
import { type VjpRule, vjpRules } from "./rules.js";

const key = (v: Value): string => `${v.node.id}:${v.index}`;

/**
 * Gradients of the scalar `loss` with respect to each value in `wrt`, as new graph values.
 * A requested value the loss does not depend on gets a zero constant.
 */
export function grad(loss: Value, wrt: readonly Value[]): Value[] {
  if (loss.rank !== 0) throw shapeError(`grad: the loss must be a scalar, got shape ${shapeStr(loss.shape)}`);
  if (!isFloat(loss.dtype)) throw new SaflError(ErrorCode.DType, `grad: the loss must be float, got ${loss.dtype}`);
  for (const w of wrt) {
    if (!isFloat(w.dtype)) throw new SaflError(ErrorCode.DType, `grad: cannot differentiate with respect to a ${w.dtype} value`);
  }

  const order = topoSort([loss]);
  // Forward pass over the topological order: which values depend on a requested input.
  const wrtNodes = new Set(wrt.map((w) => w.node.id));
  const dependent = new Set<number>();
  for (const node of order) {
    if (wrtNodes.has(node.id) || node.inputs.some((v) => dependent.has(v.node.id))) dependent.add(node.id);
  }

  const cts = new Map<string, Value>();
  const accumulate = (v: Value, ct: Value): void => {
    const prev = cts.get(key(v));
    cts.set(key(v), prev ? g.add(prev, ct) : ct);
  };
  accumulate(loss, g.scalar(1, loss.dtype));

  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i]!;
    if (!dependent.has(node.id) || node.inputs.length === 0) continue;
    const outCts = node.outputs.map((v) => cts.get(key(v)));
    if (outCts.every((c) => c === undefined)) continue;
    const need = node.inputs.map((v) => dependent.has(v.node.id) && isFloat(v.dtype));
    if (!need.some(Boolean)) continue;
    const rule = vjpRules[node.op] as VjpRule<Op>;
    const inCts = rule(node as Node<Op>, outCts, need);
    checkRuleResult(node, inCts);
    inCts.forEach((ct, k) => {
      if (ct && need[k]) accumulate(node.inputs[k]!, ct);
    });
  }

  return wrt.map((w) => {
    const ct = cts.get(key(w));
    if (ct) return ct;
    if (!isStaticShape(w.shape)) return g.expand(g.scalar(0, w.dtype), w.shape);
    const n = w.shape.reduce((a, b) => a * b, 1);
    return g.constant(new Array<number>(n).fill(0), w.shape, w.dtype);
  });
}

/** A rule must return one cotangent per input, each with its input's shape and dtype. */
function checkRuleResult(node: Node, cts: readonly (Value | undefined)[]): void {
  if (cts.length !== node.inputs.length) {
    throw new Error(`autodiff rule for ${node.op} returned ${cts.length} gradients for ${node.inputs.length} inputs`);
  }
  cts.forEach((ct, k) => {
    if (!ct) return;
    const x = node.inputs[k]!;
    if (!shapeEq(ct.shape, x.shape) || ct.dtype !== x.dtype) {
      throw new Error(
        `autodiff rule for ${node.op}: gradient of input ${k} has ${ct.dtype}${shapeStr(ct.shape)}, expected ${x.dtype}${shapeStr(x.shape)}`,
      );
    }
  });
}

/** Counts nodes by op in the graph computing `outputs` (used to inspect what a gradient graph contains). */
export function countOps(outputs: readonly Value[]): Map<Op, number> {
  const counts = new Map<Op, number>();
  for (const n of topoSort(outputs)) counts.set(n.op, (counts.get(n.op) ?? 0) + 1);
  return counts;
}

