/**
 * Live jobs for the dashboard: a page of a scope's jobs as server-sent events, re-read
 * whenever the store announces a job write. The announcement is the Postgres adapter's
 * own change notification (`onJobWrite`: the NOTIFY every job-writing transaction sends,
 * which also wakes the adapter's waiters and the HTTP transport's event streams), so a
 * stream re-reads once per burst of writes, not on a timer; a slow safety-net re-read
 * covers a notice lost while the listening connection was down.
 *
 * @module
 */

import type { Job, JobState, SyncAdapter } from "@zakstam/codex-sync-engine";
import { isTerminalJobState } from "@zakstam/codex-sync-engine";

/** Something that announces job writes: subscribe returns an unsubscribe. */
export interface JobChanges {
  subscribe(listener: () => void): () => void;
  /** Drops every subscription. */
  close(): Promise<void>;
}

/** What announces job writes (the Postgres adapter's `onJobWrite`). */
export interface JobWriteSource {
  onJobWrite(listener: () => void): () => void;
}

/**
 * The adapter's own job notifications as {@link JobChanges}: no connection of its own, and
 * a re-established listening connection ("look again") reaches subscribers like a write.
 */
export function jobChangesOf(source: JobWriteSource): JobChanges {
  const subscriptions = new Set<() => void>();
  return {
    subscribe(listener) {
      const unsubscribe = source.onJobWrite(() => listener());
      const drop = () => {
        if (subscriptions.delete(drop)) unsubscribe();
      };
      subscriptions.add(drop);
      return drop;
    },
    close() {
      for (const drop of [...subscriptions]) drop();
      return Promise.resolve();
    },
  };
}

/** A job as the dashboard shows it. */
export interface JobRow {
  jobId: string;
  conversationId: string;
  state: JobState;
  cursor: number;
  totalChunks: number;
  appliedBytes: number;
  createdAt: number;
  updatedAt: number;
  cancellable: boolean;
  error?: { code: string; message: string };
}

/** The shown fields of `job`. */
export function jobRow(job: Job): JobRow {
  return {
    jobId: job.jobId,
    conversationId: job.conversationId,
    state: job.state,
    cursor: job.cursor,
    totalChunks: job.totalChunks,
    appliedBytes: job.appliedBytes,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    cancellable: !isTerminalJobState(job.state),
    ...(job.error ? { error: { code: job.error.code, message: job.error.message } } : {}),
  };
}

/** Which page of jobs. */
export interface JobQuery {
  scope: string;
  state?: JobState;
  limit: number;
  cursor?: string;
}

/** A page of jobs, newest first. */
export async function readJobs(
  adapter: SyncAdapter,
  query: JobQuery,
): Promise<{ rows: JobRow[]; next?: string }> {
  const page = await adapter.listJobs({
    scope: query.scope,
    limit: query.limit,
    ...(query.state ? { state: query.state } : {}),
    ...(query.cursor ? { cursor: query.cursor } : {}),
  });
  return {
    rows: page.items.map(jobRow),
    ...(page.nextCursor ? { next: page.nextCursor } : {}),
  };
}

/** Timing of a stream. */
export interface JobStreamTiming {
  /** Safety-net re-read, in ms. */
  safetyPollMs: number;
  /** Comment lines keeping an idle stream open, in ms. */
  heartbeatMs: number;
  /** Longest a stream stays open, in ms (the browser reconnects). */
  maxStreamMs: number;
}

/** Default {@link JobStreamTiming}. */
export const DEFAULT_STREAM_TIMING: JobStreamTiming = {
  safetyPollMs: 10_000,
  heartbeatMs: 15_000,
  maxStreamMs: 5 * 60_000,
};

const encoder = new TextEncoder();

/**
 * `text/event-stream` of one page of jobs: a `jobs` event first and after every change of
 * the page, `{rows: [{id, html}]}` with each row as `render` shows it (the page's own
 * markup); nothing about any other scope is ever read. Ends when `shutdown` aborts.
 */
export function jobStream(
  adapter: SyncAdapter,
  changes: JobChanges,
  query: JobQuery,
  timing: JobStreamTiming,
  render: (row: JobRow) => string,
  shutdown?: AbortSignal,
): Response {
  let stop = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      let closed = false;
      let reading = false;
      let again = false;
      let last = "";
      const send = (text: string) => {
        if (closed) return;
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          stop();
        }
      };
      const read = async () => {
        if (closed) return;
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        try {
          do {
            again = false;
            const { rows } = await readJobs(adapter, query);
            const data = JSON.stringify({
              rows: rows.map((row) => ({ id: row.jobId, html: render(row) })),
            });
            if (data !== last) {
              last = data;
              send(`event: jobs\ndata: ${data}\n\n`);
            }
          } while (again && !closed);
        } catch {
          send(`event: failed\ndata: {}\n\n`);
          stop();
        } finally {
          reading = false;
        }
      };
      const unsubscribe = changes.subscribe(() => void read());
      // The server is stopping: end the stream, or it would hold the shutdown open.
      const onClosed = () => stop();
      shutdown?.addEventListener("abort", onClosed);
      const poll = setInterval(() => void read(), timing.safetyPollMs);
      const heartbeat = setInterval(() => send(": keep-alive\n\n"), timing.heartbeatMs);
      const deadline = setTimeout(() => stop(), timing.maxStreamMs);
      stop = () => {
        if (closed) return;
        closed = true;
        unsubscribe();
        shutdown?.removeEventListener("abort", onClosed);
        clearInterval(poll);
        clearInterval(heartbeat);
        clearTimeout(deadline);
        try {
          controller.close();
        } catch { /* already closed or cancelled */ }
      };
      send("retry: 1000\n\n");
      void read();
    },
    cancel() {
      stop();
    },
  });
  return new Response(stream, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}
