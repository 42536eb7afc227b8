/**
 * @module io
 * Files: safetensors (the codec is platform-free; reading and writing files uses node:fs),
 * HuggingFace ViT checkpoint directories (config.json + model.safetensors), adapters in the PEFT
 * layout (adapter_config.json + adapter_model.safetensors), and where the package's shipped files
 * are (the default backbone). Node-only as a whole; a browser bundle should take the codec from
 * here only through a bundler that drops unused modules.
 */

// safetensors bytes <-> tensors (platform-free).
export {
  DTYPE_ITEMSIZE,
  METADATA_KEY,
  type SafetensorsDType,
  type SafetensorsFile,
  type TensorCollection,
  type TensorEntry,
  fromBigInt64,
  fromFloat32,
  fromFloat64,
  isSafetensorsDType,
  parseSafetensors,
  serializeSafetensors,
  toBigInt64,
  toFloat32,
  toFloat64,
} from "./safetensors.js";

// safetensors files (node:fs; writes are atomic).
export { readSafetensorsFile, writeSafetensorsFile } from "./safetensors-file.js";

// HuggingFace checkpoint directories.
export { type Checkpoint, loadCheckpoint, readConfig, saveCheckpoint } from "./checkpoint.js";

// PEFT adapter directories.
export { ADAPTER_CONFIG, ADAPTER_WEIGHTS, type LoadedAdapter, type SaveAdapterOptions, applyAdapter, loadAdapter, saveAdapter } from "./peft-adapter.js";

// The package's shipped files, found from the installed package's location.
export { defaultBackboneDir, packageRoot } from "./paths.js";
