// Hostile clients against a real server on loopback (Deno.serve on 127.0.0.1): missing
// and wrong credentials, another tenant's ids, scopes smuggled in bodies and queries,
// oversized, truncated, slow and misdigested bodies, malformed JSON, dropped connections.
// Raw TCP where fetch cannot misbehave on purpose.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  compositeDigest,
  type Job,
  sha256Hex,
  type Source,
  syncConversation,
  SyncError,
} from "@zakstam/codex-sync-engine";
import { contentDigestOf, type FetchLike, UPLOAD_HEAD_LENGTH_HEADER } from "../mod.ts";
import {
  json,
  records,
  SCOPE_A,
  SCOPE_B,
  startServer,
  TOKEN_A,
  TOKEN_B,
  utf8,
} from "./support/fixtures.ts";

/** Groups tests for the reader (each test is reported on its own). */
const describe = (_name: string, body: () => void) => body();

const LIMIT = 64 * 1024;
const server = startServer({
  policy: { limits: { maxChunkBytes: LIMIT } },
  server: { bodyTimeoutMs: 300, allowGc: (scope) => scope === SCOPE_A },
});
after(() => server.close());

const jsonInit = (body: unknown, method = "POST"): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

async function createSource(token: string, body: Record<string, unknown>): Promise<Source> {
  const response = await server.request("/v1/sources", jsonInit(body), token);
  assert.equal(response.status, 200, await response.clone().text());
  return await json<Source>(response);
}

async function putChunk(
  token: string,
  sourceId: string,
  index: number,
  bytes: Uint8Array,
  digestOf: Uint8Array = bytes,
): Promise<Response> {
  return await server.request(
    `/v1/sources/${encodeURIComponent(sourceId)}/chunks/${index}`,
    {
      method: "PUT",
      headers: { "content-digest": contentDigestOf(await sha256Hex(digestOf)) },
      body: bytes as Uint8Array<ArrayBuffer>,
    },
    token,
  );
}

function storedChunks(scope: string, sourceId: string): Promise<number> {
  return Promise.resolve(server.adapter.store.oracle.chunkCount(scope, sourceId));
}

/** Sends raw bytes on a fresh TCP connection; returns what came back within `ms`. */
async function rawExchange(
  head: string,
  body: Uint8Array,
  options: { closeWrite: boolean; ms: number },
): Promise<string> {
  const port = Number(new URL(server.url).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const encoder = new TextEncoder();
  await conn.write(encoder.encode(head));
  if (body.length > 0) await conn.write(body);
  if (options.closeWrite) await conn.closeWrite();
  const timer = setTimeout(() => conn.close(), options.ms);
  const buffer = new Uint8Array(8192);
  let text = "";
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
      if (/\r\n\r\n[\s\S]*\}$/.test(text)) break;
    }
  } catch { /* closed by the timer */ }
  clearTimeout(timer);
  try {
    conn.close();
  } catch { /* already closed */ }
  return text;
}

describe("credentials", () => {
  const routes: Array<[string, RequestInit?]> = [
    ["/v1/jobs"],
    ["/v1/jobs/some-job"],
    ["/v1/jobs/some-job/wait?timeoutMs=0"],
    ["/v1/jobs/some-job/events"],
    ["/v1/jobs/some-job/cancel", jsonInit({})],
    ["/v1/sources", jsonInit({ conversationId: "c" })],
    ["/v1/sources/s"],
    ["/v1/sources/s/chunks"],
    ["/v1/sources/s/chunks/0", { method: "PUT", body: "x" }],
    ["/v1/sources/s/seal", jsonInit({})],
    ["/v1/sources/s/abandon", jsonInit({})],
    ["/v1/sources/s/release-payloads", jsonInit({})],
    ["/v1/uploads", { method: "POST", body: "x" }],
    ["/v1/conversations/c/latest-source"],
    ["/v1/gc", jsonInit({})],
    ["/v1/no-such-route"],
    ["/elsewhere"],
  ];
  const credentials: Array<[string, Record<string, string>]> = [
    ["none", {}],
    ["unknown token", { authorization: "Bearer not-a-token" }],
    ["a token's prefix", { authorization: `Bearer ${TOKEN_A.slice(0, -1)}` }],
    ["a token plus a character", { authorization: `Bearer ${TOKEN_A}x` }],
    ["another scheme", { authorization: `Basic ${btoa(`${SCOPE_A}:${TOKEN_A}`)}` }],
    ["an empty bearer", { authorization: "Bearer " }],
  ];

  test("missing or unknown credentials: 401 with one fixed body on every route", async () => {
    let reference: string | undefined;
    for (const [path, init] of routes) {
      for (const [label, headers] of credentials) {
        const response = await server.request(path, { ...init, headers });
        const body = await response.text();
        assert.equal(response.status, 401, `${label} on ${path}`);
        assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer /);
        reference ??= body;
        assert.equal(body, reference, `${label} on ${path}: the same body`);
      }
    }
    const error = JSON.parse(reference!).error;
    assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    assert.equal(error.message, "missing or invalid credentials");
    assert.equal(error.details, undefined);
    // None of it created anything.
    assert.deepEqual((await server.adapter.listJobs({ scope: SCOPE_A })).items, []);
  });

  test("the client surfaces a 401 as a non-retryable E_SYNC_INVALID_ARGUMENT", async () => {
    const client = await server.client("wrong-token");
    const error = await client.listJobs({ scope: SCOPE_A }).catch((e) => e);
    assert.ok(error instanceof SyncError);
    assert.equal(error.code, "E_SYNC_INVALID_ARGUMENT");
    assert.equal(error.retryable, false);
  });

  test("capabilities need no credentials and reveal no records", async () => {
    const response = await server.request("/v1/capabilities");
    assert.equal(response.status, 200);
    const doc = await json(response);
    assert.deepEqual(doc, {
      protocol: 1,
      capabilities: ["concurrent-workers", "one-call-upload", "extensions", "release-payloads"],
      maxChunkBytes: LIMIT,
      maxWaitMs: 25_000,
      maxJsonBytes: 2 * 1024 * 1024,
      operations: ["uploadSource", "getLatestSource", "abandonSource", "releasePayloads"],
      limits: server.adapter.limits,
    });
    const client = await server.client();
    assert.deepEqual(client.limits, server.adapter.limits);
  });
});

describe("tenants", () => {
  test("another tenant's ids answer exactly like missing ones, and change nothing", async () => {
    const conversationId = `conv-${crypto.randomUUID()}`;
    const source = await createSource(TOKEN_A, { conversationId, sourceId: crypto.randomUUID() });
    const bytes = utf8("tenant a's chunk\n");
    assert.equal((await putChunk(TOKEN_A, source.sourceId, 0, bytes)).status, 201);
    // Seal with a manifest B will also send: the seal is refused for B as for a missing id.
    const client = await server.client(TOKEN_A);
    const [info] = (await client.listChunks({ scope: SCOPE_A, sourceId: source.sourceId })).items;
    const sealed = await client.sealSource({
      scope: SCOPE_A,
      sourceId: source.sourceId,
      manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([info.sha256]) },
    });
    const jobBefore = await client.getJob({ scope: SCOPE_A, jobId: sealed.job.jobId });

    const missingSource = crypto.randomUUID();
    const missingJob = crypto.randomUUID();
    const probes = (sourceId: string, jobId: string): Array<[string, () => Promise<Response>]> => [
      ["getSource", () => server.request(`/v1/sources/${sourceId}`, {}, TOKEN_B)],
      ["listChunks", () => server.request(`/v1/sources/${sourceId}/chunks`, {}, TOKEN_B)],
      ["appendChunk", () => putChunk(TOKEN_B, sourceId, 1, utf8("b's bytes\n"))],
      ["appendChunk same bytes", () => putChunk(TOKEN_B, sourceId, 0, bytes)],
      [
        "sealSource",
        () =>
          server.request(
            `/v1/sources/${sourceId}/seal`,
            jsonInit({ manifest: sealed.source.manifest }),
            TOKEN_B,
          ),
      ],
      [
        "createSource on the id",
        () =>
          server.request(
            "/v1/sources",
            jsonInit({ conversationId: "other", baseSourceId: sourceId }),
            TOKEN_B,
          ),
      ],
      ["getJob", () => server.request(`/v1/jobs/${jobId}`, {}, TOKEN_B)],
      ["waitForTerminal", () => server.request(`/v1/jobs/${jobId}/wait?timeoutMs=0`, {}, TOKEN_B)],
      ["events", () => server.request(`/v1/jobs/${jobId}/events`, {}, TOKEN_B)],
      ["cancelJob", () => server.request(`/v1/jobs/${jobId}/cancel`, jsonInit({}), TOKEN_B)],
      [
        "abandonSource",
        () => server.request(`/v1/sources/${sourceId}/abandon`, jsonInit({}), TOKEN_B),
      ],
      [
        "releasePayloads",
        () => server.request(`/v1/sources/${sourceId}/release-payloads`, jsonInit({}), TOKEN_B),
      ],
    ];
    const foreign = probes(source.sourceId, sealed.job.jobId);
    const missing = probes(missingSource, missingJob);
    for (let i = 0; i < foreign.length; i++) {
      const [label, call] = foreign[i];
      const foreignResponse = await call();
      const missingResponse = await missing[i][1]();
      const hide = (text: string, ...ids: string[]) =>
        ids.reduce((out, id) => out.split(id).join("<id>"), text);
      assert.equal(foreignResponse.status, missingResponse.status, `${label}: status`);
      assert.ok(foreignResponse.status >= 400, `${label}: refused (${foreignResponse.status})`);
      assert.equal(
        hide(await foreignResponse.text(), source.sourceId, sealed.job.jobId),
        hide(await missingResponse.text(), missingSource, missingJob),
        `${label}: body`,
      );
    }
    const latest = await server.request(
      `/v1/conversations/${conversationId}/latest-source`,
      {},
      TOKEN_B,
    );
    assert.deepEqual(await json(latest), { source: null });
    // Tenant A's records are as they were.
    const after = await client.getJob({ scope: SCOPE_A, jobId: sealed.job.jobId });
    assert.notEqual(after.state, "cancelled");
    assert.equal(after.jobId, jobBefore.jobId);
    assert.equal(await storedChunks(SCOPE_A, source.sourceId), 1);
    assert.equal(await storedChunks(SCOPE_B, source.sourceId), 0);
  });

  test("a scope in a body or a query is ignored: the credentials' scope applies", async () => {
    const created = await createSource(TOKEN_B, {
      scope: SCOPE_A,
      conversationId: "smuggled",
      sourceId: "smuggled-source",
    });
    assert.equal(created.scope, SCOPE_B);
    const asA = await server.request("/v1/sources/smuggled-source", {}, TOKEN_A);
    assert.equal(asA.status, 404);
    assert.equal((await json<{ error: SyncError }>(asA)).error.code, "E_SYNC_SOURCE_NOT_FOUND");
    const asB = await server.request("/v1/sources/smuggled-source?scope=tenant-a", {}, TOKEN_B);
    assert.equal((await json<Source>(asB)).scope, SCOPE_B);
    const jobsOfA = await server.request(`/v1/jobs?scope=${SCOPE_A}`, {}, TOKEN_B);
    for (const job of (await json<{ items: Job[] }>(jobsOfA)).items) {
      assert.equal(job.scope, SCOPE_B);
    }
    // A path parameter repeated in the body is refused rather than guessed.
    const sealWithId = await server.request(
      "/v1/sources/smuggled-source/seal",
      jsonInit({ sourceId: "other", manifest: {} }),
      TOKEN_B,
    );
    assert.equal(sealWithId.status, 400);
  });
});

describe("bodies", () => {
  test("an oversized chunk is 413 before its body is read, and nothing is stored", async () => {
    const source = await createSource(TOKEN_A, { conversationId: "big" });
    const tooBig = new Uint8Array(LIMIT + 1).fill(1);
    const declared = await putChunk(TOKEN_A, source.sourceId, 0, tooBig);
    assert.equal(declared.status, 413);
    const error = (await json<{ error: SyncError }>(declared)).error;
    assert.equal(error.code, "E_SYNC_LIMIT_EXCEEDED");
    // Without a Content-Length (chunked), the cut comes once the limit is passed.
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += 16 * 1024;
        controller.enqueue(new Uint8Array(16 * 1024).fill(2));
        if (sent > 64 * LIMIT) controller.close();
      },
    });
    const streamed = await server.request(`/v1/sources/${source.sourceId}/chunks/0`, {
      method: "PUT",
      headers: { "content-digest": contentDigestOf(await sha256Hex(tooBig)) },
      body: endless,
      // @ts-ignore: Deno and Node need it for a stream body
      duplex: "half",
    }, TOKEN_A);
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
    assert.ok(sent < 64 * LIMIT, `the server stopped reading (${sent} bytes sent)`);
    // An upload whose data part passes the chunk limit.
    const head = utf8(JSON.stringify({
      conversationId: "big",
      manifest: { chunkCount: 1, byteCount: LIMIT + 1, digest: "0".repeat(64) },
      chunks: [{ index: 0, byteLength: LIMIT + 1, sha256: "0".repeat(64) }],
    }));
    const body = new Uint8Array(head.length + LIMIT + 1);
    body.set(head);
    const upload = await server.request("/v1/uploads", {
      method: "POST",
      headers: {
        "content-type": "application/vnd.codex-sync.upload",
        [UPLOAD_HEAD_LENGTH_HEADER]: String(head.length),
      },
      body,
    }, TOKEN_A);
    assert.equal(upload.status, 413);
    assert.equal(await storedChunks(SCOPE_A, source.sourceId), 0);
    // At the limit it is accepted.
    const atLimit = await putChunk(TOKEN_A, source.sourceId, 0, new Uint8Array(LIMIT).fill(3));
    assert.equal(atLimit.status, 201);
  });

  test("a body shorter than its Content-Length stores nothing", async () => {
    const source = await createSource(TOKEN_A, { conversationId: "short" });
    const bytes = new Uint8Array(1000).fill(7);
    const head = `PUT /v1/sources/${source.sourceId}/chunks/0 HTTP/1.1\r\nHost: test\r\n` +
      `Authorization: Bearer ${TOKEN_A}\r\n` +
      `Content-Digest: ${contentDigestOf(await sha256Hex(bytes.subarray(0, 10)))}\r\n` +
      `Content-Length: ${bytes.length}\r\n\r\n`;
    // Ten bytes (whose digest is even the declared one), then the client closes.
    await rawExchange(head, bytes.subarray(0, 10), { closeWrite: true, ms: 2_000 });
    assert.equal(await storedChunks(SCOPE_A, source.sourceId), 0);

    // A client-side body stream that fails mid-way: fetch rejects, nothing is stored.
    const failing = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.subarray(0, 500));
      },
      pull(controller) {
        controller.error(new Error("connection dropped"));
      },
    });
    const dropped = await server.request(`/v1/sources/${source.sourceId}/chunks/0`, {
      method: "PUT",
      headers: { "content-digest": contentDigestOf(await sha256Hex(bytes)) },
      body: failing,
      // @ts-ignore: Deno and Node need it for a stream body
      duplex: "half",
    }, TOKEN_A).then((r) => r.status, () => "rejected");
    assert.notEqual(dropped, 201);
    assert.equal(await storedChunks(SCOPE_A, source.sourceId), 0);
  });

  test("a body slower than the read timeout is 408 E_SYNC_TIMEOUT (retryable); nothing stored", async () => {
    const source = await createSource(TOKEN_A, { conversationId: "slow" });
    const bytes = new Uint8Array(1000).fill(9);
    const head = `PUT /v1/sources/${source.sourceId}/chunks/0 HTTP/1.1\r\nHost: test\r\n` +
      `Authorization: Bearer ${TOKEN_A}\r\n` +
      `Content-Digest: ${contentDigestOf(await sha256Hex(bytes))}\r\n` +
      `Content-Length: ${bytes.length}\r\n\r\n`;
    const started = Date.now();
    const answer = await rawExchange(head, bytes.subarray(0, 100), {
      closeWrite: false,
      ms: 5_000,
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    const error = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)).error;
    assert.equal(error.code, "E_SYNC_TIMEOUT");
    assert.equal(error.retryable, true);
    assert.ok(Date.now() - started < 4_000, "answered at the timeout, not at the client's pace");
    assert.equal(await storedChunks(SCOPE_A, source.sourceId), 0);
  });

  test("a wrong Content-Digest is 422 E_SYNC_CHUNK_CHECKSUM_MISMATCH; missing or malformed is 400", async () => {
    const source = await createSource(TOKEN_A, { conversationId: "digest" });
    const bytes = utf8("the real bytes\n");
    const wrong = await putChunk(TOKEN_A, source.sourceId, 0, bytes, utf8("other bytes\n"));
    assert.equal(wrong.status, 422);
    assert.equal(
      (await json<{ error: SyncError }>(wrong)).error.code,
      "E_SYNC_CHUNK_CHECKSUM_MISMATCH",
    );
    const path = `/v1/sources/${source.sourceId}/chunks/0`;
    for (
      const digest of [
        undefined,
        "sha-256=AAAA",
        "sha-256=:not base64!:",
        "sha-256=:AAAA:",
        "sha-512=:AAAA:",
        "md5=:AAAAAAAAAAAAAAAAAAAAAA==:",
      ]
    ) {
      const headers: Record<string, string> = {};
      if (digest !== undefined) headers["content-digest"] = digest;
      const response = await server.request(path, { method: "PUT", headers, body: bytes }, TOKEN_A);
      assert.equal(response.status, 400, `digest ${digest}`);
      assert.equal(
        (await json<{ error: SyncError }>(response)).error.code,
        "E_SYNC_INVALID_ARGUMENT",
      );
    }
    assert.equal(await storedChunks(SCOPE_A, source.sourceId), 0);
    // Several algorithms, sha-256 among them: accepted.
    const multi = await server.request(path, {
      method: "PUT",
      headers: {
        "content-digest": `sha-512=:${btoa("x".repeat(64))}:, ${
          contentDigestOf(await sha256Hex(bytes))
        }`,
      },
      body: bytes,
    }, TOKEN_A);
    assert.equal(multi.status, 201);
    // Content-encoded bodies are refused.
    const gz = await server.request(path, {
      method: "PUT",
      headers: {
        "content-digest": contentDigestOf(await sha256Hex(bytes)),
        "content-encoding": "gzip",
      },
      body: bytes,
    }, TOKEN_A);
    assert.equal(gz.status, 415);
  });

  test("malformed JSON is 400 E_SYNC_INVALID_ARGUMENT; another media type 415", async () => {
    const cases: Array<[string, RequestInit, number]> = [
      ["not JSON", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{nope",
      }, 400],
      ["truncated JSON", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"conversationId":',
      }, 400],
      ["an array", jsonInit([1, 2]), 400],
      ["null", jsonInit(null), 400],
      ["not UTF-8", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: new Uint8Array([0x7b, 0xff, 0x7d]),
      }, 400],
      ["an unknown field", jsonInit({ conversationId: "c", extra: 1 }), 400],
      ["a wrong type", jsonInit({ conversationId: 42 }), 400],
      ["text/plain", {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: '{"conversationId":"c"}',
      }, 415],
      [
        "no content type",
        { method: "POST", body: new Uint8Array(utf8('{"conversationId":"c"}')) },
        415,
      ],
    ];
    for (const [label, init, status] of cases) {
      const response = await server.request("/v1/sources", init, TOKEN_A);
      assert.equal(response.status, status, label);
      assert.equal(
        (await json<{ error: SyncError }>(response)).error.code,
        "E_SYNC_INVALID_ARGUMENT",
        label,
      );
    }
    const bad = await server.request("/v1/jobs?limit=ten", {}, TOKEN_A);
    assert.equal(bad.status, 400);
    const badIndex = await server.request("/v1/sources/s/chunks/-1", { method: "PUT" }, TOKEN_A);
    assert.equal(badIndex.status, 400);
  });

  test("a malformed upload framing is refused and stores nothing", async () => {
    const bytes = utf8("one small chunk\n");
    const sha256 = await sha256Hex(bytes);
    const head = (extra: Record<string, unknown> = {}, chunk: Record<string, unknown> = {}) =>
      utf8(JSON.stringify({
        conversationId: "framing",
        sourceId: "framing-source",
        manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
        chunks: [{ index: 0, byteLength: bytes.length, sha256, ...chunk }],
        ...extra,
      }));
    const send = (
      headBytes: Uint8Array,
      data: Uint8Array,
      headers: Record<string, string> = {},
    ) => {
      const body = new Uint8Array(headBytes.length + data.length);
      body.set(headBytes);
      body.set(data, headBytes.length);
      return server.request("/v1/uploads", {
        method: "POST",
        headers: {
          "content-type": "application/vnd.codex-sync.upload",
          [UPLOAD_HEAD_LENGTH_HEADER]: String(headBytes.length),
          ...headers,
        },
        body,
      }, TOKEN_A);
    };
    const good = head();
    const cases: Array<[string, Promise<Response>, number]> = [
      ["data shorter than the chunks", send(good, bytes.subarray(1)), 400],
      ["data longer than the chunks", send(good, utf8("one small chunk\n!")), 400],
      [
        "head length past the body",
        send(good, bytes, { [UPLOAD_HEAD_LENGTH_HEADER]: "100000" }),
        400,
      ],
      ["head length zero", send(good, bytes, { [UPLOAD_HEAD_LENGTH_HEADER]: "0" }), 400],
      ["head length not a number", send(good, bytes, { [UPLOAD_HEAD_LENGTH_HEADER]: "ten" }), 400],
      ["head cut mid-JSON", send(good, bytes, { [UPLOAD_HEAD_LENGTH_HEADER]: "20" }), 400],
      ["bytes inside the head", send(head({}, { bytes: "AAAA" }), bytes), 400],
      ["a negative byteLength", send(head({}, { byteLength: -1 }), bytes), 400],
      [
        "a scope in the head",
        send(head({ scope: SCOPE_B, sourceId: "framing-scope" }), bytes),
        200,
      ],
      ["a wrong media type", send(good, bytes, { "content-type": "application/json" }), 415],
      [
        "a wrong digest",
        send(head({ sourceId: "framing-digest" }, { sha256: "0".repeat(64) }), bytes),
        422,
      ],
    ];
    for (const [label, pending, status] of cases) {
      const response = await pending;
      assert.equal(response.status, status, `${label}: ${await response.clone().text()}`);
      await response.body?.cancel();
    }
    assert.equal(await storedChunks(SCOPE_A, "framing-source"), 0);
    assert.equal(await storedChunks(SCOPE_A, "framing-digest"), 0);
    // The smuggled scope was ignored: the source is tenant A's.
    assert.equal(await storedChunks(SCOPE_A, "framing-scope"), 1);
    assert.equal(await storedChunks(SCOPE_B, "framing-scope"), 0);
    // And the well-formed upload works.
    const ok = await send(good, bytes);
    assert.equal(ok.status, 200);
    const result = await json<{ job: Job; appended: boolean[] }>(ok);
    assert.deepEqual(result.appended, [true]);
  });

  test("ids with reserved characters travel intact", async () => {
    const client = await server.client(TOKEN_A);
    for (const id of ["a/b", "sp ace", "q?x=1#frag", "per%cent", "%41", "é✓", "..x", "a\\b"]) {
      const source = await client.createSource({
        scope: SCOPE_A,
        conversationId: `conv ${id}`,
        sourceId: `src ${id}`,
      });
      assert.equal(source.sourceId, `src ${id}`);
      assert.equal(source.conversationId, `conv ${id}`);
      const again = await client.getSource({ scope: SCOPE_A, sourceId: `src ${id}` });
      assert.equal(again.sourceId, `src ${id}`);
    }
    await assert.rejects(
      client.getSource({ scope: SCOPE_A, sourceId: ".." }),
      (error: SyncError) => error.code === "E_SYNC_INVALID_ARGUMENT",
    );
  });

  test("gc runs only for scopes allowed to (403 otherwise)", async () => {
    const denied = await server.request("/v1/gc", jsonInit({}), TOKEN_B);
    assert.equal(denied.status, 403);
    assert.equal((await json<{ error: SyncError }>(denied)).error.code, "E_SYNC_INVALID_ARGUMENT");
    const allowed = await server.request("/v1/gc", { method: "POST" }, TOKEN_A);
    assert.equal(allowed.status, 200);
    assert.deepEqual(Object.keys(await json(allowed)).sort(), [
      "deletedChunks",
      "expiredSources",
      "purgedSources",
    ]);
  });
});

describe("dropped connections", () => {
  /** A fetch that breaks the body of the `nth` chunk PUT half-way, once. */
  function dropChunkBody(nth: number): { fetch: FetchLike; dropped: () => boolean } {
    let puts = 0;
    let done = false;
    return {
      dropped: () => done,
      fetch: async (request) => {
        if (request.method !== "PUT" || done || ++puts !== nth) return await fetch(request);
        done = true;
        const bytes = new Uint8Array(await request.arrayBuffer());
        const half = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(bytes.subarray(0, bytes.length >> 1));
          },
          pull(controller) {
            controller.error(new Error("connection dropped"));
          },
        });
        const headers = new Headers(request.headers);
        return await fetch(
          new Request(request.url, {
            method: "PUT",
            headers,
            body: half,
            // @ts-ignore: Deno and Node need it for a stream body
            duplex: "half",
          }),
        );
      },
    };
  }

  test("an upload cut mid-chunk resumes with its sourceId: verified, nothing duplicated", async () => {
    const payload = records(400, 400); // ~160 KB → 5 chunks of 32 KiB
    const sourceId = `resume-${crypto.randomUUID()}`;
    const drop = dropChunkBody(3);
    const broken = await server.client(TOKEN_A, { fetch: drop.fetch });
    const failure = await syncConversation(broken, {
      scope: SCOPE_A,
      conversationId: "dropped",
      sourceId,
      payload,
      chunkSize: 32 * 1024,
      concurrency: 1,
      retry: { maxAttempts: 1 },
    }).catch((error) => error);
    assert.ok(drop.dropped(), "the third chunk's body was cut");
    assert.ok(failure instanceof SyncError, String(failure));
    assert.equal(failure.code, "E_SYNC_BACKEND_UNAVAILABLE");
    assert.equal(failure.retryable, true);
    const storedBefore = await storedChunks(SCOPE_A, sourceId);
    assert.equal(storedBefore, 2, "the chunks before the cut, not the cut one");

    const client = await server.client(TOKEN_A);
    const { job } = await syncConversation(client, {
      scope: SCOPE_A,
      conversationId: "dropped",
      sourceId,
      payload,
      chunkSize: 32 * 1024,
    });
    assert.equal(job.state, "succeeded");
    const applied = server.applied.filter((entry) => entry.sourceId === sourceId);
    assert.deepEqual(applied.map((entry) => entry.index), [...Array(job.totalChunks).keys()]);
    assert.equal(await storedChunks(SCOPE_A, sourceId), job.totalChunks);
    const jobs = (await client.listJobs({ scope: SCOPE_A, conversationId: "dropped" })).items;
    assert.equal(jobs.length, 1, "one job");
  });

  test("a response lost after the server stored the chunk: the retry finds it, verified once", async () => {
    let lost = 0;
    const losing: FetchLike = async (request) => {
      const response = await fetch(request);
      if (request.method === "PUT" && lost < 2) {
        lost++;
        await response.body?.cancel();
        throw new TypeError("connection reset after the request was handled");
      }
      return response;
    };
    const client = await server.client(TOKEN_A, { fetch: losing });
    const { job, source } = await syncConversation(client, {
      scope: SCOPE_A,
      conversationId: "lost-responses",
      payload: records(300, 400),
      chunkSize: 32 * 1024,
      retry: { baseDelayMs: 1, maxDelayMs: 5 },
    });
    assert.equal(lost, 2);
    assert.equal(job.state, "succeeded");
    const applied = server.applied.filter((entry) => entry.sourceId === source.sourceId);
    assert.deepEqual(applied.map((entry) => entry.index), [...Array(job.totalChunks).keys()]);
  });

  test("a lost response to a one-call upload: the retry returns the same source and job", async () => {
    let lost = false;
    const losing: FetchLike = async (request) => {
      const response = await fetch(request);
      if (new URL(request.url).pathname === "/v1/uploads" && !lost) {
        lost = true;
        await response.body?.cancel();
        throw new TypeError("connection reset");
      }
      return response;
    };
    const client = await server.client(TOKEN_A, { fetch: losing });
    const { job, source } = await syncConversation(client, {
      scope: SCOPE_A,
      conversationId: "lost-upload",
      payload: records(3),
      retry: { baseDelayMs: 1, maxDelayMs: 5 },
    });
    assert.ok(lost);
    assert.equal(job.state, "succeeded");
    const jobs = (await client.listJobs({ scope: SCOPE_A, conversationId: "lost-upload" })).items;
    assert.deepEqual(jobs.map((entry) => entry.jobId), [job.jobId], "one source, one job");
    assert.equal(server.applied.filter((entry) => entry.sourceId === source.sourceId).length, 1);
  });
});
