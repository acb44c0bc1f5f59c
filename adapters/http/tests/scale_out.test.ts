// Scale-out and restarts on one PostgreSQL server (a throwaway cluster, or DATABASE_URL):
// two HTTP servers (two Deno.serve handlers over two Postgres adapters, as two processes
// would be) behind a client whose requests alternate between them, as behind a load
// balancer; a wait held on one server woken by a commit made through the other; a
// server restarted mid-sync. Effects are rows written in the apply transaction, so
// "exactly once" is checked in the database.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  compositeDigest,
  sha256Hex,
  syncConversation,
  type SyncHandler,
} from "@zakstam/codex-sync-engine";
import {
  createPostgresAdapter,
  createPostgresJsDriver,
  type PostgresAdapter,
  type PostgresExtras,
} from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "../../postgres/tests/support/cluster.ts";
import {
  createBearerAuthenticator,
  createHttpSyncAdapter,
  createSyncHttpHandler,
  type FetchLike,
} from "../mod.ts";
import { records } from "./support/fixtures.ts";

const database = await startTestServer();
const admin = createPostgresJsDriver({ connectionString: database.url, options: { max: 2 } });
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await admin.close();
  await database.dispose();
});

const TOKEN = "scale-out-token";
const SCOPE = "tenant";
let schemas = 0;

/** A fresh schema with an `effects` table the handler writes to. */
async function freshSchema(): Promise<string> {
  const schema = `http_scale_${Date.now().toString(36)}_${++schemas}`;
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(
    `CREATE TABLE "${schema}".effects (source_id text NOT NULL, idx integer NOT NULL)`,
  );
  closers.push(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  });
  return schema;
}

function effectsHandler(schema: string, gate?: Promise<void>): SyncHandler<PostgresExtras> {
  return {
    async apply(chunk, ctx) {
      if (gate && ctx.job.conversationId.startsWith("gated")) await gate;
      await ctx.sql.query(`INSERT INTO "${schema}".effects (source_id, idx) VALUES ($1, $2)`, [
        ctx.job.sourceId,
        chunk.index,
      ]);
    },
  };
}

async function openAdapter(
  schema: string,
  mode: "auto" | "manual",
  gate?: Promise<void>,
): Promise<PostgresAdapter> {
  const adapter = await createPostgresAdapter({
    connectionString: database.url,
    connectionOptions: { max: 4 },
    schema,
    handler: effectsHandler(schema, gate),
    mode,
    // Waiters and workers must be woken by NOTIFY: the safety-net poll is out of reach.
    pollIntervalMs: 60_000,
  });
  return adapter;
}

interface Instance {
  url: string;
  port: number;
  adapter: PostgresAdapter;
  requests: number;
  stop(): Promise<void>;
}

/** One "server process": an adapter and Deno.serve on loopback (on `port` when given). */
function serveInstance(adapter: PostgresAdapter, port = 0): Instance {
  const handler = createSyncHttpHandler({
    adapter,
    authenticate: createBearerAuthenticator([{ token: TOKEN, scope: SCOPE }]),
  });
  const instance: Instance = {
    url: "",
    port: 0,
    adapter,
    requests: 0,
    stop: async () => {},
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (request) => {
    instance.requests++;
    return handler(request);
  });
  instance.port = server.addr.port;
  instance.url = `http://127.0.0.1:${server.addr.port}`;
  let stopped = false;
  instance.stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.shutdown();
    await adapter.close();
  };
  closers.push(() => instance.stop());
  return instance;
}

/** A fetch sending each request to the next of `targets`, round robin. */
function roundRobin(targets: () => readonly string[]): FetchLike {
  let next = 0;
  return async (request) => {
    const list = targets();
    const target = list[next++ % list.length];
    const url = new URL(request.url);
    const body = request.method === "GET" ? undefined : await request.arrayBuffer();
    return await fetch(
      new Request(target + url.pathname + url.search, {
        method: request.method,
        headers: request.headers,
        body,
        signal: request.signal,
      }),
    );
  };
}

async function effectsOf(schema: string, sourceId: string): Promise<number[]> {
  const rows = await admin.query(
    `SELECT idx FROM "${schema}".effects WHERE source_id = $1 ORDER BY idx`,
    [sourceId],
  );
  return rows.map((row) => Number(row.idx));
}

test("two servers over one database: a client alternating between them finishes verified", async () => {
  const schema = await freshSchema();
  const a = serveInstance(await openAdapter(schema, "auto"));
  const b = serveInstance(await openAdapter(schema, "auto"));
  const client = await createHttpSyncAdapter({
    url: "http://balancer.test",
    token: TOKEN,
    fetch: roundRobin(() => [a.url, b.url]),
  });
  const payload = records(8_000, 240); // ~2 MiB
  const first = await syncConversation(client, {
    scope: SCOPE,
    conversationId: "alternating",
    payload,
    chunkSize: 64 * 1024,
  });
  assert.equal(first.job.state, "succeeded");
  assert.ok(first.job.totalChunks >= 20, `${first.job.totalChunks} chunks`);
  assert.deepEqual(
    await effectsOf(schema, first.source.sourceId),
    [...Array(first.job.totalChunks).keys()],
    "every chunk applied exactly once",
  );
  // Extending it through the same alternating client.
  const second = await syncConversation(client, {
    scope: SCOPE,
    conversationId: "alternating",
    payload: [...payload, ...records(10, 240)],
    chunkSize: 64 * 1024,
  });
  assert.equal(second.job.state, "succeeded");
  assert.ok(second.reused.chunks > 0);
  assert.deepEqual(
    await effectsOf(schema, second.source.sourceId),
    [...Array(second.job.totalChunks).keys()].slice(second.job.base?.chunkCount ?? 0),
  );
  assert.ok(a.requests > 5 && b.requests > 5, `both served (${a.requests}, ${b.requests})`);
});

test("a wait held on one server is woken by a commit made through the other", async () => {
  const schema = await freshSchema();
  const a = serveInstance(await openAdapter(schema, "manual"));
  const b = serveInstance(await openAdapter(schema, "manual"));
  const viaA = await createHttpSyncAdapter({ url: a.url, token: TOKEN });
  const viaB = await createHttpSyncAdapter({ url: b.url, token: TOKEN });
  const bytes = new TextEncoder().encode("one line\n");
  const sha256 = await sha256Hex(bytes);
  const source = await viaB.createSource({ scope: SCOPE, conversationId: "woken" });
  await viaB.appendChunk({ scope: SCOPE, sourceId: source.sourceId, index: 0, bytes, sha256 });
  const { job } = await viaB.sealSource({
    scope: SCOPE,
    sourceId: source.sourceId,
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  const requestsBefore = a.requests;
  const waiting = viaA.waitForTerminal({ scope: SCOPE, jobId: job.jobId, timeoutMs: 20_000 });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const cancelledAt = Date.now();
  const cancelled = await viaB.cancelJob({ scope: SCOPE, jobId: job.jobId, reason: "from b" });
  assert.equal(cancelled.state, "cancelled");
  const woken = await waiting;
  const latency = Date.now() - cancelledAt;
  assert.equal(woken.state, "cancelled");
  assert.ok(latency < 3_000, `woken by NOTIFY within ${latency} ms (polls are 25 s / 60 s)`);
  assert.equal(a.requests - requestsBefore, 1, "one long-poll held on server A");

  // The same through a worker on B: a job it runs to the end wakes a wait held on A.
  const other = await viaB.createSource({ scope: SCOPE, conversationId: "woken-2" });
  await viaB.appendChunk({ scope: SCOPE, sourceId: other.sourceId, index: 0, bytes, sha256 });
  const sealed = await viaB.sealSource({
    scope: SCOPE,
    sourceId: other.sourceId,
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  const second = viaA.waitForTerminal({ scope: SCOPE, jobId: sealed.job.jobId });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const drainedAt = Date.now();
  await b.adapter.drain();
  assert.equal((await second).state, "succeeded");
  assert.ok(Date.now() - drainedAt < 3_000);
});

test("a server restarted mid-sync: the client finishes verified, every effect exactly once", async () => {
  const schema = await freshSchema();
  let instance = serveInstance(await openAdapter(schema, "auto"));
  const port = instance.port;
  let puts = 0;
  let failures = 0;
  let restarting: Promise<void> | undefined;
  const fetchThrough: FetchLike = (request) => {
    if (request.method === "PUT" && ++puts === 6 && !restarting) {
      // The process goes down between two requests and comes back on the same port.
      restarting = (async () => {
        await instance.stop();
        await new Promise((resolve) => setTimeout(resolve, 300));
        instance = serveInstance(await openAdapter(schema, "auto"), port);
      })();
    }
    return fetch(request).catch((error) => {
      failures++;
      throw error;
    });
  };
  const client = await createHttpSyncAdapter({
    url: instance.url,
    token: TOKEN,
    fetch: fetchThrough,
  });
  const { job, source } = await syncConversation(client, {
    scope: SCOPE,
    conversationId: "restarted",
    payload: records(4_000, 240),
    chunkSize: 64 * 1024,
    concurrency: 2,
  });
  await restarting;
  assert.ok(restarting, "the server was restarted during the sync");
  assert.ok(failures > 0, "requests failed while it was down, and were retried");
  assert.equal(job.state, "succeeded");
  assert.deepEqual(await effectsOf(schema, source.sourceId), [...Array(job.totalChunks).keys()]);
});
