/**
 * A seeded, realistic Codex sessions tree for the import benchmark: rollout files in
 * the `YYYY/MM/DD/rollout-<date>T<time>-<session id>.jsonl` layout of ~/.codex/sessions,
 * each the repository's sample rollout (cli/scripts/sample_rollout.ts) with its own
 * session id, seed and start time, with heavy-tailed sizes like a real tree: most files
 * 20 KB–2 MB (log-uniform), a few large ones taking the rest of the total (20–60 MB
 * each in the 200-file, 316 MB tree of issue 17).
 *
 * @module
 */

import { join } from "node:path";
import { sampleRollout } from "../../cli/scripts/sample_rollout.ts";
import { mulberry32 } from "../seeded_random.ts";

const KB = 1000;
const MB = 1000 * 1000;

/** The small files' sizes are log-uniform in this range. */
export const SMALL_FILE_BYTES = { min: 20 * KB, max: 2 * MB } as const;

/** The share of files that are large (at least one). */
const LARGE_FILE_SHARE = 0.025;

/** Options of {@link sessionsTreePlan} and {@link writeSessionsTree}. */
export interface SessionsTreeOptions {
  /** Number of rollout files. */
  files: number;
  /** About this many bytes in all (each file overshoots its size by less than one turn). */
  totalBytes: number;
  /** The same seed always gives the same tree. */
  seed?: number;
}

/** One file of the tree, before it is written. */
export interface PlannedRollout {
  /** Path relative to the tree's root, `YYYY/MM/DD/rollout-….jsonl`. */
  path: string;
  sessionId: string;
  /** Target size in bytes. */
  bytes: number;
  /** The sample generator's seed. */
  seed: number;
  /** Start of the session, ms since the epoch. */
  startMs: number;
}

/** A written file of the tree. */
export interface WrittenRollout extends PlannedRollout {
  /** Absolute path. */
  file: string;
  /** Actual size in bytes. */
  writtenBytes: number;
  lines: number;
}

/** A written tree. */
export interface SessionsTree {
  root: string;
  files: WrittenRollout[];
  bytes: number;
  lines: number;
}

function hex(random: () => number, digits: number): string {
  let text = "";
  for (let i = 0; i < digits; i++) text += Math.floor(random() * 16).toString(16);
  return text;
}

/** A UUIDv7-shaped id, from `random`. */
function sessionId(random: () => number): string {
  return `0199${hex(random, 4)}-${hex(random, 4)}-7${hex(random, 3)}-9${hex(random, 3)}-${
    hex(random, 12)
  }`;
}

const pad = (value: number, width = 2) => String(value).padStart(width, "0");

/** `YYYY/MM/DD/rollout-YYYY-MM-DDTHH-MM-SS-<id>.jsonl`, as the Codex CLI names them. */
function rolloutPath(startMs: number, id: string): string {
  const at = new Date(startMs);
  const [y, m, d] = [at.getUTCFullYear(), pad(at.getUTCMonth() + 1), pad(at.getUTCDate())];
  const time = `${pad(at.getUTCHours())}-${pad(at.getUTCMinutes())}-${pad(at.getUTCSeconds())}`;
  return `${y}/${m}/${d}/rollout-${y}-${m}-${d}T${time}-${id}.jsonl`;
}

function checkOptions(options: SessionsTreeOptions): void {
  const { files, totalBytes, seed = 1 } = options;
  if (!Number.isSafeInteger(files) || files < 1) {
    throw new RangeError(`sessions tree: files must be a positive integer, got ${files}`);
  }
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 1) {
    throw new RangeError(
      `sessions tree: totalBytes must be a positive integer, got ${totalBytes}`,
    );
  }
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`sessions tree: seed must be an integer, got ${seed}`);
  }
}

/**
 * The files of the tree, without writing them: sizes, names, seeds. The small files'
 * sizes are drawn first; the large files share what is left of `totalBytes`, each at
 * least {@link SMALL_FILE_BYTES}.max (a RangeError when the total leaves less).
 */
export function sessionsTreePlan(options: SessionsTreeOptions): PlannedRollout[] {
  checkOptions(options);
  const random = mulberry32(options.seed ?? 1);
  const largeCount = Math.max(1, Math.round(options.files * LARGE_FILE_SHARE));
  const smallCount = options.files - largeCount;
  const logMin = Math.log(SMALL_FILE_BYTES.min);
  const logSpan = Math.log(SMALL_FILE_BYTES.max) - logMin;
  const sizes: number[] = [];
  for (let i = 0; i < smallCount; i++) {
    sizes.push(Math.round(Math.exp(logMin + random() * logSpan)));
  }
  const left = options.totalBytes - sizes.reduce((sum, size) => sum + size, 0);
  if (left < largeCount * SMALL_FILE_BYTES.max) {
    throw new RangeError(
      `sessions tree: ${options.totalBytes} bytes are too few for ${options.files} files ` +
        `(the ${smallCount} small ones take ${options.totalBytes - left}, leaving less than ` +
        `${SMALL_FILE_BYTES.max} bytes for each of the ${largeCount} large ones)`,
    );
  }
  const weights = Array.from({ length: largeCount }, () => 1 + 2 * random());
  const weightSum = weights.reduce((sum, weight) => sum + weight, 0);
  for (const weight of weights) sizes.push(Math.round(left * weight / weightSum));
  // Large files scattered among the small ones, as in a real tree.
  for (let i = sizes.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sizes[i], sizes[j]] = [sizes[j], sizes[i]];
  }
  const firstDay = Date.UTC(2025, 8, 1);
  return sizes.map((bytes, i) => {
    const id = sessionId(random);
    // About three months of sessions, in order, at whole seconds.
    const startMs = firstDay + i * Math.floor(90 * 86_400_000 / sizes.length) +
      Math.floor(random() * 3_600) * 1000;
    return {
      path: rolloutPath(startMs, id),
      sessionId: id,
      bytes,
      seed: (options.seed ?? 1) * 1_000 + i + 1,
      startMs,
    };
  });
}

/** Writes one planned file under `root`, in 1 MiB writes. */
async function writeRollout(root: string, plan: PlannedRollout): Promise<WrittenRollout> {
  const file = join(root, plan.path);
  await Deno.mkdir(join(file, ".."), { recursive: true });
  const encoder = new TextEncoder();
  const out = await Deno.open(file, { write: true, createNew: true });
  let writtenBytes = 0;
  let lines = 0;
  try {
    let batch = "";
    const flush = async () => {
      const bytes = encoder.encode(batch);
      for (let at = 0; at < bytes.length;) at += await out.write(bytes.subarray(at));
      writtenBytes += bytes.length;
      batch = "";
    };
    for (
      const line of sampleRollout({
        sessionId: plan.sessionId,
        targetBytes: plan.bytes,
        seed: plan.seed,
        startMs: plan.startMs,
      })
    ) {
      batch += line + "\n";
      lines++;
      if (batch.length >= 1 << 20) await flush();
    }
    await flush();
  } finally {
    out.close();
  }
  return { ...plan, file, writtenBytes, lines };
}

/** Writes the tree of `options` under `root` (which must not hold its files yet). */
export async function writeSessionsTree(
  root: string,
  options: SessionsTreeOptions,
): Promise<SessionsTree> {
  const files: WrittenRollout[] = [];
  for (const plan of sessionsTreePlan(options)) files.push(await writeRollout(root, plan));
  return {
    root,
    files,
    bytes: files.reduce((sum, file) => sum + file.writtenBytes, 0),
    lines: files.reduce((sum, file) => sum + file.lines, 0),
  };
}

/** One more complete line of a rollout (an agent message at `atMs`), with its newline. */
export function appendedLine(atMs: number): string {
  return JSON.stringify({
    timestamp: new Date(atMs).toISOString(),
    type: "event_msg",
    payload: {
      type: "agent_message",
      message: "Les tests passent maintenant ✅ — 请再检查一次迁移。 🎉",
    },
  }) + "\n";
}

/** A rollout of exactly one line (its `session_meta`), with its newline. */
export function oneLineRollout(sessionId: string, startMs: number): string {
  const [first] = sampleRollout({ sessionId, targetBytes: 1, startMs });
  return first + "\n";
}
