/**
 * @zakstam/codex-sync-engine-postgres — the sync engine on PostgreSQL: durable, any
 * number of workers on any number of machines, exactly-once effects through
 * transactional apply. Embedded PGlite by default, a PostgreSQL server at scale.
 *
 * ```ts
 * import { createPostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
 *
 * const adapter = await createPostgresAdapter({
 *   connectionString: "postgres://app@db.internal/app", // or dataDir: "./sync-db" (PGlite)
 *   handler: {
 *     async apply(chunk, ctx) {
 *       // ctx.sql runs in the transaction that commits this chunk's progress
 *       await ctx.sql.query("INSERT INTO messages (conversation, part) VALUES ($1, $2)", [
 *         ctx.job.conversationId,
 *         chunk.index,
 *       ]);
 *     },
 *   },
 * });
 * ```
 *
 * @module
 */

export {
  createPostgresAdapter,
  DEFAULT_POLL_INTERVAL_MS,
  type PostgresAdapter,
  type PostgresAdapterOptions,
} from "./src/adapter.ts";
export type { PostgresDriver, SqlExecutor, SqlRow, Unlisten } from "./src/driver.ts";
export {
  createPostgresJsDriver,
  type PostgresJsDriverOptions,
  type PostgresJsOptions,
} from "./src/postgresjs.ts";
export {
  createPGliteDriver,
  type PGliteDriverOptions,
  type PGliteInstance,
  type PGliteQueryCodecs,
  type PGliteSettings,
} from "./src/pglite.ts";
export { type PostgresExtras, PostgresStore } from "./src/store.ts";
export {
  DEFAULT_SCHEMA,
  DEFAULT_TABLE_PREFIX,
  type TableLocation,
  type TableNames,
  tableNames,
} from "./src/names.ts";
export {
  migrate,
  type Migration,
  type MigrationReport,
  MIGRATIONS,
  SCHEMA_VERSION,
} from "./src/migrations.ts";
export { isTransientBackendError, toBackendError } from "./src/errors.ts";
export { type JobNotice, type JobNoticeListener, JobNotifications } from "./src/notifications.ts";
export { type StoreStatements, storeStatements } from "./src/statements.ts";
