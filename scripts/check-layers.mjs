#!/usr/bin/env node
// Enforces the dependency direction of the layout (docs/architecture.md): a module may import only
// from its own layer or layers listed before it, and platform modules (node:*, onnxruntime-node) only
// from the edges (runtime/node.ts, io/*-file and checkpoint code, cli/, bench/, tests). src/index.ts,
// the package's Node entry point, is the top layer: it re-exports from any layer. web/ (the browser
// entry) may import every layer but nothing imports it, not even src/index.ts, and it is the only
// place onnxruntime-web may be imported (web/runtime.ts), while node:* and onnxruntime-node may not
// be. Static imports, re-exports and dynamic import("...") calls are all checked.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, dirname, resolve } from "node:path";

const order = ["util", "errors", "validate", "graph", "tensor", "onnx", "runtime", "nn", "peft", "io", "data", "fl", "sim", "net", "cli", "universal", "web", "index"];
const rank = (layer) => {
  const i = order.indexOf(layer);
  // io and data share a rank, as do sim and net
  if (layer === "data") return order.indexOf("io");
  if (layer === "net") return order.indexOf("sim");
  return i;
};
const src = resolve("src");
const layerOf = (file) => {
  const rel = relative(src, file).split("/");
  return rel.length === 1 ? rel[0].replace(/\.ts$/, "") : rel[0];
};
const platformOk = (file) => {
  const rel = relative(src, file);
  return rel.startsWith("cli/") || rel === "runtime/node.ts" || rel.startsWith("io/") || rel.startsWith("data/") || rel.startsWith("net/") || rel.startsWith("sim/") || rel.endsWith(".test.ts");
};
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith(".ts")) files.push(p);
  }
};
walk(src);
const problems = [];
for (const file of files) {
  const text = readFileSync(file, "utf8");
  const from = layerOf(file);
  const specs = [
    ...[...text.matchAll(/^\s*(?:import|export)[^"']*from\s+["']([^"']+)["']/gm)].map((m) => m[1]),
    ...[...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]),
  ];
  for (const spec of specs) {
    if (spec.startsWith(".")) {
      const target = resolve(dirname(file), spec);
      const to = layerOf(target.replace(/\.js$/, ".ts"));
      if (rank(to) > rank(from) && !file.endsWith(".test.ts")) problems.push(`${relative(".", file)}: ${from} may not import ${to} (${spec})`);
      else if (to === "web" && from !== "web") problems.push(`${relative(".", file)}: nothing outside web/ may import the browser entry (${spec})`);
    } else if ((spec.startsWith("node:") || spec === "onnxruntime-node") && (!platformOk(file) || from === "web")) {
      problems.push(`${relative(".", file)}: platform import "${spec}" outside the edges`);
    } else if (spec.split("/")[0] === "onnxruntime-web" && relative(src, file) !== "web/runtime.ts") {
      problems.push(`${relative(".", file)}: onnxruntime-web may be imported only by src/web/runtime.ts (${spec})`);
    }
  }
}
if (problems.length > 0) {
  console.error(`layer check failed:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  process.exit(1);
}
console.log(`layer check: ${files.length} files ok`);
