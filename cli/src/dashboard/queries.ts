/**
 * The dashboard's reads of the CLI's record tables (`codex_rollout_imports`) and views
 * (`codex_rollout_lines`), always in one scope and always bounded: conversations a page
 * at a time (keyset on the import time), a conversation's messages a page at a time
 * (keyset on the line number, each text cut at {@link MAX_TEXT_CHARS}), so a 200 MB
 * conversation is never read whole; a title is looked for in the first
 * {@link TITLE_SCAN_LINES} lines. The text search is the exception: it scans the scope's
 * lines (a substring match has no index to use). Tool outputs are looked up by `call_id` among the
 * lines following the page, up to {@link OUTPUT_WINDOW_LINES} past it.
 *
 * @module
 */

import { SyncError } from "@zakstam/codex-sync-engine";
import type { SqlExecutor, SqlRow } from "@zakstam/codex-sync-engine-postgres";
import { type RecordTableNames, recordTableNames } from "../records.ts";

/** Longest text of one message, reasoning, arguments or output sent to the page. */
export const MAX_TEXT_CHARS = 20_000;

/** How many lines past a page's last item its tool outputs are looked for. */
export const OUTPUT_WINDOW_LINES = 2_000;

/** Most items on one page of the viewer. */
export const MAX_PAGE_ITEMS = 200;

/** Longest title (the first user message) shown in the list. */
export const TITLE_CHARS = 160;

/** The title is the first user message among this many first lines. */
export const TITLE_SCAN_LINES = 2_000;

/** One conversation of the list. */
export interface ConversationSummary {
  conversationId: string;
  /** The first user message (cut at {@link TITLE_CHARS}), when there is one. */
  title: string | undefined;
  path: string;
  lineCount: number;
  byteCount: number;
  importedAt: number;
  jobId: string;
  damaged: boolean;
}

/** A page of conversations; `next` is the cursor of the following page. */
export interface ConversationPage {
  items: ConversationSummary[];
  next?: string;
}

/** One shown item of a conversation, in line order. */
export interface ConversationItem {
  lineNo: number;
  timestamp: string | undefined;
  kind: "message" | "reasoning" | "tool_call";
  role: string;
  /** Message or reasoning text (cut), and its full length in characters. */
  text: string;
  textLength: number;
  tool?: string;
  callId?: string;
  arguments?: string;
  argumentsLength?: number;
  /** The call's output, when found (cut), and its full length and line. */
  output?: { text: string; length: number; lineNo: number };
}

/** A page of a conversation; `next` is the line number to continue after. */
export interface ItemPage {
  items: ConversationItem[];
  next?: number;
}

const ITEM_TYPES = [
  "message",
  "reasoning",
  "function_call",
  "custom_tool_call",
  "local_shell_call",
];
const OUTPUT_TYPES = ["function_call_output", "custom_tool_call_output"];

// A JSON array's `text` members, joined by newlines (the codex_messages view's rule).
const joinedText = (array: string) =>
  `(SELECT string_agg(c->>'text', E'\\n' ORDER BY n)
     FROM jsonb_array_elements(CASE WHEN jsonb_typeof(${array}) = 'array'
       THEN ${array} ELSE '[]'::jsonb END) WITH ORDINALITY AS e(c, n))`;

function likePattern(text: string): string {
  return "%" + text.replace(/[\\%_]/g, (c) => "\\" + c) + "%";
}

function summaryOf(row: SqlRow): ConversationSummary {
  return {
    conversationId: String(row.conversation_id),
    title: row.title === null || row.title === undefined ? undefined : String(row.title),
    path: String(row.path),
    lineCount: Number(row.line_count),
    byteCount: Number(row.byte_count),
    importedAt: Number(row.imported_at),
    jobId: String(row.job_id),
    damaged: row.damaged === true,
  };
}

function optional(value: unknown): string | undefined {
  return value === null || value === undefined ? undefined : String(value);
}

/** The dashboard's queries. */
export interface DashboardQueries {
  /** Conversations newest import first; `search` matches the id, the path or any line's text. */
  listConversations(
    scope: string,
    options: { search?: string; after?: string; limit: number },
  ): Promise<ConversationPage>;
  getConversation(scope: string, conversationId: string): Promise<ConversationSummary | undefined>;
  /** Up to `limit` items after line `afterLine`, tool calls paired with their outputs. */
  readItems(
    scope: string,
    conversationId: string,
    afterLine: number,
    limit: number,
  ): Promise<ItemPage>;
}

/** The queries over `sql`, on the tables of `names` (default: the CLI's, in `public`). */
export function dashboardQueries(
  sql: SqlExecutor,
  names: RecordTableNames = recordTableNames(),
): DashboardQueries {
  const title = `(SELECT left(${joinedText("l.record->'payload'->'content'")}, ${TITLE_CHARS})
      FROM ${names.lines} l
      WHERE l.scope = i.scope AND l.conversation_id = i.conversation_id
        AND l.line_no <= ${TITLE_SCAN_LINES} AND l.record_type = 'response_item'
        AND l.record->'payload'->>'type' = 'message' AND l.record->'payload'->>'role' = 'user'
      ORDER BY l.line_no LIMIT 1) AS title`;
  const columns =
    `i.conversation_id, i.path, i.line_count, i.byte_count, i.imported_at, i.job_id, i.damaged`;
  return {
    async listConversations(scope, { search, after, limit }) {
      const params: unknown[] = [scope, Math.min(Math.max(limit, 1), 100) + 1];
      const where = ["i.scope = $1::text"];
      if (search) {
        params.push(likePattern(search));
        where.push(`(i.conversation_id ILIKE $3::text ESCAPE '\\' OR i.path ILIKE $3::text
          ESCAPE '\\' OR EXISTS (SELECT 1 FROM ${names.lines} s
            WHERE s.scope = i.scope AND s.conversation_id = i.conversation_id
              AND s.line ILIKE $3::text ESCAPE '\\'))`);
      }
      const cursor = after === undefined ? null : /^(\d{1,16}):(.*)$/s.exec(after);
      if (after !== undefined && !cursor) {
        throw new SyncError("E_SYNC_INVALID_ARGUMENT", "not a page cursor of this list");
      }
      if (cursor) {
        params.push(Number(cursor[1]), cursor[2]);
        const t = params.length - 1;
        where.push(`(i.imported_at < $${t}::bigint
          OR (i.imported_at = $${t}::bigint AND i.conversation_id > $${t + 1}::text))`);
      }
      const rows = await sql.query(
        `SELECT ${columns}, ${title} FROM ${names.imports} i WHERE ${where.join(" AND ")}
          ORDER BY i.imported_at DESC, i.conversation_id LIMIT $2::integer`,
        params,
      );
      const items = rows.map(summaryOf);
      const pageSize = Number(params[1]) - 1;
      if (items.length <= pageSize) return { items };
      items.length = pageSize;
      const last = items[pageSize - 1];
      return { items, next: `${last.importedAt}:${last.conversationId}` };
    },

    async getConversation(scope, conversationId) {
      const [row] = await sql.query(
        `SELECT ${columns}, ${title} FROM ${names.imports} i
          WHERE i.scope = $1::text AND i.conversation_id = $2::text`,
        [scope, conversationId],
      );
      return row ? summaryOf(row) : undefined;
    },

    async readItems(scope, conversationId, afterLine, limit) {
      const size = Math.min(Math.max(limit, 1), MAX_PAGE_ITEMS);
      // The page's lines are parsed once (MATERIALIZED), then picked apart.
      const rows = await sql.query(
        `WITH page AS MATERIALIZED (
          SELECT l.line_no, l.record AS r FROM ${names.lines} l
          WHERE l.scope = $1::text AND l.conversation_id = $2::text AND l.line_no > $3::integer
            AND l.record_type = 'response_item'
            AND l.record->'payload'->>'type' IN (SELECT jsonb_array_elements_text($5::text::jsonb))
          ORDER BY l.line_no LIMIT $4::integer
        ), parts AS (
          SELECT line_no, r->>'timestamp' AS ts, r->'payload'->>'type' AS type,
            r->'payload'->>'role' AS role, r->'payload'->>'name' AS tool,
            r->'payload'->>'call_id' AS call_id,
            COALESCE(r->'payload'->>'arguments', r->'payload'->>'input',
              (r->'payload'->'action')::text) AS args,
            CASE r->'payload'->>'type'
              WHEN 'message' THEN ${joinedText("r->'payload'->'content'")}
              WHEN 'reasoning' THEN ${joinedText("r->'payload'->'summary'")}
            END AS text
          FROM page
        )
        SELECT line_no, ts, type, role, tool, call_id,
          left(text, ${MAX_TEXT_CHARS}) AS text, COALESCE(length(text), 0) AS text_length,
          left(args, ${MAX_TEXT_CHARS}) AS args, length(args) AS args_length
        FROM parts ORDER BY line_no`,
        [scope, conversationId, afterLine, size + 1, JSON.stringify(ITEM_TYPES)],
      );
      const more = rows.length > size;
      if (more) rows.length = size;
      const items: ConversationItem[] = rows.map((row) => {
        const type = String(row.type);
        const kind = type === "message"
          ? "message"
          : type === "reasoning"
          ? "reasoning"
          : "tool_call";
        const item: ConversationItem = {
          lineNo: Number(row.line_no),
          timestamp: optional(row.ts),
          kind,
          role: kind === "message" ? String(row.role ?? "unknown") : "assistant",
          text: String(row.text ?? ""),
          textLength: Number(row.text_length),
        };
        if (kind === "tool_call") {
          item.tool = optional(row.tool) ?? type;
          item.callId = optional(row.call_id);
          item.arguments = String(row.args ?? "");
          item.argumentsLength = Number(row.args_length ?? 0);
        }
        return item;
      });
      const calls = items.filter((item) => item.callId !== undefined);
      if (calls.length > 0) {
        const outputs = await sql.query(
          `SELECT DISTINCT ON (call_id) call_id, line_no, left(output, ${MAX_TEXT_CHARS}) AS output,
              COALESCE(length(output), 0) AS output_length
            FROM (SELECT l.line_no, l.record->'payload'->>'call_id' AS call_id,
                l.record->'payload'->>'output' AS output
              FROM ${names.lines} l
              WHERE l.scope = $1::text AND l.conversation_id = $2::text
                AND l.line_no > $3::integer AND l.line_no <= $4::integer
                AND l.record_type = 'response_item'
                AND l.record->'payload'->>'type' IN (SELECT jsonb_array_elements_text($6::text::jsonb))) o
            WHERE call_id IN (SELECT jsonb_array_elements_text($5::text::jsonb))
            ORDER BY call_id, line_no`,
          [
            scope,
            conversationId,
            calls[0].lineNo,
            items[items.length - 1].lineNo + OUTPUT_WINDOW_LINES,
            JSON.stringify(calls.map((call) => call.callId!)),
            JSON.stringify(OUTPUT_TYPES),
          ],
        );
        const byCall = new Map(outputs.map((row) => [String(row.call_id), row]));
        for (const call of calls) {
          const found = byCall.get(call.callId!);
          if (found && Number(found.line_no) > call.lineNo) {
            call.output = {
              text: String(found.output ?? ""),
              length: Number(found.output_length),
              lineNo: Number(found.line_no),
            };
          }
        }
      }
      return more ? { items, next: items[items.length - 1].lineNo } : { items };
    },
  };
}
