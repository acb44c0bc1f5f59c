/**
 * Latency of `codex-sync watch` (DESIGN §11): a line appended to a session file → its
 * row committed and verified, as `watch --json` reports it (its `imported` event comes
 * after the job succeeded). Starts `watch` on a temporary directory holding one session
 * (optionally large, to show an append costs what the line costs), appends lines one at
 * a time with a pause between them, and prints p50 / p90 / max.
 *
 * Usage (from the repository root):
 *   deno run -A cli/scripts/bench_watch.ts [--lines 30] [--gap 300] [--size 2000000]
 *     [--node <path to an installed codex-sync bin>] [--store-url postgres://…]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sampleRollout } from "./sample_rollout.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    lines: { type: "string", default: "30" },
    gap: { type: "string", default: "300" },
    size: { type: "string", default: "2000000" },
    node: { type: "string" },
    "store-url": { type: "string" },
  },
});
const count = Number(values.lines);
const gapMs = Number(values.gap);
const size = Number(values.size);
const ID = "0199a3c1-bbbb-7c2d-9f41-00000000bench";

const deno = fileURLToPath(new URL("../../node_modules/.bin/deno", import.meta.url));
const main = fileURLToPath(new URL("../main.ts", import.meta.url));
const dir = Deno.makeTempDirSync({ prefix: "codex-sync-bench-watch-" });
const sessions = join(dir, "sessions", "2025", "11", "07");
Deno.mkdirSync(sessions, { recursive: true });
const file = join(sessions, `rollout-2025-11-07T09-00-00-${ID}.jsonl`);
const lines = [...sampleRollout({ sessionId: ID, targetBytes: size + 200_000, seed: 61 })];
const encoder = new TextEncoder();
let initial = 0;
let bytes = 0;
while (initial < lines.length - count && bytes < size) bytes += lines[initial++].length + 1;
Deno.writeTextFileSync(file, lines.slice(0, initial).map((line) => line + "\n").join(""));

const store = values["store-url"] ? ["--database-url", values["store-url"]] : [];
const [command, args] = values.node ? ["node", [values.node]] : [deno, [
  "run",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-sys",
  main,
]];
const child = new Deno.Command(command, {
  args: [...args, "watch", "--json", "--debounce", "50", ...store, join(dir, "sessions")],
  cwd: dir,
  env: { NO_COLOR: "1" },
  stdin: "null",
  stdout: "piped",
  stderr: "inherit",
}).spawn();

const waiters: { records: number; resolve: (at: number) => void }[] = [];
let ready: () => void = () => {};
const isReady = new Promise<void>((resolve) => ready = resolve);
(async () => {
  let buffered = "";
  for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const event = JSON.parse(line);
      if (event.event === "ready") ready();
      if (event.event === "imported") {
        for (const waiter of waiters.filter((w) => event.records >= w.records)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(performance.now());
        }
      }
    }
  }
})();

const started = performance.now();
await isReady;
console.log(
  `watch ready in ${((performance.now() - started) / 1000).toFixed(1)} s ` +
    `(initial import of ${initial} lines, ${(bytes / 1e6).toFixed(1)} MB)`,
);
const latencies: number[] = [];
for (let i = 0; i < count; i++) {
  const records = initial + i + 1;
  const landed = new Promise<number>((resolve) => waiters.push({ records, resolve }));
  const at = performance.now();
  Deno.writeFileSync(file, encoder.encode(lines[initial + i] + "\n"), { append: true });
  const timeout = new Promise<number>((_, reject) =>
    setTimeout(() => reject(new Error(`line ${records} not synced within 30 s`)), 30_000)
  );
  latencies.push((await Promise.race([landed, timeout])) - at);
  await new Promise((resolve) => setTimeout(resolve, gapMs));
}
child.kill("SIGINT");
await child.status;
Deno.removeSync(dir, { recursive: true });

const sorted = [...latencies].sort((a, b) => a - b);
const pick = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
console.log(
  `append → row committed and verified, ${count} lines, ${gapMs} ms apart` +
    (values.node ? " (Node bin)" : " (Deno)") + (store.length ? " (server store)" : " (PGlite)") +
    `: p50 ${pick(0.5).toFixed(0)} ms, p90 ${pick(0.9).toFixed(0)} ms, ` +
    `max ${sorted.at(-1)!.toFixed(0)} ms (debounce 50 ms); first 10 p50 ${
      median(latencies.slice(0, 10)).toFixed(0)
    } ms, last 10 p50 ${median(latencies.slice(-10)).toFixed(0)} ms`,
);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
