// Under Node (scripts/test_node_http.ts, against the built npm packages): conformance
// over HTTP with the Postgres adapter (postgres.js) behind a node:http server on
// 127.0.0.1: one throwaway PostgreSQL cluster (or DATABASE_URL) for the file, a fresh
// schema per case. The groups where a durable backend changes what crosses the hop
// (restarts under a connected client, tenants, transactional apply, waits woken by
// another connection's commit): the whole suite runs over HTTP on Postgres under Deno
// (conformance_postgres.test.ts) and on Postgres under Node without HTTP
// (test:postgres:node). Not a `*.test.ts`: Deno runs the Deno.serve variant.
import { after, test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
import { startTestServer } from "../../../postgres/tests/support/cluster.ts";
import { ServerTarget } from "../../../postgres/tests/support/harness.ts";
import { httpTarget } from "../support/harness.ts";
import { serveOnNodeLoopback } from "../support/node_loopback.ts";

const ONLY = ["capabilities:", "durability:", "scope:", "transactional apply:", "wait:"];

const database = await startTestServer();
const target = new ServerTarget(database.url);
after(async () => {
  await target.dispose();
  await database.dispose();
});

registerConformance(
  nodeTestRegistrar(test),
  httpTarget({ ...target.target(), only: ONLY }, { serve: serveOnNodeLoopback }),
);
