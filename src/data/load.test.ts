/**
 * @module data/load.test
 * Tests for dataset dispatch: each built-in name reaches its loader, each directory layout is
 * recognised, and unknown names, directories of no known layout and misused --data-dir fail with
 * errors listing what is accepted. MNIST is loaded here too (about half a second) to check the name
 * returns the cached embedded split.
 */

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { ErrorCode, SaflError } from "../errors.js";
import { fromBigInt64 } from "../io/safetensors.js";
import { writeSafetensorsFile } from "../io/safetensors-file.js";
import { DATASET_NAMES, loadDataset } from "./load.js";
import { loadMnist } from "./mnist.js";

const root = mkdtempSync(join(tmpdir(), "safl-load-"));
after(() => rmSync(root, { recursive: true, force: true }));

function idxBytes(dims: number[], data: ArrayLike<number>): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  for (const [i, d] of dims.entries()) header.writeUInt32BE(d, 4 + 4 * i);
  return Buffer.concat([header, Buffer.from(Array.from(data))]);
}

function writeIdxDir(dir: string, trainLabels: number[], testLabels: number[]): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "train-images-idx3-ubyte.gz"), gzipSync(idxBytes([trainLabels.length, 2, 2], new Array(trainLabels.length * 4).fill(255))));
  writeFileSync(join(dir, "train-labels-idx1-ubyte.gz"), gzipSync(idxBytes([trainLabels.length], trainLabels)));
  writeFileSync(join(dir, "t10k-images-idx3-ubyte"), idxBytes([testLabels.length, 2, 2], new Array(testLabels.length * 4).fill(0)));
  writeFileSync(join(dir, "t10k-labels-idx1-ubyte"), idxBytes([testLabels.length], testLabels));
}

function cifarRecord(label: number): Buffer {
  const b = Buffer.alloc(3073, 128);
  b[0] = label;
  return b;
}

async function expectReject(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SaflError, `expected a SaflError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe("loadDataset by name", () => {
  test("DATASET_NAMES", () => {
    assert.deepEqual([...DATASET_NAMES], ["mnist", "fashion-mnist", "cifar10"]);
  });

  test('"mnist" is the cached embedded split and takes no data dir', async () => {
    assert.equal(await loadDataset("mnist"), loadMnist());
    await expectReject(loadDataset("mnist", { dataDir: root }), ErrorCode.InvalidArgument, "built in", root);
  });

  test('"fashion-mnist" uses the data dir', async () => {
    const dir = join(root, "fm");
    writeIdxDir(dir, [9, 0, 1], [4]);
    const { train, test: testSet } = await loadDataset("fashion-mnist", { dataDir: dir });
    assert.equal(train.name, "fashion-mnist/train");
    assert.equal(train.classNames?.[9], "Ankle boot");
    assert.deepEqual(Array.from(train.labels), [9, 0, 1]);
    assert.deepEqual(Array.from(testSet.labels), [4]);
    await expectReject(loadDataset("fashion-mnist", { dataDir: join(root, "nothing-here") }), ErrorCode.Io, "apt-get install dataset-fashion-mnist");
  });

  test('"cifar10" requires a data dir and loads from it', async () => {
    await expectReject(loadDataset("cifar10"), ErrorCode.InvalidArgument, '"cifar10"', "--data-dir", "data_batch_1..5.bin");
    const dir = join(root, "c10");
    mkdirSync(dir);
    writeFileSync(join(dir, "data_batch_1.bin"), Buffer.concat([cifarRecord(3), cifarRecord(5)]));
    writeFileSync(join(dir, "test_batch.bin"), cifarRecord(7));
    const { train, test: testSet } = await loadDataset("cifar10", { dataDir: dir });
    assert.deepEqual(Array.from(train.labels), [3, 5]);
    assert.deepEqual(Array.from(testSet.labels), [7]);
  });
});

describe("loadDataset by path", () => {
  test("a safetensors directory", async () => {
    const dir = join(root, "tensors");
    mkdirSync(dir);
    const px = { dtype: "U8" as const, shape: [1, 1, 1, 1], data: Uint8Array.from([255]) };
    await writeSafetensorsFile(join(dir, "train.safetensors"), { pixel_values: px, labels: fromBigInt64(BigInt64Array.from([4n]), [1]) });
    await writeSafetensorsFile(join(dir, "test.safetensors"), { pixel_values: px, labels: fromBigInt64(BigInt64Array.from([6n]), [1]) });
    const { train, test: testSet } = await loadDataset(dir);
    assert.equal(train.name, "tensors/train");
    assert.deepEqual(train.classes, [4, 6]);
    assert.deepEqual(Array.from(testSet.labels), [1]);
    // Only one split present still picks the safetensors loader, which names the missing file.
    const half = join(root, "half");
    mkdirSync(half);
    await writeSafetensorsFile(join(half, "train.safetensors"), { pixel_values: px, labels: fromBigInt64(BigInt64Array.from([0n]), [1]) });
    await expectReject(loadDataset(half), ErrorCode.Io, join(half, "test.safetensors"));
  });

  test("an IDX directory is named after it, with classes from its labels", async () => {
    const dir = join(root, "my-mnist");
    writeIdxDir(dir, [3, 1, 3], [1, 8]);
    const { train, test: testSet } = await loadDataset(dir);
    assert.equal(train.name, "my-mnist/train");
    assert.equal(testSet.name, "my-mnist/test");
    assert.deepEqual(train.classes, [1, 3, 8]);
    assert.deepEqual(Array.from(train.labels), [1, 0, 1]);
    assert.deepEqual(Array.from(testSet.labels), [0, 2]);
    assert.equal(train.classNames, undefined);
    assert.deepEqual(Array.from(train.images.subarray(0, 4)), [1, 1, 1, 1]);
  });

  test("a CIFAR directory", async () => {
    const dir = join(root, "cifar-here");
    mkdirSync(dir);
    writeFileSync(join(dir, "data_batch_2.bin"), cifarRecord(1));
    writeFileSync(join(dir, "test_batch.bin"), cifarRecord(2));
    const { train } = await loadDataset(dir);
    assert.equal(train.name, "cifar10/train");
    assert.deepEqual(Array.from(train.labels), [1]);
    assert.equal(train.images[0], Math.fround(128 / 255));
  });

  test("unknown names and layouts list what is accepted", async () => {
    const missing = join(root, "no-such-thing");
    await expectReject(loadDataset("mnistt"), ErrorCode.InvalidArgument, '"mnistt"', "mnist, fashion-mnist, cifar10", "train.safetensors", "data_batch_1..5.bin");
    await expectReject(loadDataset(missing), ErrorCode.InvalidArgument, missing, "no such directory");
    const emptyDir = join(root, "empty");
    mkdirSync(emptyDir);
    await expectReject(loadDataset(emptyDir), ErrorCode.InvalidArgument, emptyDir, "no known layout", "t10k-images-idx3-ubyte");
    const partial = join(root, "partial");
    mkdirSync(partial);
    writeFileSync(join(partial, "train-images-idx3-ubyte"), idxBytes([1, 1, 1], [0]));
    await expectReject(loadDataset(partial), ErrorCode.InvalidArgument, "t10k-labels-idx1-ubyte");
    const file = join(root, "plain.txt");
    writeFileSync(file, "x");
    await expectReject(loadDataset(file), ErrorCode.InvalidArgument, "is a file");
    await expectReject(loadDataset(emptyDir, { dataDir: root }), ErrorCode.InvalidArgument, "one or the other");
  });
});
