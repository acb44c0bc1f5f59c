// `serve`'s token files and --listen, then the serve suite (serve_suite.ts) on the Deno
// entry, from source.

import { test } from "node:test";
import assert from "node:assert/strict";
import { hashTokens, parseTokens } from "../src/remote.ts";
import { isLoopback, parseListen } from "../src/commands/serve.ts";
import { serveSuite } from "./serve_suite.ts";
import { DENO_ENTRY } from "./support.ts";

test("serve: token files, --listen", async () => {
  assert.deepEqual(parseTokens("# comment\nalpha scope-a\n\nbeta: scope-b\n"), [
    { token: "alpha", scope: "scope-a" },
    { token: "beta", scope: "scope-b" },
  ]);
  assert.deepEqual(parseTokens('{"alpha": "a"}'), [{ token: "alpha", scope: "a" }]);
  assert.deepEqual(parseTokens('[{"token": "alpha", "scope": "a"}]'), [
    { token: "alpha", scope: "a" },
  ]);
  assert.throws(() => parseTokens(""), /no token/);
  assert.throws(() => parseTokens('{"alpha": 3}'), /non-empty/);
  assert.throws(() => parseTokens("one two three"), /line 1/);
  assert.deepEqual(await hashTokens([{ token: "test", scope: "s" }]), [{
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    scope: "s",
  }]);
  assert.deepEqual(parseListen("127.0.0.1:0"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListen("[::1]:8787"), { hostname: "::1", port: 8787 });
  assert.throws(() => parseListen("127.0.0.1"), /host>:<port/);
  assert.throws(() => parseListen("127.0.0.1:70000"), /host>:<port/);
  assert.ok(isLoopback("127.0.0.1") && isLoopback("::1") && !isLoopback("0.0.0.0"));
});

serveSuite(DENO_ENTRY);
