/**
 * @module io/safetensors
 * Reading and writing the safetensors checkpoint format as pure functions over bytes (no `node:`
 * imports; file helpers live in `./safetensors-file.ts`), plus conversions between the raw
 * little-endian tensor bytes and typed arrays, including round-to-nearest-even float16 and bfloat16.
 *
 * Layout: an 8-byte little-endian u64 `N`, then `N` bytes of UTF-8 JSON header, then the data
 * region. The header maps each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets
 * relative to the start of the data region) and may hold a `"__metadata__"` string->string map.
 * Big-endian hosts are not targeted, but every read and write is explicitly little-endian (a
 * DataView fallback is used when the host is big-endian), and no read assumes the tensor bytes are
 * aligned within their ArrayBuffer.
 */

import { ErrorCode, SaflError } from "../errors.js";

/** The element types this module reads and writes. */
export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** One tensor: its dtype, its shape and its raw little-endian bytes. */
export interface TensorEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** Raw little-endian bytes. After {@link parseSafetensors} this is a view into the file's buffer. */
  data: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in the order their bytes appear in the file. */
  tensors: Map<string, TensorEntry>;
  /** The `"__metadata__"` map (empty when the file has none). */
  metadata: Record<string, string>;
}

/** Tensors to serialize, as a Map or a plain object keyed by name. */
export type TensorCollection = ReadonlyMap<string, TensorEntry> | Readonly<Record<string, TensorEntry>>;

/** Bytes per element of each dtype. */
export const DTYPE_ITEMSIZE: Readonly<Record<SafetensorsDType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

/** The name of the reserved header entry holding string metadata. */
export const METADATA_KEY = "__metadata__";

/** Headers longer than this are rejected as corrupt rather than allocated (same limit as the reference). */
export const MAX_HEADER_BYTES = 100_000_000;

const SUPPORTED_DTYPES = Object.keys(DTYPE_ITEMSIZE).join(", ");

/** True when `value` is one of the dtype names this module supports. */
export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === "string" && Object.hasOwn(DTYPE_ITEMSIZE, value);
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Parsing

function ioError(where: string, message: string): SaflError {
  return new SaflError(ErrorCode.Io, `${where}: ${message}`);
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return String(value);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonNegativeInt(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Parses a safetensors file held in memory. Tensor `data` are views into `bytes` (no copy), so keep
 * `bytes` alive and unmodified while the tensors are in use.
 *
 * Rejects, each with one {@link SaflError} of code `Io` naming `source` (when given), the tensor and
 * the offending value: a file shorter than 8 bytes; a header length beyond the file or above
 * {@link MAX_HEADER_BYTES}; a header that is not UTF-8 JSON or not an object; entries with a missing
 * or mistyped `dtype`/`shape`/`data_offsets`; unsupported dtypes; negative or non-integer dims;
 * offsets that are not `[begin, end]` with `begin <= end` or that leave the data region; a byte
 * length that is not `product(shape) * itemsize`; overlapping tensors; non-string metadata values.
 * Gaps between tensors (and trailing bytes) are accepted.
 *
 * @param bytes The whole file.
 * @param source The file's path, used only in error messages.
 */
export function parseSafetensors(bytes: Uint8Array, source?: string): SafetensorsFile {
  const where = source === undefined ? "safetensors" : `safetensors file ${source}`;
  if (bytes.byteLength < 8) {
    throw ioError(where, `file is ${bytes.byteLength} bytes, shorter than the 8-byte header length prefix`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw ioError(where, `header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes (corrupt file?)`);
  }
  const n = Number(headerLen);
  if (8 + n > bytes.byteLength) {
    throw ioError(
      where,
      `header length ${n} runs past the end of the file (file is ${bytes.byteLength} bytes, at most ${bytes.byteLength - 8} available for the header)`,
    );
  }

  let headerText: string;
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch (cause) {
    throw new SaflError(ErrorCode.Io, `${where}: header (${n} bytes) is not valid UTF-8`, { cause });
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new SaflError(ErrorCode.Io, `${where}: header is not valid JSON (${reason})`, { cause });
  }
  if (!isPlainObject(header)) {
    throw ioError(where, `header must be a JSON object, got ${Array.isArray(header) ? "an array" : describe(header)}`);
  }

  const data = bytes.subarray(8 + n);
  const dataLen = data.byteLength;
  let metadata: Record<string, string> = {};
  const parsed: { name: string; begin: number; end: number; entry: TensorEntry }[] = [];

  for (const name of Object.keys(header)) {
    const raw = header[name];
    if (name === METADATA_KEY) {
      metadata = parseMetadata(raw, where);
      continue;
    }
    const at = `${where}: tensor ${JSON.stringify(name)}`;
    if (!isPlainObject(raw)) throw ioError(at, `header entry must be an object, got ${describe(raw)}`);
    const { dtype, shape, data_offsets: offsets } = raw;
    if (dtype === undefined) throw ioError(at, `header entry is missing "dtype"`);
    if (shape === undefined) throw ioError(at, `header entry is missing "shape"`);
    if (offsets === undefined) throw ioError(at, `header entry is missing "data_offsets"`);
    if (typeof dtype !== "string") throw ioError(at, `"dtype" must be a string, got ${describe(dtype)}`);
    if (!isSafetensorsDType(dtype)) {
      throw ioError(at, `unsupported dtype ${JSON.stringify(dtype)} (expected one of ${SUPPORTED_DTYPES})`);
    }
    if (!Array.isArray(shape)) throw ioError(at, `"shape" must be an array of integers, got ${describe(shape)}`);
    for (let i = 0; i < shape.length; i++) {
      if (!isNonNegativeInt(shape[i])) {
        throw ioError(at, `shape ${describe(shape)}: dimension ${i} is ${describe(shape[i])}, expected a non-negative integer`);
      }
    }
    if (!Array.isArray(offsets) || offsets.length !== 2) {
      throw ioError(at, `"data_offsets" must be [begin, end], got ${describe(offsets)}`);
    }
    const [begin, end] = offsets as unknown[];
    if (!isNonNegativeInt(begin) || !isNonNegativeInt(end)) {
      throw ioError(at, `data_offsets ${describe(offsets)} must be two non-negative integers`);
    }
    if (begin > end) throw ioError(at, `data_offsets [${begin}, ${end}] has begin > end`);
    if (end > dataLen) {
      throw ioError(at, `data_offsets [${begin}, ${end}] run past the end of the data region (${dataLen} bytes)`);
    }
    const dims = shape as number[];
    const itemsize = DTYPE_ITEMSIZE[dtype];
    const expected = dims.reduce((a, d) => a * d, 1) * itemsize;
    if (!Number.isSafeInteger(expected)) {
      throw ioError(at, `shape [${dims.join(", ")}] has too many elements (${expected} bytes)`);
    }
    if (end - begin !== expected) {
      throw ioError(
        at,
        `data_offsets [${begin}, ${end}] span ${end - begin} bytes, expected ${expected} (${dtype} shape [${dims.join(", ")}] at ${itemsize} bytes/element)`,
      );
    }
    parsed.push({ name, begin, end, entry: { dtype, shape: dims.slice(), data: data.subarray(begin, end) } });
  }

  parsed.sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let prev: (typeof parsed)[number] | undefined;
  for (const t of parsed) {
    if (t.begin === t.end) continue; // empty tensors occupy no bytes and cannot overlap anything
    if (prev !== undefined && t.begin < prev.end) {
      throw ioError(
        `${where}: tensor ${JSON.stringify(t.name)}`,
        `data_offsets [${t.begin}, ${t.end}] overlap tensor ${JSON.stringify(prev.name)} at [${prev.begin}, ${prev.end}]`,
      );
    }
    prev = t;
  }

  const tensors = new Map<string, TensorEntry>();
  for (const t of parsed) tensors.set(t.name, t.entry);
  return { tensors, metadata };
}

function parseMetadata(raw: unknown, where: string): Record<string, string> {
  if (!isPlainObject(raw)) {
    throw ioError(where, `"${METADATA_KEY}" must be an object of strings, got ${describe(raw)}`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== "string") {
      throw ioError(where, `"${METADATA_KEY}" key ${JSON.stringify(key)} has value ${describe(value)}, expected a string`);
    }
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true }); // safe for "__proto__"
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Serialization

function entriesOf(tensors: TensorCollection): [string, TensorEntry][] {
  if (tensors instanceof Map) return [...(tensors as ReadonlyMap<string, TensorEntry>).entries()];
  return Object.entries(tensors as Readonly<Record<string, TensorEntry>>);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Serializes tensors (sorted by name, packed back to back) and optional string metadata into the
 * safetensors format. The header is padded with spaces so the data region starts at an offset that
 * is a multiple of 8. The output is deterministic: the same input always gives the same bytes.
 *
 * @throws SaflError(InvalidArgument) for an unsupported dtype, a bad shape, a byte length that is
 *   not `product(shape) * itemsize`, a tensor named `"__metadata__"`, or a non-string metadata value.
 */
export function serializeSafetensors(tensors: TensorCollection, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const items = entriesOf(tensors).sort((a, b) => compareNames(a[0], b[0]));
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const meta: string[] = [];
    for (const key of Object.keys(metadata).sort(compareNames)) {
      const value: unknown = metadata[key];
      if (typeof value !== "string") {
        throw new SaflError(
          ErrorCode.InvalidArgument,
          `safetensors metadata key ${JSON.stringify(key)} has value ${describe(value)}, expected a string`,
        );
      }
      meta.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.join(",")}}`);
  }

  let offset = 0;
  for (const [name, t] of items) {
    const at = `safetensors: tensor ${JSON.stringify(name)}`;
    if (name === METADATA_KEY) {
      throw new SaflError(ErrorCode.InvalidArgument, `${at}: the name is reserved for metadata`);
    }
    if (!isSafetensorsDType(t.dtype)) {
      throw new SaflError(ErrorCode.InvalidArgument, `${at}: unsupported dtype ${describe(t.dtype)} (expected one of ${SUPPORTED_DTYPES})`);
    }
    for (let i = 0; i < t.shape.length; i++) {
      if (!isNonNegativeInt(t.shape[i])) {
        throw new SaflError(
          ErrorCode.InvalidArgument,
          `${at}: shape ${describe(t.shape)}: dimension ${i} is ${describe(t.shape[i])}, expected a non-negative integer`,
        );
      }
    }
    const expected = t.shape.reduce((a, d) => a * d, 1) * DTYPE_ITEMSIZE[t.dtype];
    if (!(t.data instanceof Uint8Array) || t.data.byteLength !== expected) {
      const got = t.data instanceof Uint8Array ? `${t.data.byteLength} bytes` : describe(t.data);
      throw new SaflError(
        ErrorCode.InvalidArgument,
        `${at}: data is ${got}, expected a Uint8Array of ${expected} bytes (${t.dtype} shape [${t.shape.join(", ")}])`,
      );
    }
    const end = offset + expected;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(",")}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }

  const headerBytes = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil((8 + headerBytes.byteLength) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(headerBytes, 8);
  out.fill(0x20, 8 + headerBytes.byteLength, 8 + padded);
  let pos = 8 + padded;
  for (const [, t] of items) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// float16 / bfloat16 scalars

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * Converts a number to IEEE 754 binary16 bits, rounding to nearest even. `x` is first rounded to
 * float32 (the function is meant for float32 data). Overflow gives +/-Infinity (0x7C00/0xFC00),
 * tiny values give subnormals or signed zero, NaN stays a (quiet) NaN with its sign.
 *
 * @example float32ToFloat16Bits(1) === 0x3c00; float32ToFloat16Bits(65504) === 0x7bff
 */
export function float32ToFloat16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant !== 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): h = significand24 * 2^(e - 14), rounded.
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal (also float32 subnormals)
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h; // h may round up to 0x400, the smallest normal: still the right encoding
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent is correct (up to Inf)
  return sign | h;
}

/** Converts IEEE 754 binary16 bits (the low 16 bits of `h`) to a number (exact). */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/**
 * Converts a number to bfloat16 bits, rounding to nearest even. `x` is first rounded to float32.
 * Overflow gives +/-Infinity; NaN stays a (quiet) NaN with its sign.
 *
 * @example float32ToBFloat16Bits(1) === 0x3f80
 */
export function float32ToBFloat16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return (b >>> 16) | 0x0040;
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** Converts bfloat16 bits (the low 16 bits of `h`) to a number (exact). */
export function bfloat16BitsToFloat32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

let f16Table: Float32Array | undefined;

/** Lookup table of all 65536 float16 values (built on first use, 256 KiB). */
export function float16Table(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = float16BitsToFloat32(h);
  }
  return f16Table;
}

// ---------------------------------------------------------------------------------------------
// Tensor conversions

function elementCount(entry: TensorEntry, name: string | undefined): number {
  const count = entry.shape.reduce((a, d) => a * d, 1);
  const itemsize = DTYPE_ITEMSIZE[entry.dtype];
  if (itemsize === undefined) {
    throw new SaflError(ErrorCode.DType, `${label(name)}: unsupported dtype ${describe(entry.dtype)}`);
  }
  if (entry.data.byteLength !== count * itemsize) {
    throw new SaflError(
      ErrorCode.Io,
      `${label(name)}: data is ${entry.data.byteLength} bytes, expected ${count * itemsize} (${entry.dtype} shape [${entry.shape.join(", ")}])`,
    );
  }
  return count;
}

function label(name: string | undefined): string {
  return name === undefined ? "safetensors tensor" : `safetensors tensor ${JSON.stringify(name)}`;
}

/** A fresh, aligned copy of the bytes (so typed-array views over it are legal). */
function alignedCopy(data: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy.buffer;
}

function dataView(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

/** Reads every element as a number (integers above 2^53 lose precision). */
function readNumbers<T extends Float32Array | Float64Array>(entry: TensorEntry, out: T): T {
  const n = out.length;
  const d = entry.data;
  const v = dataView(d);
  switch (entry.dtype) {
    case "F64":
      if (LITTLE_ENDIAN_HOST) out.set(new Float64Array(alignedCopy(d)));
      else for (let i = 0; i < n; i++) out[i] = v.getFloat64(i * 8, true);
      break;
    case "F32":
      if (LITTLE_ENDIAN_HOST) out.set(new Float32Array(alignedCopy(d)));
      else for (let i = 0; i < n; i++) out[i] = v.getFloat32(i * 4, true);
      break;
    case "F16": {
      const table = float16Table();
      for (let i = 0; i < n; i++) out[i] = table[d[2 * i] | (d[2 * i + 1] << 8)]!;
      break;
    }
    case "BF16": {
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = (d[2 * i]! << 16) | (d[2 * i + 1]! << 24);
      out.set(new Float32Array(bits.buffer));
      break;
    }
    case "I64":
      for (let i = 0; i < n; i++) out[i] = Number(v.getBigInt64(i * 8, true));
      break;
    case "I32":
      for (let i = 0; i < n; i++) out[i] = v.getInt32(i * 4, true);
      break;
    case "I16":
      for (let i = 0; i < n; i++) out[i] = v.getInt16(i * 2, true);
      break;
    case "I8":
      for (let i = 0; i < n; i++) out[i] = v.getInt8(i);
      break;
    case "U8":
      for (let i = 0; i < n; i++) out[i] = d[i]!;
      break;
    case "BOOL":
      for (let i = 0; i < n; i++) out[i] = d[i] !== 0 ? 1 : 0;
      break;
  }
  return out;
}

/**
 * Copies a tensor into a new Float32Array, converting from any supported dtype (F64 rounds, I64
 * above 2^24 loses precision, BOOL gives 0/1). Works whatever the alignment of `entry.data`.
 *
 * @param name The tensor's name, used only in error messages.
 * @throws SaflError(Io) when the byte length does not match the shape.
 */
export function toFloat32(entry: TensorEntry, name?: string): Float32Array {
  return readNumbers(entry, new Float32Array(elementCount(entry, name)));
}

/**
 * Copies a tensor into a new Float64Array, converting from any supported dtype (I64 above 2^53
 * loses precision, BOOL gives 0/1). Works whatever the alignment of `entry.data`.
 *
 * @param name The tensor's name, used only in error messages.
 * @throws SaflError(Io) when the byte length does not match the shape.
 */
export function toFloat64(entry: TensorEntry, name?: string): Float64Array {
  return readNumbers(entry, new Float64Array(elementCount(entry, name)));
}

/**
 * Copies an integer tensor (I64, or I32/I16/I8/U8/BOOL widened) into a new BigInt64Array.
 *
 * @param name The tensor's name, used only in error messages.
 * @throws SaflError(DType) for floating-point tensors; SaflError(Io) when the byte length does not
 *   match the shape.
 */
export function toBigInt64(entry: TensorEntry, name?: string): BigInt64Array {
  const n = elementCount(entry, name);
  const d = entry.data;
  const v = dataView(d);
  const out = new BigInt64Array(n);
  switch (entry.dtype) {
    case "I64":
      if (LITTLE_ENDIAN_HOST) out.set(new BigInt64Array(alignedCopy(d)));
      else for (let i = 0; i < n; i++) out[i] = v.getBigInt64(i * 8, true);
      return out;
    case "I32":
      for (let i = 0; i < n; i++) out[i] = BigInt(v.getInt32(i * 4, true));
      return out;
    case "I16":
      for (let i = 0; i < n; i++) out[i] = BigInt(v.getInt16(i * 2, true));
      return out;
    case "I8":
      for (let i = 0; i < n; i++) out[i] = BigInt(v.getInt8(i));
      return out;
    case "U8":
      for (let i = 0; i < n; i++) out[i] = BigInt(d[i]!);
      return out;
    case "BOOL":
      for (let i = 0; i < n; i++) out[i] = d[i] !== 0 ? 1n : 0n;
      return out;
    default:
      throw new SaflError(
        ErrorCode.DType,
        `${label(name)}: cannot read dtype ${entry.dtype} as int64 (expected I64, I32, I16, I8, U8 or BOOL)`,
      );
  }
}

function checkShape(length: number, shape: readonly number[], what: string): void {
  for (let i = 0; i < shape.length; i++) {
    if (!isNonNegativeInt(shape[i])) {
      throw new SaflError(
        ErrorCode.Shape,
        `${what}: shape ${describe(shape)}: dimension ${i} is ${describe(shape[i])}, expected a non-negative integer`,
      );
    }
  }
  const count = shape.reduce((a, d) => a * d, 1);
  if (count !== length) {
    throw new SaflError(ErrorCode.Shape, `${what}: ${length} elements do not fit shape [${shape.join(", ")}] (${count} elements)`);
  }
}

/** A fresh copy of a typed array's bytes. */
function bytesOf(a: Float32Array | Float64Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}

/**
 * Encodes float32 values as a tensor entry of the given dtype (default F32), copying. F16 and BF16
 * round to nearest even; F64 widens exactly.
 *
 * @throws SaflError(Shape) when `data.length` is not the product of `shape`.
 */
export function fromFloat32(
  data: Float32Array,
  shape: readonly number[],
  dtype: "F32" | "F16" | "BF16" | "F64" = "F32",
): TensorEntry {
  checkShape(data.length, shape, "fromFloat32");
  const n = data.length;
  let bytes: Uint8Array;
  switch (dtype) {
    case "F32":
      if (LITTLE_ENDIAN_HOST) bytes = bytesOf(data);
      else {
        bytes = new Uint8Array(n * 4);
        const v = dataView(bytes);
        for (let i = 0; i < n; i++) v.setFloat32(i * 4, data[i]!, true);
      }
      break;
    case "F64":
      if (LITTLE_ENDIAN_HOST) bytes = bytesOf(Float64Array.from(data));
      else {
        bytes = new Uint8Array(n * 8);
        const v = dataView(bytes);
        for (let i = 0; i < n; i++) v.setFloat64(i * 8, data[i]!, true);
      }
      break;
    case "F16":
    case "BF16": {
      const convert = dtype === "F16" ? float32ToFloat16Bits : float32ToBFloat16Bits;
      bytes = new Uint8Array(n * 2);
      for (let i = 0; i < n; i++) {
        const h = convert(data[i]!);
        bytes[2 * i] = h & 0xff;
        bytes[2 * i + 1] = h >>> 8;
      }
      break;
    }
    default:
      throw new SaflError(ErrorCode.DType, `fromFloat32: unsupported target dtype ${describe(dtype)} (expected F32, F16, BF16 or F64)`);
  }
  return { dtype, shape: shape.slice(), data: bytes };
}

/**
 * Encodes float64 values as an F64 tensor entry, copying.
 *
 * @throws SaflError(Shape) when `data.length` is not the product of `shape`.
 */
export function fromFloat64(data: Float64Array, shape: readonly number[]): TensorEntry {
  checkShape(data.length, shape, "fromFloat64");
  let bytes: Uint8Array;
  if (LITTLE_ENDIAN_HOST) bytes = bytesOf(data);
  else {
    bytes = new Uint8Array(data.length * 8);
    const v = dataView(bytes);
    for (let i = 0; i < data.length; i++) v.setFloat64(i * 8, data[i]!, true);
  }
  return { dtype: "F64", shape: shape.slice(), data: bytes };
}

/**
 * Encodes int64 values as an I64 tensor entry, copying.
 *
 * @throws SaflError(Shape) when `data.length` is not the product of `shape`.
 */
export function fromBigInt64(data: BigInt64Array, shape: readonly number[]): TensorEntry {
  checkShape(data.length, shape, "fromBigInt64");
  let bytes: Uint8Array;
  if (LITTLE_ENDIAN_HOST) bytes = bytesOf(data);
  else {
    bytes = new Uint8Array(data.length * 8);
    const v = dataView(bytes);
    for (let i = 0; i < data.length; i++) v.setBigInt64(i * 8, data[i]!, true);
  }
  return { dtype: "I64", shape: shape.slice(), data: bytes };
}
