/**
 * @module net/http-front
 * The server's listening socket: one port that speaks HTTP/2 to Node clients (gRPC) and HTTP/1.1 to
 * browsers (Connect and gRPC-Web over fetch, the dashboard and the join page).
 *
 * Why a front of its own: with TLS, Node's HTTP/2 server negotiates HTTP/1.1 by ALPN (`allowHTTP1`),
 * but a cleartext HTTP/2 server (h2c, what `--insecure` on loopback serves) has no negotiation, and
 * browsers never speak h2c. So in cleartext with pages (`--ui`) the front reads the first bytes of
 * each connection: the HTTP/2 connection preface ("PRI * HTTP/2.0…") hands it to the HTTP/2 server,
 * anything else to an HTTP/1.1 server; both call the same request handler. The HTTP/1.1 server
 * takes the bytes already read back (`unshift`); Node's HTTP/2 server reads from the socket's native
 * handle and would miss them, so its connections pass through a small stream that replays them
 * first (slower than the native path, which is why a cleartext server without pages skips sniffing
 * and stays pure h2c, as Node clients need nothing else).
 *
 * Requests are routed by path: the Connect service's paths (`/safl.v1.FederationService/…`) to the
 * RPC handler, everything else to the optional page handler (the `--ui` pages and the demo data),
 * else 404.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { Duplex } from "node:stream";
import { ErrorCode, SaflError } from "../errors.js";

export type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;
export type RequestHandler = (req: AnyRequest, res: AnyResponse) => void;
/** Handles the request and returns true, or returns false to let the front answer 404. */
export type PageHandler = (req: AnyRequest, res: AnyResponse) => boolean;

export interface FrontOptions {
  readonly host: string;
  readonly port: number;
  /** TLS: HTTP/2 with HTTP/1.1 by ALPN; without, cleartext with protocol sniffing. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa?: Buffer };
  /** The Connect service. */
  readonly rpc: RequestHandler;
  /** Pages and other plain HTTP routes, tried for every path outside the service. */
  readonly pages?: PageHandler;
}

export interface Front {
  readonly address: AddressInfo;
  /** Stops listening and ends every open connection (long polls, event streams). */
  close(): Promise<void>;
}

/** How long close() lets open connections finish before it cuts them. */
const CLOSE_GRACE_MS = 1000;

/** The path prefix of the Connect service (package safl.v1, service FederationService). */
export const RPC_PATH_PREFIX = "/safl.v1.FederationService/";
/** HTTP/2 connection preface (RFC 9113 §3.4); its first bytes tell an h2c connection from HTTP/1.1. */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

function notFound(res: AnyResponse): void {
  const body = JSON.stringify({ error: "not found" });
  res.writeHead(404, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * A stream over `socket` that yields `head` (bytes already read from it) before the rest. It carries
 * the peer's address, which net/routes reads for the per-address rate limits.
 */
function replaying(socket: net.Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  Object.defineProperty(d, "remoteAddress", { value: socket.remoteAddress, enumerable: true });
  d.push(head);
  socket.on("data", (chunk: Buffer) => {
    if (!d.push(chunk)) socket.pause();
  });
  socket.on("end", () => d.push(null));
  socket.on("close", () => d.destroy());
  return d;
}

/** The peer's address of a request, also through the replaying stream of a sniffed h2c connection. */
export function remoteAddressOf(req: AnyRequest): string {
  const s = req.socket as (net.Socket & { stream?: { remoteAddress?: string } }) | undefined;
  return s?.remoteAddress ?? s?.stream?.remoteAddress ?? "unknown";
}

/** Starts listening; rejects with a clear error when the address cannot be bound. */
export async function listenFront(o: FrontOptions): Promise<Front> {
  const route: RequestHandler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (path.startsWith(RPC_PATH_PREFIX)) return o.rpc(req, res);
    try {
      if (o.pages?.(req, res)) return;
    } catch {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("internal error");
      } else res.end();
      return;
    }
    notFound(res);
  };
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const onSession = (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // Large objects move faster with a bigger HTTP/2 flow-control window than the 64 KiB default.
    session.setLocalWindowSize?.(16 * 1024 * 1024);
  };
  let listener: net.Server;
  let h1: http.Server | undefined;
  if (o.tls) {
    const s = http2.createSecureServer(
      { cert: o.tls.cert, key: o.tls.key, allowHTTP1: true, ...(o.tls.clientCa ? { ca: o.tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
      route,
    );
    s.on("session", onSession);
    listener = s;
  } else if (!o.pages) {
    const s = http2.createServer(route);
    s.on("session", onSession);
    listener = s;
  } else {
    const h2 = http2.createServer(route);
    h2.on("session", onSession);
    const h1Server = http.createServer(route);
    // Event streams and long polls stay open; Node's default 5 s keep-alive and request timeouts must not cut them.
    h1Server.requestTimeout = 0;
    h1Server.headersTimeout = 60_000;
    h1Server.keepAliveTimeout = 65_000;
    h1 = h1Server;
    listener = net.createServer((socket) => {
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const n = Math.min(head.length, H2_PREFACE.length);
        const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
        // Wait for more bytes only while the connection could still be HTTP/2.
        if (isH2 && n < H2_PREFACE.length) return;
        socket.off("data", onData);
        if (isH2) {
          h2.emit("connection", replaying(socket, head));
        } else {
          socket.pause();
          socket.unshift(head);
          h1Server.emit("connection", socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
      socket.on("error", () => socket.destroy());
    });
  }
  listener.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    listener.once("error", (e: NodeJS.ErrnoException) => reject(new SaflError(ErrorCode.Io, `cannot listen on ${o.host}:${o.port}: ${e.code ?? e.message}`)));
    listener.listen(o.port, o.host, () => resolve());
  });
  const address = listener.address() as AddressInfo;
  return {
    address,
    close: async () => {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      // Gracefully first: answers already handed to the connections (a RunFinished to the last
      // clients) are written out before the connections go; a GOAWAY lets HTTP/2 clients finish
      // their open streams. What is still open after the grace period (long polls, event streams)
      // is cut.
      for (const s of sessions) s.close();
      h1?.closeIdleConnections();
      const until = Date.now() + CLOSE_GRACE_MS;
      while (sockets.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      h1?.closeAllConnections();
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
