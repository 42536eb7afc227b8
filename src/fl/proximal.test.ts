/**
 * The proximal term: its value and gradient μ·(w − w_global) by hand on a tiny registry, its gradient
 * through a whole model against finite differences, and μ = 0 adding nothing.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as g from "../graph/builder.js";
import { grad } from "../graph/autodiff/grad.js";
import { BATCH } from "../graph/shape.js";
import { parseVitConfig } from "../nn/config.js";
import { ParamRegistry } from "../nn/module.js";
import { buildVit } from "../nn/vit.js";
import { checkGrads } from "../runtime/gradcheck.js";
import { evaluate } from "../runtime/reference.js";
import type { HostTensor } from "../tensor.js";
import { Rng } from "../util/rng.js";
import { proxName, proximalTerm } from "./proximal.js";

describe("proximal term", () => {
  test("value μ/2·‖w − w₀‖² and gradient μ·(w − w₀), by hand", () => {
    const reg = new ParamRegistry("float64");
    const w = reg.param("w", [3], { kind: "zeros" });
    const term = proximalTerm(reg, ["w"], 0.5)!;
    assert.ok(reg.specs.get(proxName("w"))!.buffer);
    const [dw] = grad(term, [w]);
    const feeds: Record<string, HostTensor> = {
      w: { dtype: "float64", shape: [3], data: Float64Array.from([1, 2, 3]) },
      [proxName("w")]: { dtype: "float64", shape: [3], data: Float64Array.from([1, 0, 5]) },
    };
    const [value, gw] = evaluate([term, dw!], feeds).map((t) => Array.from(t.data as Float64Array));
    // ‖(0, 2, −2)‖² = 8 → 0.25·8 = 2; gradient 0.5·(0, 2, −2)
    assert.deepEqual(value, [2]);
    assert.deepEqual(gw, [0, 1, -1]);
  });

  test("μ = 0 adds no term; a negative μ is rejected", () => {
    const reg = new ParamRegistry("float64");
    reg.param("w", [2], { kind: "zeros" });
    assert.equal(proximalTerm(reg, ["w"], 0), undefined);
    assert.equal(reg.specs.has(proxName("w")), false);
    assert.throws(() => proximalTerm(reg, ["w"], -1), /mu must be a finite number >= 0, got -1/);
  });

  test("through a whole ViT, the gradient matches finite differences", () => {
    const cfg = parseVitConfig({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 12, image_size: 4, patch_size: 2, num_channels: 1, num_labels: 3 });
    const model = buildVit(cfg, [], { dtype: "float64" });
    const names = [...model.registry.paramNames()];
    const labels = g.input("labels", "int64", [BATCH]);
    const loss = g.add(g.crossEntropy(model.logits, labels), proximalTerm(model.registry, names, 0.7)!);
    const rng = new Rng(3);
    const feeds: Record<string, HostTensor> = {};
    for (const [name, spec] of model.registry.specs) {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      feeds[name] = { dtype: "float64", shape: [...spec.shape], data: Float64Array.from({ length: n }, () => 0.3 * rng.normal() + (name.endsWith("layernorm_before.weight") || name.endsWith("layernorm_after.weight") ? 1 : 0)) };
    }
    feeds["pixel_values"] = { dtype: "float64", shape: [2, 1, 4, 4], data: Float64Array.from({ length: 32 }, () => rng.normal()) };
    feeds["labels"] = { dtype: "int64", shape: [2], data: BigInt64Array.from([0n, 2n]) };
    checkGrads(
      loss,
      names.map((n) => model.registry.value(n)),
      feeds,
      { rtol: 1e-5 },
    );
  });
});
