/**
 * A memory-backed sync server for the protocol tests: two tenants with bearer tokens,
 * a handler that records every applied chunk, and raw-request helpers.
 */

import { createMemoryAdapter, type MemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import type { SyncHandler } from "@zakstam/codex-sync-engine";
import {
  createBearerAuthenticator,
  createHttpSyncAdapter,
  createSyncHttpHandler,
  type HttpSyncAdapter,
  type SyncHttpHandlerOptions,
} from "../../mod.ts";
import { type RunningServer, serveInProcess } from "./harness.ts";
import { serveOnDenoLoopback } from "./deno_loopback.ts";

/** How the client reaches the server: its `fetch` calls the handler, or Deno.serve. */
export type HttpTransport = "in-process" | "loopback";

/** Tenant A's token and scope. */
export const TOKEN_A = "token-for-tenant-a";
export const SCOPE_A = "tenant-a";
/** Tenant B's token and scope. */
export const TOKEN_B = "token-for-tenant-b";
export const SCOPE_B = "tenant-b";

/** One applied chunk, as the host handler saw it. */
export interface Applied {
  scope: string;
  sourceId: string;
  index: number;
  bytes: number;
}

/** A server over a memory adapter, and ways to talk to it. */
export interface TestServer extends RunningServer {
  adapter: MemoryAdapter;
  applied: Applied[];
  /** A raw request with `token` (none when undefined). */
  request(path: string, init?: RequestInit, token?: string): Promise<Response>;
  /** An HTTP client adapter with `token`. */
  client(
    token?: string,
    options?: { fetch?: RunningServer["fetch"]; eventIdleTimeoutMs?: number },
  ): Promise<HttpSyncAdapter>;
}

/** Options of {@link startServer}. */
export interface StartOptions {
  transport?: HttpTransport;
  server?: Partial<SyncHttpHandlerOptions>;
  handler?: Partial<SyncHandler>;
  policy?: Parameters<typeof createMemoryAdapter>[0]["policy"];
}

/** Starts a server over a fresh memory adapter (auto mode, system clock). */
export function startServer(options: StartOptions = {}): TestServer {
  const applied: Applied[] = [];
  const adapter = createMemoryAdapter({
    policy: options.policy,
    handler: {
      async apply(chunk, ctx) {
        applied.push({
          scope: ctx.job.scope,
          sourceId: ctx.job.sourceId,
          index: chunk.index,
          bytes: chunk.bytes.length,
        });
        await options.handler?.apply?.(chunk, ctx);
      },
      verify: options.handler?.verify,
    },
  });
  const handler = createSyncHttpHandler({
    adapter,
    authenticate: createBearerAuthenticator([
      { token: TOKEN_A, scope: SCOPE_A },
      { token: TOKEN_B, scope: SCOPE_B },
    ]),
    ...options.server,
  });
  const serve = (options.transport ?? "loopback") === "loopback"
    ? serveOnDenoLoopback
    : serveInProcess;
  const running = serve(handler);
  return {
    ...running,
    adapter,
    applied,
    request(path, init = {}, token) {
      const headers = new Headers(init.headers);
      if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
      return running.fetch(new Request(running.url + path, { ...init, headers }));
    },
    client(token = TOKEN_A, clientOptions = {}) {
      return createHttpSyncAdapter({
        url: running.url,
        token,
        fetch: clientOptions.fetch ?? running.fetch,
        eventIdleTimeoutMs: clientOptions.eventIdleTimeoutMs,
      });
    },
    async close() {
      await adapter.close();
      await running.close();
    },
  };
}

const encoder = new TextEncoder();

/** UTF-8 bytes. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

/** JSON Lines records of about `bytes` bytes in all. */
export function records(count: number, size = 100): Array<Record<string, unknown>> {
  return Array.from({ length: count }, (_, i) => ({ i, text: "é".repeat(size / 2) }));
}

/** Response JSON. */
export async function json<T = Record<string, unknown>>(response: Response): Promise<T> {
  return await response.json() as T;
}
