// The conformance suite over HTTP with the Postgres adapter behind the server: a
// throwaway PostgreSQL cluster (or DATABASE_URL), a fresh schema per case, the server on
// loopback (Deno.serve on 127.0.0.1). Restart swaps the backend adapter under the same
// server; the client stays connected.
import { after, test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
import { startTestServer } from "../../postgres/tests/support/cluster.ts";
import { ServerTarget } from "../../postgres/tests/support/harness.ts";
import { httpTarget } from "./support/harness.ts";
import { serveOnDenoLoopback } from "./support/deno_loopback.ts";

const database = await startTestServer();
const target = new ServerTarget(database.url);
after(async () => {
  await target.dispose();
  await database.dispose();
});

registerConformance(
  nodeTestRegistrar(test),
  httpTarget(target.target(), { serve: serveOnDenoLoopback }),
);
