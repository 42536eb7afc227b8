/**
 * @module nn/config
 * The ViT configuration in HuggingFace `config.json` form (field names as transformers writes them),
 * validated with zod, and the project's named presets (the same models as the PyTorch reference in
 * shared/anchors: tiny-mnist, small-cifar, vit-tiny-224).
 */
import { z } from "zod";
import { ErrorCode, SaflError } from "../errors.js";

export const vitConfigSchema = z
  .object({
    model_type: z.literal("vit").default("vit"),
    hidden_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    image_size: z.number().int().positive(),
    patch_size: z.number().int().positive(),
    num_channels: z.number().int().positive().default(3),
    layer_norm_eps: z.number().positive().default(1e-12),
    qkv_bias: z.boolean().default(true),
    hidden_act: z.string().default("gelu"),
    num_labels: z.number().int().positive().optional(),
    id2label: z.record(z.string(), z.string()).optional(),
    label2id: z.record(z.string(), z.number()).optional(),
    architectures: z.array(z.string()).optional(),
  })
  .passthrough()
  .superRefine((c, ctx) => {
    if (c.hidden_size % c.num_attention_heads !== 0) {
      ctx.addIssue({ code: "custom", path: ["num_attention_heads"], message: `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}` });
    }
    if (c.image_size % c.patch_size !== 0) {
      ctx.addIssue({ code: "custom", path: ["patch_size"], message: `image_size ${c.image_size} is not a multiple of patch_size ${c.patch_size}` });
    }
    if (c.hidden_act !== "gelu") {
      ctx.addIssue({ code: "custom", path: ["hidden_act"], message: `hidden_act "${c.hidden_act}" is not supported (expected "gelu", the exact erf GELU)` });
    }
    if (c.num_labels === undefined && c.id2label === undefined) {
      ctx.addIssue({ code: "custom", path: ["num_labels"], message: "either num_labels or id2label is required" });
    }
    if (c.num_labels !== undefined && c.id2label !== undefined && Object.keys(c.id2label).length !== c.num_labels) {
      ctx.addIssue({ code: "custom", path: ["id2label"], message: `id2label has ${Object.keys(c.id2label).length} entries but num_labels is ${c.num_labels}` });
    }
  });

export type VitConfigInput = z.input<typeof vitConfigSchema>;
export type VitConfig = z.output<typeof vitConfigSchema> & { num_labels: number };

/** Validates a parsed config.json, reporting every problem at once with its field path. */
export function parseVitConfig(raw: unknown, source = "config"): VitConfig {
  const res = vitConfigSchema.safeParse(raw);
  if (!res.success) {
    const lines = res.error.issues.map((i) => `  - ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new SaflError(ErrorCode.InvalidArgument, `${source} is not a valid ViT config:\n${lines.join("\n")}`);
  }
  const c = res.data;
  const numLabels = c.num_labels ?? Object.keys(c.id2label!).length;
  return { ...c, num_labels: numLabels };
}

/** Derived sizes used throughout. */
export function vitDims(c: VitConfig) {
  const grid = c.image_size / c.patch_size;
  const patches = grid * grid;
  return {
    hidden: c.hidden_size,
    heads: c.num_attention_heads,
    headDim: c.hidden_size / c.num_attention_heads,
    layers: c.num_hidden_layers,
    mlp: c.intermediate_size,
    patches,
    tokens: patches + 1,
    patchDim: c.num_channels * c.patch_size * c.patch_size,
    labels: c.num_labels,
  };
}

function preset(image: number, channels: number, patch: number, dim: number, depth: number, heads: number, labels: number): VitConfig {
  return parseVitConfig({
    hidden_size: dim,
    num_hidden_layers: depth,
    num_attention_heads: heads,
    intermediate_size: 4 * dim,
    image_size: image,
    patch_size: patch,
    num_channels: channels,
    layer_norm_eps: 1e-6,
    qkv_bias: true,
    hidden_act: "gelu",
    num_labels: labels,
    architectures: ["ViTForImageClassification"],
  });
}

/** Named model presets; batch is the benchmark batch of shared/anchors/README.md. */
export const PRESETS: Record<string, { config: VitConfig; batch: number }> = {
  "tiny-mnist": { config: preset(28, 1, 4, 128, 4, 4, 10), batch: 64 },
  "small-cifar": { config: preset(32, 3, 4, 192, 6, 3, 10), batch: 64 },
  /** The default backbone: 7×7 patches (16 tokens + CLS), small enough for many federated rounds on a CPU. */
  "micro-mnist": { config: preset(28, 1, 7, 64, 4, 4, 10), batch: 64 },
  /** The study's primary backbone (docs/pretraining.md): twice micro-mnist's width, still 16 tokens + CLS. */
  "small-fmnist": { config: preset(28, 1, 7, 128, 4, 4, 10), batch: 64 },
  "vit-tiny-224": { config: preset(224, 3, 16, 192, 12, 3, 100), batch: 16 },
};

export function presetConfig(name: string): { config: VitConfig; batch: number } {
  const p = PRESETS[name];
  if (!p) throw new SaflError(ErrorCode.InvalidArgument, `unknown preset "${name}"; expected one of: ${Object.keys(PRESETS).join(", ")}`);
  return p;
}

/** A copy of `config` for a task with `numLabels` classes (id2label from names when given). */
export function withLabels(config: VitConfig, numLabels: number, names: readonly string[] | undefined): VitConfig {
  const id2label = Object.fromEntries(Array.from({ length: numLabels }, (_, i) => [String(i), names?.[i] ?? `LABEL_${i}`]));
  const label2id = Object.fromEntries(Object.entries(id2label).map(([k, v]) => [v, Number(k)]));
  return { ...config, num_labels: numLabels, id2label, label2id };
}
