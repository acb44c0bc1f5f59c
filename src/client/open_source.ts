/**
 * Opening the source a sync uploads into: created fresh, or resumed by id.
 *
 * @module
 */

import type { SyncAdapter } from "../contracts/adapter.ts";
import type { ChunkInfo, JsonValue, Source } from "../contracts/domain.ts";
import type { CreateSourceInput } from "../contracts/inputs.ts";
import { SyncError } from "../errors.ts";

/** Runs one backend call (with retries and abort handling). */
export type CallBackend = <T>(operation: () => Promise<T>) => Promise<T>;

/** Where to upload. */
export interface SourceTarget {
  scope: string;
  conversationId: string;
  sourceId?: string;
  metadata?: JsonValue;
  /** Creates the source as an extension of this sealed source. */
  baseSourceId?: string;
}

/** A source ready to take chunks, with what it already holds. */
export interface OpenedSource {
  source: Source;
  /** Sealed already: nothing is uploaded, the seal is repeated. */
  sealed: boolean;
  /** Digests of the chunks already stored, by index. */
  stored: ReadonlyMap<number, string>;
}

const PAGE_LIMIT = 1000;

/**
 * Creates the source, or, for a `sourceId` that exists already, returns it with the
 * digests of the chunks it holds (`createSource` is idempotent per id). A failed or
 * expired source cannot be resumed: `E_SYNC_SOURCE_NOT_COLLECTING` / `E_SYNC_SOURCE_EXPIRED`.
 */
export async function openSource(
  adapter: SyncAdapter,
  target: SourceTarget,
  call: CallBackend,
): Promise<OpenedSource> {
  const input: CreateSourceInput = { scope: target.scope, conversationId: target.conversationId };
  if (target.sourceId !== undefined) input.sourceId = target.sourceId;
  if (target.metadata !== undefined) input.metadata = target.metadata;
  if (target.baseSourceId !== undefined) input.baseSourceId = target.baseSourceId;
  const source = await call(() => adapter.createSource(input));
  switch (source.state) {
    case "collecting": {
      // A source created without an id is new: nothing to list.
      const stored = target.sourceId === undefined
        ? new Map<number, string>()
        : await storedDigests(adapter, source, call);
      return { source, sealed: false, stored };
    }
    case "sealed":
      return { source, sealed: true, stored: new Map() };
    case "expired":
      throw new SyncError("E_SYNC_SOURCE_EXPIRED", `source ${source.sourceId} has expired`, {
        details: { source },
      });
    default: {
      const cause = source.error ? `: ${source.error.code}: ${source.error.message}` : "";
      throw new SyncError(
        "E_SYNC_SOURCE_NOT_COLLECTING",
        `source ${source.sourceId} is ${source.state}${cause}`,
        { details: { source } },
      );
    }
  }
}

async function storedDigests(
  adapter: SyncAdapter,
  source: Source,
  call: CallBackend,
): Promise<Map<number, string>> {
  const stored = new Map<number, string>();
  for (const chunk of await listAllChunks(adapter, source, call)) {
    stored.set(chunk.index, chunk.sha256);
  }
  return stored;
}

/** Every stored chunk of `source` (digest, length, item count), in index order. */
export async function listAllChunks(
  adapter: SyncAdapter,
  source: Source,
  call: CallBackend,
): Promise<ChunkInfo[]> {
  const infos: ChunkInfo[] = [];
  let cursor: string | undefined;
  do {
    const input = { scope: source.scope, sourceId: source.sourceId, limit: PAGE_LIMIT };
    const page = await call(() =>
      adapter.listChunks(cursor === undefined ? input : { ...input, cursor })
    );
    infos.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return infos;
}
