/**
 * Builds the adapter's npm package into `adapters/postgres/npm/`, after the core's
 * (`npm/`, built first by `scripts/build_npm.ts`, which calls this), with the shared
 * workspace-member build (`scripts/_build_member.ts`). Its smoke test installs both
 * tarballs into a scratch project and syncs a conversation on an in-memory PGlite under
 * Node.
 *
 * @module
 */

import { join } from "node:path";
import { NPM_DIR, ROOT, run, runMain } from "../../../scripts/_build_common.ts";
import { buildMemberPackage } from "../../../scripts/_build_member.ts";

const PACKAGE_DIR = join(ROOT, "adapters", "postgres");
/** Output directory of the adapter's npm package. */
export const POSTGRES_NPM_DIR: string = join(PACKAGE_DIR, "npm");
const DESCRIPTION = "PostgreSQL adapter of @zakstam/codex-sync-engine: durable, " +
  "multi-worker, exactly-once sync on PGlite (embedded) or a PostgreSQL server (postgres.js).";

const SMOKE_SCRIPT = `
import { syncConversation } from "@zakstam/codex-sync-engine";
import { createPostgresAdapter } from "@zakstam/codex-sync-engine-postgres";
const applied = [];
const adapter = await createPostgresAdapter({
  handler: {
    async apply(chunk, ctx) {
      await ctx.sql.query("SELECT 1");
      applied.push(chunk.index);
    },
  },
});
const records = Array.from({ length: 200 }, (_, i) => ({ i, text: "héllo ✓ " + i }));
const { job } = await syncConversation(adapter, {
  scope: "smoke", conversationId: "c", payload: records, chunkSize: 1024,
});
await adapter.close();
if (job.state !== "succeeded" || applied.length !== job.totalChunks) {
  console.error("FAIL", job.state, applied.length, job.totalChunks);
  process.exit(1);
}
console.log("ok   synced " + job.totalChunks + " chunks on PGlite under Node " + process.version);
`;

/** Builds (and, with `smoke`, smoke-tests) the adapter's npm package. */
export async function buildPostgresPackage(smoke: boolean): Promise<void> {
  await buildMemberPackage({
    dir: PACKAGE_DIR,
    description: DESCRIPTION,
    workspaceDeps: [NPM_DIR],
    // postgres.js's declarations use Node's types (Buffer, node:stream).
    consumerTypes: ["node"],
    async smoke({ appDir }) {
      await Deno.writeTextFile(join(appDir, "smoke.mjs"), SMOKE_SCRIPT);
      await run("node", ["smoke.mjs"], { cwd: appDir });
    },
  }, smoke);
}

if (import.meta.main) {
  await runMain(
    "build:npm (postgres)",
    () => buildPostgresPackage(!Deno.args.includes("--no-smoke")),
  );
}
