/**
 * `codex-sync gc` and `verify <conversationId>`.
 *
 * @module
 */

import {
  type ChunkInfo,
  isTerminalJobState,
  type SyncAdapter,
  SyncError,
} from "@zakstam/codex-sync-engine";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, scopeOf, STORE_OPTIONS } from "../context.ts";
import { CliError, EXIT } from "../errors.ts";
import { formatBytes } from "../format.ts";
import { checkStoredRows } from "../handler.ts";
import { withStore } from "./shared.ts";

/** Every chunk of a source (length and digest), in index order. */
async function listChunkInfos(
  adapter: SyncAdapter,
  scope: string,
  sourceId: string,
): Promise<ChunkInfo[]> {
  const infos: ChunkInfo[] = [];
  let cursor: string | undefined;
  do {
    const page = await adapter.listChunks({
      scope,
      sourceId,
      limit: 1000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    infos.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return infos;
}

/** The `gc` command. */
export const gcCommand: Command = {
  spec: {
    name: "gc",
    summary: "Expire abandoned uploads, purge old chunks, drop rows of unfinished imports",
    description: `
Runs the engine's garbage collection (collecting sources past their TTL become expired
and lose their chunks; chunks of jobs that ended longer ago than the retention period
are deleted) and removes record rows that belong to no current import and whose job
ended without succeeding (a failed or cancelled import). Rows of a job still running are
never touched. Then the database gives the space back: VACUUM FULL and a CHECKPOINT on
the embedded store (its files and WAL shrink), a plain VACUUM on a PostgreSQL server
(space reused, files kept; --full rewrites the tables, locking them meanwhile).`,
    positionals: [],
    options: [
      ...STORE_OPTIONS,
      {
        name: "limit",
        type: "integer",
        value: "<n>",
        description: "At most n sources per pass (default 1000)",
      },
      {
        name: "full",
        type: "boolean",
        description: "VACUUM FULL on a PostgreSQL server too (rewrites the tables, locks them)",
      },
    ],
  },
  run: (context: CommandContext, args: ParsedArgs) =>
    withStore(context, args, "gc", async (store) => {
      const limit = (args.options.limit as number | undefined) ?? 1000;
      if (limit < 1) throw new CliError("E_CLI_USAGE", "--limit must be at least 1");
      if (store.kind === "server") {
        throw new CliError(
          "E_CLI_USAGE",
          '"gc" works across every scope and deletes rows directly: run it where the store is ' +
            "(on the server's machine, without --server)",
        );
      }
      const report = await store.adapter.gc({ limit });
      let droppedSources = 0;
      let droppedRows = 0;
      for (const { scope, sourceId } of await store.tables.listUnlinkedSources(limit)) {
        let removable = false;
        try {
          const source = await store.adapter.getSource({ scope, sourceId });
          if (source.state === "failed" || source.state === "expired") removable = true;
          else if (source.jobId) {
            const job = await store.adapter.getJob({ scope, jobId: source.jobId });
            // A succeeded job whose rows are not current was replaced by a newer import.
            removable = isTerminalJobState(job.state);
          }
        } catch (error) {
          if (!(error instanceof SyncError && error.code === "E_SYNC_SOURCE_NOT_FOUND")) {
            throw error;
          }
          removable = true;
        }
        if (!removable) continue;
        droppedRows += await store.transaction((tables) => tables.deleteSource(scope, sourceId));
        droppedSources++;
      }
      await store.reclaimSpace?.({ full: args.options.full === true });
      const result = {
        ...report,
        unlinkedSources: droppedSources,
        deletedRows: droppedRows,
        vacuumed: store.reclaimSpace !== undefined,
      };
      if (context.json) {
        context.host.stdout.write(JSON.stringify(result) + "\n");
      } else {
        context.host.stdout.write(
          `gc: ${report.expiredSources} source(s) expired, ${report.purgedSources} purged ` +
            `(${report.deletedChunks} chunk(s) deleted), ${droppedRows} row(s) of ` +
            `${droppedSources} unfinished import(s) deleted` +
            (store.reclaimSpace ? "; space reclaimed (VACUUM)" : "") + "\n",
        );
      }
      return EXIT.ok;
    }),
};

/** The `verify` command. */
export const verifyCommand: Command = {
  spec: {
    name: "verify",
    summary: "Re-check a conversation's stored rows against its last manifest",
    description: `
Rebuilds the file from the conversation's current rows and compares line count, invalid
lines, byte count and the SHA-256 with the manifest of the source imported last; while
the store still holds the source's chunks, the rebuilt bytes are also compared chunk by
chunk (and with the composite digest). Exit code 0 when everything matches, 4 when
something does not: the import is then marked damaged, and importing its file again
repairs it.`,
    positionals: [{ name: "conversationId", required: true }],
    options: [...STORE_OPTIONS],
    examples: ["codex-sync verify 0199a3c1-5e7b-7c2d-9f41-6a8b2e0d4c17"],
  },
  run: (context: CommandContext, args: ParsedArgs) =>
    withStore(context, args, "verify", async (store) => {
      const scope = scopeOf(context, args);
      const conversationId = args.positionals[0];
      const current = await store.tables.getImport(scope, conversationId);
      if (!current) {
        throw new CliError(
          "E_CLI_NOT_FOUND",
          `conversation ${conversationId} has no completed import in scope ${scope}`,
        );
      }
      const source = await store.adapter.getSource({ scope, sourceId: current.sourceId });
      if (!source.manifest) {
        throw new SyncError("E_SYNC_INTERNAL", `source ${source.sourceId} has no manifest`);
      }
      // The chunks' boundaries and digests, while the store still holds them: the rows are
      // compared chunk by chunk (an extension's chunks are not all of one size).
      const chunks = source.chunksPurgedAt === undefined
        ? await listChunkInfos(store.adapter, scope, current.sourceId)
        : [];
      const check = await checkStoredRows(store.tables, scope, current.rowSet, source.manifest, {
        ...(chunks.length === source.manifest.chunkCount ? { chunks } : {}),
        uniformChunks: source.base === undefined,
      });
      // A mismatch marks the import damaged: the next import of its file repairs it.
      if (check.ok !== !current.damaged) {
        await store.tables.markDamaged(scope, conversationId, !check.ok);
      }
      const { host } = context;
      if (context.json) {
        host.stdout.write(
          JSON.stringify({
            conversationId,
            sourceId: current.sourceId,
            jobId: current.jobId,
            path: current.path,
            manifest: source.manifest,
            ...check,
          }) + "\n",
        );
      } else if (check.ok) {
        host.stdout.write(
          `verified conversation ${conversationId}: ${check.lineCount} records` +
            (check.invalidCount > 0 ? ` (${check.invalidCount} invalid recorded)` : "") +
            `, ${formatBytes(check.byteCount)}` +
            (check.digest === undefined
              ? `, SHA-256 ${check.fileSha256}`
              : ` in ${check.chunkCount} chunk(s), digest ${check.digest}`) +
            ` matches the manifest (job ${current.jobId}, file ${current.path})\n`,
        );
      }
      if (!check.ok) {
        throw new CliError(
          "E_CLI_VERIFY_FAILED",
          `conversation ${conversationId} does not match its manifest: ${
            check.problems.join("; ")
          } (importing its file again repairs it)`,
        );
      }
      return EXIT.ok;
    }),
};
