/**
 * @module net/routes
 * The Connect service: each RPC of proto/safl/v1 mapped onto the hub, with the bytes of every
 * request and response counted (protobuf size plus the 5-byte message prefix) into the hub's
 * measured totals. One handler serves Connect, gRPC and gRPC-Web on the same port.
 */
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { createContextKey, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  FederationService,
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  JoinRequestSchema,
  JoinResponseSchema,
  LeaveRequestSchema,
  LeaveResponseSchema,
  PullObjectRequestSchema,
  PullObjectResponseSchema,
  PullTaskRequestSchema,
  PullTaskResponseSchema,
  PushObjectRequestSchema,
  PushObjectResponseSchema,
  PushResultRequestSchema,
  PushResultResponseSchema,
  RunState,
} from "./gen/safl/v1/federation_pb.js";
import { remoteAddressOf } from "./http-front.js";
import type { FederationHub } from "./hub.js";
import { FRAME_PREFIX_BYTES, MAX_MESSAGE_BYTES } from "./protocol.js";

/**
 * The Node request handler of the service, as the server and the tests build it: message limits,
 * the peer's address for rate limits, and no request compression: neither our clients nor browsers
 * compress requests, so decompressing them would only be work an attacker can ask for.
 */
export function federationHandler(hub: FederationHub): ReturnType<typeof connectNodeAdapter> {
  return connectNodeAdapter({
    routes: federationRoutes(hub),
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    acceptCompression: [],
    contextValues: (req) => createContextValues().set(kRemoteAddress, remoteAddressOf(req)),
  });
}

/** The peer's address, set by the server adapter (rate limits are per address). */
/** How often WatchRun sends the client table when no round was committed meanwhile. */
export const CLIENTS_EVERY_MS = 2000;

export const kRemoteAddress = createContextKey<string>("unknown", { description: "remote address" });

export function federationRoutes(hub: FederationHub): (router: ConnectRouter) => void {
  const count = <Q extends DescMessage, D extends DescMessage>(reqSchema: Q, req: MessageShape<Q>, schema: D, res: MessageShape<D>): MessageShape<D> => {
    hub.measured.up += toBinary(reqSchema, req).length + FRAME_PREFIX_BYTES;
    hub.measured.down += toBinary(schema, res).length + FRAME_PREFIX_BYTES;
    return res;
  };
  return (router) =>
    router.service(FederationService, {
      join(req, ctx: HandlerContext) {
        const { response } = hub.join(ctx, req, ctx.values.get(kRemoteAddress));
        return count(JoinRequestSchema, req, JoinResponseSchema, create(JoinResponseSchema, response));
      },
      heartbeat(req, ctx) {
        return count(HeartbeatRequestSchema, req, HeartbeatResponseSchema, create(HeartbeatResponseSchema, hub.heartbeat(ctx, req)));
      },
      async pullTask(req, ctx) {
        return count(PullTaskRequestSchema, req, PullTaskResponseSchema, create(PullTaskResponseSchema, await hub.pullTask(ctx, req)));
      },
      pullObject(req, ctx) {
        return count(PullObjectRequestSchema, req, PullObjectResponseSchema, create(PullObjectResponseSchema, hub.pullObject(ctx, req)));
      },
      pushObject(req, ctx) {
        return count(PushObjectRequestSchema, req, PushObjectResponseSchema, create(PushObjectResponseSchema, hub.pushObject(ctx, req)));
      },
      pushResult(req, ctx) {
        return count(PushResultRequestSchema, req, PushResultResponseSchema, create(PushResultResponseSchema, hub.pushResult(ctx, req)));
      },
      leave(req, ctx) {
        hub.leave(ctx, req);
        return count(LeaveRequestSchema, req, LeaveResponseSchema, create(LeaveResponseSchema, {}));
      },
      // A run's progress as a stream (the browser dashboard uses server-sent events, net/ui; this is
      // the same for any gRPC or Connect client): the state, the client table, then every committed
      // round as it comes and the client table every CLIENTS_EVERY_MS, until the run finishes.
      async *watchRun(_req, ctx) {
        hub.authenticate(ctx);
        const clients = () => ({
          event: {
            case: "clients" as const,
            value: {
              clients: hub.clientTable().map((c) => ({
                clientId: c.id,
                online: c.online,
                state: c.state,
                lastSeenUnixMs: BigInt(c.lastSeenMs),
                deviceKind: c.device.kind,
                imagesPerSecond: c.imagesPerSecond,
                round: c.round,
              })),
            },
          },
        });
        const queue: (string | undefined)[] = [];
        let wake: (() => void) | undefined;
        const stop = hub.watchRounds((json) => {
          queue.push(json);
          wake?.();
        });
        const onAbort = () => wake?.();
        ctx.signal.addEventListener("abort", onAbort);
        try {
          if (hub.isFinished) {
            yield { event: { case: "state", value: RunState.FINISHED } };
            yield clients();
            return;
          }
          yield { event: { case: "state", value: RunState.RUNNING } };
          yield clients();
          while (!hub.isFinished && !ctx.signal.aborted) {
            if (queue.length === 0) {
              await new Promise<void>((resolve) => {
                const t = setTimeout(resolve, CLIENTS_EVERY_MS);
                wake = () => {
                  clearTimeout(t);
                  resolve();
                };
              });
              wake = undefined;
            }
            if (queue.length === 0) {
              yield clients();
              continue;
            }
            const json = queue.shift();
            if (json === undefined) break;
            yield { event: { case: "roundRecordJson", value: json } };
          }
          if (!ctx.signal.aborted) {
            for (const json of queue) if (json !== undefined) yield { event: { case: "roundRecordJson" as const, value: json } };
            yield clients();
            yield { event: { case: "state", value: RunState.FINISHED } };
          }
        } finally {
          stop();
          ctx.signal.removeEventListener("abort", onAbort);
        }
      },
    });
}
