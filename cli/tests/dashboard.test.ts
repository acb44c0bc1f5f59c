// The dashboard in-process, on an in-memory PGlite store (worker stopped, so a job stays
// queued until the test acts): escaping, session cookies (HttpOnly, SameSite=Strict, no
// token inside, a second instance accepts them, expiry on an injected clock), the origin
// check of state changes, conversations paged and searched, the viewer paged by line
// number with a bounded page (tool calls paired with their output, reasoning collapsed,
// long texts cut), the live jobs stream woken by the store's change notification, cancel,
// and a second scope that sees nothing of the first's (foreign ids answer like missing).
// The real browser flows are in dashboard_browser.ts.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { compositeDigest, sha256Hex } from "@zakstam/codex-sync-engine";
import { createPostgresAdapter, type PostgresExtras } from "@zakstam/codex-sync-engine-postgres";
import {
  ensureRecordTables,
  type NewRow,
  recordTableNames,
  sqlRecordTables,
} from "../src/records.ts";
import { rolloutHandler } from "../src/handler.ts";
import { parseLine } from "../src/rollout.ts";
import { hashTokens } from "../src/remote.ts";
import { isApiPath } from "../src/commands/serve.ts";
import { createDashboard, ITEMS_PER_PAGE, sameOrigin } from "../src/dashboard/mod.ts";
import { escapeHtml, html } from "../src/dashboard/html.ts";
import { readableToolOutput } from "../src/dashboard/pages.ts";
import { createSessions, DEFAULT_SESSION_MS, SESSION_COOKIE } from "../src/dashboard/session.ts";
import { jobChangesOf } from "../src/dashboard/job_feed.ts";
import { MAX_PAGE_ITEMS, MAX_TEXT_CHARS } from "../src/dashboard/queries.ts";

const ORIGIN = "http://127.0.0.1:9";
const HOSTILE = [
  `<script>window.__pwned = 1</script>`,
  `"><img src=x onerror="window.__pwned=2">`,
  `'><svg onload=alert(1)>`,
  '`${alert(1)}` javascript:alert(1) <a href="javascript:alert(1)">x</a>',
  "</pre></li></ol><script>alert(1)</script>",
];

const names = recordTableNames();
const adapter = await createPostgresAdapter({
  handler: rolloutHandler<PostgresExtras>((context) => sqlRecordTables(context.sql, names)),
  mode: "manual",
});
await ensureRecordTables(adapter.driver, names);
const tables = sqlRecordTables(adapter.driver, names);
const changes = jobChangesOf(adapter);
after(async () => {
  await changes.close();
  await adapter.close();
});

const tokens = await hashTokens([
  { token: "token-a", scope: "alice" },
  { token: "token-b", scope: "bob" },
]);
let clock = 1_800_000_000_000;
const dashboard = createDashboard({
  adapter,
  sql: adapter.driver,
  changes,
  tokens,
  now: () => clock,
  streamTiming: { safetyPollMs: 60_000, heartbeatMs: 60_000, maxStreamMs: 60_000 },
});

const encoder = new TextEncoder();
const record = (type: string, payload: unknown, i: number) =>
  JSON.stringify({
    timestamp: `2025-11-01T09:${String(i % 60).padStart(2, "0")}:00Z`,
    type,
    payload,
  });

/** A conversation of `turns` turns: user message, reasoning, tool call, its output, answer. */
function conversation(id: string, turns: number, firstText = "first question"): string[] {
  const lines = [record("session_meta", { id }, 0)];
  for (let t = 0; t < turns; t++) {
    const hostile = HOSTILE[t % HOSTILE.length];
    lines.push(
      record("response_item", {
        type: "message",
        role: "user",
        content: [{ type: "input_text", text: t === 0 ? firstText : `question ${t} ${hostile}` }],
      }, t),
      record("response_item", {
        type: "reasoning",
        summary: [{ type: "summary_text", text: `thinking ${t} ${hostile}` }],
      }, t),
      record("response_item", {
        type: "function_call",
        name: "shell",
        arguments: JSON.stringify({ command: ["echo", hostile] }),
        call_id: `call-${t}`,
      }, t),
      record("event_msg", { type: "token_count" }, t),
      record("response_item", {
        type: "function_call_output",
        call_id: `call-${t}`,
        output: `output ${t} ${hostile}`,
      }, t),
      record("response_item", {
        type: "message",
        role: "assistant",
        content: [{ type: "output_text", text: `answer ${t} ${hostile}` }],
      }, t),
    );
  }
  return lines;
}

async function store(scope: string, id: string, lines: string[], importedAt: number) {
  const rows: NewRow[] = lines.map((text, i) => {
    const parsed = parseLine(encoder.encode(text), i === 0);
    assert.ok(parsed.valid);
    return {
      lineNo: i + 1,
      recordType: parsed.recordType,
      text,
      valid: true,
      jsonbSafe: parsed.jsonbSafe,
    };
  });
  await tables.insertRows(scope, `src-${id}`, id, rows);
  await tables.setImport({
    scope,
    conversationId: id,
    sourceId: `src-${id}`,
    rowSet: `src-${id}`,
    jobId: `job-${id}`,
    path: `/sessions/rollout-${id}.jsonl`,
    fileSha256: "0".repeat(64),
    lineCount: rows.length,
    invalidCount: 0,
    byteCount: lines.reduce((n, line) => n + encoder.encode(line).length + 1, 0),
    digest: "0".repeat(64),
    importedAt,
  });
}

const BIG = "conv-big";
await store("alice", BIG, conversation(BIG, 120, `big one ${HOSTILE[1]}`), 3_000);
for (let i = 0; i < 30; i++) {
  await store("alice", `conv-${String(i).padStart(2, "0")}`, conversation(`c${i}`, 1), 1_000 + i);
}
// One long message: cut on the page.
await store("alice", "conv-long", [
  record("response_item", {
    type: "message",
    role: "user",
    content: [{ type: "input_text", text: "x".repeat(MAX_TEXT_CHARS + 500) }],
  }, 1),
], 500);

async function cookieFor(token: string): Promise<string> {
  const response = await dashboard(
    new Request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }),
    }),
  );
  assert.equal(response.status, 303);
  const set = response.headers.get("set-cookie") ?? "";
  return set.split(";")[0];
}

function get(path: string, cookie?: string): Promise<Response> {
  return dashboard(
    new Request(`${ORIGIN}${path}`, { headers: cookie ? { cookie } : {} }),
  );
}

function post(path: string, cookie: string, origin: string | null = ORIGIN): Promise<Response> {
  const headers: Record<string, string> = { cookie };
  if (origin !== null) headers.origin = origin;
  return dashboard(new Request(`${ORIGIN}${path}`, { method: "POST", headers }));
}

/** Reads SSE events from `response` until `done(event)` holds; bounded. */
async function readEvents(
  response: Response,
  done: (data: { rows: { id: string; html: string }[] }) => boolean,
  timeoutMs = 10_000,
): Promise<{ rows: { id: string; html: string }[] }[]> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const seen: { rows: { id: string; html: string }[] }[] = [];
  let buffer = "";
  const timer = setTimeout(() => reader.cancel(new Error("timeout")), timeoutMs);
  try {
    while (true) {
      const { done: ended, value } = await reader.read();
      if (ended) throw new Error(`stream ended; events so far: ${JSON.stringify(seen)}`);
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) !== -1) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!frame.startsWith("event: jobs\n")) continue;
        const data = JSON.parse(frame.slice(frame.indexOf("data: ") + 6));
        seen.push(data);
        if (done(data)) return seen;
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

test("dashboard: html escapes every interpolated value", () => {
  const nasty = `<script>"'&\`\u0000`;
  assert.equal(escapeHtml(nasty), "&lt;script&gt;&quot;&#39;&amp;&#96;\ufffd");
  assert.equal(
    html`<p title="${nasty}">${[nasty, 3, null]}</p>`.text,
    `<p title="${escapeHtml(nasty)}">${escapeHtml(nasty)}3</p>`,
  );
  assert.equal(html`<b>${html`<i>ok</i>`}</b>`.text, "<b><i>ok</i></b>");
});

test("dashboard: a shell call's JSON output is shown as the text it printed, with its exit code", () => {
  const printed = "line 1\nline 2 <b>\n";
  assert.deepEqual(
    readableToolOutput(JSON.stringify({ output: printed, metadata: { exit_code: 2 } })),
    { text: printed, exitCode: 2 },
  );
  assert.deepEqual(readableToolOutput(JSON.stringify({ output: printed })), { text: printed });
  // Anything else is shown as stored: plain text, other JSON, a cut (unparsable) text.
  for (const text of ["plain output", '{"output": 3}', '["output"]', '{"output": "cut', "{"]) {
    assert.deepEqual(readableToolOutput(text), { text });
  }
  assert.deepEqual(
    readableToolOutput(JSON.stringify({ output: "x", metadata: { exit_code: "0" } })),
    { text: "x" },
  );
});

test("dashboard: sessions are HMAC cookies, stateless, expiring, without the token", async () => {
  const sessions = createSessions({ tokens, now: () => clock, sessionMs: 60_000 });
  assert.equal(await sessions.login("nope"), undefined);
  assert.equal(await sessions.login("token-a\n"), undefined);
  const found = await sessions.login("token-a");
  assert.equal(found?.scope, "alice");
  assert.ok(!found!.cookie.includes("token-a"));
  assert.ok(!found!.cookie.includes(tokens[0].sha256));
  const set = sessions.setCookie(found!.cookie, false);
  assert.match(
    set,
    /^codex_sync_session=\d+\.[0-9a-f]{64}; Max-Age=60; HttpOnly; SameSite=Strict; Path=\/$/,
  );
  assert.match(sessions.setCookie(found!.cookie, true), /; Secure$/);
  const request = (value: string) =>
    new Request(ORIGIN, { headers: { cookie: `other=1; ${SESSION_COOKIE}=${value}` } });
  assert.equal(await sessions.scopeOf(request(found!.cookie)), "alice");
  // A second server with the same tokens accepts it: nothing is kept per session.
  const twin = createSessions({ tokens, now: () => clock, sessionMs: 60_000 });
  assert.equal(await twin.scopeOf(request(found!.cookie)), "alice");
  // Tampered, or made to last longer, or for another token: refused.
  const [expiry, mac] = found!.cookie.split(".");
  const flipped = mac.slice(0, -1) + (mac.endsWith("0") ? "1" : "0");
  assert.equal(await sessions.scopeOf(request(`${expiry}.${flipped}`)), undefined);
  assert.equal(await sessions.scopeOf(request(`${Number(expiry) + 1}.${mac}`)), undefined);
  const other = createSessions({ tokens: [tokens[1]], now: () => clock, sessionMs: 60_000 });
  assert.equal(await other.scopeOf(request(found!.cookie)), undefined);
  assert.equal(await sessions.scopeOf(request("garbage")), undefined);
  // Expired.
  const later = createSessions({ tokens, now: () => clock + 60_001, sessionMs: 60_000 });
  assert.equal(await later.scopeOf(request(found!.cookie)), undefined);
  assert.match(sessions.clearCookie(false), /^codex_sync_session=; Max-Age=0; HttpOnly/);
});

test("dashboard: routing, login, origin checks, security headers", async () => {
  assert.ok(isApiPath("/v1/jobs") && isApiPath("/codex-sync/v1/imports"));
  assert.ok(!isApiPath("/") && !isApiPath("/jobs") && !isApiPath("/v1"));
  assert.ok(sameOrigin(new Request(ORIGIN, { headers: { origin: ORIGIN } })));
  assert.ok(!sameOrigin(new Request(ORIGIN, { headers: { origin: "http://evil.test" } })));
  assert.ok(sameOrigin(new Request(ORIGIN, { headers: { "sec-fetch-site": "same-origin" } })));
  assert.ok(!sameOrigin(new Request(ORIGIN)));
  assert.ok(!sameOrigin(new Request(ORIGIN, { headers: { origin: "null" } })));
  assert.ok(!sameOrigin(new Request(ORIGIN, { headers: { origin: "http://127.0.0.1:10" } })));
  // Behind a TLS proxy the scheme differs; the host and port must not.
  assert.ok(sameOrigin(new Request(ORIGIN, { headers: { origin: "https://127.0.0.1:9" } })));

  const anonymous = await get("/conversations");
  assert.equal(anonymous.status, 303);
  assert.equal(anonymous.headers.get("location"), "/login");
  const login = await get("/login");
  assert.equal(login.status, 200);
  const csp = login.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(login.headers.get("x-frame-options"), "DENY");
  const body = await login.text();
  assert.match(body, /<label for="token">Token<\/label>/);
  assert.doesNotMatch(body, /<script>/);
  assert.equal((await get("/jobs/events")).status, 401);

  const refused = await dashboard(
    new Request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
      body: "token=wrong",
    }),
  );
  assert.equal(refused.status, 401);
  assert.match(await refused.text(), /That token is not accepted/);
  const csrfLogin = await dashboard(
    new Request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { origin: "http://evil.test", "content-type": "application/x-www-form-urlencoded" },
      body: "token=token-a",
    }),
  );
  assert.equal(csrfLogin.status, 403);
  assert.equal(csrfLogin.headers.get("set-cookie"), null);
  const huge = await dashboard(
    new Request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
      body: "token=" + "a".repeat(20_000),
    }),
  );
  assert.equal(huge.status, 400);

  const cookie = await cookieFor("token-a");
  assert.equal((await get("/", cookie)).headers.get("location"), "/conversations");
  // On the dashboard's (injected) clock, the session ends after DEFAULT_SESSION_MS.
  clock += DEFAULT_SESSION_MS - 1;
  assert.equal((await get("/conversations", cookie)).status, 200);
  clock += 1;
  assert.equal((await get("/conversations", cookie)).headers.get("location"), "/login");
  clock -= DEFAULT_SESSION_MS;
  assert.equal((await post("/logout", cookie, "http://evil.test")).status, 403);
  const logout = await post("/logout", cookie);
  assert.equal(logout.status, 303);
  assert.match(logout.headers.get("set-cookie") ?? "", /Max-Age=0/);
  const bad = await get("/jobs?state=nonsense", cookie);
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /unknown job state/);
  assert.equal((await get("/conversations/conv-big?after=x", cookie)).status, 400);
  assert.equal((await get("/conversations?after=nonsense", cookie)).status, 400);
  assert.equal((await get("/jobs?cursor=nonsense", cookie)).status, 400);
});

test("dashboard: conversations paged, titled and searched, per scope", async () => {
  const a = await cookieFor("token-a");
  const first = await (await get("/conversations", a)).text();
  const ids = [...first.matchAll(/href="\/conversations\/([^"?]+)"/g)].map((m) => m[1]);
  assert.equal(ids.length, 25);
  assert.equal(ids[0], BIG);
  // The title is the first user message, escaped.
  assert.ok(first.includes(`big one ${escapeHtml(HOSTILE[1])}`));
  assert.ok(!first.includes(HOSTILE[1]));
  const next = /href="(\/conversations\?after=[^"]+)" rel="next"/.exec(first)?.[1];
  assert.ok(next);
  const second = await (await get(next!.replaceAll("&amp;", "&"), a)).text();
  const more = [...second.matchAll(/href="\/conversations\/([^"?]+)"/g)].map((m) => m[1]);
  assert.equal(more.length, 32 - 25);
  assert.equal(new Set([...ids, ...more]).size, 32);
  assert.ok(!/rel="next"/.test(second));

  const byId = await (await get("/conversations?q=conv-1", a)).text();
  const found = [...byId.matchAll(/href="\/conversations\/([^"?]+)"/g)].map((m) => m[1]);
  assert.deepEqual(found.sort(), [
    "conv-10",
    "conv-11",
    "conv-12",
    "conv-13",
    "conv-14",
    "conv-15",
    "conv-16",
    "conv-17",
    "conv-18",
    "conv-19",
  ]);
  const byText = await (await get("/conversations?q=big%20one", a)).text();
  assert.deepEqual([...byText.matchAll(/href="\/conversations\/([^"?]+)"/g)].map((m) => m[1]), [
    BIG,
  ]);
  assert.match(await (await get("/conversations?q=%25", a)).text(), /No conversation matches/);

  const b = await cookieFor("token-b");
  const none = await (await get("/conversations", b)).text();
  assert.match(none, /No conversations yet/);
  assert.ok(!none.includes(BIG));
  const foreign = await get(`/conversations/${BIG}`, b);
  const missing = await get(`/conversations/${BIG}`, await cookieFor("token-b"));
  assert.equal(foreign.status, 404);
  const foreignBody = await foreign.text();
  assert.equal(foreignBody, await missing.text());
  // An id in the URL is echoed escaped.
  const hostileId = await get(`/conversations/${encodeURIComponent(HOSTILE[0])}`, a);
  assert.equal(hostileId.status, 404);
  const hostileBody = await hostileId.text();
  assert.ok(!hostileBody.includes(HOSTILE[0]));
  assert.ok(hostileBody.includes(`No conversation ${escapeHtml(HOSTILE[0])}.`));
  const absent = await get("/conversations/no-such-thing", a);
  assert.equal(absent.status, 404);
  assert.equal(
    (await absent.text()).replace("no-such-thing", BIG).replace("alice", "bob"),
    foreignBody,
  );
});

test("dashboard: the viewer pages by line number, bounded, calls paired with outputs", async () => {
  const a = await cookieFor("token-a");
  const seen: number[] = [];
  let path: string | undefined = `/conversations/${BIG}`;
  let pages = 0;
  while (path) {
    const response = await get(path, a);
    assert.equal(response.status, 200);
    const text = await response.text();
    const lines = [...text.matchAll(/<li class="item[^"]*" data-line="(\d+)"/g)].map((m) =>
      Number(m[1])
    );
    assert.ok(lines.length <= ITEMS_PER_PAGE, `page of ${lines.length} items`);
    seen.push(...lines);
    // No hostile string survives unescaped on any page.
    for (const hostile of HOSTILE) assert.ok(!text.includes(hostile), hostile);
    assert.doesNotMatch(text, /<script>|<img|<svg/);
    path = /href="([^"]+)" rel="next"/.exec(text)?.[1];
    pages++;
    if (pages === 1) {
      // Reasoning collapsed; the call's output paired with it, in its item.
      assert.match(text, /<details class="reasoning"><summary>/);
      const call =
        /<li class="item kind-tool_call" data-line="4" data-call-id="call-0">([\s\S]*?)<\/li>/
          .exec(text)?.[1];
      assert.ok(call, "the first tool call");
      assert.match(call!, /Output \(line 6\)/);
      assert.ok(call!.includes(`output 0 ${escapeHtml(HOSTILE[0])}`));
    }
  }
  // 120 turns × 4 shown items (message, reasoning, call with its output, answer; the
  // token counts are not shown), in order, each once.
  assert.equal(seen.length, 480);
  assert.deepEqual(seen, [...seen].sort((x, y) => x - y));
  assert.equal(new Set(seen).size, 480);
  assert.equal(pages, 10);

  // ?limit= is capped at MAX_PAGE_ITEMS.
  const capped = await (await get(`/conversations/${BIG}?limit=100000`, a)).text();
  assert.equal([...capped.matchAll(/<li class="item/g)].length, MAX_PAGE_ITEMS);
  // A long text is cut, with the rest counted.
  const long = await (await get("/conversations/conv-long", a)).text();
  assert.ok(long.includes("x".repeat(MAX_TEXT_CHARS) + "</pre>"));
  assert.match(long, /… 500 more characters not shown/);
});

test("dashboard: live jobs (woken by the change notification), cancel, per scope", async () => {
  const bytes = encoder.encode(conversation("live", 1).join("\n") + "\n");
  const sha256 = await sha256Hex(bytes);
  await adapter.uploadSource({
    scope: "alice",
    conversationId: "live",
    chunks: [{ index: 0, bytes, sha256 }],
    manifest: { chunkCount: 1, byteCount: bytes.length, digest: compositeDigest([sha256]) },
  });
  const { items: [job] } = await adapter.listJobs({ scope: "alice", conversationId: "live" });
  const jobId = job.jobId;
  const a = await cookieFor("token-a");
  const b = await cookieFor("token-b");

  const page = await (await get("/jobs", a)).text();
  assert.ok(page.includes(`data-job-id="${jobId}" data-state="queued"`));
  assert.match(page, /<progress max="1" value="0"/);
  assert.ok(page.includes(`action="/jobs/${jobId}/cancel"`));
  assert.match(page, /data-events="\/jobs\/events"/);
  const queued = await (await get("/jobs?state=queued", a)).text();
  assert.ok(queued.includes(jobId));
  assert.ok(!(await (await get("/jobs?state=failed", a)).text()).includes(jobId));

  // Scope B: no jobs on the page or on its stream, and A's job is "not found".
  const pageB = await (await get("/jobs", b)).text();
  assert.ok(!pageB.includes(jobId));
  const streamB = await readEvents(await get("/jobs/events", b), () => true);
  assert.deepEqual(streamB[0].rows, []);
  const cancelB = await post(`/jobs/${jobId}/cancel`, b);
  assert.equal(cancelB.status, 404);
  const missingB = await post(`/jobs/${jobId}x/cancel`, b);
  assert.equal((await cancelB.text()).replace(jobId, `${jobId}x`), await missingB.text());
  // Without the origin check passing, nothing is cancelled.
  assert.equal((await post(`/jobs/${jobId}/cancel`, a, null)).status, 403);
  assert.equal((await post(`/jobs/${jobId}/cancel`, a, "http://evil.test")).status, 403);
  assert.equal((await adapter.getJob({ scope: "alice", jobId })).state, "queued");

  // A's stream: the queued row first, then — woken by the cancel's notification, not by
  // its (one minute) safety poll — the cancelled row.
  const stream = await get("/jobs/events", a);
  assert.equal(stream.headers.get("content-type"), "text/event-stream; charset=utf-8");
  let cancelled: Promise<Response> | undefined;
  const events = await readEvents(stream, (data) => {
    const row = data.rows.find((r) => r.id === jobId);
    if (row?.html.includes('data-state="queued"')) cancelled ??= post(`/jobs/${jobId}/cancel`, a);
    return row?.html.includes('data-state="cancelled"') ?? false;
  });
  const response = await cancelled!;
  assert.equal(response.status, 303);
  assert.equal(response.headers.get("location"), "/jobs");
  assert.equal((await adapter.getJob({ scope: "alice", jobId })).state, "cancelled");
  const last = events[events.length - 1].rows.find((r) => r.id === jobId)!;
  assert.ok(!last.html.includes("/cancel"), "no cancel button once terminal");
  assert.match(last.html, /<span class="state state-cancelled">cancelled<\/span>/);
  assert.ok(events.every((event) => event.rows.every((r) => !r.html.includes("<script"))));
});

test("dashboard: open event streams end when the server stops", async () => {
  const shutdown = new AbortController();
  const stopping = createDashboard({
    adapter,
    sql: adapter.driver,
    changes,
    tokens,
    now: () => clock,
    shutdown: shutdown.signal,
    streamTiming: { safetyPollMs: 60_000, heartbeatMs: 60_000, maxStreamMs: 60_000 },
  });
  const login = await stopping(
    new Request(`${ORIGIN}/login`, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
      body: "token=token-a",
    }),
  );
  const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
  const stream = await stopping(new Request(`${ORIGIN}/jobs/events`, { headers: { cookie } }));
  const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("event: jobs")) text += (await reader.read()).value ?? "";
  shutdown.abort();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void reader.cancel();
  }, 10_000);
  try {
    let result = await reader.read();
    while (!result.done) result = await reader.read();
  } finally {
    clearTimeout(timer);
  }
  assert.equal(timedOut, false, "the stream ended by itself");
});
