// The conformance suite over HTTP on loopback: the memory adapter behind a real
// Deno.serve on 127.0.0.1 (one server per case), the suite's calls through
// createHttpSyncAdapter over the runtime's fetch.
import { test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
import { memoryTarget } from "../../../tests/support/memory_harness.ts";
import { httpTarget } from "./support/harness.ts";
import { serveOnDenoLoopback } from "./support/deno_loopback.ts";

registerConformance(
  nodeTestRegistrar(test),
  httpTarget(memoryTarget(), { serve: serveOnDenoLoopback }),
);
