/**
 * `codex-sync jobs`, `status [jobId]` and `cancel <jobId>`.
 *
 * @module
 */

import { type Job, JOB_STATES, type JobState, type SyncAdapter } from "@zakstam/codex-sync-engine";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, scopeOf, STORE_OPTIONS } from "../context.ts";
import { EXIT } from "../errors.ts";
import { formatBytes, formatTime, table } from "../format.ts";
import { describeJob, progressOf, withStore } from "./shared.ts";

async function collectJobs(
  adapter: SyncAdapter,
  scope: string,
  filter: { conversationId?: string; state?: JobState },
  limit: number,
): Promise<Job[]> {
  const jobs: Job[] = [];
  let cursor: string | undefined;
  do {
    const page = await adapter.listJobs({
      scope,
      ...filter,
      limit: Math.min(1000, limit - jobs.length),
      ...(cursor === undefined ? {} : { cursor }),
    });
    jobs.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined && jobs.length < limit);
  return jobs;
}

function jobRow(job: Job): string[] {
  return [
    job.jobId,
    job.state,
    progressOf(job),
    formatBytes(job.appliedBytes),
    formatTime(job.updatedAt),
    job.conversationId,
    job.error ? job.error.code : "",
  ];
}

/** The `jobs` command. */
export const jobsCommand: Command = {
  spec: {
    name: "jobs",
    summary: "List jobs, newest first",
    description: `
Lists the jobs of the scope, newest first: id, state, chunks applied, bytes applied,
last update, conversation and the error code of a failed or cancelled job.`,
    positionals: [],
    options: [
      ...STORE_OPTIONS,
      {
        name: "conversation",
        type: "string",
        value: "<id>",
        description: "Only this conversation's jobs",
      },
      {
        name: "state",
        type: "string",
        value: "<state>",
        choices: JOB_STATES,
        description: "Only jobs in this state",
      },
      { name: "limit", type: "integer", value: "<n>", description: "At most n jobs (default 50)" },
    ],
    examples: [
      "codex-sync jobs",
      "codex-sync jobs --conversation 0199a3c1-5e7b-7c2d-9f41-6a8b2e0d4c17",
    ],
  },
  run: (context: CommandContext, args: ParsedArgs) =>
    withStore(context, args, "jobs", async (store) => {
      const filter: { conversationId?: string; state?: JobState } = {};
      if (args.options.conversation !== undefined) {
        filter.conversationId = args.options.conversation as string;
      }
      if (args.options.state !== undefined) filter.state = args.options.state as JobState;
      const limit = (args.options.limit as number | undefined) ?? 50;
      const jobs = limit === 0
        ? []
        : await collectJobs(store.adapter, scopeOf(context, args), filter, limit);
      if (context.json) {
        context.host.stdout.write(JSON.stringify({ jobs }) + "\n");
      } else if (jobs.length === 0) {
        context.host.stdout.write("no jobs\n");
      } else {
        context.host.stdout.write(
          table(
            ["JOB", "STATE", "APPLIED", "BYTES", "UPDATED", "CONVERSATION", "ERROR"],
            jobs.map(jobRow),
          ),
        );
      }
      return EXIT.ok;
    }),
};

/** The `status` command. */
export const statusCommand: Command = {
  spec: {
    name: "status",
    summary: "Show one job, or a summary of the store",
    description: `
With a job id: the job's state, progress, lease, error, and its source's manifest.
Without: where the store is, how many conversations are imported, job counts by
state, and the jobs that are not finished.`,
    positionals: [{ name: "jobId", required: false }],
    options: [...STORE_OPTIONS],
    examples: ["codex-sync status", "codex-sync status 6c1f…"],
  },
  run: (context: CommandContext, args: ParsedArgs) =>
    withStore(context, args, "status", async (store) => {
      const scope = scopeOf(context, args);
      const { host } = context;
      const [jobId] = args.positionals;
      if (jobId !== undefined) {
        const job = await store.adapter.getJob({ scope, jobId });
        const source = await store.adapter.getSource({ scope, sourceId: job.sourceId });
        const current = await store.tables.getImport(scope, job.conversationId);
        if (context.json) {
          host.stdout.write(
            JSON.stringify({ job, source, currentImport: current ?? null }) + "\n",
          );
          return EXIT.ok;
        }
        let text = describeJob(job);
        if (source.manifest) {
          const data = source.manifest.data as { path?: string; lineCount?: number } | undefined;
          text += `manifest     ${source.manifest.chunkCount} chunks, ` +
            `${formatBytes(source.manifest.byteCount)}, digest ${source.manifest.digest}\n`;
          if (data?.path) text += `file         ${data.path} (${data.lineCount} lines)\n`;
        }
        if (current?.sourceId === job.sourceId) {
          text += `import       current rows of conversation ${job.conversationId}\n`;
        }
        host.stdout.write(text);
        return EXIT.ok;
      }
      const counts: Record<string, number> = {};
      for (const state of JOB_STATES) {
        counts[state] = (await collectJobs(store.adapter, scope, { state }, 100_000)).length;
      }
      const active = (await collectJobs(store.adapter, scope, {}, 100_000))
        .filter((job) => !["succeeded", "failed", "cancelled"].includes(job.state));
      const conversations = await store.tables.countImports(scope);
      const recent = await store.tables.listImports(scope, 5);
      if (context.json) {
        host.stdout.write(
          JSON.stringify({
            store: { kind: store.kind, location: store.location },
            scope,
            conversations,
            jobs: counts,
            active,
            recentImports: recent,
          }) + "\n",
        );
        return EXIT.ok;
      }
      let text = `store          ${store.kind} at ${store.location}\n` +
        `scope          ${store.kind === "server" ? "the token's (the server decides)" : scope}\n` +
        `conversations  ${conversations} imported\n` +
        `jobs           ${
          JOB_STATES.filter((state) => counts[state] > 0).map((state) =>
            `${counts[state]} ${state}`
          )
            .join(", ") || "none"
        }\n`;
      if (active.length > 0) {
        text += `\nunfinished jobs (run the same import again to resume them):\n` +
          table(
            ["JOB", "STATE", "APPLIED", "BYTES", "UPDATED", "CONVERSATION", "ERROR"],
            active.map(jobRow),
          );
      }
      if (recent.length > 0) {
        text += `\nrecent imports:\n` + table(
          ["CONVERSATION", "RECORDS", "BYTES", "IMPORTED", "FILE"],
          recent.map((row) => [
            row.conversationId,
            String(row.lineCount) + (row.damaged ? " (damaged: import it again)" : ""),
            formatBytes(row.byteCount),
            formatTime(row.importedAt),
            row.path,
          ]),
        );
      }
      host.stdout.write(text);
      return EXIT.ok;
    }),
};

/** The `cancel` command. */
export const cancelCommand: Command = {
  spec: {
    name: "cancel",
    summary: "Cancel a job that has not finished",
    description: `
Cancels a queued, running or waiting job: it applies no further chunk, and rows of
chunks it already applied never become the conversation's current import ("gc" removes
them). A finished job is left as it is (reported, exit code 0).`,
    positionals: [{ name: "jobId", required: true }],
    options: [
      ...STORE_OPTIONS,
      {
        name: "reason",
        type: "string",
        value: "<text>",
        description: "Recorded with the cancellation",
      },
    ],
    examples: ["codex-sync cancel 6c1f…"],
  },
  run: (context: CommandContext, args: ParsedArgs) =>
    withStore(context, args, "cancel", async (store) => {
      const scope = scopeOf(context, args);
      const jobId = args.positionals[0];
      const before = await store.adapter.getJob({ scope, jobId });
      const reason = args.options.reason as string | undefined;
      const job = await store.adapter.cancelJob({
        scope,
        jobId,
        ...(reason === undefined ? {} : { reason }),
      });
      const changed = before.state !== job.state;
      if (context.json) {
        context.host.stdout.write(JSON.stringify({ cancelled: changed, job }) + "\n");
      } else {
        context.host.stdout.write(
          changed
            ? `cancelled job ${job.jobId} (was ${before.state}, ${
              progressOf(before)
            } chunks applied)\n`
            : `job ${job.jobId} is already ${job.state}; nothing to cancel\n`,
        );
      }
      return EXIT.ok;
    }),
};
