/**
 * Builds the HTTP transport's npm package into `adapters/http/npm/`, after the core's
 * (`npm/`, built first by `scripts/build_npm.ts`, which calls this), with the shared
 * workspace-member build (`scripts/_build_member.ts`). Its smoke test installs both
 * tarballs into a scratch project and, under Node, syncs a conversation through the
 * client adapter into the handler twice: in-process (the client's fetch calls the
 * handler), then over a loopback socket (a node:http server bridged to the handler).
 *
 * @module
 */

import { join } from "node:path";
import { NPM_DIR, ROOT, run, runMain } from "../../../scripts/_build_common.ts";
import { buildMemberPackage } from "../../../scripts/_build_member.ts";

const PACKAGE_DIR = join(ROOT, "adapters", "http");
/** Output directory of the package's npm build. */
export const HTTP_NPM_DIR: string = join(PACKAGE_DIR, "npm");
const DESCRIPTION = "HTTP transport of @zakstam/codex-sync-engine: a Web-standard server " +
  "handler over any adapter (scope from authentication) and a SyncAdapter client over fetch.";

const SMOKE_SCRIPT = `
import { createServer } from "node:http";
import { syncConversation } from "@zakstam/codex-sync-engine";
import { createMemoryAdapter } from "@zakstam/codex-sync-engine/memory";
import {
  createBearerAuthenticator,
  createHttpSyncAdapter,
  createSyncHttpHandler,
} from "@zakstam/codex-sync-engine-http";

let applied = 0;
const adapter = createMemoryAdapter({ handler: { apply() { applied++; } } });
const handler = createSyncHttpHandler({
  adapter,
  authenticate: createBearerAuthenticator([{ token: "t0ken", scope: "smoke" }]),
});
const records = Array.from({ length: 300 }, (_, i) => ({ i, text: "héllo ✓ " + i }));

async function sync(client, conversationId) {
  const { job } = await syncConversation(client, {
    scope: "smoke", conversationId, payload: records, chunkSize: 2048,
  });
  if (job.state !== "succeeded") throw new Error("job " + job.state);
  return job;
}

// 1. In-process: the client's fetch is the handler.
const inProcess = await createHttpSyncAdapter({
  url: "http://smoke.test", token: "t0ken", fetch: (request) => handler(request),
});
const first = await sync(inProcess, "in-process");

// 2. A loopback socket: node:http bridged to the Web handler.
const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(chunks);
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers.set(key, value);
  }
  const response = await handler(new Request("http://127.0.0.1" + req.url, {
    method: req.method, headers, body,
  }));
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const overSocket = await createHttpSyncAdapter({
  url: "http://127.0.0.1:" + server.address().port, token: "t0ken",
});
const second = await sync(overSocket, "socket");
const denied = await createHttpSyncAdapter({
  url: "http://127.0.0.1:" + server.address().port, token: "wrong",
}).then((client) => client.listJobs({ scope: "smoke" })).catch((error) => error);
server.close();
await adapter.close();
if (denied.code !== "E_SYNC_INVALID_ARGUMENT") throw new Error("a wrong token was not refused");
if (applied !== first.totalChunks + second.totalChunks) throw new Error("applied " + applied);
console.log("ok   synced " + first.totalChunks + " + " + second.totalChunks +
  " chunks over HTTP (in-process and a loopback socket) under Node " + process.version);
`;

/** Builds (and, with `smoke`, smoke-tests) the package's npm build. */
export async function buildHttpPackage(smoke: boolean): Promise<void> {
  await buildMemberPackage({
    dir: PACKAGE_DIR,
    description: DESCRIPTION,
    workspaceDeps: [NPM_DIR],
    async smoke({ appDir }) {
      await Deno.writeTextFile(join(appDir, "smoke.mjs"), SMOKE_SCRIPT);
      await run("node", ["smoke.mjs"], { cwd: appDir });
    },
  }, smoke);
}

if (import.meta.main) {
  await runMain("build:npm (http)", () => buildHttpPackage(!Deno.args.includes("--no-smoke")));
}
