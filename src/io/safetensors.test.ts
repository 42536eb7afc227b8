/**
 * @module io/safetensors.test
 * Tests for the safetensors reader/writer: round trips for every dtype, hand-built byte fixtures
 * (so the parser is checked against files not produced by our writer), float16/bfloat16 conversion
 * against known bit patterns and a brute-force nearest-value reference, rejection of every malformed
 * header case, and the atomic file writer.
 */

import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import {
  bfloat16BitsToFloat32,
  DTYPE_ITEMSIZE,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
  fromBigInt64,
  fromFloat32,
  fromFloat64,
  parseSafetensors,
  type SafetensorsDType,
  serializeSafetensors,
  type TensorEntry,
  toBigInt64,
  toFloat32,
  toFloat64,
} from "./safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensors-file.js";

// ---------------------------------------------------------------------------------------------
// Independent fixture builder: does not use any code from the module under test.

/** Builds a file from a literal header string and data bytes; pads the header with spaces to 8. */
function buildFile(headerJson: string, data: ArrayLike<number> = [], opts: { pad?: boolean; lengthOverride?: bigint } = {}): Uint8Array {
  let header = Buffer.from(headerJson, "utf8");
  if (opts.pad !== false) {
    const padTo = Math.ceil(header.length / 8) * 8;
    header = Buffer.concat([header, Buffer.alloc(padTo - header.length, 0x20)]);
  }
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(opts.lengthOverride ?? BigInt(header.length));
  const out = Buffer.concat([prefix, header, Buffer.from(Array.from(data))]);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Copies bytes into a fresh ArrayBuffer at an odd byte offset, so nothing inside is aligned. */
function misaligned(bytes: Uint8Array): Uint8Array {
  const buf = new ArrayBuffer(bytes.byteLength + 3);
  const view = new Uint8Array(buf, 1, bytes.byteLength);
  view.set(bytes);
  return view;
}

function expectIo(fn: () => unknown, ...fragments: string[]): SaflError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SaflError, `expected a SaflError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.Io, caught.message);
  for (const f of fragments) assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(f)}`);
  return caught;
}

const f32le = (...xs: number[]) => {
  const b = Buffer.alloc(xs.length * 4);
  for (const [i, x] of xs.entries()) b.writeFloatLE(x, i * 4);
  return [...b];
};

// ---------------------------------------------------------------------------------------------

describe("parseSafetensors on hand-built files", () => {
  test("reads F32, F16, BF16, F64, I64, I32, U8 and BOOL with exact values and metadata", () => {
    const header =
      '{"__metadata__":{"format":"pt","note":"héllo"},' +
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},' +
      '"c":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]},' +
      '"d":{"dtype":"F64","shape":[],"data_offsets":[16,24]},' +
      '"e":{"dtype":"I64","shape":[1],"data_offsets":[24,32]},' +
      '"f":{"dtype":"I32","shape":[1],"data_offsets":[32,36]},' +
      '"g":{"dtype":"U8","shape":[2],"data_offsets":[36,38]},' +
      '"h":{"dtype":"BOOL","shape":[2],"data_offsets":[38,40]}}';
    const data = [
      ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0], // F32 1.0, -2.5
      ...[0x00, 0x3c, 0x00, 0xc0], // F16 1.0, -2.0
      ...[0x80, 0x3f, 0x40, 0x40], // BF16 1.0, 3.0
      ...[0, 0, 0, 0, 0, 0, 0xf0, 0x3f], // F64 1.0
      ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // I64 -1
      ...[0x02, 0x01, 0x00, 0x00], // I32 258
      ...[7, 255], // U8
      ...[1, 0], // BOOL
    ];
    const file = parseSafetensors(buildFile(header, data), "fixture.safetensors");
    assert.deepEqual(file.metadata, { format: "pt", note: "héllo" });
    assert.deepEqual([...file.tensors.keys()], ["a", "b", "c", "d", "e", "f", "g", "h"]);
    const t = (n: string) => file.tensors.get(n)!;
    assert.equal(t("a").dtype, "F32");
    assert.deepEqual(t("a").shape, [2]);
    assert.deepEqual([...toFloat32(t("a"))], [1, -2.5]);
    assert.deepEqual(t("b").shape, [1, 2]);
    assert.deepEqual([...toFloat32(t("b"))], [1, -2]);
    assert.deepEqual([...toFloat32(t("c"))], [1, 3]);
    assert.deepEqual(t("d").shape, []);
    assert.deepEqual([...toFloat64(t("d"))], [1]);
    assert.deepEqual([...toBigInt64(t("e"))], [-1n]);
    assert.deepEqual([...toFloat32(t("e"))], [-1]);
    assert.deepEqual([...toBigInt64(t("f"))], [258n]);
    assert.deepEqual([...toFloat64(t("g"))], [7, 255]);
    assert.deepEqual([...toBigInt64(t("h"))], [1n, 0n]);
    assert.deepEqual([...toFloat32(t("h"))], [1, 0]);
  });

  test("tensor data are views into the input (no copy)", () => {
    const bytes = buildFile('{"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}', [1, 2, 3]);
    const x = parseSafetensors(bytes).tensors.get("x")!;
    assert.equal(x.data.buffer, bytes.buffer);
    assert.deepEqual([...x.data], [1, 2, 3]);
  });

  test("unpadded header, empty header, empty tensors and zero-dim shapes", () => {
    const f = parseSafetensors(
      buildFile('{"z":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"s":{"dtype":"I8","shape":[],"data_offsets":[0,1]}}', [0xfe], {
        pad: false,
      }),
    );
    assert.deepEqual([...toFloat32(f.tensors.get("z")!)], []);
    assert.deepEqual([...toBigInt64(f.tensors.get("s")!)], [-2n]);
    const empty = parseSafetensors(buildFile("{}"));
    assert.equal(empty.tensors.size, 0);
    assert.deepEqual(empty.metadata, {});
  });

  test("accepts gaps and trailing bytes; orders tensors by offset", () => {
    const header = '{"late":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"early":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const f = parseSafetensors(buildFile(header, [...f32le(1.5), 9, 9, 9, 9, ...f32le(-0.25), 7, 7]));
    assert.deepEqual([...f.tensors.keys()], ["early", "late"]);
    assert.deepEqual([...toFloat32(f.tensors.get("early")!)], [1.5]);
    assert.deepEqual([...toFloat32(f.tensors.get("late")!)], [-0.25]);
  });

  test("works when the data are not aligned within the ArrayBuffer", () => {
    const header =
      '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F64","shape":[1],"data_offsets":[12,20]},' +
      '"c":{"dtype":"I64","shape":[1],"data_offsets":[20,28]},"d":{"dtype":"I32","shape":[1],"data_offsets":[28,32]}}';
    const f64 = Buffer.alloc(8);
    f64.writeDoubleLE(Math.PI);
    const i64 = Buffer.alloc(8);
    i64.writeBigInt64LE(-1234567890123n);
    const i32 = Buffer.alloc(4);
    i32.writeInt32LE(-7);
    const bytes = misaligned(buildFile(header, [...f32le(1, 2, 3), ...f64, ...i64, ...i32], { pad: false }));
    assert.notEqual(bytes.byteOffset % 4, 0);
    const f = parseSafetensors(bytes);
    assert.deepEqual([...toFloat32(f.tensors.get("a")!)], [1, 2, 3]);
    assert.deepEqual([...toFloat64(f.tensors.get("b")!)], [Math.PI]);
    assert.deepEqual([...toBigInt64(f.tensors.get("c")!)], [-1234567890123n]);
    assert.deepEqual([...toBigInt64(f.tensors.get("d")!)], [-7n]);
  });
});

describe("serializeSafetensors", () => {
  const all: SafetensorsDType[] = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"];

  test("round trip for every dtype, byte-exact", () => {
    const tensors = new Map<string, TensorEntry>();
    for (const [k, dtype] of all.entries()) {
      const shape = [2, 3];
      const data = new Uint8Array(6 * DTYPE_ITEMSIZE[dtype]);
      for (let i = 0; i < data.length; i++) data[i] = dtype === "BOOL" ? i % 2 : (i * 37 + k * 11) & 0xff;
      if (dtype === "F16" || dtype === "BF16" || dtype === "F32" || dtype === "F64") {
        // keep float patterns finite and non-NaN so value comparisons work too
        for (let i = DTYPE_ITEMSIZE[dtype] - 1; i < data.length; i += DTYPE_ITEMSIZE[dtype]) data[i] = 0x3f;
      }
      tensors.set(`t_${dtype.toLowerCase()}`, { dtype, shape, data });
    }
    const bytes = serializeSafetensors(tensors, { format: "pt", run: "7" });
    const back = parseSafetensors(bytes);
    assert.deepEqual(back.metadata, { format: "pt", run: "7" });
    assert.equal(back.tensors.size, all.length);
    for (const [name, t] of tensors) {
      const b = back.tensors.get(name)!;
      assert.equal(b.dtype, t.dtype, name);
      assert.deepEqual(b.shape, t.shape, name);
      assert.deepEqual([...b.data], [...t.data], name);
      assert.deepEqual([...toFloat64(b)], [...toFloat64(t)], name);
    }
  });

  test("typed-array helpers round trip through the format", () => {
    const f32 = new Float32Array([0, -0, 1, -1.5, 3.25, 1e-8, 65504, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    const f64 = new Float64Array([Math.PI, -Math.E, 1e300, 5e-324]);
    const i64 = new BigInt64Array([0n, -1n, 9223372036854775807n, -9223372036854775808n]);
    const bytes = serializeSafetensors({
      f32: fromFloat32(f32, [3, 3]),
      f16: fromFloat32(f32, [9], "F16"),
      bf16: fromFloat32(f32, [9], "BF16"),
      w64: fromFloat32(f32, [9], "F64"),
      f64: fromFloat64(f64, [2, 2]),
      i64: fromBigInt64(i64, [4]),
    });
    const t = parseSafetensors(misaligned(bytes)).tensors;
    assert.deepEqual([...toFloat32(t.get("f32")!)], [...f32]);
    assert.ok(Object.is(toFloat32(t.get("f32")!)[1], -0));
    assert.deepEqual([...toFloat64(t.get("w64")!)], [...f32]);
    assert.deepEqual([...toFloat64(t.get("f64")!)], [...f64]);
    assert.deepEqual([...toBigInt64(t.get("i64")!)], [...i64]);
    assert.deepEqual(t.get("f16")!.shape, [9]);
    const h = toFloat32(t.get("f16")!);
    assert.deepEqual([...h].slice(0, 5), [0, -0, 1, -1.5, 3.25]);
    assert.equal(h[5], 2 ** -24 * Math.round(1e-8 / 2 ** -24)); // 1e-8 -> 0 (below half the smallest subnormal)
    assert.equal(h[6], 65504);
    assert.equal(h[7], Number.POSITIVE_INFINITY);
    const b = toFloat32(t.get("bf16")!);
    assert.deepEqual([...b].slice(0, 5), [0, -0, 1, -1.5, 3.25]);
    assert.equal(b[6], 65536); // 65504 rounds to 2^16 in bf16
  });

  test("layout: 8-byte aligned data start, space padding, little-endian length, sorted names", () => {
    const bytes = serializeSafetensors({
      zeta: { dtype: "U8", shape: [1], data: new Uint8Array([9]) },
      alpha: { dtype: "U8", shape: [2], data: new Uint8Array([1, 2]) },
    });
    const n = Number(Buffer.from(bytes.subarray(0, 8)).readBigUInt64LE());
    assert.equal((8 + n) % 8, 0);
    const header = Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8");
    assert.match(header, /^\{.*\} *$/);
    assert.ok(header.indexOf('"alpha"') < header.indexOf('"zeta"'));
    const json = JSON.parse(header);
    assert.deepEqual(json.alpha, { dtype: "U8", shape: [2], data_offsets: [0, 2] });
    assert.deepEqual(json.zeta, { dtype: "U8", shape: [1], data_offsets: [2, 3] });
    assert.deepEqual([...bytes.subarray(8 + n)], [1, 2, 9]);
  });

  test("deterministic: Map vs Record and insertion order give identical bytes", () => {
    const a = fromFloat32(new Float32Array([1, 2]), [2]);
    const b = fromBigInt64(new BigInt64Array([3n]), [1]);
    const one = serializeSafetensors(new Map([["b", b], ["a", a], ["10", a]]), { y: "2", x: "1" });
    const two = serializeSafetensors({ a, "10": a, b }, { x: "1", y: "2" });
    assert.deepEqual(one, two);
    assert.deepEqual([...parseSafetensors(one).tensors.keys()], ["10", "a", "b"]);
  });

  test("rejects inconsistent tensors and metadata with InvalidArgument", () => {
    const bad = (fn: () => unknown, fragment: string) =>
      assert.throws(fn, (e: unknown) => e instanceof SaflError && e.code === ErrorCode.InvalidArgument && e.message.includes(fragment));
    bad(() => serializeSafetensors({ w: { dtype: "F32", shape: [2], data: new Uint8Array(7) } }), '"w"');
    bad(() => serializeSafetensors({ w: { dtype: "U16" as SafetensorsDType, shape: [1], data: new Uint8Array(2) } }), "U16");
    bad(() => serializeSafetensors({ w: { dtype: "U8", shape: [-1], data: new Uint8Array(0) } }), "-1");
    bad(() => serializeSafetensors({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } }), "reserved");
    bad(() => serializeSafetensors({}, { k: 3 as unknown as string }), '"k"');
  });

  test("fromFloat32 etc. reject a data length that does not fit the shape", () => {
    assert.throws(() => fromFloat32(new Float32Array(5), [2, 3]), (e: unknown) => e instanceof SaflError && e.code === ErrorCode.Shape);
    assert.throws(() => fromFloat64(new Float64Array(1), [2]), (e: unknown) => e instanceof SaflError && e.code === ErrorCode.Shape);
    assert.throws(() => fromBigInt64(new BigInt64Array(1), [1.5]), (e: unknown) => e instanceof SaflError && e.code === ErrorCode.Shape);
  });

  test("toBigInt64 refuses float tensors; converters check byte length", () => {
    assert.throws(
      () => toBigInt64(fromFloat32(new Float32Array(1), [1]), "w"),
      (e: unknown) => e instanceof SaflError && e.code === ErrorCode.DType && e.message.includes('"w"') && e.message.includes("F32"),
    );
    expectIo(() => toFloat32({ dtype: "F32", shape: [2], data: new Uint8Array(4) }, "w"), '"w"', "4 bytes", "8");
  });
});

describe("float16 conversion", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [65519, 0x7bff], // just below the rounding boundary
    [65520, 0x7c00], // halfway to 2^16: ties to even -> Inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Number.POSITIVE_INFINITY, 0x7c00],
    [Number.NEGATIVE_INFINITY, 0xfc00],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -14, 0x0400], // smallest normal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -25, 0x0000], // half the smallest subnormal: ties to even -> 0
    [-(2 ** -25), 0x8000],
    [1.5 * 2 ** -25 * 2, 0x0002], // 1.5 * 2^-24 ties to even -> 2 * 2^-24
    [1.25 * 2 ** -24, 0x0001],
    [2 ** -26, 0x0000],
    [1e-45, 0x0000], // float32 subnormal
    [1 / 3, 0x3555],
    [1 + 2 ** -11, 0x3c00], // tie, round down to even
    [1 + 3 * 2 ** -11, 0x3c02], // tie, round up to even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up from subnormal into the smallest normal
  ];
  for (const [x, bits] of cases) {
    test(`${Object.is(x, -0) ? "-0" : x} -> 0x${bits.toString(16).padStart(4, "0")}`, () => {
      assert.equal(float32ToFloat16Bits(x), bits);
    });
  }

  test("NaN stays NaN (quiet), keeping its sign", () => {
    const h = float32ToFloat16Bits(Number.NaN);
    assert.equal(h & 0x7c00, 0x7c00);
    assert.notEqual(h & 0x3ff, 0);
    assert.ok(Number.isNaN(float16BitsToFloat32(h)));
    const sNaN = new Float32Array(new Uint32Array([0xff800001]).buffer)[0]!; // negative signalling NaN, tiny payload
    const hs = float32ToFloat16Bits(sNaN);
    assert.equal(hs & 0xfe00, 0xfe00);
    assert.ok(Number.isNaN(float16BitsToFloat32(0x7c01)));
  });

  test("decodes known bit patterns", () => {
    assert.equal(float16BitsToFloat32(0x3c00), 1);
    assert.equal(float16BitsToFloat32(0xc000), -2);
    assert.equal(float16BitsToFloat32(0x7bff), 65504);
    assert.equal(float16BitsToFloat32(0x0001), 2 ** -24);
    assert.equal(float16BitsToFloat32(0x03ff), 1023 * 2 ** -24);
    assert.equal(float16BitsToFloat32(0x7c00), Number.POSITIVE_INFINITY);
    assert.equal(float16BitsToFloat32(0xfc00), Number.NEGATIVE_INFINITY);
    assert.ok(Object.is(float16BitsToFloat32(0x8000), -0));
  });

  test("every non-NaN float16 survives decode then encode", () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = float16BitsToFloat32(h);
      if (Number.isNaN(x)) continue;
      assert.equal(float32ToFloat16Bits(x), h);
    }
  });

  test("matches a brute-force nearest-even reference on random float32 values", () => {
    // All finite non-negative float16 values in order; encoding is monotone in the bits.
    const values: number[] = [];
    for (let h = 0; h <= 0x7bff; h++) values.push(float16BitsToFloat32(h));
    const reference = (x: number): number => {
      const ax = Math.abs(x);
      const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
      if (ax >= 65520) return sign | 0x7c00;
      let lo = 0;
      let hi = values.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (values[mid]! <= ax) lo = mid;
        else hi = mid;
      }
      const dl = ax - values[lo]!;
      const dh = values[hi]! - ax;
      const pick = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
      return sign | pick;
    };
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < 20000; i++) {
      // exponents spread over and around the float16 range
      const exp = 127 - 27 + (rand() % 46);
      u[0] = ((rand() & 1) << 31) | (exp << 23) | (rand() & 0x7fffff);
      // exact ties are rare at random; force some
      if (i % 4 === 0) u[0] = (u[0]! & ~0x1fff) | 0x1000;
      assert.equal(float32ToFloat16Bits(f[0]!), reference(f[0]!), `x=${f[0]} bits=0x${u[0]!.toString(16)}`);
    }
  });
});

describe("bfloat16 conversion", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [3, 0x4040],
    [1 + 2 ** -8, 0x3f80], // tie, round down to even
    [1 + 3 * 2 ** -8, 0x3f82], // tie, round up to even
    [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above the tie
    [1 + 2 ** -9, 0x3f80],
    [65504, 0x4780],
    [Number.POSITIVE_INFINITY, 0x7f80],
    [Number.NEGATIVE_INFINITY, 0xff80],
    [3.4028234663852886e38, 0x7f80], // float32 max rounds up to Inf
    [1e-40, 0x0001], // float32 subnormal 0x000116c2 -> 0x0001
  ];
  for (const [x, bits] of cases) {
    test(`${Object.is(x, -0) ? "-0" : x} -> 0x${bits.toString(16).padStart(4, "0")}`, () => {
      assert.equal(float32ToBFloat16Bits(x), bits);
    });
  }

  test("NaN is preserved (quiet) including payloads that truncation would turn into Inf", () => {
    const nan = float32ToBFloat16Bits(Number.NaN);
    assert.ok(Number.isNaN(bfloat16BitsToFloat32(nan)));
    const tiny = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0]!;
    const b = float32ToBFloat16Bits(tiny);
    assert.equal(b, 0x7fc0);
    assert.ok(Number.isNaN(bfloat16BitsToFloat32(b)));
    assert.equal(float32ToBFloat16Bits(new Float32Array(new Uint32Array([0xffffffff]).buffer)[0]!), 0xffff);
  });

  test("decodes and round-trips every non-NaN bfloat16", () => {
    assert.equal(bfloat16BitsToFloat32(0x3f80), 1);
    assert.equal(bfloat16BitsToFloat32(0xc000), -2);
    for (let h = 0; h < 0x10000; h++) {
      const x = bfloat16BitsToFloat32(h);
      if (Number.isNaN(x)) continue;
      assert.equal(float32ToBFloat16Bits(x), h);
    }
  });
});

describe("parseSafetensors rejects malformed files", () => {
  const src = "/models/bad.safetensors";
  const one = (entry: string, data: ArrayLike<number> = [0, 0, 0, 0]) => buildFile(`{"w":${entry}}`, data);

  test("file shorter than 8 bytes", () => {
    expectIo(() => parseSafetensors(new Uint8Array(5), src), src, "5 bytes", "8");
  });
  test("header length beyond the file", () => {
    expectIo(() => parseSafetensors(buildFile("{}", [], { lengthOverride: 4096n }), src), src, "4096", "16 bytes");
  });
  test("absurd header length", () => {
    expectIo(() => parseSafetensors(buildFile("{}", [], { lengthOverride: 2n ** 40n }), src), src, "1099511627776", "100000000");
    expectIo(() => parseSafetensors(buildFile("{}", [], { lengthOverride: 2n ** 64n - 1n }), src), "18446744073709551615");
  });
  test("header not UTF-8", () => {
    const bytes = buildFile('{"w":1}');
    bytes[9] = 0xff;
    expectIo(() => parseSafetensors(bytes, src), src, "UTF-8");
  });
  test("header not JSON", () => {
    expectIo(() => parseSafetensors(buildFile('{"w": {'), src), src, "not valid JSON");
    expectIo(() => parseSafetensors(buildFile(""), src), src, "not valid JSON");
  });
  test("header not an object", () => {
    expectIo(() => parseSafetensors(buildFile("[1,2]"), src), src, "must be a JSON object", "array");
    expectIo(() => parseSafetensors(buildFile("null"), src), "must be a JSON object", "null");
    expectIo(() => parseSafetensors(buildFile("42"), src), "must be a JSON object", "42");
  });
  test("entry not an object", () => {
    expectIo(() => parseSafetensors(one("[1]"), src), src, '"w"', "[1]");
  });
  test("entry missing fields", () => {
    expectIo(() => parseSafetensors(one('{"shape":[1],"data_offsets":[0,4]}'), src), src, '"w"', '"dtype"');
    expectIo(() => parseSafetensors(one('{"dtype":"F32","data_offsets":[0,4]}'), src), '"w"', '"shape"');
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":[1]}'), src), '"w"', '"data_offsets"');
  });
  test("entry fields with wrong types", () => {
    expectIo(() => parseSafetensors(one('{"dtype":5,"shape":[1],"data_offsets":[0,4]}')), '"w"', "dtype", "5");
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":"1","data_offsets":[0,4]}')), '"w"', "shape", '"1"');
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":[1],"data_offsets":"0-4"}')), '"w"', "data_offsets", '"0-4"');
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}')), '"w"', "[0,4,8]");
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}')), '"w"', "[0,4.5]");
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":[1],"data_offsets":[-4,4]}')), '"w"', "[-4,4]");
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}')), '"w"', '"1"');
  });
  test("unknown dtype", () => {
    expectIo(() => parseSafetensors(one('{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}'), src), src, '"w"', "F8_E4M3", "BF16");
    expectIo(() => parseSafetensors(one('{"dtype":"f32","shape":[1],"data_offsets":[0,4]}')), '"w"', '"f32"');
  });
  test("negative or non-integer dims", () => {
    expectIo(() => parseSafetensors(one('{"dtype":"U8","shape":[2,-2],"data_offsets":[0,4]}'), src), src, '"w"', "-2", "dimension 1");
    expectIo(() => parseSafetensors(one('{"dtype":"U8","shape":[1.5],"data_offsets":[0,4]}')), '"w"', "1.5");
  });
  test("begin > end", () => {
    expectIo(() => parseSafetensors(one('{"dtype":"U8","shape":[0],"data_offsets":[4,0]}'), src), src, '"w"', "[4, 0]", "begin > end");
  });
  test("offsets outside the data region", () => {
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'), src), src, '"w"', "[0, 8]", "4 bytes");
  });
  test("byte length does not match shape * itemsize", () => {
    expectIo(() => parseSafetensors(one('{"dtype":"F32","shape":[2],"data_offsets":[0,4]}'), src), src, '"w"', "4 bytes", "expected 8", "[2]");
    expectIo(() => parseSafetensors(one('{"dtype":"F16","shape":[3],"data_offsets":[0,4]}')), '"w"', "expected 6");
  });
  test("overlapping tensors", () => {
    const header =
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expectIo(() => parseSafetensors(buildFile(header, f32le(1, 2)), src), src, '"a"', '"b"', "overlap", "[4, 8]", "[0, 8]");
  });
  test("metadata not an object of strings", () => {
    expectIo(() => parseSafetensors(buildFile('{"__metadata__":{"epoch":3}}'), src), src, '"epoch"', "3", "string");
    expectIo(() => parseSafetensors(buildFile('{"__metadata__":["x"]}'), src), src, "__metadata__", '["x"]');
  });
  test("source is optional in messages", () => {
    const e = expectIo(() => parseSafetensors(new Uint8Array(3)), "safetensors", "3 bytes");
    assert.ok(!e.message.includes("undefined"));
  });
});

describe("file helpers", () => {
  test("write is atomic and leaves no temporary file; read round-trips", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safl-st-"));
    try {
      const path = join(dir, "model.safetensors");
      await writeSafetensorsFile(path, { w: fromFloat32(new Float32Array([1, 2, 3]), [3]) }, { step: "1" });
      await writeSafetensorsFile(path, { w: fromFloat32(new Float32Array([4, 5]), [2], "F16") }, { step: "2" }); // overwrite
      assert.deepEqual(await readdir(dir), ["model.safetensors"]);
      const file = await readSafetensorsFile(path);
      assert.deepEqual(file.metadata, { step: "2" });
      assert.deepEqual([...toFloat32(file.tensors.get("w")!)], [4, 5]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a failed write removes its temporary file and names the path", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safl-st-"));
    try {
      const path = join(dir, "taken");
      await mkdir(path); // renaming a file over a directory fails
      await mkdir(join(path, "child"));
      await assert.rejects(
        writeSafetensorsFile(path, { w: fromFloat32(new Float32Array([1]), [1]) }),
        (e: unknown) => e instanceof SaflError && e.code === ErrorCode.Io && e.message.includes(path),
      );
      assert.deepEqual(await readdir(dir), ["taken"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("reading a missing or corrupt file gives an Io error naming the path", async () => {
    const dir = await mkdtemp(join(tmpdir(), "safl-st-"));
    try {
      const missing = join(dir, "nope.safetensors");
      await assert.rejects(
        readSafetensorsFile(missing),
        (e: unknown) => e instanceof SaflError && e.code === ErrorCode.Io && e.message.includes(missing) && e.message.includes("no such file"),
      );
      const corrupt = join(dir, "short.safetensors");
      await writeFile(corrupt, new Uint8Array([1, 2, 3]));
      await assert.rejects(
        readSafetensorsFile(corrupt),
        (e: unknown) => e instanceof SaflError && e.code === ErrorCode.Io && e.message.includes(corrupt),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
