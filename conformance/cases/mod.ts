/**
 * Every conformance case, in a stable order. Each file holds one topic, named after the
 * prefix of its cases' names (`append.ts` holds the `append:` cases, and so on).
 *
 * @module
 */

import type { ConformanceCase } from "../types.ts";
import { createCases } from "./create.ts";
import { appendCases } from "./append.ts";
import { scopeCases } from "./scope.ts";
import { limitCases } from "./limits.ts";
import { inputCases } from "./input.ts";
import { sealCases } from "./seal.ts";
import { supersedeCases } from "./supersede.ts";
import { jsonCases } from "./json.ts";
import { jobCases } from "./jobs.ts";
import { retryCases } from "./retry.ts";
import { cancelCases } from "./cancel.ts";
import { leaseCases } from "./leases.ts";
import { waitCases } from "./wait.ts";
import { listCases } from "./list.ts";
import { gcCases } from "./gc.ts";
import { timeCases } from "./time.ts";
import { durabilityCases } from "./durability.ts";
import { fencingCases } from "./fencing.ts";
import { concurrencyCases } from "./races.ts";
import { scaleCases } from "./scale.ts";
import { uploadCases } from "./upload.ts";
import { transactionalCases } from "./transactional.ts";
import { extensionCases } from "./extensions.ts";
import { abandonCases } from "./abandon.ts";
import { releaseCases } from "./release.ts";

/** All cases of the suite. */
export const conformanceCases: readonly ConformanceCase[] = [
  ...createCases,
  ...appendCases,
  ...scopeCases,
  ...limitCases,
  ...inputCases,
  ...sealCases,
  ...supersedeCases,
  ...jsonCases,
  ...jobCases,
  ...retryCases,
  ...cancelCases,
  ...leaseCases,
  ...waitCases,
  ...listCases,
  ...gcCases,
  ...timeCases,
  ...durabilityCases,
  ...fencingCases,
  ...concurrencyCases,
  ...scaleCases,
  ...uploadCases,
  ...transactionalCases,
  ...extensionCases,
  ...abandonCases,
  ...releaseCases,
];
