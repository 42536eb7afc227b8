/**
 * @module data/fashion-mnist.test
 * Tests for the Fashion-MNIST loader on small IDX fixtures written to temporary directories (raw and
 * gzipped, 3x2 images), its errors (missing files with install hints, truncation, count mismatch,
 * labels beyond 9), and — only where the Debian package is installed — the real files.
 */

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { ErrorCode, SaflError } from "../errors.js";
import { classHistogram } from "./dataset.js";
import { FASHION_MNIST_CLASS_NAMES, fashionMnistSearchPaths, loadFashionMnist } from "./fashion-mnist.js";

function idxBytes(dims: number[], data: ArrayLike<number>): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  for (const [i, d] of dims.entries()) header.writeUInt32BE(d, 4 + 4 * i);
  return Buffer.concat([header, Buffer.from(Array.from(data))]);
}

const root = mkdtempSync(join(tmpdir(), "safl-fmnist-"));
after(() => rmSync(root, { recursive: true, force: true }));

// 4 train and 2 test images of 3x2 (height x width); pixel p of image i is 10*i + p (test: 200 + ...).
const H = 3;
const W = 2;
const trainPixels = Array.from({ length: 4 * H * W }, (_, k) => 10 * Math.floor(k / (H * W)) + (k % (H * W)));
const testPixels = [0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 255];
const trainLabels = [9, 0, 3, 9];
const testLabels = [1, 8];

let fixtureCount = 0;
function writeFixture(opts: { gzip?: boolean; files?: Partial<Record<string, Buffer>> } = {}): string {
  const dir = join(root, `case${fixtureCount++}`);
  mkdirSync(dir);
  const files: Record<string, Buffer> = {
    "train-images-idx3-ubyte": idxBytes([4, H, W], trainPixels),
    "train-labels-idx1-ubyte": idxBytes([4], trainLabels),
    "t10k-images-idx3-ubyte": idxBytes([2, H, W], testPixels),
    "t10k-labels-idx1-ubyte": idxBytes([2], testLabels),
  };
  for (const [name, override] of Object.entries(opts.files ?? {})) {
    if (override === undefined) delete files[name];
    else files[name] = override;
  }
  for (const [name, bytes] of Object.entries(files)) {
    if (opts.gzip) writeFileSync(join(dir, `${name}.gz`), gzipSync(bytes));
    else writeFileSync(join(dir, name), bytes);
  }
  return dir;
}

async function expectReject(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SaflError, `expected a SaflError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe("loadFashionMnist from a data directory", () => {
  for (const gzip of [false, true]) {
    test(`${gzip ? "gzipped" : "raw"} files: exact pixels /255, labels, names`, async () => {
      const { train, test: testSet } = await loadFashionMnist(writeFixture({ gzip }));
      assert.equal(train.name, "fashion-mnist/train");
      assert.equal(testSet.name, "fashion-mnist/test");
      assert.deepEqual([train.count, train.channels, train.height, train.width], [4, 1, H, W]);
      assert.equal(testSet.count, 2);
      assert.deepEqual(Array.from(train.images), Array.from(Float32Array.from(trainPixels, (v) => v / 255)));
      assert.deepEqual(Array.from(testSet.images.subarray(0, 6)), [0, 0.2, 0.4, 0.6, 0.8, 1].map(Math.fround));
      assert.deepEqual(Array.from(train.labels), trainLabels);
      assert.deepEqual(Array.from(testSet.labels), testLabels);
      assert.deepEqual(train.classes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.deepEqual(classHistogram(train), [1, 0, 0, 1, 0, 0, 0, 0, 0, 2]);
      assert.deepEqual(train.classNames, FASHION_MNIST_CLASS_NAMES);
      assert.equal(train.classNames![9], "Ankle boot");
      assert.equal(train.classNames![0], "T-shirt/top");
    });
  }

  test("an empty directory: lists it, the four file names and how to get them", async () => {
    const dir = join(root, "empty");
    mkdirSync(dir);
    await expectReject(
      loadFashionMnist(dir),
      ErrorCode.Io,
      dir,
      "train-images-idx3-ubyte",
      "train-labels-idx1-ubyte",
      "t10k-images-idx3-ubyte",
      "t10k-labels-idx1-ubyte",
      "sudo apt-get install dataset-fashion-mnist",
      "--data-dir",
    );
  });

  test("a directory missing one file names that file", async () => {
    const dir = writeFixture({ files: { "t10k-labels-idx1-ubyte": undefined } });
    await expectReject(loadFashionMnist(dir), ErrorCode.Io, `${dir} (missing t10k-labels-idx1-ubyte)`);
  });

  test("a truncated file: the error names its path", async () => {
    const full = idxBytes([4, H, W], trainPixels);
    const dir = writeFixture({ gzip: true, files: { "train-images-idx3-ubyte": full.subarray(0, full.length - 5) } });
    await expectReject(loadFashionMnist(dir), ErrorCode.Io, join(dir, "train-images-idx3-ubyte.gz"), "truncated", "got 35");
  });

  test("image and label counts that differ: the error names both files", async () => {
    const dir = writeFixture({ files: { "t10k-labels-idx1-ubyte": idxBytes([3], [1, 2, 3]) } });
    await expectReject(
      loadFashionMnist(dir),
      ErrorCode.Io,
      join(dir, "t10k-images-idx3-ubyte"),
      join(dir, "t10k-labels-idx1-ubyte"),
      "2 images",
      "3 labels",
    );
  });

  test("a label above 9 is rejected with its index", async () => {
    const dir = writeFixture({ files: { "train-labels-idx1-ubyte": idxBytes([4], [0, 1, 10, 2]) } });
    await expectReject(loadFashionMnist(dir), ErrorCode.Io, join(dir, "train-labels-idx1-ubyte"), "label 10 at index 2");
  });

  test("images that are not [N, H, W] are rejected", async () => {
    const dir = writeFixture({ files: { "train-images-idx3-ubyte": idxBytes([4, H * W], trainPixels) } });
    await expectReject(loadFashionMnist(dir), ErrorCode.Io, "3 dimensions", "[4, 6]");
  });
});

describe("loadFashionMnist from the system", () => {
  test("the search paths start with the Debian package's directory", () => {
    assert.equal(fashionMnistSearchPaths()[0], "/usr/share/datasets/fashion-mnist");
  });

  test("the installed Debian package, when present", async (t) => {
    const dir = fashionMnistSearchPaths()[0]!;
    if (!existsSync(join(dir, "train-images-idx3-ubyte.gz"))) {
      t.skip(`dataset-fashion-mnist is not installed (no ${dir})`);
      return;
    }
    const { train, test: testSet } = await loadFashionMnist();
    assert.deepEqual([train.count, testSet.count, train.height, train.width], [60000, 10000, 28, 28]);
    assert.deepEqual(classHistogram(testSet), new Array(10).fill(1000));
  });
});
