/**
 * @module data/idx.test
 * Tests for the IDX reader on hand-built byte fixtures: raw and gzipped files, every rejection
 * (bad magic, unsupported type, truncated header and body, trailing bytes, corrupt gzip), and the
 * file reader's error for a missing path.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { ErrorCode, SaflError } from "../errors.js";
import { parseIdx, readIdxFile } from "./idx.js";

/** An IDX file from its parts, written with Buffer's big-endian writer (independent of the parser). */
function idxBytes(dims: number[], data: ArrayLike<number>, type = 0x08): Uint8Array {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = type;
  header[3] = dims.length;
  for (const [i, d] of dims.entries()) header.writeUInt32BE(d, 4 + 4 * i);
  return new Uint8Array(Buffer.concat([header, Buffer.from(Array.from(data))]));
}

function expectError(fn: () => unknown, code: ErrorCode, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SaflError, `expected a SaflError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const f of fragments) assert.ok(caught.message.includes(f), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(f)}`);
}

const P = "/data/x-idx3-ubyte";

describe("parseIdx", () => {
  const pixels = [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255];
  const file = idxBytes([2, 2, 3], pixels);

  test("reads big-endian dims and the data bytes", () => {
    const big = idxBytes([1, 256, 1], new Array(256).fill(7));
    assert.deepEqual(parseIdx(big, P).dims, [1, 256, 1]);
    const { dims, data } = parseIdx(file, P);
    assert.deepEqual(dims, [2, 2, 3]);
    assert.deepEqual(Array.from(data), pixels);
  });

  test("gzip is detected by its magic", () => {
    const { dims, data } = parseIdx(new Uint8Array(gzipSync(file)), P);
    assert.deepEqual(dims, [2, 2, 3]);
    assert.deepEqual(Array.from(data), pixels);
  });

  test("a label file (rank 1)", () => {
    const { dims, data } = parseIdx(idxBytes([4], [9, 0, 3, 3]), P);
    assert.deepEqual(dims, [4]);
    assert.deepEqual(Array.from(data), [9, 0, 3, 3]);
  });

  test("rejects a bad magic, naming the path and the bytes", () => {
    expectError(() => parseIdx(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0, 0, 0]), P), ErrorCode.Io, P, "50 4b 03 04");
    expectError(() => parseIdx(Uint8Array.from([0, 0, 0x07, 1, 0, 0, 0, 0]), P), ErrorCode.Io, "not an IDX file");
    expectError(() => parseIdx(Uint8Array.from([0, 0, 0x08, 0]), P), ErrorCode.Io, "not an IDX file");
  });

  test("rejects non-byte element types as unsupported", () => {
    expectError(() => parseIdx(idxBytes([1], [0, 0, 0, 0], 0x0d), P), ErrorCode.Unsupported, P, "float32", "0x0d");
  });

  test("rejects truncated files, stating expected and actual sizes", () => {
    expectError(() => parseIdx(file.subarray(0, 3), P), ErrorCode.Io, P, "3 bytes");
    expectError(() => parseIdx(file.subarray(0, 10), P), ErrorCode.Io, P, "expected 16 bytes", "got 10");
    expectError(() => parseIdx(file.subarray(0, file.length - 1), P), ErrorCode.Io, P, "need 28 bytes", "got 27");
    expectError(() => parseIdx(new Uint8Array(gzipSync(file.subarray(0, 20))), P), ErrorCode.Io, "need 28 bytes", "got 20");
  });

  test("rejects trailing bytes", () => {
    const longer = new Uint8Array([...file, 0, 0]);
    expectError(() => parseIdx(longer, P), ErrorCode.Io, P, "2 unexpected bytes");
  });

  test("rejects corrupt gzip, naming the path", () => {
    const gz = new Uint8Array(gzipSync(file));
    expectError(() => parseIdx(gz.subarray(0, gz.length - 8), P), ErrorCode.Io, P, "corrupt gzip");
    const flipped = gz.slice();
    flipped[12] = flipped[12]! ^ 0xff;
    expectError(() => parseIdx(flipped, P), ErrorCode.Io, P, "corrupt gzip");
  });
});

describe("readIdxFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "safl-idx-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("reads a file and reports a missing one with its path", async () => {
    const path = join(dir, "labels.gz");
    writeFileSync(path, gzipSync(idxBytes([3], [1, 2, 3])));
    assert.deepEqual(Array.from((await readIdxFile(path)).data), [1, 2, 3]);
    const missing = join(dir, "nope");
    await assert.rejects(readIdxFile(missing), (e: unknown) => e instanceof SaflError && e.code === ErrorCode.Io && e.message.includes(missing));
  });
});
