// Under Node (scripts/test_node_http.ts, against the built npm packages): the
// conformance suite over HTTP on loopback, the memory adapter behind a node:http server
// on 127.0.0.1 (one per case), the suite's calls through createHttpSyncAdapter over
// Node's fetch. Not a `*.test.ts`: `deno task test:http` runs the Deno.serve variant.
import { test } from "node:test";
import {
  nodeTestRegistrar,
  registerConformance,
  type SuiteTarget,
} from "@zakstam/codex-sync-engine/conformance";
import { memoryTarget } from "../../../../tests/support/memory_harness.ts";
import { httpTarget } from "../support/harness.ts";
import { serveOnNodeLoopback } from "../support/node_loopback.ts";

// The scale case as 1 000 chunks, not 5 000: each is a request here, and Deno runs the
// full size over HTTP (conformance_loopback.test.ts).
const memory = memoryTarget();
const backend: SuiteTarget = {
  ...memory,
  factory: async (input) => ({ ...(await memory.factory(input)), scaleChunks: 1_000 }),
};

registerConformance(
  nodeTestRegistrar(test),
  httpTarget(backend, { serve: serveOnNodeLoopback }),
);
