/**
 * @module fl/wire.test
 * Tests for the wire encoding: round trips of a message with every section in each payload dtype
 * (float16/bfloat16 checked against the io/safetensors converters exactly), the layout pinned by a
 * byte-for-byte fixture built here without the module and by a hand-computed size, parameter counts,
 * rejection of every truncated prefix and of each kind of malformed input with its offset, and the
 * encoder's input checks.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBFloat16Bits, float32ToFloat16Bits } from "../io/safetensors.js";
import {
  decodeMessage,
  encodedBreakdown,
  encodeMessage,
  messageParamCount,
  type PayloadDType,
  WIRE_HEADER_BYTES,
  WIRE_VERSION,
  type WireMessage,
  type WirePackedModule,
} from "./wire.js";

// ---------------------------------------------------------------------------------------------
// Independent byte builder: writes the documented layout without using the module under test.

class Bytes {
  private readonly parts: number[] = [];
  private readonly scratch = new DataView(new ArrayBuffer(8));
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  private push(n: number): this {
    for (let i = 0; i < n; i++) this.parts.push(this.scratch.getUint8(i));
    return this;
  }
  u16(v: number): this {
    this.scratch.setUint16(0, v, true);
    return this.push(2);
  }
  u32(v: number): this {
    this.scratch.setUint32(0, v, true);
    return this.push(4);
  }
  f32(v: number): this {
    this.scratch.setFloat32(0, v, true);
    return this.push(4);
  }
  f64(v: number): this {
    this.scratch.setFloat64(0, v, true);
    return this.push(8);
  }
  raw(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.parts.push(b[i]!);
    return this;
  }
  str16(s: string): this {
    const b = Buffer.from(s, "utf8");
    return this.u16(b.length).raw(b);
  }
  str32(s: string): this {
    const b = Buffer.from(s, "utf8");
    return this.u32(b.length).raw(b);
  }
  /** Zero bytes up to the next multiple of `size` from the start (the layout's alignment of float runs). */
  pad(size: number): this {
    while (this.parts.length % size !== 0) this.parts.push(0);
    return this;
  }
  header(kind: number, dtype: number, flags: number, round: number): this {
    return this.raw([0x53, 0x41, 0x46, 0x4c]).u8(3).u8(kind).u8(dtype).u8(flags).u32(round);
  }
  get length(): number {
    return this.parts.length;
  }
  build(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/** Deterministic values spanning magnitudes, signs, float16 subnormals and float16 overflow. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32 - 0.5;
    const scale = [1, 1e-3, 1e-6, 100, 7e4][i % 5]!;
    out[i] = u * scale;
  }
  return out;
}

function fullMessage(): WireMessage {
  const mask = Uint8Array.of(1, 0, 1, 1, 0, 0, 0, 0, 0, 1); // initRank 10, k = 4
  return {
    kind: "reply",
    round: 4_000_000_000,
    clientId: "client-β7",
    sampleCount: 1234,
    config: { localEpochs: 2, lr: 0.001, stage: "warmup", prox: true },
    metrics: { trainLoss: 0.4321, accuracy: 0.875, diverged: Number.NaN },
    tensors: [
      { name: "classifier.weight", shape: [3, 4], data: values(12, 1) },
      { name: "classifier.bias", shape: [3], data: values(3, 2) },
      { name: "scalar", shape: [], data: Float32Array.of(2.5) },
      { name: "empty", shape: [0, 5], data: new Float32Array(0) },
    ],
    packed: [
      {
        name: "vit.encoder.layer.0.attention.attention.query",
        inFeatures: 4,
        outFeatures: 3,
        initRank: 10,
        mask,
        p: values(3 * 4, 3),
        e: values(4, 4),
        q: values(4 * 4, 5),
      },
      {
        name: "all-inactive",
        inFeatures: 2,
        outFeatures: 2,
        initRank: 8,
        mask: new Uint8Array(8),
        p: new Float32Array(0),
        e: new Float32Array(0),
        q: new Float32Array(0),
      },
    ],
    scores: [
      { module: "vit.encoder.layer.0.attention.attention.query", scores: Float64Array.from({ length: 10 }, (_, i) => 0.1 * i + 1e-9) },
      { module: "all-inactive", scores: values(8, 6) },
    ],
  };
}

/** What decoding `msg` encoded in `dtype` must give: floats rounded through the converters. */
function expectedDecode(msg: WireMessage, dtype: PayloadDType): WireMessage & { dtype: PayloadDType } {
  const round = (a: Float32Array): Float32Array =>
    dtype === "float32"
      ? Float32Array.from(a)
      : Float32Array.from(a, (x) =>
          dtype === "float16" ? float16BitsToFloat32(float32ToFloat16Bits(x)) : bfloat16BitsToFloat32(float32ToBFloat16Bits(x)),
        );
  return {
    ...msg,
    dtype,
    tensors: msg.tensors.map((t) => ({ name: t.name, shape: [...t.shape], data: round(t.data) })),
    packed: msg.packed.map((pm) => ({ ...pm, mask: Uint8Array.from(pm.mask), p: round(pm.p), e: round(pm.e), q: round(pm.q) })),
    scores: msg.scores.map((s) => ({ module: s.module, scores: Float32Array.from(s.scores) })),
  };
}

/** Asserts `fn` throws a SaflError with `code` whose message matches `pattern`. */
function assertSafl(fn: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SaflError, `expected SaflError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

const base = { tensors: [], packed: [], scores: [] } as const;

// ---------------------------------------------------------------------------------------------

describe("wire round trip", () => {
  for (const dtype of ["float32", "float16", "bfloat16"] as const) {
    test(`every section survives in ${dtype} (floats exactly as the converters round them)`, () => {
      const msg = fullMessage();
      const decoded = decodeMessage(encodeMessage(msg, { dtype }));
      assert.deepStrictEqual(decoded, expectedDecode(msg, dtype));
      // The generator really exercises rounding: float16 changes some values, float32 none.
      const changed = decoded.tensors[0]!.data.some((x, i) => x !== msg.tensors[0]!.data[i]);
      assert.equal(changed, dtype !== "float32");
    });
  }

  test("float32 payload is bit-exact, including NaN payloads and -0; half dtypes keep NaN a NaN", () => {
    const bits = Uint32Array.of(0x7fc00001, 0xffa00000, 0x80000000, 0x7f800000, 0x00000001);
    const data = new Float32Array(bits.buffer);
    const msg: WireMessage = { kind: "broadcast", round: 1, ...base, tensors: [{ name: "x", shape: [5], data }] };
    const back = decodeMessage(encodeMessage(msg)).tensors[0]!.data;
    assert.deepStrictEqual(new Uint32Array(back.buffer), bits);
    for (const dtype of ["float16", "bfloat16"] as const) {
      const half = decodeMessage(encodeMessage(msg, { dtype })).tensors[0]!.data;
      assert.ok(Number.isNaN(half[0]) && Number.isNaN(half[1]));
      assert.ok(Object.is(half[2], -0));
      assert.equal(half[3], Number.POSITIVE_INFINITY);
    }
  });

  test("a failure reply (code and text, no tensors) round-trips", () => {
    const msg: WireMessage = { kind: "reply", round: 12, clientId: "c3", failure: { code: "diverged", message: "local training diverged: loss is NaN at step 17 ✗" }, ...base };
    const decoded = decodeMessage(encodeMessage(msg, { dtype: "bfloat16" }));
    assert.deepStrictEqual(decoded, { ...msg, dtype: "bfloat16" });
    assert.equal(messageParamCount(decoded), 0);
  });

  test("a minimal broadcast has only the header and three empty counts; empty config/metrics are kept", () => {
    const bytes = encodeMessage({ kind: "broadcast", round: 0, ...base });
    assert.equal(bytes.length, WIRE_HEADER_BYTES + 12);
    const withEmpty: WireMessage = { kind: "broadcast", round: 0, config: {}, metrics: {}, ...base };
    assert.deepStrictEqual(decodeMessage(encodeMessage(withEmpty)), { ...withEmpty, dtype: "float32" });
  });

  test("odd names survive: a leading BOM, astral characters, and a metric named __proto__", () => {
    const metrics = Object.fromEntries([["__proto__", 3]]) as Record<string, number>;
    const msg: WireMessage = {
      kind: "reply",
      round: 2,
      clientId: "\uFEFFclient 😀",
      metrics,
      ...base,
      tensors: [{ name: "\uFEFF𝔴", shape: [1], data: Float32Array.of(1) }],
    };
    const decoded = decodeMessage(encodeMessage(msg));
    assert.equal(decoded.clientId, "\uFEFFclient 😀");
    assert.equal(decoded.tensors[0]!.name, "\uFEFF𝔴");
    assert.deepStrictEqual(Object.entries(decoded.metrics!), [["__proto__", 3]]);
    assert.equal(Object.getPrototypeOf(decoded.metrics), Object.prototype);
  });

  test("decoding works from an unaligned view and returns copies, not views of the input", () => {
    const enc = encodeMessage(fullMessage());
    const shifted = new Uint8Array(enc.length + 3);
    shifted.set(enc, 1);
    const view = shifted.subarray(1, 1 + enc.length);
    const decoded = decodeMessage(view);
    assert.deepStrictEqual(decoded, expectedDecode(fullMessage(), "float32"));
    const before = decoded.tensors[0]!.data[0];
    view.fill(0);
    assert.equal(decoded.tensors[0]!.data[0], before);
  });
});

describe("wire decoding in place (views)", () => {
  test("with views, float32 runs of an aligned message are views of its bytes and equal the copying decode", () => {
    const bytes = encodeMessage(fullMessage());
    const viewed = decodeMessage(bytes, { views: true });
    assert.deepStrictEqual(viewed, decodeMessage(bytes));
    for (const t of viewed.tensors) assert.equal(t.data.buffer, bytes.buffer, `tensor ${t.name} was copied`);
    for (const p of viewed.packed) for (const a of [p.p, p.e, p.q]) assert.equal(a.buffer, bytes.buffer);
    for (const sc of viewed.scores) assert.equal(sc.scores.buffer, bytes.buffer);
    // A view sees later writes to the bytes: the reason the default decode copies.
    const t0 = viewed.tensors[0]!;
    const at = t0.data.byteOffset;
    new Float32Array(bytes.buffer, at, 1)[0] = 42;
    assert.equal(t0.data[0], 42);
  });

  test("with views, a message at an unaligned offset is copied once and decodes the same", () => {
    const enc = encodeMessage(fullMessage());
    const pool = Buffer.alloc(enc.length + 5);
    pool.set(enc, 1);
    const view = pool.subarray(1, 1 + enc.length);
    const viewed = decodeMessage(view, { views: true });
    assert.deepStrictEqual(viewed, decodeMessage(enc));
    assert.notEqual(viewed.tensors[0]!.data.buffer, pool.buffer);
    pool.fill(0);
    assert.deepStrictEqual(viewed, decodeMessage(enc));
  });

  test("float16 and bfloat16 decode the same from aligned and odd offsets (always fresh arrays)", () => {
    for (const dtype of ["float16", "bfloat16"] as const) {
      const enc = encodeMessage(fullMessage(), { dtype });
      const odd = new Uint8Array(enc.length + 1);
      odd.set(enc, 1);
      const fromOdd = decodeMessage(odd.subarray(1), { views: true });
      assert.deepStrictEqual(fromOdd, decodeMessage(enc));
      assert.notEqual(fromOdd.tensors[0]!.data.buffer, odd.buffer);
    }
  });

  test("a non-zero alignment padding byte is rejected, naming its offset", () => {
    // Header to 12, tensor count to 16, name "tt" to 20, rank to 21, dim to 25: 3 padding bytes to 28.
    const good = new Bytes().header(0, 0, 0, 1).u32(1).str16("tt").u8(1).u32(1).pad(4).f32(1).u32(0).u32(0).build();
    assert.equal(decodeMessage(good).tensors[0]!.data[0], 1);
    const bad = Uint8Array.from(good);
    bad[26] = 7;
    assertSafl(() => decodeMessage(bad), ErrorCode.Io, /alignment padding before tensor "tt" data .* is not zero \(0x7\) at byte offset 26/);
  });
});

describe("wire layout", () => {
  test("encodes byte for byte as documented (fixture built independently)", () => {
    const msg: WireMessage = {
      kind: "reply",
      round: 0x01020304,
      clientId: "c1",
      sampleCount: 5,
      config: { a: 1 },
      metrics: { loss: 0.5 },
      tensors: [{ name: "t", shape: [2], data: Float32Array.of(1.5, -2) }],
      packed: [
        { name: "m", inFeatures: 1, outFeatures: 1, initRank: 3, mask: Uint8Array.of(0, 1, 1), p: Float32Array.of(1, 2), e: Float32Array.of(3, 4), q: Float32Array.of(5, 6) },
      ],
      scores: [{ module: "m", scores: Float32Array.of(0.25, 0.5, 0.75) }],
    };
    const expected = new Bytes()
      .header(1, 0, 0x0f, 0x01020304)
      .str16("c1")
      .u32(5)
      .str32('{"a":1}')
      .u32(1)
      .str16("loss")
      .f64(0.5)
      .u32(1)
      .str16("t")
      .u8(1)
      .u32(2)
      .pad(4) // 61 → 64
      .f32(1.5)
      .f32(-2)
      .u32(1)
      .str16("m")
      .u32(1)
      .u32(1)
      .u32(3)
      .u8(0b110) // ends at 92: already aligned
      .f32(1)
      .f32(2)
      .f32(3)
      .f32(4)
      .f32(5)
      .f32(6)
      .u32(1)
      .str16("m")
      .u32(3)
      .pad(4) // 127 → 128
      .f32(0.25)
      .f32(0.5)
      .f32(0.75)
      .build();
    const got = encodeMessage(msg);
    assert.deepStrictEqual(got, expected);
    assert.deepStrictEqual([...got.subarray(0, 12)], [0x53, 0x41, 0x46, 0x4c, WIRE_VERSION, 1, 0, 0x0f, 4, 3, 2, 1]);
    assert.deepStrictEqual(decodeMessage(expected), { ...msg, dtype: "float32" });
  });

  test("decodes from a Node Buffer at an odd offset inside a larger pool (as SQLite BLOBs and socket chunks arrive)", () => {
    const msg = fullMessage();
    const bytes = encodeMessage(msg);
    const pool = Buffer.alloc(bytes.length + 7);
    pool.set(bytes, 3);
    const view = pool.subarray(3, 3 + bytes.length);
    assert.deepStrictEqual(decodeMessage(view), decodeMessage(bytes));
  });

  test("a failure reply: code byte then message, byte for byte (fixture built independently)", () => {
    const msg: WireMessage = { kind: "reply", round: 7, clientId: "c", failure: { code: "missing-base", message: "no base 1" }, tensors: [], packed: [], scores: [] };
    // flags 0x11 = clientId + failure; "missing-base" is code 3; then empty tensor, packed and score sections.
    const expected = new Bytes().header(1, 0, 0x11, 7).str16("c").u8(3).str32("no base 1").u32(0).u32(0).u32(0).build();
    assert.deepStrictEqual(encodeMessage(msg), expected);
    assert.deepStrictEqual(decodeMessage(expected), { ...msg, dtype: "float32" });
    const unknown = Uint8Array.from(expected);
    unknown[12 + 3] = 200; // the code byte after the clientId
    assertSafl(() => decodeMessage(unknown), ErrorCode.Io, /unknown failure code 200 .* at byte offset 15/);
    assertSafl(() => encodeMessage({ ...msg, failure: { code: "nope" as never, message: "x" } }), ErrorCode.InvalidArgument, /unknown failure code "nope"/);
  });

  test("size of a known float16 message, computed by hand, and its breakdown", () => {
    const msg: WireMessage = {
      kind: "broadcast",
      round: 3,
      tensors: [{ name: "w", shape: [2, 3], data: values(6, 9) }],
      packed: [
        { name: "m", inFeatures: 2, outFeatures: 3, initRank: 10, mask: Uint8Array.of(0, 1, 0, 0, 0, 0, 0, 0, 0, 1), p: values(6, 1), e: values(2, 2), q: values(4, 3) },
      ],
      scores: [{ module: "m", scores: new Float64Array(10) }],
    };
    const header = 4 + 1 + 1 + 1 + 1 + 4; // magic, version, kind, dtype, flags, round
    // Offsets from the message start decide the alignment padding before each float run.
    const tensors = 4 + (2 + 1) + 1 + 2 * 4 + 6 * 2; // count; name; rank; dims (ends at 28, 2-aligned); 6 float16
    const masks = 2; // ceil(10 / 8)
    // count (44); name (47); in/out/r (59); [mask to 61]; 1 pad byte for p; p,e,q in float16
    const packed = 4 + (2 + 1) + 3 * 4 + 1 + (3 * 2 + 2 + 2 * 2) * 2;
    // count (90); name (93); n (97); 3 pad bytes to 100; float32 each
    const scores = 4 + (2 + 1) + 4 + 3 + 10 * 4;
    const total = header + tensors + masks + packed + scores;
    assert.equal(total, 140);
    assert.equal(encodeMessage(msg, { dtype: "float16" }).length, total);
    assert.deepStrictEqual(encodedBreakdown(msg, { dtype: "float16" }), { total, header, meta: 0, tensors, packed, masks, scores });
    // float32: tensors end at 52 (no pad), packed p starts after 3 pad bytes (73 → 76), scores after 1 (135 → 136).
    const tensors32 = 4 + 3 + 1 + 8 + 6 * 4;
    const packed32 = 4 + 3 + 12 + 3 + 12 * 4;
    const scores32 = 4 + 3 + 4 + 1 + 10 * 4;
    assert.equal(encodeMessage(msg).length, header + tensors32 + masks + packed32 + scores32);
    assert.equal(header + tensors32 + masks + packed32 + scores32, 176);
  });

  test("breakdown parts sum to the encoded length for the full message", () => {
    for (const dtype of ["float32", "float16", "bfloat16"] as const) {
      const b = encodedBreakdown(fullMessage(), { dtype });
      assert.equal(b.total, encodeMessage(fullMessage(), { dtype }).length);
      assert.equal(b.header + b.meta + b.tensors + b.packed + b.masks + b.scores, b.total);
      assert.equal(b.header, WIRE_HEADER_BYTES);
      assert.equal(b.masks, 2 + 1);
    }
  });

  test("messageParamCount counts tensor elements and k·(out+in+1) per packed module, not masks or scores", () => {
    // Independently: 12 + 3 + 1 + 0 tensor values; query module k=4 of (3 + 4 + 1); the other k=0.
    assert.equal(messageParamCount(fullMessage()), 12 + 3 + 1 + 0 + 4 * (3 + 4 + 1) + 0);
    const m = fullMessage();
    const sent = m.tensors.reduce((n, t) => n + t.data.length, 0) + m.packed.reduce((n, pm) => n + pm.p.length + pm.e.length + pm.q.length, 0);
    assert.equal(messageParamCount(m), sent);
    // The parameter floats are the payload bytes that scale with the dtype, up to the alignment
    // padding (at most 3 bytes before each float32 run, 1 before each float16 run).
    const b32 = encodedBreakdown(m, { dtype: "float32" });
    const b16 = encodedBreakdown(m, { dtype: "float16" });
    const runs = m.tensors.length + 3 * m.packed.length;
    const slack = b32.total - b16.total - 2 * messageParamCount(m);
    assert.ok(slack >= -runs && slack <= 3 * runs, `float32 − float16 bytes exceed 2 per parameter by ${slack}`);
  });
});

describe("wire decoding rejects malformed bytes", () => {
  const io = ErrorCode.Io;

  test("every truncated prefix is rejected as truncated", () => {
    for (const dtype of ["float32", "float16"] as const) {
      const bytes = encodeMessage(fullMessage(), { dtype });
      for (let n = 0; n < bytes.length; n++) {
        assertSafl(() => decodeMessage(bytes.subarray(0, n)), io, /truncated message: .* needs \d+ bytes but only \d+ are available at byte offset \d+/);
      }
    }
    const failure = encodeMessage({ kind: "reply", round: 1, clientId: "c", failure: { code: "internal", message: "boom" }, ...base });
    for (let n = 0; n < failure.length; n++) assertSafl(() => decodeMessage(failure.subarray(0, n)), io, /truncated/);
  });

  test("truncation names what was cut, with needed and available bytes", () => {
    const bytes = encodeMessage({ kind: "broadcast", round: 1, ...base, tensors: [{ name: "w", shape: [4], data: new Float32Array(4) }] });
    // Header 12, count 4, name 3, rank 1, dim 4 → data at 24, 16 bytes; cut 5 of them.
    assertSafl(() => decodeMessage(bytes.subarray(0, bytes.length - 5 - 8)), io, /tensor "w" data .* needs 16 bytes but only 11 are available at byte offset 24/);
    assertSafl(() => decodeMessage(new Uint8Array(2)), io, /magic needs 4 bytes but only 2 are available at byte offset 0/);
  });

  test("wrong magic, unsupported version, unknown kind/dtype/flags", () => {
    const good = encodeMessage(fullMessage());
    const mutate = (at: number, v: number): Uint8Array => {
      const b = Uint8Array.from(good);
      b[at] = v;
      return b;
    };
    assertSafl(() => decodeMessage(mutate(0, 0x73)), io, /bad magic: expected "SAFL" \(53 41 46 4c\), got 73 41 46 4c at byte offset 0/);
    assertSafl(() => decodeMessage(mutate(4, 2)), io, /unsupported wire version 2; this decoder supports version 3 only at byte offset 4/);
    assertSafl(() => decodeMessage(mutate(5, 9)), io, /unknown message kind code 9 .* at byte offset 5/);
    assertSafl(() => decodeMessage(mutate(6, 3)), io, /unknown payload dtype code 3 .* at byte offset 6/);
    assertSafl(() => decodeMessage(mutate(7, good[7]! | 0x80)), io, /unknown flag bits 0x80 .* at byte offset 7/);
    const broadcast = encodeMessage({ kind: "broadcast", round: 1, ...base });
    broadcast[7] = 0x10;
    assertSafl(() => decodeMessage(broadcast), io, /only replies carry, on a broadcast at byte offset 7/);
  });

  test("trailing bytes", () => {
    const good = encodeMessage(fullMessage());
    const longer = new Uint8Array(good.length + 1);
    longer.set(good);
    assertSafl(() => decodeMessage(longer), io, new RegExp(`1 trailing byte\\(s\\) after the end of the message at byte offset ${good.length}$`));
  });

  test("mask bits past initRank", () => {
    const msg: WireMessage = {
      kind: "broadcast",
      round: 1,
      ...base,
      packed: [{ name: "m", inFeatures: 1, outFeatures: 1, initRank: 3, mask: Uint8Array.of(1, 0, 0), p: Float32Array.of(1), e: Float32Array.of(1), q: Float32Array.of(1) }],
    };
    const bytes = encodeMessage(msg);
    const maskAt = 12 + 4 + 4 + 3 + 12; // header, tensor count, packed count, name, in/out/r
    assert.equal(bytes[maskAt], 0b001);
    bytes[maskAt] = 0b1001;
    assertSafl(() => decodeMessage(bytes), io, new RegExp(`packed module "m" mask has bits set past initRank 3 at byte offset ${maskAt}`));
  });

  test("a mask longer than the bytes left is truncation", () => {
    const b = new Bytes().header(0, 0, 0, 1).u32(0).u32(1).str16("m").u32(1).u32(1).u32(0xffffffff).u8(0xff).build();
    assertSafl(() => decodeMessage(b), io, /mask \(initRank 4294967295\) needs 536870912 bytes but only 1 are available at byte offset 35/);
  });

  test("dims whose product overflows or exceeds the bytes left", () => {
    const overflow = new Bytes().header(0, 0, 0, 1).u32(1).str16("t").u8(3).u32(0xffffffff).u32(0xffffffff).u32(0xffffffff).build();
    assertSafl(() => decodeMessage(overflow), io, /tensor "t" shape \[4294967295,4294967295,4294967295\] has an element count that overflows .* at byte offset 20/);
    const big = new Bytes().header(0, 1, 0, 1).u32(1).str16("t").u8(2).u32(1000).u32(1000).raw([0, 0, 0]).build();
    assertSafl(() => decodeMessage(big), io, /tensor "t" data \(shape \[1000,1000\], float16\) needs 2000000 bytes but only 3 are available at byte offset 28/);
    // A zero dimension makes any other dimension harmless.
    const zero = new Bytes().header(0, 0, 0, 1).u32(1).str16("t").u8(2).u32(0).u32(0xffffffff).u32(0).u32(0).build();
    assert.deepStrictEqual(decodeMessage(zero).tensors, [{ name: "t", shape: [0, 0xffffffff], data: new Float32Array(0) }]);
  });

  test("invalid UTF-8 in a name", () => {
    const b = new Bytes().header(0, 0, 0, 1).u32(1).u16(2).raw([0xc3, 0x28]).u8(0).f32(1).u32(0).u32(0).build();
    assertSafl(() => decodeMessage(b), io, /tensor 0 name is not valid UTF-8 at byte offset 18/);
  });

  test("config that is not a JSON object of scalars", () => {
    const withConfig = (json: string): Uint8Array => new Bytes().header(0, 0, 0x04, 1).str32(json).u32(0).u32(0).u32(0).build();
    assertSafl(() => decodeMessage(withConfig("{")), io, /config is not valid JSON .* at byte offset 12/);
    assertSafl(() => decodeMessage(withConfig("[1]")), io, /config JSON is not an object/);
    assertSafl(() => decodeMessage(withConfig('{"a":{"b":1}}')), io, /config "a" is object/);
    assertSafl(() => decodeMessage(withConfig('{"a":null}')), io, /config "a" is null/);
    assert.deepStrictEqual(decodeMessage(withConfig('{"lr":0.1,"s":"x","b":false}')).config, { lr: 0.1, s: "x", b: false });
  });

  test("duplicate names within a section", () => {
    const tensor = (b: Bytes): Bytes => b.str16("a").u8(0).f32(1);
    const dup = tensor(tensor(new Bytes().header(0, 0, 0, 1).u32(2))).u32(0).u32(0).build();
    assertSafl(() => decodeMessage(dup), io, /duplicate tensor "a" at byte offset 24/);
    const metrics = new Bytes().header(1, 0, 0x08, 1).u32(2).str16("x").f64(1).str16("x").f64(2).u32(0).u32(0).u32(0).build();
    assertSafl(() => decodeMessage(metrics), io, /duplicate metric "x" at byte offset 27/);
  });

  test("NaN and Infinity values are accepted at the wire level", () => {
    const b = new Bytes().header(1, 0, 0x08, 1).u32(1).str16("loss").f64(Number.NaN).u32(1).str16("t").u8(1).u32(2).pad(4).f32(Number.NaN).f32(-Infinity).u32(0).u32(0).build();
    const m = decodeMessage(b);
    assert.ok(Number.isNaN(m.metrics!["loss"]));
    assert.ok(Number.isNaN(m.tensors[0]!.data[0]));
    assert.equal(m.tensors[0]!.data[1], Number.NEGATIVE_INFINITY);
  });
});

describe("wire encoding rejects what it cannot carry", () => {
  const arg = ErrorCode.InvalidArgument;
  const bc = (extra: Partial<WireMessage>): WireMessage => ({ kind: "broadcast", round: 1, ...base, ...extra });
  const reply = (extra: Partial<WireMessage>): WireMessage => ({ kind: "reply", round: 1, ...base, ...extra });
  const pm = (over: Partial<WirePackedModule>): WirePackedModule => ({
    name: "m",
    inFeatures: 2,
    outFeatures: 3,
    initRank: 4,
    mask: Uint8Array.of(1, 0, 1, 0),
    p: new Float32Array(6),
    e: new Float32Array(2),
    q: new Float32Array(4),
    ...over,
  });

  test("round and sampleCount must be uint32", () => {
    for (const round of [-1, 1.5, 2 ** 32, Number.NaN]) assertSafl(() => encodeMessage(bc({ round })), arg, /round must be an integer in \[0, 4294967295\]/);
    assert.equal(decodeMessage(encodeMessage(bc({ round: 2 ** 32 - 1 }))).round, 2 ** 32 - 1);
    for (const sampleCount of [-1, 2.5, 2 ** 32]) assertSafl(() => encodeMessage(reply({ sampleCount })), arg, /sampleCount must be an integer/);
    assert.equal(decodeMessage(encodeMessage(reply({ sampleCount: 0 }))).sampleCount, 0);
  });

  test("reply-only fields on a broadcast", () => {
    assertSafl(() => encodeMessage(bc({ sampleCount: 3 })), arg, /sampleCount is for replies only/);
    assertSafl(() => encodeMessage(bc({ failure: { code: "internal", message: "x" } })), arg, /failure is for replies only/);
  });

  test("tensor data length must match its shape", () => {
    assertSafl(() => encodeMessage(bc({ tensors: [{ name: "w", shape: [2, 3], data: new Float32Array(5) }] })), ErrorCode.Shape, /tensor "w" shape \[2,3\] holds 6 values but data has 5/);
    assertSafl(() => encodeMessage(bc({ tensors: [{ name: "w", shape: [-1], data: new Float32Array(0) }] })), arg, /dimension -1/);
    assertSafl(() => encodeMessage(bc({ tensors: [{ name: "w", shape: new Array(256).fill(1), data: new Float32Array(1) }] })), arg, /rank 256/);
  });

  test("packed p/e/q lengths must match k, the mask initRank and be 0/1", () => {
    assertSafl(() => encodeMessage(bc({ packed: [pm({ p: new Float32Array(5) })] })), ErrorCode.Shape, /packed module "m" p has 5 values, expected 6 for 2 active triplets/);
    assertSafl(() => encodeMessage(bc({ packed: [pm({ e: new Float32Array(3) })] })), ErrorCode.Shape, /e has 3 values, expected 2/);
    assertSafl(() => encodeMessage(bc({ packed: [pm({ q: new Float32Array(2) })] })), ErrorCode.Shape, /q has 2 values, expected 4/);
    assertSafl(() => encodeMessage(bc({ packed: [pm({ mask: Uint8Array.of(1, 0, 1) })] })), ErrorCode.Shape, /mask has 3 entries, expected initRank 4/);
    assertSafl(() => encodeMessage(bc({ packed: [pm({ mask: Uint8Array.of(1, 0, 2, 0) })] })), arg, /mask\[2\] is 2, expected 0 or 1/);
    assertSafl(() => encodeMessage(bc({ packed: [pm({ initRank: -4 })] })), arg, /initRank must be an integer/);
  });

  test("names longer than 65535 UTF-8 bytes, or with lone surrogates", () => {
    const long = "é".repeat(32768); // 32768 characters but 65536 bytes
    assertSafl(() => encodeMessage(bc({ tensors: [{ name: long, shape: [], data: new Float32Array(1) }] })), arg, /tensor name is 65536 bytes of UTF-8, at most 65535 fit/);
    assertSafl(() => encodeMessage(reply({ clientId: "x".repeat(65536) })), arg, /clientId is 65536 bytes/);
    const fits = "x".repeat(65535);
    assert.equal(decodeMessage(encodeMessage(bc({ scores: [{ module: fits, scores: new Float32Array(0) }] }))).scores[0]!.module, fits);
    assertSafl(() => encodeMessage(reply({ clientId: "a\uD800b" })), arg, /lone UTF-16 surrogate/);
  });

  test("config values must be finite scalars; duplicate names; unknown kind or dtype", () => {
    assertSafl(() => encodeMessage(bc({ config: { lr: Number.NaN } })), arg, /config "lr" is NaN/);
    assertSafl(() => encodeMessage(bc({ config: { nested: {} as unknown as number } })), arg, /config "nested"/);
    const t = { name: "a", shape: [], data: new Float32Array(1) };
    assertSafl(() => encodeMessage(bc({ tensors: [t, t] })), arg, /duplicate tensor "a"/);
    assertSafl(() => encodeMessage(bc({ packed: [pm({}), pm({})] })), arg, /duplicate packed module "m"/);
    assertSafl(() => encodeMessage(bc({}), { dtype: "int8" as PayloadDType }), arg, /unknown payload dtype "int8"/);
    assertSafl(() => encodeMessage({ ...bc({}), kind: "ping" as "reply" }), arg, /unknown message kind "ping"/);
    assertSafl(() => encodedBreakdown(bc({ tensors: [{ name: "w", shape: [2], data: new Float32Array(1) }] })), ErrorCode.Shape, /holds 2 values/);
  });
});
