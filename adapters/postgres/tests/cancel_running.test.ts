// A cancel made through another adapter while a handler runs inside its transaction on a
// server (issue 15, item 6): the cancel returns while the handler is still running, the
// handler's signal is aborted, and the chunk's effect does not commit.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, sha256Hex } from "@zakstam/codex-sync-engine";
import {
  createPostgresAdapter,
  createPostgresJsDriver,
  type PostgresAdapterOptions,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "./support/cluster.ts";

const server = await startTestServer();
const admin = createPostgresJsDriver({ connectionString: server.url, options: { max: 2 } });
after(async () => {
  await admin.close();
  await server.dispose();
});

/** Rejects if `promise` takes longer than `ms` of real time (instead of hanging). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

test("cancel through another adapter returns while the handler runs; its effect never commits", async () => {
  const schema = `cancel_running_${Date.now().toString(36)}`;
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".effects (idx integer NOT NULL)`);
  let entered!: (signal: AbortSignal) => void;
  const enteredSignal = new Promise<AbortSignal>((resolve) => entered = resolve);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const options = (apply: PostgresAdapterOptions["handler"]["apply"]): PostgresAdapterOptions => ({
    connectionString: server.url,
    connectionOptions: { max: 4 },
    schema,
    handler: { apply },
    mode: "manual",
    pollIntervalMs: 60_000,
  });
  const worker = await createPostgresAdapter(options(async (chunk, ctx) => {
    await ctx.sql.query(`INSERT INTO "${schema}".effects (idx) VALUES ($1)`, [chunk.index]);
    if (chunk.index === 0) {
      entered(ctx.signal);
      await gate;
    }
  }));
  const other = await createPostgresAdapter(options(() => {}));
  try {
    const scope = "tenant";
    const parts = ["zero", "one"].map((text) => new TextEncoder().encode(text));
    const digests = await Promise.all(parts.map((bytes) => sha256Hex(bytes)));
    const source = await worker.createSource({ scope, conversationId: "c" });
    for (const [index, bytes] of parts.entries()) {
      await worker.appendChunk({
        scope,
        sourceId: source.sourceId,
        index,
        bytes,
        sha256: digests[index],
      });
    }
    const { job } = await worker.sealSource({
      scope,
      sourceId: source.sourceId,
      manifest: { chunkCount: 2, byteCount: 7, digest: compositeDigest(digests) },
    });
    const draining = worker.drain();
    const signal = await within(enteredSignal, 30_000, "the handler's start");
    // The handler is blocked until `release`: a cancel that waited for it would time out.
    const cancelled = await within(
      other.cancelJob({ scope, jobId: job.jobId }),
      30_000,
      "the cancel",
    );
    assert.equal(cancelled.state, "cancelled");
    assert.equal(cancelled.cursor, 0);
    for (const deadline = Date.now() + 30_000; !signal.aborted && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(signal.aborted, true, "the running handler's ctx.signal is aborted");
    release();
    await within(draining, 30_000, "the worker's drain");
    const [{ n }] = await admin.query<{ n: number }>(
      `SELECT count(*)::integer AS n FROM "${schema}".effects`,
    );
    assert.equal(n, 0, "the in-flight chunk's effect was rolled back");
    const after = await other.getJob({ scope, jobId: job.jobId });
    assert.deepEqual(after, cancelled, "the worker's commit after the cancel is refused");
  } finally {
    release();
    await worker.close();
    await other.close();
  }
});
