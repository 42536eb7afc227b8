/**
 * @module net/join-pages
 * The HTTP route the browser client needs beside the service: `GET /api/demo-partition`, the demo
 * data of the partition the caller plays, so a page that joined with a partition trains on exactly
 * the examples `safl client --partition I` (and virtual client I of the simulation) trains on.
 *
 * The caller authenticates with the same bearer token as its RPCs and must have joined with a
 * partition first (Join assigns it; the route never lets a token read another partition). The answer
 * is a safetensors file: `train.pixel_values` [N,C,H,W] and `train.labels` [N] (float32: class ids
 * are small integers, exact in float32), the same for `test.` when the run holds out local test
 * data, and in the metadata the model config with the run's labels (`safl.config`) and the class
 * ids. Encoded once per partition and kept, since every reload of a page asks again.
 */
import { ConnectError } from "@connectrpc/connect";
import { subset } from "../data/dataset.js";
import { fromFloat32, serializeSafetensors } from "../io/safetensors.js";
import type { AnyResponse, PageHandler } from "./http-front.js";
import type { PageContext } from "./server.js";
import { redact } from "./token-format.js";

export const DEMO_PARTITION_PATH = "/api/demo-partition";

function sendJson(res: AnyResponse, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store", "cross-origin-resource-policy": "same-origin" });
  res.end(text);
}

export function joinRoutes(ctx: PageContext): PageHandler {
  const encoded = new Map<number, Uint8Array>();
  const encode = (index: number): Uint8Array => {
    let bytes = encoded.get(index);
    if (!bytes) {
      const { task, clients, config } = ctx.setup;
      const vc = clients[index]!;
      const tensors = new Map<string, ReturnType<typeof fromFloat32>>();
      const put = (prefix: string, indices: readonly number[]) => {
        const ds = subset(task.train, indices);
        tensors.set(`${prefix}.pixel_values`, fromFloat32(ds.images, [ds.count, ds.channels, ds.height, ds.width]));
        tensors.set(`${prefix}.labels`, fromFloat32(Float32Array.from(ds.labels), [ds.count]));
      };
      put("train", vc.train);
      if (vc.test) put("test", vc.test);
      bytes = serializeSafetensors(tensors, { format: "pt", "safl.config": JSON.stringify(config), "safl.classes": JSON.stringify(task.classes), "safl.dataset": task.dataset, "safl.client": vc.clientId });
      encoded.set(index, bytes);
    }
    return bytes;
  };
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== DEMO_PARTITION_PATH) return false;
    if (req.method !== "GET") {
      sendJson(res, 405, { error: `${DEMO_PARTITION_PATH} takes GET, not ${req.method}` });
      return true;
    }
    let who: { tokenId: string; partition: number | undefined };
    try {
      who = ctx.hub.partitionOfBearer(req.headers["authorization"]);
    } catch (e) {
      sendJson(res, 401, { error: redact(ConnectError.from(e).rawMessage) });
      return true;
    }
    if (who.partition === undefined) {
      sendJson(res, 409, { error: `client "${who.tokenId}" plays no demo partition: join with a partition first (JoinRequest.partition_request)` });
      return true;
    }
    const bytes = encode(who.partition);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length, "cache-control": "no-store", "cross-origin-resource-policy": "same-origin" });
    res.end(bytes);
    return true;
  };
}
