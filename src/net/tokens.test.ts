/**
 * Client tokens: create / verify / revoke / rotate through the token file, that the file never holds
 * a token, that a running verifier sees a revoke without a restart, the file's mode, one clear error
 * per way a file can be wrong, redaction, and the Join rate limiter.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import { bearerToken, createToken, listTokens, parseToken, RateLimiter, redact, revokeToken, TokenVerifier, tokenHash } from "./tokens.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tokenFile(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "safl-tokens-"));
  dirs.push(d);
  return join(d, "tokens.json");
}
/** 43 base64url characters without "_", a canonical encoding of 32 bytes (the last one is "A"). */
const SECRET = "abcdefghijklmnopqrstuvwxyz0123456789BCDEFGA";
const isCode = (code: ErrorCode, re: RegExp) => (e: unknown) => e instanceof SaflError && e.code === code && re.test(e.message);

describe("client tokens", () => {
  test("a created token has the documented shape and is accepted for its id only", async () => {
    const file = await tokenFile();
    const token = await createToken(file, "c3");
    assert.match(token, /^safl_c3_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(parseToken(token), { id: "c3", secret: token.slice("safl_c3_".length) });
    const v = TokenVerifier.load(file);
    assert.deepEqual(v.verify(token), { ok: true, clientId: "c3" });
    // The same secret under another id is another token: unknown.
    const other = await createToken(file, "c4");
    assert.deepEqual(v.verify(other), { ok: true, clientId: "c4" });
    assert.deepEqual(v.verify(token.replace("safl_c3_", "safl_c4_")), { ok: false, reason: "unknown", claimedId: "c4" });
  });

  test("ids with '_', '.', '-' and '__proto__' work; bad ids are refused", async () => {
    const file = await tokenFile();
    for (const id of ["my_client_1", "a.b-c", "__proto__", "x".repeat(64)]) {
      const token = await createToken(file, id);
      assert.deepEqual(TokenVerifier.load(file).verify(token), { ok: true, clientId: id });
    }
    assert.deepEqual((await listTokens(file)).map((t) => t.id).sort(), ["__proto__", "a.b-c", "my_client_1", "x".repeat(64)].sort());
    for (const id of ["", "x".repeat(65), "a b", "c/3", "é"]) {
      await assert.rejects(createToken(file, id), isCode(ErrorCode.InvalidArgument, /client id must be 1-64 characters/));
    }
  });

  test("the token file never contains a token, only its SHA-256", async () => {
    const file = await tokenFile();
    const token = await createToken(file, "c1");
    const text = await readFile(file, "utf8");
    assert.ok(!text.includes(token), "token not in file");
    assert.ok(!text.includes(token.slice("safl_c1_".length)), "secret not in file");
    assert.ok(!text.includes(Buffer.from(token.slice(8), "base64url").toString("hex")), "secret bytes not in file");
    const json = JSON.parse(text);
    assert.equal(json.format, "safl-tokens");
    assert.equal(json.version, 1);
    assert.equal(json.clients.c1.sha256, tokenHash(token));
    assert.ok(!Number.isNaN(Date.parse(json.clients.c1.created)));
    assert.equal(json.clients.c1.revoked, undefined);
  });

  test("the file is written with mode 0600, leaving no temporary or lock file", async () => {
    const file = await tokenFile();
    await writeFile(file, JSON.stringify({ format: "safl-tokens", version: 1, clients: {} }), { mode: 0o644 });
    await createToken(file, "c1");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    await revokeToken(file, "c1");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(file, "..")), ["tokens.json"]);
  });

  test("a wrong secret for a known id and a malformed token are refused", async () => {
    const file = await tokenFile();
    const token = await createToken(file, "c1");
    const v = TokenVerifier.load(file);
    const flipped = token.slice(0, -2) + (token.at(-2) === "A" ? "B" : "A") + token.at(-1);
    assert.deepEqual(v.verify(flipped), { ok: false, reason: "unknown", claimedId: "c1" });
    assert.deepEqual(v.verify(`safl_c1_${"A".repeat(43)}`), { ok: false, reason: "unknown", claimedId: "c1" });
    assert.deepEqual(v.verify(`safl_nobody_${token.slice(8)}`), { ok: false, reason: "unknown", claimedId: "nobody" });
    // A fixed secret without "_" so that cutting or extending it cannot make another valid token.
    const fixed = `safl_c1_${SECRET}`;
    for (const bad of ["", "safl_", "safl_c1", fixed.slice(0, -1), `${fixed}A`, fixed.replace("safl_", "safe_"), `safl__${SECRET}`, `safl_c 1_${SECRET}`, `${fixed.slice(0, -1)}=`, "x".repeat(10_000)]) {
      assert.deepEqual(v.verify(bad), { ok: false, reason: "malformed" }, JSON.stringify(bad.slice(0, 40)));
    }
    // 32 bytes end in 4 bits: a last character with low bits set is not a canonical encoding.
    const last = token.at(-1)!;
    const nonCanonical = token.slice(0, -1) + String.fromCharCode(last.charCodeAt(0) + 1);
    assert.deepEqual(v.verify(nonCanonical), { ok: false, reason: "malformed" });
  });

  test("a running verifier refuses a revoked token after the file changes, and accepts a rotated one", async () => {
    const file = await tokenFile();
    const token = await createToken(file, "c3");
    const keep = await createToken(file, "c4");
    const v = TokenVerifier.load(file);
    assert.equal(v.verify(token).ok, true);
    const r = await revokeToken(file, "c3");
    assert.equal(r.already, false);
    assert.deepEqual(v.verify(token), { ok: false, reason: "revoked", claimedId: "c3" });
    assert.deepEqual(v.verify(keep), { ok: true, clientId: "c4" });
    assert.equal((await revokeToken(file, "c3")).already, true);
    const listed = await listTokens(file);
    assert.equal(listed.find((t) => t.id === "c3")!.revoked, r.revoked);
    assert.equal(listed.find((t) => t.id === "c4")!.revoked, undefined);
    // A revoked id may get a new token without --rotate; the old one stays refused.
    const again = await createToken(file, "c3");
    assert.deepEqual(v.verify(again), { ok: true, clientId: "c3" });
    assert.equal(v.verify(token).ok, false);
  });

  test("an active id is refused unless rotating; rotation invalidates the old token", async () => {
    const file = await tokenFile();
    const first = await createToken(file, "c1");
    await assert.rejects(createToken(file, "c1"), isCode(ErrorCode.InvalidArgument, /client c1 already has an active token in .*tokens\.json \(created .*\); rotate it/));
    const v = TokenVerifier.load(file);
    const second = await createToken(file, "c1", { rotate: true });
    assert.notEqual(second, first);
    assert.deepEqual(v.verify(second), { ok: true, clientId: "c1" });
    assert.deepEqual(v.verify(first), { ok: false, reason: "unknown", claimedId: "c1" });
  });

  test("the verifier re-reads a file rewritten within the same mtime", async () => {
    const file = await tokenFile();
    const token = await createToken(file, "c1");
    const v = TokenVerifier.load(file);
    const before = await stat(file);
    await revokeToken(file, "c1");
    await utimes(file, before.atime, before.mtime);
    assert.equal(v.verify(token).ok, false);
  });

  test("a corrupt changed file keeps the previous entries and is reported once; a removed file admits nobody", async () => {
    const file = await tokenFile();
    const token = await createToken(file, "c1");
    const errors: SaflError[] = [];
    const v = TokenVerifier.load(file, { onReloadError: (e) => errors.push(e) });
    await writeFile(file, "{ half a fi");
    assert.equal(v.verify(token).ok, true);
    assert.equal(v.verify(token).ok, true);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /token file .*tokens\.json is corrupt: not valid JSON/);
    assert.equal(v.lastError, errors[0]);
    await rm(file);
    assert.deepEqual(v.verify(token), { ok: false, reason: "unknown", claimedId: "c1" });
    assert.match(errors[1]!.message, /was removed: no token is accepted/);
    const fresh = await createToken(file, "c1");
    assert.equal(v.verify(fresh).ok, true);
    assert.equal(v.lastError, undefined);
  });

  test("each way a token file can be wrong is one error naming the file and what was expected", async () => {
    const file = await tokenFile();
    const h = "a".repeat(64);
    const t = "2024-01-02T03:04:05.000Z";
    const cases: [string, RegExp][] = [
      ["not json", /token file .*tokens\.json is corrupt: not valid JSON .*expected a safl token file \(JSON \{"format": "safl-tokens", "version": 1/],
      ["[1,2]", /is corrupt: not a JSON object/],
      [JSON.stringify({ version: 1, clients: {} }), /has format undefined, expected "safl-tokens"/],
      [JSON.stringify({ format: "safl-tokens", version: 2, clients: {} }), /tokens\.json has version 2, this safl reads version 1/],
      [JSON.stringify({ format: "safl-tokens", version: 1 }), /"clients" must be an object mapping client ids to entries/],
      [JSON.stringify({ format: "safl-tokens", version: 1, clients: { "a b": { sha256: h, created: t } } }), /client "a b": not a valid client id/],
      [JSON.stringify({ format: "safl-tokens", version: 1, clients: { c1: { sha256: "xyz", created: t } } }), /client "c1": "sha256" must be 64 lower-case hex digits/],
      [JSON.stringify({ format: "safl-tokens", version: 1, clients: { c1: { sha256: h, created: "yesterday" } } }), /client "c1": "created" must be an ISO 8601 time, got "yesterday"/],
      [JSON.stringify({ format: "safl-tokens", version: 1, clients: { c1: { sha256: h, created: t, revoked: 5 } } }), /"revoked" must be an ISO 8601 time or absent, got 5/],
      [JSON.stringify({ format: "safl-tokens", version: 1, clients: { c1: { sha256: h, created: t, token: "safl_c1_x" } } }), /client "c1": unknown field token/],
    ];
    for (const [text, re] of cases) {
      await writeFile(file, text);
      assert.throws(() => TokenVerifier.load(file), isCode(ErrorCode.Io, re), text);
      await assert.rejects(listTokens(file), isCode(ErrorCode.Io, re), text);
      // A write never replaces a file it could not read.
      await assert.rejects(createToken(file, "c9"), isCode(ErrorCode.Io, re), text);
      assert.equal(await readFile(file, "utf8"), text);
    }
    await rm(file);
    assert.throws(() => TokenVerifier.load(file), isCode(ErrorCode.Io, /token file .*tokens\.json does not exist \(create it with safl token create/));
    await assert.rejects(listTokens(file), isCode(ErrorCode.Io, /does not exist/));
    await assert.rejects(revokeToken(file, "c1"), isCode(ErrorCode.Io, /does not exist/));
    await createToken(file, "c1");
    await assert.rejects(revokeToken(file, "c2"), isCode(ErrorCode.InvalidArgument, /token file .*tokens\.json has no client c2 \(clients: c1\)/));
  });

  test("concurrent creates all land in the file", async () => {
    const file = await tokenFile();
    const ids = Array.from({ length: 8 }, (_, i) => `c${i}`);
    const tokens = await Promise.all(ids.map((id) => createToken(file, id)));
    const v = TokenVerifier.load(file);
    for (const [i, t] of tokens.entries()) assert.deepEqual(v.verify(t), { ok: true, clientId: ids[i] });
  });

  test("redact() hides every token and near-token, keeping the id", async () => {
    const token = `safl_c3_${SECRET}`;
    const underscored = `safl_my_client_${SECRET}`;
    assert.equal(redact(`join from 1.2.3.4 with ${token}.`), "join from 1.2.3.4 with safl_c3_***.");
    assert.equal(redact(`Authorization: Bearer ${underscored}`), "Authorization: Bearer safl_my_client_***");
    assert.equal(redact(`"${token}","${token}"`), `"safl_c3_***","safl_c3_***"`);
    // Truncated or mistyped tokens still carry most of a secret.
    assert.equal(redact(`bad token ${token.slice(0, -5)} refused`), "bad token safl_c3_*** refused");
    assert.equal(redact(`${token}xyz`), "safl_c3_***");
    const file = await tokenFile();
    for (const id of ["c1", "a_b", "x_y_z"]) {
      const t = await createToken(file, id);
      const out = redact(`x ${t} ${t.slice(0, 30)} y`);
      assert.ok(!out.includes(t.slice(-20)) && !out.includes(t.slice(t.length - 43, t.length - 30)), out);
    }
    assert.equal(redact("see safl_tokens_v1.json and safl token create"), "see safl_tokens_v1.json and safl token create");
    assert.equal(redact(redact(token)), "safl_c3_***");
  });

  test("bearerToken() reads an Authorization header", () => {
    assert.equal(bearerToken("Bearer safl_c1_abc"), "safl_c1_abc");
    assert.equal(bearerToken("bearer  safl_c1_abc"), "safl_c1_abc");
    assert.equal(bearerToken("Basic dXNlcjpwYXNz"), undefined);
    assert.equal(bearerToken("Bearer"), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });
});

describe("RateLimiter", () => {
  test("allows a burst of capacity, then refills at the given rate per key", () => {
    const rl = new RateLimiter({ capacity: 3, refillPerSecond: 2 });
    const t0 = 1_000_000;
    assert.deepEqual([1, 2, 3, 4].map(() => rl.take("1.2.3.4", t0)), [true, true, true, false]);
    assert.equal(rl.take("5.6.7.8", t0), true, "keys are independent");
    assert.equal(rl.retryAfterMs("1.2.3.4", t0), 500);
    assert.equal(rl.take("1.2.3.4", t0 + 499), false);
    assert.equal(rl.take("1.2.3.4", t0 + 500), true, "one attempt back after 1/rate s");
    assert.equal(rl.take("1.2.3.4", t0 + 500), false);
    // A long pause refills to capacity, not beyond.
    const later = t0 + 60_000;
    assert.deepEqual([1, 2, 3, 4].map(() => rl.take("1.2.3.4", later)), [true, true, true, false]);
    // A clock that steps back refills nothing.
    assert.equal(rl.take("1.2.3.4", t0), false);
    assert.equal(rl.retryAfterMs("never-seen", t0), 0);
  });

  test("remembers at most maxKeys keys, dropping full buckets first", () => {
    const rl = new RateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 3 });
    rl.take("a", 0);
    rl.take("b", 0);
    rl.take("c", 10_000);
    rl.take("d", 10_000);
    assert.ok(rl.size <= 3);
    assert.equal(rl.take("d", 10_000), false, "the newest throttled key is kept");
    for (let i = 0; i < 100; i++) rl.take(`k${i}`, 20_000);
    assert.ok(rl.size <= 3);
  });

  test("bad parameters are refused", () => {
    assert.throws(() => new RateLimiter({ capacity: 0, refillPerSecond: 1 }), isCode(ErrorCode.InvalidArgument, /capacity must be a number >= 1, got 0/));
    assert.throws(() => new RateLimiter({ capacity: 1, refillPerSecond: 0 }), isCode(ErrorCode.InvalidArgument, /refill must be a positive number/));
    assert.throws(() => new RateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 0 }), isCode(ErrorCode.InvalidArgument, /maxKeys/));
  });
});
