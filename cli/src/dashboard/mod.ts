/**
 * The web dashboard of `codex-sync serve`: conversations, jobs with live progress, and a
 * conversation viewer, as server-rendered pages (Hono routes) on the same port as the
 * API. A login by token sets a session cookie (see `session.ts`); every read and write is
 * in that token's scope, and another scope's ids answer exactly like missing ones.
 * State-changing requests (login, logout, cancel) are POSTs that must come from the
 * dashboard's own origin (`Origin`, or `Sec-Fetch-Site: same-origin`), on top of the
 * cookie's `SameSite=Strict`. The Content-Security-Policy allows same-origin script and
 * style only (no inline script).
 *
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import {
  isSyncError,
  JOB_STATES,
  type JobState,
  type SyncAdapter,
} from "@zakstam/codex-sync-engine";
import type { PostgresAdapter, SqlExecutor } from "@zakstam/codex-sync-engine-postgres";
import type { OpenStore } from "../store.ts";
import { DASHBOARD_CSS, DASHBOARD_JS } from "./assets.ts";
import {
  DEFAULT_STREAM_TIMING,
  type JobChanges,
  jobChangesOf,
  jobStream,
  type JobStreamTiming,
  readJobs,
} from "./job_feed.ts";
import {
  conversationPage,
  conversationsPage,
  jobRowHtml,
  jobsPage,
  loginPage,
  messagePage,
  notFoundPage,
} from "./pages.ts";
import { type ConversationSummary, dashboardQueries, MAX_PAGE_ITEMS } from "./queries.ts";
import { createSessions } from "./session.ts";

/** Conversations per page. */
export const CONVERSATIONS_PER_PAGE = 25;
/** Items per page of the viewer (`?limit=` may ask for up to `MAX_PAGE_ITEMS`). */
export const ITEMS_PER_PAGE = 50;
/** Jobs per page. */
export const JOBS_PER_PAGE = 25;
/** Largest login form body read. */
const MAX_FORM_BYTES = 8 * 1024;

/** The Content-Security-Policy of every dashboard response. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/** What the dashboard runs on. */
export interface DashboardOptions {
  adapter: SyncAdapter;
  /** Reads of the record tables. */
  sql: SqlExecutor;
  /** Announces job writes (live jobs). */
  changes: JobChanges;
  /** The server's tokens, hashed (`hashTokens`). */
  tokens: readonly { sha256: string; scope: string }[];
  /** Clock of the sessions (default `Date.now`). */
  now?: () => number;
  streamTiming?: JobStreamTiming;
  /** Told about unexpected failures (answered with a 500 page). */
  onError?: (error: unknown) => void;
  /** Aborted when the server stops: open event streams end (so shutdown does not wait). */
  shutdown?: AbortSignal;
}

type Env = { Variables: { scope: string } };

class BadRequest extends Error {}

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  // Not no-referrer: with it, browsers send `Origin: null` on the dashboard's own form posts.
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

function page(body: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

function redirect(location: string, headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 303, headers: { location, ...headers } });
}

/**
 * True when a state-changing request comes from the dashboard's own pages: its `Origin`
 * names this host and port (the scheme is not compared, so a TLS proxy in front works),
 * or, without `Origin`, the browser says `Sec-Fetch-Site: same-origin`.
 */
export function sameOrigin(request: Request): boolean {
  const origin = request.headers.get("origin");
  if (origin !== null) {
    try {
      return new URL(origin).host === new URL(request.url).host;
    } catch {
      return false; // "null", or not a URL
    }
  }
  return request.headers.get("sec-fetch-site") === "same-origin";
}

async function readForm(request: Request): Promise<URLSearchParams> {
  const type = request.headers.get("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded")) {
    throw new BadRequest("expected a form (application/x-www-form-urlencoded)");
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body?.getReader();
  while (reader) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_FORM_BYTES) {
      await reader.cancel().catch(() => {});
      throw new BadRequest("the form is too large");
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return new URLSearchParams(new TextDecoder().decode(bytes));
}

function lineParam(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^\d{1,10}$/.test(value)) throw new BadRequest(`${name} must be a line number`);
  return Number(value);
}

function stateParam(value: string | undefined): JobState | undefined {
  if (value === undefined || value === "") return undefined;
  if (!(JOB_STATES as readonly string[]).includes(value)) {
    throw new BadRequest(`unknown job state ${JSON.stringify(value)}`);
  }
  return value as JobState;
}

/** Whether the cookie gets `Secure`: HTTPS here, or at the TLS proxy in front. */
function secure(request: Request): boolean {
  return new URL(request.url).protocol === "https:" ||
    request.headers.get("x-forwarded-proto") === "https";
}

/** The dashboard's handler. */
export function createDashboard(
  options: DashboardOptions,
): (request: Request) => Promise<Response> {
  const { adapter, changes } = options;
  const queries = dashboardQueries(options.sql);
  const sessions = createSessions({ tokens: options.tokens, now: options.now });
  const timing = options.streamTiming ?? DEFAULT_STREAM_TIMING;
  const app = new Hono<Env>();

  const stateOf = async (scope: string, c: ConversationSummary) => {
    if (c.damaged) return "damaged";
    const { items } = await adapter.listJobs({ scope, conversationId: c.conversationId, limit: 1 });
    return items[0] && items[0].state !== "succeeded" ? items[0].state : "imported";
  };

  app.use("*", async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
  });

  app.get("/assets/dashboard.css", () =>
    new Response(DASHBOARD_CSS, {
      headers: { "content-type": "text/css; charset=utf-8", "cache-control": "no-cache" },
    }));
  app.get("/assets/dashboard.js", () =>
    new Response(DASHBOARD_JS, {
      headers: {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "no-cache",
      },
    }));

  // State changes only from the dashboard's own pages.
  app.use("*", async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && !sameOrigin(c.req.raw)) {
      return page(
        messagePage(undefined, "Refused", "This request did not come from the dashboard."),
        403,
      );
    }
    await next();
  });

  app.get("/login", async (c) => {
    if (await sessions.scopeOf(c.req.raw)) return redirect("/conversations");
    return page(loginPage());
  });
  app.post("/login", async (c) => {
    const form = await readForm(c.req.raw);
    const found = await sessions.login(form.get("token") ?? "");
    if (!found) return page(loginPage("That token is not accepted."), 401);
    return redirect("/conversations", {
      "set-cookie": sessions.setCookie(found.cookie, secure(c.req.raw)),
    });
  });
  app.post(
    "/logout",
    (c) => redirect("/login", { "set-cookie": sessions.clearCookie(secure(c.req.raw)) }),
  );

  // Everything below needs a session.
  app.use("*", async (c, next) => {
    const scope = await sessions.scopeOf(c.req.raw);
    if (!scope) {
      if (c.req.method === "GET" && c.req.path !== "/jobs/events") return redirect("/login");
      return page(messagePage(undefined, "Not logged in", "Log in first."), 401);
    }
    c.set("scope", scope);
    await next();
  });

  app.get("/", () => redirect("/conversations"));

  app.get("/conversations", async (c) => {
    const scope = c.get("scope");
    const search = (c.req.query("q") ?? "").slice(0, 200);
    const after = c.req.query("after");
    const result = await queries.listConversations(scope, {
      search: search.trim() === "" ? undefined : search.trim(),
      after,
      limit: CONVERSATIONS_PER_PAGE,
    });
    const items = [];
    for (const item of result.items) items.push({ ...item, state: await stateOf(scope, item) });
    return page(conversationsPage({ scope, search, items, next: result.next }));
  });

  app.get("/conversations/:id", async (c) => {
    const scope = c.get("scope");
    const id = c.req.param("id");
    const conversation = await queries.getConversation(scope, id);
    if (!conversation) return page(notFoundPage(scope, `No conversation ${id}.`), 404);
    const after = lineParam(c.req.query("after"), "after") ?? 0;
    const limit = Math.min(
      lineParam(c.req.query("limit"), "limit") ?? ITEMS_PER_PAGE,
      MAX_PAGE_ITEMS,
    );
    const { items, next } = await queries.readItems(scope, id, after, Math.max(limit, 1));
    return page(conversationPage({
      scope,
      conversation: { ...conversation, state: await stateOf(scope, conversation) },
      items,
      after,
      next,
    }));
  });

  const jobQuery = (c: Context<Env>) => ({
    scope: c.get("scope"),
    state: stateParam(c.req.query("state")),
    cursor: c.req.query("cursor") || undefined,
    limit: JOBS_PER_PAGE,
  });

  app.get("/jobs", async (c) => {
    const query = jobQuery(c);
    const { rows, next } = await readJobs(adapter, query);
    const params = new URLSearchParams({
      ...(query.state ? { state: query.state } : {}),
      ...(query.cursor ? { cursor: query.cursor } : {}),
    });
    return page(jobsPage({
      scope: query.scope,
      state: query.state,
      rows,
      next,
      eventsHref: `/jobs/events${params.size > 0 ? `?${params}` : ""}`,
    }));
  });

  app.get(
    "/jobs/events",
    (c) =>
      jobStream(
        adapter,
        changes,
        jobQuery(c),
        timing,
        (row) => jobRowHtml(row).text,
        options.shutdown,
      ),
  );

  app.post("/jobs/:id/cancel", async (c) => {
    const scope = c.get("scope");
    const jobId = c.req.param("id");
    try {
      await adapter.cancelJob({ scope, jobId, reason: "cancelled from the dashboard" });
    } catch (error) {
      if (isSyncError(error) && error.code === "E_SYNC_JOB_NOT_FOUND") {
        return page(notFoundPage(scope, `No job ${jobId}.`), 404);
      }
      throw error;
    }
    return redirect("/jobs");
  });

  app.notFound((c) => page(notFoundPage(c.get("scope"), "No such page."), 404));
  app.onError((error, c) => {
    if (error instanceof BadRequest) {
      return page(messagePage(c.get("scope"), "Bad request", error.message), 400);
    }
    if (isSyncError(error) && error.code === "E_SYNC_INVALID_ARGUMENT") {
      return page(messagePage(c.get("scope"), "Bad request", error.message), 400);
    }
    options.onError?.(error);
    return page(messagePage(c.get("scope"), "Error", "Something went wrong on the server."), 500);
  });

  return async (request) => await app.fetch(request);
}

/** The dashboard over an open local store. */
export interface OpenDashboard {
  handle(request: Request): Promise<Response>;
  /** Ends the open event streams and stops listening (before the HTTP server closes). */
  close(): Promise<void>;
}

/** The dashboard of `serve`, over the store's SQL and its adapter's job notifications. */
export function openDashboard(
  store: OpenStore,
  tokens: readonly { sha256: string; scope: string }[],
  onError?: (error: unknown) => void,
): OpenDashboard {
  if (store.kind !== "pglite" && store.kind !== "postgres") {
    throw new Error(`the dashboard needs a local SQL store, not ${store.kind}`);
  }
  const adapter = store.adapter as PostgresAdapter;
  const changes = jobChangesOf(adapter);
  const shutdown = new AbortController();
  const handle = createDashboard({
    adapter,
    sql: adapter.driver,
    changes,
    tokens,
    shutdown: shutdown.signal,
    ...(onError ? { onError } : {}),
  });
  let closing: Promise<void> | undefined;
  return {
    handle,
    close: () =>
      closing ??= (async () => {
        shutdown.abort();
        await changes.close();
      })(),
  };
}
