/**
 * Operation inputs → function arguments. Each input is first checked against the
 * engine's own input schema, so that a malformed input fails as the engine would fail
 * it (`E_SYNC_INVALID_ARGUMENT`) instead of as a Convex argument-validation error; the
 * server's engine then checks it again, with the limits only it knows.
 *
 * @module
 */

import {
  type AppendChunkInput,
  appendChunkInputSchema,
  type CancelJobInput,
  cancelJobInputSchema,
  checkJsonField,
  type CreateSourceInput,
  createSourceInputSchema,
  type GcInput,
  gcInputSchema,
  type GetJobInput,
  getJobInputSchema,
  type GetSourceInput,
  getSourceInputSchema,
  type ListChunksInput,
  listChunksInputSchema,
  type ListJobsInput,
  listJobsInputSchema,
  parseInput,
  type SealSourceInput,
  sealSourceInputSchema,
} from "@zakstam/codex-sync-engine";
import { toArrayBuffer } from "../bytes.ts";
import { manifestToWire } from "../codec.ts";
import type {
  AppendChunkArgs,
  CancelJobArgs,
  CreateSourceArgs,
  GcArgs,
  GetJobArgs,
  GetSourceArgs,
  ListChunksArgs,
  ListJobsArgs,
  SealSourceArgs,
} from "../wire.ts";

// Free-form JSON is sent as text, so only JSON-ness is checked here; its size limit is
// the server's.
const ANY_SIZE = Number.POSITIVE_INFINITY;

/** `value` without its undefined members (Convex arguments have no `undefined`). */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** Arguments of `createSource`. */
export function createSourceArgs(input: CreateSourceInput): CreateSourceArgs {
  const { metadata, ...rest } = parseInput(createSourceInputSchema, input, "createSource");
  if (metadata === undefined) return defined(rest);
  checkJsonField("createSource", "metadata", metadata, ANY_SIZE);
  return defined({ ...rest, metadataJson: JSON.stringify(metadata) });
}

/** Arguments of `appendChunk`. */
export function appendChunkArgs(input: AppendChunkInput): AppendChunkArgs {
  const parsed = parseInput(appendChunkInputSchema, input, "appendChunk");
  return defined({ ...parsed, bytes: toArrayBuffer(parsed.bytes) });
}

/** Arguments of `sealSource`. */
export function sealSourceArgs(input: SealSourceInput): SealSourceArgs {
  const parsed = parseInput(sealSourceInputSchema, input, "sealSource");
  if (parsed.manifest.data !== undefined) {
    checkJsonField("sealSource", "manifest.data", parsed.manifest.data, ANY_SIZE);
  }
  return {
    scope: parsed.scope,
    sourceId: parsed.sourceId,
    manifest: manifestToWire(parsed.manifest),
  };
}

/** Arguments of `getSource`. */
export function getSourceArgs(input: GetSourceInput): GetSourceArgs {
  return defined(parseInput(getSourceInputSchema, input, "getSource"));
}

/** Arguments of `listChunks`. */
export function listChunksArgs(input: ListChunksInput): ListChunksArgs {
  return defined(parseInput(listChunksInputSchema, input, "listChunks"));
}

/** Arguments of `getJob`. */
export function getJobArgs(input: GetJobInput): GetJobArgs {
  return defined(parseInput(getJobInputSchema, input, "getJob"));
}

/** Arguments of `listJobs`. */
export function listJobsArgs(input: ListJobsInput): ListJobsArgs {
  return defined(parseInput(listJobsInputSchema, input, "listJobs"));
}

/** Arguments of `cancelJob`. */
export function cancelJobArgs(input: CancelJobInput): CancelJobArgs {
  return defined(parseInput(cancelJobInputSchema, input, "cancelJob"));
}

/** Arguments of `gc` (an absent input means the defaults). */
export function gcArgs(input: GcInput | undefined): GcArgs {
  return defined(parseInput(gcInputSchema, input === undefined ? {} : input, "gc"));
}
