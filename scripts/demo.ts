/**
 * Demo: syncs a realistic sample conversation (JSON Lines, ~4 MB, multi-byte text)
 * through the memory adapter. The host handler materialises every record into an
 * in-memory "table" keyed by line number; its verify hook checks the table against the
 * manifest. Prints progress and the verified terminal job.
 *
 * Run: `npm run demo` (or `deno task demo`).
 */

import type { ApplyContext, Chunk, VerifyContext } from "../mod.ts";
import { syncConversation } from "../mod.ts";
import { createMemoryAdapter } from "../memory/mod.ts";
import { sampleConversation } from "./sample_conversation.ts";

interface MessageRow {
  line: number;
  type: string;
  text: string;
}

const table = new Map<number, MessageRow>();
const decoder = new TextDecoder();
// First line number of each chunk; chunks are applied in order, so chunk i+1's entry is
// known once chunk i is applied. Re-applying a chunk rewrites the same rows.
const startLine = new Map<number, number>([[0, 0]]);

const handler = {
  apply(chunk: Chunk, _context: ApplyContext): void {
    // The client never splits a record across chunks: every chunk is whole lines.
    const lines = decoder.decode(chunk.bytes).split("\n");
    lines.pop();
    let line = startLine.get(chunk.index)!;
    for (const text of lines) {
      const record = JSON.parse(text) as { type: string };
      table.set(line, { line, type: record.type, text });
      line++;
    }
    startLine.set(chunk.index + 1, line);
  },
  verify(context: VerifyContext): void {
    if (table.size !== context.manifest.itemCount) {
      throw new Error(`table has ${table.size} rows, manifest has ${context.manifest.itemCount}`);
    }
  },
};

const adapter = createMemoryAdapter({ handler });
const conversationId = "demo-conversation";
const started = performance.now();
let lastReport = 0;

const result = await syncConversation(adapter, {
  scope: "demo-user",
  conversationId,
  payload: sampleConversation(conversationId, 4 * 1024 * 1024),
  chunkSize: 256 * 1024,
  onProgress(event) {
    if (event.phase === "uploading") {
      const now = performance.now();
      if (now - lastReport > 50) {
        lastReport = now;
        console.log(
          `uploading: ${event.chunksUploaded} chunks, ${
            (event.bytesUploaded / 1024 / 1024).toFixed(2)
          } MiB`,
        );
      }
    } else if (event.phase === "sealed") {
      console.log(
        `sealed: ${event.manifest.chunkCount} chunks, ${event.manifest.byteCount} bytes, ` +
          `${event.manifest.itemCount} records, digest ${event.manifest.digest}`,
      );
    } else if (event.phase === "waiting") {
      console.log(`waiting for job ${event.job.jobId} (${event.job.state})`);
    } else if (event.phase === "reused") {
      console.log(`reusing ${event.chunks} chunks of source ${event.base.sourceId}`);
    } else {
      console.log(`done: job ${event.job.state}`);
    }
  },
});

const multiByte = [...table.values()].filter((row) => /[^\u0020-\u007e\n\t]/.test(row.text)).length;
console.log(`materialised ${table.size} rows (${multiByte} with multi-byte text)`);
console.log(`verified in ${(performance.now() - started).toFixed(0)} ms; terminal job:`);
console.log(JSON.stringify(result.job, null, 2));
await adapter.close();
