/**
 * @module onnx/proto
 * A small, dependency-free protobuf encoder and decoder for the subset of the ONNX schema
 * (`onnx.proto3`) this package emits: models, graphs, nodes, attributes, raw-data tensors and tensor
 * value infos. No `node:` imports, so it also runs in browsers.
 *
 * Wire format decisions (the bytes are deterministic for a given input):
 * - Fields are written in field-number order; repeated entries (nodes, attributes, initializers, ...)
 *   in the order given (callers sort attributes by name themselves).
 * - Every field the TypeScript object carries is written, even when it holds the default value
 *   (`""`, `0`): this is what ONNX's own (proto2) serializer does for set fields, and it matters for
 *   `Dimension.dim_value = 0`, which is a member of a oneof. Optional properties that are
 *   `undefined` and empty repeated fields are not written.
 * - Repeated scalars (`dims`, `floats`, `ints`) are packed; the decoder also accepts them unpacked.
 * - int64 values must be safe integers (|v| <= 2^53 - 1); negatives are written as 10-byte two's
 *   complement varints, as protobuf requires for int64/int32.
 * - `AttributeProto.f` and `floats` are float32 on the wire, so values round to float32.
 *
 * The encoder collects its output as a list of chunks: small writes go into a growing scratch
 * buffer, large byte arrays (initializer `raw_data`) are referenced rather than copied, and
 * {@link encodeModel} copies everything exactly once into the final buffer.
 */

import { ErrorCode, SaflError } from "../errors.js";

// ---------------------------------------------------------------------------------------------------
// Schema subset
// ---------------------------------------------------------------------------------------------------

/** `TensorProto.DataType` values this package uses (numbers as in onnx.proto). */
export enum TensorDataType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  BFLOAT16 = 16,
}

/** `AttributeProto.AttributeType` values this package uses (numbers as in onnx.proto). */
export enum AttributeType {
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
}

/** A tensor whose data is stored in `raw_data`. */
export interface TensorProto {
  name: string;
  dataType: TensorDataType;
  dims: number[];
  /** Element data, little-endian, exactly `product(dims) * elementSize(dataType)` bytes. */
  rawData: Uint8Array;
}

/**
 * A node attribute. `f` and `floats` are float32 on the wire; `s` and `strings` are UTF-8.
 */
export type AttributeProto =
  | { name: string; type: AttributeType.FLOAT; f: number }
  | { name: string; type: AttributeType.INT; i: number }
  | { name: string; type: AttributeType.STRING; s: string }
  | { name: string; type: AttributeType.TENSOR; t: TensorProto }
  | { name: string; type: AttributeType.FLOATS; floats: number[] }
  | { name: string; type: AttributeType.INTS; ints: number[] }
  | { name: string; type: AttributeType.STRINGS; strings: string[] };

/** One operator invocation. `domain` is omitted (or `""`) for the default `ai.onnx` domain. */
export interface NodeProto {
  inputs: string[];
  outputs: string[];
  name: string;
  opType: string;
  domain?: string;
  /** Written in the order given; callers sort them by name for deterministic bytes. */
  attributes: AttributeProto[];
}

/** One dimension of a value's shape: a fixed size or a symbolic name such as `"batch"`. */
export type DimProto = { value: number } | { param: string };

/** A named tensor value with its element type and (fully ranked) shape. */
export interface ValueInfoProto {
  name: string;
  elemType: TensorDataType;
  /** `[]` is a scalar (the shape is always written, so the rank is always known). */
  shape: DimProto[];
}

/** A computation graph. */
export interface GraphProto {
  name: string;
  nodes: NodeProto[];
  initializers: TensorProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  /** Shapes of intermediate values. {@link decodeModel} omits it when the graph has none. */
  valueInfo?: ValueInfoProto[];
}

/** An operator set import, e.g. `{ domain: "", version: 17 }` for `ai.onnx` opset 17. */
export interface OperatorSetId {
  domain: string;
  version: number;
}

/** A complete ONNX model. */
export interface ModelProto {
  irVersion: number;
  producerName: string;
  producerVersion?: string;
  graph: GraphProto;
  opsetImports: OperatorSetId[];
}

/** Bytes per element for each supported data type. */
const ELEMENT_SIZE: Readonly<Record<TensorDataType, number>> = {
  [TensorDataType.FLOAT]: 4,
  [TensorDataType.UINT8]: 1,
  [TensorDataType.INT8]: 1,
  [TensorDataType.INT32]: 4,
  [TensorDataType.INT64]: 8,
  [TensorDataType.BOOL]: 1,
  [TensorDataType.FLOAT16]: 2,
  [TensorDataType.DOUBLE]: 8,
  [TensorDataType.BFLOAT16]: 2,
};

function isTensorDataType(v: number): v is TensorDataType {
  return Object.hasOwn(ELEMENT_SIZE, v);
}

const ATTRIBUTE_TYPES: ReadonlySet<number> = new Set([1, 2, 3, 4, 6, 7, 8]);

// Wire types.
const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

const TWO_POW_32 = 4294967296;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------

/** Byte arrays at least this long are referenced by the writer instead of copied. */
const BY_REFERENCE = 4096;
const FIRST_BUFFER = 256;
const MAX_BUFFER = 1 << 20;

const floatScratch = new DataView(new ArrayBuffer(4));

function encodeError(code: ErrorCode, message: string): SaflError {
  return new SaflError(code, `encodeModel: ${message}`);
}

function checkInt64(v: number, what: string): number {
  if (!Number.isSafeInteger(v)) {
    throw encodeError(
      ErrorCode.InvalidArgument,
      `${what} must be an integer with |v| <= 2^53 - 1, got ${String(v)}`,
    );
  }
  return v;
}

function checkFloat(v: number, what: string): number {
  if (typeof v !== "number") {
    throw encodeError(ErrorCode.InvalidArgument, `${what} must be a number, got ${typeof v}`);
  }
  return v;
}

function checkString(v: string, what: string): string {
  if (typeof v !== "string") {
    throw encodeError(ErrorCode.InvalidArgument, `${what} must be a string, got ${typeof v}`);
  }
  return v;
}

/**
 * Growable byte writer. Output is a list of chunks plus a scratch buffer; chunks are copied once,
 * by {@link Writer.finish}.
 */
class Writer {
  private readonly chunks: Uint8Array[] = [];
  /** Bytes held in `chunks`. */
  private chunked = 0;
  private buf: Uint8Array = new Uint8Array(FIRST_BUFFER);
  private pos = 0;
  private nextSize = FIRST_BUFFER * 2;

  /** Total bytes written so far. */
  get length(): number {
    return this.chunked + this.pos;
  }

  /** Moves the scratch buffer's written bytes into `chunks`, keeping its unused tail for later writes. */
  private flush(): void {
    if (this.pos === 0) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.chunked += this.pos;
    this.buf = this.buf.subarray(this.pos);
    this.pos = 0;
  }

  private reserve(n: number): void {
    if (this.buf.length - this.pos >= n) return;
    this.flush();
    this.buf = new Uint8Array(Math.max(n, this.nextSize));
    this.nextSize = Math.min(this.nextSize * 2, MAX_BUFFER);
  }

  /** Unsigned varint of a non-negative integer below 2^32 (tags, lengths). */
  uvarint(n: number): void {
    this.reserve(5);
    const buf = this.buf;
    let pos = this.pos;
    while (n > 127) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n = n >>> 7;
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  /** int64 varint of a safe integer (negatives as 10-byte two's complement). */
  int64(v: number): void {
    if (v >= 0 && v < TWO_POW_32) {
      this.uvarint(v);
      return;
    }
    // ToUint32 of an integer is its value mod 2^32; floor division gives the (arithmetic) high word.
    let lo = v >>> 0;
    let hi = Math.floor(v / TWO_POW_32) >>> 0;
    this.reserve(10);
    const buf = this.buf;
    let pos = this.pos;
    while (hi !== 0 || lo > 127) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi = hi >>> 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  float32(v: number): void {
    this.reserve(4);
    floatScratch.setFloat32(0, v, true);
    this.buf[this.pos] = floatScratch.getUint8(0);
    this.buf[this.pos + 1] = floatScratch.getUint8(1);
    this.buf[this.pos + 2] = floatScratch.getUint8(2);
    this.buf[this.pos + 3] = floatScratch.getUint8(3);
    this.pos += 4;
  }

  /** Appends bytes; long arrays are referenced, so they must not change before `finish`. */
  bytes(b: Uint8Array): void {
    if (b.length >= BY_REFERENCE) {
      this.flush();
      this.chunks.push(b);
      this.chunked += b.length;
      return;
    }
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Appends everything another writer holds. */
  append(w: Writer): void {
    if (w.length < BY_REFERENCE) {
      this.reserve(w.length);
      for (const c of w.chunks) {
        this.buf.set(c, this.pos);
        this.pos += c.length;
      }
      this.buf.set(w.buf.subarray(0, w.pos), this.pos);
      this.pos += w.pos;
      return;
    }
    this.flush();
    w.flush();
    for (const c of w.chunks) this.chunks.push(c);
    this.chunked += w.chunked;
  }

  tag(field: number, wireType: number): void {
    this.uvarint(field * 8 + wireType);
  }

  int64Field(field: number, v: number, what: string): void {
    this.tag(field, VARINT);
    this.int64(checkInt64(v, what));
  }

  float32Field(field: number, v: number, what: string): void {
    this.tag(field, I32);
    this.float32(checkFloat(v, what));
  }

  bytesField(field: number, b: Uint8Array): void {
    this.tag(field, LEN);
    this.uvarint(b.length);
    this.bytes(b);
  }

  stringField(field: number, s: string, what: string): void {
    this.bytesField(field, utf8Encoder.encode(checkString(s, what)));
  }

  messageField(field: number, w: Writer): void {
    this.tag(field, LEN);
    this.uvarint(w.length);
    this.append(w);
  }

  /** Packed repeated int64; nothing is written for an empty list. */
  packedInt64(field: number, values: readonly number[], what: string): void {
    if (values.length === 0) return;
    const p = new Writer();
    for (let k = 0; k < values.length; k++) p.int64(checkInt64(values[k]!, `${what}[${k}]`));
    this.messageField(field, p);
  }

  /** Packed repeated float32; nothing is written for an empty list. */
  packedFloat32(field: number, values: readonly number[], what: string): void {
    if (values.length === 0) return;
    this.tag(field, LEN);
    this.uvarint(values.length * 4);
    for (let k = 0; k < values.length; k++) this.float32(checkFloat(values[k]!, `${what}[${k}]`));
  }

  /** Copies all chunks into one new buffer. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    out.set(this.buf.subarray(0, this.pos), at);
    return out;
  }
}

function checkArray(v: unknown, what: string): void {
  if (!Array.isArray(v)) throw encodeError(ErrorCode.InvalidArgument, `${what} must be an array`);
}

/** Element count of a shape, validating each dimension. */
function elementCount(dims: readonly number[], what: string): number {
  let n = 1;
  for (let k = 0; k < dims.length; k++) {
    const d = dims[k]!;
    if (!Number.isSafeInteger(d) || d < 0) {
      throw encodeError(ErrorCode.Shape, `${what}: dims[${k}] must be a non-negative integer, got ${String(d)}`);
    }
    n *= d;
  }
  return n;
}

function writeTensor(t: TensorProto, what: string): Writer {
  checkArray(t.dims, `${what}.dims`);
  if (!isTensorDataType(t.dataType)) {
    throw encodeError(ErrorCode.DType, `${what}: unsupported data type ${String(t.dataType)}`);
  }
  if (!(t.rawData instanceof Uint8Array)) {
    throw encodeError(ErrorCode.InvalidArgument, `${what}: rawData must be a Uint8Array`);
  }
  const expected = elementCount(t.dims, what) * ELEMENT_SIZE[t.dataType];
  if (t.rawData.length !== expected) {
    throw encodeError(
      ErrorCode.Shape,
      `${what}: rawData holds ${t.rawData.length} bytes but dims [${t.dims.join(",")}] of ${TensorDataType[t.dataType]} need ${expected}`,
    );
  }
  const w = new Writer();
  w.packedInt64(1, t.dims, `${what}.dims`);
  w.int64Field(2, t.dataType, `${what}.dataType`);
  w.stringField(8, t.name, `${what}.name`);
  w.bytesField(9, t.rawData);
  return w;
}

function writeAttribute(a: AttributeProto, what: string): Writer {
  const w = new Writer();
  w.stringField(1, a.name, `${what}.name`);
  switch (a.type) {
    case AttributeType.FLOAT:
      w.float32Field(2, a.f, `${what}.f`);
      break;
    case AttributeType.INT:
      w.int64Field(3, a.i, `${what}.i`);
      break;
    case AttributeType.STRING:
      w.stringField(4, a.s, `${what}.s`);
      break;
    case AttributeType.TENSOR:
      w.messageField(5, writeTensor(a.t, `${what}.t`));
      break;
    case AttributeType.FLOATS:
      checkArray(a.floats, `${what}.floats`);
      w.packedFloat32(7, a.floats, `${what}.floats`);
      break;
    case AttributeType.INTS:
      checkArray(a.ints, `${what}.ints`);
      w.packedInt64(8, a.ints, `${what}.ints`);
      break;
    case AttributeType.STRINGS:
      checkArray(a.strings, `${what}.strings`);
      for (let k = 0; k < a.strings.length; k++) w.stringField(9, a.strings[k]!, `${what}.strings[${k}]`);
      break;
    default:
      throw encodeError(
        ErrorCode.Unsupported,
        `${what}: unsupported attribute type ${String((a as { type: unknown }).type)}`,
      );
  }
  w.int64Field(20, a.type, `${what}.type`);
  return w;
}

function writeNode(n: NodeProto, what: string): Writer {
  checkArray(n.inputs, `${what}.inputs`);
  checkArray(n.outputs, `${what}.outputs`);
  checkArray(n.attributes, `${what}.attributes`);
  const w = new Writer();
  for (let k = 0; k < n.inputs.length; k++) w.stringField(1, n.inputs[k]!, `${what}.inputs[${k}]`);
  for (let k = 0; k < n.outputs.length; k++) w.stringField(2, n.outputs[k]!, `${what}.outputs[${k}]`);
  w.stringField(3, n.name, `${what}.name`);
  w.stringField(4, n.opType, `${what}.opType`);
  for (const a of n.attributes) w.messageField(5, writeAttribute(a, `${what} attribute "${a.name}"`));
  if (n.domain !== undefined) w.stringField(7, n.domain, `${what}.domain`);
  return w;
}

function writeValueInfo(v: ValueInfoProto, what: string): Writer {
  checkArray(v.shape, `${what}.shape`);
  if (!isTensorDataType(v.elemType)) {
    throw encodeError(ErrorCode.DType, `${what}: unsupported element type ${String(v.elemType)}`);
  }
  const shape = new Writer();
  for (let k = 0; k < v.shape.length; k++) {
    const d = v.shape[k]!;
    const dim = new Writer();
    if ("value" in d) dim.int64Field(1, d.value, `${what}.shape[${k}].value`);
    else if ("param" in d) dim.stringField(2, d.param, `${what}.shape[${k}].param`);
    else throw encodeError(ErrorCode.InvalidArgument, `${what}.shape[${k}] needs a value or a param`);
    shape.messageField(1, dim);
  }
  const tensorType = new Writer();
  tensorType.int64Field(1, v.elemType, `${what}.elemType`);
  tensorType.messageField(2, shape);
  const type = new Writer();
  type.messageField(1, tensorType);
  const w = new Writer();
  w.stringField(1, v.name, `${what}.name`);
  w.messageField(2, type);
  return w;
}

function writeGraph(g: GraphProto): Writer {
  checkArray(g.nodes, "graph.nodes");
  checkArray(g.initializers, "graph.initializers");
  checkArray(g.inputs, "graph.inputs");
  checkArray(g.outputs, "graph.outputs");
  const w = new Writer();
  for (let k = 0; k < g.nodes.length; k++) {
    const n = g.nodes[k]!;
    w.messageField(1, writeNode(n, `node ${k} ("${n.name}", ${n.opType})`));
  }
  w.stringField(2, g.name, "graph.name");
  for (const t of g.initializers) w.messageField(5, writeTensor(t, `initializer "${t.name}"`));
  for (const v of g.inputs) w.messageField(11, writeValueInfo(v, `input "${v.name}"`));
  for (const v of g.outputs) w.messageField(12, writeValueInfo(v, `output "${v.name}"`));
  if (g.valueInfo !== undefined) {
    checkArray(g.valueInfo, "graph.valueInfo");
    for (const v of g.valueInfo) w.messageField(13, writeValueInfo(v, `value_info "${v.name}"`));
  }
  return w;
}

/**
 * Serializes a model to ONNX protobuf bytes. The output is deterministic: the same model always
 * gives the same bytes.
 *
 * @throws SaflError if a value cannot be represented: an int64 outside the safe-integer range
 *   (`invalid_argument`), an unsupported data type (`dtype`), or a tensor whose `rawData` length does
 *   not match its dims and data type (`shape`).
 * @example
 * const bytes = encodeModel({ irVersion: 8, producerName: "sa-fedlora", graph, opsetImports: [{ domain: "", version: 17 }] });
 */
export function encodeModel(m: ModelProto): Uint8Array {
  checkArray(m.opsetImports, "opsetImports");
  const w = new Writer();
  w.int64Field(1, m.irVersion, "irVersion");
  w.stringField(2, m.producerName, "producerName");
  if (m.producerVersion !== undefined) w.stringField(3, m.producerVersion, "producerVersion");
  w.messageField(7, writeGraph(m.graph));
  for (let k = 0; k < m.opsetImports.length; k++) {
    const o = m.opsetImports[k]!;
    const ow = new Writer();
    ow.stringField(1, o.domain, `opsetImports[${k}].domain`);
    ow.int64Field(2, o.version, `opsetImports[${k}].version`);
    w.messageField(8, ow);
  }
  return w.finish();
}

// ---------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------

const WIRE_NAMES = ["varint", "fixed64", "length-delimited", "start-group", "end-group", "fixed32"];

/**
 * Reads one message (or packed field) spanning `[pos, end)` of `buf`. Offsets in errors are
 * absolute offsets into the whole input.
 */
class Reader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
    /** Message name for error messages. */
    readonly what: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  fail(message: string, at: number = this.pos, code: ErrorCode = ErrorCode.Io): never {
    throw new SaflError(code, `decodeModel: ${this.what}: ${message} at byte offset ${at}`);
  }

  /** Reads an int64 varint; fails unless it is a safe integer. */
  int64(): number {
    const start = this.pos;
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let k = 0; k < 10; k++) {
      if (this.pos >= this.end) this.fail("truncated varint", start);
      const b = buf[this.pos++]!;
      const bits = b & 0x7f;
      if (k < 4) lo |= bits << (7 * k);
      else if (k === 4) {
        lo |= bits << 28;
        hi |= bits >>> 4;
      } else hi |= bits << (7 * k - 32);
      if (b < 0x80) {
        lo >>>= 0;
        // `hi | 0` reinterprets the high word as signed; the sum is exact for safe integers, and
        // rounds to at least 2^53 in magnitude otherwise.
        const v = (hi | 0) * TWO_POW_32 + lo;
        if (!Number.isSafeInteger(v)) {
          this.fail("int64 value outside the safe-integer range (|v| <= 2^53 - 1)", start, ErrorCode.Unsupported);
        }
        return v;
      }
    }
    return this.fail("varint longer than 10 bytes", start);
  }

  /** Skips a varint without interpreting it. */
  skipVarint(): void {
    const start = this.pos;
    for (let k = 0; k < 10; k++) {
      if (this.pos >= this.end) this.fail("truncated varint", start);
      if (this.buf[this.pos++]! < 0x80) return;
    }
    this.fail("varint longer than 10 bytes", start);
  }

  /** Reads a tag; returns `[field, wireType]`. */
  tag(): [number, number] {
    const at = this.pos;
    const t = this.int64();
    if (t < 0 || t > 0xffffffff) this.fail(`invalid tag ${t}`, at);
    const field = Math.floor(t / 8);
    if (field === 0) this.fail("invalid field number 0", at);
    return [field, t % 8];
  }

  expectWire(field: number, wireType: number, want: number, at: number): void {
    if (wireType !== want) {
      this.fail(
        `field ${field} has wire type ${WIRE_NAMES[wireType] ?? wireType}, expected ${WIRE_NAMES[want]}`,
        at,
      );
    }
  }

  /** Reads a length prefix and returns the end offset of the delimited bytes. */
  lengthEnd(field: number, at: number): number {
    const len = this.int64();
    if (len < 0) this.fail(`field ${field} has negative length ${len}`, at);
    if (len > this.end - this.pos) {
      this.fail(`field ${field} declares ${len} bytes but only ${this.end - this.pos} remain`, at);
    }
    return this.pos + len;
  }

  int64Field(field: number, wireType: number, at: number): number {
    this.expectWire(field, wireType, VARINT, at);
    return this.int64();
  }

  bytesField(field: number, wireType: number, at: number): Uint8Array {
    this.expectWire(field, wireType, LEN, at);
    const end = this.lengthEnd(field, at);
    const out = this.buf.slice(this.pos, end);
    this.pos = end;
    return out;
  }

  stringField(field: number, wireType: number, at: number): string {
    this.expectWire(field, wireType, LEN, at);
    const end = this.lengthEnd(field, at);
    let s: string;
    try {
      s = utf8Decoder.decode(this.buf.subarray(this.pos, end));
    } catch {
      return this.fail(`field ${field} is not valid UTF-8`, at);
    }
    this.pos = end;
    return s;
  }

  float32Field(field: number, wireType: number, at: number): number {
    this.expectWire(field, wireType, I32, at);
    return this.float32();
  }

  float32(): number {
    if (this.end - this.pos < 4) this.fail("truncated fixed32", this.pos);
    const b = this.buf;
    const p = this.pos;
    floatScratch.setUint8(0, b[p]!);
    floatScratch.setUint8(1, b[p + 1]!);
    floatScratch.setUint8(2, b[p + 2]!);
    floatScratch.setUint8(3, b[p + 3]!);
    this.pos += 4;
    return floatScratch.getFloat32(0, true);
  }

  /** Reads an embedded message; returns a reader over it and moves past it. */
  message(field: number, wireType: number, at: number, what: string): Reader {
    this.expectWire(field, wireType, LEN, at);
    const end = this.lengthEnd(field, at);
    const sub = new Reader(this.buf, this.pos, end, what);
    this.pos = end;
    return sub;
  }

  /** Reads packed or unpacked repeated int64 values into `out`. */
  int64s(field: number, wireType: number, at: number, out: number[]): void {
    if (wireType === VARINT) {
      out.push(this.int64());
      return;
    }
    this.expectWire(field, wireType, LEN, at);
    const end = this.lengthEnd(field, at);
    const sub = new Reader(this.buf, this.pos, end, `${this.what} packed field ${field}`);
    while (!sub.done) out.push(sub.int64());
    this.pos = end;
  }

  /** Reads packed or unpacked repeated float32 values into `out`. */
  float32s(field: number, wireType: number, at: number, out: number[]): void {
    if (wireType === I32) {
      out.push(this.float32());
      return;
    }
    this.expectWire(field, wireType, LEN, at);
    const end = this.lengthEnd(field, at);
    if ((end - this.pos) % 4 !== 0) this.fail(`packed float field ${field} length is not a multiple of 4`, at);
    while (this.pos < end) out.push(this.float32());
  }

  /** Skips a field this decoder does not read. */
  skip(field: number, wireType: number, at: number): void {
    switch (wireType) {
      case VARINT:
        this.skipVarint();
        return;
      case I64:
        if (this.end - this.pos < 8) this.fail(`truncated fixed64 field ${field}`, at);
        this.pos += 8;
        return;
      case LEN:
        this.pos = this.lengthEnd(field, at);
        return;
      case I32:
        if (this.end - this.pos < 4) this.fail(`truncated fixed32 field ${field}`, at);
        this.pos += 4;
        return;
      case 3:
      case 4:
        this.fail(`field ${field} uses protobuf groups, which ONNX does not`, at);
        break;
      default:
        this.fail(`field ${field} has invalid wire type ${wireType}`, at);
    }
  }
}

/** TensorProto fields that hold data somewhere other than `raw_data`. */
const TENSOR_DATA_FIELDS: Readonly<Record<number, string>> = {
  3: "segment",
  4: "float_data",
  5: "int32_data",
  6: "string_data",
  7: "int64_data",
  10: "double_data",
  11: "uint64_data",
  13: "external_data",
  14: "data_location",
};

function readTensor(r: Reader, start: number): TensorProto {
  const dims: number[] = [];
  let dataType = 0;
  let dataTypeAt = start;
  let name = "";
  let rawData: Uint8Array = new Uint8Array(0);
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    switch (field) {
      case 1:
        r.int64s(field, wt, at, dims);
        break;
      case 2:
        dataTypeAt = at;
        dataType = r.int64Field(field, wt, at);
        break;
      case 8:
        name = r.stringField(field, wt, at);
        break;
      case 9:
        rawData = r.bytesField(field, wt, at);
        break;
      default: {
        const unsupported = TENSOR_DATA_FIELDS[field];
        if (unsupported !== undefined) {
          r.fail(`${unsupported} (field ${field}) is not supported; only raw_data is`, at, ErrorCode.Unsupported);
        }
        r.skip(field, wt, at);
      }
    }
  }
  if (!isTensorDataType(dataType)) {
    r.fail(`tensor "${name}" has unsupported data type ${dataType}`, dataTypeAt, ErrorCode.Unsupported);
  }
  let count = 1;
  for (const d of dims) {
    if (d < 0) r.fail(`tensor "${name}" has negative dimension ${d}`, start);
    count *= d;
  }
  const expected = count * ELEMENT_SIZE[dataType];
  if (rawData.length !== expected) {
    r.fail(
      `tensor "${name}" raw_data holds ${rawData.length} bytes but dims [${dims.join(",")}] of ${TensorDataType[dataType]} need ${expected}`,
      start,
    );
  }
  return { name, dataType, dims, rawData };
}

function readAttribute(r: Reader, start: number): AttributeProto {
  let name = "";
  let type = 0;
  let f = 0;
  let i = 0;
  let s = "";
  let t: TensorProto | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  const strings: string[] = [];
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    switch (field) {
      case 1:
        name = r.stringField(field, wt, at);
        break;
      case 2:
        f = r.float32Field(field, wt, at);
        break;
      case 3:
        i = r.int64Field(field, wt, at);
        break;
      case 4:
        s = r.stringField(field, wt, at);
        break;
      case 5:
        t = readTensor(r.message(field, wt, at, "TensorProto"), at);
        break;
      case 7:
        r.float32s(field, wt, at, floats);
        break;
      case 8:
        r.int64s(field, wt, at, ints);
        break;
      case 9:
        strings.push(r.stringField(field, wt, at));
        break;
      case 20:
        type = r.int64Field(field, wt, at);
        break;
      default:
        r.skip(field, wt, at);
    }
  }
  if (type === 0) r.fail(`attribute "${name}" has no type (field 20)`, start);
  if (!ATTRIBUTE_TYPES.has(type)) {
    r.fail(`attribute "${name}" has unsupported type ${type}`, start, ErrorCode.Unsupported);
  }
  switch (type as AttributeType) {
    case AttributeType.FLOAT:
      return { name, type: AttributeType.FLOAT, f };
    case AttributeType.INT:
      return { name, type: AttributeType.INT, i };
    case AttributeType.STRING:
      return { name, type: AttributeType.STRING, s };
    case AttributeType.TENSOR:
      if (t === undefined) r.fail(`attribute "${name}" of type TENSOR has no tensor (field 5)`, start);
      return { name, type: AttributeType.TENSOR, t };
    case AttributeType.FLOATS:
      return { name, type: AttributeType.FLOATS, floats };
    case AttributeType.INTS:
      return { name, type: AttributeType.INTS, ints };
    case AttributeType.STRINGS:
      return { name, type: AttributeType.STRINGS, strings };
  }
}

function readNode(r: Reader): NodeProto {
  const inputs: string[] = [];
  const outputs: string[] = [];
  let name = "";
  let opType = "";
  let domain: string | undefined;
  const attributes: AttributeProto[] = [];
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    switch (field) {
      case 1:
        inputs.push(r.stringField(field, wt, at));
        break;
      case 2:
        outputs.push(r.stringField(field, wt, at));
        break;
      case 3:
        name = r.stringField(field, wt, at);
        break;
      case 4:
        opType = r.stringField(field, wt, at);
        break;
      case 5:
        attributes.push(readAttribute(r.message(field, wt, at, "AttributeProto"), at));
        break;
      case 7:
        domain = r.stringField(field, wt, at);
        break;
      default:
        r.skip(field, wt, at);
    }
  }
  const node: NodeProto = { inputs, outputs, name, opType, attributes };
  if (domain !== undefined) node.domain = domain;
  return node;
}

function readDimension(r: Reader, start: number): DimProto {
  let dim: DimProto | undefined;
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    if (field === 1) dim = { value: r.int64Field(field, wt, at) };
    else if (field === 2) dim = { param: r.stringField(field, wt, at) };
    else r.skip(field, wt, at);
  }
  if (dim === undefined) {
    r.fail("dimension has neither dim_value nor dim_param (unknown dimensions are not supported)", start, ErrorCode.Unsupported);
  }
  return dim;
}

function readShape(r: Reader): DimProto[] {
  const dims: DimProto[] = [];
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    if (field === 1) dims.push(readDimension(r.message(field, wt, at, "TensorShapeProto.Dimension"), at));
    else r.skip(field, wt, at);
  }
  return dims;
}

function readTensorType(r: Reader, start: number): { elemType: TensorDataType; shape: DimProto[] } {
  let elemType = 0;
  let shape: DimProto[] | undefined;
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    if (field === 1) elemType = r.int64Field(field, wt, at);
    else if (field === 2) shape = readShape(r.message(field, wt, at, "TensorShapeProto"));
    else r.skip(field, wt, at);
  }
  if (!isTensorDataType(elemType)) r.fail(`unsupported element type ${elemType}`, start, ErrorCode.Unsupported);
  if (shape === undefined) r.fail("tensor type has no shape (unknown rank is not supported)", start, ErrorCode.Unsupported);
  return { elemType, shape };
}

function readValueInfo(r: Reader, start: number): ValueInfoProto {
  let name = "";
  let type: { elemType: TensorDataType; shape: DimProto[] } | undefined;
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    if (field === 1) name = r.stringField(field, wt, at);
    else if (field === 2) {
      const tr = r.message(field, wt, at, "TypeProto");
      type = undefined;
      while (!tr.done) {
        const tat = tr.pos;
        const [tfield, twt] = tr.tag();
        if (tfield === 1) type = readTensorType(tr.message(tfield, twt, tat, "TypeProto.Tensor"), tat);
        else if (tfield === 6) tr.skip(tfield, twt, tat); // denotation
        else tr.fail(`only tensor types are supported, found TypeProto field ${tfield}`, tat, ErrorCode.Unsupported);
      }
    } else r.skip(field, wt, at);
  }
  if (type === undefined) r.fail(`value "${name}" has no tensor type`, start, ErrorCode.Unsupported);
  return { name, elemType: type.elemType, shape: type.shape };
}

function readGraph(r: Reader): GraphProto {
  let name = "";
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  const inputs: ValueInfoProto[] = [];
  const outputs: ValueInfoProto[] = [];
  let valueInfo: ValueInfoProto[] | undefined;
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    switch (field) {
      case 1:
        nodes.push(readNode(r.message(field, wt, at, "NodeProto")));
        break;
      case 2:
        name = r.stringField(field, wt, at);
        break;
      case 5:
        initializers.push(readTensor(r.message(field, wt, at, "TensorProto"), at));
        break;
      case 11:
        inputs.push(readValueInfo(r.message(field, wt, at, "ValueInfoProto"), at));
        break;
      case 12:
        outputs.push(readValueInfo(r.message(field, wt, at, "ValueInfoProto"), at));
        break;
      case 13:
        (valueInfo ??= []).push(readValueInfo(r.message(field, wt, at, "ValueInfoProto"), at));
        break;
      default:
        r.skip(field, wt, at);
    }
  }
  const graph: GraphProto = { name, nodes, initializers, inputs, outputs };
  if (valueInfo !== undefined) graph.valueInfo = valueInfo;
  return graph;
}

function readOpsetId(r: Reader): OperatorSetId {
  let domain = "";
  let version = 0;
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    if (field === 1) domain = r.stringField(field, wt, at);
    else if (field === 2) version = r.int64Field(field, wt, at);
    else r.skip(field, wt, at);
  }
  return { domain, version };
}

/**
 * Parses ONNX protobuf bytes back into a {@link ModelProto}; the inverse of {@link encodeModel}
 * (meant for tests and debugging). Accepts packed and unpacked repeated scalars and fields in any
 * order, skips fields outside the subset, and returns copies of `raw_data` (not views into `bytes`).
 * Absent fields take their protobuf defaults; `producerVersion`, `NodeProto.domain` and
 * `GraphProto.valueInfo` are set only when present in the bytes.
 *
 * @throws SaflError (`io`) on truncated or malformed input, naming the byte offset; (`unsupported`)
 *   for ONNX features outside the subset (typed data fields, external data, non-tensor types,
 *   unknown dims, int64 values beyond 2^53).
 */
export function decodeModel(bytes: Uint8Array): ModelProto {
  if (!(bytes instanceof Uint8Array)) {
    throw new SaflError(ErrorCode.InvalidArgument, "decodeModel: expected a Uint8Array");
  }
  const r: Reader = new Reader(bytes, 0, bytes.length, "ModelProto");
  let irVersion = 0;
  let producerName = "";
  let producerVersion: string | undefined;
  let graph: GraphProto | undefined;
  const opsetImports: OperatorSetId[] = [];
  while (!r.done) {
    const at = r.pos;
    const [field, wt] = r.tag();
    switch (field) {
      case 1:
        irVersion = r.int64Field(field, wt, at);
        break;
      case 2:
        producerName = r.stringField(field, wt, at);
        break;
      case 3:
        producerVersion = r.stringField(field, wt, at);
        break;
      case 7:
        graph = readGraph(r.message(field, wt, at, "GraphProto"));
        break;
      case 8:
        opsetImports.push(readOpsetId(r.message(field, wt, at, "OperatorSetIdProto")));
        break;
      default:
        r.skip(field, wt, at);
    }
  }
  if (graph === undefined) r.fail("model has no graph (field 7)", bytes.length);
  const model: ModelProto = { irVersion, producerName, graph, opsetImports };
  if (producerVersion !== undefined) model.producerVersion = producerVersion;
  return model;
}
