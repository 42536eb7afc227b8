/**
 * @module nn/vit
 * The Vision Transformer with HuggingFace `ViTForImageClassification` names and semantics: patch
 * embedding (a stride-p convolution, computed as patches × reshaped kernel), CLS token, learned
 * position embeddings, pre-norm blocks (separate query/key/value with bias, softmax(QKᵀ/√d), exact
 * erf GELU, LayerNorm with the config's eps), final LayerNorm and the classifier on the CLS token.
 *
 * Tokens stay in one 2-D [B·T, D] matrix between blocks, so every Linear is a single Gemm and its
 * weight gradient is one 2-D product; only attention reshapes to [B, H, T, d].
 */
import * as g from "../graph/builder.js";
import type { Value } from "../graph/node.js";
import { BATCH } from "../graph/shape.js";
import { type VitConfig, vitDims } from "./config.js";
import { type Adapters, ParamRegistry, layerNormLayer, linearGroup, linearLayer } from "./module.js";

export interface VitGraph {
  readonly config: VitConfig;
  /** float32 [B, C, H, W] */
  readonly pixelValues: Value;
  /** float32 [B, num_labels] */
  readonly logits: Value;
  readonly registry: ParamRegistry;
}

/** Builds the forward graph; parameters become graph inputs named by their HF state-dict keys. */
export function buildVit(config: VitConfig, adapters: Adapters = [], opts: { dtype?: "float32" | "float64" } = {}): VitGraph {
  const d = vitDims(config);
  const reg = new ParamRegistry(opts.dtype);
  const eps = config.layer_norm_eps;
  const pixelValues = g.input("pixel_values", reg.dtype, [BATCH, config.num_channels, config.image_size, config.image_size]);

  // Patch embedding: conv weight [D, C, p, p] viewed as [D, C·p·p] against patches in (c, kh, kw) order.
  const p = config.patch_size;
  const convW = reg.param("vit.embeddings.patch_embeddings.projection.weight", [d.hidden, config.num_channels, p, p], {
    kind: "normal",
    std: 0.02,
  });
  const convB = reg.param("vit.embeddings.patch_embeddings.projection.bias", [d.hidden], { kind: "zeros" });
  const patches = g.patchify(pixelValues, p);
  const emb = g.reshape(g.linear(patches, g.reshape(convW, [d.hidden, d.patchDim]), convB), [BATCH, d.patches, d.hidden]);
  const cls = reg.param("vit.embeddings.cls_token", [1, 1, d.hidden], { kind: "normal", std: 0.02 });
  const pos = reg.param("vit.embeddings.position_embeddings", [1, d.tokens, d.hidden], { kind: "normal", std: 0.02 });
  const tokens = g.add(g.concat([g.expand(cls, [BATCH, 1, d.hidden]), emb], 1), pos);
  let x = g.reshape(tokens, [-1, d.hidden]);

  for (let i = 0; i < d.layers; i++) {
    const pre = `vit.encoder.layer.${i}`;
    const h = layerNormLayer(reg, `${pre}.layernorm_before`, x, d.hidden, eps);
    const attn = selfAttention(reg, adapters, `${pre}.attention`, h, config);
    x = g.add(x, attn);
    const h2 = layerNormLayer(reg, `${pre}.layernorm_after`, x, d.hidden, eps);
    const inter = g.gelu(linearLayer(reg, adapters, `${pre}.intermediate.dense`, h2, d.hidden, d.mlp));
    x = g.add(x, linearLayer(reg, adapters, `${pre}.output.dense`, inter, d.mlp, d.hidden));
  }

  // LayerNorm is per token, so normalizing only the CLS rows equals slicing after the final norm.
  const clsRows = g.reshape(g.slice(g.reshape(x, [BATCH, d.tokens, d.hidden]), 1, 0, 1), [BATCH, d.hidden]);
  const normed = layerNormLayer(reg, "vit.layernorm", clsRows, d.hidden, eps);
  const logits = linearLayer(reg, adapters, "classifier", normed, d.hidden, d.labels);
  return { config, pixelValues, logits, registry: reg };
}

/** Multi-head self-attention on [B·T, D] rows (HF ViTAttention: self-attention + output dense). */
function selfAttention(reg: ParamRegistry, adapters: Adapters, name: string, h: Value, config: VitConfig): Value {
  const d = vitDims(config);
  // query, key and value read the same input: one product for all three (and their adapters), then
  // one transpose to [3, B, H, T, d] and a split into the three head-major tensors.
  const names = ["query", "key", "value"].map((m) => `${name}.attention.${m}`);
  const qkv = linearGroup(reg, adapters, names, h, d.hidden, [d.hidden, d.hidden, d.hidden], { bias: config.qkv_bias });
  const heads = g.transpose(g.reshape(qkv, [BATCH, d.tokens, 3, d.heads, d.headDim]), [2, 0, 3, 1, 4]);
  const [qh, kh, vh] = g.split(heads, [1, 1, 1], 0).map((t) => g.reshape(t, [BATCH, d.heads, d.tokens, d.headDim])) as [Value, Value, Value];
  const scores = g.mul(g.matmul(qh, g.mT(kh)), 1 / Math.sqrt(d.headDim));
  const ctx = g.matmul(g.softmax(scores, -1), vh); // [B, H, T, d]
  const merged = g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [-1, d.hidden]);
  return linearLayer(reg, adapters, `${name}.output.dense`, merged, d.hidden, d.hidden);
}
