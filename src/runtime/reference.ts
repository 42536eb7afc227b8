/**
 * @module runtime/reference
 * A plain JavaScript interpreter of the graph IR. It exists to be an independent yardstick: gradient
 * checks run it in float64, and the ONNX lowering is checked against it. So every kernel is written
 * the slow, obvious way (explicit index arithmetic, one broadcasting helper) rather than the fast way,
 * and results are stored in the typed array of their dtype so float32 graphs round like a float32
 * runtime (roughly: kernels accumulate in float64 and round once when storing).
 */
import { ErrorCode, SaflError, argError, shapeError } from "../errors.js";
import { type Node, type Value, topoSort } from "../graph/node.js";
import { Op } from "../graph/ops.js";
import { type DType, isBatchDim, resolveShape, shapeStr } from "../graph/shape.js";
import { type HostData, type HostTensor, allocate, sizeOf, tensor } from "../tensor.js";

export interface ReferenceOptions {
  /** Size of the symbolic batch dimension; inferred from the first fed input that has one when omitted. */
  batch?: number;
}

/**
 * Evaluates `outputs` given feeds by Input name. Every op computes in the dtype of its values
 * (float64 graphs in float64, float32 graphs rounded to float32 via Float32Array storage). Feeds that
 * no reachable Input uses are ignored, so one parameter map can serve several graphs. The returned
 * tensors never alias the feeds or the graph's constants.
 */
export function evaluate(outputs: readonly Value[], feeds: Record<string, HostTensor>, opts: ReferenceOptions = {}): HostTensor[] {
  const order = topoSort(outputs);
  const ctx: Ctx = { batch: resolveBatch(order, feeds, opts.batch), feeds };
  const results = new Map<Node, HostTensor[]>();
  // topoSort puts every node after its inputs, so each lookup hits.
  const resultOf = (v: Value): HostTensor => (results.get(v.node) as HostTensor[])[v.index]!;
  for (const node of order) {
    const inputs = node.inputs.map(resultOf);
    const kernel = kernels[node.op] as unknown as Kernel<Op>;
    const outs = kernel(node, inputs, ctx);
    checkOutputs(node, outs, ctx.batch);
    results.set(node, outs);
  }
  return outputs.map(resultOf);
}

// ---------------------------------------------------------------- erf

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2/√π
const INV_SQRT_PI = 0.5641895835477563; // 1/√π

/**
 * exp(-x²) without the error of rounding x² first (near |x| = 1 that error alone is ~1 ulp):
 * hi = fround(x) has 24 significant bits, so hi² is exact in float64, and with d = x² - hi² =
 * (x-hi)(x+hi), which is below 2^-22·x², exp(-d) = 1 - d + d²/2 to well past float64 precision.
 */
function expNegSquare(x: number): number {
  const hi = Math.fround(x);
  const e = Math.exp(-hi * hi);
  const d = (x - hi) * (x + hi);
  return e - e * (d * (1 - d / 2));
}

/**
 * The error function, within 3 ulp in float64 (checked against mpmath on 27k points in [-7, 7]: max
 * relative error 4.8e-16). Three regimes, each used where it is both accurate and quick:
 * - |x| < 1.25: erf(x) = 2/√π · exp(-x²) · x · Σₙ (2x²)ⁿ / (3·5·…·(2n+1)). Every term is positive, so
 *   unlike the alternating Taylor series nothing cancels; Horner's rule from the tail damps rounding.
 *   (Above ~1.25 the leading terms grow and their rounding errors add up to several ulp.)
 * - 1.25 ≤ |x| < 6: erf = 1 - erfc, erfc from its Laplace continued fraction
 *   erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated bottom-up. Its depth,
 *   30 + 300/x², leaves a truncation error below 1e-17 (measured against 5000 levels); and as erfc < 0.08
 *   here, its own few-ulp error is shrunk in erf.
 * - |x| ≥ 6: erfc(6) ≈ 2e-17 is below half an ulp of 1, so erf is ±1 exactly.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const ax = Math.abs(x);
  if (ax < 1.25) {
    const x2 = 2 * x * x;
    let levels = 1;
    for (let term = 1; term > 1e-17; levels++) term *= x2 / (2 * levels + 1);
    let s = 1;
    for (let n = levels; n >= 1; n--) s = 1 + s * (x2 / (2 * n + 1));
    return TWO_OVER_SQRT_PI * (s * x) * expNegSquare(x);
  }
  if (ax >= 6) return Math.sign(x);
  let f = ax;
  for (let k = Math.ceil(30 + 300 / (ax * ax)); k >= 1; k--) f = ax + k / 2 / f;
  const r = 1 - (INV_SQRT_PI * expNegSquare(ax)) / f;
  return x < 0 ? -r : r;
}

// ---------------------------------------------------------------- plumbing

interface Ctx {
  readonly batch: number | undefined;
  readonly feeds: Readonly<Record<string, HostTensor>>;
}

type Kernel<K extends Op> = (node: Node<K>, inputs: readonly HostTensor[], ctx: Ctx) => HostTensor[];

type Num = number | bigint;
type FloatData = Float32Array | Float64Array;

/** Element view for dtype-generic movement kernels (copying an element of any dtype into the same dtype). */
interface Elems {
  [i: number]: Num;
  readonly length: number;
}
const elems = (d: HostData): Elems => d as unknown as Elems;

function floats(t: HostTensor, op: Op): FloatData {
  if (t.data instanceof Float32Array || t.data instanceof Float64Array) return t.data;
  throw new Error(`reference ${op}: expected float data, got ${t.dtype} (shape inference should have rejected this)`);
}

function int64s(t: HostTensor, op: Op): BigInt64Array {
  if (t.data instanceof BigInt64Array) return t.data;
  throw new Error(`reference ${op}: expected int64 data, got ${t.dtype} (shape inference should have rejected this)`);
}

function make(dtype: DType, shape: readonly number[], data: HostData): HostTensor {
  return { dtype, shape: [...shape], data };
}

function copyOf(t: HostTensor): HostTensor {
  return make(t.dtype, t.shape, t.data.slice());
}

function dtypeError(op: Op, message: string): SaflError {
  return new SaflError(ErrorCode.DType, `${op}: ${message}`);
}

/** The batch size: the given one, or inferred from the first fed Input (in evaluation order) with a batch dim. */
function resolveBatch(order: readonly Node[], feeds: Readonly<Record<string, HostTensor>>, given: number | undefined): number | undefined {
  if (given !== undefined) {
    if (!Number.isInteger(given) || given < 1) throw argError(`evaluate: batch must be a positive integer, got ${given}`);
    return given;
  }
  for (const node of order) {
    if (node.op !== Op.Input) continue;
    const { name, shape } = (node as Node<Op.Input>).attrs;
    const at = shape.findIndex(isBatchDim);
    const fed = feeds[name];
    // A rank mismatch is reported by the Input check itself, with both shapes.
    if (at < 0 || fed === undefined || fed.shape.length !== shape.length) continue;
    const mul = (shape[at] as { batch: number }).batch;
    const size = fed.shape[at]!;
    if (size % mul !== 0 || size / mul < 1) {
      throw shapeError(`input "${name}": dimension ${at} of ${shapeStr(shape)} must be a positive multiple of ${mul}, got shape [${fed.shape.join(",")}]`);
    }
    return size / mul;
  }
  return undefined;
}

/** Guards the interpreter itself: every result must have the dtype and (resolved) shape inference promised. */
function checkOutputs(node: Node, outs: readonly HostTensor[], batch: number | undefined): void {
  if (outs.length !== node.outputs.length) throw new Error(`reference ${node.op}: produced ${outs.length} outputs, expected ${node.outputs.length}`);
  outs.forEach((t, i) => {
    const v = node.outputs[i]!;
    const shape = resolveShape(v.shape, batch);
    const ok = t.dtype === v.dtype && t.shape.length === shape.length && t.shape.every((d, k) => d === shape[k]) && t.data.length === sizeOf(t.shape);
    if (!ok) {
      throw new Error(`reference ${node.op}: output ${i} is ${t.dtype}[${t.shape.join(",")}], inference says ${v.dtype}${shapeStr(v.shape)} = [${shape.join(",")}]`);
    }
  });
}

// ---------------------------------------------------------------- index helpers

/** Row-major strides. */
function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

/** numpy multidirectional broadcasting of concrete shapes. */
function broadcast(op: string, ...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const e = s[i - (rank - s.length)] ?? 1;
      if (e === 1) continue;
      if (d !== 1 && d !== e) throw shapeError(`${op}: shapes ${shapes.map((x) => `[${x.join(",")}]`).join(" and ")} cannot be broadcast`);
      d = e;
    }
    out.push(d);
  }
  return out;
}

/** Strides that read `shape` as if broadcast to `out`: right-aligned, 0 along broadcast (size-1 or missing) dims. */
function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = stridesOf(shape);
  const lead = out.length - shape.length;
  return out.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : own[d - lead]!));
}

/**
 * Visits every index of `shape` in row-major order, calling fn(flat, offsets) where
 * offsets[k] = bases[k] + Σ_d index[d] · strides[k][d]. One odometer serves broadcasting, transposes,
 * slices, pads and reductions, so the index arithmetic is written (and checked) once. `offsets` is
 * reused between calls.
 */
function walk(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
  fn: (flat: number, offsets: readonly number[]) => void,
  bases?: readonly number[],
): void {
  const n = sizeOf(shape);
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const offs = bases ? [...bases] : strides.map(() => 0);
  for (let flat = 0; flat < n; flat++) {
    fn(flat, offs);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      for (let k = 0; k < strides.length; k++) offs[k]! += strides[k]![d];
      if (idx[d]! < shape[d]!) break;
      for (let k = 0; k < strides.length; k++) offs[k]! -= strides[k]![d] * shape[d]!;
      idx[d] = 0;
    }
  }
}

// ---------------------------------------------------------------- elementwise

function unaryFloat(f: (x: number) => number): Kernel<Op> {
  return (node, [x]) => {
    const a = floats(x, node.op);
    const out = allocate(x.dtype, a.length) as FloatData;
    for (let i = 0; i < a.length; i++) out[i] = f(a[i]!);
    return [make(x.dtype, x.shape, out)];
  };
}

/** ONNX Sign: -1, 0 or 1 (zero for both signed zeros); NaN stays NaN. */
const sign = (x: number): number => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : Number.NaN);

/**
 * C's pow (what ONNX runtimes call), which differs from Math.pow in two IEEE special cases:
 * pow(1, y) = 1 for any y (even NaN) and pow(-1, ±∞) = 1.
 */
function cpow(x: number, y: number): number {
  if (x === 1) return 1;
  if (x === -1 && !Number.isFinite(y) && !Number.isNaN(y)) return 1;
  return x ** y;
}

interface BinarySpec {
  float?: (a: number, b: number) => number;
  int?: (a: bigint, b: bigint) => bigint;
  /** Comparison producing bool; gets two numbers or two bigints (same dtype). */
  cmp?: (a: Num, b: Num) => boolean;
  /** Whether bool operands are meaningful (ONNX only allows them for Equal). */
  bool?: boolean;
}

/** Elementwise op of two same-dtype tensors with numpy broadcasting. */
function binary(spec: BinarySpec): Kernel<Op> {
  return (node, [a, b]) => {
    const dtype = a.dtype;
    if (dtype === "bool" && !spec.bool) throw dtypeError(node.op, `bool operands are not supported (ONNX ${node.op} has no bool kernel)`);
    const shape = broadcast(node.op, a.shape, b.shape);
    const strides = [broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape)];
    const x = a.data;
    const y = b.data;
    if (spec.cmp) {
      const out = new Uint8Array(sizeOf(shape));
      walk(shape, strides, (o, [i, j]) => {
        out[o] = spec.cmp!(x[i]!, y[j]!) ? 1 : 0;
      });
      return [make("bool", shape, out)];
    }
    const out = allocate(dtype, sizeOf(shape));
    if (dtype === "int64") {
      const f = spec.int;
      if (!f) throw dtypeError(node.op, "int64 operands are not supported");
      const xs = x as BigInt64Array;
      const ys = y as BigInt64Array;
      const os = out as BigInt64Array; // BigInt64Array storage wraps to 64 bits like the C++ kernels
      walk(shape, strides, (o, [i, j]) => {
        os[o] = f(xs[i]!, ys[j]!);
      });
    } else {
      const f = spec.float!;
      const xs = floats(a, node.op);
      const ys = floats(b, node.op);
      const os = out as FloatData;
      walk(shape, strides, (o, [i, j]) => {
        os[o] = f(xs[i]!, ys[j]!);
      });
    }
    return [make(dtype, shape, out)];
  };
}

function intDiv(a: bigint, b: bigint): bigint {
  // BigInt division truncates toward zero, as C++ integer division does.
  if (b === 0n) throw argError("Div: integer division by zero");
  return a / b;
}

/** Cast one element. Float -> int64 truncates toward zero; NaN, ±∞ and out-of-range values are an error. */
function castElems(from: HostTensor, to: DType): HostData {
  const n = from.data.length;
  const out = allocate(to, n);
  const src = from.data;
  for (let i = 0; i < n; i++) {
    const v = src[i]!;
    if (to === "bool") {
      (out as Uint8Array)[i] = typeof v === "bigint" ? (v !== 0n ? 1 : 0) : v !== 0 ? 1 : 0; // NaN is nonzero: true
    } else if (to === "int64") {
      if (typeof v === "bigint") (out as BigInt64Array)[i] = v;
      else {
        const t = Math.trunc(v);
        if (!Number.isFinite(t) || t >= 2 ** 63 || t < -(2 ** 63)) {
          throw argError(`Cast: ${from.dtype} value ${v} has no int64 representation`);
        }
        (out as BigInt64Array)[i] = BigInt(t);
      }
    } else if (to === "float32" && typeof v === "bigint") {
      (out as Float32Array)[i] = bigintToFloat32(v);
    } else {
      (out as FloatData)[i] = Number(v); // float32 storage rounds to nearest
    }
  }
  return out;
}

/**
 * Correctly rounded int64 -> float32. Math.fround(Number(v)) rounds twice (to float64, then float32)
 * and can land on the wrong side of a tie for |v| > 2^53; compare both candidates exactly instead.
 */
function bigintToFloat32(v: bigint): number {
  const f = Math.fround(Number(v));
  const bf = BigInt(f);
  if (bf === v) return f;
  // The other candidate: the float32 neighbour of f on v's side.
  const bits = new Float32Array([f]);
  const u = new Uint32Array(bits.buffer);
  const towardZero = (v < bf) === (f > 0);
  u[0] = towardZero ? u[0]! - 1 : u[0]! + 1;
  const g = bits[0]!;
  const df = bf > v ? bf - v : v - bf;
  const bg = BigInt(g);
  const dg = bg > v ? bg - v : v - bg;
  if (df !== dg) return df < dg ? f : g;
  // A tie: round to the one with an even significand.
  return (u[0]! & 1) === 0 ? g : f;
}

// ---------------------------------------------------------------- reductions

function reduce(kind: "sum" | "mean" | "max"): Kernel<Op.ReduceSum | Op.ReduceMean | Op.ReduceMax> {
  return (node, [x]) => {
    const { axes, keepdims } = node.attrs;
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const outShape = keepdims ? kept : x.shape.filter((_, i) => !axes.includes(i));
    const count = sizeOf(x.shape) / Math.max(1, sizeOf(kept));
    // Reading x as broadcast from the kept shape maps each element to the output slot it reduces into.
    const strides = [broadcastStrides(kept, x.shape)];
    const m = sizeOf(kept);
    if (x.dtype === "int64") {
      const xs = int64s(x, node.op);
      const acc = new BigInt64Array(m).fill(kind === "max" ? -(2n ** 63n) : 0n);
      walk(x.shape, strides, (i, [o]) => {
        const v = xs[i]!;
        if (kind === "max") {
          if (v > acc[o]!) acc[o] = v;
        } else acc[o] += v;
      });
      if (kind === "mean") {
        // Integer mean truncates toward zero, as an integer division of the sum does.
        for (let k = 0; k < m; k++) acc[k] = count === 0 ? 0n : acc[k]! / BigInt(count);
      }
      return [make("int64", outShape, acc)];
    }
    const xs = floats(x, node.op);
    const acc = new Float64Array(m).fill(kind === "max" ? Number.NEGATIVE_INFINITY : 0);
    walk(x.shape, strides, (i, [o]) => {
      const v = xs[i]!;
      if (kind === "max") {
        // NaN propagates (as numpy and current onnxruntime do): once NaN, always NaN.
        if (Number.isNaN(v) || v > acc[o]!) acc[o] = v;
      } else acc[o] += v;
    });
    if (kind === "mean") for (let k = 0; k < m; k++) acc[k] = acc[k]! / count;
    const out = allocate(x.dtype, m) as FloatData;
    out.set(acc);
    return [make(x.dtype, outShape, out)];
  };
}

/** outer × n × inner view of a shape around `axis`, for kernels that work along one axis. */
function around(shape: readonly number[], axis: number): [outer: number, n: number, inner: number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis]!, sizeOf(shape.slice(axis + 1))];
}

function softmaxKernel(logOut: boolean): Kernel<Op.Softmax | Op.LogSoftmax> {
  return (node, [x]) => {
    const xs = floats(x, node.op);
    const out = allocate(x.dtype, xs.length) as FloatData;
    const [outer, n, inner] = around(x.shape, node.attrs.axis);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const at = (k: number): number => (o * n + k) * inner + i;
        // Subtracting the max keeps exp from overflowing; it cancels in the ratio.
        let max = Number.NEGATIVE_INFINITY;
        for (let k = 0; k < n; k++) max = Math.max(max, xs[at(k)]!);
        let sum = 0;
        for (let k = 0; k < n; k++) sum += Math.exp(xs[at(k)]! - max);
        const logSum = Math.log(sum);
        for (let k = 0; k < n; k++) {
          const z = xs[at(k)]! - max;
          out[at(k)] = logOut ? z - logSum : Math.exp(z) / sum;
        }
      }
    }
    return [make(x.dtype, x.shape, out)];
  };
}

// ---------------------------------------------------------------- the table

/**
 * One kernel per op. The mapped type makes a missing op a compile error, as for the other per-op
 * tables. Kernels take a context rather than just the batch size because Input also needs the feeds.
 */
const kernels: { [K in Op]: Kernel<K> } = {
  [Op.Input]: (node, _inputs, ctx) => {
    const { name, dtype, shape } = node.attrs;
    const fed = ctx.feeds[name];
    if (fed === undefined) throw argError(`input "${name}" (${dtype}${shapeStr(shape)}) was not fed`);
    if (fed.dtype !== dtype) throw new SaflError(ErrorCode.DType, `input "${name}": expected dtype ${dtype}, got ${fed.dtype}`);
    const expected = shape.length === fed.shape.length ? resolveShape(shape, ctx.batch) : undefined;
    if (!expected || !expected.every((d, i) => d === fed.shape[i])) {
      const resolved = expected && shape.some(isBatchDim) ? ` = [${expected.join(",")}] (batch ${ctx.batch})` : "";
      throw shapeError(`input "${name}": expected shape ${shapeStr(shape)}${resolved}, got [${fed.shape.join(",")}]`);
    }
    // Also checks the array type and element count against the claimed dtype and shape.
    const t = tensor(dtype, fed.shape, fed.data, `input "${name}"`);
    return [copyOf(t)];
  },
  [Op.Constant]: (node) => {
    const { dtype, shape, data } = node.attrs;
    return [copyOf(tensor(dtype, shape, data, "Constant"))];
  },

  [Op.Identity]: (_node, [x]) => [copyOf(x)],
  [Op.Neg]: unaryFloat((x) => -x),
  [Op.Abs]: unaryFloat(Math.abs),
  [Op.Sign]: unaryFloat(sign),
  [Op.Exp]: unaryFloat(Math.exp),
  [Op.Log]: unaryFloat(Math.log),
  [Op.Sqrt]: unaryFloat(Math.sqrt),
  [Op.Tanh]: unaryFloat(Math.tanh),
  [Op.Erf]: unaryFloat(erf),
  // The ONNX/onnxruntime formula, kept literally (it underflows to 0 for x below about -8.3, as they do).
  [Op.Gelu]: unaryFloat((x) => x * 0.5 * (1 + erf(x / Math.SQRT2))),
  [Op.Cast]: (node, [x]) => [make(node.attrs.to, x.shape, castElems(x, node.attrs.to))],

  [Op.Add]: binary({ float: (a, b) => a + b, int: (a, b) => a + b }),
  [Op.Sub]: binary({ float: (a, b) => a - b, int: (a, b) => a - b }),
  [Op.Mul]: binary({ float: (a, b) => a * b, int: (a, b) => a * b }),
  [Op.Div]: binary({ float: (a, b) => a / b, int: intDiv }),
  [Op.Pow]: binary({ float: cpow }),
  // === and > compare values for both numbers and bigints; NaN is unequal to everything.
  [Op.Equal]: binary({ cmp: (a, b) => a === b, bool: true }),
  [Op.Greater]: binary({ cmp: (a, b) => a > b }),
  [Op.Where]: (_node, [c, a, b]) => {
    const shape = broadcast(Op.Where, c.shape, a.shape, b.shape);
    const cs = c.data;
    const xs = elems(a.data);
    const ys = elems(b.data);
    const out = allocate(a.dtype, sizeOf(shape));
    const os = elems(out);
    const strides = [c.shape, a.shape, b.shape].map((s) => broadcastStrides(s, shape));
    walk(shape, strides, (o, [k, i, j]) => {
      os[o] = cs[k] ? xs[i]! : ys[j]!;
    });
    return [make(a.dtype, shape, out)];
  },

  [Op.MatMul]: (node, [a, b]) => {
    const as = floats(a, node.op);
    const bs = floats(b, node.op);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const [m, k] = [a.shape[ra - 2]!, a.shape[ra - 1]!];
    const n = b.shape[rb - 1]!;
    const batchA = a.shape.slice(0, -2);
    const batchB = b.shape.slice(0, -2);
    const batch = broadcast("MatMul (batch dimensions)", batchA, batchB);
    const shape = [...batch, m, n];
    const out = allocate(a.dtype, sizeOf(shape)) as FloatData;
    // Strides over the batch dims count whole matrices.
    walk(batch, [broadcastStrides(batchA, batch), broadcastStrides(batchB, batch)], (bi, [ia, ib]) => {
      const oa = ia! * m * k;
      const ob = ib! * k * n;
      const oo = bi * m * n;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += as[oa + i * k + p]! * bs[ob + p * n + j]!;
          out[oo + i * n + j] = s;
        }
      }
    });
    return [make(a.dtype, shape, out)];
  },
  [Op.Gemm]: (node, [a, b, c]) => {
    const { transA, transB, alpha, beta } = node.attrs;
    const as = floats(a, node.op);
    const bs = floats(b, node.op);
    const [m, k] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
    const n = transB ? b.shape[0]! : b.shape[1]!;
    const A = (i: number, p: number): number => (transA ? as[p * m + i]! : as[i * k + p]!);
    const B = (p: number, j: number): number => (transB ? bs[j * k + p]! : bs[p * n + j]!);
    const shape = [m, n];
    const out = allocate(a.dtype, m * n) as FloatData;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += A(i, p) * B(p, j);
        out[i * n + j] = alpha * s;
      }
    }
    if (c) {
      // C is broadcast unidirectionally to [M, N].
      const cs = floats(c, node.op);
      if (broadcast("Gemm (bias C)", c.shape, shape).some((d, i) => d !== shape[i]) || c.shape.length > 2) {
        throw shapeError(`Gemm: C [${c.shape.join(",")}] does not broadcast to [${shape.join(",")}]`);
      }
      const sum = new Float64Array(out); // exact copy; add in float64 and round once on store
      walk(shape, [broadcastStrides(c.shape, shape)], (o, [i]) => {
        sum[o] = sum[o]! + beta * cs[i]!;
      });
      out.set(sum);
    }
    return [make(a.dtype, shape, out)];
  },

  [Op.ReduceSum]: reduce("sum"),
  [Op.ReduceMean]: reduce("mean"),
  [Op.ReduceMax]: reduce("max"),

  [Op.Softmax]: softmaxKernel(false),
  [Op.LogSoftmax]: softmaxKernel(true),
  [Op.LayerNormalization]: (node, [x, scale, bias]) => {
    const { axis, epsilon } = node.attrs;
    const xs = floats(x, node.op);
    const gs = floats(scale, node.op);
    const bs = floats(bias, node.op);
    const outer = sizeOf(x.shape.slice(0, axis));
    const n = sizeOf(x.shape.slice(axis));
    const y = allocate(x.dtype, xs.length) as FloatData;
    const mean = allocate(x.dtype, outer) as FloatData;
    const invStd = allocate(x.dtype, outer) as FloatData;
    for (let o = 0; o < outer; o++) {
      const base = o * n;
      // Two passes (mean, then the mean of squared deviations) avoid E[x²]-E[x]² cancellation.
      let s = 0;
      for (let j = 0; j < n; j++) s += xs[base + j]!;
      const mu = s / n;
      let v = 0;
      for (let j = 0; j < n; j++) v += (xs[base + j]! - mu) ** 2;
      const r = 1 / Math.sqrt(v / n + epsilon);
      for (let j = 0; j < n; j++) y[base + j] = (xs[base + j]! - mu) * r * gs[j]! + bs[j]!;
      mean[o] = mu;
      invStd[o] = r;
    }
    const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
    return [make(x.dtype, x.shape, y), make(x.dtype, statShape, mean), make(x.dtype, statShape, invStd)];
  },

  [Op.Reshape]: (node, [x], ctx) => {
    const shape = resolveShape(node.attrs.shape, ctx.batch);
    if (sizeOf(shape) !== x.data.length) throw shapeError(`Reshape: cannot reshape [${x.shape.join(",")}] to [${shape.join(",")}]`);
    return [make(x.dtype, shape, x.data.slice())];
  },
  [Op.Transpose]: (node, [x]) => {
    const { perm } = node.attrs;
    const shape = perm.map((p) => x.shape[p]!);
    const inStrides = stridesOf(x.shape);
    const xs = elems(x.data);
    const out = allocate(x.dtype, xs.length);
    const os = elems(out);
    // Output axis d walks input axis perm[d].
    walk(shape, [perm.map((p) => inStrides[p]!)], (o, [i]) => {
      os[o] = xs[i]!;
    });
    return [make(x.dtype, shape, out)];
  },
  [Op.Concat]: (node, xs) => {
    const { axis } = node.attrs;
    const first = xs[0]!;
    const shape = [...first.shape];
    shape[axis] = xs.reduce((acc, t) => acc + t.shape[axis]!, 0);
    const out = allocate(first.dtype, sizeOf(shape));
    const os = elems(out);
    const outStrides = stridesOf(shape);
    let at = 0;
    for (const t of xs) {
      const ts = elems(t.data);
      walk(t.shape, [outStrides], (i, [o]) => {
        os[o] = ts[i]!;
      }, [at * outStrides[axis]!]);
      at += t.shape[axis]!;
    }
    return [make(first.dtype, shape, out)];
  },
  [Op.Split]: (node, [x]) => {
    const { axis, sizes } = node.attrs;
    const xs = elems(x!.data);
    const inStrides = stridesOf(x!.shape);
    let at = 0;
    return sizes.map((size) => {
      const shape = x!.shape.map((d, i) => (i === axis ? size : d));
      const out = allocate(x!.dtype, sizeOf(shape));
      const os = elems(out);
      walk(shape, [inStrides], (o, [i]) => {
        os[o] = xs[i]!;
      }, [at * inStrides[axis]!]);
      at += size;
      return make(x!.dtype, shape, out);
    });
  },
  [Op.Slice]: (node, [x]) => {
    const { axes, starts, ends, steps } = node.attrs;
    const inStrides = stridesOf(x.shape);
    const shape = [...x.shape];
    const strides = [...inStrides];
    let base = 0;
    axes.forEach((a, k) => {
      shape[a] = Math.max(0, Math.ceil((ends[k]! - starts[k]!) / steps[k]!));
      strides[a] = inStrides[a]! * steps[k]!;
      base += starts[k]! * inStrides[a]!;
    });
    const xs = elems(x.data);
    const out = allocate(x.dtype, sizeOf(shape));
    const os = elems(out);
    walk(shape, [strides], (o, [i]) => {
      os[o] = xs[i]!;
    }, [base]);
    return [make(x.dtype, shape, out)];
  },
  [Op.Pad]: (node, [x]) => {
    const { pads } = node.attrs;
    const r = x.shape.length;
    const shape = x.shape.map((d, i) => d + pads[i]! + pads[i + r]!);
    const outStrides = stridesOf(shape);
    const out = allocate(x.dtype, sizeOf(shape)); // zero-filled: the pad value
    const os = elems(out);
    const xs = elems(x.data);
    const base = outStrides.reduce((acc, s, i) => acc + pads[i]! * s, 0);
    walk(x.shape, [outStrides], (i, [o]) => {
      os[o] = xs[i]!;
    }, [base]);
    return [make(x.dtype, shape, out)];
  },
  [Op.Gather]: (node, [x, indices]) => {
    const { axis } = node.attrs;
    const [outer, d, inner] = around(x.shape, axis);
    const idx = int64s(indices, node.op);
    const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
    const xs = elems(x.data);
    const out = allocate(x.dtype, sizeOf(shape));
    const os = elems(out);
    const m = idx.length;
    for (let j = 0; j < m; j++) {
      const k = normIndex(idx[j]!, d, Op.Gather, axis);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) os[(o * m + j) * inner + i] = xs[(o * d + k) * inner + i]!;
      }
    }
    return [make(x.dtype, shape, out)];
  },
  [Op.ScatterElements]: (node, [data, indices, updates]) => {
    const { axis, reduction } = node.attrs;
    const r = data.shape.length;
    for (let i = 0; i < r; i++) {
      if (i !== axis && indices.shape[i]! > data.shape[i]!) {
        throw shapeError(`ScatterElements: indices [${indices.shape.join(",")}] exceed data [${data.shape.join(",")}] on axis ${i}`);
      }
    }
    if (reduction === "add" && data.dtype === "bool") throw dtypeError(Op.ScatterElements, `reduction "add" on bool data is not supported`);
    const out = data.data.slice();
    const os = elems(out);
    const us = elems(updates.data);
    const idx = int64s(indices, node.op);
    const dataStrides = stridesOf(data.shape);
    const d = data.shape[axis]!;
    // Every coordinate but `axis` is the update's own; along `axis` it comes from indices.
    const strides = dataStrides.map((s, i) => (i === axis ? 0 : s));
    walk(updates.shape, [strides], (u, [o]) => {
      const at = o! + normIndex(idx[u]!, d, Op.ScatterElements, axis) * dataStrides[axis]!;
      const v = us[u]!;
      // Duplicates: "none" keeps the last write (ONNX leaves the order unspecified); "add" accumulates.
      os[at] = reduction === "add" ? addElems(os[at]!, v) : v;
    });
    return [make(data.dtype, data.shape, out)];
  },
  [Op.Expand]: (node, [x], ctx) => {
    const target = resolveShape(node.attrs.shape, ctx.batch);
    const shape = broadcast(Op.Expand, x.shape, target);
    const xs = elems(x.data);
    const out = allocate(x.dtype, sizeOf(shape));
    const os = elems(out);
    walk(shape, [broadcastStrides(x.shape, shape)], (o, [i]) => {
      os[o] = xs[i]!;
    });
    return [make(x.dtype, shape, out)];
  },
};

/** a + b for two elements of one dtype (numbers or bigints). */
function addElems(a: Num, b: Num): Num {
  return typeof a === "bigint" ? a + (b as bigint) : a + (b as number);
}

/** An index along an axis of size `d`; negative counts from the end, anything else out of range is an error. */
function normIndex(k: bigint, d: number, op: Op, axis: number): number {
  const i = Number(k) < 0 ? Number(k) + d : Number(k);
  if (i < 0 || i >= d) throw argError(`${op}: index ${k} is out of range for axis ${axis} of size ${d}`);
  return i;
}
