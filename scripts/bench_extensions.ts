/**
 * Benchmark (not a test) of extension sources (DESIGN §9), figures 8–10:
 *
 * - 8: appending one ~2 KB line to a 200 MiB conversation and re-syncing it ÷ syncing a
 *   fresh one-line conversation, on the memory adapter and on a PostgreSQL server
 *   (target ≤ 2.0). Two ways to re-sync: `appendTo` (the caller knows it appended: it
 *   hands over the new line only, as `codex-sync watch` does) and the default automatic
 *   extension (the whole 200 MiB payload is handed over; the client reads and hashes it
 *   to prove the prefix unchanged, then uploads the line). Alternating rounds, medians.
 * - 9: the 1000th successive one-line extension of one conversation ÷ the first (median
 *   of the last 10 ÷ median of the first 10), on both stores (target ≤ 1.5).
 * - 10: per extension, bytes uploaded and store growth (chunk rows and their bytes; on
 *   the server also the tables' size on disk), against the new bytes (target: the new
 *   bytes plus a constant).
 *
 * Each sync is awaited to its verified terminal job. Backend calls per sync (round
 * trips) are counted by a proxy around the adapter.
 *
 * Run: deno task bench:extensions [--mib 200] [--rounds 5] [--links 1000] [--quick]
 * (or all figures: deno task bench). Output: JSON on stdout, progress on stderr.
 */

import { type SyncAdapter, syncConversation } from "../mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";
import { createPostgresAdapter, type PostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
import { startTestServer } from "../adapters/postgres/tests/support/cluster.ts";
import { sampleJsonLines } from "./sample_conversation.ts";
import {
  alternateTimed,
  emit,
  type Figure,
  log as logTo,
  ms,
  numberOption,
  round,
  stats,
} from "./bench/figure.ts";

const MIB = 1024 * 1024;
const encoder = new TextEncoder();

function log(message: string): void {
  logTo("bench:extensions", message);
}

/** One ~2 KB JSON line, different each time. */
function lineOf(n: number): Uint8Array {
  return encoder.encode(
    JSON.stringify({ type: "message", turn: n, text: "appended ".repeat(220) }) + "\n",
  );
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The adapter with its calls counted. */
function counted(adapter: SyncAdapter): { adapter: SyncAdapter; calls: () => number } {
  let calls = 0;
  const proxy = new Proxy(adapter, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function" || property === "close") return value;
      return (...args: unknown[]) => {
        calls++;
        return value.apply(target, args);
      };
    },
  });
  return { adapter: proxy, calls: () => calls };
}

/** What the store holds: chunk rows, their bytes, and (server) the tables on disk. */
type StoreSize = { rows: number; bytes: number; diskBytes?: number };

interface Store {
  name: string;
  adapter: SyncAdapter;
  size(): Promise<StoreSize>;
  close(): Promise<void>;
}

interface SyncRun {
  ms: number;
  calls: number;
  uploadedBytes: number;
  sourceId: string;
}

async function timedSync(
  store: Store,
  conversationId: string,
  payload: Uint8Array,
  appendTo?: string,
): Promise<SyncRun> {
  const { adapter, calls } = counted(store.adapter);
  const started = performance.now();
  const result = await syncConversation(adapter, {
    scope: "bench",
    conversationId,
    payload,
    ...(appendTo ? { appendTo } : {}),
  });
  const elapsed = performance.now() - started;
  if (result.job.state !== "succeeded") throw new Error("sync did not succeed");
  return {
    ms: elapsed,
    calls: calls(),
    uploadedBytes: result.uploaded.bytes,
    sourceId: result.source.sourceId,
  };
}

/** Figure 8 on one store, one way of re-syncing. */
async function appendOneLine(
  store: Store,
  big: Uint8Array,
  rounds: number,
  mode: "appendTo" | "auto",
): Promise<Figure> {
  const conversationId = `big-${mode}-${crypto.randomUUID()}`;
  log(`${store.name}: uploading the ${(big.length / MIB).toFixed(0)} MiB conversation (${mode})`);
  let current = big;
  let last = await timedSync(store, conversationId, current);
  log(`${store.name}: first sync took ${ms(last.ms)}; ${rounds} alternating rounds`);
  let n = 0;
  const fresh: SyncRun[] = [];
  const extended: SyncRun[] = [];
  const runs = await alternateTimed(
    rounds,
    async () => {
      const run = await timedSync(store, `fresh-${crypto.randomUUID()}`, lineOf(-1));
      fresh.push(run);
      return run.ms;
    },
    async () => {
      const line = lineOf(n++);
      let run: SyncRun;
      if (mode === "appendTo") {
        run = await timedSync(store, conversationId, line, last.sourceId);
      } else {
        current = concat(current, line);
        run = await timedSync(store, conversationId, current);
      }
      if (run.uploadedBytes !== line.length) {
        throw new Error(`uploaded ${run.uploadedBytes} bytes for a ${line.length}-byte line`);
      }
      extended.push(run);
      last = run;
      return run.ms;
    },
  );
  const ratio = stats(runs.ratios);
  const median = (values: number[]) => stats(values).median;
  return {
    figure: 8,
    name: `${store.name}: append one ${lineOf(0).length} B line to a ${
      Math.round(big.length / MIB)
    } MiB conversation and re-sync (${
      mode === "appendTo" ? "appendTo: the caller hands over the new line" : "automatic: " +
        "the whole payload handed over, its prefix read and hashed by the client"
    }) ÷ sync a fresh one-line conversation`,
    measured: ms(median(runs.subjectMs)),
    baseline: ms(median(runs.baselineMs)),
    value: ratio.median,
    unit: "ratio",
    spread: { min: ratio.min, max: ratio.max, rounds: ratio.rounds },
    target: "≤ 2.0",
    met: ratio.median <= 2.0,
    details: {
      mode,
      conversationBytes: big.length,
      extensionMs: runs.subjectMs.map((v) => round(v, 2)),
      freshMs: runs.baselineMs.map((v) => round(v, 2)),
      extensionCalls: extended.map((run) => run.calls),
      freshCalls: fresh.map((run) => run.calls),
      extensionUploadedBytes: extended.at(-1)?.uploadedBytes,
      freshUploadedBytes: fresh.at(-1)?.uploadedBytes,
    },
  };
}

/** Figures 9 and 10 on one store: `links` one-line extensions of one conversation. */
async function chain(store: Store, links: number): Promise<Figure[]> {
  const conversationId = `chain-${crypto.randomUUID()}`;
  const base = sampleJsonLines(MIB);
  let last = await timedSync(store, conversationId, base);
  const times: number[] = [];
  const growth: Array<{ rows: number; bytes: number; diskBytes?: number }> = [];
  const lineBytes: number[] = [];
  const uploaded: number[] = [];
  log(`${store.name}: ${links} successive one-line extensions`);
  for (let i = 0; i < links; i++) {
    const line = lineOf(i);
    const measureGrowth = i < 10 || i >= links - 10;
    const before = measureGrowth ? await store.size() : undefined;
    const run = await timedSync(store, conversationId, line, last.sourceId);
    times.push(run.ms);
    uploaded.push(run.uploadedBytes);
    lineBytes.push(line.length);
    if (before) {
      const after = await store.size();
      const grew: StoreSize = { rows: after.rows - before.rows, bytes: after.bytes - before.bytes };
      if (after.diskBytes !== undefined && before.diskBytes !== undefined) {
        grew.diskBytes = after.diskBytes - before.diskBytes;
      }
      growth.push(grew);
    }
    last = run;
  }
  const first = stats(times.slice(0, 10)).median;
  const lastTen = stats(times.slice(-10)).median;
  const ratio = lastTen / first;
  const storedOverNew = growth.map((g, i) => g.bytes - lineBytes[i < 10 ? i : links - 20 + i]);
  const overUpload = uploaded.map((u, i) => u - lineBytes[i]);
  return [
    {
      figure: 9,
      name: `${store.name}: the ${links}th successive one-line extension of a conversation ÷ ` +
        "the first (medians of the last and first 10)",
      measured: ms(lastTen),
      baseline: ms(first),
      value: round(ratio),
      unit: "ratio",
      target: "≤ 1.5",
      met: ratio <= 1.5,
      details: {
        firstMs: times.slice(0, 10).map((v) => round(v, 2)),
        lastMs: times.slice(-10).map((v) => round(v, 2)),
      },
    },
    {
      figure: 10,
      name: `${store.name}: per one-line extension, bytes uploaded and chunk bytes stored ` +
        "beyond the new line's bytes (first and last 10 of the chain)",
      measured:
        `uploaded +${Math.max(...overUpload)} B, stored +${Math.max(...storedOverNew)} B, ${
          Math.max(...growth.map((g) => g.rows))
        } chunk row(s)` +
        (growth[0].diskBytes === undefined
          ? ""
          : `, on disk ≤ ${Math.max(...growth.map((g) => g.diskBytes ?? 0))} B`),
      baseline: `${stats(lineBytes).median} B line`,
      value: Math.max(...storedOverNew),
      unit: "B",
      target: "new bytes + a constant",
      met: Math.max(...overUpload) === 0 && Math.max(...storedOverNew) === 0 &&
        Math.max(...growth.map((g) => g.rows)) === 1,
      details: { growth, lineBytes: [...lineBytes.slice(0, 10), ...lineBytes.slice(-10)] },
    },
  ];
}

function memoryStore(): Store {
  const adapter = createMemoryAdapter({ handler: { apply() {} } });
  return {
    name: "memory",
    adapter,
    size: () => Promise.resolve(memoryChunkSize(adapter)),
    close: () => adapter.close(),
  };
}

/** Chunk rows and bytes the memory store holds (through its oracle). */
function memoryChunkSize(adapter: ReturnType<typeof createMemoryAdapter>): StoreSize {
  const counts = adapter.store.oracle.totals();
  return { rows: counts.chunks, bytes: counts.bytes };
}

async function postgresStore(url: string): Promise<Store> {
  const adapter: PostgresAdapter = await createPostgresAdapter({
    connectionString: url,
    schema: "bench_ext",
    handler: { apply() {} },
    mode: "auto",
  });
  const chunks = adapter.tables.chunks;
  return {
    name: "Postgres server",
    adapter,
    size: async () => {
      const [row] = await adapter.driver.query<{ rows: string; bytes: string; disk: string }>(
        `SELECT count(*)::text AS rows, coalesce(sum(byte_length), 0)::text AS bytes,
          (pg_total_relation_size('${chunks}') + pg_total_relation_size('${adapter.tables.sources}')
            + pg_total_relation_size('${adapter.tables.jobs}'))::text AS disk
         FROM ${chunks}`,
      );
      return { rows: Number(row.rows), bytes: Number(row.bytes), diskBytes: Number(row.disk) };
    },
    close: () => adapter.close(),
  };
}

async function main(): Promise<void> {
  const quick = Deno.args.includes("--quick");
  const mib = numberOption(Deno.args, "mib", quick ? 32 : 200);
  const rounds = numberOption(Deno.args, "rounds", quick ? 3 : 7);
  const links = numberOption(Deno.args, "links", quick ? 100 : 1000);
  const big = sampleJsonLines(mib * MIB);
  log(`conversation of ${big.length} bytes`);
  const figures: Figure[] = [];

  const memory = memoryStore();
  try {
    figures.push(await appendOneLine(memory, big, rounds, "appendTo"));
    figures.push(await appendOneLine(memory, big, rounds, "auto"));
    figures.push(...await chain(memory, links));
  } finally {
    await memory.close();
  }

  const server = await startTestServer({ durable: true });
  try {
    const postgres = await postgresStore(server.url);
    try {
      figures.push(await appendOneLine(postgres, big, rounds, "appendTo"));
      figures.push(await appendOneLine(postgres, big, rounds, "auto"));
      figures.push(...await chain(postgres, links));
    } finally {
      await postgres.close();
    }
  } finally {
    await server.dispose();
  }
  emit(figures);
}

if (import.meta.main) await main();
