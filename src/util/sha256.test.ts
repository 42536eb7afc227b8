/** util/sha256 against node:crypto (an independent implementation) and the FIPS 180-4 examples. */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { sha256Hex } from "./sha256.js";

describe("util/sha256", () => {
  it("matches the FIPS 180-4 examples", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    assert.equal(sha256Hex(enc("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert.equal(sha256Hex(enc("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert.equal(sha256Hex(enc("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  });

  it("matches node:crypto on every length around the block and padding edges, and on large inputs", () => {
    for (let n = 0; n <= 300; n++) {
      const b = randomBytes(n);
      assert.equal(sha256Hex(b), createHash("sha256").update(b).digest("hex"), `length ${n}`);
    }
    for (const n of [4096, 65_537, 1_000_003]) {
      const b = randomBytes(n);
      assert.equal(sha256Hex(b), createHash("sha256").update(b).digest("hex"), `length ${n}`);
    }
    // A view into a larger buffer hashes only its own bytes.
    const big = randomBytes(1000);
    const view = new Uint8Array(big.buffer, big.byteOffset + 100, 500);
    assert.equal(sha256Hex(view), createHash("sha256").update(big.subarray(100, 600)).digest("hex"));
  });
});
