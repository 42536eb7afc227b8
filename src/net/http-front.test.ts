/**
 * The server's front (net/http-front) on one cleartext loopback port: the service answers over
 * HTTP/2 (gRPC, as Node clients call it) and over HTTP/1.1 (Connect and gRPC-Web, as browsers call
 * it); other paths reach the page handler, unknown ones get 404, a throwing page handler 500, and
 * close() ends connections that are still open.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { FederationService } from "./gen/safl/v1/federation_pb.js";
import { auth, type Fixture, joinRequest, startFixture } from "./hub-fixture.test.util.js";
import { type Front, listenFront } from "./http-front.js";
import { PROTOCOL_VERSION } from "./protocol.js";
import { federationHandler } from "./routes.js";

/** A plain HTTP/1.1 GET (fetch would do too; this one also reports the protocol version). */
function get(url: string): Promise<{ status: number; body: string; httpVersion: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, httpVersion: res.httpVersion, headers: res.headers }));
      })
      .on("error", reject);
  });
}

describe("net/http-front", () => {
  let f: Fixture;
  let front: Front;
  let base: string;
  before(async () => {
    f = await startFixture();
    front = await listenFront({
      host: "127.0.0.1",
      port: 0,
      rpc: federationHandler(f.hub),
      pages: (req, res) => {
        if (req.url === "/hello") {
          res.writeHead(200, { "content-type": "text/plain" });
          res.end(`hello over ${req.httpVersion}`);
          return true;
        }
        if (req.url === "/boom") throw new Error("a page handler bug");
        return false;
      },
    });
    base = `http://127.0.0.1:${front.address.port}`;
  });
  after(async () => {
    await front?.close();
    await f?.close();
  });

  for (const [name, make] of [
    ["gRPC over h2c", () => createGrpcTransport({ baseUrl: base })],
    ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl: base, httpVersion: "1.1" })],
    ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" })],
    ["Connect over h2c", () => createConnectTransport({ baseUrl: base, httpVersion: "2" })],
  ] as const) {
    it(`serves the service: ${name}`, async () => {
      const c = createClient(FederationService, make());
      const j = await c.join(joinRequest(), auth(f.tokens.alice));
      assert.equal(j.protocolVersion, PROTOCOL_VERSION);
      assert.match(j.sessionId, /\S/);
      await c.leave({ sessionId: j.sessionId, reason: "test" }, auth(f.tokens.alice));
      // The per-address rate limit sees the peer, also through a sniffed h2c connection.
      assert.match(f.logs.filter((l) => l.startsWith("joined:")).at(-1) ?? "", /from 127\.0\.0\.1$/);
    });
  }

  it("routes other paths to the page handler over HTTP/1.1, 404 for unknown ones, 500 for a throwing handler", async () => {
    const hello = await get(`${base}/hello`);
    assert.equal(hello.status, 200);
    assert.equal(hello.body, "hello over 1.1");
    const missing = await get(`${base}/nothing-here`);
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { error: "not found" });
    const boom = await get(`${base}/boom`);
    assert.equal(boom.status, 500);
  });

  it("close() ends a connection that is still streaming", async () => {
    const other = await listenFront({
      host: "127.0.0.1",
      port: 0,
      rpc: (_req, res) => res.end(),
      pages: (_req, res) => {
        const out = res as http.ServerResponse;
        out.writeHead(200, { "content-type": "text/event-stream" });
        out.write(": open\n\n");
        return true;
      },
    });
    const ended = new Promise<string>((resolve) => {
      http.get(`http://127.0.0.1:${other.address.port}/events`, (res) => {
        res.on("data", () => undefined);
        res.on("close", () => resolve("closed"));
        res.on("error", () => resolve("closed"));
      });
    });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await other.close();
    assert.equal(await ended, "closed");
    assert.ok(Date.now() - t0 < 2000, "close() waited for the open stream");
  });

  it("refuses an address in use with a clear error", async () => {
    await assert.rejects(listenFront({ host: "127.0.0.1", port: front.address.port, rpc: (_q, r) => r.end() }), /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  });
});
