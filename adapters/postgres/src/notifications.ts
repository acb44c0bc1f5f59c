/**
 * Change notification for jobs. After a transaction that wrote jobs commits, this hub
 * fans the writes out to the process's waiters and worker at once, and announces them to
 * other processes with a NOTIFY on the tables' channel, sent as its own statement after
 * the commit: the writes of every commit made while one NOTIFY statement is in flight go
 * out together in the next. A NOTIFY inside the writing transaction would hold the
 * server's notification lock through that transaction's WAL flush, so no two writing
 * commits could be flushed together. The NOTIFY statement commits without waiting for its
 * flush (`synchronous_commit` off): a notification needs no durability.
 *
 * A payload carries the job's key, state and `runAt`, and for a write that ends the job
 * its record too: a waiter in another process needs the final record, while a write
 * that leaves the job unfinished only wakes workers (its record would be copied to
 * every listening connection for nothing).
 *
 * Writes by other processes arrive over LISTEN (this hub's own echo is ignored).
 * Notifications can be lost: while the listening connection is down (so on every
 * (re)connect everyone is told to look again), or when a process stops between a commit
 * and its NOTIFY; so waiters are also re-checked by a bounded poll on the clock, and the
 * worker polls too.
 *
 * @module
 */

import {
  type Clock,
  isTerminalJobState,
  type Job,
  JOB_STATES,
  type JobListener,
  type JobState,
  type KnownJob,
} from "@zakstam/codex-sync-engine";
import type { PostgresDriver, Unlisten } from "./driver.ts";

/** A committed job write, as announced. */
export interface JobNotice {
  scope: string;
  jobId: string;
  state: JobState;
  runAt: number;
  /**
   * The job as the commit wrote it, when the announcement carried it: always in the
   * process that wrote it; from another process, for a write that ended the job.
   */
  job?: Job;
}

/**
 * Told about job writes: a notice, or `undefined` when anything may have changed
 * (the listening connection was re-established).
 */
export type JobNoticeListener = (notice: JobNotice | undefined) => void;

// NOTIFY payloads must stay below 8000 bytes; longer ones become a bare "look again".
const MAX_PAYLOAD_BYTES = 7_900;
/**
 * Jobs a hub remembers per generation for {@link JobNotifications.knownJob}: it keeps the
 * last announcement of the jobs announced in this generation and the one before.
 */
export const KNOWN_JOBS_PER_GENERATION = 1_024;
/** Most notifications one NOTIFY statement carries. */
export const MAX_NOTICES_PER_STATEMENT = 500;
// One statement, its own transaction: the payloads as a JSON array of strings (both
// drivers bind a text parameter alike), committed without waiting for the WAL flush.
const NOTIFY_STATEMENT = `SELECT count(pg_notify($1::text, payload))::integer AS sent
  FROM json_array_elements_text($2::text::json) AS payload,
    set_config('synchronous_commit', 'off', true) AS setting`;
const encoder = new TextEncoder();

/** True when `text` is at most {@link MAX_PAYLOAD_BYTES} in UTF-8 (≤ 3 bytes per UTF-16 unit). */
function fitsPayload(text: string): boolean {
  return text.length * 3 <= MAX_PAYLOAD_BYTES || encoder.encode(text).length <= MAX_PAYLOAD_BYTES;
}

const jobKey = (scope: string, jobId: string): string => `${scope.length}:${scope}:${jobId}`;

/** A job write as announced: its key, state and `runAt`; its record as written or as text. */
interface Announcement {
  scope: string;
  jobId: string;
  state: JobState;
  runAt: number;
  /** The record, in the process that wrote it. */
  job?: Job;
  /** The record as a payload carries it (JSON; from another process, not yet parsed). */
  record?: string;
}

/** An announcement remembered for {@link JobNotifications.knownJob}: the record as JSON. */
interface Remembered {
  state: JobState;
  record?: string;
}

/** The record `text` carries, if it is JSON of a job of `scope`/`jobId` in `state`. */
function parseRecord(
  text: string,
  scope: string,
  jobId: string,
  state: JobState,
): Job | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isRecordOf(value, scope, jobId, state) ? value : undefined;
  } catch {
    return undefined; // not a record: the notice is a prompt to read
  }
}

/**
 * A notice from another process, for `onJob` listeners: the record a payload carries is
 * parsed only when someone reads `job`, since most hubs hearing a notice never do.
 */
class HeardNotice implements JobNotice {
  readonly scope: string;
  readonly jobId: string;
  readonly state: JobState;
  readonly runAt: number;
  declare readonly job: Job | undefined;

  constructor(heard: Announcement) {
    this.scope = heard.scope;
    this.jobId = heard.jobId;
    this.state = heard.state;
    this.runAt = heard.runAt;
    let job: Job | undefined;
    let unread = heard.record;
    // An own, enumerable property (as on a notice of this process): spreads and JSON keep it.
    Object.defineProperty(this, "job", {
      enumerable: true,
      get: (): Job | undefined => {
        if (unread !== undefined) {
          job = parseRecord(unread, heard.scope, heard.jobId, heard.state);
          unread = undefined;
        }
        return job;
      },
    });
  }
}

const JOB_STATE_NAMES: ReadonlySet<unknown> = new Set<JobState>(JOB_STATES);

/**
 * Parses a payload: its key is a JSON array `[origin, scope, jobId, state, runAt]`, then,
 * for a write that ended the job and where it fits, a newline and the record (JSON never
 * holds a raw newline). `[origin]` alone means "look again"; undefined: not a payload.
 */
function parsePayload(payload: string): { origin: string; heard?: Announcement } | undefined {
  const cut = payload.indexOf("\n");
  let value: unknown;
  try {
    value = JSON.parse(cut < 0 ? payload : payload.slice(0, cut));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || typeof value[0] !== "string") return undefined;
  const [origin, scope, jobId, state, runAt] = value;
  if (typeof scope !== "string" || typeof jobId !== "string" || !JOB_STATE_NAMES.has(state)) {
    return { origin };
  }
  const heard: Announcement = { scope, jobId, state, runAt: Number(runAt) };
  if (cut >= 0) heard.record = payload.slice(cut + 1);
  return { origin, heard };
}

/** True when `value` is a job record of `scope`/`jobId` in `state` (as a payload carries it). */
function isRecordOf(value: unknown, scope: string, jobId: string, state: unknown): value is Job {
  if (typeof value !== "object" || value === null) return false;
  const job = value as Partial<Job>;
  return job.scope === scope && job.jobId === jobId && job.state === state;
}

/** Fans job writes out to subscribers; one per adapter, shared by its stores. */
export class JobNotifications {
  /** Identifies this hub's own NOTIFYs, so their echo is not delivered twice. */
  readonly origin: string = crypto.randomUUID();
  readonly #echoPrefix = JSON.stringify([this.origin]).slice(0, -1);
  readonly #driver: PostgresDriver;
  readonly #channel: string;
  readonly #clock: Clock;
  readonly #pollIntervalMs: number;
  readonly #jobListeners = new Map<string, Set<JobListener>>();
  readonly #listeners = new Set<JobNoticeListener>();
  readonly #stateListeners = new Set<JobNoticeListener>();
  /**
   * Set by the first {@link JobNotifications.knownJob}: only a hub that is asked (one
   * with waiters) keeps records, so a worker's hub does no bookkeeping per notice.
   */
  #remembering = false;
  /**
   * The last record heard of each recently announced job, as JSON (parsed only when
   * asked): this generation's and the previous one's.
   */
  #known = new Map<string, Remembered>();
  #knownBefore = new Map<string, Remembered>();
  readonly #onSendError: ((error: unknown) => void) | undefined;
  /** Payloads committed and not yet sent to other processes. */
  #outbox: string[] = [];
  #sending: Promise<void> | undefined;
  #unlisten: Unlisten | undefined;
  #pollTimer: unknown;
  #closed = false;

  /** `onSendError`: told when a NOTIFY statement fails (its notifications are lost). */
  constructor(
    driver: PostgresDriver,
    channel: string,
    clock: Clock,
    pollIntervalMs: number,
    onSendError?: (error: unknown) => void,
  ) {
    this.#driver = driver;
    this.#channel = channel;
    this.#clock = clock;
    this.#pollIntervalMs = pollIntervalMs;
    this.#onSendError = onSendError;
  }

  /** The channel NOTIFYs go to. */
  get channel(): string {
    return this.#channel;
  }

  /** Starts listening for other processes' job writes. */
  async start(): Promise<void> {
    this.#unlisten = await this.#driver.listen(
      this.#channel,
      (payload) => this.#onPayload(payload),
      () => this.#announceAll(),
    );
  }

  /**
   * The NOTIFY payload announcing a write of `job`: its key, state and `runAt`, with the
   * record when the write ended the job and it fits; else "look again".
   */
  payload(job: Job): string {
    return this.#payloadOf(job).text;
  }

  /** The payload, and the record as JSON where the payload carries it. */
  #payloadOf(job: Job): { text: string; record?: string } {
    const key = JSON.stringify([this.origin, job.scope, job.jobId, job.state, job.runAt]);
    if (isTerminalJobState(job.state)) {
      const record = JSON.stringify(job);
      const text = `${key}\n${record}`;
      if (fitsPayload(text)) return { text, record };
    }
    return { text: fitsPayload(key) ? key : JSON.stringify([this.origin]) };
  }

  /**
   * Announces jobs written by a transaction of this hub's stores that just committed: to
   * this process at once, to other processes by the next NOTIFY statement.
   */
  publish(jobs: Iterable<Job>): void {
    if (this.#closed) return;
    let queued = false;
    for (const job of jobs) {
      const { scope, jobId, state, runAt } = job;
      const { text, record } = this.#payloadOf(job);
      this.#announce({ scope, jobId, state, runAt, job, record });
      this.#outbox.push(text);
      queued = true;
    }
    if (queued) this.#send();
  }

  /** Resolves once every notification published so far was sent (or failed to be). */
  async flushed(): Promise<void> {
    while (this.#sending) await this.#sending;
  }

  /** Sends the outbox, one statement at a time; what is published meanwhile goes next. */
  #send(): void {
    if (this.#sending) return;
    this.#sending = (async () => {
      while (this.#outbox.length > 0) {
        const batch = this.#outbox.splice(0, MAX_NOTICES_PER_STATEMENT);
        try {
          await this.#driver.query(NOTIFY_STATEMENT, [this.#channel, JSON.stringify(batch)]);
        } catch (error) {
          this.#onSendError?.(error);
        }
      }
    })().finally(() => {
      this.#sending = undefined;
    });
  }

  /**
   * Calls `listener` after each committed write of the job: with the job where this hub
   * has the record (every write of this process; another's that ended the job), else
   * with the state the write left it in; with neither on every poll tick and reconnect.
   */
  subscribeJob(scope: string, jobId: string, listener: JobListener): () => void {
    const key = jobKey(scope, jobId);
    let listeners = this.#jobListeners.get(key);
    if (!listeners) this.#jobListeners.set(key, listeners = new Set());
    listeners.add(listener);
    this.#armPoll();
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.#jobListeners.get(key) === listeners) {
        this.#jobListeners.delete(key);
      }
      if (this.#jobListeners.size === 0) this.#disarmPoll();
    };
  }

  /**
   * The state the job's last announcement left it in, with the record where it carried
   * one, if this hub remembers it: a commit after that announcement will be announced
   * too (or the poll prompts a read). A hub starts remembering when first asked, so that
   * first answer is always undefined.
   */
  knownJob(scope: string, jobId: string): KnownJob | undefined {
    this.#remembering = !this.#closed;
    const key = jobKey(scope, jobId);
    const known = this.#known.get(key) ?? this.#knownBefore.get(key);
    if (!known) return undefined;
    if (known.record === undefined) return { state: known.state };
    const job = parseRecord(known.record, scope, jobId, known.state);
    return job && { state: known.state, job };
  }

  /** Calls `listener` for every job write, local or remote, with the record where carried. */
  onJob(listener: JobNoticeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls `listener` for every job write, local or remote, without the record (cheaper). */
  onJobState(listener: JobNoticeListener): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** Sends what was published, then stops listening and polling. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#remembering = false;
    await this.flushed();
    this.#disarmPoll();
    this.#jobListeners.clear();
    this.#listeners.clear();
    this.#stateListeners.clear();
    this.#forgetAll();
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await unlisten?.().catch(() => {});
  }

  #onPayload(payload: string): void {
    // This hub's own echo, told apart before parsing (every payload starts with its origin).
    if (payload.startsWith(this.#echoPrefix)) return;
    const parsed = parsePayload(payload);
    if (!parsed || parsed.origin === this.origin) return;
    if (parsed.heard) this.#announce(parsed.heard);
    else this.#announceAll();
  }

  #announce(write: Announcement): void {
    if (this.#closed) return;
    const { scope, jobId, state, runAt } = write;
    const key = jobKey(scope, jobId);
    if (this.#remembering) this.#remember(key, write);
    const listeners = this.#jobListeners.get(key);
    if (listeners) {
      const job = write.job ??
        (write.record === undefined ? undefined : parseRecord(write.record, scope, jobId, state));
      // A carried record that is not this job's: only a prompt to read.
      const known = write.record === undefined ? state : undefined;
      for (const listener of [...listeners]) {
        if (job) listener(structuredClone(job));
        else listener(undefined, known);
      }
    }
    for (const listener of [...this.#stateListeners]) listener({ scope, jobId, state, runAt });
    if (this.#listeners.size > 0) {
      const notice: JobNotice = write.job
        ? { scope, jobId, state, runAt, job: write.job }
        : new HeardNotice(write);
      for (const listener of [...this.#listeners]) listener(notice);
    }
  }

  #announceAll(): void {
    if (this.#closed) return;
    this.#forgetAll();
    this.#pokeWaiters();
    for (const listener of [...this.#stateListeners]) listener(undefined);
    for (const listener of [...this.#listeners]) listener(undefined);
  }

  /**
   * Keeps the state a write left the job in, and its record where it carries one.
   * Notices from several processes may arrive out of order, so a terminal state, which
   * no later commit changes, is never replaced.
   */
  #remember(key: string, write: Announcement): void {
    const held = this.#known.get(key) ?? this.#knownBefore.get(key);
    if (held && isTerminalJobState(held.state)) return;
    this.#knownBefore.delete(key);
    if (!this.#known.has(key) && this.#known.size >= KNOWN_JOBS_PER_GENERATION) {
      this.#knownBefore = this.#known;
      this.#known = new Map();
    }
    const record = write.record ?? (write.job && JSON.stringify(write.job));
    this.#known.set(
      key,
      record === undefined ? { state: write.state } : { state: write.state, record },
    );
  }

  #forgetAll(): void {
    this.#known.clear();
    this.#knownBefore.clear();
  }

  #pokeWaiters(): void {
    for (const listeners of [...this.#jobListeners.values()]) {
      for (const listener of [...listeners]) listener();
    }
  }

  #armPoll(): void {
    if (this.#pollTimer !== undefined || this.#closed) return;
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      if (this.#jobListeners.size === 0) return;
      this.#pokeWaiters();
      this.#armPoll();
    }, this.#pollIntervalMs);
  }

  #disarmPoll(): void {
    if (this.#pollTimer === undefined) return;
    this.#clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
  }
}
