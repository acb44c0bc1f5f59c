/**
 * The server side: `createSyncHttpHandler` and bearer-token authentication.
 *
 * @module
 */

export {
  type Authenticate,
  createSyncHttpHandler,
  type SyncHttpHandler,
  type SyncHttpHandlerOptions,
} from "./handler.ts";
export { type BearerToken, createBearerAuthenticator } from "./auth.ts";
export type { JobWatcher } from "./events.ts";
