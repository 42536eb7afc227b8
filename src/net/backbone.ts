/**
 * @module net/backbone
 * The pre-trained backbone as one content-addressed object, so a client that does not hold it can
 * download it from the server (in chunks, resumable) and a client that does can prove it by hash.
 * The object is a safetensors file: the checkpoint's float32 weights plus its config.json in the
 * `safl.config` metadata entry. It is built deterministically from the checkpoint directory, so its
 * SHA-256 names the backbone: Join refuses a client that holds another one.
 */
import { createHash } from "node:crypto";
import { ErrorCode, SaflError } from "../errors.js";
import { loadCheckpoint } from "../io/checkpoint.js";
import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32 } from "../io/safetensors.js";
import { parseVitConfig, type VitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { buildVit } from "../nn/vit.js";

export interface BackboneObject {
  readonly bytes: Uint8Array;
  readonly sha256: string;
  readonly config: VitConfig;
  readonly params: ParamStore;
}

export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/** The backbone object of a checkpoint directory. */
export async function packBackbone(dir: string): Promise<BackboneObject> {
  const ckpt = await loadCheckpoint(dir);
  const names = ckpt.params.names().sort();
  const bytes = serializeSafetensors(new Map(names.map((n) => [n, fromFloat32(ckpt.params.get(n), [...ckpt.params.shape(n)])])), { format: "pt", "safl.config": JSON.stringify(ckpt.config) });
  return { bytes, sha256: sha256Hex(bytes), config: ckpt.config, params: ckpt.params };
}

/** Reads a backbone object (downloaded or cached); `expectedSha256` guards against a corrupt or foreign file. */
export function unpackBackbone(bytes: Uint8Array, expectedSha256: string | undefined, where: string): BackboneObject {
  const sha256 = sha256Hex(bytes);
  if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
    throw new SaflError(ErrorCode.Checkpoint, `${where}: the backbone's SHA-256 is ${sha256}, expected ${expectedSha256}`);
  }
  const file = parseSafetensors(bytes, where);
  const text = file.metadata?.["safl.config"];
  if (text === undefined) throw new SaflError(ErrorCode.Checkpoint, `${where}: not a backbone object (no safl.config metadata)`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SaflError(ErrorCode.Checkpoint, `${where}: safl.config is not valid JSON: ${(e as Error).message}`);
  }
  const config = parseVitConfig(raw, `${where} safl.config`);
  const specs = buildVit(config).registry.specs;
  const params = new ParamStore();
  for (const [name, entry] of file.tensors) if (specs.has(name)) params.set(name, entry.shape, toFloat32(entry, name));
  params.check(specs.values(), where);
  return { bytes, sha256, config, params };
}
