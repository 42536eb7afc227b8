#!/usr/bin/env node
// Consumer test: installs the package the way a user would and uses it from outside the repository.
//
//   1. packs the working tree (tracked and untracked-but-not-ignored files, copied to a temporary
//      staging directory so a stale or concurrently rebuilt dist/ cannot leak into the tarball; its
//      `prepare` script compiles a fresh dist/) and checks the tarball's file list;
//   2. creates a fresh project and `npm install`s the tarball with the repository's TypeScript and
//      @types/node (from the registry or the npm cache; onnxruntime-node's CUDA download denied as
//      the README says, so it works offline after `npm ci`);
//   3. (a) `npx safl simulate` (8 FedAvg rounds on a subset) must write 8 round records,
//      (b) an ESM script importing "sa-fedlora" and its subpaths trains a tiny ViT with LoRA (the
//          loss must be finite and fall), runs a strategy round's encoding and a small in-process
//          simulation on the shipped backbone,
//      (c) `tsc --noEmit` (NodeNext, strict, no skipLibCheck) type-checks a consumer .ts file and
//          the README's TypeScript example.
//
// Usage: node scripts/consumer-test.mjs (npm run test:consumer). Temporary directories are removed
// at the end; set SAFL_CONSUMER_KEEP=1 to keep them for inspection.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../", import.meta.url));
const repoPkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
const keep = process.env["SAFL_CONSUMER_KEEP"] === "1";
const ROUNDS = 8;
const STEP_TIMEOUT_S = 600;

const tmp = mkdtempSync(join(tmpdir(), "safl-consumer-"));
const cleanup = () => {
  if (keep) console.log(`consumer: kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
};
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

class StepError extends Error {}
const fail = (message) => {
  throw new StepError(message);
};

// Child processes get the user's environment minus what an enclosing `npm run` says about this
// repository (so nested npm commands see the temporary project, not the repo), plus the switch
// that makes onnxruntime-node's install script skip its CUDA download, for npm versions that do
// not honour the consumer project's `allowScripts` (without internet the download fails the install).
const childEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm_package_|npm_lifecycle_|npm_config_local_prefix$|npm_command$|INIT_CWD$)/i.test(k)),
);
childEnv["ONNXRUNTIME_NODE_INSTALL"] = "skip";

const tail = (text, lines = 40) => text.trimEnd().split("\n").slice(-lines).join("\n");

/** Runs a command; resolves with its output, rejects with a StepError carrying the output's tail. */
function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), STEP_TIMEOUT_S * 1000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new StepError(`cannot run ${cmd}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else {
        const why = signal ? `was killed (${signal}${signal === "SIGKILL" ? `, over ${STEP_TIMEOUT_S} s?` : ""})` : `exited with ${code}`;
        const out = [stdout && `--- stdout (tail)\n${tail(stdout)}`, stderr && `--- stderr (tail)\n${tail(stderr)}`].filter(Boolean).join("\n");
        reject(new StepError(`\`${[cmd, ...args].join(" ")}\` in ${opts.cwd} ${why}\n${out}`));
      }
    });
  });
}

const timings = [];
async function step(name, fn) {
  const t0 = performance.now();
  process.stdout.write(`consumer: ${name} ... `);
  try {
    const result = await fn();
    const s = (performance.now() - t0) / 1000;
    timings.push([name, s]);
    console.log(`ok (${s.toFixed(1)} s)`);
    return result;
  } catch (e) {
    console.log("FAILED");
    throw e instanceof StepError ? new StepError(`${name}: ${e.message}`) : e;
  }
}

/** The files of the working tree: tracked (still present) and untracked-but-not-ignored. */
function workingTreeFiles() {
  const git = spawnSync("git", ["-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { encoding: "utf8" });
  if (git.status === 0) return [...new Set(git.stdout.split("\0").filter(Boolean))].filter((f) => existsSync(join(repo, f)) && statSync(join(repo, f)).isFile());
  // Not a git checkout: everything but what is built, installed or produced.
  const skip = new Set([".git", "node_modules", "dist", "runs", ".bench"]);
  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(join(repo, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!skip.has(rel)) walk(rel);
      } else if (e.isFile()) files.push(rel);
    }
  };
  walk("");
  return files;
}

/** What the tarball must hold and must not. */
function checkTarballFiles(files) {
  const set = new Set(files);
  const problems = [];
  const forbidden = [
    [/^(test|bench|scripts|docs|src|\.ci)\//, "a repository folder that is not shipped"],
    [/^dist\/(?!src\/|web\/)/, "built output outside dist/src and dist/web (tests, benches, build info)"],
    [/\.test\.[^/]*$/, "a compiled test"],
    [/(^|\/)fixtures?\//, "a test fixture"],
    [/\.ts$/, "a TypeScript source"],
    [/(^|\/)(node_modules|runs)\//, "installed or produced files"],
  ];
  for (const f of files) {
    if (f.endsWith(".d.ts")) continue;
    for (const [re, what] of forbidden) if (re.test(f)) problems.push(`ships ${f} (${what})`);
  }
  for (const f of files) if (f.endsWith(".d.ts") && (/\.test\.d\.ts$/.test(f) || !f.startsWith("dist/src/"))) problems.push(`ships ${f} (declarations of a test or outside dist/src)`);
  const targets = [];
  const collect = (v) => (typeof v === "string" ? targets.push(v) : v && typeof v === "object" && Object.values(v).forEach(collect));
  collect(repoPkg.exports);
  targets.push(repoPkg.main, repoPkg.types, ...Object.values(repoPkg.bin ?? {}));
  const required = [
    ...targets.map((t) => t.replace(/^\.\//, "")),
    "package.json",
    "README.md",
    "dist/src/cli/main.js",
    "dist/src/sim/worker-entry.js",
    "models/vit-micro-mnist-0-4/config.json",
    "models/vit-micro-mnist-0-4/model.safetensors",
    "studies/fashion-mnist.json",
  ];
  for (const r of new Set(required)) if (!set.has(r)) problems.push(`lacks ${r}`);
  if (problems.length > 0) fail(`the tarball's file list is wrong:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
}

/** The version of a repo dev dependency as installed (an npm-cache hit), else its declared range. */
function devVersion(name) {
  const installed = join(repo, "node_modules", name, "package.json");
  return existsSync(installed) ? JSON.parse(readFileSync(installed, "utf8")).version : repoPkg.devDependencies[name];
}

// (b): the library from plain JavaScript, through the root entry and the subpaths.
const TRAIN_MJS = `
import { createRequire } from "node:module";
import { realpathSync } from "node:fs";
import { AdamW, ParamStore, Rng, SaflError, Trainer, adapterTrainable, buildAdaptedVit, defaultBackboneDir, parseAdapterSpec, parseRunConfig, parseVitConfig, simulate } from "sa-fedlora";
import { STRATEGY_NAMES, createStrategy, encodeMessage, strategySpecSchema } from "sa-fedlora/fl";
import * as graph from "sa-fedlora/graph";
import { buildVit } from "sa-fedlora/nn";
import { mergeAdapter } from "sa-fedlora/peft";
import { loadCheckpoint } from "sa-fedlora/io";
import { NodeRuntime } from "sa-fedlora/node";

const check = (ok, message) => {
  if (!ok) {
    console.error("consumer script: " + message);
    process.exit(1);
  }
};
const pkg = createRequire(import.meta.url)("sa-fedlora/package.json");
check(pkg.name === "sa-fedlora", "sa-fedlora/package.json did not resolve");
check(typeof graph.grad === "function" && graph.BATCH !== undefined, "sa-fedlora/graph lacks grad or BATCH");

// The default backbone is found inside the installed package.
const installed = realpathSync(new URL("./node_modules/sa-fedlora/", import.meta.url));
check(realpathSync(defaultBackboneDir()).startsWith(installed), "defaultBackboneDir() " + defaultBackboneDir() + " is outside " + installed);
const backbone = await loadCheckpoint(defaultBackboneDir());
check(backbone.params.count() > 100000, "the shipped backbone has only " + backbone.params.count() + " parameters");

// A tiny ViT with a LoRA adapter, trained on one fixed random batch: the loss must fall.
const config = parseVitConfig({ hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, image_size: 8, patch_size: 4, num_channels: 1, num_labels: 3 });
const spec = parseAdapterSpec({ kind: "lora", rank: 4 });
const { model, adapter } = buildAdaptedVit(config, spec);
const rng = new Rng(0);
const store = ParamStore.init(model.registry.specs.values(), rng);
const runtime = new NodeRuntime({ threads: 1 });
const batch = 8;
const trainer = await Trainer.create(runtime, model, store, { trainable: adapterTrainable(adapter), batch, optimizer: new AdamW({ lr: 0.05, weightDecay: 0 }), adapter });
const pixels = Float32Array.from({ length: batch * 64 }, () => rng.normal());
const labels = BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % 3));
const losses = [];
for (let s = 0; s < 15; s++) losses.push(await trainer.train({ pixels, labels, size: batch }));
check(losses.every(Number.isFinite), "a training loss is not finite: " + losses.join(", "));
check(losses.at(-1) < losses[0], "the loss did not fall: " + losses.map((l) => l.toFixed(4)).join(", "));
const merged = mergeAdapter(store, adapter);
check(merged.names().every((n) => buildVit(config).registry.specs.has(n)), "the merged store has non-ViT parameters");
console.log("train: loss " + losses[0].toFixed(4) + " -> " + losses.at(-1).toFixed(4) + " in " + losses.length + " LoRA steps");

// A strategy from sa-fedlora/fl configures a round; its messages encode.
check(STRATEGY_NAMES.includes("sa-fedlora"), "STRATEGY_NAMES lacks sa-fedlora");
const training = { optimizer: "adamw", lr: 0.003, weightDecay: 0, localEpochs: 1, localSteps: 0, batch };
const strategy = createStrategy(strategySpecSchema.parse({ name: "fedlora" }), { config, initial: store, training: { full: training, adapter: () => training }, rounds: 2, seed: 0 });
const plan = strategy.configureTrain(1, ["a", "b"]);
const bytes = plan.messages.map((m) => encodeMessage(m).length);
check(bytes.length === 2 && bytes.every((b) => b > 0), "fedlora round 1 did not encode two messages");
console.log("fl: " + strategy.name + " round 1 sends " + bytes.join(" + ") + " bytes");

// An in-process simulation on the shipped backbone through the library API.
const cfg = parseRunConfig({ rounds: 2, strategy: { name: "fedlora" }, clients: { count: 4, perRound: 2 }, data: { classes: "5-9", trainLimit: 200 }, execution: { workers: 0, threads: 1 } });
const result = await simulate(cfg, runtime);
check(result.records.length === 2 && Number.isFinite(result.summary.finalAccuracy), "simulate() returned " + result.records.length + " records");
console.log("sim: 2 fedlora rounds, test accuracy " + (100 * result.summary.finalAccuracy).toFixed(2) + "%");

try {
  parseRunConfig({ rounds: 0 });
  check(false, "parseRunConfig accepted rounds: 0");
} catch (e) {
  check(e instanceof SaflError, "an invalid run config threw " + e + ", not a SaflError");
}
`;

// (c): the public types from strict TypeScript.
const CONSUMER_TS = `
import { type AdapterSpec, type Grid, type GridReply, type GridRequest, type RoundRecord, type RunConfig, type Runtime, SaflError, type VitConfig, parseRunConfig, parseVitConfig } from "sa-fedlora";
import { type Failure, type Strategy, type StrategySpec, runRounds } from "sa-fedlora/fl";
import * as g from "sa-fedlora/graph";
import { ParamStore, type VitGraph, buildVit } from "sa-fedlora/nn";
import { buildAdaptedVit, parseAdapterSpec } from "sa-fedlora/peft";
import { type Checkpoint, loadCheckpoint } from "sa-fedlora/io";
import { InMemoryGrid, simulate } from "sa-fedlora/sim";
import { NodeRuntime } from "sa-fedlora/node";

const config: VitConfig = parseVitConfig({ hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, image_size: 8, patch_size: 4, num_labels: 3 });
const spec: AdapterSpec = parseAdapterSpec({ kind: "adalora", initRank: 6, targetRank: 2 });
const model: VitGraph = buildAdaptedVit(config, spec).model;
const logits: g.Value = model.logits;
const loss: g.Value = g.mean(g.square(logits));
const [dx] = g.grad(loss, [model.pixelValues]);
const cfg: RunConfig = parseRunConfig({ rounds: 3 });
const rounds: number = cfg.rounds;
// @ts-expect-error a run config's rounds is a number (this fails if the types degrade to any)
const wrong: string = cfg.rounds;
const runtime: Runtime = new NodeRuntime({ threads: 1 });

// A user's own transport: every client is unreachable.
class UnreachableGrid implements Grid {
  async clientIds(): Promise<readonly string[]> {
    return ["a"];
  }
  async send(requests: readonly GridRequest[]): Promise<GridReply[]> {
    const failure: Failure = { code: "unavailable", message: "no route" };
    return requests.map((r) => ({ clientId: r.clientId, failure }));
  }
  async close(): Promise<void> {}
}

async function main(strategy: Strategy, spec2: StrategySpec): Promise<readonly RoundRecord[]> {
  const ckpt: Checkpoint = await loadCheckpoint("somewhere");
  const store: ParamStore = ckpt.params;
  const grid: Grid = new UnreachableGrid();
  const memory: typeof InMemoryGrid = InMemoryGrid;
  const result = await simulate(cfg, runtime);
  const acc: number | undefined = result.summary.finalAccuracy;
  void [store, memory, acc, spec2, dx, rounds, wrong, buildVit];
  return runRounds(strategy, grid, { rounds: 1, clientsPerRound: 1, seed: 0, dtype: "float16", evalEvery: 0, clientEvalEvery: 0, training: { optimizer: "sgd", lr: 0.1, weightDecay: 0, localEpochs: 1, localSteps: 0, batch: 4 } });
}

export function describe(e: unknown): string {
  return e instanceof SaflError ? e.code + ": " + e.rawMessage : String(e);
}
void main;
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    lib: ["ES2022"],
    module: "NodeNext",
    moduleResolution: "NodeNext",
    types: ["node"],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    verbatimModuleSyntax: true,
  },
  files: ["consumer.ts", "readme-example.ts"],
};

/** The TypeScript example of README.md's "As a package" section, so the README cannot rot. */
function readmeExample() {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const section = readme.split(/^## /m).find((s) => s.startsWith("As a package"));
  const code = section?.match(/```ts\n([\s\S]*?)```/)?.[1];
  if (!code) fail("README.md has no ```ts block in its \"As a package\" section");
  return `${code}export {};\n`;
}

async function main() {
  const started = performance.now();
  const stage = join(tmp, "package");
  const packs = join(tmp, "packs");
  const consumer = join(tmp, "consumer");

  const tarball = await step("pack: npm pack of a fresh build of the working tree", async () => {
    for (const f of workingTreeFiles()) {
      mkdirSync(dirname(join(stage, f)), { recursive: true });
      cpSync(join(repo, f), join(stage, f));
    }
    if (!existsSync(join(repo, "node_modules", "typescript"))) fail(`${join(repo, "node_modules")} lacks typescript: run npm ci first`);
    symlinkSync(join(repo, "node_modules"), join(stage, "node_modules"), "dir");
    mkdirSync(packs);
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", packs], { cwd: stage });
    const start = stdout.search(/^\[/m);
    let info;
    try {
      info = JSON.parse(stdout.slice(start))[0];
    } catch {
      fail(`cannot read npm pack's JSON output:\n${tail(stdout)}`);
    }
    checkTarballFiles(info.files.map((f) => f.path));
    console.log(`\n  ${info.filename}: ${info.files.length} files, ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked`);
    return join(packs, info.filename);
  });
  rmSync(stage, { recursive: true, force: true });

  await step("install: npm install into a fresh project", async () => {
    mkdirSync(consumer);
    await run("npm", ["init", "-y"], { cwd: consumer });
    const pkgPath = join(consumer, "package.json");
    const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
    // The README's recipe for npm >= 11: deny onnxruntime-node's CUDA download before installing.
    // (npm also lists sa-fedlora's `prepare` as unreviewed, because a tarball is a non-registry
    // source; it does not run for a tarball, and a registry install does not list it.)
    const allowScripts = { "onnxruntime-node": false };
    writeFileSync(pkgPath, JSON.stringify({ ...pkg, name: "safl-consumer", private: true, type: "module", allowScripts }, null, 2));
    const deps = [tarball, `typescript@${devVersion("typescript")}`, `@types/node@${devVersion("@types/node")}`];
    const { stderr } = await run("npm", ["install", ...deps, "--prefer-offline", "--no-audit", "--no-fund"], { cwd: consumer });
    // A user sees these; the set-up is meant to be quiet, so show them.
    const warnings = stderr.split("\n").filter((l) => /^npm (warn|notice)/i.test(l));
    if (warnings.length > 0) console.log(`\n${warnings.map((l) => `  ${l}`).join("\n")}`);
    const installedModels = join(consumer, "node_modules", "sa-fedlora", "models", "vit-micro-mnist-0-4", "model.safetensors");
    if (!existsSync(installedModels)) fail(`the installed package lacks ${relative(consumer, installedModels)}`);
  });

  await step(`simulate: (a) npx safl simulate, ${ROUNDS} FedAvg rounds`, async () => {
    const out = join(tmp, "run");
    // data.classes is repeated because a --set under data replaces the default data block (MNIST 5-9).
    const args = ["--no", "--", "safl", "simulate", "--set", `rounds=${ROUNDS}`, "--set", "strategy.name=fedavg", "--set", "data.classes=5-9", "--set", "data.trainLimit=800", "--out", out];
    await run("npx", args, { cwd: consumer });
    const metrics = join(out, "metrics.jsonl");
    if (!existsSync(metrics)) fail(`${metrics} was not written`);
    const lines = readFileSync(metrics, "utf8").split("\n").filter((l) => l.trim() !== "");
    if (lines.length !== ROUNDS) fail(`metrics.jsonl has ${lines.length} records, expected ${ROUNDS}`);
    lines.forEach((l, i) => {
      const r = JSON.parse(l);
      if (r.round !== i + 1 || !Number.isFinite(r.testAccuracy)) fail(`metrics.jsonl record ${i + 1} is ${l.slice(0, 200)}`);
    });
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    console.log(`\n  final test accuracy ${(100 * summary.finalAccuracy).toFixed(2)}% after ${summary.rounds} rounds`);
  });

  await step("script: (b) an ESM script on the public API", async () => {
    writeFileSync(join(consumer, "train.mjs"), TRAIN_MJS);
    const { stdout } = await run(process.execPath, ["train.mjs"], { cwd: consumer });
    console.log(`\n${stdout.trimEnd().replace(/^/gm, "  ")}`);
  });

  await step("types: (c) tsc --noEmit on a strict NodeNext consumer", async () => {
    writeFileSync(join(consumer, "consumer.ts"), CONSUMER_TS);
    writeFileSync(join(consumer, "readme-example.ts"), readmeExample());
    writeFileSync(join(consumer, "tsconfig.json"), JSON.stringify(CONSUMER_TSCONFIG, null, 2));
    await run("npx", ["--no", "--", "tsc", "-p", "tsconfig.json"], { cwd: consumer });
  });

  console.log(`consumer: passed in ${((performance.now() - started) / 1000).toFixed(1)} s (${timings.map(([n, s]) => `${n.split(":")[0]} ${s.toFixed(1)} s`).join(", ")})`);
}

try {
  await main();
  cleanup();
} catch (e) {
  console.error(`\nconsumer test failed: ${e instanceof StepError ? e.message : (e?.stack ?? e)}`);
  if (!keep) console.error("(set SAFL_CONSUMER_KEEP=1 to keep the temporary project for inspection)");
  cleanup();
  process.exitCode = 1;
}
