/**
 * @module graph/shape
 * Element types and static shapes with one symbolic dimension: the batch size. A dimension is either
 * a concrete integer or `k × batch` (a `BatchDim`), which is enough for the reshapes a transformer does
 * ([B, T, D] -> [B*T, D] and back) while keeping every other size static. Shapes are bound to a
 * concrete batch size when a graph is lowered for execution.
 */
import { shapeError } from "../errors.js";

/** Element types a graph value can have. */
export type DType = "float32" | "float64" | "int64" | "bool";

/** `mul × batch`, the only symbolic size. */
export interface BatchDim {
  readonly batch: number;
}
export type Dim = number | BatchDim;
export type Shape = readonly Dim[];

/** The batch dimension itself. */
export const BATCH: BatchDim = Object.freeze({ batch: 1 });

export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64";
}

export function isBatchDim(d: Dim): d is BatchDim {
  return typeof d !== "number";
}

export function dimEq(a: Dim, b: Dim): boolean {
  if (typeof a === "number" || typeof b === "number") return a === b;
  return a.batch === b.batch;
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEq(d, b[i]!));
}

/** Product of two dims; batch × batch is not representable and is rejected. */
export function dimMul(a: Dim, b: Dim): Dim {
  if (typeof a === "number" && typeof b === "number") return a * b;
  if (typeof a === "number") return { batch: a * (b as BatchDim).batch };
  if (typeof b === "number") return { batch: b * a.batch };
  throw shapeError("a shape may contain the batch dimension at most once (batch × batch is not supported)");
}

/** Number of elements (possibly symbolic). */
export function numel(shape: Shape): Dim {
  let n: Dim = 1;
  for (const d of shape) n = dimMul(n, d);
  return n;
}

/** Concrete value of a dim for a given batch size. */
export function resolveDim(d: Dim, batch: number | undefined): number {
  if (typeof d === "number") return d;
  if (batch === undefined) throw shapeError(`shape has a batch dimension but no batch size was given`);
  return d.batch * batch;
}

export function resolveShape(shape: Shape, batch?: number): number[] {
  return shape.map((d) => resolveDim(d, batch));
}

export function isStaticShape(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === "number");
}

export function dimStr(d: Dim): string {
  if (typeof d === "number") return String(d);
  return d.batch === 1 ? "B" : `${d.batch}B`;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.map(dimStr).join(",")}]`;
}

/** Normalizes a possibly negative axis for a tensor of the given rank. */
export function normAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw shapeError(`${what}: axis ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** numpy/ONNX multidirectional broadcasting of several shapes. */
export function broadcastShapes(what: string, ...shapes: Shape[]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = i - (rank - s.length);
      if (k < 0) continue;
      const e = s[k]!;
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (!dimEq(d, e)) {
        throw shapeError(`${what}: shapes ${shapes.map(shapeStr).join(" and ")} cannot be broadcast (dimension ${i}: ${dimStr(d)} vs ${dimStr(e)})`);
      }
    }
    out.push(d);
  }
  return out;
}
