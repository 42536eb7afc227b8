/**
 * @module peft/ffa-lora/layer
 * FFA-LoRA (Sun et al., ICLR 2024, "Improving LoRA in privacy-preserving federated learning"): LoRA
 * with A frozen at its shared random initialization and only B trained. With every client holding the
 * same A, the average of the clients' updates B·A is exactly (mean B)·A, which plain federated LoRA
 * does not have. Same parameters, names and export layout as LoRA.
 */
import type { Adapter } from "../adapter.js";
import type { LoraConfig } from "../lora/config.js";
import { loraFromConfig } from "../lora/layer.js";

export function ffaLoraFromConfig(cfg: LoraConfig): Adapter {
  return loraFromConfig(cfg, true);
}
