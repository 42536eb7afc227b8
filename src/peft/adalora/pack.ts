/**
 * @module peft/adalora/pack
 * The rank-sparse form of an SVD adapter: only active triplets (P columns, λ entries, Q rows) plus the
 * mask. This is what crosses the network and what PEFT saves (it slices lora_A/E/B to the kept ranks),
 * so parameter counts for communication accounting come from here: Σ over active triplets of
 * (out + in + 1) per module.
 */
import { argError, shapeError } from "../../errors.js";
import type { ParamStore } from "../../nn/params.js";
import type { AdaptedModule } from "../adapter.js";
import { svdE, svdMask, svdP, svdQ } from "./layer.js";

export interface PackedModule {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** r₀, the full rank the mask indexes. */
  readonly initRank: number;
  /** 0/1 per triplet, length r₀. */
  readonly mask: Uint8Array;
  /** P restricted to active columns: [out, k], k = popcount(mask). */
  readonly p: Float32Array;
  /** λ of active triplets: [k]. */
  readonly e: Float32Array;
  /** Q restricted to active rows: [k, in]. */
  readonly q: Float32Array;
}

export interface PackedAdapter {
  readonly modules: readonly PackedModule[];
}

export const activeCount = (mask: Uint8Array): number => mask.reduce((a, b) => a + (b ? 1 : 0), 0);

/** Packs each module's active triplets; the mask is read from the store. */
export function pack(store: ParamStore, modules: readonly AdaptedModule[]): PackedAdapter {
  return { modules: modules.map((m) => packModule(store, m)) };
}

export function packModule(store: ParamStore, m: AdaptedModule): PackedModule {
  const r = m.rank;
  const mask = Uint8Array.from(store.get(svdMask(m.name)), (v) => (v !== 0 ? 1 : 0));
  const active = [...mask.keys()].filter((k) => mask[k]);
  const k = active.length;
  const fullP = store.get(svdP(m.name));
  const fullE = store.get(svdE(m.name));
  const fullQ = store.get(svdQ(m.name));
  const p = new Float32Array(m.outFeatures * k);
  const q = new Float32Array(k * m.inFeatures);
  const e = Float32Array.from(active, (i) => fullE[i]!);
  for (let j = 0; j < k; j++) {
    const i = active[j]!;
    for (let o = 0; o < m.outFeatures; o++) p[o * k + j] = fullP[o * r + i]!;
    q.set(fullQ.subarray(i * m.inFeatures, (i + 1) * m.inFeatures), j * m.inFeatures);
  }
  return { name: m.name, inFeatures: m.inFeatures, outFeatures: m.outFeatures, initRank: r, mask, p, e, q };
}

/**
 * Writes packed triplets back into the full-size tensors of the store and sets the mask; entries of
 * inactive triplets keep whatever the store held (the server's stored values, for revival).
 */
export function unpack(packed: PackedAdapter, store: ParamStore): void {
  for (const pm of packed.modules) unpackModule(pm, store);
}

export function unpackModule(pm: PackedModule, store: ParamStore): void {
  checkPacked(pm, store);
  const r = pm.initRank;
  const k = activeCount(pm.mask);
  const fullP = store.get(svdP(pm.name));
  const fullE = store.get(svdE(pm.name));
  const fullQ = store.get(svdQ(pm.name));
  const maskBuf = store.get(svdMask(pm.name));
  let j = 0;
  for (let i = 0; i < r; i++) {
    maskBuf[i] = pm.mask[i] ? 1 : 0;
    if (!pm.mask[i]) continue;
    fullE[i] = pm.e[j]!;
    for (let o = 0; o < pm.outFeatures; o++) fullP[o * r + i] = pm.p[o * k + j]!;
    fullQ.set(pm.q.subarray(j * pm.inFeatures, (j + 1) * pm.inFeatures), i * pm.inFeatures);
    j++;
  }
}

function checkPacked(pm: PackedModule, store: ParamStore): void {
  const where = `packed adapter module "${pm.name}"`;
  if (!store.has(svdP(pm.name))) throw argError(`${where} is not an adapted module of this model`);
  const [out, r] = store.shape(svdP(pm.name)) as [number, number];
  const inF = store.shape(svdQ(pm.name))[1]!;
  if (pm.initRank !== r || pm.mask.length !== r) throw shapeError(`${where}: mask has ${pm.mask.length} entries (initRank ${pm.initRank}), the model has rank ${r}`);
  if (pm.outFeatures !== out || pm.inFeatures !== inF) {
    throw shapeError(`${where}: is ${pm.outFeatures}x${pm.inFeatures}, the model's layer is ${out}x${inF}`);
  }
  const k = activeCount(pm.mask);
  const expect = { p: out * k, e: k, q: k * inF };
  for (const key of ["p", "e", "q"] as const) {
    if (pm[key].length !== expect[key]) throw shapeError(`${where}: ${key} has ${pm[key].length} values, expected ${expect[key]} for ${k} active triplets`);
  }
}

/** Parameters in a packed module: k·(out + in + 1). */
export function packedModuleParams(pm: PackedModule): number {
  return activeCount(pm.mask) * (pm.outFeatures + pm.inFeatures + 1);
}

/** Parameters in a packed adapter (what its triplets cost on the wire, before encoding). */
export function packedParamCount(packed: PackedAdapter): number {
  return packed.modules.reduce((n, m) => n + packedModuleParams(m), 0);
}
