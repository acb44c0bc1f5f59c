// The runtime side: errors across the hop, free-form JSON on the wire, waiting without
// subscriptions, authorization, and the types a host's generated API hands the adapter.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ConvexClient, ConvexHttpClient } from "convex/browser";
import type { ApiFromModules } from "convex/server";
import { ConvexError } from "convex/values";
import {
  compositeDigest,
  isSyncError,
  type JsonValue,
  sha256Hex,
  SyncError,
} from "@zakstam/codex-sync-engine";
import {
  callError,
  type ConvexFunctionCaller,
  type ConvexSyncFunctionReferences,
  createConvexSyncAdapter,
  syncErrorToWire,
} from "../mod.ts";
import type { AuthorizeRequest, SyncFunctions } from "../server.ts";
import { syncApi } from "./support/backend.ts";
import { setup } from "./support/setup.ts";

const SCOPE = "scope-1";
const noHandler = { apply() {} };

function isCode(code: string): (error: unknown) => boolean {
  return (error) => isSyncError(error) && error.code === code;
}

// Compile-time checks: both Convex clients fit the adapter, and so does the API a host's
// code generation derives from the exported functions.
type Fits<T, U> = T extends U ? true : false;
const _clientFits: Fits<ConvexClient, ConvexFunctionCaller> = true;
const _httpClientFits: Fits<ConvexHttpClient, ConvexFunctionCaller> = true;
type GeneratedApi = ApiFromModules<{ sync: Omit<SyncFunctions, "worker"> }>;
const _apiFits: Fits<GeneratedApi["sync"], ConvexSyncFunctionReferences> = true;
void [_clientFits, _httpClientFits, _apiFits];

test("SyncError codes survive the hop; other failures mean the backend is unavailable", () => {
  const sent = new SyncError("E_SYNC_CHUNK_CONFLICT", "chunk 3 differs", {
    details: { index: 3, stored: "ab" },
  });
  const received = callError(new ConvexError(syncErrorToWire(sent)));
  assert.equal(received.code, "E_SYNC_CHUNK_CONFLICT");
  assert.equal(received.message, "chunk 3 differs");
  assert.equal(received.retryable, false);
  assert.deepEqual(received.details, { index: 3, stored: "ab" });

  const network = callError(new TypeError("fetch failed"));
  assert.equal(network.code, "E_SYNC_BACKEND_UNAVAILABLE");
  assert.equal(network.retryable, true);
  assert.match(network.message, /fetch failed/);

  const foreign = callError(new ConvexError({ not: "ours" }));
  assert.equal(foreign.code, "E_SYNC_BACKEND_UNAVAILABLE");
});

test("metadata and manifest data Convex values could not hold round-trip as JSON", async () => {
  const { adapter, drain } = setup({
    handler: noHandler,
    policy: { limits: { maxMetadataBytes: 256 * 1024 } },
  });
  let deep: JsonValue = "bottom";
  for (let depth = 0; depth < 30; depth++) deep = { [`level ${depth}`]: [deep] };
  const metadata: JsonValue = {
    "$not a field name": 1,
    "": "empty key",
    "ключ 🔑": Array.from({ length: 10_000 }, (_, i) => i), // > Convex's 8 192 elements
    deep, // > Convex's 16 levels
  };
  const created = await adapter.createSource({ scope: SCOPE, conversationId: "c", metadata });
  assert.deepEqual(created.metadata, metadata);
  assert.deepEqual(
    (await adapter.getSource({ scope: SCOPE, sourceId: created.sourceId })).metadata,
    metadata,
  );

  const data: JsonValue = { keys: Array.from({ length: 9_000 }, (_, i) => `m-${i}`) };
  const { job, source } = await adapter.sealSource({
    scope: SCOPE,
    sourceId: created.sourceId,
    manifest: { chunkCount: 0, byteCount: 0, digest: compositeDigest([]), data },
  });
  assert.deepEqual(source.manifest?.data, data);
  await drain();
  assert.equal((await adapter.getJob({ scope: SCOPE, jobId: job.jobId })).state, "succeeded");
});

test("without subscriptions, waitForTerminal polls on the adapter's clock", async () => {
  const { clock, client, drain } = setup({ handler: noHandler });
  const adapter = createConvexSyncAdapter({
    client: client.withoutSubscriptions(),
    functions: syncApi,
    clock,
    pollIntervalMs: 500,
  });
  const source = await adapter.createSource({ scope: SCOPE, conversationId: "c" });
  const bytes = new TextEncoder().encode("only chunk");
  const sha256 = await sha256Hex(bytes);
  await adapter.appendChunk({ scope: SCOPE, sourceId: source.sourceId, index: 0, bytes, sha256 });
  const { job } = await adapter.sealSource({
    scope: SCOPE,
    sourceId: source.sourceId,
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  let settled = false;
  const waiting = adapter.waitForTerminal({ scope: SCOPE, jobId: job.jobId })
    .finally(() => (settled = true));
  await drain();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(settled, false, "no poll before the interval elapses on the clock");
  clock.advance(500);
  assert.equal((await waiting).state, "succeeded");

  const never = adapter.waitForTerminal({ scope: SCOPE, jobId: "missing-job" });
  await assert.rejects(never, isCode("E_SYNC_JOB_NOT_FOUND"));
  const other = await adapter.createSource({ scope: SCOPE, conversationId: "d" });
  const { job: idle } = await adapter.sealSource({
    scope: SCOPE,
    sourceId: other.sourceId,
    manifest: { chunkCount: 0, byteCount: 0, digest: compositeDigest([]) },
  });
  const timed = adapter.waitForTerminal({ scope: SCOPE, jobId: idle.jobId, timeoutMs: 1_200 });
  clock.advance(1_200);
  await assert.rejects(timed, isCode("E_SYNC_TIMEOUT"));
  assert.equal(clock.pendingTimers, 0, "the wait left no timer behind");
});

test("authorize sees every operation and its scope, and a refusal keeps its code", async () => {
  const seen: AuthorizeRequest[] = [];
  const { adapter } = setup({
    handler: noHandler,
    authorize: (_ctx, request) => {
      seen.push(request);
      if (request.scope === "someone-else") {
        throw new SyncError("E_SYNC_SOURCE_NOT_FOUND", "no such source");
      }
    },
  });
  const created = await adapter.createSource({ scope: SCOPE, conversationId: "c" });
  await adapter.getSource({ scope: SCOPE, sourceId: created.sourceId });
  await adapter.gc();
  await assert.rejects(
    adapter.createSource({ scope: "someone-else", conversationId: "c", sourceId: "x" }),
    isCode("E_SYNC_SOURCE_NOT_FOUND"),
  );
  await assert.rejects(
    adapter.getSource({ scope: "someone-else", sourceId: "x" }),
    isCode("E_SYNC_SOURCE_NOT_FOUND"),
  );
  assert.deepEqual(seen, [
    { operation: "createSource", scope: SCOPE },
    { operation: "getSource", scope: SCOPE },
    { operation: "gc" },
    { operation: "createSource", scope: "someone-else" },
    { operation: "getSource", scope: "someone-else" },
  ]);
});
