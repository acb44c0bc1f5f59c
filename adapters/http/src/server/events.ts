/**
 * `GET /v1/jobs/:jobId/events`: a job's progress as server-sent events, for dashboards.
 * Each change of the job (woken by the adapter's change notification where there is one,
 * else by a poll) is sent as one `job` event; the stream ends after the terminal snapshot
 * (`end` event), or after its maximum duration (the client reconnects), or when the
 * client goes away (the runtime cancels the response stream).
 *
 * @module
 */

import type { Job, SyncAdapter } from "@zakstam/codex-sync-engine/contracts";
import { isTerminalJobState } from "@zakstam/codex-sync-engine/contracts";
import { toSyncError } from "@zakstam/codex-sync-engine/errors";

/** Change notification of one job: calls `listener` after each change; returns an unsubscribe. */
export type JobWatcher = (scope: string, jobId: string, listener: () => void) => () => void;

/** What one event stream needs. */
export interface JobEventStreamOptions {
  adapter: SyncAdapter;
  scope: string;
  /** The snapshot read before the stream started (sent first). */
  first: Job;
  watch: JobWatcher | undefined;
  maxStreamMs: number;
  heartbeatMs: number;
  pollMs: number;
}

const encoder = new TextEncoder();

/** One SSE event: `event:` and `data:` lines and a blank line (data is one JSON line). */
function frame(event: string, data: unknown, id?: string): Uint8Array {
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return encoder.encode(`event: ${event}\n${idLine}data: ${JSON.stringify(data)}\n\n`);
}

/** Identifies a snapshot: a new one is sent when this changes. */
function versionOf(job: Job): string {
  return `${job.updatedAt}.${job.state}.${job.cursor}.${job.attempt}.${job.leaseToken}`;
}

/** The `text/event-stream` response for the job of `options.first`. */
export function jobEventStream(options: JobEventStreamOptions): Response {
  const { adapter, scope, first, watch } = options;
  const jobId = first.jobId;
  let closed = false;
  let cleanup = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      let lastVersion = "";
      let checking = false;
      let again = false;
      const timers: unknown[] = [];

      const close = () => {
        if (closed) return;
        closed = true;
        cleanup();
        try {
          controller.close();
        } catch { /* already closed or cancelled */ }
      };
      const send = (bytes: Uint8Array) => {
        if (closed) return;
        try {
          controller.enqueue(bytes);
        } catch {
          close();
        }
      };
      const publish = (job: Job) => {
        const version = versionOf(job);
        if (version !== lastVersion) {
          lastVersion = version;
          send(frame("job", job, version));
        }
        if (isTerminalJobState(job.state)) {
          send(frame("end", { jobId, state: job.state }));
          close();
        }
      };
      const check = async () => {
        if (closed) return;
        if (checking) {
          again = true;
          return;
        }
        checking = true;
        try {
          do {
            again = false;
            const job = await adapter.getJob({ scope, jobId });
            publish(job);
          } while (again && !closed);
        } catch (error) {
          send(frame("error", { error: toSyncError(error).toJSON() }));
          close();
        } finally {
          checking = false;
        }
      };

      const unsubscribe = watch ? watch(scope, jobId, () => void check()) : () => {};
      timers.push(setInterval(() => void check(), options.pollMs));
      timers.push(setInterval(() => send(encoder.encode(": keep-alive\n\n")), options.heartbeatMs));
      const deadline = setTimeout(() => {
        send(frame("timeout", { jobId, reconnect: true }));
        close();
      }, options.maxStreamMs);
      let cleaned = false;
      cleanup = () => {
        if (cleaned) return;
        cleaned = true;
        unsubscribe();
        for (const timer of timers) clearInterval(timer as ReturnType<typeof setInterval>);
        clearTimeout(deadline);
      };

      send(encoder.encode("retry: 1000\n\n"));
      publish(first);
      // A change between the first read and the subscription is caught here.
      if (!closed) void check();
    },
    cancel() {
      closed = true;
      cleanup();
    },
  });
  return new Response(stream, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}
