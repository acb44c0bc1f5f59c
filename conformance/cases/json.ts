/**
 * Cases `json:`: metadata and manifest data of every JSON kind — the falsy ones (`false`,
 * `0`, `""`, `null`), empty containers, numbers at the edges, nested values — come back
 * exactly as given from every call that returns them and in what the handler is told.
 *
 * @module
 */

import type { JsonValue } from "../../src/contracts/domain.ts";
import { assertEquals } from "../assert.ts";
import { manifestFor, utf8 } from "../context.ts";
import type { ConformanceCase } from "../types.ts";
import { append } from "./support.ts";

/** One value of each JSON kind, with a label. */
const JSON_KINDS: readonly [string, JsonValue][] = [
  ["false", false],
  ["true", true],
  ["0", 0],
  ["a negative fraction", -1.5e-7],
  ["a large number", 1e300],
  ["the largest safe integer", Number.MAX_SAFE_INTEGER],
  ['""', ""],
  ["a string with escapes", 'quote " backslash \\ tab \t newline \n é 😀'],
  ["a string with a NUL", "before\u0000after"],
  ["null", null],
  ["[]", []],
  ["{}", {}],
  ["nested falsy values", {
    a: [false, 0, "", null, [], {}],
    b: { c: { d: [[null]] } },
    "": "an empty key",
    "key with spaces": 0,
  }],
];

const jsonList: ConformanceCase[] = [
  {
    name: "json: metadata and manifest data of every JSON kind round-trip exactly " +
      "through create, append, seal, reads and the handler",
    async run(t) {
      const seen = new Map<string, { metadata: unknown; data: unknown; verified?: unknown }>();
      t.handler.onApply((_chunk, context) => {
        seen.set(context.job.jobId, {
          metadata: structuredClone(context.source.metadata),
          data: structuredClone(context.manifest.data),
        });
      });
      t.handler.onVerify((context) => {
        const entry = seen.get(context.job.jobId);
        if (entry) entry.verified = structuredClone(context.manifest.data);
      });
      const jobs: [string, JsonValue, string][] = [];
      for (const [label, value] of JSON_KINDS) {
        const created = await t.adapter.createSource({
          scope: t.scope,
          conversationId: t.newConversationId(),
          metadata: value,
        });
        assertEquals(created.metadata, value, `${label}: metadata returned by createSource`);
        const sourceId = created.sourceId;
        const chunks = [utf8(`json ${label}`)];
        const appended = await append(t, sourceId, 0, chunks[0]);
        assertEquals(appended.source.metadata, value, `${label}: metadata returned by append`);
        const read = await t.adapter.getSource({ scope: t.scope, sourceId });
        assertEquals(read.metadata, value, `${label}: metadata read while collecting`);
        const { manifest } = await manifestFor(chunks, { data: value });
        const sealed = await t.adapter.sealSource({ scope: t.scope, sourceId, manifest });
        assertEquals(sealed.source.metadata, value, `${label}: metadata returned by seal`);
        assertEquals(sealed.source.manifest?.data, value, `${label}: data returned by seal`);
        const again = await t.adapter.getSource({ scope: t.scope, sourceId });
        assertEquals(again.metadata, value, `${label}: metadata read once sealed`);
        assertEquals(again.manifest?.data, value, `${label}: data read once sealed`);
        const resealed = await t.adapter.sealSource({ scope: t.scope, sourceId, manifest });
        assertEquals(
          resealed.job.jobId,
          sealed.job.jobId,
          `${label}: sealing again with the same data is the same seal`,
        );
        jobs.push([label, value, sealed.job.jobId]);
      }
      await t.harness.drain();
      for (const [label, value, jobId] of jobs) {
        assertEquals((await t.job(jobId)).state, "succeeded", `${label}: job state`);
        assertEquals(
          seen.get(jobId),
          { metadata: value, data: value, verified: value },
          `${label}: ctx.source.metadata and ctx.manifest.data in apply and verify`,
        );
      }
    },
  },
];

/** JSON round-trip cases. */
export const jsonCases: readonly ConformanceCase[] = jsonList;
