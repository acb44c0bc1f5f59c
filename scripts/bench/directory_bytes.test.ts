import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { directoryBytes } from "./directory_bytes.ts";

test("directoryBytes sums the regular files under a directory, nested, links not followed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "directory-bytes-test-" });
  const outside = await Deno.makeTempFile({ prefix: "directory-bytes-outside-" });
  try {
    await Deno.mkdir(join(dir, "a/b"), { recursive: true });
    await Deno.mkdir(join(dir, "empty"));
    await Deno.writeFile(join(dir, "one"), new Uint8Array(1000));
    await Deno.writeFile(join(dir, "a/two"), new Uint8Array(20));
    await Deno.writeFile(join(dir, "a/b/three"), new Uint8Array(3));
    await Deno.writeFile(outside, new Uint8Array(1 << 20));
    await Deno.symlink(outside, join(dir, "a/link"));
    assert.equal(await directoryBytes(dir), 1023);
    assert.equal(await directoryBytes(join(dir, "empty")), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside);
  }
});

test("directoryBytes of a missing directory fails", async () => {
  await assert.rejects(directoryBytes("/nonexistent/directory-bytes-test"), Deno.errors.NotFound);
});
