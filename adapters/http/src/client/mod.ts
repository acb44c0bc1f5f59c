/**
 * The client side: `createHttpSyncAdapter`, a `SyncAdapter` over `fetch`.
 *
 * @module
 */

export {
  createHttpSyncAdapter,
  type HttpSyncAdapter,
  type HttpSyncAdapterOptions,
  type JobEventsInput,
} from "./adapter.ts";
export type { Credential, FetchLike } from "./transport.ts";
