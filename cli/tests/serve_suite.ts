/**
 * `codex-sync serve` as a subprocess on an ephemeral loopback port, with two tokens
 * (two scopes), for one entry (Deno from source in `serve.test.ts`, the npm bin under
 * Node in `node_bin.test.ts`): `import --server` of the bundled sample through token A
 * (verified, then a no-op; `verify` and `export` through the server; rows in the
 * server's PGlite tables, as a local import writes them), `status`/`jobs` through token B
 * see none of it, a bad token is refused with a clear error, `gc --server` is refused,
 * SIGTERM stops the server. Every wait is bounded.
 */

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type CliEntry,
  events,
  readStore,
  rebuild,
  runCli,
  type RunningCli,
  SAMPLE,
  SAMPLE_ID,
  startCli,
  tempDir,
} from "./support.ts";

/** Registers the serve tests for `entry`. */
export function serveSuite(entry: CliEntry): void {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) Deno.removeSync(dir, { recursive: true });
  });
  test(`${entry.name}: serve: import --server lands in the server's tables, per token`, async () => {
    const dir = tempDir("serve");
    dirs.push(dir);
    Deno.writeTextFileSync(join(dir, "tokens.txt"), "token-a alice\ntoken-b bob\n");
    const server: RunningCli = startCli(
      ["serve", "--tokens", "tokens.txt", "--listen", "127.0.0.1:0", "--json"],
      dir,
      entry,
    );
    let stopped = false;
    try {
      const listening = JSON.parse(
        // Bounded, with room for a fresh PGlite store on a busy machine (~25 s seen).
        await server.waitForLine((line) => line.includes('"listening"'), 90_000),
      );
      const url = listening.url as string;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const client = tempDir("serve-client");
      dirs.push(client);
      const a = ["--server", url, "--token", "token-a"];

      const imported = await runCli(["import", ...a, "--json", SAMPLE], client, entry);
      assert.equal(imported.code, 0, imported.stderr);
      const event = events(imported.stdout).find((e) => e.event === "imported");
      assert.equal(event?.conversationId, SAMPLE_ID);
      assert.equal(event?.verified, true);
      // Nothing is kept where the client runs.
      assert.equal(await Deno.stat(join(client, ".codex-sync")).catch(() => null), null);

      const again = await runCli(["import", ...a, "--json", SAMPLE], client, entry);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(events(again.stdout).some((e) => e.event === "unchanged"), again.stdout);

      const verify = await runCli(["verify", ...a, SAMPLE_ID], client, entry);
      assert.equal(verify.code, 0, verify.stderr);
      const exported = await runCli(["export", ...a, SAMPLE_ID], client, entry);
      assert.equal(exported.code, 0, exported.stderr);
      assert.deepEqual(exported.stdoutBytes, Deno.readFileSync(SAMPLE));

      const statusA = await runCli(["status", ...a, "--json"], client, entry);
      assert.equal(statusA.code, 0, statusA.stderr);
      assert.equal(JSON.parse(statusA.stdout).conversations, 1);

      // Token B (env vars this time) sees none of it.
      const env = { CODEX_SYNC_SERVER: url, CODEX_SYNC_TOKEN: "token-b" };
      const jobsB = await runCli(["jobs", "--json"], client, entry, env);
      assert.equal(jobsB.code, 0, jobsB.stderr);
      assert.deepEqual(JSON.parse(jobsB.stdout).jobs, []);
      const statusB = await runCli(["status", "--json"], client, entry, env);
      assert.equal(statusB.code, 0, statusB.stderr);
      const summaryB = JSON.parse(statusB.stdout);
      assert.equal(summaryB.conversations, 0);
      assert.equal(summaryB.recentImports.length, 0);
      const verifyB = await runCli(["verify", SAMPLE_ID], client, entry, env);
      assert.equal(verifyB.code, 5, verifyB.stderr);

      const bad = await runCli(["jobs", "--server", url, "--token", "nope"], client, entry);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /E_CLI_UNAUTHORIZED: the server at .* refused the token/);
      const badImport = await runCli(
        ["import", "--server", url, "--token", "nope", SAMPLE],
        client,
        entry,
      );
      assert.notEqual(badImport.code, 0);
      assert.match(badImport.stderr, /E_CLI_UNAUTHORIZED/);
      const noToken = await runCli(["jobs", "--server", url], client, entry, {
        CODEX_SYNC_TOKEN: "",
      });
      assert.equal(noToken.code, 2);
      assert.match(noToken.stderr, /--server needs --token/);
      const gc = await runCli(["gc", ...a], client, entry);
      assert.equal(gc.code, 2);
      assert.match(gc.stderr, /run it where the store is/);

      server.signal("SIGTERM");
      const result = await Promise.race([
        server.done,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error("serve did not stop on SIGTERM")), 15_000)
        ),
      ]);
      stopped = true;
      assert.equal(result.code, 0, result.stderr);
      assert.ok(events(result.stdout).some((e) => e.event === "stopped"), result.stdout);

      // The rows are in the server's tables, under token A's scope, as a local import.
      const store = await readStore(join(dir, ".codex-sync"));
      assert.equal(store.imports.get(SAMPLE_ID)?.lineCount, 3226);
      assert.deepEqual(
        rebuild(store.rows.get(SAMPLE_ID)!, true),
        Deno.readFileSync(SAMPLE),
      );
    } finally {
      if (!stopped) {
        server.signal("SIGKILL");
        await server.done.catch(() => {});
      }
    }
  });
}
