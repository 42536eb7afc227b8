/**
 * @module fl/aggregate
 * Server-side checks and aggregation of client replies, as pure functions over decoded messages.
 * Replies are validated first — round id, sample count, every tensor's name and shape against what
 * the server broadcast, every packed module's mask against the round's global mask, finite values —
 * and a reply that fails is dropped with a reason (a client failure is data, not an exception), so a
 * round completes with the remaining clients. Only then are the accepted replies averaged, weighted
 * by their sample counts (FedAvg's rule); SVD-form triplets are averaged entry by entry under the one
 * global mask every client used, and triplet scores likewise.
 */
import type { Failure } from "./failure.js";
import type { WireMessage, WirePackedModule, WireScores, WireTensor } from "./wire.js";

/** What the server expects every reply of a round to carry. */
export interface ReplyExpectation {
  readonly round: number;
  /** Dense tensors by name with their shapes. */
  readonly tensors: ReadonlyMap<string, readonly number[]>;
  /** SVD-form modules by name with the round's global mask. */
  readonly packed: ReadonlyMap<string, { readonly inFeatures: number; readonly outFeatures: number; readonly mask: Uint8Array }>;
  /** Modules whose triplet scores must be present, with the number of triplets. */
  readonly scores: ReadonlyMap<string, number>;
}

/** A refused reply carries the client's own failure, or code "rejected" with what validation found. */
export type ReplyVerdict = { readonly ok: true } | { readonly ok: false; readonly failure: Failure };

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function firstNonFinite(data: Float32Array | Float64Array): number {
  // x·0 is 0 for every finite x and NaN for ±∞ and NaN: one branch-free pass, then a search only
  // when something is wrong (validation reads every value of every reply on the server's path).
  // Decoded payloads are Float32Array; a loop of its own keeps that path monomorphic.
  if ((data instanceof Float32Array ? probe32(data) : probe64(data)) === 0) return -1;
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

function probe32(data: Float32Array): number {
  let probe = 0;
  for (let i = 0; i < data.length; i++) probe += data[i]! * 0;
  return probe;
}

function probe64(data: Float64Array): number {
  let probe = 0;
  for (let i = 0; i < data.length; i++) probe += data[i]! * 0;
  return probe;
}

/** Checks one reply against the round's expectation; the reason names the first problem found. */
export function validateReply(reply: WireMessage, exp: ReplyExpectation): ReplyVerdict {
  const bad = (reason: string): ReplyVerdict => ({ ok: false, failure: { code: "rejected", message: reason } });
  if (reply.kind !== "reply") return bad(`message kind is "${reply.kind}", expected "reply"`);
  if (reply.failure !== undefined) return { ok: false, failure: { code: reply.failure.code, message: `client reported a failure: ${reply.failure.message}` } };
  if (reply.round !== exp.round) return bad(`reply is for round ${reply.round}, the server is in round ${exp.round} (stale or early reply)`);
  const n = reply.sampleCount;
  if (n === undefined || !Number.isInteger(n) || n <= 0) return bad(`sample count is ${n}, expected a positive integer`);
  if (reply.tensors.length !== exp.tensors.size) return bad(`reply has ${reply.tensors.length} tensors, expected ${exp.tensors.size}`);
  for (const t of reply.tensors) {
    const shape = exp.tensors.get(t.name);
    if (!shape) return bad(`unexpected tensor "${t.name}"`);
    if (!sameShape(t.shape, shape)) return bad(`tensor "${t.name}" has shape [${t.shape.join(",")}], expected [${shape.join(",")}]`);
    const i = firstNonFinite(t.data);
    if (i >= 0) return bad(`tensor "${t.name}" has a non-finite value (${t.data[i]}) at index ${i}`);
  }
  if (reply.packed.length !== exp.packed.size) return bad(`reply has ${reply.packed.length} packed modules, expected ${exp.packed.size}`);
  for (const p of reply.packed) {
    const e = exp.packed.get(p.name);
    if (!e) return bad(`unexpected packed module "${p.name}"`);
    if (p.inFeatures !== e.inFeatures || p.outFeatures !== e.outFeatures) {
      return bad(`packed module "${p.name}" is ${p.outFeatures}x${p.inFeatures}, expected ${e.outFeatures}x${e.inFeatures}`);
    }
    if (p.mask.length !== e.mask.length || p.mask.some((b, i) => b !== e.mask[i])) return bad(`packed module "${p.name}" uses a different rank mask than the round's global mask`);
    for (const [field, data] of [["p", p.p], ["e", p.e], ["q", p.q]] as const) {
      const i = firstNonFinite(data);
      if (i >= 0) return bad(`packed module "${p.name}" ${field} has a non-finite value (${data[i]}) at index ${i}`);
    }
  }
  if (reply.scores.length !== exp.scores.size) return bad(`reply has scores for ${reply.scores.length} modules, expected ${exp.scores.size}`);
  for (const s of reply.scores) {
    const r = exp.scores.get(s.module);
    if (r === undefined) return bad(`unexpected scores for "${s.module}"`);
    if (s.scores.length !== r) return bad(`scores for "${s.module}" have ${s.scores.length} entries, expected ${r}`);
    const i = firstNonFinite(s.scores);
    if (i >= 0) return bad(`scores for "${s.module}" have a non-finite value (${s.scores[i]}) at index ${i}`);
  }
  return { ok: true };
}

/** Σ wᵢ·xᵢ / Σ wᵢ over equally long arrays, accumulated in float64. */
export function weightedMean(values: readonly ArrayLike<number>[], weights: readonly number[]): Float64Array {
  if (values.length === 0 || values.length !== weights.length) throw new Error(`weightedMean: ${values.length} values for ${weights.length} weights`);
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error(`weightedMean: total weight ${total} must be positive`);
  const n = values[0]!.length;
  const out = new Float64Array(n);
  values.forEach((v, k) => {
    if (v.length !== n) throw new Error(`weightedMean: value ${k} has ${v.length} entries, expected ${n}`);
    const w = weights[k]! / total;
    if (v instanceof Float32Array) axpy32(out, v, w);
    else for (let i = 0; i < n; i++) out[i] = out[i]! + w * v[i]!;
  });
  return out;
}

/** out += w·v for float32 v: a monomorphic loop (decoded payloads are always Float32Array). */
function axpy32(out: Float64Array, v: Float32Array, w: number): void {
  const n = out.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    out[i] += w * v[i]!;
    out[i + 1] += w * v[i + 1]!;
    out[i + 2] += w * v[i + 2]!;
    out[i + 3] += w * v[i + 3]!;
  }
  for (; i < n; i++) out[i] += w * v[i]!;
}

export interface Aggregate {
  readonly tensors: readonly WireTensor[];
  readonly packed: readonly WirePackedModule[];
  readonly scores: readonly WireScores[];
  /** Σ sample counts of the accepted replies. */
  readonly samples: number;
  /** Sample-weighted mean of each metric reported by every accepted reply. */
  readonly metrics: Readonly<Record<string, number>>;
}

/**
 * Sample-weighted average of validated replies (all with the same names, shapes and masks; call
 * `validateReply` first). Entries are averaged in float64 and returned as float32.
 */
export function aggregateReplies(replies: readonly WireMessage[]): Aggregate {
  if (replies.length === 0) throw new Error("aggregateReplies: no replies to aggregate");
  const weights = replies.map((r) => r.sampleCount!);
  const first = replies[0]!;
  // One name index per reply, built once: aggregation is on the server's per-round path.
  const indexed = replies.map((r) => ({
    tensors: new Map(r.tensors.map((t) => [t.name, t])),
    packed: new Map(r.packed.map((p) => [p.name, p])),
    scores: new Map(r.scores.map((s) => [s.module, s])),
  }));
  // new Float32Array(f64) converts natively; Float32Array.from(f64) would iterate.
  const mean32 = (vs: ArrayLike<number>[]) => new Float32Array(weightedMean(vs, weights));
  const tensors = first.tensors.map((t) => ({ name: t.name, shape: t.shape, data: mean32(indexed.map((r) => r.tensors.get(t.name)!.data)) }));
  const packed = first.packed.map((p) => {
    const all = indexed.map((r) => r.packed.get(p.name)!);
    return { ...p, mask: p.mask.slice(), p: mean32(all.map((a) => a.p)), e: mean32(all.map((a) => a.e)), q: mean32(all.map((a) => a.q)) };
  });
  const scores = first.scores.map((s) => ({ module: s.module, scores: weightedMean(indexed.map((r) => r.scores.get(s.module)!.scores), weights) }));
  const metrics: Record<string, number> = {};
  for (const key of Object.keys(first.metrics ?? {})) {
    if (!replies.every((r) => r.metrics && Number.isFinite(r.metrics[key]))) continue;
    metrics[key] = weightedMean(
      replies.map((r) => [r.metrics![key]!]),
      weights,
    )[0]!;
  }
  return { tensors, packed, scores, samples: weights.reduce((a, b) => a + b, 0), metrics };
}
