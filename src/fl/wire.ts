/**
 * @module fl/wire
 * The versioned binary encoding of everything that crosses the network between a federated server
 * and its clients: the server's broadcast (round, config, the global adapter) and each client's reply
 * (its update, sample count, metrics, importance scores, or a failure). Communication cost is then
 * accounted from the byte counts of real encoded messages rather than from parameter counts times a
 * nominal width, so the header, names, masks and the payload dtype (float16/bfloat16 halve the bytes
 * of the floats) are all part of what is reported. `encodedBreakdown` says where the bytes go.
 *
 * Platform-free (DataView, Uint8Array, TextEncoder/TextDecoder only) so a browser client can use it.
 *
 * Layout, version 3 (version 1 carried the failure as text only; version 2 did not align floats).
 * Every multi-byte integer and float is little-endian. `str16` is a u16 byte length followed by that
 * many bytes of UTF-8, `str32` the same with a u32 length. "floats(n)" is `pad` then n values in the
 * payload dtype: float32 is 4 bytes each (bit-exact), float16 and bfloat16 are 2 bytes each, rounded
 * to nearest even by the converters of io/safetensors. `pad` is 0-3 zero bytes that bring the offset
 * from the start of the message to a multiple of the value size, so a reader holding the message in
 * an aligned buffer can use every float run in place (`decodeMessage(bytes, { views: true })`: the
 * server reads 100 replies without copying 67 MB); integers and strings stay unaligned.
 *
 * ```
 * header (12 bytes)
 *   0   4  magic "SAFL" (53 41 46 4c)
 *   4   1  version u8 (= WIRE_VERSION = 3)
 *   5   1  kind u8: 0 broadcast, 1 reply
 *   6   1  payload dtype u8: 0 float32, 1 float16, 2 bfloat16
 *   7   1  flags u8, which optional meta fields follow: 0x01 clientId, 0x02 sampleCount,
 *          0x04 config, 0x08 metrics, 0x10 failure; other bits are reserved and must be 0.
 *          sampleCount and failure are allowed on replies only.
 *   8   4  round u32
 * meta (only the fields whose flag is set, in this order)
 *   clientId     str16
 *   sampleCount  u32
 *   config       str32: JSON object whose values are numbers, strings or booleans
 *   metrics      u32 count, then per metric: name str16, value f64
 *   failure      code u8 (index in fl/failure FAILURE_CODES), then message str32
 * tensors
 *   u32 count, then per tensor: name str16, rank u8, rank × dim u32, floats(product of dims)
 * packed (SVD-form modules: only active triplets)
 *   u32 count, then per module: name str16, inFeatures u32, outFeatures u32, initRank u32,
 *   mask: ceil(initRank / 8) bytes, bit i of the mask is bit (i % 8) of byte (i / 8) (LSB first),
 *         bits at or past initRank must be 0;
 *   then with k = popcount(mask): p floats(out·k) [out,k], e floats(k), q floats(k·in) [k,in]
 * scores (always float32, whatever the payload dtype: they steer rank allocation, not the model)
 *   u32 count, then per entry: module str16, u32 n, pad to 4, n × f32
 * end: no trailing bytes
 * ```
 *
 * The meta fields carry their own flags rather than empty placeholders so that a message pays only
 * for what it says; an empty config `{}` or metrics `{}` is still distinguishable from an absent one.
 *
 * What the wire checks and what it does not: the decoder rejects anything the encoder could not have
 * produced (bad magic, another version, unknown codes or flag bits, truncation anywhere, trailing
 * bytes, mask padding bits, non-zero alignment padding, shapes whose element count overflows or exceeds the bytes left, invalid
 * UTF-8, malformed config JSON, duplicate names within a section) with one `SaflError` of code `Io`
 * naming the problem and its byte offset. It does NOT check values: NaN and ±Infinity travel as they
 * are (float16 keeps NaN a NaN; values beyond a dtype's range become ±Infinity), because deciding
 * whether a client's update is acceptable belongs to the aggregation layer, which can say why. The
 * encoder rejects inputs it cannot represent faithfully with `InvalidArgument` (or `Shape` when a data
 * length does not match its shape). Names and clientId must be well-formed UTF-16 (a lone surrogate
 * would silently become U+FFFD and no longer match); the free-text failure message may lose one.
 */

import type { PackedModule } from "../peft/adalora/pack.js";
import { FAILURE_CODES, type Failure } from "./failure.js";
import { argError, ErrorCode, SaflError, shapeError } from "../errors.js";
import { float16Table, float32ToBFloat16Bits, float32ToFloat16Bits } from "../io/safetensors.js";

/** How the float payload (tensors and packed triplets) is encoded. */
export type PayloadDType = "float32" | "float16" | "bfloat16";

/** The layout version this module writes and the only one it reads. */
export const WIRE_VERSION = 3;

/** Bytes of the fixed header (magic, version, kind, dtype, flags, round). */
export const WIRE_HEADER_BYTES = 12;

/** A named dense float tensor (e.g. "classifier.weight" or a LoRA factor). */
export interface WireTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** An SVD-form module's active triplets: the packed form that peft/adalora/pack.ts produces. */
export type WirePackedModule = PackedModule;

/** Triplet importance scores of one module; sent as float32 (decoded as Float32Array). */
export interface WireScores {
  readonly module: string;
  readonly scores: Float64Array | Float32Array;
}

export type MessageKind = "broadcast" | "reply";

export interface WireMessage {
  readonly kind: MessageKind;
  /** uint32. */
  readonly round: number;
  /** The sending client (replies), or the addressed one (a per-client broadcast). */
  readonly clientId?: string;
  /** Replies only: number of local training examples (uint32). */
  readonly sampleCount?: number;
  /** Small key/values (e.g. local epochs, lr, mu, stage), JSON-encoded. */
  readonly config?: Readonly<Record<string, number | string | boolean>>;
  /** E.g. train loss; float64 each. */
  readonly metrics?: Readonly<Record<string, number>>;
  readonly tensors: readonly WireTensor[];
  readonly packed: readonly WirePackedModule[];
  readonly scores: readonly WireScores[];
  /** Replies only: a client failure as data (a code the server acts on, and a message). */
  readonly failure?: Failure;
}

/** What `decodeMessage` returns: the message plus the payload dtype it was encoded with. */
export type DecodedMessage = WireMessage & { readonly dtype: PayloadDType };

export interface EncodeOptions {
  /** Payload dtype of tensors and packed triplets; default "float32". */
  readonly dtype?: PayloadDType;
}

/**
 * How an encoded message's bytes split. Each section includes its own descriptors (counts, names,
 * dims), so the parts sum to `total`; `packed` excludes the mask bytes, which are in `masks`.
 */
export interface ByteBreakdown {
  total: number;
  header: number;
  tensors: number;
  packed: number;
  masks: number;
  scores: number;
  meta: number;
}

// ---------------------------------------------------------------------------------------------
// Codes and constants

const MAGIC = Uint8Array.of(0x53, 0x41, 0x46, 0x4c); // "SAFL"
// The code of each kind/dtype is its index; appending keeps old codes stable.
const KINDS: readonly MessageKind[] = ["broadcast", "reply"];
const DTYPES: readonly PayloadDType[] = ["float32", "float16", "bfloat16"];
const ITEMSIZE: Readonly<Record<PayloadDType, number>> = { float32: 4, float16: 2, bfloat16: 2 };

const FLAG_CLIENT_ID = 0x01;
const FLAG_SAMPLE_COUNT = 0x02;
const FLAG_CONFIG = 0x04;
const FLAG_METRICS = 0x08;
const FLAG_FAILURE = 0x10;
const KNOWN_FLAGS = FLAG_CLIENT_ID | FLAG_SAMPLE_COUNT | FLAG_CONFIG | FLAG_METRICS | FLAG_FAILURE;
const REPLY_ONLY_FLAGS = FLAG_SAMPLE_COUNT | FLAG_FAILURE;

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const MAX_RANK = 0xff;

// Byte-copying float32 arrays is only equivalent to little-endian writes on a little-endian host.
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading U+FEFF is part of the string.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A lone surrogate (which TextEncoder would replace by U+FFFD). */
const LONE_SURROGATE = /\p{Surrogate}/u;

const isUint32 = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= U32_MAX;

function popcount(mask: Uint8Array): number {
  let k = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) k++;
  return k;
}

// ---------------------------------------------------------------------------------------------
// Encoding

type Section = Exclude<keyof ByteBreakdown, "total">;

/**
 * Writes the layout, or only measures it when constructed without a buffer. One code path for both
 * keeps the size computation from ever drifting from what is written; the measuring pass runs first
 * and doubles as validation, so nothing is allocated for a message that cannot be encoded.
 */
class Writer {
  offset = 0;
  section: Section = "header";
  readonly sizes: Record<Section, number> = { header: 0, meta: 0, tensors: 0, packed: 0, masks: 0, scores: 0 };
  private readonly out: Uint8Array | undefined;
  private readonly view: DataView | undefined;

  constructor(out?: Uint8Array) {
    this.out = out;
    this.view = out && new DataView(out.buffer, out.byteOffset, out.byteLength);
  }

  private claim(n: number): number {
    const at = this.offset;
    this.offset += n;
    this.sizes[this.section] += n;
    return at;
  }

  u8(v: number): void {
    const at = this.claim(1);
    this.view?.setUint8(at, v);
  }

  u16(v: number): void {
    const at = this.claim(2);
    this.view?.setUint16(at, v, true);
  }

  u32(v: number): void {
    const at = this.claim(4);
    this.view?.setUint32(at, v, true);
  }

  f64(v: number): void {
    const at = this.claim(8);
    this.view?.setFloat64(at, v, true);
  }

  raw(b: Uint8Array): void {
    const at = this.claim(b.length);
    this.out?.set(b, at);
  }

  /** A string with a u16 (`wide` false) or u32 length; identifiers must be well-formed UTF-16. */
  str(s: unknown, what: string, opts: { wide?: boolean; identifier?: boolean } = {}): void {
    if (typeof s !== "string") throw argError(`wire: ${what} must be a string, got ${typeof s}`);
    if (opts.identifier !== false && LONE_SURROGATE.test(s)) {
      throw argError(`wire: ${what} ${JSON.stringify(s)} contains a lone UTF-16 surrogate, which UTF-8 cannot carry`);
    }
    const b = utf8Encoder.encode(s);
    const max = opts.wide ? U32_MAX : U16_MAX;
    if (b.length > max) throw argError(`wire: ${what} is ${b.length} bytes of UTF-8, at most ${max} fit`);
    if (opts.wide) this.u32(b.length);
    else this.u16(b.length);
    this.raw(b);
  }

  /** Zero bytes up to the next multiple of `size` from the start of the message (a fresh buffer is zero). */
  align(size: number): void {
    this.claim(padding(this.offset, size));
  }

  /** Float32 data in the payload dtype, aligned to its value size. */
  floats(data: Float32Array, dtype: PayloadDType): void {
    this.align(ITEMSIZE[dtype]);
    const at = this.claim(data.length * ITEMSIZE[dtype]);
    const view = this.view;
    if (!view) return;
    if (dtype === "float32") {
      this.float32At(at, data);
      return;
    }
    const convert = dtype === "float16" ? float32ToFloat16Bits : float32ToBFloat16Bits;
    for (let i = 0; i < data.length; i++) view.setUint16(at + 2 * i, convert(data[i]!), true);
  }

  /** Float32 values regardless of the payload dtype (scores). */
  float32s(data: Float32Array | Float64Array): void {
    this.align(4);
    const at = this.claim(data.length * 4);
    if (this.view) this.float32At(at, data);
  }

  private float32At(at: number, data: Float32Array | Float64Array): void {
    const out = this.out!;
    const view = this.view!;
    if (LITTLE_ENDIAN_HOST && data instanceof Float32Array) {
      // A byte copy keeps every bit, including NaN payloads, and is much faster than per-element writes.
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
      return;
    }
    for (let i = 0; i < data.length; i++) view.setFloat32(at + 4 * i, data[i]!, true);
  }
}

/** Bytes from `offset` to the next multiple of `size` (a power of two). */
function padding(offset: number, size: number): number {
  return (size - (offset & (size - 1))) & (size - 1);
}

function checkCount(n: number, what: string): number {
  if (n > U32_MAX) throw argError(`wire: ${n} ${what} do not fit a u32 count`);
  return n;
}

/** Rejects a second entry of the same name in one section; aggregation keys by name. */
function checkUnique(seen: Set<string>, name: string, what: string): void {
  if (seen.has(name)) throw argError(`wire: duplicate ${what} ${JSON.stringify(name)}`);
  seen.add(name);
}

function configJson(config: unknown): string {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw argError(`wire: config must be an object of numbers, strings and booleans`);
  }
  const entries = Object.entries(config);
  for (const [key, value] of entries) {
    const ok = typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value));
    if (!ok) {
      // JSON would turn NaN/Infinity into null, and anything else into a different type.
      throw argError(`wire: config ${JSON.stringify(key)} is ${String(value)} (${typeof value}); values must be finite numbers, strings or booleans`);
    }
  }
  // Re-collected so only own enumerable entries are sent, whatever toJSON or getters the object has.
  return JSON.stringify(Object.fromEntries(entries));
}

function writeMessage(w: Writer, msg: WireMessage, dtype: PayloadDType): void {
  const kindCode = KINDS.indexOf(msg.kind);
  if (kindCode < 0) throw argError(`wire: unknown message kind ${JSON.stringify(msg.kind)}; expected one of ${KINDS.join(", ")}`);
  const dtypeCode = DTYPES.indexOf(dtype);
  if (dtypeCode < 0) throw argError(`wire: unknown payload dtype ${JSON.stringify(dtype)}; expected one of ${DTYPES.join(", ")}`);
  if (!isUint32(msg.round)) throw argError(`wire: round must be an integer in [0, ${U32_MAX}], got ${msg.round}`);

  let flags = 0;
  if (msg.clientId !== undefined) flags |= FLAG_CLIENT_ID;
  if (msg.sampleCount !== undefined) flags |= FLAG_SAMPLE_COUNT;
  if (msg.config !== undefined) flags |= FLAG_CONFIG;
  if (msg.metrics !== undefined) flags |= FLAG_METRICS;
  if (msg.failure !== undefined) flags |= FLAG_FAILURE;
  if (msg.kind !== "reply" && (flags & REPLY_ONLY_FLAGS) !== 0) {
    throw argError(`wire: ${msg.sampleCount !== undefined ? "sampleCount" : "failure"} is for replies only, this message is a ${msg.kind}`);
  }

  w.section = "header";
  w.raw(MAGIC);
  w.u8(WIRE_VERSION);
  w.u8(kindCode);
  w.u8(dtypeCode);
  w.u8(flags);
  w.u32(msg.round);

  w.section = "meta";
  if (msg.clientId !== undefined) w.str(msg.clientId, "clientId");
  if (msg.sampleCount !== undefined) {
    if (!isUint32(msg.sampleCount)) throw argError(`wire: sampleCount must be an integer in [0, ${U32_MAX}], got ${msg.sampleCount}`);
    w.u32(msg.sampleCount);
  }
  if (msg.config !== undefined) w.str(configJson(msg.config), "config JSON", { wide: true, identifier: false });
  if (msg.metrics !== undefined) {
    const entries = Object.entries(msg.metrics);
    w.u32(checkCount(entries.length, "metrics"));
    for (const [name, value] of entries) {
      if (typeof value !== "number") throw argError(`wire: metric ${JSON.stringify(name)} must be a number, got ${typeof value}`);
      w.str(name, "metric name");
      w.f64(value);
    }
  }
  if (msg.failure !== undefined) {
    const code = FAILURE_CODES.indexOf(msg.failure.code);
    if (code < 0) throw argError(`wire: unknown failure code ${JSON.stringify(msg.failure.code)}; expected one of ${FAILURE_CODES.join(", ")}`);
    w.u8(code);
    w.str(msg.failure.message, "failure", { wide: true, identifier: false });
  }

  w.section = "tensors";
  w.u32(checkCount(msg.tensors.length, "tensors"));
  const tensorNames = new Set<string>();
  for (const t of msg.tensors) {
    w.str(t.name, "tensor name");
    checkUnique(tensorNames, t.name, "tensor");
    const where = `tensor ${JSON.stringify(t.name)}`;
    if (!(t.data instanceof Float32Array)) throw argError(`wire: ${where} data must be a Float32Array`);
    if (t.shape.length > MAX_RANK) throw argError(`wire: ${where} has rank ${t.shape.length}, at most ${MAX_RANK} is encodable`);
    let size = 1;
    for (const d of t.shape) {
      if (!isUint32(d)) throw argError(`wire: ${where} shape [${t.shape.join(",")}] has dimension ${d}, expected an integer in [0, ${U32_MAX}]`);
      size *= d;
    }
    if (size !== t.data.length) throw shapeError(`wire: ${where} shape [${t.shape.join(",")}] holds ${size} values but data has ${t.data.length}`);
    w.u8(t.shape.length);
    for (const d of t.shape) w.u32(d);
    w.floats(t.data, dtype);
  }

  w.section = "packed";
  w.u32(checkCount(msg.packed.length, "packed modules"));
  const packedNames = new Set<string>();
  for (const pm of msg.packed) {
    w.str(pm.name, "packed module name");
    checkUnique(packedNames, pm.name, "packed module");
    const where = `packed module ${JSON.stringify(pm.name)}`;
    for (const key of ["inFeatures", "outFeatures", "initRank"] as const) {
      if (!isUint32(pm[key])) throw argError(`wire: ${where} ${key} must be an integer in [0, ${U32_MAX}], got ${pm[key]}`);
    }
    const r = pm.initRank;
    if (!(pm.mask instanceof Uint8Array)) throw argError(`wire: ${where} mask must be a Uint8Array`);
    if (pm.mask.length !== r) throw shapeError(`wire: ${where} mask has ${pm.mask.length} entries, expected initRank ${r}`);
    const bits = new Uint8Array(Math.ceil(r / 8));
    for (let i = 0; i < r; i++) {
      const m = pm.mask[i]!;
      if (m > 1) throw argError(`wire: ${where} mask[${i}] is ${m}, expected 0 or 1`);
      if (m) bits[i >>> 3]! |= 1 << (i & 7);
    }
    const k = popcount(pm.mask);
    const expect = { p: pm.outFeatures * k, e: k, q: k * pm.inFeatures };
    for (const key of ["p", "e", "q"] as const) {
      if (!(pm[key] instanceof Float32Array)) throw argError(`wire: ${where} ${key} must be a Float32Array`);
      if (pm[key].length !== expect[key]) {
        throw shapeError(`wire: ${where} ${key} has ${pm[key].length} values, expected ${expect[key]} for ${k} active triplets (${pm.outFeatures}x${pm.inFeatures})`);
      }
    }
    w.u32(pm.inFeatures);
    w.u32(pm.outFeatures);
    w.u32(r);
    w.section = "masks";
    w.raw(bits);
    w.section = "packed";
    w.floats(pm.p, dtype);
    w.floats(pm.e, dtype);
    w.floats(pm.q, dtype);
  }

  w.section = "scores";
  w.u32(checkCount(msg.scores.length, "score entries"));
  const scoreNames = new Set<string>();
  for (const s of msg.scores) {
    w.str(s.module, "scores module name");
    checkUnique(scoreNames, s.module, "scores module");
    if (!(s.scores instanceof Float32Array || s.scores instanceof Float64Array)) {
      throw argError(`wire: scores of ${JSON.stringify(s.module)} must be a Float32Array or Float64Array`);
    }
    w.u32(checkCount(s.scores.length, "scores"));
    w.float32s(s.scores);
  }
}

function resolveDType(opts: EncodeOptions | undefined): PayloadDType {
  return opts?.dtype ?? "float32";
}

/**
 * Encodes a message. Throws `SaflError` (InvalidArgument, or Shape for a data length that does not
 * match its shape) for anything the layout cannot carry faithfully; see the module comment.
 *
 * @example
 * const bytes = encodeMessage({ kind: "broadcast", round: 3, tensors: [], packed: [], scores: [] }, { dtype: "float16" });
 */
export function encodeMessage(msg: WireMessage, opts?: EncodeOptions): Uint8Array {
  const dtype = resolveDType(opts);
  const measure = new Writer();
  writeMessage(measure, msg, dtype);
  const out = new Uint8Array(measure.offset);
  const w = new Writer(out);
  writeMessage(w, msg, dtype);
  if (w.offset !== out.length) throw new Error(`wire: wrote ${w.offset} bytes, measured ${out.length}`);
  return out;
}

/** How the bytes of `encodeMessage(msg, opts)` split by section (validates like encodeMessage). */
export function encodedBreakdown(msg: WireMessage, opts?: EncodeOptions): ByteBreakdown {
  const measure = new Writer();
  writeMessage(measure, msg, resolveDType(opts));
  return { total: measure.offset, ...measure.sizes };
}

/**
 * Float parameters a message carries: Σ tensor elements + Σ over packed modules of k·(out + in + 1).
 * Masks and scores are bookkeeping, not model parameters, so they are not counted (their bytes show
 * up in `encodedBreakdown`).
 */
export function messageParamCount(msg: WireMessage): number {
  let n = 0;
  for (const t of msg.tensors) n += t.data.length;
  for (const pm of msg.packed) n += popcount(pm.mask) * (pm.outFeatures + pm.inFeatures + 1);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * What a reader call is reading, for its error message: a string, or a function that builds it, so
 * the per-tensor descriptions (name, shape, dtype) are composed only when something is wrong — built
 * eagerly they were most of the time of decoding a reply of ~70 tensors.
 */
type What = string | (() => string);
const describe = (what: What): string => (typeof what === "string" ? what : what());

function malformed(offset: number, problem: string): SaflError {
  return new SaflError(ErrorCode.Io, `wire: ${problem} at byte offset ${offset}`);
}

class Reader {
  offset = 0;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  /** Float32 runs are returned as views of `bytes` (which is then 4-byte aligned) instead of copies. */
  private readonly views: boolean;

  constructor(bytes: Uint8Array, views: boolean) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.views = views && LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** Claims `n` bytes for `what` and returns their offset; `n` may be astronomically large. */
  take(n: number, what: What): number {
    if (n > this.remaining) {
      throw malformed(this.offset, `truncated message: ${describe(what)} needs ${n} bytes but only ${this.remaining} are available`);
    }
    const at = this.offset;
    this.offset += n;
    return at;
  }

  u8(what: What): number {
    return this.view.getUint8(this.take(1, what));
  }

  u16(what: What): number {
    return this.view.getUint16(this.take(2, what), true);
  }

  u32(what: What): number {
    return this.view.getUint32(this.take(4, what), true);
  }

  f64(what: What): number {
    return this.view.getFloat64(this.take(8, what), true);
  }

  slice(n: number, what: What): Uint8Array {
    const at = this.take(n, what);
    return this.bytes.subarray(at, at + n);
  }

  str(what: What, wide = false): string {
    const n = wide ? this.u32(`${describe(what)} length`) : this.u16(`${describe(what)} length`);
    const at = this.offset;
    const b = this.slice(n, what);
    // Names are short and almost always ASCII; TextDecoder's per-call cost dominated decoding a
    // reply's ~70 tensor names, so those take a plain loop.
    if (n <= 64) {
      let high = 0;
      for (let i = 0; i < n; i++) high |= b[i]!;
      if (high < 0x80) return String.fromCharCode.apply(null, b as unknown as number[]);
    }
    try {
      return utf8Decoder.decode(b);
    } catch {
      throw malformed(at, `${describe(what)} is not valid UTF-8`);
    }
  }

  /** Skips the zero padding before a float run of `size`-byte values; the encoder writes only zeros. */
  align(size: number, what: What): void {
    const n = padding(this.offset, size);
    if (n === 0) return;
    const at = this.take(n, () => `alignment padding before ${describe(what)}`);
    for (let i = at; i < at + n; i++) {
      if (this.bytes[i] !== 0) throw malformed(i, `alignment padding before ${describe(what)} is not zero (0x${this.bytes[i]!.toString(16)})`);
    }
  }

  /** `count` values in the payload dtype, as a fresh Float32Array (a view of the input only for float32 with `views`). */
  floats(count: number, dtype: PayloadDType, what: What): Float32Array {
    this.align(ITEMSIZE[dtype], what);
    const at = this.take(count * ITEMSIZE[dtype], what);
    if (dtype === "float32") return this.float32At(at, count);
    // Whole-array conversions: a table lookup per float16, a shift per bfloat16 (the per-element
    // scalar conversions made decoding 100 float16 replies take ~0.9 s instead of ~40 ms).
    // The run is 2-aligned within the message; read it in place when the message is too, else copy it.
    const base = this.bytes.byteOffset + at;
    const bits = !LITTLE_ENDIAN_HOST
      ? Uint16Array.from({ length: count }, (_, i) => this.view.getUint16(at + 2 * i, true))
      : base % 2 === 0
        ? new Uint16Array(this.bytes.buffer, base, count)
        : new Uint16Array(this.bytes.slice(at, at + 2 * count).buffer);
    if (dtype === "float16") {
      const table = float16Table();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[bits[i]!]!;
      return out;
    }
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = bits[i]! << 16;
    return new Float32Array(out.buffer);
  }

  float32s(count: number, what: What): Float32Array {
    this.align(4, what);
    return this.float32At(this.take(count * 4, what), count);
  }

  private float32At(at: number, count: number): Float32Array {
    // The layout aligns every float run to 4 bytes from the message start, and `views` is set only
    // when the message itself starts on a 4-byte boundary, so this view is always legal.
    if (this.views) return new Float32Array(this.bytes.buffer, this.bytes.byteOffset + at, count);
    // slice() copies into a fresh, aligned buffer, so the view below is always legal.
    if (LITTLE_ENDIAN_HOST) return new Float32Array(this.bytes.slice(at, at + 4 * count).buffer);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.view.getFloat32(at + 4 * i, true);
    return out;
  }
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

function rejectDuplicate(seen: Set<string>, name: string, what: string, at: number): void {
  if (seen.has(name)) throw malformed(at, `duplicate ${what} ${JSON.stringify(name)}`);
  seen.add(name);
}

function parseConfig(text: string, at: number): Record<string, number | string | boolean> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw malformed(at, `config is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw malformed(at, `config JSON is not an object`);
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== "string" && typeof value !== "boolean" && typeof value !== "number") {
      throw malformed(at, `config ${JSON.stringify(key)} is ${value === null ? "null" : typeof value}, expected a number, string or boolean`);
    }
  }
  return parsed as Record<string, number | string | boolean>;
}

export interface DecodeOptions {
  /**
   * Return float32 runs (tensors, packed triplets, scores of a float32 message) as read-only-by-
   * convention views of `bytes` instead of copies: the server's aggregation path, which only reads
   * replies, decodes them without copying. The caller must not mutate the arrays, and they keep
   * `bytes` alive. A message that does not start on a 4-byte boundary is copied once, whole.
   */
  readonly views?: boolean;
}

/**
 * Decodes a message; every array in the result is a fresh copy, never a view of `bytes` (unless
 * `opts.views`). Throws one `SaflError` of code `Io`, naming the problem and its byte offset, for any
 * malformed input. Values are not checked (NaN/Infinity pass through).
 */
export function decodeMessage(bytes: Uint8Array, opts: DecodeOptions = {}): DecodedMessage {
  if (!(bytes instanceof Uint8Array)) throw argError(`wire: decodeMessage expects a Uint8Array`);
  const views = opts.views === true;
  // A Node Buffer's slice() is a view, not a copy, so a float section read from one (a SQLite BLOB, a
  // socket chunk) would land on the whole pooled ArrayBuffer. Read through a plain Uint8Array view.
  let plain = Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (views && plain.byteOffset % 4 !== 0) plain = plain.slice();
  const r = new Reader(plain, views);

  const magic = r.slice(4, "magic");
  if (magic.some((b, i) => b !== MAGIC[i])) throw malformed(0, `bad magic: expected "SAFL" (${hex(MAGIC)}), got ${hex(magic)}`);
  const version = r.u8("version");
  if (version !== WIRE_VERSION) throw malformed(4, `unsupported wire version ${version}; this decoder supports version ${WIRE_VERSION} only`);
  const kindCode = r.u8("kind");
  const kind = KINDS[kindCode];
  if (kind === undefined) throw malformed(5, `unknown message kind code ${kindCode} (known: ${KINDS.map((k, i) => `${i} ${k}`).join(", ")})`);
  const dtypeCode = r.u8("payload dtype");
  const dtype = DTYPES[dtypeCode];
  if (dtype === undefined) throw malformed(6, `unknown payload dtype code ${dtypeCode} (known: ${DTYPES.map((d, i) => `${i} ${d}`).join(", ")})`);
  const flags = r.u8("flags");
  if ((flags & ~KNOWN_FLAGS) !== 0) throw malformed(7, `unknown flag bits 0x${(flags & ~KNOWN_FLAGS).toString(16)} in flags 0x${flags.toString(16)}`);
  if (kind !== "reply" && (flags & REPLY_ONLY_FLAGS) !== 0) {
    throw malformed(7, `flags 0x${flags.toString(16)} mark sampleCount or failure, which only replies carry, on a ${kind}`);
  }
  const round = r.u32("round");

  let clientId: string | undefined;
  let sampleCount: number | undefined;
  let config: Record<string, number | string | boolean> | undefined;
  let metrics: Record<string, number> | undefined;
  let failure: Failure | undefined;
  if (flags & FLAG_CLIENT_ID) clientId = r.str("clientId");
  if (flags & FLAG_SAMPLE_COUNT) sampleCount = r.u32("sampleCount");
  if (flags & FLAG_CONFIG) {
    const at = r.offset;
    config = parseConfig(r.str("config JSON", true), at);
  }
  if (flags & FLAG_METRICS) {
    const n = r.u32("metrics count");
    const entries: [string, number][] = [];
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const at = r.offset;
      const name = r.str(`metric ${i} name`);
      rejectDuplicate(seen, name, "metric", at);
      entries.push([name, r.f64(`metric ${JSON.stringify(name)} value`)]);
    }
    // fromEntries defines own properties, so a metric named "__proto__" stays data.
    metrics = Object.fromEntries(entries);
  }
  if (flags & FLAG_FAILURE) {
    const at = r.offset;
    const codeIndex = r.u8("failure code");
    const code = FAILURE_CODES[codeIndex];
    if (code === undefined) throw malformed(at, `unknown failure code ${codeIndex} (known: 0-${FAILURE_CODES.length - 1})`);
    failure = { code, message: r.str("failure", true) };
  }

  const tensors: WireTensor[] = [];
  const nTensors = r.u32("tensor count");
  const tensorNames = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const at = r.offset;
    const name = r.str(() => `tensor ${i} name`);
    rejectDuplicate(tensorNames, name, "tensor", at);
    const where = () => `tensor ${JSON.stringify(name)}`;
    const rank = r.u8(() => `${where()} rank`);
    const dimsAt = r.offset;
    const shape: number[] = [];
    for (let d = 0; d < rank; d++) shape.push(r.u32(() => `${where()} dim ${d}`));
    let size = 1;
    for (const d of shape) size *= d;
    if (!Number.isSafeInteger(size)) {
      throw malformed(dimsAt, `${where()} shape [${shape.join(",")}] has an element count that overflows (beyond 2^53)`);
    }
    tensors.push({ name, shape, data: r.floats(size, dtype, () => `${where()} data (shape [${shape.join(",")}], ${dtype})`) });
  }

  const packed: WirePackedModule[] = [];
  const nPacked = r.u32("packed module count");
  const packedNames = new Set<string>();
  for (let i = 0; i < nPacked; i++) {
    const at = r.offset;
    const name = r.str(() => `packed module ${i} name`);
    rejectDuplicate(packedNames, name, "packed module", at);
    const where = `packed module ${JSON.stringify(name)}`;
    const inFeatures = r.u32(() => `${where} inFeatures`);
    const outFeatures = r.u32(() => `${where} outFeatures`);
    const initRank = r.u32(() => `${where} initRank`);
    const maskAt = r.offset;
    const bits = r.slice(Math.ceil(initRank / 8), () => `${where} mask (initRank ${initRank})`);
    const spare = initRank % 8;
    if (spare !== 0 && bits[bits.length - 1]! >> spare !== 0) {
      throw malformed(maskAt + bits.length - 1, `${where} mask has bits set past initRank ${initRank}`);
    }
    const mask = new Uint8Array(initRank);
    for (let j = 0; j < initRank; j++) mask[j] = (bits[j >>> 3]! >> (j & 7)) & 1;
    const k = popcount(mask);
    const p = r.floats(outFeatures * k, dtype, () => `${where} p [${outFeatures},${k}]`);
    const e = r.floats(k, dtype, () => `${where} e [${k}]`);
    const q = r.floats(k * inFeatures, dtype, () => `${where} q [${k},${inFeatures}]`);
    packed.push({ name, inFeatures, outFeatures, initRank, mask, p, e, q });
  }

  const scores: WireScores[] = [];
  const nScores = r.u32("score entry count");
  const scoreNames = new Set<string>();
  for (let i = 0; i < nScores; i++) {
    const at = r.offset;
    const module = r.str(() => `scores ${i} module name`);
    rejectDuplicate(scoreNames, module, "scores module", at);
    const n = r.u32(() => `scores of ${JSON.stringify(module)} count`);
    scores.push({ module, scores: r.float32s(n, () => `scores of ${JSON.stringify(module)} (${n} float32)`) });
  }

  if (r.remaining !== 0) throw malformed(r.offset, `${r.remaining} trailing byte(s) after the end of the message`);

  // Optional fields appear only when present, so a decoded message deep-equals what was encoded.
  return {
    kind,
    dtype,
    round,
    ...(clientId !== undefined && { clientId }),
    ...(sampleCount !== undefined && { sampleCount }),
    ...(config !== undefined && { config }),
    ...(metrics !== undefined && { metrics }),
    tensors,
    packed,
    scores,
    ...(failure !== undefined && { failure }),
  };
}
