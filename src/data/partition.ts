/**
 * @module data/partition
 * Seeded federated partitioners: split a dataset's example indices among simulated clients, either
 * IID or with one of the usual kinds of statistical heterogeneity (Dirichlet label skew, McMahan-style
 * label shards, Dirichlet quantity skew), plus a per-client summary and a text table of it for logs.
 * Partitions work on labels only, so they apply to any split; `subset(ds, part)` turns one into a
 * client dataset. Everything is a pure function of the seed, so a run's client data can be rebuilt
 * from its config.
 */

import { argError } from "../errors.js";
import { Rng } from "../util/rng.js";

/** How to split examples among clients. */
export type PartitionSpec =
  | { kind: "iid" }
  /** Label skew: each class is split among clients with proportions ~ Dirichlet(alpha); small alpha = few classes per client. */
  | { kind: "dirichlet"; alpha: number }
  /** Pathological label skew: label-sorted shards, `classesPerClient` shards per client (McMahan et al. 2017). */
  | { kind: "shards"; classesPerClient: number }
  /** Quantity skew: client sizes ~ Dirichlet(alpha) proportions of the whole set, labels IID. */
  | { kind: "quantity"; alpha: number };

/** Per-client sizes and class histograms of a partition. */
export interface PartitionSummary {
  readonly sizes: number[];
  /** clients x classes counts. */
  readonly histograms: number[][];
  readonly minSize: number;
  readonly maxSize: number;
  /** Mean over clients of the number of classes with at least one example. */
  readonly meanClassesPerClient: number;
}

/**
 * Dirichlet draws can leave a client empty (very likely for small alpha and many clients). Like the
 * common reference implementations we re-draw, but a bounded number of times so a hopeless
 * configuration cannot loop forever; after that the draw with the fewest empty clients is repaired.
 */
const MAX_ATTEMPTS = 100;

/**
 * XORed into the seed so the partition stream differs from other streams (e.g. weight init) that a
 * caller seeds with the same integer.
 */
const SEED_SALT = 0x5a17_c0de;

const ACCEPTED_FORMS = `"iid", "dirichlet:<alpha>", "shards:<classes per client>" or "quantity:<alpha>" (e.g. "dirichlet:0.5", "shards:2")`;

/**
 * Parses a partition spec as written on a command line or in a config.
 *
 * @throws SaflError(InvalidArgument) naming `text` and the accepted forms when it is not one of them,
 *   or when alpha is not a number > 0 or the shard count not an integer >= 1.
 */
export function parsePartitionSpec(text: string): PartitionSpec {
  const bad = (why: string) => argError(`partition spec ${JSON.stringify(text)}: ${why}; accepted forms are ${ACCEPTED_FORMS}`);
  const t = text.trim().toLowerCase();
  if (t === "") throw bad("it is empty");
  if (t === "iid") return { kind: "iid" };
  const m = /^([a-z]+)\s*:\s*(.*)$/.exec(t);
  if (m === null) {
    throw bad(["dirichlet", "shards", "quantity"].includes(t) ? `"${t}" needs a parameter after a colon` : "unknown partition kind");
  }
  const kind = m[1]!;
  const arg = m[2]!;
  switch (kind) {
    case "iid":
      throw bad('"iid" takes no parameter');
    case "dirichlet":
    case "quantity": {
      const alpha = /^(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/.test(arg) ? Number(arg) : Number.NaN;
      if (!(Number.isFinite(alpha) && alpha > 0)) throw bad(`alpha ${JSON.stringify(arg)} is not a number > 0`);
      return kind === "dirichlet" ? { kind: "dirichlet", alpha } : { kind: "quantity", alpha };
    }
    case "shards": {
      const k = /^\d+$/.test(arg) ? Number(arg) : Number.NaN;
      if (!(Number.isSafeInteger(k) && k >= 1)) throw bad(`classes per client ${JSON.stringify(arg)} is not an integer >= 1`);
      return { kind: "shards", classesPerClient: k };
    }
    default:
      throw bad(`unknown partition kind "${kind}"`);
  }
}

/**
 * Splits indices 0..labels.length-1 among `clients` clients. Each client's list is sorted ascending,
 * every index appears in exactly one list, and every client gets at least one example. The result is
 * a pure function of the arguments (including `seed`).
 *
 * - iid: a random permutation dealt into near-equal blocks (sizes differ by at most 1).
 * - dirichlet: for each class, its (shuffled) examples are cut among clients in proportions drawn
 *   from Dirichlet(alpha).
 * - shards: the label-sorted examples are cut into clients*classesPerClient shards, dealt at random,
 *   classesPerClient per client. Shards are cut at class boundaries (each class gets shards in
 *   proportion to its size), so no client sees more than classesPerClient classes; only when there
 *   are fewer shards than non-empty classes is that impossible, and shards then span classes.
 * - quantity: client sizes in proportions drawn from Dirichlet(alpha), examples dealt IID.
 *
 * For dirichlet and quantity a draw that leaves a client empty is re-drawn up to 100 times; if all
 * fail, single examples are moved from the largest clients to the empty ones.
 *
 * @throws SaflError(InvalidArgument) when numClasses or clients is not a positive integer, a label is
 *   not an integer in 0..numClasses-1, seed is not an integer, there are more clients than examples,
 *   alpha is not a finite number > 0, classesPerClient is not an integer in 1..numClasses, or
 *   clients*classesPerClient exceeds the number of examples.
 */
export function partition(labels: ArrayLike<number>, numClasses: number, clients: number, spec: PartitionSpec, seed: number): number[][] {
  const n = labels.length;
  if (!(Number.isSafeInteger(numClasses) && numClasses >= 1)) throw argError(`partition: number of classes ${numClasses} is not a positive integer`);
  if (!(Number.isSafeInteger(clients) && clients >= 1)) throw argError(`partition: number of clients ${clients} is not a positive integer`);
  if (!Number.isSafeInteger(seed)) throw argError(`partition: seed ${seed} is not an integer`);
  checkLabels(labels, numClasses, "partition");
  if (clients > n) {
    throw argError(`partition: cannot give each of ${clients} clients at least one example from only ${n} examples`);
  }
  const rng = new Rng(seed ^ SEED_SALT);
  let parts: number[][];
  switch (spec.kind) {
    case "iid":
      parts = iidPartition(n, clients, rng);
      break;
    case "dirichlet":
      checkAlpha(spec.alpha, "dirichlet");
      parts = dirichletPartition(byClass(labels, numClasses), clients, spec.alpha, rng);
      break;
    case "quantity":
      checkAlpha(spec.alpha, "quantity");
      parts = quantityPartition(n, clients, spec.alpha, rng);
      break;
    case "shards": {
      const k = spec.classesPerClient;
      if (!(Number.isSafeInteger(k) && k >= 1 && k <= numClasses)) {
        throw argError(`partition shards: classes per client ${k} is not an integer in 1..${numClasses} (the number of classes)`);
      }
      if (clients * k > n) {
        throw argError(`partition shards: ${clients} clients x ${k} shards = ${clients * k} shards, more than the ${n} examples`);
      }
      parts = shardPartition(byClass(labels, numClasses), clients, k, rng);
      break;
    }
    default: {
      // Reachable only from untyped callers (e.g. a hand-written JSON config).
      const kind: unknown = (spec as { kind?: unknown }).kind;
      throw argError(`partition: unknown kind ${JSON.stringify(kind)}; accepted forms are ${ACCEPTED_FORMS}`);
    }
  }
  for (const p of parts) p.sort((a, b) => a - b);
  return parts;
}

function checkLabels(labels: ArrayLike<number>, numClasses: number, who: string): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw argError(`${who}: label ${y} at index ${i} is not an integer in 0..${numClasses - 1}`);
    }
  }
}

function checkAlpha(alpha: number, kind: string): void {
  if (!(Number.isFinite(alpha) && alpha > 0)) throw argError(`partition ${kind}: alpha ${alpha} is not a finite number > 0`);
}

function identity(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

/** Indices of each class, in index order. */
function byClass(labels: ArrayLike<number>, numClasses: number): number[][] {
  const out: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) out[labels[i]!]!.push(i);
  return out;
}

/** Cuts `items` into consecutive blocks of the given sizes (which must sum to items.length). */
function cutBlocks(items: ArrayLike<number>, sizes: readonly number[]): number[][] {
  const out: number[][] = [];
  let at = 0;
  for (const s of sizes) {
    out.push(Array.from({ length: s }, (_, j) => items[at + j]!));
    at += s;
  }
  return out;
}

/** k near-equal sizes summing to n, the larger ones first. */
function evenSizes(n: number, k: number): number[] {
  const base = Math.floor(n / k);
  return Array.from({ length: k }, (_, i) => base + (i < n % k ? 1 : 0));
}

/**
 * Integer counts summing to `total` in the given proportions. Rounding the cumulative sum (rather
 * than each share) keeps the counts summing exactly to `total` with each off by less than one.
 */
function countsFromProportions(total: number, props: readonly number[]): number[] {
  const counts: number[] = [];
  let cum = 0;
  let prev = 0;
  for (let i = 0; i < props.length; i++) {
    cum += props[i]!;
    const cut = i === props.length - 1 ? total : Math.min(total, Math.round(cum * total));
    counts.push(cut - prev);
    prev = cut;
  }
  return counts;
}

function iidPartition(n: number, clients: number, rng: Rng): number[][] {
  const order = identity(n);
  rng.shuffle(order);
  return cutBlocks(order, evenSizes(n, clients));
}

function dirichletPartition(classes: readonly number[][], clients: number, alpha: number, rng: Rng): number[][] {
  let best: number[][] = [];
  let bestEmpty = Number.POSITIVE_INFINITY;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const parts: number[][] = Array.from({ length: clients }, () => []);
    for (const members of classes) {
      if (members.length === 0) continue;
      const shuffled = members.slice();
      rng.shuffle(shuffled);
      const counts = countsFromProportions(shuffled.length, sampleDirichlet(rng, alpha, clients));
      for (const [c, block] of cutBlocks(shuffled, counts).entries()) parts[c]!.push(...block);
    }
    const empty = parts.filter((p) => p.length === 0).length;
    if (empty === 0) return parts;
    if (empty < bestEmpty) {
      best = parts;
      bestEmpty = empty;
    }
  }
  fillEmpty(best, rng);
  return best;
}

function quantityPartition(n: number, clients: number, alpha: number, rng: Rng): number[][] {
  let sizes: number[] = [];
  let bestEmpty = Number.POSITIVE_INFINITY;
  for (let attempt = 0; attempt < MAX_ATTEMPTS && bestEmpty > 0; attempt++) {
    const s = countsFromProportions(n, sampleDirichlet(rng, alpha, clients));
    const empty = s.filter((x) => x === 0).length;
    if (empty < bestEmpty) {
      sizes = s;
      bestEmpty = empty;
    }
  }
  // Give each empty client one example from the currently largest one (n >= clients, so the largest
  // always has at least two while someone is empty).
  for (let c = 0; c < clients; c++) {
    if (sizes[c]! > 0) continue;
    let big = 0;
    for (let j = 1; j < clients; j++) if (sizes[j]! > sizes[big]!) big = j;
    sizes[big]!--;
    sizes[c] = 1;
  }
  const order = identity(n);
  rng.shuffle(order);
  return cutBlocks(order, sizes);
}

/** Moves one random example from the currently largest part into each empty part. */
function fillEmpty(parts: number[][], rng: Rng): void {
  for (const p of parts) {
    if (p.length > 0) continue;
    let big = parts[0]!;
    for (const q of parts) if (q.length > big.length) big = q;
    const j = rng.int(big.length);
    p.push(big[j]!);
    big[j] = big[big.length - 1]!;
    big.pop();
  }
}

function shardPartition(classes: readonly number[][], clients: number, perClient: number, rng: Rng): number[][] {
  const shardCount = clients * perClient;
  // Shuffle within each class so the seed also decides which examples share a shard, not only which
  // client gets which shard.
  const shuffled = classes.map((members) => {
    const m = members.slice();
    rng.shuffle(m);
    return m;
  });
  const sizes = shuffled.map((m) => m.length);
  const nonEmpty = sizes.filter((s) => s > 0).length;
  const shards: number[][] = [];
  if (shardCount >= nonEmpty) {
    const perClass = shardsPerClass(sizes, shardCount);
    for (const [c, m] of shuffled.entries()) shards.push(...cutBlocks(m, evenSizes(m.length, perClass[c]!)));
  } else {
    const sorted = shuffled.flat();
    shards.push(...cutBlocks(sorted, evenSizes(sorted.length, shardCount)));
  }
  const order = identity(shardCount);
  rng.shuffle(order);
  return Array.from({ length: clients }, (_, c) => {
    const part: number[] = [];
    for (let j = 0; j < perClient; j++) part.push(...shards[order[c * perClient + j]!]!);
    return part;
  });
}

/**
 * Shard counts per class, proportional to class size, at least one per non-empty class and never
 * more than the class has examples, summing to `total` (which must be >= the number of non-empty
 * classes and <= the number of examples). Rounding is settled D'Hondt-style (next shard to the class
 * whose shards would stay largest), which keeps shard sizes as even as possible.
 */
function shardsPerClass(sizes: readonly number[], total: number): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  const counts = sizes.map((s) => (s === 0 ? 0 : Math.max(1, Math.floor((total * s) / n))));
  let sum = counts.reduce((a, b) => a + b, 0);
  while (sum < total) {
    let pick = -1;
    for (let c = 0; c < sizes.length; c++) {
      if (counts[c]! >= sizes[c]!) continue;
      if (pick < 0 || sizes[c]! / (counts[c]! + 1) > sizes[pick]! / (counts[pick]! + 1)) pick = c;
    }
    counts[pick]!++;
    sum++;
  }
  while (sum > total) {
    let pick = -1;
    for (let c = 0; c < sizes.length; c++) {
      if (counts[c]! <= 1) continue;
      if (pick < 0 || sizes[c]! / counts[c]! < sizes[pick]! / counts[pick]!) pick = c;
    }
    counts[pick]!--;
    sum--;
  }
  return counts;
}

/** Uniform in (0, 1): Rng.next can return exactly 0, which the log and power below cannot take. */
function openUnit(rng: Rng): number {
  let u = rng.next();
  while (u === 0) u = rng.next();
  return u;
}

/** Marsaglia & Tsang (2000) squeeze-rejection sampler; valid for shape >= 1. */
function gammaAtLeastOne(rng: Rng, shape: number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = openUnit(rng);
    const x2 = x * x;
    if (u < 1 - 0.0331 * x2 * x2) return d * v;
    if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
  }
}

/**
 * log of a Gamma(shape, 1) draw. For shape < 1 it uses the boost Gamma(a) = Gamma(a+1) * U^(1/a);
 * staying in log space matters there, because U^(1/a) underflows to 0 for small a (alpha = 0.01 is
 * a realistic Dirichlet setting) and a Dirichlet draw of all zeros cannot be normalized.
 */
function logGamma(rng: Rng, shape: number): number {
  if (shape >= 1) return Math.log(gammaAtLeastOne(rng, shape));
  return Math.log(gammaAtLeastOne(rng, shape + 1)) + Math.log(openUnit(rng)) / shape;
}

/**
 * One draw from Gamma(shape, scale 1), mean `shape`.
 *
 * @throws SaflError(InvalidArgument) when shape is not a finite number > 0.
 */
export function sampleGamma(rng: Rng, shape: number): number {
  if (!(Number.isFinite(shape) && shape > 0)) throw argError(`gamma: shape ${shape} is not a finite number > 0`);
  if (shape >= 1) return gammaAtLeastOne(rng, shape);
  return gammaAtLeastOne(rng, shape + 1) * openUnit(rng) ** (1 / shape);
}

/**
 * One draw from the symmetric Dirichlet(alpha, ..., alpha) over `k` categories: k proportions
 * summing to 1. Normalizes in log space, so it stays well-defined for tiny alpha.
 *
 * @throws SaflError(InvalidArgument) when alpha is not a finite number > 0 or k not a positive integer.
 */
export function sampleDirichlet(rng: Rng, alpha: number, k: number): number[] {
  if (!(Number.isFinite(alpha) && alpha > 0)) throw argError(`dirichlet: alpha ${alpha} is not a finite number > 0`);
  if (!(Number.isSafeInteger(k) && k >= 1)) throw argError(`dirichlet: number of categories ${k} is not a positive integer`);
  const logs = Array.from({ length: k }, () => logGamma(rng, alpha));
  const top = Math.max(...logs);
  const w = logs.map((l) => Math.exp(l - top));
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / sum);
}

/**
 * Sizes and class histograms of a partition, for logs and for checking how skewed it is.
 *
 * @throws SaflError(InvalidArgument) when an index is not an integer in 0..labels.length-1 or a label
 *   is not an integer in 0..numClasses-1.
 */
export function partitionSummary(parts: readonly (readonly number[])[], labels: ArrayLike<number>, numClasses: number): PartitionSummary {
  if (!(Number.isSafeInteger(numClasses) && numClasses >= 1)) throw argError(`partition summary: number of classes ${numClasses} is not a positive integer`);
  checkLabels(labels, numClasses, "partition summary");
  const histograms = parts.map((p, c) => {
    const h = new Array<number>(numClasses).fill(0);
    for (const i of p) {
      if (!Number.isInteger(i) || i < 0 || i >= labels.length) {
        throw argError(`partition summary: client ${c} has index ${i}, not an integer in 0..${labels.length - 1}`);
      }
      h[labels[i]!]!++;
    }
    return h;
  });
  const sizes = parts.map((p) => p.length);
  const classesSeen = histograms.reduce((acc, h) => acc + h.filter((x) => x > 0).length, 0);
  return {
    sizes,
    histograms,
    minSize: sizes.length === 0 ? 0 : Math.min(...sizes),
    maxSize: sizes.length === 0 ? 0 : Math.max(...sizes),
    meanClassesPerClient: sizes.length === 0 ? 0 : classesSeen / sizes.length,
  };
}

/**
 * A plain-text table of a summary: a header line with totals, then one row per client (its size and
 * per-class counts), cut after `maxRows` rows (default 20) with a "... N more clients" line.
 *
 * @throws SaflError(InvalidArgument) when maxRows is not an integer >= 0 or classNames does not have
 *   one name per class.
 */
export function formatPartitionSummary(summary: PartitionSummary, opts: { maxRows?: number; classNames?: readonly string[] } = {}): string {
  const maxRows = opts.maxRows ?? 20;
  if (!(Number.isSafeInteger(maxRows) && maxRows >= 0)) throw argError(`partition summary: maxRows ${maxRows} is not an integer >= 0`);
  const { sizes, histograms } = summary;
  const numClasses = histograms[0]?.length ?? opts.classNames?.length ?? 0;
  if (opts.classNames !== undefined && opts.classNames.length !== numClasses) {
    throw argError(`partition summary: ${opts.classNames.length} class names for ${numClasses} classes`);
  }
  const clients = sizes.length;
  const total = sizes.reduce((a, b) => a + b, 0);
  const mean = clients === 0 ? 0 : total / clients;
  const lines = [
    `${clients} clients, ${total} examples, ${numClasses} classes; client size min ${summary.minSize}, max ${summary.maxSize}, mean ${mean.toFixed(1)}; ${summary.meanClassesPerClient.toFixed(2)} classes per client on average`,
  ];
  const header = ["client", "size", ...Array.from({ length: numClasses }, (_, k) => opts.classNames?.[k] ?? String(k))];
  const shown = Math.min(clients, maxRows);
  const rows = Array.from({ length: shown }, (_, c) => [String(c), String(sizes[c]!), ...histograms[c]!.map(String)]);
  const widths = header.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)));
  const fmt = (cells: readonly string[]) => cells.map((s, j) => s.padStart(widths[j]!)).join("  ");
  if (clients > 0) lines.push(fmt(header), ...rows.map(fmt));
  if (clients > shown) lines.push(`... ${clients - shown} more client${clients - shown === 1 ? "" : "s"}`);
  return lines.join("\n");
}
