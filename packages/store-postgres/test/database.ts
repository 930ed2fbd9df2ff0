/**
 * The PostgreSQL server the tests run against, and helpers to give each test its own tables.
 */
import { randomBytes } from "node:crypto";
import postgres, { type Options, type Sql } from "postgres";

/** Set DATABASE_URL to test against another server. */
export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A new postgres.js instance on the test database; notices stay out of the test output. */
export function connect(options: Partial<Options<Record<string, never>>> = {}): Sql {
  return postgres(DATABASE_URL, { connect_timeout: 5, onnotice: () => undefined, ...options });
}

/** Fails with a message that says which server is missing, rather than a bare ECONNREFUSED. */
export async function assertReachable(): Promise<void> {
  const sql = connect({ max: 1 });
  try {
    await sql`SELECT 1 AS ok`;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `PostgreSQL is not reachable at ${DATABASE_URL} (set DATABASE_URL to use another server): ${reason}`,
    );
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** A random lowercase identifier, so that tests never share tables or channels. */
export function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

/** Drops every table of a store whose table option is `table`. */
export async function dropTables(sql: Sql, table: string): Promise<void> {
  const tables = ["", "_events", "_history", "_steps", "_schema"].map((suffix) => table + suffix);
  await sql`DROP TABLE IF EXISTS ${sql(tables)}`;
}
