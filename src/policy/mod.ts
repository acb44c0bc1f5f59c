/**
 * Retry/backoff, limits, defaults and input validation.
 *
 * @module
 */

export * from "./policy.ts";
export * from "./backoff.ts";
export * from "./validation.ts";
