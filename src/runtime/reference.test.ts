/**
 * @module runtime/reference.test
 * Tests for the reference interpreter. Expected values are worked out by hand (the arithmetic is in
 * the comments) rather than produced by another implementation, because this interpreter is itself
 * the yardstick that gradient checks and the ONNX lowering are measured against.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import * as g from "../graph/builder.js";
import { type Value, apply, applyMulti } from "../graph/node.js";
import { Op } from "../graph/ops.js";
import { BATCH } from "../graph/shape.js";
import { erf, evaluate } from "./reference.js";
import { type HostTensor, f32, f64, i64 } from "../tensor.js";

const c64 = (data: readonly number[], shape: readonly number[]): Value => g.constant(data, shape, "float64");
const cI = (data: readonly number[], shape: readonly number[]): Value => g.constant(data, shape, "int64");
const cB = (data: readonly number[], shape: readonly number[]): Value => g.constant(data, shape, "bool");

/** Evaluates one output. */
function run(out: Value, feeds: Record<string, HostTensor> = {}, batch?: number): HostTensor {
  return evaluate([out], feeds, batch === undefined ? {} : { batch })[0]!;
}

/** Asserts dtype, shape and values; floats within a relative tolerance (exact by default). */
function expectTensor(t: HostTensor, dtype: string, shape: readonly number[], values: readonly (number | bigint)[], rel = 0): void {
  assert.equal(t.dtype, dtype);
  assert.deepEqual([...t.shape], [...shape]);
  const got = Array.from(t.data as ArrayLike<number | bigint>);
  assert.equal(got.length, values.length, `length of ${JSON.stringify(got.map(String))}`);
  got.forEach((v, i) => {
    const want = values[i]!;
    if (typeof want === "bigint" || rel === 0 || !Number.isFinite(want)) {
      assert.ok(Object.is(v, want) || v === want, `element ${i}: got ${v}, want ${want} (all: ${got.join(", ")})`);
    } else {
      const err = Math.abs((v as number) - want);
      assert.ok(err <= rel * Math.max(Math.abs(want), 1e-300), `element ${i}: got ${v}, want ${want} (error ${err})`);
    }
  });
}

/** Asserts `fn` throws a SaflError with `code` whose message contains every string in `parts`. */
function expectError(fn: () => unknown, code: ErrorCode, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SaflError, `not a SaflError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of parts) assert.ok(e.message.includes(p), `message "${e.message}" lacks "${p}"`);
    return true;
  });
}

describe("erf", () => {
  test("matches reference values to ~1 ulp", () => {
    // Values from a 30-digit computation, rounded to float64.
    const table: [number, number][] = [
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [-3, -0.9999779095030014],
      [0.1, 0.1124629160182849],
      [0.01, 0.011283415555849618],
      [-0.3, -0.3286267594591274],
      [1.25, 0.9229001282564583],
      [1.5, 0.9661051464753108],
      [2.5, 0.999593047982555],
      [3.5, 0.9999992569016276],
      [4, 0.9999999845827421],
      [5, 0.9999999999984626],
      [5.9, 0.9999999999999999],
      [1e-8, 1.1283791670955126e-8],
    ];
    for (const [x, want] of table) {
      const got = erf(x);
      assert.ok(Math.abs(got - want) <= 4e-16 * Math.abs(want), `erf(${x}) = ${got}, want ${want}`);
    }
  });

  test("edge values: odd symmetry, signed zero, saturation, NaN", () => {
    for (const x of [0.2, 0.9, 1.3, 2.7, 4.4]) assert.equal(erf(-x), -erf(x));
    assert.ok(Object.is(erf(0), 0));
    assert.ok(Object.is(erf(-0), -0));
    assert.equal(erf(6), 1);
    assert.equal(erf(-40), -1);
    assert.equal(erf(Number.POSITIVE_INFINITY), 1);
    assert.ok(Number.isNaN(erf(Number.NaN)));
  });
});

describe("sources and unary ops", () => {
  test("Input, Constant and Identity return copies that never alias feeds or constants", () => {
    const x = g.input("x", "float64", [2]);
    const k = c64([5, 6], [2]);
    const feed = f64([1, 2], [2]);
    const [a, b, c] = evaluate([g.identity(x), k, x], { x: feed });
    expectTensor(a!, "float64", [2], [1, 2]);
    a!.data[0] = 99;
    c!.data[1] = 99;
    b!.data[0] = 99;
    assert.deepEqual(Array.from(feed.data as Float64Array), [1, 2]);
    expectTensor(run(k), "float64", [2], [5, 6]);
  });

  test("Neg, Abs, Sign, Exp, Log, Sqrt, Tanh", () => {
    const x = c64([-2, 0, 0.5, 4], [4]);
    expectTensor(run(g.neg(x)), "float64", [4], [2, -0, -0.5, -4]);
    expectTensor(run(g.abs(x)), "float64", [4], [2, 0, 0.5, 4]);
    expectTensor(run(g.sign(x)), "float64", [4], [-1, 0, 1, 1]);
    expectTensor(run(g.sqrt(c64([0, 0.25, 4, 9], [4]))), "float64", [4], [0, 0.5, 2, 3]);
    // e^0 = 1, e^1 = e, e^-1 = 0.36787944117144233; ln 1 = 0, ln e² = 2, ln 2.
    expectTensor(run(g.exp(c64([0, 1, -1], [3]))), "float64", [3], [1, Math.E, 0.36787944117144233], 1e-15);
    expectTensor(run(g.log(c64([1, Math.E * Math.E, 2], [3]))), "float64", [3], [0, 2, Math.LN2], 1e-15);
    // tanh(0.5) = (e - 1)/(e + 1) = 0.46211715726000974.
    expectTensor(run(g.tanh(c64([0, 0.5, -0.5], [3]))), "float64", [3], [0, 0.46211715726000974, -0.46211715726000974], 1e-15);
    // log of a negative number and sqrt of one are NaN, as in IEEE arithmetic.
    expectTensor(run(g.log(c64([-1, 0], [2]))), "float64", [2], [Number.NaN, Number.NEGATIVE_INFINITY]);
    const s = run(g.sign(c64([Number.NaN, -0], [2])));
    assert.ok(Number.isNaN(s.data[0] as number));
    assert.equal(s.data[1], 0);
  });

  test("Erf and Gelu", () => {
    expectTensor(run(g.erf(c64([0.5, 1, 2, -3], [4]))), "float64", [4], [0.5204998778130465, 0.8427007929497149, 0.9953222650189527, -0.9999779095030014], 4e-16);
    // gelu(x) = x/2 · (1 + erf(x/√2)); erf(1/√2) = 0.6826894921370859, so gelu(1) = 0.8413447460685429,
    // gelu(-1) = -(1 - 0.6826894921370859)/2 = -0.15865525393145707, gelu(2) = 1 + erf(√2) = 1.9544997361036416.
    expectTensor(run(g.gelu(c64([1, -1, 0, 2], [4]))), "float64", [4], [0.8413447460685429, -0.15865525393145707, 0, 1.9544997361036416], 1e-15);
  });

  test("Cast between floats, int64 and bool", () => {
    // float -> int64 truncates toward zero.
    expectTensor(run(g.cast(c64([1.7, -1.7, 0, 2.5, -0.5], [5]), "int64")), "int64", [5], [1n, -1n, 0n, 2n, 0n]);
    expectTensor(run(g.cast(cI([3, -4], [2]), "float32")), "float32", [2], [3, -4]);
    expectTensor(run(g.cast(cB([1, 0], [2]), "float64")), "float64", [2], [1, 0]);
    expectTensor(run(g.cast(cB([1, 0], [2]), "int64")), "int64", [2], [1n, 0n]);
    // Anything nonzero (NaN included) is true.
    expectTensor(run(g.cast(c64([0, -0, 2, Number.NaN], [4]), "bool")), "bool", [4], [0, 0, 1, 1]);
    expectTensor(run(g.cast(cI([0, 7], [2]), "bool")), "bool", [2], [0, 1]);
    // float64 -> float32 rounds to nearest.
    const r = run(g.cast(c64([0.1], [1]), "float32"));
    assert.ok(r.data instanceof Float32Array);
    assert.equal(r.data[0], Math.fround(0.1));
    expectTensor(run(g.cast(g.constant([0.1], [1], "float32"), "float64")), "float64", [1], [Math.fround(0.1)]);
    // 2^53 + 2^29 + 1 is just above the midpoint of two float32s; rounding via float64 first would
    // land on the midpoint 2^53 + 2^29 and then round to even (down). Correct rounding goes up.
    const big = 2n ** 53n + 2n ** 29n + 1n;
    const rb = run(g.cast(g.constant(new BigInt64Array([big]), [1], "int64"), "float32"));
    assert.equal(rb.data[0], 2 ** 53 + 2 ** 30);
    expectError(() => run(g.cast(c64([Number.NaN], [1]), "int64")), ErrorCode.InvalidArgument, "Cast", "NaN");
  });
});

describe("broadcasting elementwise ops", () => {
  // a [2,1,3] = [[[0,1,2]],[[3,4,5]]], b [4,1] = [[10],[20],[30],[40]]: out[i,j,k] = a[i,0,k] + b[j,0].
  const a = c64([0, 1, 2, 3, 4, 5], [2, 1, 3]);
  const b = c64([10, 20, 30, 40], [4, 1]);

  test("Add [2,1,3] + [4,1] -> [2,4,3]", () => {
    expectTensor(run(g.add(a, b)), "float64", [2, 4, 3], [
      10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42,
      13, 14, 15, 23, 24, 25, 33, 34, 35, 43, 44, 45,
    ]);
  });

  test("Sub, Mul, Div against a scalar and a row", () => {
    const x = c64([1, 2, 3, 4, 5, 6], [2, 3]);
    const row = c64([1, 2, 4], [3]);
    expectTensor(run(g.sub(x, row)), "float64", [2, 3], [0, 0, -1, 3, 3, 2]);
    expectTensor(run(g.sub(10, x)), "float64", [2, 3], [9, 8, 7, 6, 5, 4]);
    expectTensor(run(g.mul(x, row)), "float64", [2, 3], [1, 4, 12, 4, 10, 24]);
    expectTensor(run(g.div(x, row)), "float64", [2, 3], [1, 1, 0.75, 4, 2.5, 1.5]);
    expectTensor(run(g.div(c64([1, -1, 0], [3]), 0)), "float64", [3], [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN]);
  });

  test("Pow, including C's special cases", () => {
    expectTensor(run(g.pow(c64([2, 4, 9, 2], [4]), c64([3, 0.5, -0.5, -1], [4]))), "float64", [4], [8, 2, 1 / 3, 0.5]);
    // pow(1, NaN) = 1 and pow(-1, ±∞) = 1 in C (Math.pow says NaN); a negative base to a fraction is NaN.
    expectTensor(
      run(g.pow(c64([1, -1, -1, -8, 0], [5]), c64([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1 / 3, 0], [5]))),
      "float64",
      [5],
      [1, 1, 1, Number.NaN, 1],
    );
  });

  test("int64 arithmetic: exact, division truncates toward zero", () => {
    const x = cI([7, -7, 6], [3]);
    expectTensor(run(g.div(x, cI([2], [1]))), "int64", [3], [3n, -3n, 3n]);
    expectTensor(run(g.add(x, cI([1], []))), "int64", [3], [8n, -6n, 7n]);
    expectTensor(run(g.mul(x, x)), "int64", [3], [49n, 49n, 36n]);
    expectTensor(run(g.sub(x, cI([10, 20, 30], [3]))), "int64", [3], [-3n, -27n, -24n]);
    expectError(() => run(g.div(x, cI([0], [1]))), ErrorCode.InvalidArgument, "division by zero");
  });

  test("Equal, Greater and Where", () => {
    const x = c64([1, 2, 3, Number.NaN], [4]);
    expectTensor(run(g.equal(x, 2)), "bool", [4], [0, 1, 0, 0]);
    expectTensor(run(g.greater(x, 1.5)), "bool", [4], [0, 1, 1, 0]);
    expectTensor(run(g.equal(cI([1, 2], [2, 1]), cI([1, 2, 3], [1, 3]))), "bool", [2, 3], [1, 0, 0, 0, 1, 0]);
    expectTensor(run(g.equal(cB([1, 0], [2]), cB([1, 1], [2]))), "bool", [2], [1, 0]);
    // cond [2,1] picks a whole row of a [3] or of b (a scalar).
    const w = g.where(cB([1, 0], [2, 1]), c64([1, 2, 3], [3]), -1);
    expectTensor(run(w), "float64", [2, 3], [1, 2, 3, -1, -1, -1]);
    expectTensor(run(g.where(cB([0, 1], [2]), cI([1, 2], [2]), cI([8, 9], [2]))), "int64", [2], [8n, 2n]);
  });

  test("bool arithmetic, which ONNX has no kernel for, is refused", () => {
    // Shape inference accepts these (see the report); the reference refuses them.
    expectError(() => run(g.add(cB([1], [1]), cB([1], [1]))), ErrorCode.DType, "Add", "bool");
    expectError(() => run(g.greater(cB([1], [1]), cB([0], [1]))), ErrorCode.DType, "Greater", "bool");
  });

  test("float32 graphs store float32 results", () => {
    const x = g.input("x", "float32", [2]);
    const y = g.add(x, g.constant([0.2, 0.7], [2], "float32"));
    const out = run(y, { x: f32([0.1, 1e-8], [2]) });
    assert.ok(out.data instanceof Float32Array);
    // Each operand is a float32 and the sum is rounded to float32 again.
    assert.equal(out.data[0], Math.fround(Math.fround(0.1) + Math.fround(0.2)));
    assert.equal(out.data[1], Math.fround(Math.fround(1e-8) + Math.fround(0.7)));
    const r64 = run(g.add(c64([0.1], [1]), c64([0.2], [1])));
    assert.ok(r64.data instanceof Float64Array);
    assert.equal(r64.data[0], 0.1 + 0.2);
  });
});

describe("products", () => {
  // A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]]:
  // AB = [[1·7+2·9+3·11, 1·8+2·10+3·12], [4·7+5·9+6·11, 4·8+5·10+6·12]] = [[58,64],[139,154]].
  const A = [1, 2, 3, 4, 5, 6];
  const B = [7, 8, 9, 10, 11, 12];

  test("MatMul 2x3 @ 3x2", () => {
    expectTensor(run(g.matmul(c64(A, [2, 3]), c64(B, [3, 2]))), "float64", [2, 2], [58, 64, 139, 154]);
  });

  test("MatMul broadcasts batch dims", () => {
    // [2,2,2] @ [2,2]: I·M = M; [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]].
    const a = c64([1, 0, 0, 1, 1, 2, 3, 4], [2, 2, 2]);
    const m = c64([5, 6, 7, 8], [2, 2]);
    expectTensor(run(g.matmul(a, m)), "float64", [2, 2, 2], [5, 6, 7, 8, 19, 22, 43, 50]);
    // [2,1,1,2] @ [3,2,1]: every row vector [r0,r1] meets every column [c0,c1]: r0·c0 + r1·c1.
    const rows = c64([1, 2, 3, 4], [2, 1, 1, 2]);
    const cols = c64([1, 0, 0, 1, 1, 1], [3, 2, 1]);
    expectTensor(run(g.matmul(rows, cols)), "float64", [2, 3, 1, 1], [1, 2, 3, 3, 4, 7]);
  });

  test("Gemm with transA, transB, alpha, beta and a broadcast C", () => {
    // Aᵀ and Bᵀ are stored, so the product is the AB above; 2·AB + 0.5·[10,20] per row.
    const At = c64([1, 4, 2, 5, 3, 6], [3, 2]);
    const Bt = c64([7, 9, 11, 8, 10, 12], [2, 3]);
    const y = g.gemm(At, Bt, c64([10, 20], [2]), { transA: true, transB: true, alpha: 2, beta: 0.5 });
    expectTensor(run(y), "float64", [2, 2], [121, 138, 283, 318]);
    // No C, no transposes.
    expectTensor(run(g.gemm(c64(A, [2, 3]), c64(B, [3, 2]))), "float64", [2, 2], [58, 64, 139, 154]);
    // C [2,1] broadcast along columns.
    expectTensor(run(g.gemm(c64(A, [2, 3]), c64(B, [3, 2]), c64([1, -1], [2, 1]))), "float64", [2, 2], [59, 65, 138, 153]);
    // linear(x, W, b) = x·Wᵀ + b is a transB Gemm: W = Bᵀ stored [out, in].
    expectTensor(run(g.linear(c64(A, [2, 3]), Bt, c64([1, 1], [2]))), "float64", [2, 2], [59, 65, 140, 155]);
  });
});

describe("reductions", () => {
  // x = [[1,5,3],[4,2,6]]
  const x = c64([1, 5, 3, 4, 2, 6], [2, 3]);

  test("ReduceSum, ReduceMean, ReduceMax with and without keepdims", () => {
    expectTensor(run(g.sum(x, 1)), "float64", [2], [9, 12]);
    expectTensor(run(g.sum(x)), "float64", [], [21]);
    expectTensor(run(g.mean(x, 0, true)), "float64", [1, 3], [2.5, 3.5, 4.5]);
    expectTensor(run(g.mean(x)), "float64", [], [3.5]);
    expectTensor(run(g.max(x, 1, true)), "float64", [2, 1], [5, 6]);
    expectTensor(run(g.max(x, -2)), "float64", [3], [4, 5, 6]);
    // [2,2,2] summed over axes 0 and 2: out[j] = Σ_i Σ_k x[i,j,k]; x = 0..7 -> [0+1+4+5, 2+3+6+7].
    expectTensor(run(g.sum(c64([0, 1, 2, 3, 4, 5, 6, 7], [2, 2, 2]), [0, 2], true)), "float64", [1, 2, 1], [10, 18]);
    // Empty axes: the IR means "reduce nothing".
    expectTensor(run(g.sum(x, [])), "float64", [2, 3], [1, 5, 3, 4, 2, 6]);
  });

  test("ReduceMax propagates NaN; int64 reductions are exact", () => {
    const r = run(g.max(c64([1, Number.NaN, 3, 4, 5, 6], [2, 3]), 1));
    assert.ok(Number.isNaN(r.data[0] as number));
    assert.equal(r.data[1], 6);
    const xi = cI([1, -5, 3, 4], [2, 2]);
    expectTensor(run(g.sum(xi, 0)), "int64", [2], [4n, -1n]);
    expectTensor(run(g.max(xi, 1)), "int64", [2], [1n, 4n]);
    // Integer mean truncates toward zero: (1-5)/2 = -2, (3+4)/2 = 3.
    expectTensor(run(g.mean(xi, 1)), "int64", [2], [-2n, 3n]);
  });
});

describe("normalization", () => {
  test("Softmax and LogSoftmax of [1,2,3]", () => {
    // e^(x-3) = [e^-2, e^-1, 1], sum = 1.5032147244080551; softmax = [0.0900..., 0.2447..., 0.6652...].
    const sm = [0.09003057317038046, 0.24472847105479764, 0.6652409557748218];
    expectTensor(run(g.softmax(c64([1, 2, 3], [3]))), "float64", [3], sm, 1e-15);
    // log softmax = x - 3 - ln(1.5032147244080551) = x - 3.4076059644443806.
    const lsm = [-2.4076059644443806, -1.4076059644443804, -0.4076059644443804];
    expectTensor(run(g.logSoftmax(c64([1, 2, 3], [3]))), "float64", [3], lsm, 1e-15);
    // Shift invariance: huge logits do not overflow because the max is subtracted first.
    expectTensor(run(g.softmax(c64([1001, 1002, 1003], [3]))), "float64", [3], sm, 1e-15);
    expectTensor(run(g.logSoftmax(c64([-1001, -1000, -999], [3]))), "float64", [3], lsm, 1e-15);
  });

  test("Softmax along a leading axis", () => {
    // [[0, ln 3], [0, 0]] along axis 0: column 0 = [1/2, 1/2]; column 1 = [3/4, 1/4].
    const x = c64([0, Math.log(3), 0, 0], [2, 2]);
    expectTensor(run(g.softmax(x, 0)), "float64", [2, 2], [0.5, 0.75, 0.5, 0.25], 1e-15);
  });

  test("LayerNormalization of [1,2,3,4]: Y, Mean, InvStdDev", () => {
    // Row 0: mean 2.5, population variance (2.25+0.25+0.25+2.25)/4 = 1.25; with eps 0.75, 1/√2.
    //   Y = [-1.5,-0.5,0.5,1.5]/√2 · [1,2,1,2] + [0,0,1,1] = [-1.0606601717798212, -0.7071067811865475, 1.3535533905932737, 3.1213203435596424].
    // Row 1 (constant 2): variance 0, so InvStdDev = 1/√0.75 = 1.1547005383792517 and Y = bias.
    const x = c64([1, 2, 3, 4, 2, 2, 2, 2], [2, 4]);
    const scale = c64([1, 2, 1, 2], [4]);
    const bias = c64([0, 0, 1, 1], [4]);
    const [y, mean, inv] = applyMulti(Op.LayerNormalization, [x, scale, bias], { axis: 1, epsilon: 0.75 });
    const [ty, tm, ti] = evaluate([y!, mean!, inv!], {});
    expectTensor(ty!, "float64", [2, 4], [-1.0606601717798212, -0.7071067811865475, 1.3535533905932737, 3.1213203435596424, 0, 0, 1, 1], 1e-15);
    expectTensor(tm!, "float64", [2, 1], [2.5, 2]);
    expectTensor(ti!, "float64", [2, 1], [0.7071067811865475, 1.1547005383792517], 1e-15);
    // The builder's layerNorm is output 0; with the default eps 1e-5, invstd = 1/√1.25001.
    const ln = run(g.layerNorm(c64([1, 2, 3, 4], [4]), c64([1, 1, 1, 1], [4]), c64([0, 0, 0, 0], [4])));
    const r = 1 / Math.sqrt(1.25 + 1e-5);
    expectTensor(ln, "float64", [4], [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r], 1e-15);
  });

  test("LayerNormalization over several trailing dims", () => {
    // x [2,1,2] normalized from axis 0 (all 4 values 1,2,3,4): stats have shape [1,1,1].
    const x = c64([1, 2, 3, 4], [2, 1, 2]);
    const [y, mean, inv] = applyMulti(Op.LayerNormalization, [x, c64([1, 1, 1, 1], [2, 1, 2]), c64([0, 0, 0, 0], [2, 1, 2])], {
      axis: 0,
      epsilon: 0.75,
    });
    const [ty, tm, ti] = evaluate([y!, mean!, inv!], {});
    const h = Math.SQRT1_2;
    expectTensor(ty!, "float64", [2, 1, 2], [-1.5 * h, -0.5 * h, 0.5 * h, 1.5 * h], 1e-15);
    expectTensor(tm!, "float64", [1, 1, 1], [2.5]);
    expectTensor(ti!, "float64", [1, 1, 1], [h], 1e-15);
  });
});

describe("movement", () => {
  const iota = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

  test("Reshape keeps row-major order", () => {
    expectTensor(run(g.reshape(c64(iota(6), [2, 3]), [3, -1])), "float64", [3, 2], iota(6));
    expectTensor(run(g.unsqueeze(cI([4, 5], [2]), 0)), "int64", [1, 2], [4n, 5n]);
  });

  test("Transpose of a 2x3x4 by perm [2,0,1]", () => {
    // x[i,j,k] = 12i + 4j + k; out[k,i,j] = x[i,j,k].
    expectTensor(run(g.transpose(c64(iota(24), [2, 3, 4]), [2, 0, 1])), "float64", [4, 2, 3], [
      0, 4, 8, 12, 16, 20,
      1, 5, 9, 13, 17, 21,
      2, 6, 10, 14, 18, 22,
      3, 7, 11, 15, 19, 23,
    ]);
    expectTensor(run(g.mT(cB([1, 0, 0, 1, 1, 0], [2, 3]))), "bool", [3, 2], [1, 1, 0, 1, 0, 0]);
  });

  test("Concat along an inner axis", () => {
    const a = c64([1, 2], [2, 1]);
    const b = c64([3, 4, 5, 6], [2, 2]);
    expectTensor(run(g.concat([a, b, a], 1)), "float64", [2, 4], [1, 3, 4, 1, 2, 5, 6, 2]);
    expectTensor(run(g.concat([cI([1], [1]), cI([2, 3], [2])], 0)), "int64", [3], [1n, 2n, 3n]);
  });

  test("Slice with steps, on several axes, and with negative starts", () => {
    expectTensor(run(g.slice(c64(iota(10), [10]), 0, 1, 8, 2)), "float64", [4], [1, 3, 5, 7]);
    expectTensor(run(g.slice(c64(iota(10), [10]), 0, -3, 100)), "float64", [3], [7, 8, 9]);
    // x [3,4] = 0..11; rows 1..3, columns 0 and 3 (step 3).
    const s = apply(Op.Slice, [c64(iota(12), [3, 4])], { axes: [0, 1], starts: [1, 0], ends: [3, 4], steps: [1, 3] });
    expectTensor(run(s), "float64", [2, 2], [4, 7, 8, 11]);
    // An empty slice.
    expectTensor(run(g.slice(c64(iota(4), [4]), 0, 2, 2)), "float64", [0], []);
  });

  test("Pad with zeros", () => {
    // [[1,2],[3,4]] with one row before and two columns after.
    expectTensor(run(g.pad(c64([1, 2, 3, 4], [2, 2]), [1, 0, 0, 2])), "float64", [3, 4], [0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0]);
    expectTensor(run(g.pad(cI([7], [1]), [2, 1])), "int64", [4], [0n, 0n, 7n, 0n]);
  });

  test("Gather with negative indices", () => {
    const x = c64([1, 2, 3, 4, 5, 6], [3, 2]);
    // Rows [[0,-1],[1,0]] -> [[row0,row2],[row1,row0]].
    expectTensor(run(g.gather(x, cI([0, -1, 1, 0], [2, 2]), 0)), "float64", [2, 2, 2], [1, 2, 5, 6, 3, 4, 1, 2]);
    // Column -1 of each row.
    expectTensor(run(g.gather(x, cI([-1], [1]), 1)), "float64", [3, 1], [2, 4, 6]);
    // A scalar index drops the axis.
    expectTensor(run(g.gather(x, cI([-2], []), 0)), "float64", [2], [3, 4]);
    expectError(() => run(g.gather(x, cI([3], [1]), 0)), ErrorCode.InvalidArgument, "Gather", "index 3", "size 3");
    expectError(() => run(g.gather(x, cI([-4], [1]), 0)), ErrorCode.InvalidArgument, "index -4");
  });

  test("ScatterElements: add accumulates duplicates, none overwrites", () => {
    // Indices [0,2,0,-1] into [1,1,1,1]: slot 0 gets 10+30, slot 2 gets 20, slot 3 gets 40.
    const data = c64([1, 1, 1, 1], [4]);
    const idx = cI([0, 2, 0, -1], [4]);
    const upd = c64([10, 20, 30, 40], [4]);
    expectTensor(run(g.scatterAdd(data, idx, upd)), "float64", [4], [41, 1, 21, 41]);
    // Along axis 1 of a [2,3] with [2,2] indices: row 0 adds 1+2 at column 1, row 1 adds 3 at 2 and 4 at 0.
    const z = c64([0, 0, 0, 0, 0, 0], [2, 3]);
    expectTensor(run(g.scatterAdd(z, cI([1, 1, 2, 0], [2, 2]), c64([1, 2, 3, 4], [2, 2]), 1)), "float64", [2, 3], [0, 3, 0, 4, 0, 3]);
    // int64 data.
    expectTensor(run(g.scatterAdd(cI([0, 0], [2]), cI([1, 1], [2]), cI([5, 6], [2]))), "int64", [2], [0n, 11n]);
    const none = apply(Op.ScatterElements, [data, cI([3, 1], [2]), c64([7, 8], [2])], { axis: 0, reduction: "none" });
    expectTensor(run(none), "float64", [4], [1, 8, 1, 7]);
    expectError(() => run(g.scatterAdd(data, cI([4], [1]), c64([1], [1]))), ErrorCode.InvalidArgument, "ScatterElements", "index 4");
  });

  test("Expand [3,1] -> [2,3,4]", () => {
    // out[i,j,k] = x[j].
    const e = run(g.expand(c64([1, 2, 3], [3, 1]), [2, 3, 4]));
    expectTensor(e, "float64", [2, 3, 4], [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    // A target dim of 1 keeps the input's dim (numpy broadcast of both shapes).
    expectTensor(run(g.expand(c64([1, 2], [1, 2]), [3, 1])), "float64", [3, 2], [1, 2, 1, 2, 1, 2]);
  });
});

describe("batch dimension", () => {
  // y = x @ W + rowsum(x)·1 for x [B,3], W = [[1,0],[0,1],[1,1]]: per row [x0+x2, x1+x2] + (x0+x1+x2).
  function graph(): { y: Value; flat: Value; e: Value } {
    const x = g.input("x", "float64", [BATCH, 3]);
    const w = c64([1, 0, 0, 1, 1, 1], [3, 2]);
    const y = g.add(g.matmul(x, w), g.sum(x, 1, true));
    const flat = g.reshape(y, [-1]); // [2B]
    const e = g.add(x, g.expand(c64([10, 20, 30], [1, 3]), [BATCH, 3]));
    return { y, flat, e };
  }
  const rows = (b: number): number[] => Array.from({ length: 3 * b }, (_, i) => i);
  const expectedY = (b: number): number[] => {
    const out: number[] = [];
    for (let r = 0; r < b; r++) {
      const [x0, x1, x2] = [3 * r, 3 * r + 1, 3 * r + 2];
      const s = x0 + x1 + x2;
      out.push(x0 + x2 + s, x1 + x2 + s);
    }
    return out;
  };

  for (const b of [2, 5]) {
    test(`[BATCH, 3] input with batch ${b}, given and inferred`, () => {
      const { y, flat, e } = graph();
      const feeds = { x: f64(rows(b), [b, 3]) };
      for (const opts of [{ batch: b }, {}]) {
        const [ty, tf, te] = evaluate([y, flat, e], feeds, opts);
        expectTensor(ty!, "float64", [b, 2], expectedY(b));
        expectTensor(tf!, "float64", [2 * b], expectedY(b));
        expectTensor(te!, "float64", [b, 3], rows(b).map((v, i) => v + [10, 20, 30][i % 3]!));
      }
    });
  }

  test("a multiple of the batch is divided out when inferring", () => {
    // t [2B, 1] fed [6,1] means batch 3; x [B, 3] must then be [3,3].
    const t = g.input("t", "float64", [{ batch: 2 }, 1]);
    const x = g.input("x", "float64", [BATCH, 3]);
    const y = g.add(g.reshape(t, [BATCH, 2]), g.sum(x, 1, true));
    const out = evaluate([y], { t: f64([1, 2, 3, 4, 5, 6], [6, 1]), x: f64(Array(9).fill(1), [3, 3]) })[0]!;
    expectTensor(out, "float64", [3, 2], [4, 5, 6, 7, 8, 9]);
    expectError(() => evaluate([y], { t: f64([1, 2, 3], [3, 1]), x: f64([1, 1, 1], [1, 3]) }), ErrorCode.Shape, `"t"`, "multiple of 2");
    // Inputs that disagree on the batch size.
    expectError(() => evaluate([y], { t: f64([1, 2, 3, 4], [4, 1]), x: f64(Array(9).fill(1), [3, 3]) }), ErrorCode.Shape, `"x"`, "[B,3]", "[2,3]", "[3,3]");
  });
});

describe("errors and evaluation", () => {
  const x = g.input("x", "float64", [BATCH, 3]);
  const y = g.sum(x, 1);

  test("a missing feed names the input", () => {
    expectError(() => evaluate([y], {}), ErrorCode.InvalidArgument, `"x"`, "not fed");
    expectError(() => evaluate([y], { w: f64([1, 2, 3], [1, 3]) }), ErrorCode.InvalidArgument, `"x"`);
  });

  test("a wrongly shaped feed names the input, the expected and the actual shape", () => {
    expectError(() => evaluate([y], { x: f64([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]) }), ErrorCode.Shape, `"x"`, "[B,3]", "[2,3]", "[2,4]");
    expectError(() => evaluate([y], { x: f64([1, 2, 3], [3]) }), ErrorCode.Shape, `"x"`, "[B,3]", "[3]");
    expectError(() => evaluate([y], { x: f64([1, 2, 3, 4, 5, 6], [2, 3]) }, { batch: 5 }), ErrorCode.Shape, `"x"`, "[5,3]", "[2,3]");
    const s = g.input("s", "float32", [2, 2]);
    expectError(() => evaluate([s], { s: f32([1, 2], [1, 2]) }), ErrorCode.Shape, `"s"`, "[2,2]", "[1,2]");
  });

  test("a feed of the wrong dtype names the input and both dtypes", () => {
    expectError(() => evaluate([y], { x: f32([1, 2, 3], [1, 3]) }), ErrorCode.DType, `"x"`, "float64", "float32");
    const idx = g.input("idx", "int64", [2]);
    expectError(() => evaluate([idx], { idx: f64([1, 2], [2]) }), ErrorCode.DType, `"idx"`, "int64", "float64");
    // A tensor whose array does not match its claimed dtype.
    const bad = { dtype: "float64", shape: [1, 3], data: new Float32Array(3) } as const;
    expectError(() => evaluate([y], { x: bad }), ErrorCode.DType, `"x"`, "Float64Array");
  });

  test("an invalid batch option is rejected", () => {
    expectError(() => evaluate([y], { x: f64([1, 2, 3], [1, 3]) }, { batch: 0 }), ErrorCode.InvalidArgument, "batch");
  });

  test("shared subgraphs are evaluated once and outputs may repeat", () => {
    const a = g.input("a", "int64", [2]);
    const twice = g.add(a, a);
    const outs = evaluate([twice, g.mul(twice, twice), twice], { a: i64([1, 2], [2]) });
    expectTensor(outs[0]!, "int64", [2], [2n, 4n]);
    expectTensor(outs[1]!, "int64", [2], [4n, 16n]);
    expectTensor(outs[2]!, "int64", [2], [2n, 4n]);
  });

  test("a small float64 model end to end: mean cross-entropy", () => {
    // Logits [[0, ln 3], [0, 0]], labels [1, 0]: losses -ln(3/4) and -ln(1/2); mean = (ln 4/3 + ln 2)/2.
    const logits = g.input("logits", "float64", [BATCH, 2]);
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.crossEntropy(logits, labels);
    const out = run(loss, { logits: f64([0, Math.log(3), 0, 0], [2, 2]), labels: i64([1, 0], [2]) });
    expectTensor(out, "float64", [], [(Math.log(4 / 3) + Math.log(2)) / 2], 1e-15);
  });
});
