/**
 * Optimizers against values worked out by hand from the PyTorch update formulas
 * (torch.optim.AdamW / torch.optim.SGD) for two steps on a scalar parameter.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AdamW, Sgd } from "./optim.js";

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

describe("optimizers", () => {
  test("AdamW: decoupled weight decay and bias-corrected moments", () => {
    const p = new Map([["w", new Float32Array([1])]]);
    const opt = new AdamW({ lr: 0.1, weightDecay: 0.01 });
    opt.step(p, new Map([["w", new Float32Array([0.5])]]));
    // p·(1 − lr·wd) − lr·m̂/(√v̂ + eps) = 0.999 − 0.1·0.5/0.5
    close(p.get("w")![0]!, 0.899000002);
    opt.step(p, new Map([["w", new Float32Array([-1])]]));
    close(p.get("w")![0]!, 0.9347113542385653);
  });

  test("SGD with momentum and L2 weight decay", () => {
    const p = new Map([["w", new Float32Array([1])]]);
    const opt = new Sgd({ lr: 0.1, momentum: 0.9, weightDecay: 0.1 });
    opt.step(p, new Map([["w", new Float32Array([0.5])]]));
    close(p.get("w")![0]!, 0.94);
    opt.step(p, new Map([["w", new Float32Array([-1])]]));
    close(p.get("w")![0]!, 0.9766);
  });

  test("bad settings and unknown parameters are rejected", () => {
    assert.throws(() => new AdamW({ lr: -1 }), /learning rate must be a finite number >= 0, got -1/);
    assert.throws(() => new Sgd({ lr: 0.1, momentum: 1 }), /momentum must be in \[0, 1\), got 1/);
    const opt = new Sgd({ lr: 0.1 });
    assert.throws(() => opt.step(new Map(), new Map([["nope", new Float32Array(1)]])), /gradient for unknown parameter "nope"/);
  });
});
