// The full conformance suite on the embedded driver (PGlite): one database, a fresh
// schema per case; restart = close PGlite and reopen the same directory.
import { after, test } from "node:test";
import { nodeTestRegistrar, registerConformance } from "@zakstam/codex-sync-engine/conformance";
import { PGliteTarget } from "./support/harness.ts";

const target = await PGliteTarget.create();
after(() => target.dispose());

registerConformance(nodeTestRegistrar(test), target.target());
