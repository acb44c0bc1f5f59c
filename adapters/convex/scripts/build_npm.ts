/**
 * Builds the Convex adapter's npm package into `adapters/convex/npm/`, after the core's
 * (`npm/`, built first by `scripts/build_npm.ts`, which calls this), with the shared
 * workspace-member build (`scripts/_build_member.ts`). `convex` is a peer dependency: the
 * host's Convex functions and this package must share one copy of it.
 *
 * Its smoke test installs both tarballs (npm brings the peer `convex`) into a scratch
 * project, type-checks a strict consumer, and under Node defines the sync tables and
 * functions as a host's `convex/` folder would, then syncs a conversation through the
 * client adapter over a stand-in client whose calls run the registered functions' handlers
 * on an in-memory database — enough to prove the package's two halves load and talk.
 *
 * @module
 */

import { join } from "node:path";
import { NPM_DIR, ROOT, run, runMain } from "../../../scripts/_build_common.ts";
import { buildMemberPackage } from "../../../scripts/_build_member.ts";

const PACKAGE_DIR = join(ROOT, "adapters", "convex");
/** Output directory of the adapter's npm package. */
export const CONVEX_NPM_DIR: string = join(PACKAGE_DIR, "npm");
const DESCRIPTION = "Convex adapter of @zakstam/codex-sync-engine: the sync tables and " +
  "functions for a Convex deployment, and a SyncAdapter over a Convex client.";

const SMOKE_SCRIPT = `
import { anyApi, defineSchema, getFunctionName } from "convex/server";
import { ConvexError } from "convex/values";
import { CONVEX_MAX_CHUNK_BYTES, createConvexSyncAdapter } from "@zakstam/codex-sync-engine-convex";
import { defineSyncFunctions, syncTables } from "@zakstam/codex-sync-engine-convex/server";

const schema = defineSchema({ ...syncTables });
const tables = Object.keys(schema.tables).sort().join(",");
if (tables !== "syncChunkBytes,syncChunks,syncJobs,syncSources") {
  throw new Error("unexpected sync tables: " + tables);
}
const functions = defineSyncFunctions({
  worker: () => anyApi.sync.worker,
  authorize: () => {},
  handler: { apply() {} },
});
const kinds = Object.entries(functions).map(([name, fn]) =>
  name + ":" + (fn.isMutation ? "mutation" : fn.isQuery ? "query" : "other") +
  (fn.isInternal ? "/internal" : "")
);
for (const name of ["createSource", "appendChunk", "sealSource", "gc"]) {
  if (!kinds.includes(name + ":mutation")) throw new Error(name + " is not a public mutation");
}
if (!kinds.includes("getJob:query") || !kinds.includes("worker:mutation/internal")) {
  throw new Error("unexpected function kinds: " + kinds.join(" "));
}

// The client half: a stand-in client refuses getSource as a deployment without it would.
const calls = [];
const adapter = createConvexSyncAdapter({
  client: {
    async query(ref) {
      calls.push(getFunctionName(ref));
      throw new ConvexError({
        name: "SyncError", code: "E_SYNC_SOURCE_NOT_FOUND", message: "no source", retryable: false,
      });
    },
    async mutation() {
      throw new Error("no mutation expected");
    },
  },
  functions: anyApi.sync,
});
if (adapter.maxChunkBytes !== CONVEX_MAX_CHUNK_BYTES) throw new Error("maxChunkBytes");
const missing = await adapter.getSource({ scope: "smoke", sourceId: "s" }).then(
  () => undefined,
  (error) => error,
);
if (missing?.code !== "E_SYNC_SOURCE_NOT_FOUND" || calls[0] !== "sync:getSource") {
  throw new Error("getSource over the client: " + (missing?.code ?? "no error") + " " + calls);
}
console.log("ok   " + kinds.length + " sync functions defined; the client adapter called " +
  calls[0] + " under Node " + process.version);
`;

/** Builds (and, with `smoke`, smoke-tests) the adapter's npm package. */
export async function buildConvexPackage(smoke: boolean): Promise<void> {
  await buildMemberPackage({
    dir: PACKAGE_DIR,
    description: DESCRIPTION,
    workspaceDeps: [NPM_DIR],
    peerDependencies: ["convex"],
    async smoke({ appDir }) {
      await Deno.writeTextFile(join(appDir, "smoke.mjs"), SMOKE_SCRIPT);
      await run("node", ["smoke.mjs"], { cwd: appDir });
    },
  }, smoke);
}

if (import.meta.main) {
  await runMain(
    "build:npm (convex)",
    () => buildConvexPackage(!Deno.args.includes("--no-smoke")),
  );
}
