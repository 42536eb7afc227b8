/**
 * LoRA on the ViT: a fresh adapter leaves the logits unchanged, and frozen base weights cost nothing
 * in the backward graph (checked by inspecting the gradient graph, not by timing).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import * as g from "../../graph/builder.js";
import { grad } from "../../graph/autodiff/grad.js";
import { type Node, topoSort } from "../../graph/node.js";
import { Op } from "../../graph/ops.js";
import { BATCH } from "../../graph/shape.js";
import { NodeRuntime } from "../../runtime/node.js";
import { Rng } from "../../util/rng.js";
import { parseVitConfig } from "../../nn/config.js";
import { DEFAULT_LORA_TARGETS, isLoraParam, loraAdapter } from "./layer.js";
import { ParamStore } from "../../nn/params.js";
import { EvalStep } from "../../nn/train.js";
import { buildVit } from "../../nn/vit.js";

const cfg = parseVitConfig({
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 32,
  image_size: 8,
  patch_size: 4,
  num_channels: 3,
  num_labels: 5,
});
const runtime = new NodeRuntime({ threads: 1 });
after(() => runtime.release());

/** Products in the backward graph whose result has the shape of a weight: weight-gradient products. */
function weightGradientShapes(nodes: Node[], forward: Set<number>): string[] {
  return nodes
    .filter((n) => !forward.has(n.id) && (n.op === Op.Gemm || n.op === Op.MatMul))
    .filter((n) => n.op === Op.Gemm && (n.attrs as { transA: boolean }).transA)
    .map((n) => `[${n.outputs[0]!.shape.join(",")}]`);
}

describe("LoRA", () => {
  test("targets every default module of every layer and declares PEFT-named factors", () => {
    const model = buildVit(cfg, [loraAdapter({ rank: 4, alpha: 8 }).linear]);
    const loraNames = [...model.registry.specs.keys()].filter(isLoraParam);
    assert.equal(loraNames.length, 2 * 6 * cfg.num_hidden_layers);
    assert.ok(loraNames.includes("vit.encoder.layer.1.attention.attention.query.lora_A.weight"));
    assert.deepEqual(model.registry.specs.get("vit.encoder.layer.0.intermediate.dense.lora_B.weight")!.shape, [32, 4]);
    assert.equal(DEFAULT_LORA_TARGETS.length, 6);
  });

  test("a fresh adapter (B = 0) leaves the logits unchanged", async () => {
    const plain = buildVit(cfg);
    const adapted = buildVit(cfg, [loraAdapter({ rank: 4, alpha: 8 }).linear]);
    const rng = new Rng(1);
    const params = ParamStore.init(adapted.registry.specs.values(), rng);
    const px = Float32Array.from({ length: 2 * 3 * 8 * 8 }, () => rng.normal());
    const a = await (await EvalStep.create(runtime, plain, params, 2)).run(px);
    const b = await (await EvalStep.create(runtime, adapted, params, 2)).run(px);
    assert.deepEqual(Array.from(b.data as Float32Array), Array.from(a.data as Float32Array));
    // and a nonzero B does change them
    params.get("vit.encoder.layer.0.attention.attention.value.lora_B.weight").fill(0.5);
    const c = await (await EvalStep.create(runtime, adapted, params, 2)).run(px);
    assert.notDeepEqual(Array.from(c.data as Float32Array), Array.from(a.data as Float32Array));
  });

  test("frozen base weights get no weight-gradient products", () => {
    const model = buildVit(cfg, [loraAdapter({ rank: 4, alpha: 8 }).linear]);
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.crossEntropy(model.logits, labels);
    const forward = new Set(topoSort([loss]).map((n) => n.id));
    const reg = model.registry;
    const trainable = [...reg.specs.keys()].filter((n) => isLoraParam(n) || n.startsWith("classifier."));
    const grads = grad(
      loss,
      trainable.map((n) => reg.value(n)),
    );
    const loraShapes = weightGradientShapes(topoSort(grads), forward);
    // Every weight-gradient product has the shape of a trainable tensor (LoRA factors, stacked or
    // block-diagonal, and the classifier) — none has the shape of a frozen [out, in] weight.
    const frozenShapes = new Set(["[16,16]", "[32,16]", "[16,32]", "[48,16]"]);
    assert.ok(loraShapes.length > 0);
    for (const s of loraShapes) assert.ok(!frozenShapes.has(s), `unexpected weight-gradient product ${s}`);
    // The same inspection on full fine-tuning finds the frozen-shape products, so it can fail.
    const all = grad(
      loss,
      [...reg.specs.keys()].map((n) => reg.value(n)),
    );
    const fullShapes = weightGradientShapes(topoSort(all), forward);
    assert.ok(fullShapes.some((s) => frozenShapes.has(s)));
    // Nothing upstream of the first adapted layer is differentiated: no gradient reaches the patch embedding.
    const patchConv = reg.value("vit.embeddings.patch_embeddings.projection.weight");
    const gradNodes = topoSort(grads).filter((n) => !forward.has(n.id));
    assert.ok(!gradNodes.some((n) => n.inputs.some((v) => v === patchConv)));
  });
});
