// The conformance suite on the Convex adapter, over convex-test (an in-process Convex
// backend) with Convex's transaction limits enforced.
import { test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
import { convexTarget } from "./support/harness.ts";

registerConformance(nodeTestRegistrar(test), convexTarget());
