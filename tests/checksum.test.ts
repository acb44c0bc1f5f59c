import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bytesToHex,
  compositeDigest,
  EMPTY_COMPOSITE_STATE,
  extendComposite,
  finishComposite,
  hexDigestToBytes,
  IncrementalSha256,
  isHexDigest,
  sha256Hex,
} from "../src/checksum.ts";
import { SyncError } from "../src/errors.ts";

const utf8 = new TextEncoder();

/** Independent hex encoding (not the library's). */
function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function rawSha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

async function subtleHex(bytes: Uint8Array): Promise<string> {
  return hex(await rawSha256(bytes));
}

/** The composite digest computed from its definition with Web Crypto only. */
async function referenceComposite(chunks: Uint8Array[]): Promise<string> {
  const concatenated = new Uint8Array(chunks.length * 32);
  for (let i = 0; i < chunks.length; i++) concatenated.set(await rawSha256(chunks[i]), i * 32);
  return subtleHex(concatenated);
}

function assertSyncError(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof SyncError, `expected a SyncError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** SHA-256("hello"), the digest of the single chunk of the second vector. */
const HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
/** Composite of one chunk "hello" (README test vector). */
const COMPOSITE_HELLO = "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50";
/** Composite of three chunks "a", "b", "c" (README test vector). */
const COMPOSITE_ABC = "3a050f1d08fb8581d3d72ae727651e981043de0d6ca8e744328758f716602beb";
const ABC_SHA256 = [
  "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
  "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d",
  "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6",
];

describe("composite digest test vectors (README)", () => {
  test("empty source (0 chunks) is SHA-256 of the empty input", async () => {
    assert.equal(compositeDigest([]), EMPTY_SHA256);
    assert.equal(finishComposite(EMPTY_COMPOSITE_STATE), EMPTY_SHA256);
    assert.equal(await referenceComposite([]), EMPTY_SHA256);
  });

  test('one chunk "hello"', async () => {
    const chunk = utf8.encode("hello");
    assert.equal(await sha256Hex(chunk), HELLO_SHA256);
    assert.equal(await referenceComposite([chunk]), COMPOSITE_HELLO);
    assert.equal(compositeDigest([HELLO_SHA256]), COMPOSITE_HELLO);
    assert.equal(
      finishComposite(extendComposite(EMPTY_COMPOSITE_STATE, HELLO_SHA256)),
      COMPOSITE_HELLO,
    );
  });

  test('three chunks "a", "b", "c"', async () => {
    const chunks = ["a", "b", "c"].map((s) => utf8.encode(s));
    const digests = await Promise.all(chunks.map((c) => sha256Hex(c)));
    assert.deepEqual(digests, ABC_SHA256);
    assert.equal(await referenceComposite(chunks), COMPOSITE_ABC);
    assert.equal(compositeDigest(ABC_SHA256), COMPOSITE_ABC);
    const state = ABC_SHA256.reduce(extendComposite, EMPTY_COMPOSITE_STATE);
    assert.equal(finishComposite(state), COMPOSITE_ABC);
  });

  test("order matters", () => {
    assert.notEqual(compositeDigest([...ABC_SHA256].reverse()), COMPOSITE_ABC);
  });
});

describe("sha256Hex and hex helpers", () => {
  test("sha256Hex matches crypto.subtle, on both sides of its small-input path", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), async (bytes) => {
        assert.equal(await sha256Hex(bytes), await subtleHex(bytes));
      }),
      { numRuns: 150 },
    );
    for (const length of [1023, 1024, 1025]) {
      const bytes = new Uint8Array(length).map((_, i) => i * 7);
      assert.equal(await sha256Hex(bytes), await subtleHex(bytes));
    }
  });

  test("bytesToHex is lowercase two digits per byte", () => {
    assert.equal(bytesToHex(new Uint8Array([0, 1, 15, 16, 171, 255])), "00010f10abff");
    assert.equal(bytesToHex(new Uint8Array()), "");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        assert.equal(bytesToHex(bytes), hex(bytes));
      }),
      { numRuns: 200 },
    );
  });

  test("hexDigestToBytes inverts bytesToHex for 32 bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const text = bytesToHex(bytes);
        assert.equal(isHexDigest(text), true);
        assert.deepEqual(hexDigestToBytes(text), bytes);
      }),
      { numRuns: 200 },
    );
  });

  test("hexDigestToBytes rejects uppercase, short, long and non-hex with E_SYNC_INVALID_ARGUMENT", () => {
    const bad = [
      EMPTY_SHA256.toUpperCase(),
      "E" + EMPTY_SHA256.slice(1),
      EMPTY_SHA256.slice(0, 63),
      EMPTY_SHA256.slice(0, 62),
      "",
      EMPTY_SHA256 + "0",
      EMPTY_SHA256 + "00",
      "g" + EMPTY_SHA256.slice(1),
      "z".repeat(64),
      " " + EMPTY_SHA256.slice(1),
      EMPTY_SHA256.slice(0, 63) + "\n",
      "0x" + EMPTY_SHA256.slice(2),
    ];
    for (const text of bad) {
      assert.equal(isHexDigest(text), false, text);
      assertSyncError(() => hexDigestToBytes(text), "E_SYNC_INVALID_ARGUMENT");
    }
    for (const value of [undefined, null, 42, {}]) assert.equal(isHexDigest(value), false);
  });

  test("compositeDigest and extendComposite reject a bad chunk digest", () => {
    assertSyncError(() => compositeDigest([EMPTY_SHA256.toUpperCase()]), "E_SYNC_INVALID_ARGUMENT");
    assertSyncError(
      () => extendComposite(EMPTY_COMPOSITE_STATE, "abc"),
      "E_SYNC_INVALID_ARGUMENT",
    );
  });
});

/** Bytes plus a sorted list of cut points inside them. */
const splitBytes = fc
  .uint8Array({ maxLength: 400 })
  .chain((bytes) =>
    fc.tuple(
      fc.constant(bytes),
      fc.uniqueArray(fc.nat({ max: bytes.length }), { maxLength: 8 }).map((cuts) =>
        [...cuts].sort((a, b) => a - b)
      ),
    )
  );

function pieces(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(bytes.subarray(from, cut));
    from = cut;
  }
  return out;
}

describe("IncrementalSha256", () => {
  test("known answers (FIPS 180-2 examples)", () => {
    assert.equal(new IncrementalSha256().digestHex(), EMPTY_SHA256);
    assert.equal(
      new IncrementalSha256().update(utf8.encode("abc")).digestHex(),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.equal(
      new IncrementalSha256()
        .update(utf8.encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
        .digestHex(),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  test("padding boundaries 55/56/63/64/65/119/120/128 bytes match crypto.subtle", async () => {
    for (const n of [0, 1, 55, 56, 57, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
      assert.equal(
        new IncrementalSha256().update(bytes).digestHex(),
        await subtleHex(bytes),
        `n=${n}`,
      );
    }
  });

  test("property: equals crypto.subtle for arbitrary bytes split at arbitrary points", async () => {
    await fc.assert(
      fc.asyncProperty(splitBytes, async ([bytes, cuts]) => {
        const hasher = new IncrementalSha256();
        for (const piece of pieces(bytes, cuts)) hasher.update(piece);
        assert.equal(hasher.digestHex(), await subtleHex(bytes));
      }),
      { numRuns: 200 },
    );
  });

  test("property: save()/restore() and digestHex() between pieces change nothing", async () => {
    await fc.assert(
      fc.asyncProperty(
        splitBytes,
        fc.array(fc.boolean(), { minLength: 9, maxLength: 9 }),
        async ([bytes, cuts], peeks) => {
          let hasher = new IncrementalSha256();
          const parts = pieces(bytes, cuts);
          for (let i = 0; i < parts.length; i++) {
            hasher.update(parts[i]);
            if (peeks[i]) hasher.digestHex(); // must not disturb the state
            const saved = hasher.save();
            hasher = IncrementalSha256.restore(saved);
            assert.equal(hasher.save(), saved);
          }
          assert.equal(hasher.digestHex(), await subtleHex(bytes));
        },
      ),
      { numRuns: 200 },
    );
  });

  test("update returns the hasher and does not keep a reference to the input", () => {
    const hasher = new IncrementalSha256();
    const input = utf8.encode("abc");
    assert.equal(hasher.update(input), hasher);
    input.fill(0);
    assert.equal(
      hasher.digestHex(),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
  });

  test("restore() rejects malformed states with a SyncError", () => {
    const words = "0".repeat(64);
    const good = new IncrementalSha256().update(new Uint8Array(70)).save();
    assert.doesNotThrow(() => IncrementalSha256.restore(good));
    const bad = [
      "",
      "garbage",
      `0:${words}`, // missing buffer part
      `0:${words.slice(1)}:`, // short state
      `0:${words}0:`, // long state
      `0:${words.toUpperCase().replace(/0/g, "A")}:`, // uppercase
      `-1:${words}:`,
      `1e3:${words}:`,
      `x:${words}:`,
      `1234567890123456:${words}:`, // more than 15 digits
      `1:${words}:`, // length says 1 byte buffered, none given
      `0:${words}:aa`, // buffered byte but length 0
      `64:${words}:aa`, // a full block cannot stay buffered
      `2:${words}:a`, // odd hex digit count
      `2:${words}:aG`,
      `63:${words}:${"00".repeat(64)}`, // 64 buffered bytes
      ` ${good}`,
      `${good}\n`,
      good.replace(/^(\d+):/, (_, n) => `${Number(n) + 1}:`),
    ];
    for (const state of bad) {
      assert.throws(
        () => IncrementalSha256.restore(state),
        (error: unknown) => error instanceof SyncError,
        JSON.stringify(state),
      );
    }
    assert.throws(() => finishComposite("nope"), SyncError);
    assert.throws(() => extendComposite("nope", EMPTY_SHA256), SyncError);
  });
});

const digestArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(bytesToHex);

describe("compositeDigest", () => {
  test("property: equals SHA-256 of the concatenated raw digests", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(digestArb, { maxLength: 12 }), async (digests) => {
        const concatenated = new Uint8Array(digests.length * 32);
        digests.forEach((d, i) => {
          for (let j = 0; j < 32; j++) {
            concatenated[i * 32 + j] = parseInt(d.slice(j * 2, j * 2 + 2), 16);
          }
        });
        assert.equal(compositeDigest(digests), await subtleHex(concatenated));
      }),
      { numRuns: 150 },
    );
  });

  test("property: equals the definition over the chunks' own SHA-256", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 6 }),
        async (chunks) => {
          const digests = await Promise.all(chunks.map((c) => sha256Hex(c)));
          assert.equal(compositeDigest(digests), await referenceComposite(chunks));
        },
      ),
      { numRuns: 100 },
    );
  });

  test("accepts any iterable (generator)", () => {
    function* gen(): Generator<string> {
      yield* ABC_SHA256;
    }
    assert.equal(compositeDigest(gen()), COMPOSITE_ABC);
  });

  test("property: extendComposite/finishComposite agree with compositeDigest at every prefix", () => {
    fc.assert(
      fc.property(fc.array(digestArb, { maxLength: 12 }), (digests) => {
        let state = EMPTY_COMPOSITE_STATE;
        assert.equal(finishComposite(state), compositeDigest([]));
        for (let i = 0; i < digests.length; i++) {
          const before = state;
          state = extendComposite(state, digests[i]);
          assert.notEqual(state, before);
          assert.equal(finishComposite(state), compositeDigest(digests.slice(0, i + 1)));
        }
      }),
      { numRuns: 200 },
    );
  });

  test("EMPTY_COMPOSITE_STATE is a fresh hasher's state", () => {
    assert.equal(EMPTY_COMPOSITE_STATE, new IncrementalSha256().save());
    assert.equal(
      EMPTY_COMPOSITE_STATE,
      "0:6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19:",
    );
  });
});
