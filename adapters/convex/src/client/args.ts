/**
 * Operation inputs → function arguments. Each input is first checked against the
 * engine's own input schema, so that a malformed input fails as the engine would fail
 * it (`E_SYNC_INVALID_ARGUMENT`) instead of as a Convex argument-validation error; the
 * server's engine then checks it again, with the limits only it knows.
 *
 * @module
 */

import {
  type AbandonSourceInput,
  abandonSourceInputSchema,
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
  type GetLatestSourceInput,
  getLatestSourceInputSchema,
  type GetSourceInput,
  getSourceInputSchema,
  type JsonValue,
  type ListChunksInput,
  listChunksInputSchema,
  type ListJobsInput,
  listJobsInputSchema,
  type Manifest,
  parseInput,
  type ReleasePayloadsInput,
  releasePayloadsInputSchema,
  type SealSourceInput,
  sealSourceInputSchema,
  type UploadChunkInput,
  type UploadSourceInput,
  uploadSourceInputSchema,
} from "@zakstam/codex-sync-engine";
import { toArrayBuffer } from "../bytes.ts";
import { manifestToWire } from "../codec.ts";
import { checkUploadChunkCount } from "../limits.ts";
import type {
  AbandonSourceArgs,
  AppendChunkArgs,
  CancelJobArgs,
  CreateSourceArgs,
  GcArgs,
  GetJobArgs,
  GetLatestSourceArgs,
  GetSourceArgs,
  ListChunksArgs,
  ListJobsArgs,
  ManifestWire,
  ReleasePayloadsArgs,
  SealSourceArgs,
  UploadChunkWire,
  UploadSourceArgs,
} from "../wire.ts";

// Free-form JSON is sent as text, so only JSON-ness is checked here; its size limit is
// the server's.
const ANY_SIZE = Number.POSITIVE_INFINITY;

/** `value` without its undefined members (Convex arguments have no `undefined`). */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** `metadata` as the `metadataJson` argument (absent without metadata). */
function metadataArg(op: string, metadata: JsonValue | undefined): { metadataJson?: string } {
  if (metadata === undefined) return {};
  checkJsonField(op, "metadata", metadata, ANY_SIZE);
  return { metadataJson: JSON.stringify(metadata) };
}

/** A manifest as its wire argument. */
function manifestArg(op: string, manifest: Manifest): ManifestWire {
  if (manifest.data !== undefined) checkJsonField(op, "manifest.data", manifest.data, ANY_SIZE);
  return manifestToWire(manifest);
}

function uploadChunkArg(chunk: UploadChunkInput): UploadChunkWire {
  return defined({ ...chunk, bytes: toArrayBuffer(chunk.bytes) });
}

/** Arguments of `createSource`. */
export function createSourceArgs(input: CreateSourceInput): CreateSourceArgs {
  const { metadata, ...rest } = parseInput(createSourceInputSchema, input, "createSource");
  return defined({ ...rest, ...metadataArg("createSource", metadata) });
}

/** Arguments of `appendChunk`. */
export function appendChunkArgs(input: AppendChunkInput): AppendChunkArgs {
  const parsed = parseInput(appendChunkInputSchema, input, "appendChunk");
  return defined({ ...parsed, bytes: toArrayBuffer(parsed.bytes) });
}

/** Arguments of `sealSource`. */
export function sealSourceArgs(input: SealSourceInput): SealSourceArgs {
  const parsed = parseInput(sealSourceInputSchema, input, "sealSource");
  return {
    scope: parsed.scope,
    sourceId: parsed.sourceId,
    manifest: manifestArg("sealSource", parsed.manifest),
  };
}

/** Arguments of `uploadSource`. */
export function uploadSourceArgs(input: UploadSourceInput): UploadSourceArgs {
  const op = "uploadSource";
  const { metadata, chunks, manifest, ...rest } = parseInput(uploadSourceInputSchema, input, op);
  checkUploadChunkCount(chunks.length);
  return defined({
    ...rest,
    ...metadataArg(op, metadata),
    chunks: chunks.map(uploadChunkArg),
    manifest: manifestArg(op, manifest),
  });
}

/** Arguments of `getSource`. */
export function getSourceArgs(input: GetSourceInput): GetSourceArgs {
  return defined(parseInput(getSourceInputSchema, input, "getSource"));
}

/** Arguments of `getLatestSource`. */
export function getLatestSourceArgs(input: GetLatestSourceInput): GetLatestSourceArgs {
  return defined(parseInput(getLatestSourceInputSchema, input, "getLatestSource"));
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

/** Arguments of `abandonSource`. */
export function abandonSourceArgs(input: AbandonSourceInput): AbandonSourceArgs {
  return defined(parseInput(abandonSourceInputSchema, input, "abandonSource"));
}

/** Arguments of `releasePayloads`. */
export function releasePayloadsArgs(input: ReleasePayloadsInput): ReleasePayloadsArgs {
  return defined(parseInput(releasePayloadsInputSchema, input, "releasePayloads"));
}

/** Arguments of `cancelJob`. */
export function cancelJobArgs(input: CancelJobInput): CancelJobArgs {
  return defined(parseInput(cancelJobInputSchema, input, "cancelJob"));
}

/** Arguments of `gc` (an absent input means the defaults). */
export function gcArgs(input: GcInput | undefined): GcArgs {
  return defined(parseInput(gcInputSchema, input === undefined ? {} : input, "gc"));
}
