/**
 * Pure source and job transitions: no I/O, no clock, no randomness.
 *
 * @module
 */

export * from "./job.ts";
export * from "./source.ts";
export * from "./manifest.ts";
