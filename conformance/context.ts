/**
 * The per-case context: a fresh harness, the suite's scripted handler, the manual clock
 * and helpers to upload, seal and run sources.
 *
 * @module
 */

import type { SyncAdapter } from "../src/contracts/adapter.ts";
import type { Job, Manifest, SealResult, Source } from "../src/contracts/domain.ts";
import { isTerminalJobState } from "../src/contracts/domain.ts";
import type { ApplyContext, SyncHandler, VerifyContext } from "../src/contracts/handler.ts";
import { compositeDigest, sha256Hex } from "../src/checksum.ts";
import { ManualClock } from "../src/clock.ts";
import { isSyncError, type SyncErrorCode } from "../src/errors.ts";
import type { PolicyOverrides } from "../src/policy/policy.ts";
import type { ConformanceFactory, ConformanceHarness } from "./types.ts";

/** The policy every case runs with (small numbers so limits and retries are cheap). */
export const SUITE_POLICY: PolicyOverrides = Object.freeze({
  retry: { maxAttempts: 4, baseDelayMs: 100, factor: 2, maxDelayMs: 1_000 },
  leaseMs: 10_000,
  heartbeatMs: 3_000,
  sourceTtlMs: 60 * 60 * 1000,
  retentionMs: 24 * 60 * 60 * 1000,
  limits: {
    maxChunkBytes: 64 * 1024,
    maxChunksPerSource: 10_000,
    maxSourceBytes: 4 * 1024 * 1024,
    maxMetadataBytes: 1024,
    maxManifestDataBytes: 4096,
    maxIdLength: 64,
  },
}) as PolicyOverrides;

/** The fixed jitter sample the suite injects: delays are 0.75 × the capped base. */
export const SUITE_RANDOM_SAMPLE = 0.5;

/** One call of the handler's `apply`, as the suite saw it. */
export interface AppliedChunk {
  scope: string;
  sourceId: string;
  jobId: string;
  index: number;
  bytes: Uint8Array;
  /** Clock time of the call. */
  at: number;
  /** Whether the call returned without throwing. */
  ok: boolean;
}

/** Behaviour of the scripted handler for one chunk; throw to fail the attempt. */
export type ApplyScript = (
  chunk: { index: number; bytes: Uint8Array },
  context: ApplyContext & Record<string, unknown>,
  call: number,
) => void | Promise<void>;

/** The suite's handler: records every call and runs the case's script. */
export class ScriptedHandler implements SyncHandler<Record<string, unknown>> {
  /** Every apply call, successful or not, in call order. */
  readonly calls: AppliedChunk[] = [];
  /** Every verify call. */
  readonly verifications: Job[] = [];
  readonly #clock: ManualClock;
  #apply: ApplyScript | undefined;
  #verify: ((context: VerifyContext) => void | Promise<void>) | undefined;

  constructor(clock: ManualClock) {
    this.#clock = clock;
  }

  /** Sets what `apply` does (default: succeed). */
  onApply(script: ApplyScript | undefined): void {
    this.#apply = script;
  }

  /** Sets what `verify` does (default: succeed). */
  onVerify(script: ((context: VerifyContext) => void | Promise<void>) | undefined): void {
    this.#verify = script;
  }

  /** Successful applications only. */
  get applied(): AppliedChunk[] {
    return this.calls.filter((call) => call.ok);
  }

  async apply(
    chunk: { index: number; bytes: Uint8Array },
    context: ApplyContext & Record<string, unknown>,
  ): Promise<void> {
    const record: AppliedChunk = {
      scope: context.job.scope,
      sourceId: context.job.sourceId,
      jobId: context.job.jobId,
      index: chunk.index,
      bytes: chunk.bytes.slice(),
      at: this.#clock.now(),
      ok: false,
    };
    const call = this.calls.length;
    this.calls.push(record);
    await this.#apply?.(chunk, context, call);
    record.ok = true;
  }

  async verify(context: VerifyContext): Promise<void> {
    this.verifications.push(context.job);
    await this.#verify?.(context);
  }
}

/** An uploaded source and what the runtime would declare about it. */
export interface UploadedSource {
  source: Source;
  chunks: Uint8Array[];
  digests: string[];
  manifest: Manifest;
}

const encoder = new TextEncoder();

/** Bytes of a UTF-8 string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The manifest a correct runtime computes for `chunks`. */
export async function manifestFor(
  chunks: readonly Uint8Array[],
  extra: Partial<Manifest> = {},
): Promise<{ manifest: Manifest; digests: string[] }> {
  const digests = await Promise.all(chunks.map((chunk) => sha256Hex(chunk)));
  return {
    digests,
    manifest: {
      chunkCount: chunks.length,
      byteCount: chunks.reduce((sum, chunk) => sum + chunk.length, 0),
      digest: compositeDigest(digests),
      ...extra,
    },
  };
}

/** Per-case state and helpers. */
export class CaseContext {
  readonly clock: ManualClock;
  readonly handler: ScriptedHandler;
  readonly harness: ConformanceHarness;
  /** The scope most cases use. */
  readonly scope = "scope-a";
  /** A second scope, for isolation checks. */
  readonly otherScope = "scope-b";
  #adapter: SyncAdapter;
  #conversation = 0;

  private constructor(harness: ConformanceHarness, clock: ManualClock, handler: ScriptedHandler) {
    this.harness = harness;
    this.clock = clock;
    this.handler = handler;
    this.#adapter = harness.adapter;
  }

  /** Builds a fresh harness through `factory`. */
  static async create(factory: ConformanceFactory, policy?: PolicyOverrides): Promise<CaseContext> {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const handler = new ScriptedHandler(clock);
    const harness = await factory({
      handler,
      policy: policy ? { ...SUITE_POLICY, ...policy } : SUITE_POLICY,
      clock,
      random: () => SUITE_RANDOM_SAMPLE,
    });
    return new CaseContext(harness, clock, handler);
  }

  /** The adapter under test (a new one after {@link CaseContext.restart}). */
  get adapter(): SyncAdapter {
    return this.#adapter;
  }

  /** A conversation id not used before in this case. */
  newConversationId(): string {
    return `conversation-${++this.#conversation}`;
  }

  /** Restarts a durable adapter over the same storage. */
  async restart(): Promise<SyncAdapter> {
    if (!this.harness.restart) throw new Error("harness has no restart hook");
    this.#adapter = await this.harness.restart();
    return this.#adapter;
  }

  /** Creates a source and appends `chunks` in order. */
  async upload(
    chunks: readonly Uint8Array[],
    options: { scope?: string; conversationId?: string; sourceId?: string } = {},
  ): Promise<UploadedSource> {
    const scope = options.scope ?? this.scope;
    const source = await this.adapter.createSource({
      scope,
      conversationId: options.conversationId ?? this.newConversationId(),
      sourceId: options.sourceId,
    });
    const { manifest, digests } = await manifestFor(chunks);
    for (let index = 0; index < chunks.length; index++) {
      await this.adapter.appendChunk({
        scope,
        sourceId: source.sourceId,
        index,
        bytes: chunks[index],
        sha256: digests[index],
      });
    }
    return { source, chunks: [...chunks], digests, manifest };
  }

  /** Uploads and seals `chunks`. */
  async uploadAndSeal(
    chunks: readonly Uint8Array[],
    options: { scope?: string; conversationId?: string; sourceId?: string } = {},
  ): Promise<UploadedSource & SealResult> {
    const uploaded = await this.upload(chunks, options);
    const sealed = await this.adapter.sealSource({
      scope: uploaded.source.scope,
      sourceId: uploaded.source.sourceId,
      manifest: uploaded.manifest,
    });
    return { ...uploaded, ...sealed };
  }

  /** Reads a job through the adapter. */
  async job(jobId: string, scope: string = this.scope): Promise<Job> {
    return await this.adapter.getJob({ scope, jobId });
  }

  /**
   * Drains, then moves the clock to the next retry and drains again, until the job is
   * terminal (at most `maxSteps` clock moves). Returns the terminal job.
   */
  async runToTerminal(jobId: string, scope: string = this.scope, maxSteps = 100): Promise<Job> {
    for (let step = 0; step <= maxSteps; step++) {
      await this.harness.drain();
      const job = await this.job(jobId, scope);
      if (isTerminalJobState(job.state)) return job;
      this.clock.set(Math.max(job.runAt, this.clock.now() + 1));
    }
    throw new Error(`job ${jobId} not terminal after ${maxSteps} clock steps`);
  }
}

/** Asserts that `action` rejects with a SyncError of `code`; returns the error. */
export async function expectSyncError(
  action: Promise<unknown> | (() => Promise<unknown>),
  code: SyncErrorCode,
): Promise<import("../src/errors.ts").SyncError> {
  try {
    await (typeof action === "function" ? action() : action);
  } catch (error) {
    if (isSyncError(error) && error.code === code) return error;
    const got = isSyncError(error) ? error.code : String(error);
    throw new Error(`expected ${code}, got ${got}`, { cause: error });
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}
