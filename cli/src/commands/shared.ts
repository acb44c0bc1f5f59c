/**
 * Helpers of the commands that read or change an existing store.
 *
 * @module
 */

import type { Job } from "@zakstam/codex-sync-engine";
import type { ParsedArgs } from "../args.ts";
import type { CommandContext } from "../context.ts";
import { usage } from "../errors.ts";
import { formatBytes, formatTime } from "../format.ts";
import { type OpenStore, openStore, storeOptions } from "../store.ts";

/** Opens the existing store (never creates one), runs `fn`, closes it. */
export async function withStore<T>(
  context: CommandContext,
  args: ParsedArgs,
  command: string,
  fn: (store: OpenStore) => Promise<T>,
): Promise<T> {
  const target = storeOptions(context.host, args.options);
  if (target.kind === "memory") {
    throw usage(
      `--store memory keeps nothing between runs; "${command}" needs the embedded store or --database-url`,
    );
  }
  const store = await openStore(context.host, target, { create: false });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** A job as printed by `status <jobId>`. */
export function describeJob(job: Job): string {
  const lines = [
    `job          ${job.jobId}`,
    `state        ${job.state}`,
    `conversation ${job.conversationId}`,
    `source       ${job.sourceId}`,
    `progress     ${job.cursor}/${job.totalChunks} chunks applied, ${
      formatBytes(job.appliedBytes)
    }`,
    `attempt      ${job.attempt}`,
    `created      ${formatTime(job.createdAt)}`,
    `updated      ${formatTime(job.updatedAt)}`,
  ];
  if (job.startedAt !== undefined) lines.push(`started      ${formatTime(job.startedAt)}`);
  if (job.completedAt !== undefined) lines.push(`completed    ${formatTime(job.completedAt)}`);
  if (job.state === "retry_wait" || job.state === "queued") {
    lines.push(`runs at      ${formatTime(job.runAt)}`);
  }
  if (job.lease && job.state !== "succeeded") {
    lines.push(`lease        ${job.lease.owner} until ${formatTime(job.lease.expiresAt)}`);
  }
  if (job.error) lines.push(`error        ${job.error.code}: ${job.error.message}`);
  return lines.join("\n") + "\n";
}

/** A job's progress, `3/5`. */
export function progressOf(job: Job): string {
  return `${job.cursor}/${job.totalChunks}`;
}
