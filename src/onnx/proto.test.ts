/**
 * @module onnx/proto.test
 * Tests for the ONNX protobuf encoder/decoder: hand-computed wire bytes, int64 varint edge cases,
 * round trips of every attribute type, onnxruntime-node running models we encode, rejection of
 * truncated and malformed input, and encoding speed for a 10 MB initializer.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import { ErrorCode, SaflError } from "../errors.js";
import {
  type AttributeProto,
  AttributeType,
  decodeModel,
  encodeModel,
  type GraphProto,
  type ModelProto,
  type TensorProto,
  TensorDataType,
  type ValueInfoProto,
} from "./proto.js";

// --- helpers (independent of the encoder) ----------------------------------------------------------

function f32Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let k = 0; k < values.length; k++) view.setFloat32(k * 4, values[k]!, true);
  return out;
}

function i64Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  for (let k = 0; k < values.length; k++) view.setBigInt64(k * 8, BigInt(values[k]!), true);
  return out;
}

function ascii(s: string): number[] {
  return [...s].map((c) => c.charCodeAt(0));
}

/** A length-delimited field with a one-byte tag and a one-byte length (content < 128 bytes). */
function ld(tag: number, content: number[]): number[] {
  assert.ok(content.length < 128);
  return [tag, content.length, ...content];
}

function emptyGraph(): GraphProto {
  return { name: "", nodes: [], initializers: [], inputs: [], outputs: [] };
}

function floatInput(name: string, shape: ValueInfoProto["shape"]): ValueInfoProto {
  return { name, elemType: TensorDataType.FLOAT, shape };
}

function assertSaflError(fn: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SaflError, `expected a SaflError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tol = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let k = 0; k < expected.length; k++) {
    assert.ok(
      Math.abs(actual[k]! - expected[k]!) <= tol * Math.max(1, Math.abs(expected[k]!)),
      `index ${k}: ${actual[k]} vs ${expected[k]}`,
    );
  }
}

// int64 edge cases with their varint bytes, computed by hand (64-bit two's complement for negatives).
const INT64_CASES: [number, number[]][] = [
  [0, [0x00]],
  [1, [0x01]],
  [127, [0x7f]],
  [128, [0x80, 0x01]],
  [2 ** 31, [0x80, 0x80, 0x80, 0x80, 0x08]],
  [2 ** 32, [0x80, 0x80, 0x80, 0x80, 0x10]],
  [2 ** 53 - 1, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]],
  [-1, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
  [-(2 ** 31), [0x80, 0x80, 0x80, 0x80, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x01]],
  [-(2 ** 53 - 1), [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0xf0, 0xff, 0x01]],
];

// --- wire format ----------------------------------------------------------------------------------

describe("onnx/proto wire format", () => {
  it("encodes a minimal model byte-exactly", () => {
    const bytes = encodeModel({
      irVersion: 8,
      producerName: "",
      graph: emptyGraph(),
      opsetImports: [{ domain: "", version: 17 }],
    });
    // ir_version (1, varint) = 8; producer_name (2) = ""; graph (7) = { name (2) = "" };
    // opset_import (8) = { domain (1) = "", version (2, varint) = 17 }.
    assert.deepEqual([...bytes], [0x08, 0x08, 0x12, 0x00, 0x3a, 0x02, 0x12, 0x00, 0x42, 0x04, 0x0a, 0x00, 0x10, 0x11]);
  });

  it("encodes int64 edge cases as the hand-computed varints and decodes them back", () => {
    for (const [v, varint] of INT64_CASES) {
      const bytes = encodeModel({ irVersion: v, producerName: "", graph: emptyGraph(), opsetImports: [] });
      assert.deepEqual([...bytes], [0x08, ...varint, 0x12, 0x00, 0x3a, 0x02, 0x12, 0x00], `irVersion ${v}`);
      assert.equal(decodeModel(bytes).irVersion, v);
    }
  });

  it("encodes a node, an attribute with a negative int, an initializer and a value info byte-exactly", () => {
    const model: ModelProto = {
      irVersion: 8,
      producerName: "p",
      graph: {
        name: "g",
        nodes: [
          {
            inputs: ["x"],
            outputs: ["y"],
            name: "n",
            opType: "Softmax",
            attributes: [{ name: "axis", type: AttributeType.INT, i: -1 }],
          },
        ],
        initializers: [{ name: "w", dataType: TensorDataType.INT64, dims: [1], rawData: i64Bytes([-1]) }],
        inputs: [floatInput("x", [{ param: "b" }, { value: 0 }])],
        outputs: [],
      },
      opsetImports: [{ domain: "", version: 17 }],
    };
    const ff = (n: number) => new Array<number>(n).fill(0xff);
    // AttributeProto: name (1) "axis", i (3, varint) -1 as 10 bytes, type (20, varint: tag 0xa0 0x01) INT=2.
    const attribute = [...ld(0x0a, ascii("axis")), 0x18, ...ff(9), 0x01, 0xa0, 0x01, 0x02];
    const node = [
      ...ld(0x0a, ascii("x")), // input (1)
      ...ld(0x12, ascii("y")), // output (2)
      ...ld(0x1a, ascii("n")), // name (3)
      ...ld(0x22, ascii("Softmax")), // op_type (4)
      ...ld(0x2a, attribute), // attribute (5)
    ];
    const tensor = [
      ...ld(0x0a, [0x01]), // dims (1), packed: [1]
      0x10, 0x07, // data_type (2) = INT64
      ...ld(0x42, ascii("w")), // name (8)
      ...ld(0x4a, ff(8)), // raw_data (9) = int64 -1, little-endian
    ];
    const shape = [
      ...ld(0x0a, ld(0x12, ascii("b"))), // dim (1) { dim_param (2) = "b" }
      ...ld(0x0a, [0x08, 0x00]), // dim (1) { dim_value (1) = 0 }: a oneof member, so always written
    ];
    const tensorType = [0x08, 0x01, ...ld(0x12, shape)]; // elem_type (1) = FLOAT, shape (2)
    const valueInfo = [...ld(0x0a, ascii("x")), ...ld(0x12, ld(0x0a, tensorType))]; // name, type { tensor_type }
    const graph = [
      ...ld(0x0a, node), // node (1)
      ...ld(0x12, ascii("g")), // name (2)
      ...ld(0x2a, tensor), // initializer (5)
      ...ld(0x5a, valueInfo), // input (11)
    ];
    const expected = [
      0x08, 0x08, // ir_version (1)
      ...ld(0x12, ascii("p")), // producer_name (2)
      ...ld(0x3a, graph), // graph (7)
      ...ld(0x42, [0x0a, 0x00, 0x10, 0x11]), // opset_import (8)
    ];
    const bytes = encodeModel(model);
    assert.deepEqual([...bytes], expected);
    assert.deepEqual(decodeModel(bytes), model);
  });

  it("is deterministic and encodes default-valued optional fields only when set", () => {
    const base: ModelProto = { irVersion: 8, producerName: "x", graph: emptyGraph(), opsetImports: [] };
    assert.deepEqual(encodeModel(base), encodeModel(structuredClone(base)));
    const withVersion = encodeModel({ ...base, producerVersion: "" });
    assert.equal(withVersion.length, encodeModel(base).length + 2);
    assert.equal(decodeModel(withVersion).producerVersion, "");
    assert.equal("producerVersion" in decodeModel(encodeModel(base)), false);
  });
});

// --- round trips ----------------------------------------------------------------------------------

describe("onnx/proto round trip", () => {
  it("round-trips a model with every attribute type", () => {
    const edgeInts = INT64_CASES.map(([v]) => v);
    const tensorAttr: TensorProto = {
      name: "t",
      dataType: TensorDataType.INT64,
      dims: [edgeInts.length],
      rawData: i64Bytes(edgeInts),
    };
    const attributes: AttributeProto[] = [
      { name: "a_float", type: AttributeType.FLOAT, f: -0.25 },
      { name: "a_float_zero", type: AttributeType.FLOAT, f: 0 },
      ...edgeInts.map((i, k): AttributeProto => ({ name: `a_int${k}`, type: AttributeType.INT, i })),
      { name: "a_string", type: AttributeType.STRING, s: "héllo ✓ 🙂" },
      { name: "a_string_empty", type: AttributeType.STRING, s: "" },
      { name: "a_tensor", type: AttributeType.TENSOR, t: tensorAttr },
      { name: "b_floats", type: AttributeType.FLOATS, floats: [1.5, -2, 0, -0, 2 ** 100, Number.POSITIVE_INFINITY] },
      { name: "b_floats_empty", type: AttributeType.FLOATS, floats: [] },
      { name: "b_ints", type: AttributeType.INTS, ints: edgeInts },
      { name: "b_ints_empty", type: AttributeType.INTS, ints: [] },
      { name: "c_strings", type: AttributeType.STRINGS, strings: ["a", "", "ü"] },
    ];
    const model: ModelProto = {
      irVersion: 8,
      producerName: "sa-fedlora",
      producerVersion: "0.1.0",
      graph: {
        name: "everything",
        nodes: [
          { inputs: ["x", ""], outputs: ["y"], name: "n0", opType: "Custom", domain: "com.example", attributes },
          { inputs: [], outputs: ["z"], name: "", opType: "Constant", domain: "", attributes: [] },
        ],
        initializers: [
          { name: "scalar", dataType: TensorDataType.DOUBLE, dims: [], rawData: new Uint8Array(8).fill(7) },
          { name: "empty", dataType: TensorDataType.FLOAT, dims: [0, 3], rawData: new Uint8Array(0) },
          { name: "big_dims", dataType: TensorDataType.BOOL, dims: [1, 1, 128, 1], rawData: new Uint8Array(128) },
          { name: "f16", dataType: TensorDataType.FLOAT16, dims: [2], rawData: new Uint8Array([0, 0x3c, 0, 0xc0]) },
          { name: "bf16", dataType: TensorDataType.BFLOAT16, dims: [1], rawData: new Uint8Array([0x80, 0x3f]) },
          { name: "u8", dataType: TensorDataType.UINT8, dims: [3], rawData: new Uint8Array([1, 2, 255]) },
          { name: "i8", dataType: TensorDataType.INT8, dims: [1], rawData: new Uint8Array([0x80]) },
          { name: "i32", dataType: TensorDataType.INT32, dims: [1], rawData: new Uint8Array([1, 0, 0, 0]) },
        ],
        inputs: [floatInput("x", [{ param: "batch" }, { value: 2 ** 53 - 1 }]), floatInput("s", [])],
        outputs: [{ name: "y", elemType: TensorDataType.INT64, shape: [{ value: 0 }, { param: "" }] }],
        valueInfo: [floatInput("z", [{ value: 1 }])],
      },
      opsetImports: [
        { domain: "", version: 17 },
        { domain: "com.example", version: 1 },
      ],
    };
    const bytes = encodeModel(model);
    const decoded = decodeModel(bytes);
    assert.deepEqual(decoded, model);
    assert.deepEqual(encodeModel(decoded), bytes);
  });

  it("rounds float attributes to float32", () => {
    const graph = emptyGraph();
    graph.nodes.push({
      inputs: [],
      outputs: [],
      name: "",
      opType: "X",
      attributes: [
        { name: "f", type: AttributeType.FLOAT, f: 0.1 },
        { name: "fs", type: AttributeType.FLOATS, floats: [0.1, 1 / 3] },
      ],
    });
    const [f, fs] = decodeModel(encodeModel({ irVersion: 8, producerName: "", graph, opsetImports: [] })).graph
      .nodes[0]!.attributes;
    assert.deepEqual(f, { name: "f", type: AttributeType.FLOAT, f: Math.fround(0.1) });
    assert.deepEqual(fs, { name: "fs", type: AttributeType.FLOATS, floats: [Math.fround(0.1), Math.fround(1 / 3)] });
  });

  it("round-trips many initializers of mixed sizes (writer chunking)", () => {
    const initializers: TensorProto[] = [];
    for (let k = 0; k < 40; k++) {
      const n = [0, 1, 100, 1023, 1024, 1025, 5000, 20000][k % 8]!;
      const rawData = new Uint8Array(n * 4);
      for (let b = 0; b < rawData.length; b++) rawData[b] = (b * 31 + k) & 0xff;
      initializers.push({ name: `w${k}`, dataType: TensorDataType.FLOAT, dims: [n], rawData });
    }
    const model: ModelProto = { irVersion: 8, producerName: "", graph: { ...emptyGraph(), initializers }, opsetImports: [] };
    const bytes = encodeModel(model);
    assert.deepEqual(decodeModel(bytes), model);
    assert.deepEqual(encodeModel(model), bytes);
  });

  it("decodes unpacked repeated scalars and skips unknown fields", () => {
    const ff = (n: number) => new Array<number>(n).fill(0xff);
    const intsAttr = [
      ...ld(0x0a, ascii("p")),
      0x40, 0x01, // ints (8), unpacked: 1
      ...ld(0x42, [0x02, 0x03]), // ints (8), packed: 2, 3
      0x40, ...ff(9), 0x01, // ints (8), unpacked: -1
      ...ld(0x6a, ascii("doc")), // doc_string (13): unknown to us, skipped
      0xa0, 0x01, 0x07, // type (20) = INTS
    ];
    const floatsAttr = [
      ...ld(0x0a, ascii("q")),
      0x3d, 0x00, 0x00, 0xc0, 0x3f, // floats (7), unpacked fixed32: 1.5
      ...ld(0x3a, [0x00, 0x00, 0x80, 0xbf]), // floats (7), packed: -1
      0xa0, 0x01, 0x06, // type (20) = FLOATS
    ];
    const node = [...ld(0x22, ascii("Op")), ...ld(0x2a, intsAttr), ...ld(0x2a, floatsAttr)];
    const tensor = [0x08, 0x02, 0x08, 0x01, 0x10, 0x02, ...ld(0x4a, [1, 2])]; // dims unpacked [2, 1], UINT8
    const graph = [...ld(0x0a, node), ...ld(0x2a, tensor), 0x79, 0, 0, 0, 0, 0, 0, 0, 0]; // + unknown fixed64 (15)
    const bytes = new Uint8Array([0x08, 0x07, 0x28, 0x05, ...ld(0x3a, graph)]); // + unknown model_version (5)
    const model = decodeModel(bytes);
    assert.deepEqual(model.graph.nodes[0]!.attributes, [
      { name: "p", type: AttributeType.INTS, ints: [1, 2, 3, -1] },
      { name: "q", type: AttributeType.FLOATS, floats: [1.5, -1] },
    ]);
    assert.deepEqual(model.graph.initializers[0], {
      name: "",
      dataType: TensorDataType.UINT8,
      dims: [2, 1],
      rawData: new Uint8Array([1, 2]),
    });
  });

  it("encodes a 10 MB initializer quickly", () => {
    const rawData = new Uint8Array(10 * 1024 * 1024);
    for (let b = 0; b < rawData.length; b += 4096) rawData[b] = b & 0xff;
    const model: ModelProto = {
      irVersion: 8,
      producerName: "",
      graph: {
        ...emptyGraph(),
        initializers: [{ name: "big", dataType: TensorDataType.FLOAT, dims: [rawData.length / 4], rawData }],
      },
      opsetImports: [{ domain: "", version: 17 }],
    };
    encodeModel(model); // warm up
    const t0 = performance.now();
    const bytes = encodeModel(model);
    const ms = performance.now() - t0;
    console.log(`encodeModel with a 10 MB initializer: ${ms.toFixed(2)} ms`);
    assert.ok(ms < 100, `encoding took ${ms} ms`);
    const decoded = decodeModel(bytes).graph.initializers[0]!;
    assert.equal(decoded.rawData.length, rawData.length);
    assert.deepEqual(decoded.rawData, rawData);
  });
});

// --- errors ---------------------------------------------------------------------------------------

describe("onnx/proto errors", () => {
  const model: ModelProto = {
    irVersion: 8,
    producerName: "sa-fedlora",
    graph: {
      name: "g",
      nodes: [
        {
          inputs: ["x"],
          outputs: ["y"],
          name: "softmax",
          opType: "Softmax",
          attributes: [{ name: "axis", type: AttributeType.INT, i: -1 }],
        },
      ],
      initializers: [{ name: "w", dataType: TensorDataType.FLOAT, dims: [2], rawData: f32Bytes([1, 2]) }],
      inputs: [floatInput("x", [{ param: "batch" }, { value: 3 }])],
      outputs: [floatInput("y", [{ param: "batch" }, { value: 3 }])],
    },
    opsetImports: [{ domain: "", version: 17 }],
  };

  it("rejects every truncation that cuts a field, naming the byte offset", () => {
    const bytes = encodeModel(model);
    const opsetBytes = 6; // 42 04 0a 00 10 11, the last field
    for (let cut = 0; cut < bytes.length; cut++) {
      const prefix = bytes.subarray(0, cut);
      if (cut === bytes.length - opsetBytes) {
        // Protobuf has no end marker: cutting exactly between fields leaves a valid, shorter message.
        assert.deepEqual(decodeModel(prefix), { ...model, opsetImports: [] });
        continue;
      }
      assertSaflError(() => decodeModel(prefix), ErrorCode.Io, /at byte offset \d+/);
    }
  });

  it("names the offset of the truncated field", () => {
    const bytes = encodeModel(model);
    // The graph field starts at 14 (after 08 08 and 12 0a "sa-fedlora").
    assertSaflError(() => decodeModel(bytes.subarray(0, 40)), ErrorCode.Io, /field 7 declares \d+ bytes .* at byte offset 14$/);
    assertSaflError(() => decodeModel(bytes.subarray(0, 1)), ErrorCode.Io, /truncated varint at byte offset 1$/);
  });

  it("rejects malformed input", () => {
    assertSaflError(() => decodeModel(new Uint8Array([0x27])), ErrorCode.Io, /field 4 has invalid wire type 7 at byte offset 0/);
    assertSaflError(() => decodeModel(new Uint8Array([0x0f])), ErrorCode.Io, /field 1 has wire type 7, expected varint at byte offset 0/);
    assertSaflError(() => decodeModel(new Uint8Array([0x00, 0x01])), ErrorCode.Io, /field number 0 at byte offset 0/);
    assertSaflError(() => decodeModel(new Uint8Array([0x0a, 0x00])), ErrorCode.Io, /field 1 has wire type length-delimited, expected varint/);
    assertSaflError(
      () => decodeModel(new Uint8Array([0x08, ...new Array<number>(10).fill(0xff), 0x01])),
      ErrorCode.Io,
      /longer than 10 bytes at byte offset 1/,
    );
    assertSaflError(() => decodeModel(new Uint8Array([0x12, 0x01, 0xff])), ErrorCode.Io, /not valid UTF-8 at byte offset 0/);
    assertSaflError(() => decodeModel(new Uint8Array([0x08, 0x08])), ErrorCode.Io, /no graph .* at byte offset 2/);
    // A tensor whose raw_data does not match its dims (dims [2] FLOAT but 4 bytes).
    const badTensor = [...ld(0x0a, [0x02]), 0x10, 0x01, ...ld(0x4a, [0, 0, 0, 0])];
    assertSaflError(() => decodeModel(new Uint8Array(ld(0x3a, ld(0x2a, badTensor)))), ErrorCode.Io, /raw_data holds 4 bytes/);
    // Data outside raw_data is outside the subset.
    const floatData = [0x10, 0x01, ...ld(0x22, [0, 0, 0x80, 0x3f])];
    assertSaflError(
      () => decodeModel(new Uint8Array(ld(0x3a, ld(0x2a, floatData)))),
      ErrorCode.Unsupported,
      /float_data \(field 4\) is not supported.* at byte offset 6/,
    );
    // An int64 beyond 2^53.
    assertSaflError(
      () => decodeModel(new Uint8Array([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10])),
      ErrorCode.Unsupported,
      /safe-integer range .* at byte offset 1$/,
    );
  });

  it("rejects values the encoder cannot represent", () => {
    assertSaflError(
      () => encodeModel({ ...model, irVersion: 2 ** 53 }),
      ErrorCode.InvalidArgument,
      /irVersion must be an integer/,
    );
    assertSaflError(
      () => encodeModel({ ...model, irVersion: 1.5 }),
      ErrorCode.InvalidArgument,
      /irVersion must be an integer/,
    );
    const badInts = structuredClone(model);
    badInts.graph.nodes[0]!.attributes = [{ name: "perm", type: AttributeType.INTS, ints: [0, Number.NaN] }];
    assertSaflError(() => encodeModel(badInts), ErrorCode.InvalidArgument, /attribute "perm"\.ints\[1\]/);
    const badRaw = structuredClone(model);
    badRaw.graph.initializers[0]!.dims = [3];
    assertSaflError(() => encodeModel(badRaw), ErrorCode.Shape, /initializer "w": rawData holds 8 bytes but dims \[3\] of FLOAT need 12/);
    const badType = structuredClone(model);
    badType.graph.initializers[0]!.dataType = 8 as TensorDataType; // STRING
    assertSaflError(() => encodeModel(badType), ErrorCode.DType, /unsupported data type 8/);
  });
});

// --- onnxruntime-node -----------------------------------------------------------------------------

describe("onnx/proto models run in onnxruntime-node", () => {
  it("runs Add with a symbolic batch dimension", async () => {
    const shape = [{ param: "batch" }, { value: 3 }];
    const bytes = encodeModel({
      irVersion: 8,
      producerName: "sa-fedlora-test",
      graph: {
        name: "add",
        nodes: [{ inputs: ["a", "b"], outputs: ["c"], name: "add0", opType: "Add", attributes: [] }],
        initializers: [],
        inputs: [floatInput("a", shape), floatInput("b", shape)],
        outputs: [floatInput("c", shape)],
      },
      opsetImports: [{ domain: "", version: 17 }],
    });
    const session = await ort.InferenceSession.create(bytes);
    try {
      const a = [1, 2, 3, 4, 5, 6];
      const b = [0.5, -1, 10, 100, -5, 0.25];
      const out = await session.run({
        a: new ort.Tensor("float32", Float32Array.from(a), [2, 3]),
        b: new ort.Tensor("float32", Float32Array.from(b), [2, 3]),
      });
      assert.deepEqual(out["c"]!.dims, [2, 3]);
      assertClose(out["c"]!.data as Float32Array, a.map((v, k) => v + b[k]!));
      // The batch dimension really is symbolic.
      const one = await session.run({
        a: new ort.Tensor("float32", Float32Array.from([1, 2, 3]), [1, 3]),
        b: new ort.Tensor("float32", Float32Array.from([3, 2, 1]), [1, 3]),
      });
      assert.deepEqual([...(one["c"]!.data as Float32Array)], [4, 4, 4]);
    } finally {
      await session.release();
    }
  });

  it("runs MatMul, Transpose, Reshape(-1), Softmax(axis=-1), Gemm(transB, alpha) and Constant", async () => {
    // Weights and inputs.
    const X = [
      [0.5, -1, 2],
      [1.5, 0.25, -0.75],
    ];
    const W = [0, 1, 2].map((i) => [0, 1, 2, 3].map((j) => (i * 4 + j + 1) / 10 - 0.5)); // [3,4]
    const W2 = [0, 1, 2, 3, 4].map((i) => [0, 1, 2, 3].map((j) => Math.sin(i * 4 + j))); // [5,4]
    const C = [0.1, -0.2, 0.3, -0.4, 0.5]; // [5]
    const K = [1, 2, 3, 4, 5]; // [5], from a Constant node's TENSOR attribute

    // Reference in float64.
    const M = X.map((row) => [0, 1, 2, 3].map((j) => row.reduce((s, x, i) => s + x * W[i]![j], 0))); // [2,4]
    const T = [0, 1, 2, 3].map((j) => [0, 1].map((i) => M[i]![j])); // [4,2]
    const flat = T.flat();
    const R = [flat.slice(0, 4), flat.slice(4, 8)]; // Reshape to [-1, 4] = [2,4]
    const S = R.map((row) => {
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    });
    const G = S.map((row) => W2.map((w, o) => 0.5 * row.reduce((s, v, k) => s + v * w[k]!, 0) + C[o]!)); // [2,5]
    const Y = G.map((row) => row.map((v, o) => v + K[o]!));

    const bytes = encodeModel({
      irVersion: 8,
      producerName: "sa-fedlora-test",
      producerVersion: "0.1.0",
      graph: {
        name: "mixed",
        nodes: [
          { inputs: ["x", "w"], outputs: ["m"], name: "matmul", opType: "MatMul", attributes: [] },
          {
            inputs: ["m"],
            outputs: ["t"],
            name: "transpose",
            opType: "Transpose",
            attributes: [{ name: "perm", type: AttributeType.INTS, ints: [1, 0] }],
          },
          { inputs: ["t", "shape"], outputs: ["r"], name: "reshape", opType: "Reshape", attributes: [] },
          {
            inputs: ["r"],
            outputs: ["s"],
            name: "softmax",
            opType: "Softmax",
            attributes: [{ name: "axis", type: AttributeType.INT, i: -1 }],
          },
          {
            inputs: ["s", "w2", "c"],
            outputs: ["g"],
            name: "gemm",
            opType: "Gemm",
            attributes: [
              { name: "alpha", type: AttributeType.FLOAT, f: 0.5 },
              { name: "transB", type: AttributeType.INT, i: 1 },
            ],
          },
          {
            inputs: [],
            outputs: ["k"],
            name: "const",
            opType: "Constant",
            attributes: [
              {
                name: "value",
                type: AttributeType.TENSOR,
                t: { name: "k_value", dataType: TensorDataType.FLOAT, dims: [5], rawData: f32Bytes(K) },
              },
            ],
          },
          { inputs: ["g", "k"], outputs: ["y"], name: "add", opType: "Add", attributes: [] },
        ],
        initializers: [
          { name: "w", dataType: TensorDataType.FLOAT, dims: [3, 4], rawData: f32Bytes(W.flat()) },
          { name: "shape", dataType: TensorDataType.INT64, dims: [2], rawData: i64Bytes([-1, 4]) },
          { name: "w2", dataType: TensorDataType.FLOAT, dims: [5, 4], rawData: f32Bytes(W2.flat()) },
          { name: "c", dataType: TensorDataType.FLOAT, dims: [5], rawData: f32Bytes(C) },
        ],
        inputs: [floatInput("x", [{ value: 2 }, { value: 3 }])],
        outputs: [floatInput("y", [{ value: 2 }, { value: 5 }]), floatInput("s", [{ value: 2 }, { value: 4 }])],
        valueInfo: [floatInput("m", [{ value: 2 }, { value: 4 }]), floatInput("t", [{ value: 4 }, { value: 2 }])],
      },
      opsetImports: [{ domain: "", version: 17 }],
    });
    const session = await ort.InferenceSession.create(bytes);
    try {
      const out = await session.run({ x: new ort.Tensor("float32", Float32Array.from(X.flat()), [2, 3]) });
      assert.deepEqual(out["s"]!.dims, [2, 4]);
      assert.deepEqual(out["y"]!.dims, [2, 5]);
      assertClose(out["s"]!.data as Float32Array, S.flat());
      assertClose(out["y"]!.data as Float32Array, Y.flat());
    } finally {
      await session.release();
    }
  });
});
