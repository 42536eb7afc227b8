/**
 * Optimizers against values worked out by hand from the PyTorch update formulas
 * (torch.optim.AdamW / torch.optim.SGD) for two steps on a scalar parameter; parameter groups
 * against a separate optimizer running at the group's rate.
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

  test("a parameter group steps exactly as an optimizer at the group's rate; the others at lr", () => {
    for (const make of [(lr: number) => new AdamW({ lr, weightDecay: 0.01 }), (lr: number) => new Sgd({ lr, momentum: 0.9, weightDecay: 0.1 })]) {
      const values = () => new Map([["classifier.weight", new Float32Array([1, -2])], ["adapter.B", new Float32Array([0.5, 3])]]);
      const grads = [new Map([["classifier.weight", new Float32Array([0.5, 0.1])], ["adapter.B", new Float32Array([-1, 2])]]), new Map([["classifier.weight", new Float32Array([-0.3, 0.2])], ["adapter.B", new Float32Array([0.4, -0.7])]])];
      const grouped = values();
      const opt = make(0.01);
      opt.groups = [{ matches: (n) => n.startsWith("classifier."), lr: 0.003 }];
      const atGroupRate = values();
      const atLr = values();
      const [slow, fast] = [make(0.003), make(0.01)];
      for (const gr of grads) {
        opt.step(grouped, gr);
        slow.step(atGroupRate, gr);
        fast.step(atLr, gr);
      }
      assert.deepEqual(grouped.get("classifier.weight"), atGroupRate.get("classifier.weight"));
      assert.deepEqual(grouped.get("adapter.B"), atLr.get("adapter.B"));
      assert.notDeepEqual(grouped.get("classifier.weight"), atLr.get("classifier.weight"));
    }
  });

  test("bad settings and unknown parameters are rejected", () => {
    assert.throws(() => new AdamW({ lr: -1 }), /learning rate must be a finite number >= 0, got -1/);
    assert.throws(() => new Sgd({ lr: 0.1, momentum: 1 }), /momentum must be in \[0, 1\), got 1/);
    const opt = new Sgd({ lr: 0.1 });
    assert.throws(() => opt.step(new Map(), new Map([["nope", new Float32Array(1)]])), /gradient for unknown parameter "nope"/);
    opt.groups = [{ matches: () => true, lr: Number.NaN }];
    assert.throws(() => opt.step(new Map([["w", new Float32Array(1)]]), new Map([["w", new Float32Array(1)]])), /learning rate must be a finite number >= 0, got NaN/);
  });
});
