/**
 * End-to-end smoke test of the protocol toolchain: the generated FederationService served by
 * connect-node on a cleartext HTTP/2 (h2c) server, called from Node over all three protocols
 * (gRPC, Connect, gRPC-web). Checks a Join whose identity comes from the `authorization` header, a
 * 10 MB content-addressed object downloaded in 4 MiB chunks (and resumed mid-way) that reassembles
 * byte-identically, and that a request over the server's readMaxBytes is refused with
 * RESOURCE_EXHAUSTED. The server and every client connection are closed at the end.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type ConnectRouter, type Transport } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { FederationService, ObjectKind } from "./gen/safl/v1/federation_pb.js";

const MiB = 1024 * 1024;
const MAX_CHUNK = 4 * MiB;
// Requests are small except PushObject chunks; allow one chunk plus envelope.
const READ_MAX = MAX_CHUNK + 64 * 1024;
const WRITE_MAX = MAX_CHUNK + 64 * 1024;
const OBJECT_BYTES = 10_000_000;

// Deterministic, incompressible-looking content (xorshift32), so misplaced chunks cannot match.
const object = (() => {
  const out = new Uint8Array(OBJECT_BYTES);
  let x = 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
})();
const objectId = createHash("sha256").update(object).digest("hex");
const TOKENS = new Map([["tok-alice-7f3a", "alice"]]);

const routes = (router: ConnectRouter) =>
  router.service(FederationService, {
    join(req, ctx) {
      const m = /^Bearer (\S+)$/.exec(ctx.requestHeader.get("authorization") ?? "");
      const clientId = m ? TOKENS.get(m[1]!) : undefined;
      if (clientId === undefined) throw new ConnectError("missing or unknown bearer token", Code.Unauthenticated);
      return {
        sessionId: `session-${clientId}`,
        runId: "run-smoke",
        clientId,
        protocolVersion: req.protocolVersion,
        backboneSha256: objectId,
        backboneObject: { id: objectId, size: BigInt(object.length), kind: ObjectKind.BACKBONE },
        heartbeatSeconds: 15,
        maxChunkBytes: MAX_CHUNK,
        runConfigJson: JSON.stringify({ clients: 8, partition: "dirichlet" }),
        partitionIndex: req.partitionRequest === undefined ? -1 : Number(req.partitionRequest),
      };
    },
    pullObject(req) {
      if (req.objectId !== objectId) throw new ConnectError(`unknown object ${req.objectId}`, Code.NotFound);
      if (req.offset > BigInt(object.length)) throw new ConnectError("offset past the end", Code.OutOfRange);
      const offset = Number(req.offset);
      const want = req.maxBytes === 0 ? MAX_CHUNK : Math.min(req.maxBytes, MAX_CHUNK);
      const end = Math.min(offset + want, object.length);
      return {
        objectId,
        offset: req.offset,
        data: object.subarray(offset, end),
        totalSize: BigInt(object.length),
        last: end === object.length,
      };
    },
  });

const server = http2.createServer(connectNodeAdapter({ routes, readMaxBytes: READ_MAX, writeMaxBytes: WRITE_MAX }));
const serverSessions = new Set<http2.ServerHttp2Session>();
server.on("session", (s) => {
  serverSessions.add(s);
  s.on("close", () => serverSessions.delete(s));
});
const managers: Http2SessionManager[] = [];
let baseUrl = "";

before(async () => {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const m of managers) m.abort();
  for (const s of serverSessions) s.close();
  await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
});

const manager = () => {
  const m = new Http2SessionManager(baseUrl);
  managers.push(m);
  return m;
};

const transports: ReadonlyArray<readonly [string, () => Transport]> = [
  ["gRPC", () => createGrpcTransport({ baseUrl, sessionManager: manager() })],
  ["Connect", () => createConnectTransport({ baseUrl, httpVersion: "2", sessionManager: manager() })],
  ["gRPC-web", () => createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager: manager() })],
];

const auth = { authorization: "Bearer tok-alice-7f3a" };
const codeOf = (e: unknown) => ConnectError.from(e).code;

for (const [name, makeTransport] of transports) {
  describe(`FederationService over ${name} (h2c)`, { timeout: 120_000 }, () => {
    let client: ReturnType<typeof createClient<typeof FederationService>>;
    before(() => {
      client = createClient(FederationService, makeTransport());
    });

    test("Join takes the identity from the authorization header", async () => {
      const res = await client.join(
        {
          protocolVersion: 1,
          backboneSha256: "",
          clientSoftware: "sa-fedlora/smoke",
          device: { kind: "node", threads: 2, platform: "linux x64" },
          heldObjects: [],
          partitionRequest: "3",
        },
        { headers: auth },
      );
      assert.equal(res.clientId, "alice");
      assert.equal(res.sessionId, "session-alice");
      assert.equal(res.runId, "run-smoke");
      assert.equal(res.protocolVersion, 1);
      assert.equal(res.backboneSha256, objectId);
      assert.equal(res.backboneObject?.id, objectId);
      assert.equal(res.backboneObject?.size, BigInt(OBJECT_BYTES));
      assert.equal(res.backboneObject?.kind, ObjectKind.BACKBONE);
      assert.equal(res.heartbeatSeconds, 15);
      assert.equal(res.maxChunkBytes, MAX_CHUNK);
      assert.deepEqual(JSON.parse(res.runConfigJson), { clients: 8, partition: "dirichlet" });
      assert.equal(res.partitionIndex, 3);

      const bare = await client.join({ protocolVersion: 1 }, { headers: auth });
      assert.equal(bare.partitionIndex, -1);
      await assert.rejects(client.join({ protocolVersion: 1 }), (e) => codeOf(e) === Code.Unauthenticated);
      await assert.rejects(
        client.join({ protocolVersion: 1 }, { headers: { authorization: "Bearer wrong" } }),
        (e) => codeOf(e) === Code.Unauthenticated,
      );
    });

    test("a 10 MB object downloads in 4 MiB chunks and reassembles byte-identically", async () => {
      const chunks: Uint8Array[] = [];
      const sizes: number[] = [];
      const lasts: boolean[] = [];
      let offset = 0n;
      for (;;) {
        // Ask for more than the server's cap: the server still sends at most 4 MiB.
        const res = await client.pullObject({ sessionId: "session-alice", objectId, offset, maxBytes: 8 * MiB }, { headers: auth });
        assert.equal(res.objectId, objectId);
        assert.equal(res.offset, offset);
        assert.equal(res.totalSize, BigInt(OBJECT_BYTES));
        chunks.push(res.data);
        sizes.push(res.data.length);
        lasts.push(res.last);
        offset += BigInt(res.data.length);
        if (res.last) break;
        assert.ok(sizes.length < 10, "download does not end");
      }
      assert.deepEqual(sizes, [MAX_CHUNK, MAX_CHUNK, OBJECT_BYTES - 2 * MAX_CHUNK]);
      assert.deepEqual(lasts, [false, false, true]);
      const whole = Buffer.concat(chunks);
      assert.equal(whole.length, OBJECT_BYTES);
      assert.ok(whole.equals(object), "reassembled bytes differ from the object");
      assert.equal(createHash("sha256").update(whole).digest("hex"), objectId);

      // Resume from an arbitrary offset with the server's default chunk size.
      const resumed = await client.pullObject({ sessionId: "session-alice", objectId, offset: 5_000_001n, maxBytes: 0 }, { headers: auth });
      assert.equal(resumed.data.length, MAX_CHUNK);
      assert.ok(Buffer.from(resumed.data).equals(object.subarray(5_000_001, 5_000_001 + MAX_CHUNK)));
      assert.equal(resumed.last, false);
      await assert.rejects(
        client.pullObject({ sessionId: "session-alice", objectId: "00".repeat(32), offset: 0n }, { headers: auth }),
        (e) => codeOf(e) === Code.NotFound,
      );
    });

    test("a request over readMaxBytes is refused with RESOURCE_EXHAUSTED", async () => {
      await assert.rejects(
        client.join({ protocolVersion: 1, clientSoftware: "x".repeat(READ_MAX + 1) }, { headers: auth }),
        (e) => {
          assert.equal(codeOf(e), Code.ResourceExhausted, String(e));
          return true;
        },
      );
      // The connection stays usable afterwards.
      const res = await client.join({ protocolVersion: 1 }, { headers: auth });
      assert.equal(res.clientId, "alice");
    });
  });
}
