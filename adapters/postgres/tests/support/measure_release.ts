// Measures what releasing a verified source's chunk payloads gives back: the chunk table's
// total size (heap, TOAST and indexes) after the import, after `releasePayloads`, and after
// a plain VACUUM, for a 64 MiB source, on PGlite and on a PostgreSQL server, side by side
// in one run. Prints one JSON object.
//
//   deno task bench:release [--mib=64] [--payload=jsonl|random]
import { syncConversation } from "@zakstam/codex-sync-engine";
import {
  createPostgresAdapter,
  type PostgresAdapter,
  type PostgresAdapterOptions,
} from "@zakstam/codex-sync-engine-postgres";
import { sampleJsonLines } from "../../../../scripts/sample_conversation.ts";
import { startTestServer } from "./cluster.ts";

const MIB = 1024 * 1024;

function option(name: string, fallback: string): string {
  const arg = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return arg ? arg.slice(name.length + 3) : fallback;
}

/** Pseudo-random bytes (incompressible: TOAST cannot shrink them), from a fixed seed. */
function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function chunkTableBytes(adapter: PostgresAdapter): Promise<number> {
  const [row] = await adapter.driver.query<{ size: string | number }>(
    `SELECT pg_total_relation_size($1::text::regclass) AS size`,
    [adapter.tables.chunks],
  );
  return Number(row.size);
}

async function measure(
  options: Omit<PostgresAdapterOptions, "handler">,
  payload: Uint8Array,
): Promise<Record<string, number>> {
  const adapter = await createPostgresAdapter({ ...options, handler: { apply() {} } });
  try {
    const synced = await syncConversation(adapter, {
      scope: "measure",
      conversationId: "conversation",
      payload,
    });
    const imported = await chunkTableBytes(adapter);
    const released = await adapter.releasePayloads({
      scope: "measure",
      sourceId: synced.source.sourceId,
    });
    const afterRelease = await chunkTableBytes(adapter);
    await adapter.driver.query(`VACUUM ${adapter.tables.chunks}`);
    const afterVacuum = await chunkTableBytes(adapter);
    return {
      chunks: synced.manifest.chunkCount,
      releasedChunks: released.releasedChunks,
      payloadBytes: payload.length,
      chunkTableBytesImported: imported,
      chunkTableBytesAfterRelease: afterRelease,
      chunkTableBytesAfterVacuum: afterVacuum,
      importedOverPayload: Math.round((imported / payload.length) * 1000) / 1000,
      afterVacuumOverPayload: Math.round((afterVacuum / payload.length) * 10000) / 10000,
    };
  } finally {
    await adapter.close();
  }
}

const mib = Number(option("mib", "64"));
const kind = option("payload", "jsonl");
const payload = kind === "random" ? randomBytes(mib * MIB) : sampleJsonLines(mib * MIB);
const dataDir = await Deno.makeTempDir({ prefix: "measure-release-" });
const server = await startTestServer();
try {
  const pglite = await measure({ dataDir }, payload);
  const postgres = await measure({ connectionString: server.url, schema: "measure" }, payload);
  console.log(JSON.stringify({ payload: kind, mib, pglite, server: postgres }, null, 2));
} finally {
  await server.dispose();
  await Deno.remove(dataDir, { recursive: true });
}
