/**
 * `codex-sync export <conversation>...` and `restore <conversation>...`: the stored
 * conversation written back as the exact file — byte for byte what was imported — to
 * stdout, or under a directory in Codex's layout (`sessions/YYYY/MM/DD/rollout-….jsonl`,
 * `archived_sessions/rollout-….jsonl`), so a session can be resumed on another machine.
 * `restore` is `export` into `$CODEX_HOME` (default `~/.codex`).
 *
 * What is exported is what was imported: the file's complete lines. A last line that was
 * still being written (no newline yet) was never imported, so it is not exported either.
 * The bytes are checked against the import's SHA-256 as they are written; a file is
 * written to a temporary name and renamed into place only when they match.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join, resolve, sep } from "node:path";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, scopeOf, STORE_OPTIONS } from "../context.ts";
import { CliError, EXIT, usage } from "../errors.ts";
import { formatBytes } from "../format.ts";
import { rolloutDataOf } from "../handler.ts";
import type { CliHost } from "../host.ts";
import type { ImportRow, RecordTables } from "../records.ts";
import { parseLine, readPieces, ROLLOUT_FILE_PATTERN } from "../rollout.ts";
import type { OpenStore } from "../store.ts";
import { codexHome } from "./watch.ts";
import { withStore } from "./shared.ts";

const SELECT_OPTIONS = [
  {
    name: "all",
    type: "boolean" as const,
    description: "Every conversation of the scope",
  },
  {
    name: "force",
    type: "boolean" as const,
    description: "Overwrite a different file at the target path",
  },
];

/** The `export` command. */
export const exportCommand: Command = {
  spec: {
    name: "export",
    summary: "Write a stored conversation back as its exact file (stdout, or a directory)",
    description: `
Writes the conversation's imported file back, byte for byte, from the stored rows: to
stdout (one conversation), or with --out under a directory in Codex's layout:
<dir>/sessions/YYYY/MM/DD/rollout-….jsonl (archived sessions under
<dir>/archived_sessions/). The bytes are checked against the import's SHA-256.

What was imported is exported: the file's complete lines. A last line without its
newline (a session still being written) was left for a later import and is not in the
store. An existing file with the same bytes is left as it is; one that holds more (the
session went on) is kept; any other is not overwritten without --force (exit code 6).`,
    positionals: [{ name: "conversation", required: false, variadic: true }],
    options: [
      ...STORE_OPTIONS,
      {
        name: "out",
        type: "string",
        value: "<dir>",
        description: "Write under this directory (Codex's layout) instead of stdout",
      },
      ...SELECT_OPTIONS,
    ],
    examples: [
      "codex-sync export 0199a3c1-5e7b-7c2d-9f41-6a8b2e0d4c17 > session.jsonl",
      "codex-sync export --all --out ./backup",
    ],
  },
  run: (context, args) => runExport(context, args, "export"),
};

/** The `restore` command. */
export const restoreCommand: Command = {
  spec: {
    name: "restore",
    summary: "Write stored conversations back into $CODEX_HOME, so Codex can resume them",
    description: `
"export --out $CODEX_HOME": writes each conversation's file back, byte for byte, where
Codex looks for it: $CODEX_HOME/sessions/YYYY/MM/DD/rollout-….jsonl (archived sessions
in $CODEX_HOME/archived_sessions/); CODEX_HOME defaults to ~/.codex. A file already
there with the same bytes, or with more (the session went on there), is kept; a
different one is not overwritten without --force (exit code 6).`,
    positionals: [{ name: "conversation", required: false, variadic: true }],
    options: [
      ...STORE_OPTIONS,
      {
        name: "codex-home",
        type: "string",
        value: "<dir>",
        description: "Codex's directory (default $CODEX_HOME, else ~/.codex)",
      },
      ...SELECT_OPTIONS,
    ],
    examples: [
      "codex-sync restore 0199a3c1-5e7b-7c2d-9f41-6a8b2e0d4c17",
      "codex-sync restore --all --database-url postgres://me@server/app",
    ],
  },
  run: (context, args) => runExport(context, args, "restore"),
};

const NEWLINE = new Uint8Array([10]);
const PAGE = 2_000;

/**
 * The bytes of a conversation's current import, rebuilt from its rows, checked against
 * the import's SHA-256 and byte count at the end (`E_CLI_VERIFY_FAILED`).
 */
export async function* conversationBytes(
  tables: RecordTables,
  current: ImportRow,
  trailingNewline: boolean,
): AsyncGenerator<Uint8Array> {
  const hash = createHash("sha256");
  let bytes = 0;
  let lines = 0;
  let after = 0;
  const give = (piece: Uint8Array) => {
    hash.update(piece);
    bytes += piece.length;
    return piece;
  };
  for (;;) {
    const page = await tables.readLines(
      current.scope,
      current.rowSet,
      after,
      PAGE,
      current.lineCount,
    );
    for (const row of page) {
      if (row.lineNo !== lines + 1) break;
      if (lines > 0) yield give(NEWLINE);
      yield give(row.bytes);
      lines++;
      after = row.lineNo;
    }
    if (page.length < PAGE || lines !== after) break;
  }
  if (lines > 0 && trailingNewline) yield give(NEWLINE);
  const sha256 = hash.digest("hex");
  if (lines !== current.lineCount || bytes !== current.byteCount || sha256 !== current.fileSha256) {
    throw new CliError(
      "E_CLI_VERIFY_FAILED",
      `the stored rows of conversation ${current.conversationId} do not rebuild its import ` +
        `(${lines} of ${current.lineCount} lines, ${bytes} of ${current.byteCount} bytes` +
        (sha256 === current.fileSha256 ? "" : ", SHA-256 differs") +
        `); run "verify", then import its file again to repair it`,
    );
  }
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})T/;

/**
 * Where Codex keeps the file, relative to its home: the imported path's part from its
 * last `sessions` or `archived_sessions` directory on; else `sessions/YYYY/MM/DD/<name>`
 * from the session's start (its `session_meta` timestamp, else the file name's date,
 * else the import's date), with the file's own name when it is a rollout's.
 */
export async function codexLayoutPath(
  tables: RecordTables,
  current: ImportRow,
): Promise<string> {
  const parts = current.path.split(/[\\/]+/);
  for (let i = parts.length - 2; i >= 0; i--) {
    if (parts[i] === "sessions" || parts[i] === "archived_sessions") {
      const rest = parts.slice(i + 1).filter((part) => part !== "." && part !== "..");
      if (rest.length > 0) return join(parts[i], ...rest);
    }
  }
  const name = basename(current.path);
  let date: string | undefined;
  const [first] = await tables.readLines(current.scope, current.rowSet, 0, 1, 1);
  if (first) {
    const parsed = parseLine(first.bytes, true);
    if (parsed.valid) {
      const record = parsed.value as {
        timestamp?: unknown;
        payload?: { timestamp?: unknown };
      } | null;
      const stamp = record?.payload?.timestamp ?? record?.timestamp;
      if (typeof stamp === "string" && DATE.test(stamp)) date = stamp;
    }
  }
  date ??= /^rollout-(\d{4}-\d{2}-\d{2}T)/.exec(name)?.[1];
  date ??= new Date(current.importedAt).toISOString();
  const [, year, month, day] = DATE.exec(date)!;
  const file = ROLLOUT_FILE_PATTERN.test(name)
    ? name
    : `rollout-${date.slice(0, 19).replace(/:/g, "-")}-${current.conversationId}.jsonl`;
  return join("sessions", year, month, day, file);
}

/** How an existing file at the target compares with the export. */
async function compareExisting(
  host: CliHost,
  path: string,
  current: ImportRow,
): Promise<"missing" | "same" | "longer" | "different"> {
  const info = await host.stat(path);
  if (!info) return "missing";
  if (!info.isFile || info.size < current.byteCount) return "different";
  const hash = createHash("sha256");
  for await (const piece of readPieces(host.readFile(path), current.byteCount)) hash.update(piece);
  if (hash.digest("hex") !== current.fileSha256) return "different";
  return info.size === current.byteCount ? "same" : "longer";
}

async function selected(
  store: OpenStore,
  scope: string,
  args: ParsedArgs,
): Promise<ImportRow[]> {
  if (args.options.all === true) {
    if (args.positionals.length > 0) throw usage("give conversations or --all, not both");
    const count = await store.tables.countImports(scope);
    return count === 0 ? [] : await store.tables.listImports(scope, count);
  }
  if (args.positionals.length === 0) throw usage("name a conversation (or pass --all)");
  const rows: ImportRow[] = [];
  for (const conversationId of new Set(args.positionals)) {
    const row = await store.tables.getImport(scope, conversationId);
    if (!row) {
      throw new CliError(
        "E_CLI_NOT_FOUND",
        `conversation ${conversationId} has no completed import in scope ${scope}`,
      );
    }
    rows.push(row);
  }
  return rows;
}

function runExport(
  context: CommandContext,
  args: ParsedArgs,
  command: "export" | "restore",
): Promise<number> {
  const { host } = context;
  return withStore(context, args, command, async (store) => {
    const scope = scopeOf(context, args);
    const rows = await selected(store, scope, args);
    const trailing = async (row: ImportRow) => {
      const source = await store.adapter.getSource({ scope, sourceId: row.sourceId });
      return source.manifest ? rolloutDataOf(source.manifest).trailingNewline : true;
    };
    const outDir = command === "restore"
      ? (args.options["codex-home"] as string | undefined) ?? codexHome(context)
      : args.options.out as string | undefined;
    if (outDir === undefined) {
      if (rows.length !== 1) {
        throw usage("export to stdout takes one conversation (use --out <dir> for more)");
      }
      if (args.options.force === true) throw usage("--force is for --out");
      const writeBytes = host.stdout.writeBytes?.bind(host.stdout);
      if (!writeBytes) throw usage("this host cannot write bytes to stdout; use --out <dir>");
      for await (const piece of conversationBytes(store.tables, rows[0], await trailing(rows[0]))) {
        await writeBytes(piece);
      }
      return EXIT.ok;
    }
    const root = resolve(host.cwd(), outDir);
    let conflicts = 0;
    for (const row of rows) {
      const relative = await codexLayoutPath(store.tables, row);
      const path = join(root, relative);
      if (!path.startsWith(root + sep)) {
        throw new CliError("E_CLI_USAGE", `refusing to write outside ${root}: ${relative}`);
      }
      const existing = await compareExisting(host, path, row);
      let status: "written" | "unchanged" | "kept-longer" | "conflict" = "written";
      if (existing === "same") status = "unchanged";
      else if (existing === "longer" && args.options.force !== true) status = "kept-longer";
      else if (existing === "different" && args.options.force !== true) status = "conflict";
      if (status === "written") {
        await host.mkdir(dirname(path));
        await host.writeFile(path, conversationBytes(store.tables, row, await trailing(row)));
      }
      const result = {
        conversationId: row.conversationId,
        path,
        status,
        lines: row.lineCount,
        bytes: row.byteCount,
        sha256: row.fileSha256,
      };
      if (context.json) host.stdout.write(JSON.stringify(result) + "\n");
      else host.stdout.write(exportLine(command, result) + "\n");
      if (status === "conflict") conflicts++;
    }
    if (conflicts > 0) {
      throw new CliError(
        "E_CLI_FILE_EXISTS",
        `${conflicts} file(s) already exist with other content; nothing written there ` +
          `(--force overwrites them)`,
      );
    }
    return EXIT.ok;
  });
}

function exportLine(
  command: string,
  result: { conversationId: string; path: string; status: string; lines: number; bytes: number },
): string {
  const what = `${result.conversationId} → ${result.path}`;
  switch (result.status) {
    case "written":
      return `${command === "restore" ? "restored" : "exported"} ${what} ` +
        `(${result.lines} lines, ${formatBytes(result.bytes)}, verified)`;
    case "unchanged":
      return `unchanged ${what}: the file there has the same bytes`;
    case "kept-longer":
      return `kept      ${what}: the file there holds these lines and more (--force replaces it)`;
    default:
      return `conflict  ${what}: a different file is there; not overwritten (--force replaces it)`;
  }
}
