/**
 * @module data/cifar.test
 * Tests for the CIFAR-10 binary loader on generated batch files (7 train records over two batches,
 * 3 test records): exact pixels and labels in NCHW order, class names from batches.meta.txt or the
 * defaults, the tarball's subfolder, and errors for truncated files, bad labels and missing batches.
 */

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ErrorCode, SaflError } from "../errors.js";
import { CIFAR10_CLASS_NAMES, loadCifar10 } from "./cifar.js";

const root = mkdtempSync(join(tmpdir(), "safl-cifar-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Pixel byte of record `r` (global index) at channel c, row y, column x: distinct per record and position. */
const pixelByte = (r: number, c: number, y: number, x: number) => (r * 37 + c * 101 + y * 7 + x * 3) % 256;

/** Writes records [from, to) with the given labels as one batch file, laid out per the CIFAR spec. */
function batch(from: number, labels: number[]): Buffer {
  const out = Buffer.alloc(labels.length * 3073);
  for (const [j, label] of labels.entries()) {
    const base = j * 3073;
    out[base] = label;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[base + 1 + c * 1024 + y * 32 + x] = pixelByte(from + j, c, y, x);
    }
  }
  return out;
}

const trainLabels1 = [6, 9, 9, 4];
const trainLabels2 = [1, 1, 2];
const testLabels = [3, 8, 0];

let n = 0;
function fixture(files: Record<string, Buffer | string>, sub?: string): string {
  const dir = join(root, `case${n++}`);
  const target = sub === undefined ? dir : join(dir, sub);
  mkdirSync(target, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(target, name), bytes);
  return dir;
}

const standard = () => ({
  "data_batch_1.bin": batch(0, trainLabels1),
  "data_batch_2.bin": batch(4, trainLabels2),
  "test_batch.bin": batch(100, testLabels),
});

async function expectReject(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SaflError, `expected a SaflError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe("loadCifar10", () => {
  test("concatenates the batches present and decodes pixels exactly in NCHW", async () => {
    const { train, test: testSet } = await loadCifar10(fixture(standard()));
    assert.equal(train.name, "cifar10/train");
    assert.equal(testSet.name, "cifar10/test");
    assert.deepEqual([train.count, train.channels, train.height, train.width], [7, 3, 32, 32]);
    assert.equal(testSet.count, 3);
    assert.deepEqual(Array.from(train.labels), [...trainLabels1, ...trainLabels2]);
    assert.deepEqual(Array.from(testSet.labels), testLabels);
    assert.deepEqual(train.classes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(train.classNames, CIFAR10_CLASS_NAMES);
    for (const [ds, offset] of [
      [train, 0],
      [testSet, 100],
    ] as const) {
      for (let i = 0; i < ds.count; i++) {
        for (let c = 0; c < 3; c++) {
          for (let y = 0; y < 32; y++) {
            for (let x = 0; x < 32; x++) {
              const got = ds.images[((i * 3 + c) * 32 + y) * 32 + x];
              const want = Math.fround(pixelByte(offset + i, c, y, x) / 255);
              if (got !== want) assert.fail(`${ds.name} image ${i} c${c} y${y} x${x}: got ${got}, want ${want}`);
            }
          }
        }
      }
    }
    // Spot values so a wrong formula in both places could not pass: record 4 (batch 2's first), green, (1, 2).
    assert.equal(train.images[((4 * 3 + 1) * 32 + 1) * 32 + 2], Math.fround(((4 * 37 + 101 + 7 + 6) % 256) / 255));
  });

  test("class names from batches.meta.txt; the tarball's subfolder is found", async () => {
    const names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    const dir = fixture({ ...standard(), "batches.meta.txt": `${names.join("\n")}\n\n` }, "cifar-10-batches-bin");
    const { train, test: testSet } = await loadCifar10(dir);
    assert.deepEqual(train.classNames, names);
    assert.deepEqual(testSet.classNames, names);
    assert.equal(train.count, 7);
  });

  test("a meta file with the wrong number of names is rejected", async () => {
    const dir = fixture({ ...standard(), "batches.meta.txt": "cat\ndog\n" });
    await expectReject(loadCifar10(dir), ErrorCode.Io, join(dir, "batches.meta.txt"), "found 2");
  });

  test("a truncated batch: the error names the path and size", async () => {
    const files = standard();
    const dir = fixture({ ...files, "data_batch_2.bin": files["data_batch_2.bin"].subarray(0, 3 * 3073 - 1) });
    await expectReject(loadCifar10(dir), ErrorCode.Io, join(dir, "data_batch_2.bin"), `size ${3 * 3073 - 1} bytes`, "3073");
  });

  test("a label above 9: the error names the file and record", async () => {
    const dir = fixture({ ...standard(), "test_batch.bin": batch(100, [3, 12, 0]) });
    await expectReject(loadCifar10(dir), ErrorCode.Io, join(dir, "test_batch.bin"), "record 1 has label 12");
  });

  test("missing batches and directories", async () => {
    const noTest = fixture({ "data_batch_3.bin": batch(0, [1]) });
    await expectReject(loadCifar10(noTest), ErrorCode.Io, noTest, "test_batch.bin");
    const noTrain = fixture({ "test_batch.bin": batch(0, [1]) });
    await expectReject(loadCifar10(noTrain), ErrorCode.Io, noTrain, "data_batch_1.bin");
    const nowhere = join(root, "does-not-exist");
    await expectReject(loadCifar10(nowhere), ErrorCode.Io, nowhere, "does not exist");
  });
});
