/**
 * Where the adapter's tables live: a schema plus a table-name prefix, validated so they
 * can be spliced into SQL as identifiers, and the NOTIFY channel derived from them.
 *
 * @module
 */

import { SyncError } from "@zakstam/codex-sync-engine";

/** The schema used when none is given. */
export const DEFAULT_SCHEMA = "public";
/** The table-name prefix used when none is given. */
export const DEFAULT_TABLE_PREFIX = "codex_sync_";

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
// Short enough that prefix + the longest table or index name stays within 63 bytes.
const PREFIX_PATTERN = /^(?:[a-z_][a-z0-9_]{0,31})?$/;
const MAX_IDENTIFIER = 63;

/** Where to put the tables. */
export interface TableLocation {
  /** Schema (created when missing); lowercase letters, digits, `_`. Default `public`. */
  schema?: string;
  /** Prefix of every table and index name; lowercase letters, digits, `_`. Default `codex_sync_`. */
  tablePrefix?: string;
}

/** Resolved names: every table schema-qualified and quoted, ready to splice into SQL. */
export interface TableNames {
  readonly schema: string;
  readonly prefix: string;
  /** `schema.prefix` + `sources` / `chunks` / `jobs` / `migrations`. */
  readonly sources: string;
  readonly chunks: string;
  readonly jobs: string;
  readonly migrations: string;
  /** `schema.prefix` + `insert_sealed_source`: the store's one-step upload (migration 3). */
  readonly insertSealedSource: string;
  /** `schema.prefix` + `insert_sealed_sources`: many of those in one statement (migration 4). */
  readonly insertSealedSources: string;
  /** `schema.prefix` + `insert_sealed_extension`: the one-step upload of an extension (migration 6). */
  readonly insertSealedExtension: string;
  /** `schema.prefix` + `insert_sealed_extensions`: many of those in one statement (migration 7). */
  readonly insertSealedExtensions: string;
  /** `schema.prefix` + `update_jobs`: job updates of one transaction in one statement (migration 5). */
  readonly updateJobs: string;
  /** The NOTIFY channel job writes are announced on. */
  readonly channel: string;
  /** A quoted, unqualified index name with the prefix (an index lives in its table's schema). */
  index(name: string): string;
}

function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

function invalid(message: string, details: Record<string, unknown>): SyncError {
  return new SyncError("E_SYNC_INVALID_ARGUMENT", `postgres adapter: ${message}`, { details });
}

/** Validates `location` and derives the table names, or throws `E_SYNC_INVALID_ARGUMENT`. */
export function tableNames(location: TableLocation = {}): TableNames {
  const schema = location.schema ?? DEFAULT_SCHEMA;
  const prefix = location.tablePrefix ?? DEFAULT_TABLE_PREFIX;
  if (!SCHEMA_PATTERN.test(schema)) {
    throw invalid(
      `schema ${JSON.stringify(schema)} must be 1-63 lowercase letters, digits or _`,
      { schema },
    );
  }
  if (!PREFIX_PATTERN.test(prefix)) {
    throw invalid(
      `tablePrefix ${JSON.stringify(prefix)} must be at most 32 lowercase letters, digits or _`,
      { tablePrefix: prefix },
    );
  }
  const readable = `${schema}_${prefix}jobs`;
  return {
    schema,
    prefix,
    sources: `"${schema}"."${prefix}sources"`,
    chunks: `"${schema}"."${prefix}chunks"`,
    jobs: `"${schema}"."${prefix}jobs"`,
    migrations: `"${schema}"."${prefix}migrations"`,
    insertSealedSource: `"${schema}"."${prefix}insert_sealed_source"`,
    insertSealedSources: `"${schema}"."${prefix}insert_sealed_sources"`,
    insertSealedExtension: `"${schema}"."${prefix}insert_sealed_extension"`,
    insertSealedExtensions: `"${schema}"."${prefix}insert_sealed_extensions"`,
    updateJobs: `"${schema}"."${prefix}update_jobs"`,
    channel: readable.length <= MAX_IDENTIFIER
      ? readable
      : `codex_sync_${fnv1a(`${schema}.${prefix}`)}`,
    index: (name) => `"${prefix}${name}"`,
  };
}
