// The full conformance suite on a PostgreSQL server through postgres.js: one throwaway
// cluster (or DATABASE_URL) for the file, a fresh schema per case.
import { after, test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
import { startTestServer } from "./support/cluster.ts";
import { ServerTarget } from "./support/harness.ts";

const server = await startTestServer();
const target = new ServerTarget(server.url);
after(async () => {
  await target.dispose();
  await server.dispose();
});

registerConformance(nodeTestRegistrar(test), target.target());
