/**
 * @module io/checkpoint
 * HuggingFace checkpoint directories for ViTForImageClassification: `config.json` +
 * `model.safetensors`. Loading validates the config (every problem listed), converts F32/F16/BF16/F64
 * weights to float32, and checks every tensor the config implies is present with the right shape.
 * Saving writes each file to a temporary name and renames it, so a crash leaves no half-written file.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, SaflError } from "../errors.js";
import { type VitConfig, parseVitConfig } from "../nn/config.js";
import { ParamStore } from "../nn/params.js";
import { buildVit } from "../nn/vit.js";
import { type TensorEntry, fromFloat32, toFloat32 } from "./safetensors.js";
import { readSafetensorsFile, writeSafetensorsFile } from "./safetensors-file.js";

export interface Checkpoint {
  config: VitConfig;
  params: ParamStore;
  /** Tensors in the file that the model does not use (e.g. a pooler), left out of `params`. */
  ignored: string[];
}

/** Reads and validates `<dir>/config.json`. */
export async function readConfig(dir: string): Promise<VitConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SaflError(ErrorCode.Io, `cannot read ${path}${code === "ENOENT" ? ": no such file (a model directory holds config.json and model.safetensors)" : `: ${(e as Error).message}`}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SaflError(ErrorCode.Io, `${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseVitConfig(raw, path);
}

/** Loads a HF ViTForImageClassification directory. */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const config = await readConfig(dir);
  const path = join(dir, "model.safetensors");
  const file = await readSafetensorsFile(path);
  const specs = buildVit(config).registry.specs;
  const params = new ParamStore();
  const ignored: string[] = [];
  for (const [name, entry] of file.tensors) {
    if (!specs.has(name)) {
      ignored.push(name);
      continue;
    }
    params.set(name, entry.shape, toFloat32(entry, name));
  }
  params.check(specs.values(), path);
  return { config, params, ignored };
}

/** Writes a checkpoint directory (config.json + model.safetensors) atomically per file. */
export async function saveCheckpoint(dir: string, config: VitConfig, params: ParamStore, extraConfig: Record<string, unknown> = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tensors = new Map<string, TensorEntry>();
  for (const name of params.names()) tensors.set(name, fromFloat32(params.get(name), [...params.shape(name)]));
  await writeSafetensorsFile(join(dir, "model.safetensors"), tensors, { format: "pt" });
  const id2label = config.id2label ?? Object.fromEntries(Array.from({ length: config.num_labels }, (_, i) => [String(i), `LABEL_${i}`]));
  const label2id = Object.fromEntries(Object.entries(id2label).map(([k, v]) => [v, Number(k)]));
  const json = { ...config, architectures: ["ViTForImageClassification"], model_type: "vit", id2label, label2id, ...extraConfig };
  await writeTextAtomic(join(dir, "config.json"), `${JSON.stringify(json, null, 2)}\n`);
}

/** Writes text to a temporary file next to `path`, then renames it into place. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new SaflError(ErrorCode.Io, `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}
