/**
 * @module sim/config
 * The run config of a simulation: one zod schema for the whole run, validated before any work
 * starts, with every problem reported at once (path and value) and unknown keys rejected. An empty
 * config is the main job: SA-FedLoRA on the default backbone, MNIST digits 5-9, 20 clients with
 * Dirichlet(0.5) label skew, 10 sampled per round, 30 rounds. `--set a.b=value` overrides apply to
 * the raw config before validation, so they are checked like the file.
 */
import { z } from "zod";
import { parsePartitionSpec } from "../data/partition.js";
import { argError } from "../errors.js";
import { strategyIssues, strategySpecSchema } from "../fl/strategies/index.js";
import type { AdapterKind } from "../peft/adapter.js";
import { ADAPTER_KIND_ENTRIES } from "../peft/registry.js";
import { parseWith } from "../validate.js";

const partitionField = z.string().superRefine((text, ctx) => {
  try {
    parsePartitionSpec(text);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: e instanceof Error ? e.message.replace(/^\[[a-z_]+\] /, "") : String(e) });
  }
});

/**
 * Learning rates: one for full-model rounds (FedAvg, FedProx, SA-FedLoRA's initiating stage), one per
 * adapter kind with the kind's own default (peft/registry: the SVD form starts from λ = 0 and needs a
 * higher rate, docs/finetuning.md), and optionally one for the classification head in adapter rounds.
 */
const lrSchema = z
  .object({
    full: z.number().positive().default(0.0005),
    ...(Object.fromEntries(ADAPTER_KIND_ENTRIES.map((e) => [e.kind, z.number().positive().default(e.defaultLr)])) as Record<AdapterKind, z.ZodDefault<z.ZodNumber>>),
    /**
     * The head's rate in rounds that train an adapter; absent, the adapter kind's federated head
     * rate (peft/registry `federatedHeadLr`: 0.003 for the SVD form), else the kind's own rate. The
     * head is new for the target task, so the adapter's rate is not necessarily right for it: at the
     * SVD form's 0.01 it trained 3.3x faster than FedLoRA's at 0.003 (docs/algorithm.md, "The SVD
     * form in federated training"). Full-model rounds train the head with every other weight at
     * `full`. Optional without a default (the kind decides), so configs without it keep their keys.
     */
    head: z.number().positive().optional(),
  })
  .strict();

const deploymentSchema = z
  .object({
    /** Clients that must be online before a round samples (default: clients.count, so a deployment samples as its simulation does). */
    minClients: z.number().int().min(1).optional(),
    /** Seconds a round's training (and its client evaluation) may take; late replies are refused. */
    roundTimeoutSeconds: z.number().positive().default(600),
    /** A round that ends at its deadline with fewer accepted replies than this share of the sampled clients is retried with a fresh sample. */
    minReplyFraction: z.number().min(0).max(1).default(0.5),
    /** Times a round is tried before the run stops with an error. */
    maxRoundAttempts: z.number().int().min(1).default(3),
    /** Interval of client heartbeats; a client missing two is offline. */
    heartbeatSeconds: z.number().int().min(1).max(600).default(10),
    /** Seconds to wait for minClients before the first round before giving up (0: wait forever, printing who is connected). */
    waitForClientsSeconds: z.number().min(0).default(0),
  })
  .strict();

export type DeploymentSettings = Required<z.output<typeof deploymentSchema>>;

/** The deployment section with every default filled in (minClients defaults to the number of clients). */
export function deploymentSettings(cfg: RunConfig): DeploymentSettings {
  const d = deploymentSchema.parse(cfg.deployment ?? {});
  return { ...d, minClients: d.minClients ?? cfg.clients.count };
}

/**
 * The data block a config without one gets: the main job's target task. A `--set data.<field>`
 * on a config without a data block starts from it too, so `--set data.trainLimit=1000` shrinks the
 * main job instead of silently turning it into all ten digits.
 */
const DEFAULT_DATA = { dataset: "mnist", classes: "5-9" } as const;

export const runConfigSchema = z
  .object({
    seed: z.number().int().min(0).default(0),
    rounds: z.number().int().min(1).default(30),
    model: z
      .object({
        /** A checkpoint directory, or "default" for the shipped backbone. */
        backbone: z.string().min(1).default("default"),
      })
      .strict()
      .prefault({}),
    data: z
      .object({
        dataset: z.string().min(1).default("mnist"),
        /** Classes of the target task (e.g. "5-9"); all when omitted. */
        classes: z.string().min(1).optional(),
        dataDir: z.string().min(1).optional(),
        /**
         * Keep a random subset of this many training examples (drawn with the run seed, before
         * partitioning) to make a run cheaper; all when omitted. The test set is always whole.
         */
        trainLimit: z.number().int().min(1).optional(),
      })
      .strict()
      // The main job's target task: digits the default backbone never saw.
      .prefault(DEFAULT_DATA),
    clients: z
      .object({
        count: z.number().int().min(1).default(20),
        perRound: z.number().int().min(1).default(10),
        /** "iid", "dirichlet:<alpha>", "shards:<classes per client>" or "quantity:<alpha>". */
        partition: partitionField.default("dirichlet:0.5"),
        /** Share of each client's examples held out for client-side evaluation (0: none). */
        localTestFraction: z.number().min(0).lt(1).default(0),
      })
      .strict()
      .prefault({}),
    // A strategy object without a name is SA-FedLoRA, so `--set strategy.initiating.rounds=0` works alone
    // (as does `--set strategy.serverOptimizer.name=fedadam`; every strategy takes serverOptimizer, fl/server-optimizer).
    strategy: z.preprocess((v) => (v !== null && typeof v === "object" && !Array.isArray(v) && !("name" in v) ? { name: "sa-fedlora", ...v } : v), strategySpecSchema).prefault({ name: "sa-fedlora" }),
    training: z
      .object({
        optimizer: z.enum(["adamw", "sgd"]).default("adamw"),
        lr: lrSchema.prefault({}),
        weightDecay: z.number().min(0).default(0.01),
        localEpochs: z.number().int().min(0).default(1),
        /** Local steps per round; 0 = use localEpochs. */
        localSteps: z.number().int().min(0).default(0),
        batch: z.number().int().min(1).default(16),
      })
      .strict()
      .prefault({}),
    evaluation: z
      .object({
        /** Server-side test evaluation every n rounds (and after the last); 0 = only after the last. */
        every: z.number().int().min(0).default(1),
        /** Client-side evaluation on local held-out data every n rounds (needs clients.localTestFraction > 0); 0 = never. */
        clientEvery: z.number().int().min(0).default(0),
        batch: z.number().int().min(1).default(256),
      })
      .strict()
      .prefault({}),
    wire: z
      .object({
        /** Payload dtype of every message. */
        dtype: z.enum(["float32", "float16", "bfloat16"]).default("float32"),
      })
      .strict()
      .prefault({}),
    /**
     * How a deployed run (`safl server`) waits for clients and closes rounds; ignored by simulation.
     * Optional without defaults, so a config without it resolves as before (study cells are keyed
     * by the resolved config); `deploymentSettings` fills in the defaults.
     */
    deployment: deploymentSchema.optional(),
    execution: z
      .object({
        /**
         * 0: clients run one after another in this process; n ≥ 1: a pool of n worker threads.
         * Default 2: on this project's 2-core reference machine a pool of 2 single-threaded workers
         * ran rounds 1.5x faster (median; 0.88-1.76x over five noisy runs) than one process with 2
         * threads (docs/benchmarks.md).
         */
        workers: z.number().int().min(0).default(2),
        /** onnxruntime intra-op threads per client runtime (sequential mode; workers use 1 each). */
        threads: z.number().int().min(1).default(2),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.clients.perRound > c.clients.count) {
      ctx.addIssue({ code: "custom", path: ["clients", "perRound"], message: `${c.clients.perRound} clients per round, but there are only ${c.clients.count} clients` });
    }
    if (c.training.localEpochs === 0 && c.training.localSteps === 0) {
      ctx.addIssue({ code: "custom", path: ["training", "localEpochs"], message: "localEpochs and localSteps are both 0: clients would not train" });
    }
    if (c.evaluation.clientEvery > 0 && c.clients.localTestFraction === 0) {
      ctx.addIssue({ code: "custom", path: ["evaluation", "clientEvery"], message: "client-side evaluation needs clients.localTestFraction > 0" });
    }
    for (const issue of strategyIssues(c.strategy, { rounds: c.rounds })) {
      ctx.addIssue({ code: "custom", path: ["strategy", ...issue.path], message: issue.message });
    }
  });

export type RunConfigInput = z.input<typeof runConfigSchema>;
export type RunConfig = z.output<typeof runConfigSchema>;

/** Validates a raw config (every problem at once); `source` names it in messages. */
export function parseRunConfig(raw: unknown, source = "run config"): RunConfig {
  return parseWith(runConfigSchema, raw ?? {}, source);
}

/**
 * Applies `key.path=value` overrides to a raw config object (a copy). The value is read as JSON when
 * it parses (numbers, booleans, objects), else as a string: `clients.count=50`,
 * `strategy.name=fedavg`, `clients.partition=iid`. A missing `data` block is first filled with the
 * one the schema would give it (DEFAULT_DATA), so `data.trainLimit=1000` changes one field of the
 * main job's task, not all of it; unless an override names the dataset, which is another task.
 */
export function applyOverrides(raw: unknown, overrides: readonly string[]): Record<string, unknown> {
  const out = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (typeof out !== "object" || out === null || Array.isArray(out)) throw argError("the run config must be a JSON object");
  // Naming another dataset names another task: then classes are all of its classes unless set.
  const setsDataset = overrides.some((o) => /^data(\.dataset)?=/.test(o));
  for (const o of overrides) {
    const eq = o.indexOf("=");
    if (eq <= 0) throw argError(`--set ${JSON.stringify(o)}: expected key.path=value`);
    const path = o.slice(0, eq).split(".");
    if (path.some((p) => p === "" || p === "__proto__" || p === "constructor" || p === "prototype")) throw argError(`--set ${JSON.stringify(o)}: bad key path`);
    const text = o.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    let node: Record<string, unknown> = out;
    for (const [depth, key] of path.slice(0, -1).entries()) {
      const next = node[key];
      if (next === undefined) node[key] = depth === 0 && key === "data" && !setsDataset ? { ...DEFAULT_DATA } : {};
      else if (typeof next !== "object" || next === null || Array.isArray(next)) throw argError(`--set ${JSON.stringify(o)}: "${key}" is not an object in the config`);
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = value;
  }
  return out;
}
