/**
 * Cases: jobs.
 *
 * @module
 */

import type { ConformanceCase } from "../types.ts";

/** jobs cases. */
export const jobCases: readonly ConformanceCase[] = [];
