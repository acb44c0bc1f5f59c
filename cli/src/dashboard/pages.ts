/**
 * The dashboard's pages, rendered on the server with {@link html} (every value escaped):
 * login, conversations, one conversation, jobs, and a not-found page that is the same for
 * a missing id and another scope's.
 *
 * @module
 */

import { type Html, html, type HtmlValue } from "./html.ts";
import type { JobRow } from "./job_feed.ts";
import type { ConversationItem, ConversationSummary } from "./queries.ts";

/** Which section the page belongs to (highlighted in the navigation). */
export type Section = "conversations" | "jobs" | "login";

/** Sizes: 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** ms since the epoch → "2025-11-01 09:00:00Z". */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

function navLink(href: string, label: string, current: boolean): Html {
  return html`<li><a href="${href}"${
    current
      ? html`
        aria-current="page"
      `
      : ""
  }>${label}</a></li>`;
}

/** The frame of every page. */
export function layout(
  options: { title: string; section: Section; scope?: string; body: HtmlValue },
): string {
  const { title, section, scope } = options;
  const top = scope === undefined
    ? html`<header class="top"><span class="brand">codex-sync</span></header>`
    : html`
      <header class="top">
        <span class="brand">codex-sync</span>
        <nav aria-label="Main">
          <ul>
          ${navLink("/conversations", "Conversations", section === "conversations")}
          ${navLink("/jobs", "Jobs", section === "jobs")}
        </ul>
        </nav>
        <span class="muted">scope <strong class="id">${scope}</strong></span>
        <form method="post" action="/logout"><button type="submit">Log out</button></form>
      </header>
    `;
  return "<!doctype html>\n" + html`
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>${title} · codex-sync</title>
        <link rel="stylesheet" href="/assets/dashboard.css">
        <script src="/assets/dashboard.js" defer></script>
      </head>
      <body>
    <a class="skip" href="#main">Skip to content</a>
    ${top}
    <main id="main" tabindex="-1">
    ${options.body}
    </main>
      </body>
    </html>
  `.text;
}

/** The login form (with a message after a refused token). */
export function loginPage(message?: string): string {
  return layout({
    title: "Log in",
    section: "login",
    body: html`<h1>Log in</h1>
<p>Enter one of the tokens the server was started with (<code>serve --tokens</code>). You will see
the conversations and jobs of that token's scope only.</p>
${message ? html`<p class="error" role="alert">${message}</p>` : ""}
<form class="login" method="post" action="/login">
  <div><label for="token">Token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus></div>
  <div><button type="submit">Log in</button></div>
</form>`,
  });
}

/** A page for a missing (or foreign: the same) resource. */
export function notFoundPage(scope: string | undefined, what: string): string {
  return layout({
    title: "Not found",
    section: "conversations",
    scope,
    body: html`
      <h1>Not found</h1>
      <p>${what}</p>
      <p><a href="/conversations">All conversations</a></p>
    `,
  });
}

/** A page for a refused request. */
export function messagePage(scope: string | undefined, title: string, text: string): string {
  return layout({
    title,
    section: "conversations",
    scope,
    body: html`
      <h1>${title}</h1>
      <p>${text}</p>
    `,
  });
}

function conversationHref(id: string, after?: number): string {
  return `/conversations/${encodeURIComponent(id)}${after === undefined ? "" : `?after=${after}`}`;
}

/** The conversations list. */
export function conversationsPage(options: {
  scope: string;
  search: string;
  items: (ConversationSummary & { state: string })[];
  next?: string;
}): string {
  const { scope, search, items, next } = options;
  const rows = items.map((c) =>
    html`
      <tr>
        <td
          data-label="Conversation"><a href="${conversationHref(c.conversationId)}">${c.title ??
            "(no user message)"}</a><div class="id muted">${c.conversationId}</div></td>
        <td data-label="Records" class="num">${c.lineCount}</td>
        <td data-label="Size" class="num">${formatBytes(c.byteCount)}</td>
        <td data-label="Last import"><time datetime="${new Date(c.importedAt)
          .toISOString()}">${formatTime(c.importedAt)}</time></td>
        <td data-label="State"><span class="state state-${c.state}">${c.state}</span></td>
      </tr>
    `
  );
  const nextHref = next === undefined
    ? undefined
    : `/conversations?${new URLSearchParams({ ...(search ? { q: search } : {}), after: next })}`;
  return layout({
    title: "Conversations",
    section: "conversations",
    scope,
    body: html`<h1>Conversations</h1>
<form class="filters" method="get" action="/conversations" role="search">
  <div><label for="q">Search by id or text</label>
  <input id="q" name="q" type="search" value="${search}"></div>
  <div><button type="submit">Search</button></div>
</form>
${
      items.length === 0
        ? html`<p class="empty">${
          search ? "No conversation matches." : "No conversations yet: import one with --server."
        }</p>`
        : html`
          <table class="cards" aria-label="Conversations">
            <thead>
              <tr>
                <th scope="col">Conversation</th>
                <th scope="col">Records</th>
                <th scope="col">Size</th>
                <th scope="col">Last import</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>${rows}</tbody>
          </table>
        `
    }
<nav class="pager" aria-label="Pages">${
      search || nextHref ? html`<a href="/conversations">First page</a>` : ""
    }${nextHref ? html`<a href="${nextHref}" rel="next">Next page</a>` : ""}</nav>`,
  });
}

function cutNote(shown: number, total: number): Html | string {
  return total > shown
    ? html`<p class="cut">… ${total - shown} more characters not shown (export the conversation for
all of it).</p>`
    : "";
}

/** A tool output as a reader wants it: what the tool printed, and its exit code. */
export interface ReadableToolOutput {
  text: string;
  exitCode?: number;
}

/**
 * Codex stores a shell call's output as JSON text, `{"output": "...", "metadata":
 * {"exit_code": 0, ...}}`: shown raw, its newlines are `\n` escapes. Anything else (or a
 * cut, so unparsable, text) is shown as it is.
 */
export function readableToolOutput(text: string): ReadableToolOutput {
  if (!text.startsWith("{")) return { text };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { text };
  }
  if (typeof value !== "object" || value === null) return { text };
  const { output, metadata } = value as { output?: unknown; metadata?: unknown };
  if (typeof output !== "string") return { text };
  const exitCode = typeof metadata === "object" && metadata !== null
    ? (metadata as { exit_code?: unknown }).exit_code
    : undefined;
  return typeof exitCode === "number" && Number.isInteger(exitCode)
    ? { text: output, exitCode }
    : { text: output };
}

function itemHtml(item: ConversationItem): Html {
  const when = item.timestamp
    ? html`<time datetime="${item.timestamp}">${item.timestamp}</time>`
    : "";
  const head = (who: string) =>
    html`<header><span class="who">${who}</span>${when}<span>line ${item.lineNo}</span></header>`;
  if (item.kind === "reasoning") {
    return html`<li class="item kind-reasoning role-assistant" data-line="${item.lineNo}">
${head("Reasoning")}
<details class="reasoning"><summary>Show reasoning</summary><pre>${item.text}</pre>${
      cutNote(item.text.length, item.textLength)
    }</details></li>`;
  }
  if (item.kind === "tool_call") {
    const output = item.output;
    const readable = readableToolOutput(output?.text ?? "");
    return html`<li class="item kind-tool_call" data-line="${item.lineNo}" data-call-id="${
      item.callId ?? ""
    }">
${head(`Tool call: ${item.tool ?? "tool"}`)}
<pre class="arguments">${item.arguments ?? ""}</pre>${
      cutNote((item.arguments ?? "").length, item.argumentsLength ?? 0)
    }
${
      output
        ? html`
          <details class="output" ${output.length <= 2_000
            ? html`
              open
            `
            : ""}>
          <summary>Output (line ${output.lineNo})${readable.exitCode === undefined
            ? ""
            : html`, exit code ${readable.exitCode}`}</summary><pre>${readable.text}</pre>${cutNote(
              output.text.length,
              output.length,
            )}</details>
        `
        : html`<p class="muted">No output recorded for this call nearby.</p>`
    }</li>`;
  }
  return html`<li class="item kind-message role-${item.role}" data-line="${item.lineNo}">
${head(item.role === "user" ? "User" : item.role === "assistant" ? "Assistant" : item.role)}
<pre class="text">${item.text}</pre>${cutNote(item.text.length, item.textLength)}</li>`;
}

/** One page of a conversation. */
export function conversationPage(options: {
  scope: string;
  conversation: ConversationSummary & { state: string };
  items: ConversationItem[];
  after: number;
  next?: number;
}): string {
  const { scope, conversation: c, items, after, next } = options;
  return layout({
    title: c.title ?? c.conversationId,
    section: "conversations",
    scope,
    body: html`
      <h1>${c.title ?? "(no user message)"}</h1>
      <dl class="meta">
        <dt>Id</dt>
        <dd class="id">${c.conversationId}</dd>
        <dt>File</dt>
        <dd class="id">${c.path}</dd>
        <dt>Records</dt>
        <dd>${c.lineCount} (${formatBytes(c.byteCount)})</dd>
        <dt>Last import</dt>
        <dd>${formatTime(c.importedAt)}</dd>
        <dt>State</dt>
        <dd><span class="state state-${c.state}">${c.state}</span></dd>
      </dl>
      <h2>${after === 0 ? "Messages" : `Messages after line ${after}`}</h2>
      ${items.length === 0
        ? html`<p class="empty">No messages${after === 0 ? "" : " after this line"}.</p>`
        : html`<ol class="items">${items.map(itemHtml)}</ol>`}
      <nav class="pager" aria-label="Pages">${after > 0
        ? html`<a href="${conversationHref(c.conversationId)}">First page</a>`
        : ""}${next === undefined
        ? ""
        : html`<a href="${
          conversationHref(c.conversationId, next)
        }" rel="next">Next page</a>`}</nav>
    `,
  });
}

/** One row of the jobs table (also sent, rendered, by the live stream). */
export function jobRowHtml(row: JobRow): Html {
  const percent = row.totalChunks === 0 ? 100 : Math.floor((row.cursor / row.totalChunks) * 100);
  return html`
    <tr data-job-id="${row.jobId}" data-state="${row.state}">
      <td
        data-label="Job"><span class="id">${row
          .jobId}</span><div class="muted">created ${formatTime(row.createdAt)}</div></td>
      <td data-label="Conversation"><a class="id" href="${conversationHref(
        row.conversationId,
      )}">${row.conversationId}</a></td>
      <td data-label="State"><span class="state state-${row.state}">${row.state}</span></td>
      <td
        data-label="Progress"><progress max="${row.totalChunks}" value="${row
          .cursor}" aria-label="${`Job ${row.jobId}: ${row.cursor} of ${row.totalChunks} chunks applied`}">${percent}%</progress>
      <div class="muted">${row.cursor} / ${row.totalChunks} chunks, ${formatBytes(
        row.appliedBytes,
      )}</div></td>
      <td data-label="Error">${row.error
        ? html`<span class="error"><code>${row.error.code}</code> ${row.error.message}</span>`
        : ""}</td>
      <td data-label="Action">${row.cancellable
        ? html`<form method="post" action="/jobs/${encodeURIComponent(row.jobId)}/cancel">
<button type="submit" class="danger" aria-label="${`Cancel job ${row.jobId}`}">Cancel</button></form>`
        : ""}</td>
    </tr>
  `;
}

/** Job states the filter offers. */
export const JOB_FILTERS = [
  "queued",
  "running",
  "retry_wait",
  "succeeded",
  "failed",
  "cancelled",
] as const;

/** The jobs page. */
export function jobsPage(options: {
  scope: string;
  state?: string;
  rows: JobRow[];
  eventsHref: string;
  next?: string;
}): string {
  const { scope, state, rows, eventsHref, next } = options;
  const nextHref = next === undefined
    ? undefined
    : `/jobs?${new URLSearchParams({ ...(state ? { state } : {}), cursor: next })}`;
  return layout({
    title: "Jobs",
    section: "jobs",
    scope,
    body: html`
      <h1>Jobs</h1>
      <form class="filters" method="get" action="/jobs">
        <div><label for="state">State</label>
        <select id="state" name="state">
          <option value=""${state ? "" : html`
            selected
          `}>all</option>
          ${JOB_FILTERS.map((s) =>
            html`<option${
              s === state
                ? html`
                  selected
                `
                : ""
            }>${s}</option>`
          )}
        </select></div>
        <div><button type="submit">Filter</button></div>
      </form>
      <p id="live" class="live" role="status" aria-live="polite"></p>
      <p id="no-jobs" class="empty" ${rows.length > 0
        ? html`
          hidden
        `
        : ""}>No jobs${state ? ` in state ${state}` : ""}.</p>
      <table class="cards" aria-label="Jobs, newest first" data-events="${eventsHref}" ${rows
          .length === 0
        ? html`
          hidden
        `
        : ""}>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Conversation</th>
            <th scope="col">State</th>
            <th scope="col">Progress</th>
            <th scope="col">Error</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>${rows.map(jobRowHtml)}</tbody>
      </table>
      <nav class="pager" aria-label="Pages">${next !== undefined || eventsHref.includes("cursor=")
        ? html`<a href="/jobs">Newest</a>`
        : ""}${nextHref ? html`<a href="${nextHref}" rel="next">Older jobs</a>` : ""}</nav>
    `,
  });
}
