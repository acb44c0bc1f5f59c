/**
 * `codex-sync serve`: the store (embedded PGlite by default, or `--database-url`) over
 * HTTP — the engine's protocol (`@zakstam/codex-sync-engine-http`) behind bearer tokens,
 * with the CLI's row handler behind it, so `import --server` lands in the same tables
 * as a local import.
 *
 * @module
 */

import { resolve } from "node:path";
import type { ParsedArgs } from "../args.ts";
import { type Command, type CommandContext, LOCAL_STORE_OPTIONS } from "../context.ts";
import { CliError, EXIT, usage } from "../errors.ts";
import { CLI_ROUTES, hashTokens, parseTokens, serverHandler } from "../remote.ts";
import { openDashboard } from "../dashboard/mod.ts";
import { openStore, storeOptions } from "../store.ts";
import { testHooks } from "../test_hooks.ts";

/** Default `--listen`. */
export const DEFAULT_LISTEN = "127.0.0.1:8787";

/** `host:port` → parts (`[::1]:8787` for IPv6). */
export function parseListen(text: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw usage(
      `--listen expects <host>:<port> (e.g. 127.0.0.1:8787), got ${JSON.stringify(text)}`,
    );
  }
  return { hostname: match[1] ?? (match[2] || "127.0.0.1"), port };
}

/** True for the API's paths (the engine's protocol and the CLI's routes); the rest is the dashboard's. */
export function isApiPath(pathname: string): boolean {
  return pathname.startsWith("/v1/") || pathname.startsWith(CLI_ROUTES);
}

/** True for loopback addresses. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** The `serve` command. */
export const serveCommand: Command = {
  spec: {
    name: "serve",
    summary: "Serve the store over HTTP to import --server (bearer tokens)",
    description: `
Serves the store (the embedded PGlite database by default, or --database-url) over HTTP:
a web dashboard at / (log in with a token: conversations, jobs with live progress and a
cancel button, a conversation viewer), the sync engine's protocol under /v1/, and a few
reads of the record tables under /codex-sync/v1/, so that "import",
"watch", "status", "jobs", "cancel", "verify", "export" and "restore" run from another
terminal or machine with --server <url> --token <token>. Their rows land in the same
tables as a local import.

--tokens names a file of tokens and the scope each acts for: JSON ({"<token>": "<scope>"}
or [{"token", "scope"}]) or lines "<token> <scope>". The server keeps only their SHA-256
digests and compares presented tokens in constant time; a scope sees only its own jobs
and conversations.

Listens on 127.0.0.1:8787 by default (--listen; port 0 picks a free one). A non-loopback
address is served as asked, with a warning: the connection is plain HTTP (put a TLS proxy
in front). Prints the URL once listening (--json: {"event":"listening","url":...}).
Ctrl-C or SIGTERM stops it cleanly.`,
    positionals: [],
    options: [
      ...LOCAL_STORE_OPTIONS.filter((option) => option.name !== "scope"),
      {
        name: "listen",
        type: "string",
        value: "<host:port>",
        description: `Address to listen on (default ${DEFAULT_LISTEN}; port 0: any free port)`,
      },
      {
        name: "tokens",
        type: "string",
        value: "<file>",
        description: "Tokens and their scopes (JSON, or <token> <scope> lines); required",
      },
    ],
    examples: [
      "codex-sync serve --tokens tokens.txt",
      "codex-sync serve --tokens tokens.json --listen 127.0.0.1:0 --json",
      "codex-sync serve --database-url postgres://me@localhost/app --tokens tokens.txt",
    ],
  },
  run: runServe,
};

async function readText(context: CommandContext, path: string): Promise<string> {
  const info = await context.host.stat(path);
  if (!info?.isFile) throw new CliError("E_CLI_NOT_FOUND", `--tokens: no file ${path}`);
  const chunks: Uint8Array[] = [];
  for await (const piece of context.host.readFile(path)) chunks.push(piece);
  return new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
}

async function runServe(context: CommandContext, args: ParsedArgs): Promise<number> {
  const { host } = context;
  if (!host.serve) throw usage('"serve" is not available on this host (it has no HTTP server)');
  if (args.options.store === "memory") {
    throw usage('"serve" needs a store that keeps what it is sent (not --store memory)');
  }
  const tokensPath = args.options.tokens as string | undefined;
  if (tokensPath === undefined) throw usage('"serve" needs --tokens <file>');
  const tokens = await hashTokens(
    parseTokens(await readText(context, resolve(host.cwd(), tokensPath))),
  );
  const listen = parseListen((args.options.listen as string | undefined) ?? DEFAULT_LISTEN);
  const target = storeOptions(host, args.options, true);
  const emit = (event: Record<string, unknown>, text: string) =>
    context.json ? host.stdout.write(JSON.stringify(event) + "\n") : host.stdout.write(text + "\n");
  const stopping = new AbortController();
  const store = await openStore(host, target, {
    create: true,
    handler: testHooks(host, stopping.signal),
  });
  let stopped: () => void = () => {};
  const stop = new Promise<void>((done) => stopped = done);
  const unsubscribe = host.onInterrupt(() => {
    stopping.abort();
    stopped();
  });
  let dashboard: Awaited<ReturnType<typeof openDashboard>> | undefined;
  try {
    store.startWorker();
    const onError = (error: unknown) => {
      if (context.verbose) host.stderr.write(`server error: ${error}\n`);
    };
    const api = serverHandler(store, tokens, onError);
    dashboard = openDashboard(store, tokens, onError);
    const pages = dashboard;
    const handler = (request: Request) =>
      isApiPath(new URL(request.url).pathname) ? api(request) : pages.handle(request);
    const server = await host.serve(listen, handler);
    const shown = server.hostname.includes(":") ? `[${server.hostname}]` : server.hostname;
    const url = `http://${shown}:${server.port}`;
    if (!isLoopback(server.hostname)) {
      host.stderr.write(
        `warning: listening on ${server.hostname}, not loopback: tokens and data cross the ` +
          "network in plain HTTP (put a TLS proxy in front)\n",
      );
    }
    emit(
      {
        event: "listening",
        url,
        store: store.location,
        kind: store.kind,
        scopes: [...new Set(tokens.map((t) => t.scope))].length,
      },
      `listening on ${url} (store: ${store.kind} at ${store.location}, ${tokens.length} token(s)); ` +
        `dashboard at ${url}/; Ctrl-C to stop`,
    );
    await stop;
    // The dashboard's event streams first: a graceful close waits for open responses.
    await dashboard.close();
    await server.close();
    emit({ event: "stopped" }, "stopped");
  } finally {
    unsubscribe();
    await dashboard?.close();
    await store.close();
  }
  return EXIT.ok;
}
