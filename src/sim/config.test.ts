/**
 * @module sim/config.test
 * Run-config overrides (`--set key.path=value`): what a partial override of a block the config
 * does not have resolves to, checked against the configs written out by hand.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { applyOverrides, parseRunConfig } from "./config.js";

const fromSets = (...sets: string[]) => parseRunConfig(applyOverrides({}, sets));

describe("--set on the data block", () => {
  test("a data field alone keeps the main job's task; naming a dataset starts a new one", () => {
    assert.deepEqual(fromSets("data.trainLimit=1000").data, { dataset: "mnist", classes: "5-9", trainLimit: 1000 });
    assert.deepEqual(parseRunConfig({}).data, { dataset: "mnist", classes: "5-9" });
    assert.deepEqual(fromSets("data.dataset=fashion-mnist", "data.trainLimit=500").data, { dataset: "fashion-mnist", trainLimit: 500 });
    assert.deepEqual(fromSets("data.trainLimit=500", "data.dataset=fashion-mnist", "data.classes=0-4").data, { dataset: "fashion-mnist", classes: "0-4", trainLimit: 500 });
    // A config file's own data block is kept as written.
    assert.deepEqual(parseRunConfig(applyOverrides({ data: { dataset: "mnist" } }, ["data.trainLimit=10"])).data, { dataset: "mnist", trainLimit: 10 });
  });
});
