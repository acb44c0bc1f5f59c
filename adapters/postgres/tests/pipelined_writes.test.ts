// Pipelined writes on a server (postgres.js): the store sends the writes whose replies
// the engine does not read without waiting for them, COMMIT included. A write that fails
// aborts the transaction, so nothing of it commits, and its error is what the caller sees,
// whether a later read or the COMMIT comes next.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { type Chunk, isSyncError, sha256Hex } from "@zakstam/codex-sync-engine";
import {
  createPostgresAdapter,
  createPostgresJsDriver,
  type PostgresAdapter,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "./support/cluster.ts";

const server = await startTestServer();
after(() => server.dispose());

let schemas = 0;
async function withServerAdapter(body: (adapter: PostgresAdapter) => Promise<void>) {
  const adapter = await createPostgresAdapter({
    connectionString: server.url,
    schema: `pipelined_${Date.now().toString(36)}_${++schemas}`,
    handler: { apply() {} },
    mode: "manual",
  });
  try {
    await body(adapter);
  } finally {
    await adapter.close();
  }
}

async function chunk(text: string, index = 0): Promise<Chunk> {
  const bytes = new TextEncoder().encode(text);
  return { index, bytes, byteLength: bytes.length, sha256: await sha256Hex(bytes) };
}

async function chunkCount(adapter: PostgresAdapter): Promise<number> {
  const [row] = await adapter.driver.query<{ n: number }>(
    `SELECT count(*)::integer AS n FROM ${adapter.tables.chunks}`,
  );
  return row.n;
}

test("the postgres.js driver declares that it pipelines", async () => {
  const driver = createPostgresJsDriver({ connectionString: server.url, options: { max: 1 } });
  try {
    assert.equal(driver.pipelines, true);
  } finally {
    await driver.close();
  }
});

for (const next of ["a read", "the commit"] as const) {
  test(`a failing pipelined write followed by ${next}: nothing commits, its error surfaces`, async () => {
    await withServerAdapter(async (adapter) => {
      const first = await chunk("first");
      const again = await chunk("first, again");
      const outcome = adapter.store.transaction(async (tx) => {
        await tx.insertChunk("s", "src", first); // sent, not waited for
        await tx.insertChunk("s", "src", { ...again, index: 0 }); // same key: fails
        if (next === "a read") await tx.getSource("s", "src");
        return "returned";
      });
      await assert.rejects(outcome, (error: unknown) => {
        assert.ok(isSyncError(error), String(error));
        assert.match(error.message, /insertChunk/);
        return true;
      });
      assert.equal(await chunkCount(adapter), 0);
      // The lane is usable afterwards: a good transaction commits.
      await adapter.store.transaction(async (tx) => {
        await tx.insertChunk("s", "src", first);
        await tx.insertChunk("s", "src", await chunk("second", 1));
      });
      assert.equal(await chunkCount(adapter), 2);
    });
  });
}

test("pipelined writes are seen by the reads after them in the same transaction", async () => {
  await withServerAdapter(async (adapter) => {
    const infos = await adapter.store.transaction(async (tx) => {
      for (let i = 0; i < 5; i++) await tx.insertChunk("s", "src", await chunk(`line ${i}`, i));
      return await tx.listChunkInfos("s", "src", -1, 10);
    });
    assert.deepEqual(infos.map((info) => info.index), [0, 1, 2, 3, 4]);
  });
});
