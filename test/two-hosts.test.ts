/**
 * A deployed run between two "hosts": the server in one network namespace, a client in another,
 * joined by a veth pair this test creates (10.231.<n>.1/24 and .2/24) and deletes again. The
 * client's namespace has no other interface and no route beyond that /24, so the run can only go
 * over the pair; the test checks that the server saw the client at 10.231.<n>.2 and that the veth
 * counters carried at least the run's traffic. Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); where
 * `ip netns add` is not permitted the test is skipped with the reason.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Harness, readRun } from "./deploy-harness.js";

const pid = process.pid;
const nsA = `safl-a-${pid}`;
const nsB = `safl-b-${pid}`;
// Interface names have at most 15 characters.
const vethA = `sfa${pid}`.slice(0, 15);
const vethB = `sfb${pid}`.slice(0, 15);
const net = (pid % 250) + 1;
const addrA = `10.231.${net}.1`;
const addrB = `10.231.${net}.2`;

function ip(...args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.error) return { ok: false, out: "", err: r.error.message };
  return { ok: r.status === 0, out: r.stdout, err: r.stderr.trim() };
}

function mustIp(...args: string[]): string {
  const r = ip(...args);
  if (!r.ok) throw new Error(`ip ${args.join(" ")} failed: ${r.err}`);
  return r.out;
}

/** rx/tx byte counters of an interface in a namespace. */
function counters(ns: string, dev: string): { rx: number; tx: number } {
  const j = JSON.parse(mustIp("-n", ns, "-j", "-s", "link", "show", "dev", dev)) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[];
  return { rx: j[0]!.stats64.rx.bytes, tx: j[0]!.stats64.tx.bytes };
}

let dir = "";
let h: Harness | undefined;
/** Why the namespaces cannot be made here, or undefined when they were made. */
let skipReason: string | undefined;
let created = false;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "safl-two-hosts-"));
  h = new Harness(dir);
  if (process.platform !== "linux") {
    skipReason = `network namespaces need Linux (this is ${process.platform})`;
    return;
  }
  const probe = ip("netns", "add", nsA);
  if (!probe.ok) {
    const notPermitted = /not permitted|permission denied|must be root|ENOENT|not found/i.test(probe.err) || (process.getuid?.() ?? 0) !== 0;
    if (!notPermitted) throw new Error(`ip netns add ${nsA} failed: ${probe.err}`);
    skipReason = `ip netns add is not permitted here (uid ${process.getuid?.()}; ${probe.err || "no ip command"}); needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN`;
    return;
  }
  created = true;
  mustIp("netns", "add", nsB);
  mustIp("link", "add", vethA, "netns", nsA, "type", "veth", "peer", "name", vethB, "netns", nsB);
  mustIp("-n", nsA, "addr", "add", `${addrA}/24`, "dev", vethA);
  mustIp("-n", nsB, "addr", "add", `${addrB}/24`, "dev", vethB);
  for (const [ns, dev] of [
    [nsA, vethA],
    [nsB, vethB],
  ] as const) {
    mustIp("-n", ns, "link", "set", dev, "up");
    mustIp("-n", ns, "link", "set", "lo", "up");
  }
});

after(async () => {
  // Processes first (a namespace with processes in it outlives its name), then the namespaces;
  // deleting them deletes the veth pair too.
  h?.dispose();
  if (created) {
    for (const ns of [nsA, nsB]) ip("netns", "del", ns);
    const left = ip("netns", "list").out;
    assert.ok(!left.includes(nsA) && !left.includes(nsB), `namespaces left behind: ${left}`);
  }
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

describe("two hosts", { timeout: 600_000 }, () => {
  test("server and client in separate network namespaces over a veth pair: the run completes, traffic goes over the pair", async (t) => {
    if (skipReason !== undefined) {
      t.skip(skipReason);
      return;
    }
    const harness = h!;
    // B has one route, to A's /24: nothing else is reachable from the client.
    const routesB = mustIp("-n", nsB, "route", "show");
    assert.doesNotMatch(routesB, /default/);
    assert.deepEqual(
      mustIp("-n", nsB, "-o", "addr", "show")
        .split("\n")
        .filter((l) => /\binet\b/.test(l))
        .map((l) => / inet (\S+)/.exec(l)![1]),
      ["127.0.0.1/8", `${addrB}/24`],
    );

    const cfgPath = await harness.writeConfig("two-hosts.json", {
      seed: 0,
      rounds: 2,
      data: { dataset: "mnist", classes: "5-9", trainLimit: 200 },
      clients: { count: 1, perRound: 1 },
      strategy: { name: "fedavg" },
      training: { localSteps: 2, batch: 8 },
      execution: { workers: 0, threads: 1 },
      deployment: { heartbeatSeconds: 2 },
    });
    const tokens = await harness.tokens(["host-b"]);
    const out = join(dir, "out");
    const before = { a: counters(nsA, vethA), b: counters(nsB, vethB) };
    const server = harness.server(
      ["--insecure-anywhere", "--config", cfgPath, "--state", join(dir, "s.db"), "--out", out, "--tokens", tokens.file],
      `${addrA}:0`,
      { wrap: ["ip", "netns", "exec", nsA] },
    );
    const port = await server.port;
    assert.ok(server.lines.some((l) => l.includes(`listening on http://${addrA}:${port}`)), server.lines.join("\n"));
    const client = harness.client(port, tokens.tokens.get("host-b")!, ["--dataset", "mnist", "--partition", "0", "--cache", join(dir, "cache")], {
      host: addrA,
      wrap: ["ip", "netns", "exec", nsB],
    });
    assert.equal(await server.exited, 0, `server:\n${server.lines.slice(-30).join("\n")}\nclient:\n${client.output().slice(-2000)}`);
    assert.equal(await client.exited, 0, client.output());
    assert.match(client.output(), /run finished \(2 rounds/);

    const run = await readRun(out);
    assert.equal(run.records.length, 2);
    // The server saw the client at B's address, and at no other.
    const joins = server.lines.filter((l) => /joined: /.test(l));
    assert.ok(joins.length >= 1, server.lines.join("\n"));
    for (const l of joins) assert.match(l, new RegExp(`from ${addrB.replaceAll(".", "\\.")}\\b`), l);
    // The veth pair carried at least the run's messages: the backbone and broadcasts down, the replies up.
    const a = counters(nsA, vethA);
    const b = counters(nsB, vethB);
    const down = run.records.reduce((n, r) => n + (r["down"] as { bytes: number }).bytes, 0);
    const up = run.records.reduce((n, r) => n + (r["up"] as { bytes: number }).bytes, 0);
    const sent = { aTx: a.tx - before.a.tx, bRx: b.rx - before.b.rx, bTx: b.tx - before.b.tx, aRx: a.rx - before.a.rx };
    const msg = JSON.stringify({ sent, down, up });
    assert.ok(down > 0 && up > 0, msg);
    assert.ok(sent.aTx >= down && sent.bRx >= down, `A → B carried the broadcasts: ${msg}`);
    assert.ok(sent.bTx >= up && sent.aRx >= up, `B → A carried the replies: ${msg}`);
  });
});
