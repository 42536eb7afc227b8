/**
 * @module peft
 * Parameter-efficient fine-tuning: adapter specs and their validation, the adapter methods (LoRA,
 * FFA-LoRA, the SVD-form adaptive-rank adapter), putting an adapter on a ViT, merging it into the
 * weights, and the training step shared by centralized and federated training. Platform-free (safe
 * for a browser bundle); reading and writing PEFT adapter files is in `sa-fedlora/io`.
 */

// Adapter kinds (one registry entry each) and specs: `{ kind, ...config }` validated into a spec, and a spec turned into an adapter.
export {
  ADAPTER_KINDS,
  ADAPTER_KIND_ENTRIES,
  type AdapterSpec,
  type AdapterSpecInput,
  adapterKind,
  adapterSpecSchema,
  createAdapter,
  parseAdapterSpec,
  resolveAdapterSpec,
} from "./registry.js";
export type { AdapterKindEntry, AdapterPayload, AdapterStepHooks, RankScheduleOptions } from "./kind.js";
export type { AdaptedModule, Adapter, AdapterKind } from "./adapter.js";

// Attaching an adapter to a ViT, and which parameters it trains.
export { type AdaptedVit, adapterTrainable, buildAdaptedVit, isHeadParam } from "./model.js";

// Folding an adapter into the base weights and back.
export { mergeAdapter, unmergeAdapter } from "./merge.js";

// One training step for any trainable set.
export { Trainer, type TrainerOptions } from "./trainer.js";

// LoRA and FFA-LoRA (LoRA with A frozen).
export { type LoraConfig, type LoraConfigInput, loraConfigSchema } from "./lora/config.js";
export { DEFAULT_LORA_TARGETS, isLoraParam, loraAdapter, loraFromConfig } from "./lora/layer.js";
export { ffaLoraFromConfig } from "./ffa-lora/layer.js";

// The SVD-form adapter with adaptive rank: config, layer, importance, allocation, schedule, packing.
export { type AdaloraConfig, type AdaloraConfigInput, adaloraConfigSchema } from "./adalora/config.js";
export { adaloraAdapter, isSvdParam, readMask, type SvdAdapter, writeMask } from "./adalora/layer.js";
export { ImportanceTracker, type ModuleScores } from "./adalora/importance.js";
export { type Allocation, allocate as allocateRanks } from "./adalora/allocator.js";
export { type BudgetScheduleConfig, budgetSchedule, type SchedulePhase } from "./adalora/schedule.js";
export { RankController, type RankControlOptions, type RankEvent } from "./adalora/controller.js";
export { type PackedAdapter, type PackedModule, pack, packedParamCount, packModule, unpack, unpackModule } from "./adalora/pack.js";
