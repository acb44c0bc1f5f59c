/**
 * Every conformance case, in a stable order.
 *
 * @module
 */

import type { ConformanceCase } from "../types.ts";
import { sourceCases } from "./sources.ts";
import { sealCases } from "./seal.ts";
import { jobCases } from "./jobs.ts";
import { lifecycleCases } from "./lifecycle.ts";
import { uploadCases } from "./upload.ts";

/** All cases of the suite. */
export const conformanceCases: readonly ConformanceCase[] = [
  ...sourceCases,
  ...sealCases,
  ...jobCases,
  ...lifecycleCases,
  ...uploadCases,
];
