/**
 * Bearer tokens: `Authorization: Bearer <token>` → scope, with the tokens kept as SHA-256
 * digests and compared in constant time.
 *
 * @module
 */

import { sha256Hex } from "@zakstam/codex-sync-engine";
import type { Authenticate } from "./handler.ts";

/** One accepted token: the token itself, or the lowercase hex SHA-256 of its UTF-8 bytes. */
export interface BearerToken {
  /** The scope every request with this token acts for. */
  scope: string;
  /** The token (hashed at once, never kept). */
  token?: string;
  /** Or its digest: lowercase hex SHA-256 of the token's UTF-8 bytes. */
  sha256?: string;
}

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  // The core's hasher hashes small inputs in JS: for a token that is a fraction of a
  // round trip into Web Crypto, which was a quarter of the server's CPU per small request.
  return fromHex(await sha256Hex(encoder.encode(text)));
}

function fromHex(hex: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new TypeError("createBearerAuthenticator: sha256 must be 64 lowercase hex digits");
  }
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** True when `a` and `b` (32 bytes each) are equal, in time independent of where they differ. */
function equalDigests(a: Uint8Array, b: Uint8Array): boolean {
  let diff = 0;
  for (let i = 0; i < 32; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * An `authenticate` for bearer tokens. Every request's token is hashed and compared
 * with every accepted digest (no early exit), so the time taken says nothing about
 * which token, or how much of one, matched.
 */
export function createBearerAuthenticator(tokens: Iterable<BearerToken>): Authenticate {
  const pending = [...tokens].map((entry) => {
    if (typeof entry.scope !== "string" || entry.scope === "") {
      throw new TypeError("createBearerAuthenticator: every token needs a non-empty scope");
    }
    if ((entry.token === undefined) === (entry.sha256 === undefined)) {
      throw new TypeError("createBearerAuthenticator: give exactly one of token and sha256");
    }
    if (entry.token !== undefined && entry.token.length === 0) {
      throw new TypeError("createBearerAuthenticator: a token must not be empty");
    }
    return {
      scope: entry.scope,
      token: entry.token,
      digest: entry.sha256 === undefined ? undefined : fromHex(entry.sha256),
    };
  });
  const entries = Promise.all(pending.map(async (entry) => ({
    scope: entry.scope,
    digest: entry.digest ?? await digest(entry.token!),
  })));
  return async (request) => {
    const header = request.headers.get("authorization");
    const match = header === null ? null : /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
    if (!match) return undefined;
    const presented = await digest(match[1]);
    let scope: string | undefined;
    for (const entry of await entries) {
      if (equalDigests(presented, entry.digest) && scope === undefined) scope = entry.scope;
    }
    return scope;
  };
}
