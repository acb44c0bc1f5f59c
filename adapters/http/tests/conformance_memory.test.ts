// The conformance suite over HTTP, in-process: the memory adapter behind
// createSyncHttpHandler, the suite's calls through createHttpSyncAdapter whose fetch
// calls the handler directly (no socket).
import { test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
import { memoryTarget } from "../../../tests/support/memory_harness.ts";
import { httpTarget, serveInProcess } from "./support/harness.ts";

registerConformance(
  nodeTestRegistrar(test),
  httpTarget(memoryTarget(), { serve: serveInProcess }),
);
