/**
 * Helpers of the CLI tests: running the CLI as a subprocess — `cli/main.ts` on Deno, or
 * the built npm bin on Node — with a way to wait for a line of its output and to send it
 * SIGINT, temp dirs, a template store, and reading the stored rows straight from a PGlite
 * data directory.
 */

import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { createPGliteDriver } from "@zakstam/codex-sync-engine-postgres";
import type { TextOutput } from "../src/host.ts";

const DENO = fileURLToPath(new URL("../../node_modules/.bin/deno", import.meta.url));
const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
/** The bundled sample rollout. */
export const SAMPLE = fileURLToPath(new URL("../fixtures/sample-rollout.jsonl", import.meta.url));
/** The session id in the bundled sample. */
export const SAMPLE_ID = "0199a3c1-5e7b-7c2d-9f41-6a8b2e0d4c17";

const PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-net", "--allow-sys"];

/** How the CLI is started. */
export interface CliEntry {
  /** Shown in test names. */
  name: string;
  command: string;
  /** Arguments before the CLI's own. */
  args: string[];
}

/** The Deno entry, from source. */
export const DENO_ENTRY: CliEntry = {
  name: "deno main.ts",
  command: DENO,
  args: ["run", ...PERMISSIONS, MAIN],
};

/** An installed npm bin (`node_modules/.bin/codex-sync`), run by Node. */
export function nodeEntry(bin: string): CliEntry {
  return { name: "node bin", command: "node", args: [bin] };
}

/** What a finished CLI run left. */
export interface CliResult {
  code: number;
  stdout: string;
  /** Stdout exactly as written (`stdout` is it decoded, a byte order mark dropped). */
  stdoutBytes: Uint8Array;
  stderr: string;
}

/** A CLI process still running. */
export interface RunningCli {
  /** Resolves with the first stdout line matching, or rejects when the process ends first. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  signal(signal: Deno.Signal): void;
  done: Promise<CliResult>;
}

/** Starts `codex-sync <args>` in `cwd` (with `env` added to the environment). */
export function startCli(
  args: string[],
  cwd: string,
  entry: CliEntry = DENO_ENTRY,
  env: Record<string, string> = {},
): RunningCli {
  const child = new Deno.Command(entry.command, {
    args: [...entry.args, ...args],
    cwd,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
    clearEnv: false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stdout = "";
  let stderr = "";
  let ended = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of [...waiters]) waiter();
  };
  const raw: Uint8Array[] = [];
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    into: (text: string) => void,
    keep?: Uint8Array[],
  ) => {
    const decoder = new TextDecoder();
    for await (const bytes of stream) {
      keep?.push(bytes);
      into(decoder.decode(bytes, { stream: true }));
      wake();
    }
  };
  const reading = Promise.all([
    pump(child.stdout, (text) => stdout += text, raw),
    pump(child.stderr, (text) => stderr += text),
  ]);
  const done = (async () => {
    const status = await child.status;
    await reading;
    ended = true;
    wake();
    const stdoutBytes = new Uint8Array(raw.reduce((n, piece) => n + piece.length, 0));
    raw.reduce((offset, piece) => (stdoutBytes.set(piece, offset), offset + piece.length), 0);
    return { code: status.code, stdout, stdoutBytes, stderr };
  })();
  return {
    waitForLine(match, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no matching line within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          const line = stdout.split("\n").find((candidate) => candidate && match(candidate));
          if (line !== undefined || ended) {
            waiters.delete(check);
            clearTimeout(timer);
            if (line !== undefined) resolve(line);
            else reject(new Error(`process ended first; stdout:\n${stdout}\nstderr:\n${stderr}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    signal: (signal) => child.kill(signal),
    done,
  };
}

/** Runs `codex-sync <args>` in `cwd` to completion. */
export function runCli(
  args: string[],
  cwd: string,
  entry: CliEntry = DENO_ENTRY,
  env: Record<string, string> = {},
): Promise<CliResult> {
  return startCli(args, cwd, entry, env).done;
}

/** The JSON events of a `--json` import. */
export function events(stdout: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line));
}

/** A fresh temp directory (removed by the caller). */
export function tempDir(prefix: string): string {
  return Deno.makeTempDirSync({ prefix: `codex-sync-cli-${prefix}-` });
}

/** Copies a directory tree (the template store) to `to`. */
export async function copyDir(from: string, to: string): Promise<void> {
  const { code, stderr } = await new Deno.Command("cp", { args: ["-a", from, to], stderr: "piped" })
    .output();
  if (code !== 0) throw new Error(new TextDecoder().decode(stderr));
}

/** One stored row. */
export interface StoredRow {
  line_no: number;
  conversation_id: string;
  record_type: string | null;
  line: string | null;
  line_bytes: Uint8Array | null;
  valid: boolean;
  /** `record` as JSON text (NULL for invalid lines). */
  record: string | null;
}

/** The current rows of each imported conversation, read straight from the PGlite files. */
export async function readStore(dataDir: string): Promise<{
  imports: Map<string, { sourceId: string; path: string; lineCount: number }>;
  rows: Map<string, StoredRow[]>;
  jobCount: number;
  sourceCount: number;
}> {
  const db = await createPGliteDriver({ dataDir: join(dataDir, "pgdata") });
  try {
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    const imports = new Map<string, { sourceId: string; path: string; lineCount: number }>();
    for (const row of await db.query(`SELECT * FROM codex_rollout_imports`)) {
      imports.set(String(row.conversation_id), {
        sourceId: String(row.source_id),
        path: String(row.path),
        lineCount: Number(row.line_count),
      });
    }
    const rows = new Map<string, StoredRow[]>();
    for (const conversationId of imports.keys()) {
      rows.set(
        conversationId,
        // Through the view: the current rows only, `record` parsed from `line`; `line` as
        // bytes, since PGlite drops a leading byte order mark from text it decodes.
        (await db.query<StoredRow & Record<string, unknown>>(
          `SELECT line_no, conversation_id, record_type, convert_to(line, 'UTF8') AS line_utf8,
              line_bytes, valid, record::text AS record
            FROM codex_rollout_lines WHERE conversation_id = $1 ORDER BY line_no`,
          [conversationId],
        )).map(({ line_utf8, ...row }) => ({
          ...row,
          line: line_utf8 === null ? null : decoder.decode(line_utf8 as Uint8Array),
        })),
      );
    }
    const [jobs] = await db.query(`SELECT count(*)::int AS n FROM codex_sync_jobs`);
    const [sources] = await db.query(`SELECT count(*)::int AS n FROM codex_sync_sources`);
    return { imports, rows, jobCount: Number(jobs.n), sourceCount: Number(sources.n) };
  } finally {
    await db.close();
  }
}

/** Rows of other sources than the current imports (must be none after a clean import). */
export async function rowsOfConversation(dataDir: string, conversationId: string): Promise<number> {
  const db = await createPGliteDriver({ dataDir: join(dataDir, "pgdata") });
  try {
    const [row] = await db.query(
      `SELECT count(*)::int AS n FROM codex_rollout_records WHERE conversation_id = $1`,
      [conversationId],
    );
    return Number(row.n);
  } finally {
    await db.close();
  }
}

/** Rebuilds a file's bytes from its rows (the inverse of the import). */
export function rebuild(rows: readonly StoredRow[], trailingNewline: boolean): Uint8Array {
  const encoder = new TextEncoder();
  const parts = rows.map((row) => row.line === null ? row.line_bytes! : encoder.encode(row.line));
  const size = parts.reduce((sum, part) => sum + part.length, 0) + parts.length -
    (trailingNewline || parts.length === 0 ? 0 : 1);
  const out = new Uint8Array(size);
  let offset = 0;
  parts.forEach((part, i) => {
    out.set(part, offset);
    offset += part.length;
    if (i < parts.length - 1 || trailingNewline) out[offset++] = 10;
  });
  return out;
}

/** A host output that keeps what is written to it. */
export interface CapturedOutput extends TextOutput {
  /** Everything written so far. */
  readonly text: string;
}

/** An output that captures what it is given: a terminal `columns` wide, or not a terminal. */
export function captureOutput(columns?: number): CapturedOutput {
  let text = "";
  return {
    isTTY: columns !== undefined,
    columns: () => columns,
    write: (chunk: string) => void (text += chunk),
    get text() {
      return text;
    },
  };
}
