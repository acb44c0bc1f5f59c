// bytea on the wire (src/bytea.ts): every hex codec this runtime has agrees with the
// plain one, malformed text is refused, and both drivers carry any bytes both ways —
// PGlite as a binary parameter, postgres.js as hex text.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  bufferHex,
  HEX,
  type HexCodec,
  nativeHex,
  parseByteaText,
  TABLE_HEX,
} from "../src/bytea.ts";
import {
  createPGliteDriver,
  createPostgresJsDriver,
  type PostgresDriver,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "./support/cluster.ts";

const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
const random = crypto.getRandomValues(new Uint8Array(65536));
const samples = [new Uint8Array(0), Uint8Array.of(0), everyByte, random];
/** Larger than one message buffer of either client. */
const large = Uint8Array.from({ length: 3 * 65536 }, (_, i) => (i * 2654435761) >>> 24);

const codecs = [TABLE_HEX, nativeHex(), bufferHex()].filter((c): c is HexCodec => !!c);

test("bytea codecs: every codec of this runtime encodes and decodes like the table", () => {
  assert.ok(codecs.length >= 2, `only ${codecs.map((c) => c.name)} available`);
  for (const codec of codecs) {
    for (const bytes of samples) {
      const hex = codec.encode(bytes);
      assert.equal(hex, TABLE_HEX.encode(bytes), `${codec.name} encode of ${bytes.length}`);
      assert.equal(hex.length, bytes.length * 2);
      assert.match(hex, /^[0-9a-f]*$/);
      assert.deepEqual(codec.decode(hex), bytes, `${codec.name} decode`);
      assert.deepEqual(codec.decode(hex.toUpperCase()), bytes, `${codec.name} upper case`);
    }
    // A view into a larger buffer encodes only its own bytes.
    assert.equal(codec.encode(everyByte.subarray(16, 18)), "1011", `${codec.name} subarray`);
  }
  assert.equal(TABLE_HEX.encode(everyByte.subarray(0, 4)), "00010203");
});

test("bytea codecs: malformed hex is a TypeError, not silently shortened", () => {
  for (const codec of codecs) {
    for (const bad of ["0", "abc", "zz", "0g", "00 1", "0x00", "é0"]) {
      assert.throws(() => codec.decode(bad), TypeError, `${codec.name} decode ${bad}`);
    }
  }
  assert.throws(() => parseByteaText("0001"), /expected hex output/);
  assert.throws(() => parseByteaText("\\001"), /expected hex output|malformed/);
  assert.deepEqual(parseByteaText("\\x00ff"), Uint8Array.of(0, 255));
  assert.deepEqual(parseByteaText("\\x"), new Uint8Array(0));
  assert.ok(codecs.some((c) => c.name === HEX.name), "the chosen codec is one tested here");
});

async function roundTrips(driver: PostgresDriver): Promise<void> {
  for (const bytes of [...samples, large]) {
    const [row] = await driver.query<{ b: Uint8Array; n: number; h: string }>(
      "SELECT $1::bytea AS b, length($1::bytea) AS n, encode($1::bytea, 'hex') AS h",
      [bytes],
    );
    assert.equal(row.n, bytes.length, "the server saw every byte");
    assert.equal(row.h, TABLE_HEX.encode(bytes), "the server saw these bytes");
    assert.ok(row.b instanceof Uint8Array);
    assert.deepEqual(new Uint8Array(row.b), bytes, "read back");
  }
  const inTransaction = await driver.transaction(async (tx) => {
    await tx.query("CREATE TEMP TABLE bytea_t (b bytea NOT NULL)");
    await tx.query("INSERT INTO bytea_t (b) VALUES ($1::bytea), ($2::bytea)", [
      everyByte,
      new Uint8Array(0),
    ]);
    return await tx.query<{ b: Uint8Array }>("SELECT b FROM bytea_t ORDER BY length(b)");
  });
  assert.deepEqual(inTransaction.map((r) => new Uint8Array(r.b)), [new Uint8Array(0), everyByte]);
  const [nul] = await driver.query<{ b: Uint8Array | null }>("SELECT $1::bytea AS b", [null]);
  assert.equal(nul.b, null);
}

test("bytea on PGlite: any bytes both ways, in and out of transactions", async () => {
  const driver = await createPGliteDriver();
  try {
    await roundTrips(driver);
    // A host's text literal for a bytea parameter still means what PostgreSQL says.
    const [row] = await driver.query<{ b: Uint8Array }>("SELECT $1::bytea AS b", ["\\x00ff"]);
    assert.deepEqual(new Uint8Array(row.b), Uint8Array.of(0, 255));
  } finally {
    await driver.close();
  }
});

test("bytea on a server through postgres.js: any bytes both ways", async (t) => {
  const server = await startTestServer();
  after(() => server.dispose());
  const driver = createPostgresJsDriver({ connectionString: server.url, options: { max: 2 } });
  t.after(() => driver.close());
  await roundTrips(driver);
});
