// The dashboard in a real headless browser (Debian's chromium through playwright-core),
// against `codex-sync serve` as a subprocess with two tokens, while `import --server`
// runs as another: log in; see an import appear and its progress bar move (live, no
// reload) while it runs — made slow deterministically by many small chunks; cancel it
// from the page; read a conversation (messages in order, tool call and output paired,
// reasoning collapsed); a rollout full of <script>, attribute-breaking strings and
// javascript: URLs is shown literally and nothing in it executes; keyboard navigation
// reaches the main controls; no horizontal scroll at 375 px; a second token sees none of
// the first's data. Screenshots go to cli/docs/screenshots/. Every wait is bounded.
//
// Run by `deno task test:dashboard` (a step of scripts/test_all.sh). Without chromium
// the test is skipped, except under CI=true, where it fails.

/// <reference lib="dom" />

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { events, runCli, SAMPLE, SAMPLE_ID, startCli, tempDir } from "./support.ts";

const CHROMIUM = Deno.env.get("CODEX_SYNC_CHROMIUM") ?? "/usr/bin/chromium";
const SHOTS = fileURLToPath(new URL("../docs/screenshots/", import.meta.url));
const WAIT_MS = 30_000;

const haveChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
const inCi = Deno.env.get("CI") === "true";

const HOSTILE_ID = "hostile-0001";
const SLOW_ID = "slow-0001";
const PAYLOADS = [
  `<script>window.__pwned = "script"</script>`,
  `"><img src=x onerror="window.__pwned='img'">`,
  `'><svg onload="window.__pwned='svg'">`,
  `<a href="javascript:window.__pwned='href'">click me</a> javascript:alert(1)`,
  `</pre></li></ol><script>alert("breakout")</script><iframe src="javascript:alert(2)">`,
  "<style>body{display:none}</style>&amp; &lt;b&gt; \u0000 `${alert(3)}`",
];

function rollout(id: string, turns: number, payloads: string[]): string {
  const lines = [
    JSON.stringify({
      timestamp: "2025-11-01T09:00:00.000Z",
      type: "session_meta",
      payload: { id, cwd: payloads[1] ?? "/tmp" },
    }),
  ];
  for (let t = 0; t < turns; t++) {
    const p = payloads.length === 0 ? `turn ${t}` : payloads[t % payloads.length];
    const ts = `2025-11-01T09:${String(t % 60).padStart(2, "0")}:00.000Z`;
    const item = (payload: unknown, timestamp = ts) =>
      JSON.stringify({ timestamp, type: "response_item", payload });
    lines.push(
      item({
        type: "message",
        role: "user",
        content: [{ type: "input_text", text: `ask ${t}: ${p}` }],
      }),
      item({ type: "reasoning", summary: [{ type: "summary_text", text: `think ${t}: ${p}` }] }),
      // A hostile timestamp and tool name land in attributes and headings.
      item(
        {
          type: "function_call",
          name: `tool ${p}`,
          arguments: `{"cmd": ${JSON.stringify(p)}}`,
          call_id: `c${t}`,
        },
        t === 0 ? `"><img src=x onerror="window.__pwned='time'">` : ts,
      ),
      item({ type: "function_call_output", call_id: `c${t}`, output: `out ${t}: ${p}` }),
      item({
        type: "message",
        role: "assistant",
        content: [{ type: "output_text", text: `reply ${t}: ${p}` }],
      }),
    );
  }
  return lines.join("\n") + "\n";
}

/** Fails the test when the page has a horizontal scroll. */
async function assertNoHorizontalScroll(page: Page, what: string): Promise<void> {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: globalThis.innerWidth,
  }));
  assert.ok(scroll <= width, `${what}: page is ${scroll}px wide in a ${width}px window`);
}

async function login(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/`);
  await page.waitForURL(/\/login$/, { timeout: WAIT_MS });
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(/\/conversations$/, { timeout: WAIT_MS });
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) Deno.removeSync(dir, { recursive: true });
});

test("dashboard in chromium: live import, cancel, viewer, escaping, keyboard, narrow, scopes", {
  skip: haveChromium || inCi ? false : `no chromium at ${CHROMIUM} (set CODEX_SYNC_CHROMIUM)`,
  timeout: 150_000,
}, async () => {
  assert.ok(haveChromium, `CI=true and no chromium at ${CHROMIUM}: the browser tests must run`);
  const dir = tempDir("dashboard");
  dirs.push(dir);
  Deno.mkdirSync(SHOTS, { recursive: true });
  Deno.writeTextFileSync(join(dir, "tokens.txt"), "token-a alice\ntoken-b bob\n");
  const hostile = join(dir, "rollout-hostile.jsonl");
  Deno.writeTextFileSync(hostile, rollout(HOSTILE_ID, 6, PAYLOADS));
  // ~650 KB in 1 KiB chunks: over 600 chunks to apply, one transaction each.
  const slow = join(dir, "rollout-slow.jsonl");
  Deno.writeTextFileSync(slow, rollout(SLOW_ID, 500, [`${"padding ".repeat(12)}`]));
  const started = performance.now();
  const step = (what: string) =>
    console.log(`  ${((performance.now() - started) / 1000).toFixed(1)} s: ${what}`);

  // Every chunk's apply waits 30 ms (serve's test hook, cli/src/test_hooks.ts): the slow
  // job's 600 chunks take at least 18 s whatever the machine's speed, where the test needs
  // a second or two to see its bar move and press Cancel.
  const server = startCli(
    ["serve", "--tokens", "tokens.txt", "--listen", "127.0.0.1:0", "--json"],
    dir,
    undefined,
    { CODEX_SYNC_TEST_APPLY_DELAY_MS: "30" },
  );
  let browser: Browser | undefined;
  let stopped = false;
  let importer: ReturnType<typeof startCli> | undefined;
  try {
    const url = JSON.parse(
      // PGlite's first start (initdb) is slow on a busy machine.
      await server.waitForLine((line) => line.includes('"listening"'), 90_000),
    ).url as string;
    step("serve is listening");
    const a = ["--server", url, "--token", "token-a"];
    const first = await runCli(["import", ...a, "--json", SAMPLE, hostile], dir);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(events(first.stdout).filter((e) => e.event === "imported").length, 2);

    step("sample and hostile rollouts imported");
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const dialogs: string[] = [];
    page.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(String(error)));

    // Log in (a wrong token first).
    await page.goto(`${url}/login`);
    await page.screenshot({ path: join(SHOTS, "login.png") });
    await page.getByLabel("Token").fill("wrong-token");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: "not accepted" }).waitFor({ timeout: WAIT_MS });
    await login(page, url, "token-a");
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "codex_sync_session");
    assert.ok(session?.httpOnly && session.sameSite === "Strict" && session.path === "/");
    assert.ok(!session!.value.includes("token-a"));
    assert.equal(await page.evaluate(() => document.cookie), "", "not readable by script");

    // Conversations: both imports, titled by their first user message.
    const rows = page.locator("table[aria-label=Conversations] tbody tr");
    assert.equal(await rows.count(), 2);
    assert.ok((await page.textContent("main"))!.includes(`ask 0: ${PAYLOADS[0]}`));
    await page.screenshot({ path: join(SHOTS, "conversations.png"), fullPage: true });

    // Keyboard: Tab from the top reaches the skip link, the navigation, log out, the
    // search field and button, and the first conversation.
    await page.goto(`${url}/conversations`);
    const reached: string[] = [];
    for (let i = 0; i < 9; i++) {
      await page.keyboard.press("Tab");
      reached.push(
        await page.evaluate(() => {
          const el = document.activeElement as HTMLElement | null;
          return el
            ? `${el.tagName.toLowerCase()}:${el.getAttribute("id") ?? el.textContent?.trim()}`
            : "";
        }),
      );
    }
    for (
      const expected of [
        "a:Skip to content",
        "a:Conversations",
        "a:Jobs",
        "button:Log out",
        "input:q",
        "button:Search",
      ]
    ) {
      assert.ok(reached.includes(expected), `Tab reaches ${expected}: ${reached.join(", ")}`);
    }
    assert.ok(reached.some((r) => r.startsWith("a:ask 0")), reached.join(", "));
    // Search by text.
    await page.getByLabel("Search by id or text").fill("padding");
    await page.keyboard.press("Enter");
    await page.waitForURL(/q=padding/, { timeout: WAIT_MS });
    assert.match(await page.textContent("main") ?? "", /No conversation matches/);

    // The hostile conversation: every string shown literally, nothing executed.
    await page.goto(`${url}/conversations/${HOSTILE_ID}`);
    const main = (await page.textContent("main"))!;
    for (const payload of PAYLOADS.slice(0, 5)) {
      assert.ok(main.includes(`reply 0: ${PAYLOADS[0]}`) && main.includes(payload), payload);
    }
    assert.equal(
      await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned),
      undefined,
    );
    assert.equal(
      await page.evaluate(() =>
        document.querySelectorAll("main script, main img, main svg, main iframe, main style").length
      ),
      0,
    );
    assert.ok(await page.isVisible("main"), "a <style> in content did not hide the page");
    const links = await page.evaluate(() =>
      [...document.querySelectorAll("a")].map((a) => a.getAttribute("href") ?? "")
    );
    assert.ok(links.every((href) => href.startsWith("/") || href.startsWith("#")), links.join(" "));
    // Reasoning collapsed; the first tool call paired with its output.
    const reasoning = page.locator("details.reasoning").first();
    assert.equal(await reasoning.getAttribute("open"), null);
    assert.equal(await reasoning.locator("pre").isVisible(), false);
    await reasoning.locator("summary").click();
    assert.ok(await reasoning.locator("pre").isVisible());
    const call = page.locator('li.kind-tool_call[data-call-id="c0"]');
    assert.ok((await call.textContent())!.includes(`out 0: ${PAYLOADS[0]}`));
    await page.screenshot({ path: join(SHOTS, "conversation-hostile.png"), fullPage: true });

    // The sample: items in line order, the first page bounded, "Next page" continues.
    await page.goto(`${url}/conversations/${SAMPLE_ID}`);
    const lineNos = await page.$$eval(
      "li.item",
      (items) => items.map((li) => Number(li.getAttribute("data-line"))),
    );
    assert.equal(lineNos.length, 50);
    assert.deepEqual(lineNos, [...lineNos].sort((x, y) => x - y));
    const kinds = await page.$$eval(
      "li.item",
      (items) => items.slice(0, 4).map((li) => li.className),
    );
    assert.deepEqual(kinds.map((k) => k.split(" ")[1]), [
      "kind-message",
      "kind-reasoning",
      "kind-tool_call",
      "kind-message",
    ]);
    await page.screenshot({ path: join(SHOTS, "conversation.png") });
    await page.getByRole("link", { name: "Next page" }).click();
    await page.waitForURL(/after=\d+/, { timeout: WAIT_MS });
    const nextLines = await page.$$eval(
      "li.item",
      (items) => items.map((li) => Number(li.getAttribute("data-line"))),
    );
    assert.ok(nextLines.length > 0 && nextLines[0] > lineNos[lineNos.length - 1]);

    // Jobs, live: the page is open before the import starts; its row appears and its
    // progress bar moves without a reload.
    await page.goto(`${url}/jobs`);
    await page.evaluate(() => (globalThis as { __sameDocument?: boolean }).__sameDocument = true);
    importer = startCli(
      ["import", ...a, "--json", "--chunk-size", "1k", "--concurrency", "8", slow],
      dir,
    );
    step("viewer checked; slow import started");
    // The slow job's progress bar once its value passes `above` (and is not yet full).
    const progressAbove = async (above: number) => {
      const handle = await page.waitForFunction(
        ({ id, above }) => {
          for (const tr of document.querySelectorAll("tbody tr")) {
            if (tr.querySelector("td:nth-child(2) a")?.textContent !== id) continue;
            const bar = tr.querySelector("progress") as HTMLProgressElement | null;
            if (bar && bar.value > above && bar.value < bar.max) return [bar.value, bar.max];
          }
          return false;
        },
        { id: SLOW_ID, above },
        { timeout: 60_000, polling: 50 },
      );
      return await handle.jsonValue() as [number, number];
    };
    const [v1, total] = await progressAbove(0);
    step(`its job appeared, ${v1}/${total} chunks applied`);
    assert.ok(total > 600, `${total} chunks`);
    const [v2] = await progressAbove(v1);
    assert.ok(v2 > v1);
    assert.equal(
      await page.evaluate(() => (globalThis as { __sameDocument?: boolean }).__sameDocument),
      true,
      "updated without a reload",
    );
    assert.match(await page.textContent("#live") ?? "", /Live: updated/);
    await page.screenshot({ path: join(SHOTS, "jobs-live.png") });
    step("its progress bar moved");
    // Cancel it from the page (by keyboard: focus the button, press Enter).
    const slowRow = page.locator("tbody tr", { has: page.getByRole("link", { name: SLOW_ID }) });
    const cancel = slowRow.getByRole("button", { name: /^Cancel job / });
    await cancel.focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/jobs$/, { timeout: WAIT_MS });
    await slowRow.locator('[data-state="cancelled"], .state-cancelled').first().waitFor({
      timeout: WAIT_MS,
    });
    const ended = await Promise.race([
      importer.done,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("import did not end")), WAIT_MS)
      ),
    ]);
    importer = undefined;
    assert.notEqual(ended.code, 0);
    assert.match(ended.stdout + ended.stderr, /cancel/i);
    assert.equal(await slowRow.getByRole("button", { name: /^Cancel job / }).count(), 0);
    await page.screenshot({ path: join(SHOTS, "jobs.png"), fullPage: true });

    step("cancelled from the page");
    // Narrow window: no horizontal scroll on the main pages.
    const narrow = await context.newPage();
    await narrow.setViewportSize({ width: 375, height: 800 });
    for (
      const path of [
        "/conversations",
        `/conversations/${HOSTILE_ID}`,
        `/conversations/${SAMPLE_ID}`,
        "/jobs",
      ]
    ) {
      await narrow.goto(`${url}${path}`);
      await assertNoHorizontalScroll(narrow, path);
    }
    await narrow.screenshot({ path: join(SHOTS, "jobs-narrow.png"), fullPage: true });
    await narrow.goto(`${url}/conversations/${HOSTILE_ID}`);
    await narrow.screenshot({ path: join(SHOTS, "conversation-narrow.png") });

    assert.equal(dialogs.length, 0, `no dialog opened: ${dialogs.join(", ")}`);
    assert.equal(pageErrors.length, 0, pageErrors.join("\n"));

    step("narrow pages checked");
    // A second token (its own browser context) sees none of it.
    const other = await browser.newContext();
    const pageB = await other.newPage();
    pageB.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await login(pageB, url, "token-b");
    assert.match(await pageB.textContent("main") ?? "", /No conversations yet/);
    for (const id of [SAMPLE_ID, HOSTILE_ID, SLOW_ID]) {
      const response = await pageB.goto(`${url}/conversations/${id}`);
      assert.equal(response?.status(), 404);
      const missing = await pageB.goto(`${url}/conversations/${id}-missing`);
      assert.equal(missing?.status(), 404);
    }
    await pageB.goto(`${url}/jobs`);
    await pageB.waitForFunction(
      () => /Live: updated/.test(document.getElementById("live")?.textContent ?? ""),
      null,
      { timeout: WAIT_MS },
    );
    assert.equal(await pageB.locator("tbody tr").count(), 0);
    assert.ok(await pageB.isVisible("#no-jobs"));
    const bodyB = await pageB.content();
    for (const id of [SAMPLE_ID, HOSTILE_ID, SLOW_ID]) assert.ok(!bodyB.includes(id));
    // Logging out ends the session in this browser.
    await pageB.getByRole("button", { name: "Log out" }).click();
    await pageB.waitForURL(/\/login$/, { timeout: WAIT_MS });
    await pageB.goto(`${url}/jobs`);
    await pageB.waitForURL(/\/login$/, { timeout: WAIT_MS });
    assert.equal(dialogs.length, 0, `no dialog opened: ${dialogs.join(", ")}`);
    step("second token checked");

    // SIGTERM while a tab holds the live jobs stream: the server still stops at once.
    await page.goto(`${url}/jobs`);
    await page.waitForFunction(
      () => /Live: updated/.test(document.getElementById("live")?.textContent ?? ""),
      null,
      { timeout: WAIT_MS },
    );
    server.signal("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      server.done,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error("serve did not stop on SIGTERM")), 20_000)
      ),
    ]).finally(() => clearTimeout(timer));
    stopped = true;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(events(result.stdout).some((e) => e.event === "stopped"), result.stdout);
    step("stopped with a live tab open");
  } finally {
    await browser?.close();
    // Either may have ended already (an error above must not be hidden by this one).
    const kill = (cli: ReturnType<typeof startCli>) => {
      try {
        cli.signal("SIGKILL");
      } catch { /* ended already */ }
    };
    if (importer) {
      kill(importer);
      await importer.done.catch(() => {});
    }
    if (!stopped) {
      kill(server);
      await server.done.catch(() => {});
    }
  }
});
