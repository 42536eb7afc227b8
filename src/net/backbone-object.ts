/**
 * @module net/backbone-object
 * Reading the backbone object a client downloaded or cached (see net/backbone for what it is and
 * how the server packs it): verify its SHA-256, parse the safetensors file and its `safl.config`,
 * and load the weights the ViT of that config has. Platform-free, so Node and browser clients
 * share it.
 */
import { ErrorCode, SaflError } from "../errors.js";
import { parseSafetensors, toFloat32 } from "../io/safetensors.js";
import { parseVitConfig, type VitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { buildVit } from "../nn/vit.js";
import { sha256Hex } from "../util/sha256.js";

export interface BackboneObject {
  readonly bytes: Uint8Array;
  readonly sha256: string;
  readonly config: VitConfig;
  readonly params: ParamStore;
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
