/**
 * Conformance targets over HTTP: any backend target's adapter behind
 * `createSyncHttpHandler`, and the suite talking to it through `createHttpSyncAdapter`,
 * either in-process (the client's `fetch` calls the handler) or over loopback TCP (a real
 * server on 127.0.0.1, one per case: `Deno.serve` in deno_loopback.ts, `node:http` in
 * node_loopback.ts). The harness hooks (drain, restart, workers, oracle) go to the
 * backend directly; `restart` swaps the backend under the same server. Runtime-agnostic:
 * the Node run (scripts/test_node_http.ts) compiles it against the built packages.
 *
 * Credentials: the token of scope `s` is `scope.<encodeURIComponent(s)>`, so the suite's
 * cross-scope cases act as two tenants.
 */

import type {
  ConformanceFactory,
  ConformanceHarness,
  SuiteTarget,
} from "@zakstam/codex-sync-engine/conformance";
import type { SyncAdapter } from "@zakstam/codex-sync-engine";
import {
  createHttpSyncAdapter,
  createSyncHttpHandler,
  type FetchLike,
  type HttpSyncAdapter,
  type SyncHttpHandler,
  type SyncHttpHandlerOptions,
} from "@zakstam/codex-sync-engine-http";

const TOKEN_PREFIX = "scope.";

/** The test token of `scope`. */
export function tokenForScope(scope: string): string {
  return TOKEN_PREFIX + encodeURIComponent(scope);
}

/** Authenticates test tokens: `scope.<encoded scope>` acts for that scope. */
export function scopeFromToken(request: Request): string | undefined {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer (\S+)$/.exec(header);
  if (!match || !match[1].startsWith(TOKEN_PREFIX)) return undefined;
  try {
    return decodeURIComponent(match[1].slice(TOKEN_PREFIX.length));
  } catch {
    return undefined;
  }
}

/** A running server: its base URL, the `fetch` that reaches it, and how to stop it. */
export interface RunningServer {
  url: string;
  fetch: FetchLike;
  close(): Promise<void>;
}

/** Starts serving `handler` somewhere its client can reach. */
export type Serve = (handler: SyncHttpHandler) => RunningServer | Promise<RunningServer>;

/** Serves `handler` in-process: the client's `fetch` calls it (no socket). */
export function serveInProcess(handler: SyncHttpHandler): RunningServer {
  return {
    url: "http://sync.test",
    fetch: (request) => handler(request),
    close: () => Promise.resolve(),
  };
}

/** An adapter that forwards every access to `current()` (the backend may be swapped). */
export function forwarding(current: () => SyncAdapter): SyncAdapter {
  return new Proxy({} as SyncAdapter, {
    get(_, key) {
      const target = current() as unknown as Record<PropertyKey, unknown>;
      const value = target[key];
      return typeof value === "function" ? value.bind(target) : value;
    },
    has(_, key) {
      return key in current();
    },
  });
}

/** Options of {@link httpTarget}. */
export interface HttpTargetOptions {
  /** How the server is reached (in-process, or a loopback server of the runtime). */
  serve: Serve;
  /** More handler options (the adapter and authenticate are the harness's). */
  server?: Partial<SyncHttpHandlerOptions>;
}

/** `backend` behind the HTTP server, reached through the HTTP client. */
export function httpTarget(backend: SuiteTarget, options: HttpTargetOptions): SuiteTarget {
  const factory: ConformanceFactory = async (input) => {
    const inner = await backend.factory(input);
    let current = inner.adapter;
    const handler = createSyncHttpHandler({
      adapter: forwarding(() => current),
      authenticate: scopeFromToken,
      allowGc: () => true,
      exposeInternalErrors: true,
      ...options.server,
    });
    let server: RunningServer;
    try {
      server = await options.serve(handler);
    } catch (error) {
      await inner.close();
      throw error;
    }
    let client: HttpSyncAdapter;
    try {
      client = await createHttpSyncAdapter({
        url: server.url,
        token: tokenForScope,
        fetch: server.fetch,
        clock: input.clock,
        gcScope: "gc",
      });
    } catch (error) {
      await server.close();
      await inner.close();
      throw error;
    }
    const harness: ConformanceHarness = {
      adapter: client,
      drain: () => inner.drain(),
      oracle: inner.oracle,
      close: async () => {
        client.close();
        try {
          await server.close();
        } finally {
          await inner.close();
        }
      },
    };
    if (inner.newWorker) harness.newWorker = inner.newWorker.bind(inner);
    if (inner.effects) harness.effects = inner.effects;
    if (inner.peer) harness.peer = inner.peer.bind(inner);
    if (inner.scaleChunks !== undefined) harness.scaleChunks = inner.scaleChunks;
    if (inner.restart) {
      const restart = inner.restart.bind(inner);
      harness.restart = async () => {
        current = await restart();
        return client;
      };
    }
    return harness;
  };
  return { ...backend, factory };
}
