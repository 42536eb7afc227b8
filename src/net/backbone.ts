/**
 * @module net/backbone
 * The pre-trained backbone as one content-addressed object, so a client that does not hold it can
 * download it from the server (in chunks, resumable) and a client that does can prove it by hash.
 * The object is a safetensors file: the checkpoint's float32 weights plus its config.json in the
 * `safl.config` metadata entry. It is built deterministically from the checkpoint directory, so its
 * SHA-256 names the backbone: Join refuses a client that holds another one. Packing reads the
 * checkpoint from disk (Node); reading an object is platform-free (net/backbone-object).
 */
import { createHash } from "node:crypto";
import { loadCheckpoint } from "../io/checkpoint.js";
import { fromFloat32, serializeSafetensors } from "../io/safetensors.js";
import type { BackboneObject } from "./backbone-object.js";

export { type BackboneObject, unpackBackbone } from "./backbone-object.js";

export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** The backbone object of a checkpoint directory. */
export async function packBackbone(dir: string): Promise<BackboneObject> {
  const ckpt = await loadCheckpoint(dir);
  const names = ckpt.params.names().sort();
  const bytes = serializeSafetensors(new Map(names.map((n) => [n, fromFloat32(ckpt.params.get(n), [...ckpt.params.shape(n)])])), { format: "pt", "safl.config": JSON.stringify(ckpt.config) });
  return { bytes, sha256: sha256Hex(bytes), config: ckpt.config, params: ckpt.params };
}

