/**
 * Cases: lifecycle.
 *
 * @module
 */

import type { ConformanceCase } from "../types.ts";

/** lifecycle cases. */
export const lifecycleCases: readonly ConformanceCase[] = [];
