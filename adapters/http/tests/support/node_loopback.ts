/**
 * The loopback server of the Node tests: a `node:http` server on 127.0.0.1 (a free
 * port) bridged to the Web-standard handler, as a host on Node without a framework would
 * run it. Request bodies stream into the handler (its size and time limits see the bytes
 * as they arrive); response bodies stream out (event streams, long-polls); a client that
 * goes away aborts the request's signal. `node:*` only.
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { SyncHttpHandler } from "@zakstam/codex-sync-engine-http";
import type { RunningServer } from "./harness.ts";

/** The Web `Request` of a Node request (its body a stream, `signal` ended by `gone`). */
function webRequest(origin: string, req: IncomingMessage, gone: AbortSignal): Request {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  const method = req.method ?? "GET";
  const init: RequestInit & { duplex?: "half" } = { method, headers, signal: gone };
  if (method !== "GET" && method !== "HEAD") {
    init.body = Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>;
    init.duplex = "half"; // Node's fetch Request needs it for a streamed body
  }
  return new Request(origin + (req.url ?? "/"), init);
}

async function answer(
  handler: SyncHttpHandler,
  origin: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const gone = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) gone.abort();
  });
  let response: Response;
  try {
    response = await handler(webRequest(origin, req, gone.signal));
  } catch {
    // The handler answers every failure itself; this is a bug in the bridge or handler.
    res.writeHead(500).end();
    return;
  }
  const headers: Record<string, string> = {};
  response.headers.forEach((value, key) => (headers[key] = value));
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  try {
    await pipeline(Readable.fromWeb(response.body as never), res);
  } catch {
    // The client went away mid-body: the pipeline has cancelled the response stream.
  }
}

/** Serves `handler` with `node:http` on 127.0.0.1; the runtime's `fetch` reaches it. */
export async function serveOnNodeLoopback(handler: SyncHttpHandler): Promise<RunningServer> {
  let origin = "";
  const server = createServer((req, res) => {
    answer(handler, origin, req, res).catch(() => res.destroy());
  });
  // Only the client closes idle keep-alive connections (close() ends the rest). With
  // Node's default 5 s server-side timeout, a connection the server was closing could be
  // picked for a new request by Node's fetch, whose own idle timer runs on a coarse
  // tick: "fetch failed" once a case had left its connections idle about 5 s.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: origin,
    fetch: (request) => fetch(request),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Idle keep-alive connections would hold close() open until they time out.
        server.closeAllConnections();
      }),
  };
}
