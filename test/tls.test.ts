/**
 * TLS of a deployed run, with real processes and a throwaway CA made by `openssl` (the commands of
 * docs/deployment.md, "Certificates"):
 * - a 2-round FedAvg run over TLS with `safl client --ca` completes;
 * - a browser-style HTTP/1.1 Connect request (JSON) reaches the server and gets a Connect error
 *   (Unauthenticated without a token), so allowHTTP1 works;
 * - a client without `--ca` (the certificate is not trusted) exits at once with a message naming
 *   --ca, instead of retrying forever;
 * - `--insecure` on a non-loopback address without `--insecure-anywhere` is refused with exit 2;
 * - with `--tls-client-ca`, a Node client without a client certificate is refused in the TLS
 *   handshake, one with it joins (in process, and `safl client --cert --key`).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { FederationService } from "../src/net/gen/safl/v1/federation_pb.js";
import { PROTOCOL_VERSION } from "../src/net/protocol.js";
import { tlsErrorCode } from "../src/net/tls-errors.js";
import { Harness, readRun } from "./deploy-harness.js";

const config = {
  seed: 0,
  rounds: 2,
  data: { dataset: "mnist", classes: "5-9", trainLimit: 200 },
  clients: { count: 2, perRound: 2 },
  strategy: { name: "fedavg" },
  training: { localSteps: 2, batch: 8 },
  execution: { workers: 0, threads: 1 },
  deployment: { heartbeatSeconds: 2 },
};

/**
 * The openssl commands of docs/deployment.md ("Certificates"), run in `dir`: a CA, a server
 * certificate for 127.0.0.1 and localhost, and a client certificate for mutual TLS.
 */
export async function makeCertificates(dir: string): Promise<{ ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }> {
  const ossl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  // The CA.
  ossl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "365", "-subj", "/CN=safl test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  // The server: a key and request, signed by the CA with the names clients connect to.
  ossl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  await writeFile(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "365", "-out", "server.pem", "-extfile", "server.ext");
  // A client certificate for mutual TLS (--tls-client-ca on the server, --cert/--key on the client).
  ossl("req", ...ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=safl-client-0");
  await writeFile(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  ossl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "365", "-out", "client.pem", "-extfile", "client.ext");
  return { ca: join(dir, "ca.pem"), serverCert: join(dir, "server.pem"), serverKey: join(dir, "server.key"), clientCert: join(dir, "client.pem"), clientKey: join(dir, "client.key") };
}

/** One HTTP/1.1 request as a browser's fetch would send it: Connect protocol, JSON body. */
function http1Connect(port: number, ca: string, path: string, body: unknown): Promise<{ status: number; httpVersion: string; contentType: string; body: string }> {
  const agent = new Agent({ ca, ALPNProtocols: ["http/1.1"] });
  return new Promise<{ status: number; httpVersion: string; contentType: string; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        timeout: 15_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, httpVersion: res.httpVersion, contentType: String(res.headers["content-type"] ?? ""), body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("HTTP/1.1 request timed out")));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  }).finally(() => agent.destroy());
}

/** The exit code, or a note that the process was still running after `ms` (a client that hangs in a retry loop). */
async function within(exited: Promise<number | null>, ms: number): Promise<number | null | string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((res) => (timer = setTimeout(() => res(`still running after ${ms / 1000} s`), ms)));
  try {
    return await Promise.race([exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

let dir = "";
let h: Harness;
let certs: Awaited<ReturnType<typeof makeCertificates>>;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "safl-tls-"));
  h = new Harness(dir);
  certs = await makeCertificates(dir);
});
after(async () => {
  h.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("TLS", { timeout: 600_000 }, () => {
  test("the openssl commands make a chain that verifies, with the server's subjectAltName", () => {
    const v = execFileSync("openssl", ["verify", "-CAfile", certs.ca, certs.serverCert, certs.clientCert], { encoding: "utf8" });
    assert.match(v, /server\.pem: OK/);
    assert.match(v, /client\.pem: OK/);
    const san = execFileSync("openssl", ["x509", "-in", certs.serverCert, "-noout", "-ext", "subjectAltName"], { encoding: "utf8" });
    assert.match(san, /IP Address:127\.0\.0\.1/);
    assert.match(san, /DNS:localhost/);
  });

  test("a 2-round FedAvg run over TLS with --ca completes; HTTP/1.1 Connect works; a client without --ca fails at once", async () => {
    const cfgPath = await h.writeConfig("tls.json", config);
    const tokens = await h.tokens(["t0", "t1", "t-untrusted"]);
    const out = join(dir, "tls-out");
    const server = h.server(["--config", cfgPath, "--state", join(dir, "tls.db"), "--out", out, "--tokens", tokens.file], "127.0.0.1:0", { tls: { cert: certs.serverCert, key: certs.serverKey } });
    const port = await server.port;
    assert.ok(server.lines.some((l) => l.includes(`listening on https://127.0.0.1:${port}`)), server.lines.join("\n"));

    // A browser: HTTP/1.1 (no h2 in ALPN), the Connect protocol with JSON, no token.
    const ca = await readFile(certs.ca, "utf8");
    const r = await http1Connect(port, ca, "/safl.v1.FederationService/Heartbeat", { sessionId: "none" });
    assert.equal(r.httpVersion, "1.1");
    assert.equal(r.status, 401, r.body);
    assert.match(r.contentType, /^application\/json/);
    const err = JSON.parse(r.body) as { code?: string; message?: string };
    assert.equal(err.code, "unauthenticated", r.body);

    // Without --ca the server's certificate is not trusted: a clear message and exit 2, not a retry loop.
    const started = Date.now();
    const untrusted = h.client(port, tokens.tokens.get("t-untrusted")!, ["--dataset", "mnist", "--partition", "0", "--cache", join(dir, "cache-untrusted")], { tls: {} });
    const untrustedCode = await within(untrusted.exited, 60_000);
    assert.equal(untrustedCode, 2, untrusted.output());
    assert.ok(Date.now() - started < 60_000);
    assert.match(untrusted.output(), /TLS certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted/);
    assert.match(untrusted.output(), /--ca/);
    assert.equal((untrusted.output().match(/retrying/g) ?? []).length, 0, "no retries");

    const clients = [0, 1].map((i) =>
      h.client(port, tokens.tokens.get(`t${i}`)!, ["--dataset", "mnist", "--partition", String(i), "--cache", join(dir, `cache-${i}`)], { tls: { ca: certs.ca } }),
    );
    assert.equal(await server.exited, 0, server.lines.slice(-30).join("\n"));
    const codes = await Promise.all(clients.map((c) => c.exited));
    for (const [i, c] of codes.entries()) assert.equal(c, 0, `client ${i}:\n${clients[i]!.output().slice(-2000)}`);
    for (const c of clients) assert.match(c.output(), /run finished \(2 rounds/);
    const run = await readRun(out);
    assert.equal(run.records.length, 2);
    for (const rec of run.records) assert.deepEqual([...(rec["clients"] as { accepted: string[] }).accepted].sort(), ["client-0000", "client-0001"]);
    assert.ok(server.lines.some((l) => /joined: client-0000 .*from 127\.0\.0\.1/.test(l)), "the join log names the remote address");
  });

  test("--insecure on a non-loopback address without --insecure-anywhere is refused with exit 2", async () => {
    const cfgPath = await h.writeConfig("insecure.json", config);
    const tokens = await h.tokens(["i0"]);
    const server = h.server(["--config", cfgPath, "--state", join(dir, "insecure.db"), "--out", join(dir, "insecure-out"), "--tokens", tokens.file], "0.0.0.0:0");
    assert.equal(await server.exited, 2, server.lines.join("\n"));
    assert.match(server.lines.join("\n"), /--insecure serves plaintext; it is only allowed on loopback .* not on 0\.0\.0\.0, unless --insecure-anywhere/);
    await assert.rejects(server.port, /exited \(2\) before listening/);
  });

  test("with --tls-client-ca a client without a certificate is refused, one with it joins", async () => {
    const cfgPath = await h.writeConfig("mtls.json", config);
    const tokens = await h.tokens(["m0", "m1", "m-nocert", "m-node"]);
    const server = h.server(["--config", cfgPath, "--state", join(dir, "mtls.db"), "--out", join(dir, "mtls-out"), "--tokens", tokens.file], "127.0.0.1:0", {
      tls: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.ca },
    });
    const port = await server.port;
    const [ca, cert, key] = await Promise.all([certs.ca, certs.clientCert, certs.clientKey].map((f) => readFile(f, "utf8")));
    const managers: Http2SessionManager[] = [];
    const nodeClient = (nodeOptions: { ca: string; cert?: string; key?: string }) => {
      const sessionManager = new Http2SessionManager(`https://127.0.0.1:${port}`, {}, nodeOptions);
      managers.push(sessionManager);
      return createClient(
        FederationService,
        createGrpcTransport({
          baseUrl: `https://127.0.0.1:${port}`,
          sessionManager,
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${tokens.tokens.get("m-node")!}`);
              return next(req);
            },
          ],
        }),
      );
    };

    // Node, no client certificate: the TLS handshake is refused (the server sends "certificate required").
    const refused = await nodeClient({ ca })
      .join({ protocolVersion: PROTOCOL_VERSION, partitionRequest: "1", device: { kind: "test", threads: 1, platform: "test" } }, { timeoutMs: 15_000 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(refused instanceof ConnectError, `refused: ${String(refused)}`);
    assert.notEqual(refused.code, Code.Unauthenticated, "refused in the handshake, before any RPC");
    assert.match(tlsErrorCode(refused)?.code ?? String(refused), /ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ERR_SSL_SSLV3_ALERT_(BAD_CERTIFICATE|HANDSHAKE_FAILURE)/);

    // Node, with the client certificate: the Join is answered.
    const joined = await nodeClient({ ca, cert, key }).join({ protocolVersion: PROTOCOL_VERSION, partitionRequest: "1", device: { kind: "test", threads: 1, platform: "test" } }, { timeoutMs: 15_000 });
    assert.ok(joined.sessionId.length > 0);
    await server.waitFor(/joined: client-0001 \(token m-node\), test, 1 threads, from 127\.0\.0\.1/, 15_000);

    // safl client without --cert/--key: a clear message and exit 2, no retry loop.
    const nocert = h.client(port, tokens.tokens.get("m-nocert")!, ["--dataset", "mnist", "--partition", "0", "--cache", join(dir, "cache-m-nocert")], { tls: { ca: certs.ca } });
    const nocertCode = await within(nocert.exited, 60_000);
    assert.equal(nocertCode, 2, nocert.output());
    assert.match(nocert.output(), /refused the TLS handshake .*client certificate.*--cert <client\.pem> --key <client\.key>/);

    // safl client with --cert/--key joins.
    const withCert = h.client(port, tokens.tokens.get("m0")!, ["--dataset", "mnist", "--partition", "0", "--cache", join(dir, "cache-m0")], {
      tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
    });
    await server.waitFor(/joined: client-0000 \(token m0\), node, 1 threads, from 127\.0\.0\.1/, 60_000);
    withCert.proc.kill("SIGTERM");
    assert.equal(await withCert.exited, 0, withCert.output());
    for (const m of managers) m.abort();
    server.proc.kill("SIGTERM");
    await server.exited;
  });

  test("safl client refuses a --key that does not belong to --cert before connecting", async () => {
    const c = h.client(1, "safl_x_y", ["--dataset", "mnist", "--partition", "0", "--cache", join(dir, "cache-badkey")], { tls: { ca: certs.ca, cert: certs.clientCert, key: certs.serverKey } });
    assert.equal(await c.exited, 2, c.output());
    assert.match(c.output(), /the --key does not belong to the --cert/);
  });
});
