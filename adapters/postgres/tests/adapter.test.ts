// The adapter's own behaviour beyond the conformance suite, on an in-memory PGlite:
// names, error mapping, migrations, index plans, transactional apply through ctx.sql,
// storable keys, the auto-mode worker on the injected clock, options, extension records.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  compositeDigest,
  isSyncError,
  type Job,
  ManualClock,
  sha256Hex,
  syncConversation,
  SyncError,
  type SyncErrorCode,
} from "@zakstam/codex-sync-engine";
import {
  createPGliteDriver,
  createPostgresAdapter,
  migrate,
  MIGRATIONS,
  type PostgresAdapter,
  type PostgresAdapterOptions,
  SCHEMA_VERSION,
  type SqlRow,
  tableNames,
  toBackendError,
} from "@zakstam/codex-sync-engine-postgres";
import {
  chunkBytesCompression,
  planProblems,
  planStatements,
  seedTables,
} from "./support/plans.ts";

async function expectCode(action: () => Promise<unknown>, code: SyncErrorCode): Promise<SyncError> {
  try {
    await action();
  } catch (error) {
    assert.ok(isSyncError(error), `expected a SyncError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

async function withAdapter(
  options:
    & Omit<PostgresAdapterOptions, "handler">
    & Partial<Pick<PostgresAdapterOptions, "handler">>,
  body: (adapter: PostgresAdapter) => Promise<void>,
): Promise<void> {
  const adapter = await createPostgresAdapter({
    handler: { apply() {} },
    mode: "manual",
    ...options,
  });
  try {
    await body(adapter);
  } finally {
    await adapter.close();
  }
}

const encoder = new TextEncoder();

async function upload(adapter: PostgresAdapter, scope: string, parts: string[]) {
  const chunks = parts.map((part) => encoder.encode(part));
  const digests = await Promise.all(chunks.map((chunk) => sha256Hex(chunk)));
  const source = await adapter.createSource({
    scope,
    conversationId: `conv-${crypto.randomUUID()}`,
  });
  for (const [index, bytes] of chunks.entries()) {
    await adapter.appendChunk({
      scope,
      sourceId: source.sourceId,
      index,
      bytes,
      sha256: digests[index],
    });
  }
  return { source, chunks, digests };
}

test("tables: schema and prefix are validated, quoted, and the channel is an identifier", async () => {
  const names = tableNames({ schema: "sync", tablePrefix: "app_" });
  assert.equal(names.jobs, `"sync"."app_jobs"`);
  assert.equal(names.index("jobs_due"), `"app_jobs_due"`);
  assert.equal(names.channel, "sync_app_jobs");
  const long = tableNames({ schema: "s".repeat(63), tablePrefix: "p".repeat(32) });
  assert.match(long.channel, /^codex_sync_[0-9a-f]{8}$/);
  assert.equal(tableNames().jobs, `"public"."codex_sync_jobs"`);
  for (
    const location of [
      { schema: "Sync" },
      { schema: "" },
      { schema: "a;drop" },
      { schema: "s".repeat(64) },
      { tablePrefix: "1x" },
      { tablePrefix: "p".repeat(33) },
      { tablePrefix: 'x"' },
    ]
  ) {
    await expectCode(() => Promise.resolve(tableNames(location)), "E_SYNC_INVALID_ARGUMENT");
  }
});

test("errors: lost connections, shutdowns and conflicts are retryable BACKEND_UNAVAILABLE", () => {
  const transient = [
    "ECONNREFUSED",
    "ECONNRESET",
    "CONNECTION_CLOSED",
    "CONNECTION_ENDED",
    "CONNECT_TIMEOUT",
    "57P01",
    "57P03",
    "08006",
    "08001",
    "53300",
    "40001",
    "40P01",
  ];
  for (const code of transient) {
    const mapped = toBackendError(Object.assign(new Error("boom"), { code }), "op");
    assert.equal(mapped.code, "E_SYNC_BACKEND_UNAVAILABLE", code);
    assert.equal(mapped.retryable, true, code);
    assert.equal(mapped.details?.backendCode, code);
  }
  for (const code of ["23505", "42P01", "22012", undefined]) {
    const mapped = toBackendError(Object.assign(new Error("boom"), { code }), "op");
    assert.equal(mapped.code, "E_SYNC_INTERNAL", String(code));
    assert.equal(mapped.retryable, false);
  }
  assert.equal(toBackendError({ code: "22021" }, "op").code, "E_SYNC_INVALID_ARGUMENT");
  const original = new SyncError("E_SYNC_LEASE_LOST", "lost");
  assert.equal(toBackendError(original, "op"), original);
});

test("migrations: applied once, idempotent, and a newer schema version is refused", async () => {
  const driver = await createPGliteDriver();
  try {
    const names = tableNames({ schema: "m", tablePrefix: "t_" });
    assert.deepEqual(await migrate(driver, names), {
      applied: [1, 2, 3, 4, 5, 6, 7, 8],
      version: SCHEMA_VERSION,
    });
    assert.deepEqual(await migrate(driver, names), { applied: [], version: SCHEMA_VERSION });
    // Other prefixes in the same schema are independent.
    assert.deepEqual(
      (await migrate(driver, tableNames({ schema: "m", tablePrefix: "u_" }))).applied,
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    // Tables made by an older adapter are brought up to date: chunk bytes become nullable.
    const old = tableNames({ schema: "m", tablePrefix: "v1_" });
    assert.deepEqual(await migrate(driver, old, MIGRATIONS.slice(0, 1)), {
      applied: [1],
      version: 1,
    });
    const nullable = `SELECT is_nullable FROM information_schema.columns
      WHERE table_schema = 'm' AND table_name = 'v1_chunks' AND column_name = 'bytes'`;
    assert.equal((await driver.query(nullable))[0].is_nullable, "NO");
    assert.deepEqual(await migrate(driver, old), {
      applied: [2, 3, 4, 5, 6, 7, 8],
      version: SCHEMA_VERSION,
    });
    assert.equal((await driver.query(nullable))[0].is_nullable, "YES");
    // Version 8 asks for lz4, which PGlite is built without: the column keeps the default.
    assert.equal(await chunkBytesCompression(driver, old), "");
    await driver.query(`INSERT INTO ${names.migrations} (version, name) VALUES (999, 'future')`);
    await expectCode(() => migrate(driver, names), "E_SYNC_INTERNAL");
  } finally {
    await driver.close();
  }
});

test("indexes: every statement of the store is served by an index (PGlite)", async () => {
  const driver = await createPGliteDriver();
  try {
    const names = tableNames({ tablePrefix: "ix_" });
    await migrate(driver, names);
    await seedTables(driver, names);
    const plans = await planStatements(driver, names);
    assert.deepEqual(planProblems(plans, names.prefix), []);
  } finally {
    await driver.close();
  }
});

test("transactional apply: host writes through ctx.sql commit with progress, exactly once", async () => {
  let failOnce = true;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  await withAdapter({
    clock,
    random: () => 0.5,
    handler: {
      async apply(chunk, ctx) {
        await ctx.sql.query(
          "INSERT INTO effects (source_id, idx, body) VALUES ($1::text, $2::integer, $3::bytea)",
          [ctx.job.sourceId, chunk.index, chunk.bytes],
        );
        if (chunk.index === 1 && failOnce) {
          failOnce = false;
          throw new Error("transient, after writing");
        }
      },
      async verify(ctx) {
        const [row] = await ctx.sql.query<{ n: number }>(
          "SELECT count(*)::integer AS n FROM effects WHERE source_id = $1::text",
          [ctx.job.sourceId],
        );
        if (row.n !== ctx.manifest.chunkCount) throw new Error(`${row.n} effects`);
      },
    },
  }, async (adapter) => {
    await adapter.driver.query(
      "CREATE TABLE effects (source_id text, idx integer, body bytea)",
    );
    const { source, digests, chunks } = await upload(adapter, "s", ["a", "b", "c"]);
    const manifest = {
      chunkCount: 3,
      byteCount: 3,
      digest: compositeDigest(digests),
    };
    const { job } = await adapter.sealSource({ scope: "s", sourceId: source.sourceId, manifest });
    await adapter.drain();
    const waiting = await adapter.getJob({ scope: "s", jobId: job.jobId });
    assert.equal(waiting.state, "retry_wait");
    assert.equal(waiting.cursor, 1);
    // The failed attempt's insert of chunk 1 rolled back with it.
    const partial = await adapter.driver.query("SELECT idx FROM effects ORDER BY idx");
    assert.deepEqual(partial.map((row) => row.idx), [0]);
    assert.ok(waiting.runAt > clock.now());
    await adapter.drain();
    assert.equal((await adapter.getJob({ scope: "s", jobId: job.jobId })).state, "retry_wait");
    clock.set(waiting.runAt);
    await adapter.drain();
    const done = await adapter.getJob({ scope: "s", jobId: job.jobId });
    assert.equal(done.state, "succeeded", JSON.stringify(done.error));
    const rows = await adapter.driver.query<{ idx: number; body: Uint8Array }>(
      "SELECT idx, body FROM effects ORDER BY idx",
    );
    assert.deepEqual(rows.map((row) => row.idx), [0, 1, 2]);
    assert.deepEqual(rows.map((row) => new Uint8Array(row.body)), chunks);
  });
});

test("transactional apply: one-chunk jobs finish in batches; a failure undoes only its batch", async () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const failures = new Set(["c3"]);
  // NOTIFY statements (sent after commits) take an xid too; they are counted apart.
  const pglite = await createPGliteDriver({});
  let notifyStatements = 0;
  const notifying = new Set<Promise<unknown>>();
  const driver: typeof pglite = {
    ...pglite,
    query: <R extends SqlRow = SqlRow>(text: string, params?: readonly unknown[]) => {
      const result = pglite.query<R>(text, params);
      if (text.includes("pg_notify")) {
        notifyStatements++;
        const done = result.catch(() => {}).finally(() => notifying.delete(done));
        notifying.add(done);
      }
      return result;
    },
  };
  const notified = async () => {
    while (notifying.size > 0) await Promise.all(notifying);
  };
  after(() => pglite.close());
  await withAdapter({
    driver,
    clock,
    random: () => 0.5,
    policy: { shortJobBatchSize: 4 },
    handler: {
      async apply(chunk, ctx) {
        await ctx.sql.query(
          "INSERT INTO effects (conversation, body) VALUES ($1::text, $2::bytea)",
          [
            ctx.job.conversationId,
            chunk.bytes,
          ],
        );
        // Fails after writing: the write must roll back with the batch it ran in.
        if (failures.delete(ctx.job.conversationId)) throw new Error("transient, after writing");
      },
    },
  }, async (adapter) => {
    await adapter.driver.query("CREATE TABLE effects (conversation text, body bytea)");
    const names = Array.from({ length: 10 }, (_, i) => `c${i}`);
    const jobs: Job[] = [];
    for (const name of names) {
      const bytes = encoder.encode(`record of ${name}`);
      const sha256 = await sha256Hex(bytes);
      const { job } = await adapter.uploadSource({
        scope: "s",
        conversationId: name,
        chunks: [{ index: 0, bytes, sha256 }],
        manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
      });
      jobs.push(job);
    }
    const xid = async () =>
      Number((await adapter.driver.query("SELECT pg_current_xact_id()::text AS x"))[0].x);
    await notified();
    const before = await xid();
    const notifiesBefore = notifyStatements;
    await adapter.drain();
    const read = () =>
      Promise.all(jobs.map((job) => adapter.getJob({ scope: "s", jobId: job.jobId })));
    const first = await read();
    assert.deepEqual(
      first.map((job) => job.state),
      names.map((name) => (name === "c3" ? "retry_wait" : "succeeded")),
    );
    const effects = async () =>
      (await adapter.driver.query<{ conversation: string }>(
        "SELECT conversation FROM effects ORDER BY conversation",
      )).map((row) => row.conversation);
    // c0…c2 ran in the batch that c3 rolled back, yet each effect committed once.
    assert.deepEqual(await effects(), names.filter((name) => name !== "c3").sort());
    // Write transactions: the rolled-back batch leaves no xid; the failure record, then
    // batches of 4 (c0 c1 c2 c4), 4 (c5…c8) and 1 (c9) — far fewer than one per job.
    await notified();
    const writes = (await xid()) - before - (notifyStatements - notifiesBefore);
    assert.ok(writes <= 6, `write transactions: ${writes}`);
    clock.set(first[3].runAt);
    await adapter.drain();
    assert.deepEqual((await read()).map((job) => job.state), names.map(() => "succeeded"));
    assert.deepEqual(await effects(), [...names].sort());
  });
});

test("transactional apply: ctx.sql refuses use after its transaction ended", async () => {
  let kept: { query(text: string): Promise<unknown> } | undefined;
  await withAdapter({
    handler: {
      apply(_chunk, ctx) {
        kept = ctx.sql;
      },
    },
  }, async (adapter) => {
    const { source, digests } = await upload(adapter, "s", ["x"]);
    await adapter.sealSource({
      scope: "s",
      sourceId: source.sourceId,
      manifest: { chunkCount: 1, byteCount: 1, digest: compositeDigest(digests) },
    });
    await adapter.drain();
    assert.ok(kept);
    await expectCode(() => kept!.query("SELECT 1"), "E_SYNC_INTERNAL");
  });
});

test("keys postgres cannot store (NUL, unpaired surrogate) are E_SYNC_INVALID_ARGUMENT", async () => {
  await withAdapter({}, async (adapter) => {
    for (const scope of ["a\u0000b", "a\ud800b", "\udc00"]) {
      await expectCode(
        () => adapter.createSource({ scope, conversationId: "c" }),
        "E_SYNC_INVALID_ARGUMENT",
      );
      await expectCode(() => adapter.getJob({ scope, jobId: "j" }), "E_SYNC_INVALID_ARGUMENT");
    }
    await expectCode(
      () => adapter.createSource({ scope: "s", conversationId: "c", sourceId: "x\u0000" }),
      "E_SYNC_INVALID_ARGUMENT",
    );
    // A well-formed surrogate pair and NUL inside JSON metadata are fine.
    const source = await adapter.createSource({
      scope: "s😀",
      conversationId: "c",
      metadata: { text: "nul \u0000 and lone \ud800 inside JSON" },
    });
    const read = await adapter.getSource({ scope: "s😀", sourceId: source.sourceId });
    assert.deepEqual(read.metadata, { text: "nul \u0000 and lone \ud800 inside JSON" });
  });
});

test("auto mode: the worker runs sealed jobs, and retries when the injected clock says", async () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  let calls = 0;
  await withAdapter({
    mode: "auto",
    clock,
    random: () => 0.5,
    handler: {
      apply() {
        if (++calls === 1) throw new Error("first attempt fails");
      },
    },
  }, async (adapter) => {
    const result = syncConversation(adapter, {
      scope: "s",
      conversationId: "c",
      payload: encoder.encode("hello"),
      clock,
    });
    let job = await poll(async () => {
      const { items } = await adapter.listJobs({ scope: "s" });
      return items[0]?.state === "retry_wait" ? items[0] : undefined;
    });
    assert.equal(calls, 1);
    clock.set(job.runAt);
    job = (await result).job;
    assert.equal(job.state, "succeeded");
    assert.equal(calls, 2);
  });
});

async function poll<T>(read: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test("options: conflicting storage and bad values are E_SYNC_INVALID_ARGUMENT", async () => {
  const driver = await createPGliteDriver();
  try {
    const handler = { apply() {} };
    for (
      const options of [
        { driver, connectionString: "postgres://x" },
        { dataDir: "/tmp/x", connectionString: "postgres://x" },
        { connectionOptions: { max: 1 } },
        { driver, pgliteOptions: {} },
        { driver, concurrency: 0 },
        { driver, pollIntervalMs: -1 },
        { driver, mode: "sometimes" },
        { driver, schema: "Bad" },
      ] as Partial<PostgresAdapterOptions>[]
    ) {
      await expectCode(
        () => createPostgresAdapter({ handler, ...options }),
        "E_SYNC_INVALID_ARGUMENT",
      );
    }
  } finally {
    await driver.close();
  }
});

test("close: a closed adapter refuses calls; a caller-owned driver stays open", async () => {
  const driver = await createPGliteDriver();
  try {
    const adapter = await createPostgresAdapter({ driver, handler: { apply() {} } });
    await adapter.close();
    await adapter.close();
    const error = await expectCode(
      () => adapter.getJob({ scope: "s", jobId: "j" }),
      "E_SYNC_BACKEND_UNAVAILABLE",
    );
    assert.equal(error.retryable, false);
    assert.deepEqual(await driver.query("SELECT 1 AS one"), [{ one: 1 }]);
  } finally {
    await driver.close();
  }
});

test("extensions: the records keep their links, chunks live in the home, a range delete spares the base", async () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  await withAdapter({ clock }, async (adapter) => {
    assert.ok(adapter.capabilities.includes("extensions"));
    const scope = "s";
    const conversationId = "conv";
    assert.equal(await adapter.getLatestSource({ scope, conversationId }), null);
    const parts = ["a;", "b;", "c;", "d;"].map((part) => encoder.encode(part));
    const digests = await Promise.all(parts.map((part) => sha256Hex(part)));
    const chunk = (index: number) => ({ index, bytes: parts[index], sha256: digests[index] });
    const manifest = (count: number) => ({
      chunkCount: count,
      byteCount: parts.slice(0, count).reduce((sum, part) => sum + part.length, 0),
      digest: compositeDigest(digests.slice(0, count)),
    });
    const base = await adapter.uploadSource({
      scope,
      conversationId,
      sourceId: "base",
      chunks: [chunk(0), chunk(1)],
      manifest: manifest(2),
    });
    await adapter.drain();
    clock.advance(1);
    const ext = await adapter.uploadSource({
      scope,
      conversationId,
      sourceId: "ext",
      baseSourceId: "base",
      chunks: [chunk(2), chunk(3)],
      manifest: manifest(4),
    });
    assert.deepEqual(ext.source.base, { sourceId: "base", chunkCount: 2, byteCount: 4 });
    assert.deepEqual(ext.job.base, { sourceId: "base", jobId: base.job.jobId, chunkCount: 2 });
    // The records come back as the engine wrote them (the JSON record column).
    assert.deepEqual(await adapter.getSource({ scope, sourceId: "ext" }), ext.source);
    assert.deepEqual(await adapter.getJob({ scope, jobId: ext.job.jobId }), ext.job);
    const stored = await adapter.driver.query(
      `SELECT source_id, idx FROM ${adapter.tables.chunks} ORDER BY source_id, idx`,
    );
    assert.deepEqual(
      stored.map((row) => [row.source_id, Number(row.idx)]),
      [["base", 0], ["base", 1], ["base", 2], ["base", 3]],
      "the extension's chunks went to its base's home; nothing was copied",
    );
    assert.equal((await adapter.getLatestSource({ scope, conversationId }))?.sourceId, "ext");
    await adapter.drain();
    assert.equal((await adapter.getJob({ scope, jobId: ext.job.jobId })).state, "succeeded");

    // The range primitive: only index >= fromIndex goes.
    const deleted = await adapter.store.transaction((tx) => tx.deleteChunks(scope, "base", 2));
    assert.equal(deleted, 2);
    const listed = await adapter.listChunks({ scope, sourceId: "base" });
    assert.deepEqual(listed.items.map((info) => info.index), [0, 1]);
    assert.equal(await adapter.store.transaction((tx) => tx.deleteChunks(scope, "base", 2)), 0);
    assert.equal(await adapter.store.transaction((tx) => tx.deleteChunks(scope, "base")), 2);
  });
});

test("onJobWrite: told of each committed job write, not after unsubscribing", async () => {
  await withAdapter({}, async (adapter) => {
    const notices: Array<{ jobId: string; state: string } | undefined> = [];
    const unsubscribe = adapter.onJobWrite((notice) =>
      notices.push(notice && { jobId: notice.jobId, state: notice.state })
    );
    const { source, chunks, digests } = await upload(adapter, "notices", ["a\n", "b\n"]);
    assert.equal(notices.length, 0, "no job written by create and append");
    const { job } = await adapter.sealSource({
      scope: "notices",
      sourceId: source.sourceId,
      manifest: {
        chunkCount: chunks.length,
        byteCount: chunks.reduce((sum, chunk) => sum + chunk.length, 0),
        digest: compositeDigest(digests),
      },
    });
    assert.deepEqual([...notices], [{ jobId: job.jobId, state: "queued" }]);
    await adapter.drain();
    assert.equal(notices.at(-1)?.state, "succeeded");
    assert.ok(notices.every((notice) => notice?.jobId === job.jobId));
    const seen = notices.length;
    unsubscribe();
    await adapter.cancelJob({ scope: "notices", jobId: job.jobId });
    const other = await upload(adapter, "notices", ["c\n"]);
    await adapter.sealSource({
      scope: "notices",
      sourceId: other.source.sourceId,
      manifest: { chunkCount: 1, byteCount: 2, digest: compositeDigest(other.digests) },
    });
    assert.equal(notices.length, seen);
  });
});
