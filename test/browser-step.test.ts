/**
 * A training step in the browser equals the same step on onnxruntime-node: headless Chromium loads
 * the browser bundle (dist/web) from a loopback server, builds a small ViT with LoRA, and computes
 * the loss and the gradients of every trained tensor (LoRA factors and head) on seeded weights and
 * inputs with WebRuntime; Node runs the identical scenario code on NodeRuntime (1 thread). Compared
 * per tensor as max_i |web_i - node_i| / max(max_i |node_i|, 1e-12), required <= 1e-4; the loss as
 * |web - node| / max(|node|, 1e-12). Runs threaded in a cross-origin isolated page (asserting the
 * isolation and more than one onnxruntime-web thread) and single-threaded in a page that is not
 * isolated (asserting the fallback), plus three steps of the shared Trainer (AdamW) on each side,
 * whose losses must agree the same way. Skips, saying why, without /usr/bin/chromium.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Browser, BrowserSide, NodeSide, type Scenario, type WebServer, browserUnavailable, launchBrowser, startWebServer } from "./browser-harness.js";

interface StepSpec {
  readonly config: Record<string, unknown>;
  readonly adapter: Record<string, unknown>;
  readonly batch: number;
  readonly seed: number;
  readonly trainerSteps: number;
}

interface StepResult {
  readonly loss: number;
  readonly grads: Record<string, number[]>;
  readonly trainerLosses: number[];
}

/** Loss and gradients of one step, then `trainerSteps` steps of the shared Trainer; runs on either side. */
const stepScenario: Scenario<StepSpec, StepResult> = async (lib, runtime, spec) => {
  const config = lib.parseVitConfig(spec.config);
  const { model, adapter } = lib.buildAdaptedVit(config, lib.parseAdapterSpec(spec.adapter));
  const rng = new lib.Rng(spec.seed);
  const store = lib.ParamStore.init(model.registry.specs.values(), rng);
  const trainable = lib.adapterTrainable(adapter);
  // LoRA's up factor starts at zero, which would zero the down factor's gradient: draw every trained tensor.
  for (const name of store.names()) {
    if (!trainable(name)) continue;
    const v = store.get(name);
    for (let i = 0; i < v.length; i++) v[i] = 0.2 * rng.normal();
  }
  const c = config;
  const pixels = Float32Array.from({ length: spec.batch * c.num_channels * c.image_size * c.image_size }, () => rng.normal());
  const labels = BigInt64Array.from({ length: spec.batch }, () => BigInt(rng.int(c.num_labels)));
  const step = await lib.TrainStep.create(runtime, model, store, { batch: spec.batch, trainable });
  const { loss, grads } = await step.run(pixels, labels);
  const out: Record<string, number[]> = {};
  for (const [name, g] of grads) out[name] = Array.from(g);
  const trainer = await lib.Trainer.create(runtime, model, store, {
    trainable,
    batch: spec.batch,
    optimizer: new lib.AdamW({ lr: 0.01, weightDecay: 0.01 }),
    adapter,
  });
  const trainerLosses: number[] = [];
  for (let s = 0; s < spec.trainerSteps; s++) trainerLosses.push(await trainer.train({ pixels, labels, size: spec.batch }));
  return { loss, grads: out, trainerLosses };
};

const SPEC: StepSpec = {
  config: { hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, image_size: 16, patch_size: 4, num_channels: 3, num_labels: 5, layer_norm_eps: 1e-6 },
  adapter: { kind: "lora", rank: 4 },
  batch: 8,
  seed: 7,
  trainerSteps: 3,
};
const TOLERANCE = 1e-4;
const EPS = 1e-12;

const maxAbs = (xs: readonly number[]) => xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
/** max_i |a_i - b_i| / max(max_i |b_i|, EPS), with b the onnxruntime-node values. */
function relDiff(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d / Math.max(maxAbs(b), EPS);
}

/** Every tensor within tolerance; returns the largest relative difference, naming the worst tensor. */
function compare(web: StepResult, node: StepResult, what: string): { max: number; worst: string } {
  assert.ok(Number.isFinite(node.loss) && node.loss > 0, `node loss ${node.loss}`);
  const names = Object.keys(node.grads).sort();
  assert.deepEqual(Object.keys(web.grads).sort(), names, `${what}: the same trained tensors`);
  assert.ok(names.some((n) => n.includes("lora")) && names.some((n) => n.startsWith("classifier.")), `trained tensors: ${names.join(", ")}`);
  const rows: [string, number][] = [["loss", relDiff([web.loss], [node.loss])]];
  for (const n of names) {
    assert.ok(maxAbs(node.grads[n]!) > 0, `${n}: the node gradient is all zero, so comparing it would prove nothing`);
    rows.push([`grad:${n}`, relDiff(web.grads[n]!, node.grads[n]!)]);
  }
  web.trainerLosses.forEach((l, i) => {
    rows.push([`trainer loss ${i + 1}`, relDiff([l], [node.trainerLosses[i]!])]);
  });
  assert.equal(web.trainerLosses.length, SPEC.trainerSteps);
  const bad = rows.filter(([, r]) => !(r <= TOLERANCE));
  assert.equal(bad.length, 0, `${what}: relative differences above ${TOLERANCE}:\n${bad.map(([n, r]) => `  ${n}: ${r.toExponential(2)}`).join("\n")}`);
  const [worst, max] = rows.reduce((a, b) => (b[1] > a[1] ? b : a));
  return { max, worst };
}

const unavailable = browserUnavailable();

describe("a training step in headless Chromium (onnxruntime-web) equals onnxruntime-node", { timeout: 120_000 }, () => {
  let server: WebServer | undefined;
  let browser: Browser | undefined;
  let nodeResult: StepResult;

  before(async () => {
    if (unavailable) return;
    const node = new NodeSide("onnxruntime-node, 1 thread", 1);
    try {
      nodeResult = await node.call(stepScenario, SPEC);
    } finally {
      await node.release();
    }
    server = await startWebServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test("cross-origin isolated page: WebAssembly with threads", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const side = await BrowserSide.open(browser!, server!, { isolated: true });
    try {
      const web = await side.call(stepScenario, SPEC);
      const report = await side.report();
      assert.equal(report.crossOriginIsolated, true, "the page served with COOP/COEP is cross-origin isolated");
      assert.ok(report.info, "the runtime reports what it ran on");
      assert.equal(report.info.executionProvider, "wasm");
      assert.equal(report.info.build, "wasm", "WebAssembly alone loads the WebAssembly-only build");
      assert.equal(report.info.threads, report.hardwareConcurrency, "onnxruntime-web runs navigator.hardwareConcurrency threads");
      assert.ok(report.info.threads > 1, `expected more than one thread, got ${report.info.threads} (hardwareConcurrency ${report.hardwareConcurrency})`);
      const { max, worst } = compare(web, nodeResult, "threaded");
      t.diagnostic(`threaded (${report.info.threads} threads): max relative difference ${max.toExponential(2)} (${worst})`);
      assert.deepEqual(side.errors, []);
      // onnxruntime-web's settings are page-wide: a second runtime that wants others is refused, not ignored.
      const refused = await side.page.evaluate(async () => {
        const s = (globalThis as unknown as Record<string, { lib: typeof import("../src/web/index.js") }>)["__safl"]!;
        const g = s.lib.graph;
        try {
          await new s.lib.WebRuntime({ threads: 1 }).compile({ y: g.exp(g.input("x", "float32", [1])) });
          return "compiled";
        } catch (e) {
          return (e as Error).message;
        }
      });
      assert.ok(refused.includes(`already runs in this page (wasm build, ${report.info.threads} thread(s)`), refused);
      const elsewhere = side.requests.filter((u) => !u.startsWith(`${server!.origin}/`) && !/^(blob|data):/.test(u));
      assert.deepEqual(elsewhere, [], "every request went to the loopback server");
    } finally {
      await side.release();
    }
  });

  test("page without cross-origin isolation: one thread", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const side = await BrowserSide.open(browser!, server!, { isolated: false, runtime: { threads: 4 } });
    try {
      const web = await side.call(stepScenario, SPEC);
      const report = await side.report();
      assert.equal(report.crossOriginIsolated, false);
      assert.equal(report.runtimeThreads, 1, "a page without isolation runs one thread even when more are asked for");
      assert.equal(report.info?.threads, 1);
      const { max, worst } = compare(web, nodeResult, "single-threaded");
      t.diagnostic(`single-threaded: max relative difference ${max.toExponential(2)} (${worst})`);
    } finally {
      await side.release();
    }
  });

  test("WebGPU asked for, none available (--disable-gpu): falls back to WebAssembly", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const side = await BrowserSide.open(browser!, server!, { isolated: true, runtime: { executionProviders: ["webgpu", "wasm"], threads: 1 } });
    try {
      const web = await side.call(stepScenario, SPEC);
      const report = await side.report();
      assert.equal(report.info?.executionProvider, "wasm");
      assert.equal(report.info?.build, "wasm", "without an adapter the WebGPU-capable build is not loaded");
      assert.match(report.info?.webgpuFallback ?? "", /WebGPU|adapter/, "the fallback says why");
      const { max } = compare(web, nodeResult, "webgpu fallback");
      t.diagnostic(`webgpu fallback (${report.info?.webgpuFallback}): max relative difference ${max.toExponential(2)}`);
    } finally {
      await side.release();
    }
  });

  test("the JSEP build (the one WebGPU needs) on its WebAssembly provider", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const side = await BrowserSide.open(browser!, server!, { isolated: true, runtime: { build: "jsep", threads: 1 } });
    try {
      const web = await side.call(stepScenario, SPEC);
      const report = await side.report();
      assert.equal(report.info?.build, "jsep");
      assert.equal(report.info?.executionProvider, "wasm");
      const { max, worst } = compare(web, nodeResult, "jsep build");
      t.diagnostic(`jsep build, 1 thread: max relative difference ${max.toExponential(2)} (${worst})`);
    } finally {
      await side.release();
    }
  });

  test("both builds' onnxruntime files were loaded from dist/web/ort on the loopback server", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const files = new Set(server!.served.map((p) => p.replace(/^\/(coi|plain)\//, "")));
    for (const f of ["ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.jsep.wasm", "ort-wasm-simd-threaded.jsep.mjs"]) {
      assert.ok(files.has(`ort/${f}`), `ort/${f} was not requested; requested: ${[...files].join(", ")}`);
    }
  });
});
