/**
 * Engine records ↔ stored documents. A document is the record's wire shape plus storage
 * bookkeeping, which the conversions back drop.
 *
 * @module
 */

import {
  type ChunkInfo,
  isTerminalJobState,
  type Job,
  type Source,
} from "@zakstam/codex-sync-engine";
import { jobFromWire, jobToWire, sourceFromWire, sourceToWire } from "../codec.ts";
import type { JobWire, SourceWire } from "../wire.ts";
import type { ChunkDoc, JobDoc, SourceDoc } from "./schema.ts";

/** The bookkeeping fields of a stored source. */
export type SourceBookkeeping = Pick<
  SourceDoc,
  | "storedChunks"
  | "purgePending"
  | "purgeFrom"
  | "purgeable"
  | "purgeAt"
  | "releasePending"
  | "releaseFrom"
  | "releaseTo"
>;

/** Bookkeeping of a source that was just created. */
export const NEW_SOURCE_BOOKKEEPING: SourceBookkeeping = Object.freeze({
  storedChunks: 0,
  purgePending: false,
  purgeable: false,
  purgeAt: 0,
});

/**
 * When retention may purge the source's chunks. A failed source's chunks may go from
 * its failure on; a sealed source's from the end of its job, which the job's terminal
 * write records (`jobEnded`); purged chunks never again.
 */
export function purgeWindow(
  source: Source,
  previous: SourceBookkeeping,
): Pick<SourceBookkeeping, "purgeable" | "purgeAt"> {
  if (source.chunksPurgedAt !== undefined) return { purgeable: false, purgeAt: 0 };
  if (source.state === "failed" || source.state === "expired") {
    return { purgeable: true, purgeAt: source.updatedAt };
  }
  if (source.state === "sealed") {
    return { purgeable: previous.purgeable, purgeAt: previous.purgeAt };
  }
  return { purgeable: false, purgeAt: 0 };
}

/** The pending-release fields of `bookkeeping`: all three, or none. */
function pendingReleaseFields(
  bookkeeping: SourceBookkeeping,
): Pick<SourceBookkeeping, "releasePending" | "releaseFrom" | "releaseTo"> {
  const { releasePending, releaseFrom, releaseTo } = bookkeeping;
  if (!releasePending || releaseFrom === undefined || releaseTo === undefined) return {};
  return { releasePending, releaseFrom, releaseTo };
}

/** The document fields of `source` (bookkeeping included). */
export function sourceFields(
  source: Source,
  bookkeeping: SourceBookkeeping,
): SourceWire & SourceBookkeeping {
  return {
    ...sourceToWire(source),
    storedChunks: bookkeeping.storedChunks,
    purgePending: bookkeeping.purgePending,
    ...(bookkeeping.purgeFrom === undefined ? {} : { purgeFrom: bookkeeping.purgeFrom }),
    ...purgeWindow(source, bookkeeping),
    ...pendingReleaseFields(bookkeeping),
  };
}

/** The source a document stores. */
export function sourceOf(doc: SourceDoc): Source {
  return sourceFromWire(doc);
}

/** The document fields of `job`. */
export function jobFields(job: Job): JobWire & { active: boolean } {
  return { ...jobToWire(job), active: !isTerminalJobState(job.state) };
}

/** The job a document stores. */
export function jobOf(doc: JobDoc): Job {
  return jobFromWire(doc);
}

/** The digest and size a chunk document stores. */
export function chunkInfoOf(doc: ChunkDoc): ChunkInfo {
  const info: ChunkInfo = { index: doc.index, byteLength: doc.byteLength, sha256: doc.sha256 };
  if (doc.itemCount !== undefined) info.itemCount = doc.itemCount;
  return info;
}
