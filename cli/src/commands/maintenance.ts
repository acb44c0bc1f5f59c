/**
 * `codex-sync gc` and `verify <conversationId>`.
 *
 * @module
 */

import { isTerminalJobState, SyncError } from "@zakstam/codex-sync-engine";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, scopeOf, STORE_OPTIONS } from "../context.ts";
import { CliError, EXIT } from "../errors.ts";
import { formatBytes } from "../format.ts";
import { checkStoredRows } from "../handler.ts";
import { withStore } from "./shared.ts";

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
never touched.`,
    positionals: [],
    options: [
      ...STORE_OPTIONS,
      {
        name: "limit",
        type: "integer",
        value: "<n>",
        description: "At most n sources per pass (default 1000)",
      },
    ],
  },
  run: (context: CommandContext, args: ParsedArgs) =>
    withStore(context, args, "gc", async (store) => {
      const limit = (args.options.limit as number | undefined) ?? 1000;
      if (limit < 1) throw new CliError("E_CLI_USAGE", "--limit must be at least 1");
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
      const result = { ...report, unlinkedSources: droppedSources, deletedRows: droppedRows };
      if (context.json) {
        context.host.stdout.write(JSON.stringify(result) + "\n");
      } else {
        context.host.stdout.write(
          `gc: ${report.expiredSources} source(s) expired, ${report.purgedSources} purged ` +
            `(${report.deletedChunks} chunk(s) deleted), ${droppedRows} row(s) of ` +
            `${droppedSources} unfinished import(s) deleted\n`,
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
Rebuilds the file from the conversation's current rows, re-chunks it like the upload
did, and compares line count, invalid lines, byte count, chunk count, the composite
digest and the file's SHA-256 with the manifest of the source that was imported last.
Exit code 0 when everything matches, 4 when something does not.`,
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
      const check = await checkStoredRows(store.tables, scope, current.sourceId, source.manifest);
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
            `, ${formatBytes(check.byteCount)} in ${check.chunkCount} chunk(s), ` +
            `digest ${check.digest} matches the manifest (job ${current.jobId}, file ${current.path})\n`,
        );
      }
      if (!check.ok) {
        throw new CliError(
          "E_CLI_VERIFY_FAILED",
          `conversation ${conversationId} does not match its manifest: ${
            check.problems.join("; ")
          }`,
        );
      }
      return EXIT.ok;
    }),
};
