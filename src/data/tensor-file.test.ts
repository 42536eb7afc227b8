/**
 * @module data/tensor-file.test
 * Tests for safetensors image datasets: float and uint8 pixels, integer label dtypes, the class
 * mapping (sparse ids, union across splits), and the errors for missing tensors, wrong shapes,
 * wrong dtypes, negative labels and mismatched splits.
 */

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import { fromBigInt64, fromFloat32, type TensorEntry } from "../io/safetensors.js";
import { writeSafetensorsFile } from "../io/safetensors-file.js";
import { loadTensorDir, loadTensorFile } from "./tensor-file.js";

const root = mkdtempSync(join(tmpdir(), "safl-tensors-"));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
const freshDir = () => {
  const d = join(root, `case${n++}`);
  mkdirSync(d);
  return d;
};

/** N images of C x H x W with pixel k = k / 8 (exact in every float dtype used). */
function pixelsF32(shape: [number, number, number, number]): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: count }, (_, k) => (k % 64) / 8);
}

const labelsI64 = (ids: number[]) => fromBigInt64(BigInt64Array.from(ids.map(BigInt)), [ids.length]);
const u8 = (values: number[], shape: number[]): TensorEntry => ({ dtype: "U8", shape, data: Uint8Array.from(values) });

async function expectReject(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SaflError, `expected a SaflError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe("loadTensorFile", () => {
  for (const dtype of ["F32", "F16", "BF16", "F64"] as const) {
    test(`${dtype} pixels and sparse I64 labels`, async () => {
      const path = join(freshDir(), "mine.safetensors");
      const px = pixelsF32([3, 2, 2, 2]);
      await writeSafetensorsFile(path, { pixel_values: fromFloat32(px, [3, 2, 2, 2], dtype), labels: labelsI64([7, 2, 7]) });
      const ds = await loadTensorFile(path);
      assert.equal(ds.name, "mine");
      assert.deepEqual([ds.count, ds.channels, ds.height, ds.width], [3, 2, 2, 2]);
      assert.deepEqual(Array.from(ds.images), Array.from(px));
      assert.deepEqual(ds.classes, [2, 7]);
      assert.deepEqual(Array.from(ds.labels), [1, 0, 1]);
    });
  }

  test("U8 pixels are scaled by 1/255; I32, U8 labels; explicit name", async () => {
    const path = join(freshDir(), "u8.safetensors");
    const i32 = new Uint8Array(new Int32Array([4, 0]).buffer);
    await writeSafetensorsFile(path, { pixel_values: u8([0, 51, 255, 102], [2, 1, 1, 2]), labels: { dtype: "I32", shape: [2], data: i32 } });
    const ds = await loadTensorFile(path, "custom");
    assert.equal(ds.name, "custom");
    assert.deepEqual(Array.from(ds.images), [0, 0.2, 1, 0.4].map(Math.fround));
    assert.deepEqual(ds.classes, [0, 4]);
    assert.deepEqual(Array.from(ds.labels), [1, 0]);

    await writeSafetensorsFile(path, { pixel_values: u8([1, 2], [2, 1, 1, 1]), labels: u8([3, 3], [2]) });
    const again = await loadTensorFile(path);
    assert.deepEqual(again.classes, [3]);
    assert.deepEqual(Array.from(again.labels), [0, 0]);
  });

  test("missing tensors are named with what the file has", async () => {
    const path = join(freshDir(), "x.safetensors");
    await writeSafetensorsFile(path, { images: u8([0], [1, 1, 1, 1]), labels: labelsI64([0]) });
    await expectReject(loadTensorFile(path), ErrorCode.Io, path, '"pixel_values"', "found: images, labels");
    await writeSafetensorsFile(path, { pixel_values: u8([0], [1, 1, 1, 1]) });
    await expectReject(loadTensorFile(path), ErrorCode.Io, path, '"labels"');
  });

  test("wrong shapes, dtypes and label values", async () => {
    const path = join(freshDir(), "x.safetensors");
    await writeSafetensorsFile(path, { pixel_values: u8([0, 0], [2, 1, 1]), labels: labelsI64([0, 1]) });
    await expectReject(loadTensorFile(path), ErrorCode.Shape, path, "[2, 1, 1]", "[N, C, H, W]");
    await writeSafetensorsFile(path, { pixel_values: u8([0, 0], [2, 1, 1, 1]), labels: labelsI64([0, 1, 2]) });
    await expectReject(loadTensorFile(path), ErrorCode.Shape, path, "[3]", "expected [2]");
    await writeSafetensorsFile(path, { pixel_values: { dtype: "I32", shape: [1, 1, 1, 1], data: new Uint8Array(4) }, labels: labelsI64([0]) });
    await expectReject(loadTensorFile(path), ErrorCode.DType, path, "I32");
    await writeSafetensorsFile(path, { pixel_values: u8([0], [1, 1, 1, 1]), labels: fromFloat32(Float32Array.from([0]), [1]) });
    await expectReject(loadTensorFile(path), ErrorCode.DType, path, "F32", "integer");
    await writeSafetensorsFile(path, { pixel_values: u8([0, 0], [2, 1, 1, 1]), labels: labelsI64([1, -3]) });
    await expectReject(loadTensorFile(path), ErrorCode.Io, path, "element 1 is -3");
    await writeSafetensorsFile(path, { pixel_values: fromFloat32(Float32Array.from([1, Number.NaN]), [2, 1, 1, 1]), labels: labelsI64([0, 0]) });
    await expectReject(loadTensorFile(path), ErrorCode.Io, path, "element 1 is NaN");
  });

  test("an unreadable path is an Io error naming it", async () => {
    const path = join(root, "absent.safetensors");
    await expectReject(loadTensorFile(path), ErrorCode.Io, path);
  });
});

describe("loadTensorDir", () => {
  test("both splits share the union of class ids", async () => {
    const dir = join(freshDir(), "my-set");
    mkdirSync(dir);
    const trainPx = pixelsF32([4, 1, 2, 3]);
    await writeSafetensorsFile(join(dir, "train.safetensors"), { pixel_values: fromFloat32(trainPx, [4, 1, 2, 3]), labels: labelsI64([5, 2, 7, 2]) });
    await writeSafetensorsFile(join(dir, "test.safetensors"), { pixel_values: u8([0, 255, 0, 255, 0, 255, 9, 9, 9, 9, 9, 9], [2, 1, 2, 3]), labels: labelsI64([9, 5]) });
    const { train, test: testSet } = await loadTensorDir(dir);
    assert.equal(train.name, "my-set/train");
    assert.equal(testSet.name, "my-set/test");
    assert.deepEqual(train.classes, [2, 5, 7, 9]);
    assert.deepEqual(testSet.classes, [2, 5, 7, 9]);
    assert.deepEqual(Array.from(train.labels), [1, 0, 2, 0]);
    assert.deepEqual(Array.from(testSet.labels), [3, 1]);
    assert.deepEqual(Array.from(train.images), Array.from(trainPx));
    assert.equal(testSet.images[1], 1);
    assert.equal(testSet.images[6], Math.fround(9 / 255));
  });

  test("splits must agree on C, H, W, and both files are required", async () => {
    const dir = freshDir();
    await writeSafetensorsFile(join(dir, "train.safetensors"), { pixel_values: u8([0, 0], [1, 1, 1, 2]), labels: labelsI64([0]) });
    await expectReject(loadTensorDir(dir), ErrorCode.Io, join(dir, "test.safetensors"), "train.safetensors and test.safetensors");
    await writeSafetensorsFile(join(dir, "test.safetensors"), { pixel_values: u8([0, 0], [1, 2, 1, 1]), labels: labelsI64([0]) });
    await expectReject(loadTensorDir(dir), ErrorCode.Shape, "1x1x2", "2x1x1");
  });
});
