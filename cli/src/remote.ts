/**
 * The CLI over HTTP. `codex-sync serve` answers the engine's protocol
 * (`@zakstam/codex-sync-engine-http`) and, under `/codex-sync/v1/`, a few reads of the
 * record tables the CLI's sync decisions need (a conversation's current import, its
 * stored lines, their count) and `verify`'s damaged mark. Both act in the scope the
 * request's token maps to, never one the client names. Import also records, through
 * them, the state of the file it read (`PUT imports/<id>/file`) and finds an import by
 * its file's path (`GET imports?path=`). `--server URL` opens a store
 * over both: the adapter is `createHttpSyncAdapter`, the tables {@link httpRecordTables};
 * what the routes do not offer (gc's cleanup of the tables) is refused with
 * `E_CLI_USAGE`.
 *
 * @module
 */

import { SyncError, syncErrorFromJSON } from "@zakstam/codex-sync-engine";
import {
  createBearerAuthenticator,
  createHttpSyncAdapter,
  createSyncHttpHandler,
} from "@zakstam/codex-sync-engine-http";
import { CliError, usage } from "./errors.ts";
import type { FileState, ImportRow, RecordTables, StoredLine } from "./records.ts";
import type { OpenStore } from "./store.ts";

/** Prefix of the CLI's own routes. */
export const CLI_ROUTES = "/codex-sync/v1/";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

function errorResponse(status: number, code: string, message: string): Response {
  return json(status, { error: { name: "SyncError", code, message, retryable: false } });
}

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function intParam(url: URL, name: string): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  if (!/^\d{1,10}$/.test(raw)) throw new SyncError("E_SYNC_INVALID_ARGUMENT", `bad ${name}`);
  return Number(raw);
}

/** Tokens of `serve --tokens`: a JSON object or array, or `token scope` lines. */
export function parseTokens(text: string): { token: string; scope: string }[] {
  const trimmed = text.trim();
  let entries: { token: string; scope: string }[] = [];
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (error) {
      throw usage(`--tokens: invalid JSON (${(error as Error).message})`);
    }
    entries = Array.isArray(parsed)
      ? parsed.map((entry) => ({
        token: String((entry as { token?: unknown }).token ?? ""),
        scope: String((entry as { scope?: unknown }).scope ?? ""),
      }))
      : Object.entries(parsed as Record<string, unknown>).map(([token, scope]) => ({
        token,
        scope: typeof scope === "string" ? scope : "",
      }));
  } else {
    for (const [i, line] of trimmed.split(/\r?\n/).entries()) {
      const content = line.trim();
      if (content === "" || content.startsWith("#")) continue;
      const match = /^([^\s:=]+)\s*[:=]\s*(\S+)$/.exec(content) ??
        /^(\S+)\s+(\S+)$/.exec(content);
      if (!match) throw usage(`--tokens: line ${i + 1} is not "<token> <scope>"`);
      entries.push({ token: match[1], scope: match[2] });
    }
  }
  if (entries.length === 0) throw usage("--tokens: the file lists no token");
  for (const entry of entries) {
    if (entry.token === "" || entry.scope === "") {
      throw usage("--tokens: every entry needs a non-empty token and scope");
    }
  }
  return entries;
}

/** SHA-256 (lowercase hex) of each token: the server keeps only these. */
export async function hashTokens(
  entries: readonly { token: string; scope: string }[],
): Promise<{ sha256: string; scope: string }[]> {
  const out: { sha256: string; scope: string }[] = [];
  for (const { token, scope } of entries) {
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)),
    );
    out.push({ sha256: [...digest].map((b) => b.toString(16).padStart(2, "0")).join(""), scope });
  }
  return out;
}

/** The server's handler: the CLI's routes, then the engine's protocol. */
export function serverHandler(
  store: OpenStore,
  tokens: readonly { sha256: string; scope: string }[],
  onError?: (error: unknown) => void,
): (request: Request) => Promise<Response> {
  const authenticate = createBearerAuthenticator(tokens);
  const sync = createSyncHttpHandler({
    adapter: store.adapter,
    authenticate,
    ...(onError ? { onError } : {}),
  });
  return async (request) => {
    const url = new URL(request.url);
    if (!url.pathname.startsWith(CLI_ROUTES)) return await sync(request);
    const scope = await authenticate(request);
    if (!scope) {
      // The same answer as the protocol's.
      const response = errorResponse(
        401,
        "E_SYNC_INVALID_ARGUMENT",
        "missing or invalid credentials",
      );
      response.headers.set("www-authenticate", 'Bearer realm="codex-sync"');
      return response;
    }
    try {
      return await cliRoute(store.tables, scope, request, url);
    } catch (error) {
      if (error instanceof SyncError && error.code === "E_SYNC_INVALID_ARGUMENT") {
        return errorResponse(400, error.code, error.message);
      }
      onError?.(error);
      return errorResponse(500, "E_SYNC_INTERNAL", "internal error");
    }
  };
}

async function cliRoute(
  tables: RecordTables,
  scope: string,
  request: Request,
  url: URL,
): Promise<Response> {
  const parts = url.pathname.slice(CLI_ROUTES.length).split("/").map(decodeURIComponent);
  const method = request.method;
  if (parts[0] === "imports" && parts.length === 1 && method === "GET") {
    const path = url.searchParams.get("path");
    if (path !== null) {
      return json(200, { import: (await tables.findImportByPath(scope, path)) ?? null });
    }
    const limit = Math.min(intParam(url, "limit") ?? 100, 100_000);
    return json(200, {
      count: await tables.countImports(scope),
      items: limit === 0 ? [] : await tables.listImports(scope, limit),
    });
  }
  if (parts[0] === "imports" && parts.length === 2 && method === "GET") {
    return json(200, { import: (await tables.getImport(scope, parts[1])) ?? null });
  }
  if (parts[0] === "imports" && parts.length === 3 && parts[2] === "damaged" && method === "PUT") {
    const body = await request.json().catch(() => undefined) as { damaged?: unknown } | undefined;
    if (typeof body?.damaged !== "boolean") {
      throw new SyncError("E_SYNC_INVALID_ARGUMENT", "body must be {damaged: boolean}");
    }
    await tables.markDamaged(scope, parts[1], body.damaged);
    return json(200, {});
  }
  if (parts[0] === "imports" && parts.length === 3 && parts[2] === "file" && method === "PUT") {
    const body = await request.json().catch(() => undefined);
    const input = fileStateInput(body);
    const updated = await tables.setFileState(
      scope,
      parts[1],
      input.sourceId,
      input.path,
      input.state,
    );
    return json(200, { updated });
  }
  if (parts[0] === "rowsets" && parts.length === 3 && method === "GET") {
    const upTo = intParam(url, "upTo");
    if (parts[2] === "count") return json(200, await tables.countRows(scope, parts[1], upTo));
    if (parts[2] === "lines") {
      const lines = await tables.readLines(
        scope,
        parts[1],
        intParam(url, "after") ?? 0,
        Math.min(intParam(url, "limit") ?? 1000, 10_000),
        upTo,
      );
      return json(200, {
        items: lines.map((line) => ({
          lineNo: line.lineNo,
          valid: line.valid,
          bytes: toBase64(line.bytes),
        })),
      });
    }
  }
  return errorResponse(404, "E_SYNC_INVALID_ARGUMENT", `no route ${method} ${url.pathname}`);
}

/** The body of `PUT imports/<id>/file`, checked. */
function fileStateInput(body: unknown): { sourceId: string; path: string; state: FileState } {
  const { sourceId, path, state } = (body ?? {}) as Record<string, unknown>;
  const { size, mtimeNs, fileId, hashState } = (state ?? {}) as Record<string, unknown>;
  const short = (value: unknown, max: number) =>
    typeof value === "string" && value.length > 0 && value.length <= max;
  if (
    !short(sourceId, 512) || !short(path, 4096) || !Number.isSafeInteger(size) ||
    (size as number) < 0 || typeof mtimeNs !== "string" || !/^\d{1,30}$/.test(mtimeNs) ||
    (fileId !== undefined && !short(fileId, 200)) || !short(hashState, 400)
  ) {
    throw new SyncError(
      "E_SYNC_INVALID_ARGUMENT",
      "body must be {sourceId, path, state: {size, mtimeNs, fileId?, hashState}}",
    );
  }
  return {
    sourceId: sourceId as string,
    path: path as string,
    state: {
      size: size as number,
      mtimeNs,
      ...(fileId === undefined ? {} : { fileId: fileId as string }),
      hashState: hashState as string,
    },
  };
}

/** Credentials and address of `--server`. */
export interface ServerTarget {
  url: string;
  token: string;
}

function notOverHttp(what: string): never {
  throw new CliError(
    "E_CLI_USAGE",
    `${what} needs direct access to the store's tables, which --server does not give; ` +
      `run it where the store is (on the server's machine, without --server)`,
  );
}

/** The record tables through the server's CLI routes (reads, and the damaged mark). */
export function httpRecordTables(target: ServerTarget): RecordTables {
  const base = target.url.replace(/\/+$/, "") + CLI_ROUTES;
  const call = async (path: string, init: RequestInit = {}): Promise<unknown> => {
    let response: Response;
    try {
      response = await fetch(base + path, {
        ...init,
        headers: {
          authorization: `Bearer ${target.token}`,
          ...(init.body ? { "content-type": "application/json" } : {}),
        },
      });
    } catch (error) {
      throw new SyncError("E_SYNC_BACKEND_UNAVAILABLE", `${target.url}: ${error}`, {
        cause: error,
      });
    }
    const body = await response.json().catch(() => undefined) as
      | { error?: Record<string, unknown> }
      | undefined;
    if (response.status === 401) throw unauthorized(target.url);
    if (!response.ok) {
      if (body?.error) throw syncErrorFromJSON(body.error as never);
      throw new SyncError("E_SYNC_INTERNAL", `${target.url}: HTTP ${response.status}`);
    }
    return body;
  };
  const enc = encodeURIComponent;
  const query = (params: Record<string, number | undefined>) => {
    const entries = Object.entries(params).filter(([, v]) => v !== undefined);
    return entries.length === 0 ? "" : "?" + entries.map(([k, v]) => `${k}=${v}`).join("&");
  };
  return {
    loadCarry: () => notOverHttp("reading carries"),
    saveCarry: () => notOverHttp("writing carries"),
    deleteCarry: () => notOverHttp("deleting carries"),
    insertRows: () => notOverHttp("writing rows"),
    deleteRowsAfter: () => notOverHttp("deleting rows"),
    setImport: () => notOverHttp("setting an import"),
    listUnlinkedSources: () => notOverHttp("gc"),
    deleteSource: () => notOverHttp("gc"),
    async readLines(_scope, rowSet, afterLine, limit, upToLine) {
      const body = await call(
        `rowsets/${enc(rowSet)}/lines${query({ after: afterLine, limit, upTo: upToLine })}`,
      ) as { items: { lineNo: number; valid: boolean; bytes: string }[] };
      return body.items.map((item): StoredLine => ({
        lineNo: item.lineNo,
        valid: item.valid,
        bytes: fromBase64(item.bytes),
      }));
    },
    async countRows(_scope, rowSet, upToLine) {
      return await call(`rowsets/${enc(rowSet)}/count${query({ upTo: upToLine })}`) as {
        lines: number;
        invalid: number;
      };
    },
    async markDamaged(_scope, conversationId, damaged) {
      await call(`imports/${enc(conversationId)}/damaged`, {
        method: "PUT",
        body: JSON.stringify({ damaged }),
      });
    },
    async setFileState(_scope, conversationId, sourceId, path, state) {
      const body = await call(`imports/${enc(conversationId)}/file`, {
        method: "PUT",
        body: JSON.stringify({ sourceId, path, state }),
      }) as { updated?: unknown };
      return body.updated === true;
    },
    async findImportByPath(_scope, path) {
      const body = await call(`imports?path=${enc(path)}`) as { import?: ImportRow | null };
      return body.import ?? undefined;
    },
    async getImport(_scope, conversationId) {
      const body = await call(`imports/${enc(conversationId)}`) as { import: ImportRow | null };
      return body.import ?? undefined;
    },
    async listImports(_scope, limit) {
      return (await call(`imports${query({ limit })}`) as { items: ImportRow[] }).items;
    },
    async countImports() {
      return (await call(`imports${query({ limit: 0 })}`) as { count: number }).count;
    },
  };
}

/** A store over `--server`: the HTTP adapter and {@link httpRecordTables}. */
export async function openServerStore(target: ServerTarget): Promise<OpenStore> {
  let adapter: Awaited<ReturnType<typeof createHttpSyncAdapter>>;
  try {
    adapter = await createHttpSyncAdapter({ url: target.url, token: target.token });
  } catch (error) {
    throw new SyncError(
      "E_SYNC_BACKEND_UNAVAILABLE",
      `cannot reach the server at ${target.url}: ${errorText(error)}`,
      { cause: error },
    );
  }
  const tables = httpRecordTables(target);
  try {
    // Fails fast, and clearly, on a bad token (capabilities need none).
    await tables.countImports("");
  } catch (error) {
    adapter.close();
    throw error;
  }
  return {
    kind: "server",
    location: target.url,
    adapter,
    tables,
    transaction: () => notOverHttp("a transaction on the tables"),
    startWorker: () => {},
    close: () => Promise.resolve(adapter.close()),
  };
}

function unauthorized(url: string): CliError {
  return new CliError(
    "E_CLI_UNAUTHORIZED",
    `the server at ${url} refused the token (check --token / CODEX_SYNC_TOKEN)`,
  );
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
