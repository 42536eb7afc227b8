/**
 * @module net/snapshot
 * The server's state at a round boundary as bytes for the state file: the strategy's snapshot
 * (its float32 tensors, bit for bit, and its JSON facts) and the driver's checkpoint (round, RNG
 * state, running totals), in one safetensors blob with the JSON parts in its metadata. Decoding
 * checks what it reads; a blob from another build or a corrupt file is one clear error.
 */
import { ErrorCode, SaflError } from "../errors.js";
import type { DriverCheckpoint } from "../fl/driver.js";
import type { StrategySnapshot } from "../fl/strategy.js";
import { fromFloat32, parseSafetensors, serializeSafetensors, toFloat32 } from "../io/safetensors.js";

const FORMAT = "safl-boundary-1";

export function encodeBoundary(strategy: StrategySnapshot, driver: DriverCheckpoint): Uint8Array {
  const tensors = new Map([...strategy.tensors].map(([n, t]) => [n, fromFloat32(t.data, [...t.shape])]));
  return serializeSafetensors(tensors, { "safl.format": FORMAT, "safl.strategy": JSON.stringify(strategy.meta), "safl.driver": JSON.stringify(driver) });
}

export function decodeBoundary(bytes: Uint8Array, where: string): { strategy: StrategySnapshot; driver: DriverCheckpoint } {
  const file = parseSafetensors(bytes, where);
  const md = file.metadata ?? {};
  if (md["safl.format"] !== FORMAT) throw new SaflError(ErrorCode.Checkpoint, `${where}: not a round-boundary snapshot of this version (format ${JSON.stringify(md["safl.format"] ?? null)}, expected ${FORMAT})`);
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(md[key] ?? "");
    } catch {
      throw new SaflError(ErrorCode.Checkpoint, `${where}: the snapshot's ${key} is not valid JSON`);
    }
  };
  const meta = parse("safl.strategy");
  const driver = parse("safl.driver") as DriverCheckpoint;
  if (meta === null || typeof meta !== "object" || typeof driver?.round !== "number" || typeof driver.rng?.state !== "number") {
    throw new SaflError(ErrorCode.Checkpoint, `${where}: the snapshot's strategy facts or driver checkpoint are malformed`);
  }
  const tensors = new Map([...file.tensors].map(([n, e]) => [n, { shape: e.shape, data: toFloat32(e, n) }]));
  return { strategy: { tensors, meta: meta as Record<string, unknown> }, driver };
}
