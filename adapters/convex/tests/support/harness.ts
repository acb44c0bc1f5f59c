/**
 * The Convex adapter as a conformance target: a fresh `convex-test` backend per case,
 * the client adapter over a subscription-capable test client, worker runs driven by the
 * suite's clock, and oracle reads straight from the tables.
 */

import type {
  ConformanceEffects,
  ConformanceFactory,
  ConformanceHarness,
  ConformanceOracle,
  HarnessHook,
  SuiteTarget,
} from "@zakstam/codex-sync-engine/conformance";
import type { Clock, SyncHandler } from "@zakstam/codex-sync-engine";
import { Capability } from "@zakstam/codex-sync-engine";
import { createConvexSyncAdapter } from "../../mod.ts";
import { chunkInfoOf, jobOf, sourceOf } from "../../src/server/records.ts";
import { isPendingRelease } from "../../src/server/release.ts";
import type { ConvexHandlerExtras } from "../../server.ts";
import { TestConvexClient } from "./client.ts";
import type { SyncDbReader, SyncDbWriter } from "../../src/server/schema.ts";
import {
  createTestBackend,
  runDueWorkers,
  syncApi,
  type TestBackend,
  uploadSourceRef,
} from "./backend.ts";

type ConvexHandler = SyncHandler<ConvexHandlerExtras>;

/** The hooks the Convex harness provides. */
export const CONVEX_HOOKS: readonly HarnessHook[] = [
  "restart",
  "peer",
  "effects",
  "readChunk",
  "chunkCount",
  "corruptChunk",
  "readSource",
  "readJob",
];

/** The capabilities the Convex adapter has. */
export const CONVEX_CAPABILITIES = [
  Capability.durable,
  Capability.transactionalApply,
  Capability.oneCallUpload,
  Capability.extensions,
  Capability.releasePayloads,
] as const;

/** Reads (and damages) the sync tables directly. */
export function convexOracle(t: TestBackend): ConformanceOracle {
  // The host's schema types the sync tables loosely; the oracle reads them as the store.
  const read = <T>(fn: (db: SyncDbWriter) => Promise<T>): Promise<T> =>
    t.run((ctx) => fn(ctx.db as unknown as SyncDbWriter));
  const sourceDoc = (db: SyncDbReader, scope: string, sourceId: string) =>
    db.query("syncSources")
      .withIndex("by_key", (range) => range.eq("scope", scope).eq("sourceId", sourceId))
      .unique();
  return {
    readChunk: async (scope, sourceId, index) => {
      // Values leave `t.run` as Convex values: bytes as an ArrayBuffer, no undefined.
      const found = await read(async (db) => {
        const source = await sourceDoc(db, scope, sourceId);
        const chunk = source && await db.query("syncChunks")
          .withIndex("by_source", (range) => range.eq("source", source._id).eq("index", index))
          .unique();
        // A released chunk has no bytes (or they wait for the sweep: see the store).
        const bytes = chunk?.bytes;
        if (!source || !chunk || bytes === undefined || isPendingRelease(source, index)) {
          return null;
        }
        const stored = await db.get(bytes);
        return stored ? { chunk: chunkInfoOf(chunk), bytes: stored.bytes } : null;
      });
      return found ? { ...found.chunk, bytes: new Uint8Array(found.bytes) } : undefined;
    },
    chunkCount: (scope, sourceId) =>
      read(async (db) => {
        const source = await sourceDoc(db, scope, sourceId);
        if (!source) return 0;
        const chunks = await db.query("syncChunks")
          .withIndex("by_source", (range) => range.eq("source", source._id))
          .collect();
        return chunks.length;
      }),
    corruptChunk: (scope, sourceId, index) =>
      read(async (db) => {
        const source = await sourceDoc(db, scope, sourceId);
        const chunk = source && await db.query("syncChunks")
          .withIndex("by_source", (range) => range.eq("source", source._id).eq("index", index))
          .unique();
        const stored = chunk?.bytes && await db.get(chunk.bytes);
        if (!chunk?.bytes || !stored) return;
        const bytes = new Uint8Array(stored.bytes.slice(0));
        bytes[0] ^= 0xff;
        await db.patch(chunk.bytes, { bytes: bytes.buffer });
      }),
    readSource: async (scope, sourceId) => {
      const doc = await read((db) => sourceDoc(db, scope, sourceId));
      return doc ? sourceOf(doc) : undefined;
    },
    readJob: async (scope, jobId) => {
      const doc = await read((db) =>
        db.query("syncJobs")
          .withIndex("by_key", (range) => range.eq("scope", scope).eq("jobId", jobId))
          .unique()
      );
      return doc ? jobOf(doc) : undefined;
    },
  };
}

/** A client adapter over `t` (with the one-call upload), with its test client. */
export function clientOver(t: TestBackend, clock: Clock) {
  const client = new TestConvexClient(t);
  const adapter = createConvexSyncAdapter({
    client,
    functions: syncApi,
    uploadSource: uploadSourceRef,
    clock,
  });
  return { client, adapter };
}

/**
 * The suite's effects hook: the handler inserts into the host's `messages` table through
 * the worker mutation's `ctx.db` (rolled back with a failed step); `read` sees what
 * committed.
 */
export function convexEffects(t: TestBackend): ConformanceEffects {
  return {
    write: async (context, effect) => {
      const { ctx } = context as unknown as ConvexHandlerExtras;
      await ctx.db.insert("messages", {
        conversationId: "conformance-effects",
        index: 0,
        text: effect,
      });
    },
    read: () =>
      t.run(async (ctx) =>
        (await ctx.db.query("messages").collect()).map((message) => message.text)
      ),
  };
}

/** The scale case's source on convex-test (see `ConformanceHarness.scaleChunks`). */
const CONVEX_TEST_SCALE_CHUNKS = 1_000;

/** A factory building a fresh Convex backend and client adapter per case. */
export const convexFactory: ConformanceFactory = (
  { handler, policy, clock, random },
): Promise<ConformanceHarness> => {
  // The suite's handler takes any extras, the mutation's `ctx` included.
  const t = createTestBackend({
    handler: handler as unknown as ConvexHandler,
    policy,
    clock,
    random,
  });
  let current = clientOver(t, clock);
  return Promise.resolve({
    get adapter() {
      return current.adapter;
    },
    drain: async () => {
      await runDueWorkers(t, () => clock.now(), () => current.client.refresh());
    },
    restart: () => {
      // The backend is durable by nature: a restart is a new client process.
      current.client.close();
      current = clientOver(t, clock);
      return Promise.resolve(current.adapter);
    },
    // Another client process: its own connection and subscriptions, the same backend.
    peer: () => {
      const peer = clientOver(t, clock);
      return Promise.resolve({
        adapter: peer.adapter,
        close: () => {
          peer.client.close();
          return Promise.resolve();
        },
      });
    },
    effects: convexEffects(t),
    oracle: convexOracle(t),
    // convex-test answers every query, indexed or not, by scanning all documents: a
    // 5 000-chunk source makes the case quadratic in the double (over 3 minutes).
    scaleChunks: CONVEX_TEST_SCALE_CHUNKS,
    close: () => {
      current.client.close();
      return Promise.resolve();
    },
  });
};

/** The Convex adapter as a suite target. */
export function convexTarget(): SuiteTarget {
  return { factory: convexFactory, capabilities: CONVEX_CAPABILITIES, hooks: CONVEX_HOOKS };
}
