// The one-call upload on Convex: opt-in on the client (an adapter built without the
// `uploadSource` reference keeps the three calls), and Convex-sized.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ApiFromModules, type FunctionReference, getFunctionName } from "convex/server";
import {
  Capability,
  compositeDigest,
  isSyncError,
  type JsonValue,
  sha256Hex,
  syncConversation,
  type SyncConversationResult,
  type SyncHandler,
  type UploadChunkInput,
} from "@zakstam/codex-sync-engine";
import {
  CONVEX_MAX_CHUNK_BYTES,
  CONVEX_MAX_UPLOAD_CHUNKS,
  type ConvexFunctionCaller,
  createConvexSyncAdapter,
  type MutationResult,
  type UploadSourceReference,
  type UploadSourceResultWire,
} from "../mod.ts";
import type { ConvexHandlerExtras, SyncFunctions } from "../server.ts";
import { syncApi, uploadSourceRef } from "./support/backend.ts";
import { setup } from "./support/setup.ts";
import type { TestConvexClient } from "./support/client.ts";

const SCOPE = "scope-1";

// Compile-time check: a host's generated `api.sync.uploadSource` fits the option.
type Fits<T, U> = T extends U ? true : false;
type GeneratedApi = ApiFromModules<{ sync: Omit<SyncFunctions, "worker"> }>;
const _uploadFits: Fits<GeneratedApi["sync"]["uploadSource"], UploadSourceReference> = true;
void _uploadFits;

function isCode(code: string): (error: unknown) => boolean {
  return (error) => isSyncError(error) && error.code === code;
}

/** `client`, recording the name of every mutation called through it. */
function recording(client: TestConvexClient): { caller: ConvexFunctionCaller; calls: string[] } {
  const calls: string[] = [];
  const caller: ConvexFunctionCaller = {
    query: (query, args) => client.query(query, args),
    mutation: (mutation: FunctionReference<"mutation">, args) => {
      calls.push(getFunctionName(mutation));
      return client.mutation(mutation, args);
    },
    onUpdate: (query, args, callback, onError) => client.onUpdate(query, args, callback, onError),
  };
  return { caller, calls };
}

function collecting(applied: string[]): SyncHandler<ConvexHandlerExtras> {
  return {
    apply(chunk) {
      applied.push(new TextDecoder().decode(chunk.bytes));
    },
  };
}

/** Syncs `payload`, running the worker between the client's steps until it settles. */
async function syncDriven(
  run: () => Promise<SyncConversationResult>,
  drain: () => Promise<number>,
): Promise<SyncConversationResult> {
  let done = false;
  const synced = run().finally(() => (done = true));
  while (!done) {
    await drain();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return await synced;
}

const PAYLOAD: JsonValue[] = [{ turn: 0, text: "hello" }, { turn: 1, text: "world" }];

test("without the uploadSource reference, the adapter syncs a small payload in three calls", async () => {
  const applied: string[] = [];
  const { client, clock, drain } = setup({ handler: collecting(applied) });
  const { caller, calls } = recording(client);
  const adapter = createConvexSyncAdapter({ client: caller, functions: syncApi, clock });
  assert.equal(adapter.uploadSource, undefined);
  assert.ok(!adapter.capabilities.includes(Capability.oneCallUpload));

  const { job } = await syncDriven(
    () => syncConversation(adapter, { scope: SCOPE, conversationId: "c", payload: PAYLOAD, clock }),
    drain,
  );
  assert.equal(job.state, "succeeded");
  assert.equal(applied.length, 1);
  assert.deepEqual(calls, ["sync:createSource", "sync:appendChunk", "sync:sealSource"]);
});

test("with the uploadSource reference, a small payload goes up in one mutation", async () => {
  const applied: string[] = [];
  const { client, clock, drain } = setup({ handler: collecting(applied) });
  const { caller, calls } = recording(client);
  const adapter = createConvexSyncAdapter({
    client: caller,
    functions: syncApi,
    uploadSource: uploadSourceRef,
    clock,
  });
  assert.ok(adapter.capabilities.includes(Capability.oneCallUpload));

  const { job } = await syncDriven(
    () => syncConversation(adapter, { scope: SCOPE, conversationId: "c", payload: PAYLOAD, clock }),
    drain,
  );
  assert.equal(job.state, "succeeded");
  assert.equal(applied.length, 1);
  assert.deepEqual(calls, ["sync:uploadSource"]);
});

/** `count` chunks of `size` bytes, hashed. */
async function tinyChunks(count: number, size = 1): Promise<UploadChunkInput[]> {
  return await Promise.all(Array.from({ length: count }, async (_, index) => {
    const bytes = new Uint8Array(size).fill(index % 256);
    return { index, bytes, sha256: await sha256Hex(bytes) };
  }));
}

test("CONVEX_MAX_UPLOAD_CHUNKS chunks of one call's bytes fit one mutation", async () => {
  const { adapter } = setup({ handler: { apply() {} } });
  const size = Math.floor(CONVEX_MAX_CHUNK_BYTES / CONVEX_MAX_UPLOAD_CHUNKS);
  const chunks = await tinyChunks(CONVEX_MAX_UPLOAD_CHUNKS, size);
  const manifest = {
    chunkCount: chunks.length,
    byteCount: chunks.length * size,
    digest: compositeDigest(chunks.map((chunk) => chunk.sha256)),
  };
  const uploaded = await adapter.uploadSource!({
    scope: SCOPE,
    conversationId: "c",
    chunks,
    manifest,
  });
  assert.equal(uploaded.source.state, "sealed");
  assert.equal(uploaded.job.totalChunks, CONVEX_MAX_UPLOAD_CHUNKS);
  assert.ok(uploaded.appended.every((appended) => appended));
});

test("more chunks than CONVEX_MAX_UPLOAD_CHUNKS are refused by the client and the server", async () => {
  const { t, client, clock } = setup({ handler: { apply() {} } });
  const { caller, calls } = recording(client);
  const adapter = createConvexSyncAdapter({
    client: caller,
    functions: syncApi,
    uploadSource: uploadSourceRef,
    clock,
  });
  const count = CONVEX_MAX_UPLOAD_CHUNKS + 1;
  const chunks = Array.from({ length: count }, (_, index) => ({
    index,
    bytes: new Uint8Array([1]),
    sha256: "0".repeat(64),
  }));
  const manifest = { chunkCount: count, byteCount: count, digest: compositeDigest([]) };
  const input = { scope: SCOPE, conversationId: "c", sourceId: "s", chunks, manifest };
  await assert.rejects(adapter.uploadSource!(input), isCode("E_SYNC_LIMIT_EXCEEDED"));
  assert.deepEqual(calls, [], "refused before the call");

  const wireChunks = chunks.map(({ bytes, ...chunk }) => ({ ...chunk, bytes: bytes.buffer }));
  const result = await t.mutation(uploadSourceRef, {
    ...input,
    chunks: wireChunks,
  }) as MutationResult<
    UploadSourceResultWire
  >;
  assert.equal(result.ok ? "ok" : result.error.code, "E_SYNC_LIMIT_EXCEEDED");
  await assert.rejects(
    adapter.getSource({ scope: SCOPE, sourceId: "s" }),
    isCode("E_SYNC_SOURCE_NOT_FOUND"),
  );
});
