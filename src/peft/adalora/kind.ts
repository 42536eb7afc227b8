/**
 * @module peft/adalora/kind
 * The SVD form's registry entry (AdaLoRA's adapter, SA-FedLoRA's annealing stage). What sets it apart
 * from fixed-rank adapters lives here, not in generic code:
 * - payload: only the head travels dense; the triplets (P columns, λ, Q rows) travel packed, active
 *   ones only, under the round's mask;
 * - step hooks: importance statistics from every step's weights and gradients, and masked triplets
 *   held fixed through the optimizer update (weight decay and momentum would move them otherwise);
 *   the triplet scores a client reports come from those statistics;
 * - a centralized rank schedule (heating / cubic decay / cooling over steps, peft/adalora/controller);
 * - saved size: active triplets only;
 * - federated defaults that differ from PEFT's centralized ones (no orthogonality penalty, orthonormal
 *   P and Q, the head at LoRA's rate), with the measurements behind them in docs/algorithm.md.
 */
import { argError } from "../../errors.js";
import type { AdapterKindEntry, AdapterStepHooks } from "../kind.js";
import { type AdaloraConfig, adaloraConfigSchema, resolveAdaloraConfig } from "./config.js";
import { RankController } from "./controller.js";
import { ImportanceTracker } from "./importance.js";
import { adaloraAdapter, freezeMaskedEntries, isSvdParam, readMask, type SvdAdapter } from "./layer.js";
import { pack, packedParamCount, packModule, unpackModule } from "./pack.js";
import { adaloraPeftFormat } from "./peft-format.js";

const asSvd = (a: { kind: string }): SvdAdapter => {
  if (a.kind !== "adalora") throw new Error(`adalora kind entry called with a ${a.kind} adapter`);
  return a as SvdAdapter;
};

function svdStepHooks(adapter: SvdAdapter): AdapterStepHooks {
  const tracker = new ImportanceTracker(adapter.config.beta1, adapter.config.beta2);
  return {
    beforeUpdate(store, grads) {
      const modules = adapter.modules();
      tracker.update(store, grads, modules);
      return modules.length > 0 ? freezeMaskedEntries(store, modules) : undefined;
    },
    reset: () => tracker.reset(),
    scores: () => tracker.allScores(adapter.modules()),
  };
}

export const adaloraKind: AdapterKindEntry<"adalora", AdaloraConfig> = {
  kind: "adalora",
  summary: "the SVD form ΔW = P·diag(λ)·Q·alpha/r₀ with adaptive rank (AdaLoRA; SA-FedLoRA's annealing stage)",
  schema: adaloraConfigSchema,
  resolve: resolveAdaloraConfig,
  // λ starts at 0 and learns slower at LoRA's rate: at 0.003 one centralized epoch on the default task
  // reached 78.2%, at 0.01 83.3% (3 seeds each, docs/finetuning.md).
  defaultLr: 0.01,
  create: adaloraAdapter,
  // A centralized run anneals to 4 triplets per module (docs/finetuning.md); PEFT's target_r 8 stays the schema default.
  finetuneDefaults: { targetRank: 4 },
  // Federated clients take ~90 AdamW steps from fresh moments per round: PEFT's penalty (γ 0.5) then sets
  // the step on most of P and Q, and without it only an orthonormal start gives them unit scale. The head
  // at the factors' 0.01 trained 3.3x faster than FedLoRA's; 0.003 is LoRA's rate. Together: fixed rank 8
  // from -2.14 to +0.42 points against FedLoRA (3 seeds, docs/algorithm.md "The SVD form in federated training").
  federated: { defaults: { orthWeight: 0, init: "orthonormal" }, headLr: 0.003 },
  payload: {
    isDense: (name) => !isSvdParam(name),
    pack: (adapter, store) => asSvd(adapter).modules().map((m) => packModule(store, m)),
    unpack(adapter, store, packed) {
      const modules = asSvd(adapter).modules();
      if (packed.length !== modules.length) throw argError(`the message carries ${packed.length} SVD modules, the model has ${modules.length}`);
      for (const pm of packed) unpackModule(pm, store);
    },
  },
  peft: adaloraPeftFormat,
  stepHooks: (adapter) => svdStepHooks(asSvd(adapter)),
  rankSchedule(adapter, hooks, opts) {
    const controller = new RankController(asSvd(adapter), opts);
    const importance = { allScores: () => hooks.scores() };
    return (step, store) => {
      const ev = controller.afterStep(step, store, importance);
      return `${ev.phase} budget ${ev.budget}`;
    };
  },
  activeRanks: (adapter, store) => Object.fromEntries(adapter.modules().map((m) => [m.name, readMask(store, m.name).reduce((a, b) => a + b, 0)])),
  savedParamCount: (adapter, store) => packedParamCount(pack(store, adapter.modules())),
};
