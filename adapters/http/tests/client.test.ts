// The client adapter: every SyncError code across the hop with its documented status,
// network failures and foreign 5xx as retryable E_SYNC_BACKEND_UNAVAILABLE, the
// long-poll loop (timeout, abort, wake-up), job event streams, syncConversation
// unchanged across the network (multi-chunk, one-call upload, extension), and bearer
// tokens.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import {
  ALL_CAPABILITIES,
  compositeDigest,
  type Job,
  sha256Hex,
  SYNC_ERROR_CODES,
  syncConversation,
  SyncError,
  type SyncErrorCode,
} from "@zakstam/codex-sync-engine";
import type { SyncAdapter } from "@zakstam/codex-sync-engine";
import {
  createBearerAuthenticator,
  createHttpSyncAdapter,
  createSyncHttpHandler,
  STATUS_BY_CODE,
} from "../mod.ts";
import { records, SCOPE_A, SCOPE_B, startServer, TOKEN_A, TOKEN_B } from "./support/fixtures.ts";

const servers: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const server of servers) await server.close();
});

function track<T extends { close(): Promise<void> }>(server: T): T {
  servers.push(server);
  return server;
}

/** A stub adapter whose getJob fails with the code named by the job id. */
function failingAdapter(): SyncAdapter {
  const memory = createMemoryAdapter({ handler: { apply() {} }, mode: "manual" });
  return {
    ...memory,
    getJob: ({ jobId }) => {
      const code = jobId as SyncErrorCode;
      return Promise.reject(
        new SyncError(code, `failed with ${code}`, {
          details: { code, nested: { list: [1, "two"] } },
          retryable: code === "E_SYNC_LEASE_LOST" ? true : undefined,
        }),
      );
    },
  };
}

test("every SyncError code crosses the hop with its status, retryability and details", async () => {
  const handler = createSyncHttpHandler({
    adapter: failingAdapter(),
    authenticate: () => SCOPE_A,
    exposeInternalErrors: true,
  });
  const client = await createHttpSyncAdapter({
    url: "http://sync.test",
    fetch: (request) => handler(request),
  });
  for (const code of Object.keys(SYNC_ERROR_CODES) as SyncErrorCode[]) {
    const response = await handler(new Request(`http://sync.test/v1/jobs/${code}`));
    assert.equal(response.status, STATUS_BY_CODE[code], `${code}: status`);
    const error = await client.getJob({ scope: SCOPE_A, jobId: code }).catch((e) => e);
    assert.ok(error instanceof SyncError, `${code}: a SyncError`);
    assert.equal(error.code, code);
    assert.equal(error.message, `failed with ${code}`);
    assert.equal(
      error.retryable,
      code === "E_SYNC_LEASE_LOST" ? true : SYNC_ERROR_CODES[code],
      `${code}: retryable`,
    );
    assert.deepEqual(error.details, { code, nested: { list: [1, "two"] } });
  }
});

test("internal errors are answered without their message unless exposed", async () => {
  const memory = createMemoryAdapter({ handler: { apply() {} }, mode: "manual" });
  const seen: unknown[] = [];
  const handler = createSyncHttpHandler({
    adapter: {
      ...memory,
      getJob: () => Promise.reject(new Error("SELECT secret FROM internals failed")),
    },
    authenticate: () => SCOPE_A,
    onError: (error) => seen.push(error),
  });
  const response = await handler(new Request("http://sync.test/v1/jobs/j"));
  assert.equal(response.status, 500);
  const body = await response.text();
  assert.doesNotMatch(body, /secret/);
  assert.equal(JSON.parse(body).error.code, "E_SYNC_INTERNAL");
  assert.equal(seen.length, 1, "onError saw the failure");
  await memory.close();
});

test("network failures and foreign 5xx are retryable E_SYNC_BACKEND_UNAVAILABLE", async () => {
  const cases: Array<[string, (request: Request) => Promise<Response>, SyncErrorCode, boolean]> = [
    [
      "fetch throws",
      () => Promise.reject(new TypeError("connection refused")),
      "E_SYNC_BACKEND_UNAVAILABLE",
      true,
    ],
    [
      "502 from a proxy",
      () => Promise.resolve(new Response("<html>bad gateway</html>", { status: 502 })),
      "E_SYNC_BACKEND_UNAVAILABLE",
      true,
    ],
    [
      "503 empty",
      () => Promise.resolve(new Response(null, { status: 503 })),
      "E_SYNC_BACKEND_UNAVAILABLE",
      true,
    ],
    [
      "429",
      () => Promise.resolve(new Response("slow down", { status: 429 })),
      "E_SYNC_BACKEND_UNAVAILABLE",
      true,
    ],
    [
      "a body cut mid-response",
      () =>
        Promise.resolve(
          new Response(
            new ReadableStream({
              start(controller) {
                controller.enqueue(new TextEncoder().encode('{"jobId":'));
              },
              pull(controller) {
                controller.error(new TypeError("connection reset"));
              },
            }),
          ),
        ),
      "E_SYNC_BACKEND_UNAVAILABLE",
      true,
    ],
    [
      "200 that is not JSON",
      () => Promise.resolve(new Response("<html>", { status: 200 })),
      "E_SYNC_INTERNAL",
      false,
    ],
    [
      "404 of another server",
      () => Promise.resolve(new Response("not found", { status: 404 })),
      "E_SYNC_INTERNAL",
      false,
    ],
  ];
  for (const [label, fetch, code, retryable] of cases) {
    const client = await createHttpSyncAdapter({
      url: "http://sync.test",
      fetch,
      capabilities: [],
    });
    const error = await client.getJob({ scope: SCOPE_A, jobId: "j" }).catch((e) => e);
    assert.ok(error instanceof SyncError, label);
    assert.equal(error.code, code, label);
    assert.equal(error.retryable, retryable, label);
  }
  // An unreachable server at creation time.
  const unreachable = await createHttpSyncAdapter({
    url: "http://127.0.0.1:9",
  }).catch((e) => e);
  assert.equal(unreachable.code, "E_SYNC_BACKEND_UNAVAILABLE");
  assert.equal(unreachable.retryable, true);
});

test("a request with no answer within requestTimeoutMs is retryable E_SYNC_BACKEND_UNAVAILABLE", async () => {
  const client = await createHttpSyncAdapter({
    url: "http://sync.test",
    capabilities: [],
    requestTimeoutMs: 50,
    fetch: (request) =>
      new Promise((_, reject) => {
        request.signal.addEventListener("abort", () => reject(request.signal.reason));
      }),
  });
  const error = await client.getJob({ scope: SCOPE_A, jobId: "j" }).catch((e) => e);
  assert.equal(error.code, "E_SYNC_BACKEND_UNAVAILABLE");
  assert.equal(error.retryable, true);
});

test("capabilities and maxChunkBytes come from the server; declared ones skip the request", async () => {
  const server = track(
    startServer({ transport: "in-process", policy: { limits: { maxChunkBytes: 4096 } } }),
  );
  const client = await server.client();
  assert.deepEqual([...client.capabilities], [
    "concurrent-workers",
    "one-call-upload",
    "extensions",
    "release-payloads",
  ]);
  assert.equal(client.maxChunkBytes, 4096);
  assert.equal(typeof client.uploadSource, "function");
  assert.equal(typeof client.getLatestSource, "function");
  assert.equal(typeof client.releasePayloads, "function");
  let requests = 0;
  const declared = await createHttpSyncAdapter({
    url: server.url,
    token: TOKEN_A,
    capabilities: [],
    maxChunkBytes: 1024,
    fetch: (request) => {
      requests++;
      return server.fetch(request);
    },
  });
  assert.equal(requests, 0);
  assert.equal(declared.uploadSource, undefined);
  assert.equal(declared.getLatestSource, undefined);
  assert.equal(declared.releasePayloads, undefined);
  assert.equal(declared.maxChunkBytes, 1024);
  assert.ok(ALL_CAPABILITIES.length > 0);
});

test("syncConversation across HTTP: many chunks, one-call upload, then an extension", async () => {
  const server = track(startServer({ transport: "in-process" }));
  const client = await server.client();
  const payload = records(2_000, 200);
  const first = await syncConversation(client, {
    scope: SCOPE_A,
    conversationId: "c1",
    payload,
    chunkSize: 64 * 1024,
  });
  assert.equal(first.job.state, "succeeded");
  assert.ok(first.job.totalChunks > 4);
  const longer = [...payload, ...records(5, 200)];
  const second = await syncConversation(client, {
    scope: SCOPE_A,
    conversationId: "c1",
    payload: longer,
    chunkSize: 64 * 1024,
  });
  assert.equal(second.job.state, "succeeded");
  assert.ok(second.reused.chunks > 0, "the second sync extended the first");
  assert.equal(second.source.base?.sourceId, first.source.sourceId);
  const small = await syncConversation(client, {
    scope: SCOPE_A,
    conversationId: "small",
    payload: records(3),
  });
  assert.equal(small.job.state, "succeeded");
  // Tenant B sees none of it.
  const other = await server.client(TOKEN_B);
  assert.deepEqual((await other.listJobs({ scope: SCOPE_B })).items, []);
  assert.equal(await other.getLatestSource!({ scope: SCOPE_B, conversationId: "c1" }), null);
});

test("createSource without sourceId: the same input object retried reuses the picked id", async () => {
  const server = track(startServer({ transport: "in-process" }));
  const client = await server.client();
  const input = { scope: SCOPE_A, conversationId: "retried" };
  const a = await client.createSource(input);
  const b = await client.createSource(input);
  assert.equal(a.sourceId, b.sourceId);
  const c = await client.createSource({ ...input });
  assert.notEqual(c.sourceId, a.sourceId);
});

/** A server whose jobs wait on a gate before their first chunk applies. */
function gatedServer(options: Parameters<typeof startServer>[0] = {}) {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const server = track(startServer({ ...options, handler: { apply: () => gate } }));
  return { server, open };
}

async function sealedJob(client: SyncAdapter, conversationId: string): Promise<Job> {
  const bytes = new TextEncoder().encode(`${conversationId}\n`);
  const sha256 = await sha256Hex(bytes);
  const source = await client.createSource({ scope: SCOPE_A, conversationId });
  await client.appendChunk({ scope: SCOPE_A, sourceId: source.sourceId, index: 0, bytes, sha256 });
  const { job } = await client.sealSource({
    scope: SCOPE_A,
    sourceId: source.sourceId,
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  return job;
}

test("waitForTerminal long-polls across several polls until the job ends", async () => {
  const { server, open } = gatedServer({ transport: "in-process", server: { maxWaitMs: 40 } });
  let polls = 0;
  const client = await server.client(TOKEN_A, {
    fetch: (request) => {
      if (request.url.includes("/wait")) polls++;
      return server.fetch(request);
    },
  });
  const job = await sealedJob(client, "long-poll");
  const waiting = client.waitForTerminal({ scope: SCOPE_A, jobId: job.jobId });
  await new Promise((resolve) => setTimeout(resolve, 200));
  open();
  const done = await waiting;
  assert.equal(done.state, "succeeded");
  assert.ok(polls >= 3, `several polls (${polls})`);
  // A poll held for its whole bound answers "not yet" with the current snapshot.
  const raw = await server.request(`/v1/jobs/${job.jobId}/wait?timeoutMs=0`, {}, TOKEN_A);
  assert.deepEqual(Object.keys(await raw.json()).sort(), ["job", "terminal"]);
});

test("waitForTerminal: timeoutMs on real time is E_SYNC_TIMEOUT, an abort E_SYNC_ABORTED", async () => {
  const { server, open } = gatedServer({ transport: "loopback" });
  const client = await server.client();
  const job = await sealedJob(client, "timeouts");
  const started = Date.now();
  const timedOut = await client.waitForTerminal({
    scope: SCOPE_A,
    jobId: job.jobId,
    timeoutMs: 150,
  })
    .catch((e) => e);
  assert.equal(timedOut.code, "E_SYNC_TIMEOUT");
  assert.ok(Date.now() - started < 2_000, "within the timeout, not the server's 25 s");
  const controller = new AbortController();
  const waiting = client.waitForTerminal({
    scope: SCOPE_A,
    jobId: job.jobId,
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(), 50);
  const aborted = await waiting.catch((e) => e);
  assert.equal(aborted.code, "E_SYNC_ABORTED");
  assert.notEqual((await client.getJob({ scope: SCOPE_A, jobId: job.jobId })).state, "cancelled");
  // The wait on loopback is woken as soon as the job ends.
  const woken = client.waitForTerminal({ scope: SCOPE_A, jobId: job.jobId });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const opened = Date.now();
  open();
  assert.equal((await woken).state, "succeeded");
  assert.ok(Date.now() - opened < 1_000, "woken by the change, not a poll");
});

test("job events stream every change and end after the terminal snapshot", async () => {
  const { server, open } = gatedServer({ transport: "loopback" });
  let streams = 0;
  const client = await server.client(TOKEN_A, {
    fetch: (request) => {
      if (request.url.endsWith("/events")) streams++;
      return server.fetch(request);
    },
  });
  const job = await sealedJob(client, "events");
  const seen: Job[] = [];
  const streaming = (async () => {
    for await (const snapshot of client.jobEvents({ scope: SCOPE_A, jobId: job.jobId })) {
      seen.push(snapshot);
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 100));
  open();
  await streaming;
  assert.ok(seen.length >= 2, `several snapshots (${seen.map((s) => s.state)})`);
  assert.equal(seen.at(-1)?.state, "succeeded");
  assert.equal(streams, 1, "one stream carried them all");
  // Foreign and missing jobs: the same 404 before any stream starts.
  const other = await server.client(TOKEN_B);
  const foreign = await (async () => {
    for await (const _ of other.jobEvents({ scope: SCOPE_B, jobId: job.jobId })) { /* none */ }
  })().catch((e) => e);
  assert.equal(foreign.code, "E_SYNC_JOB_NOT_FOUND");
  // Raw: the stream is text/event-stream with job and end events.
  const raw = await server.request(`/v1/jobs/${job.jobId}/events`, {}, TOKEN_A);
  assert.match(raw.headers.get("content-type") ?? "", /^text\/event-stream/);
  const text = await raw.text();
  assert.match(text, /event: job\nid: [^\n]+\ndata: \{/);
  assert.match(text, /event: end\ndata: \{"jobId":"[^"]+","state":"succeeded"\}/);
});

test("an event stream ends at its maximum duration and the client reconnects", async () => {
  const { server, open } = gatedServer({
    transport: "loopback",
    server: { maxEventStreamMs: 60, eventHeartbeatMs: 20 },
  });
  let streams = 0;
  const client = await server.client(TOKEN_A, {
    fetch: (request) => {
      if (request.url.endsWith("/events")) streams++;
      return server.fetch(request);
    },
  });
  const job = await sealedJob(client, "reconnect");
  const states: string[] = [];
  const streaming = (async () => {
    for await (const snapshot of client.jobEvents({ scope: SCOPE_A, jobId: job.jobId })) {
      states.push(snapshot.state);
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 250));
  open();
  await streaming;
  assert.ok(streams >= 2, `reconnected (${streams} streams)`);
  assert.equal(states.at(-1), "succeeded");
});

test("an event stream gone silent (a half-open connection) is dropped and reconnected", async () => {
  const { server, open } = gatedServer({ transport: "loopback" });
  let streams = 0;
  let silentCancelled = false;
  const client = await server.client(TOKEN_A, {
    eventIdleTimeoutMs: 100,
    fetch: (request) => {
      if (request.url.endsWith("/events") && streams++ === 0) {
        // Headers arrive, then nothing: no event, no keep-alive, no end.
        const silent = new ReadableStream<Uint8Array>({
          cancel() {
            silentCancelled = true;
          },
        });
        return Promise.resolve(
          new Response(silent, { headers: { "content-type": "text/event-stream" } }),
        );
      }
      return server.fetch(request);
    },
  });
  const job = await sealedJob(client, "silent");
  open();
  const states: string[] = [];
  for await (const snapshot of client.jobEvents({ scope: SCOPE_A, jobId: job.jobId })) {
    states.push(snapshot.state);
  }
  assert.equal(streams, 2, "the silent stream was given up and a new one opened");
  assert.ok(silentCancelled, "the silent stream was cancelled, not left open");
  assert.equal(states.at(-1), "succeeded");
});

test("an event stream whose client goes away unsubscribes from the job", async () => {
  let subscribed = 0;
  let unsubscribed = 0;
  const memory = createMemoryAdapter({ handler: { apply() {} }, mode: "manual" });
  const { server, open } = gatedServer({
    transport: "loopback",
    server: {
      watchJob: (scope, jobId, listener) => {
        subscribed++;
        const off = memory.store.subscribeJob(scope, jobId, listener);
        return () => {
          unsubscribed++;
          off();
        };
      },
    },
  });
  const client = await server.client();
  const job = await sealedJob(client, "gone");
  const controller = new AbortController();
  const seen: Job[] = [];
  const streaming = (async () => {
    for await (
      const snapshot of client.jobEvents({
        scope: SCOPE_A,
        jobId: job.jobId,
        signal: controller.signal,
      })
    ) {
      seen.push(snapshot);
      controller.abort();
    }
  })().catch((error) => error);
  const outcome = await streaming;
  assert.equal(outcome?.code, "E_SYNC_ABORTED");
  assert.equal(seen.length, 1);
  for (let i = 0; i < 100 && unsubscribed < subscribed; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(subscribed, 1);
  assert.equal(unsubscribed, 1, "the server let go of the job when the client left");
  open();
  await memory.close();
});

test("basePath mounts the routes under a prefix", async () => {
  const memory = createMemoryAdapter({ handler: { apply() {} } });
  const handler = createSyncHttpHandler({
    adapter: memory,
    authenticate: () => SCOPE_A,
    basePath: "/sync/",
  });
  const client = await createHttpSyncAdapter({
    url: "http://sync.test/sync/",
    fetch: (request) => handler(request),
  });
  const { job } = await syncConversation(client, {
    scope: SCOPE_A,
    conversationId: "mounted",
    payload: records(10),
  });
  assert.equal(job.state, "succeeded");
  const outside = await handler(new Request("http://sync.test/v1/jobs"));
  assert.equal(outside.status, 404);
  await memory.close();
});

test("bearer tokens: plain or pre-hashed, compared whole", async () => {
  const digest = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("hashed-token"))),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  const authenticate = createBearerAuthenticator([
    { token: "plain-token", scope: "p" },
    { sha256: digest, scope: "h" },
  ]);
  const scopeOf = (header?: string) =>
    authenticate(
      new Request("http://x/", { headers: header === undefined ? {} : { authorization: header } }),
    );
  assert.equal(await scopeOf("Bearer plain-token"), "p");
  assert.equal(await scopeOf("bearer   plain-token"), "p");
  assert.equal(await scopeOf("Bearer hashed-token"), "h");
  for (
    const header of [
      undefined,
      "",
      "Bearer",
      "Bearer plain-toke",
      "Bearer plain-tokenx",
      "Basic plain-token",
      `Bearer ${digest}`,
    ]
  ) {
    assert.equal(await scopeOf(header), undefined, String(header));
  }
  assert.throws(() => createBearerAuthenticator([{ scope: "x" }]));
  assert.throws(() => createBearerAuthenticator([{ scope: "", token: "t" }]));
  assert.throws(() => createBearerAuthenticator([{ scope: "x", sha256: "ABC" }]));
  void TOKEN_A;
});
