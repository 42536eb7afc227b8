/**
 * Deployed runs on loopback, end to end with real processes: a `safl server` and `safl client`
 * processes playing partitions 0..3.
 * - Equivalence: 3 rounds of FedAvg and 8 of SA-FedLoRA give every round's test accuracy and loss,
 *   the sampled clients and the final model's bytes of `safl simulate` with the same config.
 * - Server crash: `kill -9` of the server mid-round after replies were accepted, then the same
 *   command again: the run completes with the uninterrupted run's metrics and model.
 * The reference runs are simulations; the deployment is independent code (Connect transport, hub,
 * network grid, client loop) that must land on the same numbers.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Harness, readRun, silentClient } from "./deploy-harness.js";

const base = {
  seed: 3,
  data: { dataset: "mnist", classes: "5-9", trainLimit: 400 },
  clients: { count: 4, perRound: 3, partition: "dirichlet:0.5" },
  training: { localSteps: 3, batch: 8 },
  evaluation: { every: 1 },
  execution: { workers: 2, threads: 1 },
  deployment: { heartbeatSeconds: 2, roundTimeoutSeconds: 120 },
};
const strip = (r: Record<string, unknown>) => ({ round: r["round"], stage: r["stage"], testAccuracy: r["testAccuracy"], testLoss: r["testLoss"], trainLoss: r["trainLoss"], clients: r["clients"], budget: r["budget"], ranks: r["ranks"] });

let dir = "";
let h: Harness;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "safl-deploy-"));
  h = new Harness(dir);
});
after(async () => {
  h.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function deploy(name: string, cfgPath: string, tokens: { file: string; tokens: Map<string, string> }, opts: { killAfter?: RegExp } = {}) {
  const state = join(dir, `${name}.db`);
  const out = join(dir, `${name}-out`);
  const cache = join(dir, `${name}-cache`);
  const args = ["--config", cfgPath, "--state", state, "--out", out, "--tokens", tokens.file];
  let server = h.server(args);
  const port = await server.port;
  const clients = [0, 1, 2, 3].map((i) => h.client(port, tokens.tokens.get(`c${i}`)!, ["--dataset", "mnist", "--partition", String(i), "--cache", join(cache, String(i))]));
  let restarted = false;
  if (opts.killAfter) {
    await server.waitFor(opts.killAfter);
    server.proc.kill("SIGKILL");
    await server.exited;
    // The same command again, on the same port so the running clients find it when they reconnect.
    server = h.server(args, `127.0.0.1:${port}`);
    await server.port;
    restarted = true;
  }
  const code = await server.exited;
  assert.equal(code, 0, `server failed:\n${server.lines.slice(-30).join("\n")}`);
  const codes = await Promise.all(clients.map((c) => c.exited));
  codes.forEach((c, i) => {
    assert.equal(c, 0, `client ${i} failed:\n${clients[i]!.output().slice(-2000)}`);
  });
  return { out, server, restarted };
}

describe("deployment equals simulation", { timeout: 600_000 }, () => {
  for (const [name, strategy, rounds] of [
    ["fedavg", { name: "fedavg" }, 3],
    ["sa-fedlora", { name: "sa-fedlora", initiating: { rounds: 2 }, adapter: { initRank: 4, targetRank: 1 }, heatRounds: 1, coolRounds: 2 }, 8],
  ] as const) {
    test(`${name}: ${rounds} rounds over the network give the simulation's accuracies and final model`, async () => {
      const cfgPath = await h.writeConfig(`${name}.json`, { ...base, rounds, strategy });
      const tokens = await h.tokens(["c0", "c1", "c2", "c3"].map((c) => `${name}-${c}`));
      const named = { file: tokens.file, tokens: new Map([...tokens.tokens].map(([k, v]) => [k.replace(`${name}-`, ""), v])) };
      const simOut = join(dir, `${name}-sim`);
      h.simulate(["--config", cfgPath, "--out", simOut]);
      const { out } = await deploy(name, cfgPath, named);
      const sim = await readRun(simOut);
      const dep = await readRun(out);
      assert.equal(dep.records.length, rounds);
      assert.deepEqual(dep.records.map(strip), sim.records.map(strip));
      assert.ok(dep.model.equals(sim.model), "the final global model is bit-identical");
      // Traffic: the deployment counts protocol framing on top of the payloads, and so does its FedAvg reference.
      for (const [d, s] of dep.records.map((r, i) => [r, sim.records[i]!] as const)) {
        assert.ok((d["down"] as { bytes: number }).bytes > (s["down"] as { bytes: number }).bytes);
        assert.equal((d["down"] as { params: number }).params, (s["down"] as { params: number }).params);
      }
    });
  }
});

describe("server crash", { timeout: 600_000 }, () => {
  test("kill -9 mid-round after replies were accepted, then the same command: the run completes as if uninterrupted", async () => {
    const cfgPath = await h.writeConfig("crash.json", { ...base, rounds: 4, strategy: { name: "fedlora", adapter: { rank: 2 } } });
    const tokens = await h.tokens(["c0", "c1", "c2", "c3"].map((c) => `crash-${c}`));
    const named = { file: tokens.file, tokens: new Map([...tokens.tokens].map(([k, v]) => [k.replace("crash-", ""), v])) };
    const simOut = join(dir, "crash-sim");
    h.simulate(["--config", cfgPath, "--out", simOut]);
    // Round 2 has accepted at least one reply (committed) and is still open.
    const { out, server } = await deploy("crash", cfgPath, named, { killAfter: /accepted: train reply of client-\d+ for round 2,/ });
    assert.ok(server.lines.some((l) => /resuming run .* after round 1/.test(l)), "the second server resumed from round 1's boundary");
    assert.ok(server.lines.some((l) => /round 2: [1-9]\d* of \d+ replies were committed before the restart/.test(l)), "the open round kept its committed replies");
    const sim = await readRun(simOut);
    const dep = await readRun(out);
    assert.deepEqual(dep.records.map(strip), sim.records.map(strip), `failures: ${JSON.stringify(dep.records.map((r) => r["failures"]))}\nserver:\n${server.lines.slice(-40).join("\n")}`);
    assert.ok(dep.model.equals(sim.model), "the final global model is bit-identical");
  });
});

describe("client crash and dropouts", { timeout: 600_000 }, () => {
  test("kill -9 of a client between rounds: the next round closes at its deadline with the rest; restarted, it rejoins with its cached base and is used again", async () => {
    const cfg = {
      ...base,
      rounds: 5,
      clients: { count: 4, perRound: 4, partition: "iid" },
      strategy: { name: "sa-fedlora", initiating: { rounds: 1, handoff: "new-base" }, adapter: { initRank: 2, targetRank: 1 }, heatRounds: 1, coolRounds: 1 },
      deployment: { heartbeatSeconds: 2, roundTimeoutSeconds: 8, minReplyFraction: 0.5 },
    };
    const cfgPath = await h.writeConfig("dropout.json", cfg);
    const tokens = await h.tokens(["d0", "d1", "d2", "d3"]);
    const state = join(dir, "dropout.db");
    const out = join(dir, "dropout-out");
    const server = h.server(["--config", cfgPath, "--state", state, "--out", out, "--tokens", tokens.file]);
    const port = await server.port;
    const cache = (i: number) => join(dir, "dropout-cache", String(i));
    const start = (i: number) => h.client(port, tokens.tokens.get(`d${i}`)!, ["--dataset", "mnist", "--partition", String(i), "--cache", cache(i)]);
    const clients = [0, 1, 2, 3].map(start);
    // Round 2 is the first annealing round: every client received base version 1 with it.
    await server.waitFor(/"round":\{"round":2,/);
    clients[2]!.proc.kill("SIGKILL");
    await clients[2]!.exited;
    const r3 = JSON.parse(await server.waitFor(/"round":\{"round":3,/)) as { round: { failures: { clientId: string; code: string }[]; clients: { accepted: string[] } } };
    assert.deepEqual(r3.round.failures.map((f) => [f.clientId, f.code]), [["client-0002", "deadline-exceeded"]]);
    assert.equal(r3.round.clients.accepted.length, 3);
    const again = start(2);
    const code = await server.exited;
    assert.equal(code, 0, server.lines.slice(-20).join("\n"));
    assert.equal(await again.exited, 0, again.output());
    await Promise.all([0, 1, 3].map((i) => clients[i]!.exited));
    const run = await readRun(out);
    const later = run.records.filter((r) => (r["round"] as number) > 3);
    assert.ok(later.some((r) => (r["clients"] as { accepted: string[] }).accepted.includes("client-0002")), "the restarted client is used again");
    for (const r of later) assert.deepEqual(r["failures"], [], `round ${r["round"]}: no missing-base failure, the base was cached`);
    assert.doesNotMatch(again.output(), /backbone .* downloaded/, "the restarted client did not download the backbone again");
  });

  test("with 30% of the clients never answering, the run completes (short rounds are retried with a fresh sample)", async () => {
    const cfg = {
      ...base,
      rounds: 3,
      clients: { count: 10, perRound: 5, partition: "iid" },
      strategy: { name: "fedavg" },
      deployment: { heartbeatSeconds: 2, roundTimeoutSeconds: 6, minReplyFraction: 0.5, maxRoundAttempts: 6 },
    };
    const cfgPath = await h.writeConfig("silent.json", cfg);
    const ids = Array.from({ length: 10 }, (_, i) => `s${i}`);
    const tokens = await h.tokens(ids);
    const server = h.server(["--config", cfgPath, "--state", join(dir, "silent.db"), "--out", join(dir, "silent-out"), "--tokens", tokens.file]);
    const port = await server.port;
    // Partitions 0-6 answer (one process, seven identities); 7-9 join, heartbeat and never answer.
    const file = await h.writeConfig("silent-tokens.json", Object.fromEntries([0, 1, 2, 3, 4, 5, 6].map((i) => [String(i), tokens.tokens.get(`s${i}`)!])));
    const answering = h.client(port, "", ["--dataset", "mnist", "--partition", "0-6", "--tokens-file", file, "--cache", join(dir, "silent-cache")]);
    const stops = await Promise.all([7, 8, 9].map((i) => silentClient(port, tokens.tokens.get(`s${i}`)!, i)));
    const code = await server.exited;
    assert.equal(code, 0, server.lines.slice(-30).join("\n"));
    assert.equal(await answering.exited, 0, answering.output());
    for (const stop of stops) stop();
    const run = await readRun(join(dir, "silent-out"));
    assert.equal(run.records.length, 3);
    const silentFailures = run.records.flatMap((r) => [...((r["failures"] as { clientId: string; code: string }[]) ?? []), ...(((r["retriedAttempts"] as { failures: { clientId: string; code: string }[] }[]) ?? []).flatMap((a) => a.failures))]);
    for (const f of silentFailures) {
      assert.match(f.clientId, /client-000[789]/, `a failure of an answering client: ${JSON.stringify(f)}`);
      assert.equal(f.code, "deadline-exceeded", JSON.stringify(f));
    }
  });
});
