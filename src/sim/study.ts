/**
 * @module sim/study
 * A study plan: a matrix of simulations (methods × partitions × seeds) plus one-knob sensitivity
 * sweeps, all derived from one shared base run config. This module validates a plan (every problem
 * at once), expands it into cells with fully resolved run configs, and folds identical cells
 * together (a sweep's default value is the matrix cell already run, not a second run). Running the
 * cells and writing files is the CLI's business; turning finished cells into the report is
 * sim/study-report.
 */
import { z } from "zod";
import { argError } from "../errors.js";
import { parseWith } from "../validate.js";
import { parseRunConfig, type RunConfig } from "./config.js";

const slug = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "expected lower-case letters, digits, '.', '_' or '-' (it names files)");
const partialConfig = z.record(z.string(), z.unknown());

const methodSchema = z
  .object({
    id: slug,
    /** Shown in tables and plot legends; the id when omitted. */
    label: z.string().min(1).optional(),
    /** Run-config fields on top of the plan's base (usually `strategy`). */
    config: partialConfig.default({}),
  })
  .strict();

const partitionSchema = z
  .object({
    id: slug,
    label: z.string().min(1).optional(),
    /** A `clients.partition` spec: "iid", "dirichlet:0.5", ... */
    partition: z.string().min(1),
  })
  .strict();

const sweepSchema = z
  .object({
    id: slug,
    /** What the sweep varies, e.g. "initiating rounds". */
    label: z.string().min(1),
    /** The method (an id of `methods`) whose config the variants modify. */
    method: z.string().min(1),
    /** The partition (an id of `partitions`) the sweep runs on. */
    partition: z.string().min(1),
    /** Seeds (default: the plan's seeds). */
    seeds: z.array(z.number().int().min(0)).min(1).optional(),
    variants: z
      .array(
        z
          .object({
            id: slug,
            label: z.string().min(1),
            /** Run-config fields on top of the method's (an empty object is the method's default). */
            config: partialConfig.default({}),
          })
          .strict(),
      )
      .min(2),
  })
  .strict();

export const studyPlanSchema = z
  .object({
    title: z.string().min(1),
    /** Prose placed under the report's title (the setting, in a sentence or two). */
    description: z.string().default(""),
    /** The run config every cell starts from (see docs/simulation.md). */
    base: partialConfig.default({}),
    methods: z.array(methodSchema).min(1),
    partitions: z.array(partitionSchema).min(1),
    seeds: z.array(z.number().int().min(0)).min(1),
    /** The method traffic and accuracy are compared against (an id of `methods`). */
    reference: z.string().min(1),
    /** The method under test (budget and rank plots, the target check). */
    flagship: z.string().min(1),
    /** "Rounds to reach" this test accuracy (a fraction) are reported per method. */
    targetAccuracy: z.number().gt(0).lt(1),
    /** The claim being checked: final accuracy at most `accuracyGap` below the reference, with traffic at most `trafficRatio` of it. */
    targets: z
      .object({
        accuracyGap: z.number().min(0).default(0.005),
        trafficRatio: z.number().gt(0).default(0.1),
      })
      .strict()
      .prefault({}),
    sweeps: z.array(sweepSchema).default([]),
  })
  .strict()
  .superRefine((p, ctx) => {
    const dup = (ids: readonly string[], path: string) => {
      const seen = new Set<string>();
      for (const [i, id] of ids.entries()) {
        if (seen.has(id)) ctx.addIssue({ code: "custom", path: [path, i, "id"], message: `duplicate id "${id}"` });
        seen.add(id);
      }
    };
    dup(p.methods.map((m) => m.id), "methods");
    dup(p.partitions.map((m) => m.id), "partitions");
    dup(p.sweeps.map((m) => m.id), "sweeps");
    if (new Set(p.seeds).size !== p.seeds.length) ctx.addIssue({ code: "custom", path: ["seeds"], message: "seeds repeat" });
    const methodIds = p.methods.map((m) => m.id);
    const partitionIds = p.partitions.map((m) => m.id);
    const known = (id: string, ids: readonly string[], path: PropertyKey[], what: string) => {
      if (!ids.includes(id)) ctx.addIssue({ code: "custom", path, message: `"${id}" is not one of the plan's ${what} (${ids.join(", ")})` });
    };
    known(p.reference, methodIds, ["reference"], "methods");
    known(p.flagship, methodIds, ["flagship"], "methods");
    for (const [i, s] of p.sweeps.entries()) {
      known(s.method, methodIds, ["sweeps", i, "method"], "methods");
      known(s.partition, partitionIds, ["sweeps", i, "partition"], "partitions");
      dup(s.variants.map((v) => v.id), `sweeps.${i}.variants`);
    }
  });

export type StudyPlan = z.output<typeof studyPlanSchema>;

/** One simulation of a study: its resolved config and where it appears in the report. */
export interface StudyCell {
  /** Directory name of the cell's results, e.g. "fedavg.dir0.5.s0". */
  readonly id: string;
  readonly config: RunConfig;
  /** Matrix position, when the cell belongs to the matrix. */
  readonly matrix?: { readonly method: string; readonly partition: string; readonly seed: number };
  /** Sweep positions (several when variants of different sweeps resolve to the same config). */
  readonly sweeps: readonly { readonly sweep: string; readonly variant: string; readonly seed: number }[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Deep merge of plain objects; later layers win, arrays and scalars are replaced whole. */
export function mergeConfigs(...layers: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!isObject(layer)) continue;
    for (const [k, v] of Object.entries(layer)) out[k] = isObject(v) && isObject(out[k]) ? mergeConfigs(out[k], v) : structuredClone(v);
  }
  return out;
}

/** Validates a parsed JSON plan (every problem at once); `source` names it in messages. */
export function parseStudyPlan(raw: unknown, source = "study plan"): StudyPlan {
  return parseWith(studyPlanSchema, raw, source);
}

/** A canonical JSON string of a config (sorted keys), so equal configs compare equal. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

/** The parts of a run config that change results (execution settings do not). */
export function resultKey(cfg: RunConfig): string {
  const { execution: _execution, ...rest } = cfg;
  return canonicalJson(rest);
}

/**
 * Every cell of a plan, matrix first (seed-major, then partition, then method), then the sweeps'
 * variants that are not already a matrix cell. Each config is validated; all problems are reported
 * together, naming the cell.
 */
export function expandPlan(plan: StudyPlan): StudyCell[] {
  const cells: { id: string; config: RunConfig; matrix?: StudyCell["matrix"]; sweeps: { sweep: string; variant: string; seed: number }[] }[] = [];
  const byKey = new Map<string, (typeof cells)[number]>();
  const problems: string[] = [];
  const methods = new Map(plan.methods.map((m) => [m.id, m]));
  const partitions = new Map(plan.partitions.map((p) => [p.id, p]));
  const resolve = (id: string, layers: unknown[]): RunConfig | undefined => {
    try {
      return parseRunConfig(mergeConfigs(...layers), `cell ${id}`);
    } catch (e) {
      problems.push(e instanceof Error ? e.message.replace(/^\[[a-z_]+\] /, "") : String(e));
      return undefined;
    }
  };
  // Seed-major, so a study stopped early still has every method and partition of the first seeds.
  for (const seed of plan.seeds) {
    for (const p of plan.partitions) {
      for (const m of plan.methods) {
        const id = `${m.id}.${p.id}.s${seed}`;
        const config = resolve(id, [plan.base, m.config, { clients: { partition: p.partition }, seed }]);
        if (!config) continue;
        const key = resultKey(config);
        const twin = byKey.get(key);
        if (twin) {
          problems.push(`cell ${id} has the same config as ${twin.id}: two methods or partitions of the plan do not differ`);
          continue;
        }
        const cell = { id, config, matrix: { method: m.id, partition: p.id, seed }, sweeps: [] };
        cells.push(cell);
        byKey.set(key, cell);
      }
    }
  }
  for (const s of plan.sweeps) {
    const m = methods.get(s.method);
    const p = partitions.get(s.partition);
    if (!m || !p) continue;
    for (const v of s.variants) {
      for (const seed of s.seeds ?? plan.seeds) {
        const id = `sweep-${s.id}-${v.id}.${p.id}.s${seed}`;
        const config = resolve(id, [plan.base, m.config, { clients: { partition: p.partition } }, v.config, { seed }]);
        if (!config) continue;
        const key = resultKey(config);
        const at = { sweep: s.id, variant: v.id, seed };
        const twin = byKey.get(key);
        if (twin) {
          twin.sweeps.push(at);
          continue;
        }
        const cell = { id, config, sweeps: [at] };
        cells.push(cell);
        byKey.set(key, cell);
      }
    }
  }
  if (problems.length > 0) throw argError(`the study plan has ${problems.length} invalid cell${problems.length === 1 ? "" : "s"}:\n${problems.join("\n")}`);
  return cells;
}
