/** The loopback server of the Deno tests: `Deno.serve` on 127.0.0.1, a free port. */

import type { SyncHttpHandler } from "@zakstam/codex-sync-engine-http";
import type { RunningServer } from "./harness.ts";

/** Serves `handler` with `Deno.serve` on 127.0.0.1; the runtime's `fetch` reaches it. */
export function serveOnDenoLoopback(handler: SyncHttpHandler): RunningServer {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    fetch: (request) => fetch(request),
    close: () => server.shutdown(),
  };
}
