// The adapter against a real server (throwaway cluster or DATABASE_URL): index plans,
// concurrent start-ups, change notification across processes (separate pools), the
// background worker woken by NOTIFY, and an unreachable server.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, isSyncError, sha256Hex } from "@zakstam/codex-sync-engine";
import {
  createPostgresAdapter,
  createPostgresJsDriver,
  migrate,
  MIGRATIONS,
  type PostgresAdapter,
  type PostgresAdapterOptions,
  tableNames,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "./support/cluster.ts";
import {
  chunkBytesCompression,
  planProblems,
  planStatements,
  seedTables,
} from "./support/plans.ts";

const server = await startTestServer();
const admin = createPostgresJsDriver({ connectionString: server.url, options: { max: 2 } });
let schemas = 0;
after(async () => {
  await admin.close();
  await server.dispose();
});

function freshSchema(): string {
  return `server_test_${Date.now().toString(36)}_${++schemas}`;
}

const encoder = new TextEncoder();

/** Uploads and seals a small source through `adapter`; returns the job id. */
async function sealOne(adapter: PostgresAdapter, scope: string, text: string): Promise<string> {
  const bytes = encoder.encode(text);
  const sha256 = await sha256Hex(bytes);
  const source = await adapter.createSource({ scope, conversationId: crypto.randomUUID() });
  await adapter.appendChunk({ scope, sourceId: source.sourceId, index: 0, bytes, sha256 });
  const { job } = await adapter.sealSource({
    scope,
    sourceId: source.sourceId,
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  return job.jobId;
}

function open(schema: string, options: Partial<PostgresAdapterOptions> = {}) {
  return createPostgresAdapter({
    connectionString: server.url,
    connectionOptions: { max: 4 },
    schema,
    handler: { apply() {} },
    mode: "manual",
    ...options,
  });
}

/** Rejects if `promise` takes longer than `ms` of real time. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

test("indexes: every statement of the store is served by an index (server)", async () => {
  const names = tableNames({ schema: freshSchema(), tablePrefix: "ix_" });
  await migrate(admin, names);
  await seedTables(admin, names);
  const plans = await planStatements(admin, names);
  assert.deepEqual(planProblems(plans, names.prefix), []);
});

test("migrations: chunk payloads are stored with lz4 when the server has it (version 8)", async () => {
  // Debian's and most servers are built with lz4; one without refuses the setting.
  const lz4 = await admin.transaction((tx) =>
    tx.query(`SET LOCAL default_toast_compression = 'lz4'`)
  ).then(() => true, () => false);
  const schema = freshSchema();
  const adapter = await open(schema);
  try {
    const names = tableNames({ schema });
    assert.equal(await chunkBytesCompression(admin, names), lz4 ? "l" : "");
    // A payload large enough to be compressed is stored with that method.
    await sealOne(adapter, "s", `{"type":"message","text":"${"compressible ".repeat(5_000)}"}\n`);
    const [stored] = await admin.query<{ method: string | null }>(
      `SELECT pg_column_compression(bytes) AS method FROM ${names.chunks}`,
    );
    assert.equal(stored.method, lz4 ? "lz4" : "pglz");
  } finally {
    await adapter.close();
  }
});

test("migrations: concurrent start-ups apply the schema exactly once", async () => {
  const names = tableNames({ schema: freshSchema() });
  const drivers = Array.from(
    { length: 6 },
    () => createPostgresJsDriver({ connectionString: server.url, options: { max: 1 } }),
  );
  try {
    const reports = await Promise.all(drivers.map((driver) => migrate(driver, names)));
    assert.deepEqual(
      reports.map((report) => report.applied.length).sort(),
      [0, 0, 0, 0, 0, MIGRATIONS.length],
    );
    const rows = await admin.query(`SELECT version FROM ${names.migrations} ORDER BY version`);
    assert.deepEqual(rows.map((row) => row.version), MIGRATIONS.map((m) => m.version));
  } finally {
    await Promise.all(drivers.map((driver) => driver.close()));
  }
});

test("notifications: a wait is woken by another process's commit (LISTEN/NOTIFY)", async () => {
  const schema = freshSchema();
  // Polls far slower than the test's budget: only a NOTIFY can wake the waiter in time.
  const waiter = await open(schema, { pollIntervalMs: 120_000 });
  const worker = await open(schema, { pollIntervalMs: 120_000 });
  try {
    const jobId = await sealOne(waiter, "s", "hello");
    const waiting = waiter.waitForTerminal({ scope: "s", jobId });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await worker.drain(), 1);
    const done = await within(waiting, 5_000, "waitForTerminal");
    assert.equal(done.state, "succeeded");
  } finally {
    await waiter.close();
    await worker.close();
  }
});

test("worker: an auto-mode worker is woken by NOTIFY for another process's sealed job", async () => {
  const schema = freshSchema();
  const applied: string[] = [];
  const worker = await open(schema, {
    mode: "auto",
    pollIntervalMs: 120_000,
    handler: {
      apply(_chunk, ctx) {
        applied.push(ctx.job.jobId);
      },
    },
  });
  const uploader = await open(schema, { pollIntervalMs: 120_000 });
  try {
    // Let the worker's first pass (nothing due) finish, so only a NOTIFY can wake it.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const jobId = await sealOne(uploader, "s", "wake up");
    const done = await within(
      uploader.waitForTerminal({ scope: "s", jobId }),
      5_000,
      "the job run by the other process's worker",
    );
    assert.equal(done.state, "succeeded");
    assert.deepEqual(applied, [jobId]);
  } finally {
    await uploader.close();
    await worker.close();
  }
});

test("errors: an unreachable server is a retryable E_SYNC_BACKEND_UNAVAILABLE", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  try {
    await open(freshSchema(), {
      connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
      connectionOptions: { connect_timeout: 2 },
    });
    assert.fail("the adapter opened against a closed port");
  } catch (error) {
    assert.ok(isSyncError(error), String(error));
    assert.equal(error.code, "E_SYNC_BACKEND_UNAVAILABLE", error.message);
    assert.equal(error.retryable, true);
  }
});
