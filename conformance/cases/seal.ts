/**
 * Cases: seal.
 *
 * @module
 */

import type { ConformanceCase } from "../types.ts";

/** seal cases. */
export const sealCases: readonly ConformanceCase[] = [];
