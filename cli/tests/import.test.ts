// The CLI's subprocess tests (import_suite.ts) on the Deno entry, from source.
import { importSuite } from "./import_suite.ts";
import { DENO_ENTRY } from "./support.ts";

await importSuite(DENO_ENTRY);
