/**
 * Freshness of the committed generated code: runs `buf generate` (the repo's buf.gen.yaml, output
 * redirected into a temporary directory) and requires the result to equal src/net/gen byte for
 * byte. Fails, never skips, when buf or protoc-gen-es cannot run: stale or unverifiable generated
 * code is an error. Fix a failure with `npm run proto` and commit src/net/gen.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

// This file runs as dist/src/net/gen.test.js; the repo root is three levels up.
const root = fileURLToPath(new URL("../../../", import.meta.url));
const GEN = join("src", "net", "gen");
const bin = join(root, "node_modules", ".bin");
const buf = join(bin, process.platform === "win32" ? "buf.cmd" : "buf");

const listFiles = (dir: string): string[] => {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p).split("\\").join("/"));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
};

test("committed src/net/gen matches `buf generate` of proto/ (else run npm run proto)", { timeout: 120_000 }, () => {
  assert.ok(existsSync(buf), `buf not found at ${buf}: install the devDependencies (@bufbuild/buf), then run npm run proto`);
  const tmp = mkdtempSync(join(tmpdir(), "safl-proto-gen-"));
  try {
    try {
      execFileSync(buf, ["generate", "--template", "buf.gen.yaml", "--output", tmp], {
        cwd: root,
        // protoc-gen-es is a `local` plugin, found on PATH as under npm scripts.
        env: { ...process.env, PATH: `${bin}${delimiter}${process.env["PATH"] ?? ""}` },
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 110_000,
      });
    } catch (e) {
      const err = e as Error & { stderr?: Buffer };
      assert.fail(`buf generate failed, so the generated code cannot be checked (run npm run proto): ${err.message}\n${err.stderr?.toString() ?? ""}`);
    }
    const fresh = join(tmp, GEN);
    const committed = join(root, GEN);
    const want = listFiles(fresh);
    const have = listFiles(committed);
    assert.ok(want.length > 0, `buf generate wrote nothing under ${GEN}`);
    assert.deepEqual(have, want, `the files under ${GEN} differ from what buf generates: run npm run proto`);
    const stale = want.filter((f) => !readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f))));
    assert.deepEqual(stale, [], `${GEN} is stale (${stale.join(", ")}): run npm run proto`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
