/**
 * CLI errors, exit codes and how an error is printed (`CODE: message`).
 *
 * @module
 */

import { isSyncError } from "@zakstam/codex-sync-engine";

/** Documented exit codes (`codex-sync --help` lists them). */
export const EXIT: {
  readonly ok: 0;
  readonly failure: 1;
  readonly usage: 2;
  readonly invalidInput: 3;
  readonly checkFailed: 4;
  readonly notFound: 5;
  readonly conflict: 6;
  readonly interrupted: 130;
} = {
  /** Everything succeeded (an unchanged file skipped as a no-op counts as success). */
  ok: 0,
  /** An operation failed: a job failed or was cancelled, the store is unreachable or locked. */
  failure: 1,
  /** The command line is wrong (unknown command or option, missing argument). */
  usage: 2,
  /** An input file is unreadable or holds a malformed line (without `--skip-invalid`). */
  invalidInput: 3,
  /** A check failed: `verify` found a mismatch, or `conformance` had failing cases. */
  checkFailed: 4,
  /** What was asked for does not exist (job, conversation, store, path). */
  notFound: 5,
  /**
   * A copy diverges from the conversation's current import (`import` without
   * `--replace`), or `export`/`restore` would overwrite a different file (without `--force`).
   */
  conflict: 6,
  /** Interrupted (Ctrl-C); an interrupted import resumes when run again. */
  interrupted: 130,
};

/** CLI-level error codes (the engine's `E_SYNC_*` codes are printed as they are). */
export type CliErrorCode =
  | "E_CLI_USAGE"
  | "E_CLI_INVALID_RECORD"
  | "E_CLI_FILE_CHANGED"
  | "E_CLI_DIVERGED"
  | "E_CLI_FILE_EXISTS"
  | "E_CLI_NOT_FOUND"
  | "E_CLI_STORE_LOCKED"
  | "E_CLI_VERIFY_FAILED"
  | "E_CLI_CONFORMANCE_FAILED"
  | "E_CLI_BAD_MODULE"
  | "E_CLI_UNAUTHORIZED";

const CLI_EXIT: Record<CliErrorCode, number> = {
  E_CLI_USAGE: EXIT.usage,
  E_CLI_INVALID_RECORD: EXIT.invalidInput,
  E_CLI_FILE_CHANGED: EXIT.invalidInput,
  E_CLI_DIVERGED: EXIT.conflict,
  E_CLI_FILE_EXISTS: EXIT.conflict,
  E_CLI_NOT_FOUND: EXIT.notFound,
  E_CLI_STORE_LOCKED: EXIT.failure,
  E_CLI_VERIFY_FAILED: EXIT.checkFailed,
  E_CLI_CONFORMANCE_FAILED: EXIT.checkFailed,
  E_CLI_BAD_MODULE: EXIT.usage,
  E_CLI_UNAUTHORIZED: EXIT.failure,
};

/** A failure meant for the person at the terminal. */
export class CliError extends Error {
  override name = "CliError";
  readonly code: CliErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(
    code: CliErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.details) this.details = options.details;
  }
}

/** A usage error (exit code 2). */
export function usage(message: string): CliError {
  return new CliError("E_CLI_USAGE", message);
}

/** The code printed for `error`. */
export function errorCode(error: unknown): string {
  if (error instanceof CliError) return error.code;
  if (isSyncError(error)) return error.code;
  return "E_CLI_INTERNAL";
}

/** The exit code for `error`. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof CliError) return CLI_EXIT[error.code];
  if (isSyncError(error)) {
    switch (error.code) {
      case "E_SYNC_ABORTED":
        return EXIT.interrupted;
      case "E_SYNC_JOB_NOT_FOUND":
      case "E_SYNC_SOURCE_NOT_FOUND":
        return EXIT.notFound;
      case "E_SYNC_VERIFICATION_FAILED":
        return EXIT.checkFailed;
      default:
        return EXIT.failure;
    }
  }
  return EXIT.failure;
}

/** The message of `error` without its code. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * `CODE: message`; with `verbose`, the stack and the chain of causes follow (a job's
 * recorded error is included either way when the error carries one).
 */
export function formatError(error: unknown, verbose: boolean): string {
  let text = `${errorCode(error)}: ${errorMessage(error)}`;
  const job = isSyncError(error)
    ? (error.details?.job as { jobId?: string; error?: { code: string; message: string } })
    : undefined;
  if (job?.error && !text.includes(job.error.message)) {
    text += `\n  job ${job.jobId}: ${job.error.code}: ${job.error.message}`;
  }
  if (verbose) {
    let current: unknown = error;
    let depth = 0;
    while (current instanceof Error && depth < 8) {
      if (depth > 0) text += `\ncaused by ${errorCode(current)}: ${current.message}`;
      if (current.stack) text += `\n${current.stack.split("\n").slice(1).join("\n")}`;
      current = current.cause;
      depth++;
    }
    if (current !== undefined && !(current instanceof Error)) text += `\ncaused by: ${current}`;
  }
  return text;
}
