/**
 * Shape and dtype inference: results for the ops a ViT uses, symbolic batch arithmetic, and the
 * errors that name the op and the shapes when a graph is built wrong.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SaflError } from "../errors.js";
import * as g from "./builder.js";
import { BATCH, shapeStr } from "./shape.js";

const f = (shape: (number | typeof BATCH)[]) => g.input(`x${Math.random().toString(36).slice(2, 8)}`, "float32", shape);

function throwsWith(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof SaflError && pattern.test(e.message));
}

describe("shape inference", () => {
  test("broadcasting follows numpy", () => {
    assert.equal(shapeStr(g.add(f([2, 1, 4]), f([3, 1])).shape), "[2,3,4]");
    assert.equal(shapeStr(g.mul(f([BATCH, 5]), 2).shape), "[B,5]");
  });

  test("batched matmul and gemm", () => {
    assert.equal(shapeStr(g.matmul(f([BATCH, 3, 4, 5]), f([5, 6])).shape), "[B,3,4,6]");
    assert.equal(shapeStr(g.gemm(f([4, 3]), f([5, 4]), undefined, { transA: true, transB: true }).shape), "[3,5]");
  });

  test("reshape infers -1 through the batch dimension", () => {
    const x = f([BATCH, 65, 192]);
    const flat = g.reshape(x, [-1, 192]);
    assert.equal(shapeStr(flat.shape), "[65B,192]");
    assert.equal(shapeStr(g.reshape(flat, [BATCH, 65, 192]).shape), "[B,65,192]");
  });

  test("layerNorm has Y, Mean and InvStdDev outputs", () => {
    const y = g.layerNorm(f([BATCH, 8]), f([8]), f([8]), 1e-6);
    assert.equal(y.node.outputs.length, 3);
    assert.equal(shapeStr(y.node.outputs[1]!.shape), "[B,1]");
  });

  test("split partitions an axis", () => {
    const parts = g.split(f([2, 7]), [3, 4], 1);
    assert.deepEqual(
      parts.map((p) => shapeStr(p.shape)),
      ["[2,3]", "[2,4]"],
    );
  });

  test("errors name the op and the shapes", () => {
    throwsWith(() => g.matmul(f([2, 3]), f([4, 5])), /MatMul: inner dimensions differ: \[2,3\] x \[4,5\]/);
    throwsWith(() => g.add(f([2, 3]), f([4, 3])), /Add: shapes \[2,3\] and \[4,3\] cannot be broadcast/);
    throwsWith(() => g.reshape(f([2, 3]), [4, 2]), /Reshape: cannot reshape \[2,3\] \(6 elements\) to \[4,2\]/);
    throwsWith(() => g.transpose(f([2, 3]), [0, 0]), /Transpose: perm \[0,0\]/);
    throwsWith(() => g.concat([f([2, 3]), f([3, 3])], 1), /Concat: shapes \[2,3\], \[3,3\] differ outside axis 1/);
    throwsWith(() => g.layerNorm(f([4, 8]), f([7]), f([8])), /LayerNormalization: scale \[7\] must equal the normalized shape \[8\]/);
    throwsWith(() => g.split(f([2, 7]), [3, 3], 1), /Split: sizes \[3,3\] do not partition axis 1/);
    throwsWith(() => g.softmax(f([2, 3]), 2), /Softmax: axis 2 is out of range for rank 2/);
    throwsWith(() => g.gather(f([4, 3]), f([2])), /Gather: indices must be int64, got float32/);
    throwsWith(() => g.add(f([2]), g.input("i", "int64", [2])), /Add: inputs must share one dtype, got float32 and int64/);
    throwsWith(() => g.exp(g.input("j", "int64", [2])), /Exp: input must be float32 or float64, got int64/);
    throwsWith(() => g.patchify(f([BATCH, 3, 30, 30]), 4), /patchify: image size 30x30 is not a multiple of the patch size 4/);
    throwsWith(() => g.input("bad name!", "float32", [2]), /input name "bad name!"/);
    throwsWith(() => g.input("neg", "float32", [2, -1]), /Input "neg": invalid dimension -1/);
  });
});
