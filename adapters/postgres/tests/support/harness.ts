/**
 * The Postgres adapter as a conformance target, on PGlite (a fresh data dir per case,
 * copied from a template) or on a server (a fresh schema per case). Restart closes the
 * adapter (and the PGlite instance, or the postgres.js pool) and reopens it over the
 * same storage; extra workers are engines over the adapter's store; the oracle reads
 * and damages the tables with plain SQL, bypassing the store. node:* APIs only (no
 * Deno.*): the conformance tests also run under Bun from source and under Node against
 * the built npm packages.
 */

import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PGliteOptions } from "@electric-sql/pglite";
import { scratchDir } from "./scratch.ts";
import type {
  ConformanceEffects,
  ConformanceFactory,
  ConformanceFactoryInput,
  ConformanceHarness,
  ConformanceOracle,
  HarnessHook,
  SuiteTarget,
} from "@zakstam/codex-sync-engine/conformance";
import { type Chunk, type Job, type Source, SyncEngine } from "@zakstam/codex-sync-engine";
import {
  createPGliteDriver,
  createPostgresAdapter,
  createPostgresJsDriver,
  type PostgresAdapter,
  type PostgresAdapterOptions,
  type PostgresDriver,
  type PostgresExtras,
  type SqlExecutor,
  type TableNames,
} from "@zakstam/codex-sync-engine-postgres";

/** Every hook the Postgres targets provide. */
export const POSTGRES_HOOKS: readonly HarnessHook[] = [
  "restart",
  "newWorker",
  "peer",
  "effects",
  "readChunk",
  "chunkCount",
  "corruptChunk",
  "readSource",
  "readJob",
];

/** Reads and faults straight in the tables, through `db`. */
export function sqlOracle(db: () => SqlExecutor, tables: TableNames): ConformanceOracle {
  const source = `scope = $1::text AND source_id = $2::text`;
  return {
    readChunk: async (scope, sourceId, index): Promise<Chunk | undefined> => {
      const [row] = await db().query(
        `SELECT idx, byte_length, sha256, item_count, bytes FROM ${tables.chunks}
          WHERE ${source} AND idx = $3::bigint`,
        [scope, sourceId, index],
      );
      // A released chunk (bytes NULL) has no bytes to read.
      if (!row || row.bytes === null) return undefined;
      const chunk: Chunk = {
        index: Number(row.idx),
        byteLength: Number(row.byte_length),
        sha256: row.sha256 as string,
        bytes: new Uint8Array(row.bytes as Uint8Array),
      };
      if (row.item_count !== null) chunk.itemCount = Number(row.item_count);
      return chunk;
    },
    chunkCount: async (scope, sourceId) => {
      const [row] = await db().query(
        `SELECT count(*)::integer AS n FROM ${tables.chunks} WHERE ${source}`,
        [scope, sourceId],
      );
      return Number(row.n);
    },
    corruptChunk: async (scope, sourceId, index) => {
      await db().query(
        `UPDATE ${tables.chunks} SET bytes = set_byte(bytes, 0, get_byte(bytes, 0) # 255)
          WHERE ${source} AND idx = $3::bigint`,
        [scope, sourceId, index],
      );
    },
    readSource: async (scope, sourceId) => {
      const [row] = await db().query(
        `SELECT record::text AS record FROM ${tables.sources} WHERE ${source}`,
        [scope, sourceId],
      );
      return row ? JSON.parse(row.record as string) as Source : undefined;
    },
    readJob: async (scope, jobId) => {
      const [row] = await db().query(
        `SELECT record::text AS record FROM ${tables.jobs}
          WHERE scope = $1::text AND job_id = $2::text`,
        [scope, jobId],
      );
      return row ? JSON.parse(row.record as string) as Job : undefined;
    },
  };
}

/**
 * The suite's effects hook: the handler inserts into a table of the case's schema through
 * `ctx.sql` (the transaction that commits the chunk); `read` sees what committed.
 */
async function effectsTable(
  db: () => SqlExecutor,
  tables: TableNames,
): Promise<ConformanceEffects> {
  const table = `"${tables.schema}"."${tables.prefix}conformance_effects"`;
  // Created up front: a handler's insert must not wait on DDL inside its transaction.
  await db().query(`CREATE TABLE IF NOT EXISTS ${table} (effect text NOT NULL)`);
  return {
    write: async (context, effect) => {
      const { sql } = context as unknown as PostgresExtras;
      await sql.query(`INSERT INTO ${table} (effect) VALUES ($1::text)`, [effect]);
    },
    read: async () =>
      (await db().query(`SELECT effect FROM ${table}`)).map((row) => row.effect as string),
  };
}

/** What a target must say about where each case's adapter lives. */
interface CaseStorage {
  /** Options that put the adapter on this case's storage. */
  options(): Partial<PostgresAdapterOptions>;
  /**
   * Options of another adapter instance over the same storage (hook `peer`): its own pool
   * on a server; on PGlite, which one process opens at a time, the same driver (another
   * store, engine and listener over it).
   */
  peerOptions(): Partial<PostgresAdapterOptions>;
  /** A connection for the oracle, independent of the adapter. */
  oracleDb(adapter: PostgresAdapter): SqlExecutor;
  /** Releases the case's storage after its adapter closed. */
  dispose(): Promise<void>;
  /** Restarts the database process itself, between the adapter's close and reopen. */
  restart?(): Promise<void>;
}

function harnessOver(
  input: ConformanceFactoryInput,
  storage: CaseStorage,
): Promise<ConformanceHarness> {
  const { handler, policy, clock, random } = input;
  const open = () =>
    createPostgresAdapter({
      ...storage.options(),
      handler: handler,
      policy,
      clock,
      random,
      mode: "manual",
      workerId: "main",
    });
  return open().then(async (first) => {
    let adapter = first;
    const effects = await effectsTable(() => storage.oracleDb(adapter), adapter.tables);
    return {
      adapter,
      drain: async () => {
        await adapter.drain();
      },
      restart: async () => {
        await adapter.close();
        await storage.restart?.();
        adapter = await open();
        return adapter;
      },
      newWorker: (owner) =>
        new SyncEngine<PostgresExtras>({
          store: adapter.store,
          handler: handler,
          policy,
          clock,
          random,
          workerId: owner,
        }),
      peer: async (owner) => {
        const peer = await createPostgresAdapter({
          ...storage.peerOptions(),
          handler,
          policy,
          clock,
          random,
          mode: "manual",
          workerId: owner,
        });
        return { adapter: peer, worker: peer.engine, close: () => peer.close() };
      },
      effects,
      oracle: sqlOracle(() => storage.oracleDb(adapter), adapter.tables),
      close: async () => {
        try {
          await adapter.close();
        } finally {
          await storage.dispose();
        }
      },
    };
  });
}

// Synchronous on purpose: a data dir is ~1000 small files, and Node's async fs calls
// (one thread-pool round trip each) take ~10x longer to copy or delete it.
function copyDir(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) copyDir(source, target);
    else if (entry.isFile()) copyFileSync(source, target);
  }
}

/** Removes a directory tree (no error when it is gone). */
// deno-lint-ignore require-await
async function removeDir(dir: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * PGlite: one database for the whole suite, a fresh schema per case (opening PGlite
 * costs about a second; a schema a few milliseconds), the WebAssembly module compiled
 * once. Restart closes PGlite itself and reopens the same data dir, so durability is
 * still that of PGlite's files.
 */
export class PGliteTarget {
  readonly #root: string;
  readonly #options: PGliteOptions;
  #template: Promise<string> | undefined;
  #shared: Promise<{ dataDir: string; driver: PostgresDriver }> | undefined;
  #cases = 0;

  private constructor(root: string, options: PGliteOptions) {
    this.#root = root;
    this.#options = options;
  }

  static async create(): Promise<PGliteTarget> {
    // PGlite's main module sits next to its WebAssembly file (on every runtime:
    // import.meta.resolve gives a file: URL under Deno, Node and Bun alike).
    const wasm = fileURLToPath(
      import.meta.resolve("@electric-sql/pglite").replace(/index\.js$/, "pglite.wasm"),
    );
    const pgliteWasmModule = await WebAssembly.compile(await readFile(wasm));
    const root = await scratchDir("codex-sync-pglite-");
    return new PGliteTarget(root, { pgliteWasmModule });
  }

  /** A fresh, empty data dir (a copy of a freshly initialised database). */
  async freshDataDir(): Promise<string> {
    this.#template ??= (async () => {
      const dir = join(this.#root, "template");
      const driver = await createPGliteDriver({ dataDir: dir, options: this.#options });
      await driver.close();
      return dir;
    })();
    const template = await this.#template;
    const dir = join(this.#root, `case-${++this.#cases}`);
    copyDir(template, dir);
    return dir;
  }

  /** The suite's one PGlite database (opened on first use, reopened by restarts). */
  #database(): Promise<{ dataDir: string; driver: PostgresDriver }> {
    return this.#shared ??= this.freshDataDir().then(async (dataDir) => ({
      dataDir,
      driver: await createPGliteDriver({ dataDir, options: this.#options }),
    }));
  }

  readonly factory: ConformanceFactory = async (input) => {
    let { driver } = await this.#database();
    const schema = `case_${++this.#cases}`;
    return await harnessOver(input, {
      options: () => ({ driver, schema, tablePrefix: "sync_" }),
      peerOptions: () => ({ driver, schema, tablePrefix: "sync_" }),
      // PGlite serves one caller at a time: the oracle shares the adapter's instance.
      oracleDb: (adapter) => adapter.driver,
      dispose: async () => {
        await driver.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      },
      restart: async () => {
        const { dataDir } = await this.#database();
        await driver.close();
        const reopened = createPGliteDriver({ dataDir, options: this.#options });
        this.#shared = reopened.then((next) => ({ dataDir, driver: next }));
        driver = await reopened;
      },
    });
  };

  target(): SuiteTarget {
    return {
      factory: this.factory,
      capabilities: [
        "durable",
        "concurrent-workers",
        "transactional-apply",
        "one-call-upload",
        "extensions",
        "release-payloads",
      ],
      hooks: POSTGRES_HOOKS,
    };
  }

  async dispose(): Promise<void> {
    const shared = await this.#shared?.catch(() => undefined);
    await shared?.driver.close().catch(() => {});
    await removeDir(this.#root).catch(() => {});
  }
}

/** A server: one schema per case (with a table prefix), dropped after the case. */
export class ServerTarget {
  readonly #url: string;
  readonly #admin: PostgresDriver;
  #cases = 0;

  constructor(url: string) {
    this.#url = url;
    this.#admin = createPostgresJsDriver({ connectionString: url, options: { max: 2 } });
  }

  readonly factory: ConformanceFactory = async (input) => {
    const schema = `conformance_${Date.now().toString(36)}_${++this.#cases}`;
    return await harnessOver(input, {
      options: () => ({
        connectionString: this.#url,
        connectionOptions: { max: 6 },
        schema,
        tablePrefix: "sync_",
      }),
      peerOptions: () => ({
        connectionString: this.#url,
        connectionOptions: { max: 2 },
        schema,
        tablePrefix: "sync_",
      }),
      oracleDb: () => this.#admin,
      dispose: async () => {
        await this.#admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      },
    });
  };

  target(): SuiteTarget {
    return {
      factory: this.factory,
      capabilities: [
        "durable",
        "concurrent-workers",
        "transactional-apply",
        "one-call-upload",
        "extensions",
        "release-payloads",
      ],
      hooks: POSTGRES_HOOKS,
    };
  }

  async dispose(): Promise<void> {
    await this.#admin.close();
  }
}
