/**
 * Dashboard logins. A token typed into the login form is checked by the same bearer
 * authenticator as the API (so the same tokens, hashed, compared in constant time), and
 * the browser keeps a session cookie: `<expiresAt>.<mac>`, where `mac` is the hex
 * HMAC-SHA256, keyed by the token's SHA-256 digest, of a fixed label and the expiry. The
 * token is never stored or sent back; the server keeps no session table — it recomputes
 * the MAC for each configured token — so two `serve` processes with the same tokens file
 * accept each other's cookies, and a restart logs nobody out. Forging a cookie needs the
 * token's digest, which only the token yields. Logging out clears the cookie in the
 * browser; a copied cookie stays valid until it expires (removing the token from the file
 * revokes every session of it).
 *
 * @module
 */

import { createBearerAuthenticator } from "@zakstam/codex-sync-engine-http";

/** Name of the session cookie. */
export const SESSION_COOKIE = "codex_sync_session";

/** How long a login lasts by default: 12 hours. */
export const DEFAULT_SESSION_MS = 12 * 60 * 60 * 1000;

const LABEL = "codex-sync dashboard session v1\0";
const encoder = new TextEncoder();

/** Logins and session cookies over the server's tokens. */
export interface Sessions {
  /** The scope of a typed token, or undefined when no configured token matches. */
  login(token: string): Promise<{ scope: string; cookie: string } | undefined>;
  /** The scope a request's session cookie is valid for, if any. */
  scopeOf(request: Request): Promise<string | undefined>;
  /** `Set-Cookie` value for a new session (`secure` over HTTPS). */
  setCookie(cookie: string, secure: boolean): string;
  /** `Set-Cookie` value that removes the session. */
  clearCookie(secure: boolean): string;
}

/** Options of {@link createSessions}. */
export interface SessionOptions {
  /** The server's tokens, as `hashTokens` keeps them. */
  tokens: readonly { sha256: string; scope: string }[];
  /** Clock (default `Date.now`). */
  now?: () => number;
  /** Session lifetime in ms (default {@link DEFAULT_SESSION_MS}). */
  sessionMs?: number;
}

function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Equal strings of equal length, compared without an early exit. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** The value of cookie `name` in a `Cookie` header. */
export function readCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Sessions over `options.tokens`. */
export function createSessions(options: SessionOptions): Sessions {
  const now = options.now ?? Date.now;
  const sessionMs = options.sessionMs ?? DEFAULT_SESSION_MS;
  const authenticate = createBearerAuthenticator(options.tokens);
  const keys = Promise.all(options.tokens.map(async (entry) => ({
    scope: entry.scope,
    sha256: entry.sha256,
    key: await crypto.subtle.importKey(
      "raw",
      fromHex(entry.sha256) as BufferSource,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    ),
  })));
  const mac = async (key: CryptoKey, expiresAt: number) =>
    toHex(
      new Uint8Array(
        await crypto.subtle.sign("HMAC", key, encoder.encode(LABEL + String(expiresAt))),
      ),
    );
  const attributes = (secure: boolean) =>
    `HttpOnly; SameSite=Strict; Path=/${secure ? "; Secure" : ""}`;
  return {
    async login(token) {
      // The API's own check of a bearer token: one rule for both.
      const scope = /^[\x21-\x7e]{1,4096}$/.test(token)
        ? await authenticate(
          new Request("http://dashboard/", {
            headers: { authorization: `Bearer ${token}` },
          }),
        )
        : undefined;
      if (!scope) return undefined;
      const digest = toHex(
        new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token))),
      );
      const entry = (await keys).find((k) => k.sha256 === digest && k.scope === scope);
      if (!entry) return undefined;
      const expiresAt = now() + sessionMs;
      return { scope, cookie: `${expiresAt}.${await mac(entry.key, expiresAt)}` };
    },
    async scopeOf(request) {
      const value = readCookie(request.headers.get("cookie"), SESSION_COOKIE);
      const match = value === undefined ? null : /^(\d{1,16})\.([0-9a-f]{64})$/.exec(value);
      if (!match) return undefined;
      const expiresAt = Number(match[1]);
      if (!(expiresAt > now()) || expiresAt > now() + sessionMs) return undefined;
      let scope: string | undefined;
      // Every token is tried (no early exit): the time says nothing about which matched.
      for (const entry of await keys) {
        if (sameText(await mac(entry.key, expiresAt), match[2]) && scope === undefined) {
          scope = entry.scope;
        }
      }
      return scope;
    },
    setCookie: (cookie, secure) =>
      `${SESSION_COOKIE}=${cookie}; Max-Age=${Math.floor(sessionMs / 1000)}; ${attributes(secure)}`,
    clearCookie: (secure) => `${SESSION_COOKIE}=; Max-Age=0; ${attributes(secure)}`,
  };
}
