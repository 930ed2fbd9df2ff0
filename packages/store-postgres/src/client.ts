/**
 * The postgres.js client types the store works with. postgres.js types a client by the custom
 * types its user registered (`Sql<{ … }>`); the store only sends text and JSON, so it accepts a
 * client with any of them, and these aliases say so in one place.
 */
import type { ISql, Sql, TransactionSql } from "postgres";

// biome-ignore lint/suspicious/noExplicitAny: any user's custom types; the store uses none of them
type AnyTypes = any;

/** A postgres.js client (a pool), whatever custom types it was built with. */
export type Client = Sql<AnyTypes>;
/** A transaction on such a client. */
export type Transaction = TransactionSql<AnyTypes>;
/** A client or a transaction on it. */
export type Connection = ISql<AnyTypes>;
