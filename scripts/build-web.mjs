#!/usr/bin/env node
// Builds the browser bundle (docs/browser.md): esbuild bundles src/web/index.ts with everything it
// imports into minified ES modules with source maps in dist/web/: the entry sa-fedlora-web.js, and
// under chunks/ the two onnxruntime-web builds the runtime imports lazily (web/runtime.ts loads one
// per page: the WebAssembly-only build, or the JSEP build when WebGPU is asked for and present). It
// then copies the files those builds load at run time (each one's WebAssembly binary and the
// Emscripten loader that also starts the worker threads) into dist/web/ort/. Run by `npm run
// build`, `npm test` and `prepare`, after tsc. Fails if the bundle would reach a node:* module or
// onnxruntime-node.
//
// onnxruntime-web is a devDependency, not a dependency: the bundle and the files in dist/web/ort/
// are all a browser needs, and they ship in the package (`files` lists dist/web), so an installed
// sa-fedlora never loads onnxruntime-web from node_modules; as a dependency it would put another
// ~140 MB into every Node install for nothing. The types of sa-fedlora/web (dist/src/web/*.d.ts)
// name no onnxruntime-web type, so they check without it too.
//
// The builds are resolved with the "onnxruntime-web-use-extern-wasm" condition, which keeps the
// Emscripten loader out of the bundle (as ort/*.mjs, loaded from the runtime's wasmPaths): that
// loader spawns the threads as module workers of its own URL, so the workers load only it, not the
// whole bundle.
//
// Pages (the `--ui` dashboard, the join page): each src/web/pages/<name>.ts becomes dist/web/<name>.js
// beside a copy of src/web/pages/<name>.html. A page imports the library as "../index.js" in its
// source (so tsc checks it against the real API); in the bundle that import is left to the browser as
// "./sa-fedlora-web.js", the entry built above, so a page does not carry a second copy of the runtime
// and the runtime keeps finding ort/ beside its own module. Pages are type-checked with the DOM types
// by tsconfig.pages.json (the main tsconfig has no DOM and excludes them).
//
//   node scripts/build-web.mjs
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("../", import.meta.url));
const out = join(root, "dist", "web");
const require = createRequire(import.meta.url);
const ortDist = dirname(require.resolve("onnxruntime-web/ort-wasm-simd-threaded.wasm"));
/** The run-time files of the "wasm" build (onnxruntime-web/wasm) and of the "jsep" build (onnxruntime-web). */
const ORT_FILES = ["ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm"];

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "ort"), { recursive: true });

const result = await build({
  entryPoints: { "sa-fedlora-web": join(root, "src", "web", "index.ts") },
  outdir: out,
  bundle: true,
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  conditions: ["onnxruntime-web-use-extern-wasm"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
});

const inputs = Object.keys(result.metafile.inputs);
const platform = inputs.filter((p) => p.startsWith("node:") || p.includes("onnxruntime-node"));
if (platform.length > 0) {
  console.error(`build-web: the bundle reaches Node-only modules:\n${platform.map((p) => `  - ${p}`).join("\n")}`);
  process.exit(1);
}

// The runtime finds ort/ from its own module's URL, so its code must be in the entry file, not a chunk.
if (!readFileSync(join(out, "sa-fedlora-web.js"), "utf8").includes('"./ort/"')) {
  console.error("build-web: the runtime's default wasmPaths (./ort/ beside the module) is not in sa-fedlora-web.js; esbuild moved it into a chunk");
  process.exit(1);
}

for (const f of ORT_FILES) copyFileSync(join(ortDist, f), join(out, "ort", f));

// ---- pages ----
const pagesDir = join(root, "src", "web", "pages");
const pages = existsSync(pagesDir) ? readdirSync(pagesDir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && existsSync(join(pagesDir, f.replace(/\.ts$/, ".html")))).map((f) => f.replace(/\.ts$/, "")) : [];
if (pages.length > 0) {
  try {
    execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.pages.json")], { stdio: "inherit" });
  } catch {
    console.error("build-web: the pages do not type-check (tsconfig.pages.json)");
    process.exit(1);
  }
  const libraryAsExternal = {
    name: "library-as-external",
    setup(b) {
      b.onResolve({ filter: /^\.\.\/index\.js$/ }, () => ({ path: "./sa-fedlora-web.js", external: true }));
    },
  };
  const pageResult = await build({
    entryPoints: Object.fromEntries(pages.map((n) => [n, join(pagesDir, `${n}.ts`)])),
    outdir: out,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify: true,
    sourcemap: true,
    metafile: true,
    logLevel: "warning",
    plugins: [libraryAsExternal],
  });
  const reached = Object.keys(pageResult.metafile.inputs).filter((p) => p.startsWith("node:") || p.includes("onnxruntime"));
  if (reached.length > 0) {
    console.error(`build-web: a page bundles platform or runtime modules itself (it must import them from ../index.js):\n${reached.map((p) => `  - ${p}`).join("\n")}`);
    process.exit(1);
  }
  for (const n of pages) copyFileSync(join(pagesDir, `${n}.html`), join(out, `${n}.html`));
}

const mb = (p) => `${(statSync(join(out, p)).size / 1e6).toFixed(2)} MB`;
const outputs = Object.keys(result.metafile.outputs).filter((p) => p.endsWith(".js"));
const rel = (p) => p.slice(p.indexOf("dist/web/") + "dist/web/".length);
console.log(`build-web: dist/web/ from ${inputs.length} modules: ${[...outputs.map(rel), ...ORT_FILES.map((f) => `ort/${f}`)].map((p) => `${p} ${mb(p)}`).join(", ")}${pages.length > 0 ? `; pages: ${pages.map((n) => `${n}.html + ${n}.js ${mb(`${n}.js`)}`).join(", ")}` : ""}`);
