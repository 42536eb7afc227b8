/**
 * Reply validation and sample-weighted aggregation: values computed by hand; every malformed reply
 * (wrong shape, NaN, negative or zero sample count, stale round, other mask, failure) is rejected
 * with a reason and the aggregate of the remaining replies is exactly what they alone give.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type ReplyExpectation, aggregateReplies, validateReply, weightedMean } from "./aggregate.js";
import { type WireMessage, decodeMessage, encodeMessage } from "./wire.js";

const mask = Uint8Array.from([1, 0, 1]);
const expectation: ReplyExpectation = {
  round: 4,
  tensors: new Map([["classifier.bias", [2]]]),
  packed: new Map([["m", { inFeatures: 1, outFeatures: 2, mask }]]),
  scores: new Map([["m", 3]]),
};

function reply(samples: number, v: number, patch: Partial<WireMessage> = {}): WireMessage {
  return {
    kind: "reply",
    round: 4,
    clientId: `c${v}`,
    sampleCount: samples,
    metrics: { trainLoss: v },
    tensors: [{ name: "classifier.bias", shape: [2], data: Float32Array.from([v, -v]) }],
    packed: [{ name: "m", inFeatures: 1, outFeatures: 2, initRank: 3, mask, p: Float32Array.from([v, v, v, v]), e: Float32Array.from([v, 2 * v]), q: Float32Array.from([v, v]) }],
    scores: [{ module: "m", scores: Float64Array.from([v, 0, v]) }],
    ...patch,
  };
}

describe("validateReply", () => {
  test("accepts a well-formed reply, also after a trip through the wire format", () => {
    assert.deepEqual(validateReply(reply(10, 1), expectation), { ok: true });
    assert.deepEqual(validateReply(decodeMessage(encodeMessage(reply(10, 1))), expectation), { ok: true });
  });

  const cases: Array<[string, WireMessage, RegExp]> = [
    ["wrong shape", reply(10, 1, { tensors: [{ name: "classifier.bias", shape: [3], data: new Float32Array(3) }] }), /shape \[3\], expected \[2\]/],
    ["NaN", reply(10, 1, { tensors: [{ name: "classifier.bias", shape: [2], data: Float32Array.from([0, Number.NaN]) }] }), /non-finite value \(NaN\) at index 1/],
    ["negative sample count", reply(-5, 1), /sample count is -5/],
    ["zero sample count", reply(0, 1), /sample count is 0/],
    ["stale round", reply(10, 1, { round: 3 }), /round 3, the server is in round 4/],
    ["other mask", reply(10, 1, { packed: [{ ...reply(10, 1).packed[0]!, mask: Uint8Array.from([1, 1, 0]) }] }), /different rank mask/],
    ["NaN in packed", reply(10, 1, { packed: [{ ...reply(10, 1).packed[0]!, e: Float32Array.from([1, Number.POSITIVE_INFINITY]) }] }), /"m" e has a non-finite value \(Infinity\)/],
    ["missing scores", reply(10, 1, { scores: [] }), /scores for 0 modules, expected 1/],
    ["failure", { kind: "reply", round: 4, failure: { code: "out-of-memory", message: "out of memory" }, tensors: [], packed: [], scores: [] }, /failure: out of memory/],
  ];
  for (const [name, r, re] of cases) {
    test(`rejects: ${name}`, () => {
      const v = validateReply(r, expectation);
      assert.equal(v.ok, false);
      const f = (v as { failure: { code: string; message: string } }).failure;
      assert.match(f.message, re);
      // The client's own code passes through; everything validation finds is "rejected".
      assert.equal(f.code, name === "failure" ? "out-of-memory" : "rejected");
    });
  }
});

describe("aggregateReplies", () => {
  test("sample-weighted means, by hand", () => {
    // weights 1 and 3: mean = (1·1 + 3·5)/4 = 4
    const agg = aggregateReplies([reply(1, 1), reply(3, 5)]);
    assert.deepEqual([...agg.tensors[0]!.data], [4, -4]);
    assert.deepEqual([...agg.packed[0]!.e], [4, 8]);
    assert.deepEqual([...agg.packed[0]!.mask], [1, 0, 1]);
    assert.deepEqual([...agg.scores[0]!.scores], [4, 0, 4]);
    assert.equal(agg.samples, 4);
    assert.equal(agg.metrics["trainLoss"], 4);
  });

  test("a round with malformed replies completes with the remaining clients", () => {
    const all = [reply(2, 1), reply(10, 9, { round: 3 }), reply(-1, 7), reply(6, 3, { tensors: [{ name: "classifier.bias", shape: [2], data: Float32Array.from([Number.NaN, 0]) }] }), reply(6, 3)];
    const accepted = all.filter((r) => validateReply(r, expectation).ok);
    assert.equal(accepted.length, 2);
    const agg = aggregateReplies(accepted);
    // (2·1 + 6·3)/8 = 2.5
    assert.deepEqual([...agg.tensors[0]!.data], [2.5, -2.5]);
  });

  test("weightedMean rejects empty input and non-positive total weight", () => {
    assert.throws(() => weightedMean([], []), /0 values/);
    assert.throws(() => weightedMean([[1]], [0]), /total weight 0/);
  });
});
