/**
 * @zakstam/codex-sync-engine-http — the sync engine's adapter contract over HTTP: a
 * Web-standard server handler wrapping any adapter, with the scope taken from
 * authentication, and a client adapter over `fetch`, so `syncConversation` works
 * unchanged across the network.
 *
 * ```ts
 * // server (Deno; Bun.serve and Node's fetch-style servers take the same handler)
 * import { createBearerAuthenticator, createSyncHttpHandler } from "@zakstam/codex-sync-engine-http";
 * const handler = createSyncHttpHandler({
 *   adapter, // any SyncAdapter, e.g. createPostgresAdapter({...})
 *   authenticate: createBearerAuthenticator([{ token: "s3cret", scope: "user-42" }]),
 * });
 * Deno.serve({ hostname: "127.0.0.1", port: 8787 }, handler);
 *
 * // client
 * import { syncConversation } from "@zakstam/codex-sync-engine";
 * import { createHttpSyncAdapter } from "@zakstam/codex-sync-engine-http";
 * const remote = await createHttpSyncAdapter({ url: "http://127.0.0.1:8787", token: "s3cret" });
 * await syncConversation(remote, { scope: "user-42", conversationId: "c1", payload: records });
 * ```
 *
 * @module
 */

export * from "./src/server/mod.ts";
export * from "./src/client/mod.ts";
export * from "./src/protocol.ts";
