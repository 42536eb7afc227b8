/** Bad adapter settings fail with one message naming the field and value. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseVitConfig } from "../nn/config.js";
import { buildAdaptedVit } from "./model.js";
import { parseAdapterSpec } from "./registry.js";

const cfg = parseVitConfig({
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 12,
  image_size: 4,
  patch_size: 2,
  num_channels: 1,
  num_labels: 3,
});

describe("adapter validation", () => {
  test("a target pattern that matches no module is named", () => {
    assert.throws(
      () => buildAdaptedVit(cfg, parseAdapterSpec({ kind: "lora", targetModules: ["query", "q_proj"] })),
      /target_modules "q_proj" matches no Linear layer.*"attention\.attention\.query"/s,
    );
  });

  test("a rank above a layer's dimensions is named with the layer", () => {
    assert.throws(
      () => buildAdaptedVit(cfg, parseAdapterSpec({ kind: "lora", rank: 9 })),
      /lora rank 9 exceeds the dimensions of "vit\.encoder\.layer\.0\.attention\.attention\.query" \(out 8 x in 8\); expected at most 8/,
    );
    assert.throws(() => buildAdaptedVit(cfg, parseAdapterSpec({ kind: "adalora", initRank: 10, targetRank: 2 })), /adalora initRank 10 exceeds/);
  });

  test("target rank above initial rank, unknown keys and wrong types are all reported at once", () => {
    assert.throws(() => parseAdapterSpec({ kind: "adalora", initRank: 4, targetRank: 6 }), /targetRank: targetRank 6 is above initRank 4.*\(got 6\)/s);
    const err = (() => {
      try {
        parseAdapterSpec({ kind: "lora", rank: 0, alpah: 3 });
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })();
    assert.match(err, /rank: .*\(got 0\)/);
    assert.match(err, /"alpah"/);
    assert.throws(() => parseAdapterSpec({ kind: "dora" }), /kind/);
  });

  test("defaults: LoRA alpha = 2·rank, AdaLoRA follows PEFT (12 → 8, β 0.85, orth 0.5)", () => {
    const l = parseAdapterSpec({ kind: "lora", rank: 4 });
    assert.equal(l.kind === "lora" && l.alpha, 8);
    const a = parseAdapterSpec({ kind: "adalora" });
    assert.ok(a.kind === "adalora");
    assert.deepEqual([a.initRank, a.targetRank, a.beta1, a.beta2, a.orthWeight, a.orthNorm, a.alpha], [12, 8, 0.85, 0.85, 0.5, "frobenius", 12]);
  });
});
