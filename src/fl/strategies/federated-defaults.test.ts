/**
 * Federated defaults of the adapter kinds against centralized ones: the SVD form in fedadalora and
 * sa-fedlora resolves with no orthogonality penalty and orthonormal P/Q (the kind's registry entry),
 * a user's explicit value still wins, centralized specs (`parseAdapterSpec`, what `safl finetune`
 * and PEFT imports go through) keep PEFT's γ 0.5 and N(0, 0.02), LoRA's federated schema is its own
 * schema unchanged, and the default-replacing helper keeps validation, strictness and refinements.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { adaloraConfigSchema } from "../../peft/adalora/config.js";
import { withFieldDefaults } from "../../peft/kind.js";
import { loraConfigSchema } from "../../peft/lora/config.js";
import { adapterKind, federatedAdapterSchema, federatedHeadLr, parseAdapterSpec } from "../../peft/registry.js";
import { strategySpecSchema } from "./index.js";

const adapterOf = (raw: unknown) => (strategySpecSchema.parse(raw) as unknown as { adapter: Record<string, unknown> }).adapter;

describe("federated adapter defaults", () => {
  test("fedadalora and sa-fedlora: γ 0 and orthonormal P/Q unless the user sets them", () => {
    for (const name of ["fedadalora", "sa-fedlora"]) {
      const a = adapterOf({ name });
      assert.equal(a["orthWeight"], 0, name);
      assert.equal(a["init"], "orthonormal", name);
      const explicit = adapterOf({ name, adapter: { orthWeight: 0.5, init: "normal" } });
      assert.equal(explicit["orthWeight"], 0.5, `${name}: an explicit γ wins`);
      assert.equal(explicit["init"], "normal", `${name}: an explicit init wins`);
    }
    // The strategies' own rank defaults are not the kind's: PEFT's 12 → 8 for FedAdaLoRA, 6 → 2 for SA-FedLoRA.
    assert.deepEqual([adapterOf({ name: "fedadalora" })["initRank"], adapterOf({ name: "fedadalora" })["targetRank"]], [12, 8]);
    assert.deepEqual([adapterOf({ name: "sa-fedlora" })["initRank"], adapterOf({ name: "sa-fedlora" })["targetRank"]], [6, 2]);
  });

  test("centralized specs keep PEFT's defaults (safl finetune, imports, the library)", () => {
    const plain = parseAdapterSpec({ kind: "adalora" }) as unknown as Record<string, unknown>;
    assert.equal(plain["orthWeight"], 0.5);
    assert.equal("init" in plain, false, "absent init is PEFT's N(0, 0.02)");
    // What `safl finetune --adapter adalora` builds its spec from.
    const finetune = parseAdapterSpec({ kind: "adalora", ...adapterKind("adalora").finetuneDefaults }) as unknown as Record<string, unknown>;
    assert.equal(finetune["orthWeight"], 0.5);
    assert.equal("init" in finetune, false);
  });

  test("the head rate is the SVD form's alone; LoRA kinds' federated schema is their schema", () => {
    assert.equal(federatedHeadLr("adalora"), 0.003);
    assert.equal(federatedHeadLr("lora"), undefined);
    assert.equal(federatedHeadLr("ffa-lora"), undefined);
    assert.equal(federatedAdapterSchema("lora", loraConfigSchema), loraConfigSchema);
    assert.deepEqual(adapterOf({ name: "fedlora" }), loraConfigSchema.parse({}));
    assert.throws(() => federatedAdapterSchema("lora", adaloraConfigSchema), /not the lora kind's schema/);
  });

  test("withFieldDefaults: new defaults, same checks, strictness and refinements", () => {
    const s = withFieldDefaults(adaloraConfigSchema, { orthWeight: 0.25, init: "orthonormal" });
    const p = s.parse({});
    assert.equal(p.orthWeight, 0.25);
    assert.equal(p.init, "orthonormal");
    assert.equal(p.initRank, 12, "other defaults stay");
    assert.deepEqual(Object.keys(s.shape), Object.keys(adaloraConfigSchema.shape), "field order unchanged");
    assert.equal(s.safeParse({ orthWeight: -1 }).success, false, "the field's own check stays");
    assert.equal(s.safeParse({ initRank: 2, targetRank: 3 }).success, false, "the object's refinement stays");
    assert.equal(s.safeParse({ orthWieght: 0 }).success, false, "strict: unknown keys are rejected");
    assert.equal(withFieldDefaults(adaloraConfigSchema, {}), adaloraConfigSchema);
    assert.throws(() => withFieldDefaults(adaloraConfigSchema, { nope: 1 }), /no field "nope"/);
  });
});
