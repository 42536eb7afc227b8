/**
 * `safl token create | revoke | list` end to end: the printed token is one the server's verifier
 * accepts, the file and the listing never show a token or a hash, revoke reaches a verifier that is
 * already running, and bad input is a usage error (exit 2) with one message.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { TokenVerifier, tokenHash } from "../src/net/tokens.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const safl = join(root, "bin", "safl.js");
const run = (...args: string[]) => spawnSync(process.execPath, [safl, ...args], { encoding: "utf8", cwd: root });
let tmp = "";
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("safl token", () => {
  test("create prints a token the verifier accepts; list shows no hashes; revoke takes effect on a running verifier", async () => {
    tmp = await mkdtemp(join(tmpdir(), "safl-token-cli-"));
    const file = join(tmp, "tokens.json");

    const created = run("token", "create", "--tokens", file, "--id", "c3");
    assert.equal(created.status, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^safl_c3_[A-Za-z0-9_-]{43}$/, "stdout is the token alone");
    assert.match(created.stderr, /not stored .* cannot be shown again/);
    const verifier = TokenVerifier.load(file);
    assert.deepEqual(verifier.verify(token), { ok: true, clientId: "c3" });
    assert.ok(!(await readFile(file, "utf8")).includes(token));

    const json = run("token", "create", "--tokens", file, "--id", "c4", "--json");
    assert.equal(json.status, 0, json.stderr);
    const j = JSON.parse(json.stdout);
    assert.equal(j.id, "c4");
    assert.deepEqual(verifier.verify(j.token), { ok: true, clientId: "c4" });

    const again = run("token", "create", "--tokens", file, "--id", "c3");
    assert.equal(again.status, 2);
    assert.match(again.stderr, /client c3 already has an active token/);

    for (const args of [[], ["--json"]]) {
      const list = run("token", "list", "--tokens", file, ...args);
      assert.equal(list.status, 0, list.stderr);
      assert.match(list.stdout, /c3/);
      assert.match(list.stdout, /c4/);
      for (const t of [token, j.token as string]) {
        assert.ok(!list.stdout.includes(t), "no token");
        assert.ok(!list.stdout.includes(tokenHash(t)) && !list.stdout.includes(tokenHash(t).slice(0, 16)), "no hash");
      }
      assert.ok(!/[0-9a-f]{32}/.test(list.stdout), "nothing hash-like");
    }
    assert.match(run("token", "list", "--tokens", file).stdout, /^c3 +active +\d{4}-/m);

    const revoked = run("token", "revoke", "--tokens", file, "--id", "c3");
    assert.equal(revoked.status, 0, revoked.stderr);
    assert.match(revoked.stdout, /client c3: token revoked at /);
    assert.deepEqual(verifier.verify(token), { ok: false, reason: "revoked", claimedId: "c3" });
    assert.deepEqual(verifier.verify(j.token), { ok: true, clientId: "c4" });
    const listed = JSON.parse(run("token", "list", "--tokens", file, "--json").stdout) as { id: string; revoked?: string }[];
    assert.ok(listed.find((t) => t.id === "c3")!.revoked);
    assert.equal(listed.find((t) => t.id === "c4")!.revoked, undefined);

    const rotated = run("token", "create", "--tokens", file, "--id", "c4", "--rotate");
    assert.equal(rotated.status, 0, rotated.stderr);
    assert.deepEqual(verifier.verify(rotated.stdout.trim()), { ok: true, clientId: "c4" });
    assert.equal(verifier.verify(j.token).ok, false);
  });

  test("bad input exits 2 (usage) or 4 (file) with one message and no stack trace", async () => {
    const dir = tmp || (tmp = await mkdtemp(join(tmpdir(), "safl-token-cli-")));
    const file = join(dir, "bad-input.json");
    const cases: [string[], number, RegExp][] = [
      [["token", "create", "--tokens", file, "--id", "c/3"], 2, /client id must be 1-64 characters .*got "c\/3"/],
      [["token", "create", "--tokens", file, "--id", "x".repeat(65)], 2, /client id must be 1-64 characters/],
      [["token", "revoke", "--tokens", file, "--id", "bad id"], 2, /client id must be 1-64 characters/],
      [["token", "create", "--id", "c1"], 2, /token create: --tokens is required/],
      [["token", "list"], 2, /token list: --tokens is required/],
      [["token", "list", "--tokens", join(dir, "missing.json")], 4, /token file .*missing\.json does not exist/],
      [["token", "frob"], 2, /safl token: unknown subcommand "frob" \(expected one of: create, revoke, list\)/],
    ];
    for (const [args, code, re] of cases) {
      const r = run(...args);
      assert.equal(r.status, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(" "));
      assert.ok(!/at .*\.js:\d+/.test(r.stderr), `no stack trace for ${args.join(" ")}`);
    }
  });
});
