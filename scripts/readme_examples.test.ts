/**
 * Tests of the README example runner (`readme_examples.ts`): block extraction and
 * annotations, JSON checks, and the ordering of background blocks with real processes
 * (bash; every wait bounded by the runner's timeouts).
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { BuildError } from "./_build_common.ts";
import {
  blockStem,
  checkJson,
  type CodeBlock,
  extractBlocks,
  isTestModule,
  Proc,
  Report,
  runInOrder,
} from "./readme_examples.ts";

const README = [
  "# Title",
  "",
  "```ts",
  'console.log("a");',
  "```",
  "",
  '<!-- example: background ready="listening on" until="next" runtimes="deno,bun" -->',
  "",
  "```sh",
  "serve",
  "```",
  "",
  "  ```json",
  '  {"a": 1}',
  "  ```",
  "",
  "```",
  "plain",
  "```",
  "",
  '<!-- example: file="convex/schema.ts" check-only reason="needs a deployment" -->',
  "```typescript",
  'import { test } from "node:test";',
  "```",
].join("\n");

test("extractBlocks: kinds from tags, fence lines, code, indented fences", () => {
  const blocks = extractBlocks("README.md", README);
  assert.deepEqual(
    blocks.map((b) => [b.line, b.lang, b.kind]),
    [[3, "ts", "module"], [9, "sh", "shell"], [13, "json", "json"], [17, "", "shown"], [
      22,
      "typescript",
      "module",
    ]],
  );
  assert.equal(blocks[0].code, 'console.log("a");\n');
  assert.equal(blocks[2].code, '{"a": 1}\n');
});

test("extractBlocks: the annotation on the nearest non-blank line before the fence", () => {
  const [first, serve, , , file] = extractBlocks("README.md", README);
  assert.deepEqual(first.annotation, {});
  assert.deepEqual(serve.annotation, {
    background: { ready: "listening on", untilNext: true },
    runtimes: ["deno", "bun"],
  });
  assert.deepEqual(file.annotation, { file: "convex/schema.ts", checkOnly: "needs a deployment" });
});

test("extractBlocks: bad input is a BuildError naming the README line", () => {
  assert.throws(
    () => extractBlocks("X.md", "a\n```ts\nnever closed\n"),
    (e: unknown) => e instanceof BuildError && /X\.md:2: unclosed code fence/.test(e.message),
  );
  assert.throws(
    () => extractBlocks("X.md", "<!-- example: bogus -->\n```sh\nls\n```\n"),
    (e: unknown) =>
      e instanceof BuildError && /X\.md:2: unknown example annotation bogus/.test(e.message),
  );
  assert.throws(
    () => extractBlocks("X.md", "<!-- example: background -->\n```sh\nls\n```\n"),
    (e: unknown) => e instanceof BuildError && /background needs ready=/.test(e.message),
  );
});

test("a module importing node:test is a test file, named so runners pick it up", () => {
  const blocks = extractBlocks("adapters/x/README.md", README);
  assert.equal(isTestModule(blocks[0]), false);
  assert.equal(isTestModule(blocks[4]), true);
  assert.equal(blockStem(blocks[0]), "adapters_x_README_L3");
  assert.equal(blockStem(blocks[4]), "adapters_x_README_L22.test");
});

function block(code: string, line = 1, lang = "json"): CodeBlock {
  return extractBlocks("T.md", `${"\n".repeat(line - 1)}\`\`\`${lang}\n${code}\n\`\`\`\n`)[0];
}

test("checkJson: JSON and JSON Lines pass, a sketch is counted, anything else fails", () => {
  const report = new Report();
  checkJson(block('{"a": [1, 2]}'), report);
  checkJson(block('{"a": 1}\n{"b": 2}'), report);
  checkJson(block('{ "a": … }'), report);
  checkJson(block("{ a: 1 }", 7), report);
  assert.deepEqual([...report.counts], [["json parsed", 2], ["json sketch", 1]]);
  assert.equal(report.failures.length, 1);
  assert.equal(report.failures[0].block.line, 7);
  assert.throws(
    () => report.finish("t"),
    (e: unknown) => e instanceof BuildError && /T\.md:7/.test(e.message),
  );
});

/** Runs the shell blocks of `markdown` as the runner does, in a scratch directory. */
async function runShell(markdown: string): Promise<Report> {
  const report = new Report();
  const cwd = await Deno.makeTempDir({ prefix: "readme-examples-test-" });
  try {
    await runInOrder(
      extractBlocks("T.md", markdown),
      "bash",
      report,
      (b) =>
        Promise.resolve(
          new Proc("bash", ["-euo", "pipefail", "-c", b.code], {
            cwd,
            env: { PATH: Deno.env.get("PATH") ?? "" },
          }),
        ),
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
  return report;
}

test("runInOrder: a background block serves the next one, then SIGTERM stops it", async () => {
  const report = await runShell([
    '<!-- example: background ready="ready" until="next" -->',
    "```sh",
    'trap "echo stopping; exit 0" TERM; echo ready; echo up > served; while true; do sleep 0.1; done',
    "```",
    "```sh",
    "cat served",
    "```",
    "```sh",
    "test ! -e never",
    "```",
  ].join("\n"));
  assert.deepEqual(report.failures, []);
  assert.deepEqual([...report.counts], [["shell ready", 1], ["shell ran", 2]]);
});

test("runInOrder: a failing block is reported with its line and output; the rest still run", async () => {
  const report = await runShell([
    "```sh",
    "echo partial output; exit 3",
    "```",
    "```sh",
    "true",
    "```",
  ].join("\n"));
  assert.equal(report.failures.length, 1);
  const [failure] = report.failures;
  assert.equal(failure.block.line, 1);
  assert.match(failure.message, /^exit 3\n.*partial output/s);
  assert.deepEqual([...report.counts], [["shell ran", 1]]);
});

test("runInOrder: a background block that ignores SIGTERM fails (killed after the grace period)", async () => {
  const report = await runShell([
    '<!-- example: background ready="ready" -->',
    "```sh",
    'trap "" TERM; echo ready; while true; do sleep 0.1; done',
    "```",
  ].join("\n"));
  assert.equal(report.failures.length, 1);
  assert.match(report.failures[0].message, /SIGTERM did not stop it/);
});
