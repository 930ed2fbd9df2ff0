/**
 * `@acp/store-postgres`: a PostgreSQL {@link https://www.npmjs.com/package/@acp/core | @acp/core}
 * Store, so that several ACP server instances share runs, events, sessions and cancellation.
 * @module
 */
export { PostgreSQLStore, type PostgreSQLStoreOptions } from "./postgresql-store.ts";
