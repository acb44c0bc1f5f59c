/**
 * The tables the host spreads into its schema, with an index behind every lookup the
 * store makes. Documents are the wire shapes plus storage bookkeeping.
 *
 * @module
 */

import {
  type DataModelFromSchemaDefinition,
  defineSchema,
  defineTable,
  type GenericDatabaseReader,
  type GenericDatabaseWriter,
  type TableDefinition,
} from "convex/server";
import { v } from "convex/values";
import { jobWireFields, sourceWireFields } from "./validators.ts";

/** Table names of the sync tables. */
export const SYNC_TABLE_NAMES = {
  sources: "syncSources",
  chunks: "syncChunks",
  chunkBytes: "syncChunkBytes",
  jobs: "syncJobs",
} as const;

const sources = defineTable({
  ...sourceWireFields,
  /** Chunk documents stored for the source (what a deletion removes). */
  storedChunks: v.number(),
  /** Chunks deleted logically; some documents still wait for the background sweep. */
  purgePending: v.boolean(),
  /**
   * With `purgePending`: only the chunks from this index on are deleted (absent: all). No
   * chunk is stored there again until the sweep (or the insert itself) has removed them.
   */
  purgeFrom: v.optional(v.number()),
  /** Whether retention may purge the chunks, and from when (`purgeAt`). */
  purgeable: v.boolean(),
  purgeAt: v.number(),
  /**
   * A payload release whose bytes are not all dropped yet: the chunks with
   * `releaseFrom <= index < releaseTo` read as released (no bytes) until the background
   * sweep has dropped them. Absent when none is pending.
   */
  releasePending: v.optional(v.boolean()),
  releaseFrom: v.optional(v.number()),
  releaseTo: v.optional(v.number()),
})
  .index("by_key", ["scope", "sourceId"])
  .index("by_expiry", ["state", "expiresAt"])
  .index("by_purge", ["purgeable", "purgeAt"])
  .index("by_pending_purge", ["purgePending"])
  .index("by_pending_release", ["releasePending"]);

// A chunk's digest and its bytes live in two documents, so that a seal or a listing
// reads digests without reading megabytes of bytes. A released chunk has no `bytes`.
const chunks = defineTable({
  source: v.id(SYNC_TABLE_NAMES.sources),
  index: v.number(),
  byteLength: v.number(),
  sha256: v.string(),
  itemCount: v.optional(v.number()),
  bytes: v.optional(v.id(SYNC_TABLE_NAMES.chunkBytes)),
}).index("by_source", ["source", "index"]);

const chunkBytes = defineTable({ bytes: v.bytes() });

const jobs = defineTable({
  ...jobWireFields,
  /** Not terminal: claimable once `runAt` passes (a running job's `runAt` is its lease expiry). */
  active: v.boolean(),
})
  .index("by_key", ["scope", "jobId"])
  .index("by_due", ["active", "runAt"])
  .index("by_created", ["scope", "createdAt", "jobId"])
  .index("by_conversation", ["scope", "conversationId", "createdAt", "jobId"])
  .index("by_state", ["scope", "state", "createdAt", "jobId"])
  .index("by_conversation_state", ["scope", "conversationId", "state", "createdAt", "jobId"])
  .index("by_conversation_active", ["scope", "conversationId", "active"]);

const tables = {
  [SYNC_TABLE_NAMES.sources]: sources,
  [SYNC_TABLE_NAMES.chunks]: chunks,
  [SYNC_TABLE_NAMES.chunkBytes]: chunkBytes,
  [SYNC_TABLE_NAMES.jobs]: jobs,
};

/** The sync tables, typed loosely: a host never reads them directly. */
export interface SyncTables {
  syncSources: TableDefinition;
  syncChunks: TableDefinition;
  syncChunkBytes: TableDefinition;
  syncJobs: TableDefinition;
}

/**
 * The sync tables, to spread into the host's schema:
 * `defineSchema({ ...syncTables, ...yourTables })`.
 */
export const syncTables: SyncTables = tables;

const schema = defineSchema(tables);

/** The data model of the sync tables (the store's own view of the host's database). */
export type SyncDataModel = DataModelFromSchemaDefinition<typeof schema>;
/** A reader of the sync tables. */
export type SyncDbReader = GenericDatabaseReader<SyncDataModel>;
/** A writer of the sync tables. */
export type SyncDbWriter = GenericDatabaseWriter<SyncDataModel>;
/** A stored source. */
export type SourceDoc = SyncDataModel["syncSources"]["document"];
/** A stored chunk digest. */
export type ChunkDoc = SyncDataModel["syncChunks"]["document"];
/** A stored job. */
export type JobDoc = SyncDataModel["syncJobs"]["document"];
