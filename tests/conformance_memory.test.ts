// The conformance suite against the memory adapter (Deno and Bun from source; Node
// from the built package via the same file compiled).
import { test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "../conformance/mod.ts";
import { memoryTarget } from "./support/memory_harness.ts";

registerConformance(nodeTestRegistrar(test), memoryTarget());
