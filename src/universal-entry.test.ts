/**
 * The platform-free entry points (`sa-fedlora/graph`, `/nn`, `/peft`, `/fl`) must not reach a Node
 * built-in or onnxruntime-node through any chain of runtime imports, so a browser bundle can use them;
 * nor may the browser entry (src/web, bundled as `sa-fedlora/web`), which alone may import onnxruntime-web.
 * Walks the compiled JavaScript (type-only imports are gone there, as in a bundle) from each entry's
 * dist/src/<entry>/index.js and fails naming the import chain of every platform import it reaches.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

/** This file is dist/src/universal-entry.test.js, so the compiled sources are its siblings. */
const distSrc = new URL("./", import.meta.url);
const UNIVERSAL_ENTRIES = ["graph", "nn", "peft", "fl", "web"] as const;
/** Third-party packages known to be platform-free; anything else reached is reported for review. */
const PLATFORM_FREE_PACKAGES = new Set(["zod"]);
/** Browser packages an entry may reach on top of those (the browser entry's runtime). */
const ENTRY_PACKAGES: Partial<Record<(typeof UNIVERSAL_ENTRIES)[number], readonly string[]>> = {
  // The runtime, and the browser client's RPC stack (Connect over fetch, protobuf-es): all browser-ready.
  web: ["onnxruntime-web", "@connectrpc/connect", "@connectrpc/connect-web", "@bufbuild/protobuf"],
};

const builtins = new Set(builtinModules);
const show = (url: URL): string => relative(fileURLToPath(distSrc), fileURLToPath(url));
const packageName = (spec: string): string => spec.split("/").slice(0, spec.startsWith("@") ? 2 : 1).join("/");

/** Why importing `spec` breaks a browser bundle, or undefined when it does not. */
function platformProblem(spec: string, allowed: readonly string[] = []): string | undefined {
  if (spec.startsWith("node:") || builtins.has(packageName(spec))) return "a Node built-in";
  if (packageName(spec) === "onnxruntime-node") return "the onnxruntime-node native binding";
  if (!PLATFORM_FREE_PACKAGES.has(packageName(spec)) && !allowed.includes(packageName(spec))) {
    return `package "${packageName(spec)}", not known to be platform-free (add it to PLATFORM_FREE_PACKAGES if it is)`;
  }
  return undefined;
}

/** Static and dynamic import specifiers and re-exports (`export ... from`) of a JavaScript module, comments and strings aside. */
function importSpecifiers(file: URL): string[] {
  const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
  return info.importedFiles.map((f) => f.fileName);
}

interface Finding {
  readonly chain: readonly string[];
  readonly problem: string;
}

/**
 * Breadth-first over the relative imports from `entry`, so every chain reported is a shortest one.
 * Returns each platform import (or unresolvable relative import) with the chain that reaches it.
 */
function platformImports(entry: URL, allowed: readonly string[] = []): { findings: Finding[]; modules: number } {
  const parent = new Map<string, string | undefined>([[entry.href, undefined]]);
  const chainTo = (href: string): string[] => {
    const chain: string[] = [];
    for (let h: string | undefined = href; h !== undefined; h = parent.get(h)) chain.unshift(show(new URL(h)));
    return chain;
  };
  const findings: Finding[] = [];
  const queue = [entry.href];
  for (let i = 0; i < queue.length; i++) {
    const href = queue[i]!;
    for (const spec of importSpecifiers(new URL(href))) {
      if (spec.startsWith("./") || spec.startsWith("../")) {
        const target = new URL(spec, href);
        if (!existsSync(target)) {
          findings.push({ chain: [...chainTo(href), spec], problem: "an import that does not resolve to a compiled file" });
        } else if (!parent.has(target.href)) {
          parent.set(target.href, href);
          queue.push(target.href);
        }
        continue;
      }
      const problem = platformProblem(spec, allowed);
      if (problem) findings.push({ chain: [...chainTo(href), spec], problem });
    }
  }
  return { findings, modules: queue.length };
}

const report = (findings: readonly Finding[]): string => findings.map((f) => `  ${f.chain.join(" -> ")}  (${f.problem})`).join("\n");

describe("platform-free entry points", () => {
  for (const name of UNIVERSAL_ENTRIES) {
    it(`sa-fedlora/${name} reaches no node:* module or onnxruntime-node`, () => {
      const entry = new URL(`./${name}/index.js`, distSrc);
      assert.ok(existsSync(entry), `${fileURLToPath(entry)} is missing: build with tsc first`);
      const { findings, modules } = platformImports(entry, ENTRY_PACKAGES[name]);
      assert.ok(modules > 1, `walked only ${modules} module(s) from ${name}/index.js: the import scan found nothing`);
      assert.equal(findings.length, 0, `sa-fedlora/${name} must run in a browser, but its imports reach:\n${report(findings)}`);
    });
  }

  it("the walk does find platform imports where they are (sa-fedlora/io, sa-fedlora/node)", () => {
    const io = platformImports(new URL("./io/index.js", distSrc)).findings;
    assert.ok(
      io.some((f) => f.chain.at(-1)!.startsWith("node:")),
      `expected node:* imports reachable from io/index.js, found:\n${report(io) || "  (none)"}`,
    );
    const node = platformImports(new URL("./runtime/node.js", distSrc)).findings;
    assert.ok(
      node.some((f) => f.chain.at(-1) === "onnxruntime-node" && f.chain[0] === "runtime/node.js"),
      `expected onnxruntime-node imported by runtime/node.js, found:\n${report(node) || "  (none)"}`,
    );
  });
});
