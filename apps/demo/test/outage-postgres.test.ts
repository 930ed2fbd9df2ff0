/**
 * A demo instance through PostgreSQL outages: a private server, killed with SIGKILL (postmaster
 * and backends) and started again on the same port with its data; and its connections cut one by
 * one with pg_terminate_backend while a run streams.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { expect, it } from "vitest";
import {
  describeOutage,
  endedRun,
  expectFramesAreTheLog,
  expectTokensLog,
  type Frame,
  follow,
  followToEnd,
  readFrames,
  startTokensRun,
  storedEvents,
  TEST_TIMEOUT_MS,
  until,
  words,
} from "./support/outage-suite.ts";
import { type PrivatePostgres, startPrivatePostgres } from "./support/private-postgres.ts";

/** The name the instance's connections carry, so the test finds them in pg_stat_activity. */
const APPLICATION_NAME = `acp-outage-${randomBytes(3).toString("hex")}`;
/** The demo's default table: the server is ours alone. */
const TABLE = "acp_store";

async function withSql<T>(server: PrivatePostgres, body: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(server.url, {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
    connection: { application_name: "acp-outage-test" },
  });
  try {
    return await body(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Cuts every connection of the instance; how many there were. */
function terminateInstanceConnections(server: PrivatePostgres): Promise<number> {
  return withSql(server, async (sql) => {
    // Materialized first: in one WHERE clause, PostgreSQL may call pg_terminate_backend on rows
    // that the other condition would have excluded (this very connection, say).
    const rows = await sql<{ pid: number }[]>`
      WITH instance AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE application_name = ${APPLICATION_NAME})
      SELECT pid FROM instance WHERE pg_terminate_backend(pid)`;
    return rows.length;
  });
}

/** Whether the instance holds its LISTEN connection (the last query of a connection shows in pg_stat_activity). */
function listening(server: PrivatePostgres): Promise<boolean> {
  return withSql(server, async (sql) => {
    const rows =
      await sql`SELECT 1 FROM pg_stat_activity WHERE application_name = ${APPLICATION_NAME} AND query ILIKE 'listen %'`;
    return rows.length === 1;
  });
}

describeOutage(
  {
    name: "PostgreSQL (SIGKILL of all its processes, restart)",
    start: startPrivatePostgres,
    env: (server) => ({
      DATABASE_URL: server.url,
      POSTGRES_APPLICATION_NAME: APPLICATION_NAME,
      POSTGRES_POOL_MAX: "4",
    }),
    storedRunIds: (server) =>
      withSql(server, async (sql) =>
        (await sql<{ id: string }[]>`SELECT id FROM ${sql(TABLE)} WHERE kind = 'run'`).map((row) => row.id),
      ),
    // One LISTEN serves every run of the instance.
    listensFor: (server) => listening(server),
  },
  ({ server, instance }) => {
    it(
      "goes on when pg_terminate_backend cuts all its connections mid-stream: the log is complete, followers catch up, LISTEN comes back",
      async () => {
        const url = instance().url;
        const all = words(30);
        const run = await startTokensRun(url, all, 100);
        const frames: Frame[] = [];
        const reader = (await follow(url, run.run_id)).body!.getReader();
        const parts = (count: number) => (seen: Frame[]) =>
          seen.filter((frame) => frame.data.type === "message.part").length >= count;
        await until("the instance to listen", async () => ((await listening(server())) ? true : undefined));

        await readFrames(reader, frames, parts(5));
        // The query pool and the LISTEN connection at least.
        expect(await terminateInstanceConnections(server())).toBeGreaterThanOrEqual(2);
        // Once more, while the first cut is being ridden out.
        await readFrames(reader, frames, parts(10));
        await terminateInstanceConnections(server());

        const ended = await endedRun(url, run.run_id);
        expect(ended).toMatchObject({ status: "completed", error: null });
        const log = await storedEvents(url, run.run_id);
        expectTokensLog(log, all, "completed");
        await followToEnd(url, run.run_id, frames, reader);
        expectFramesAreTheLog(frames, log);
        await until("LISTEN to be established again", async () => ((await listening(server())) ? true : undefined));
      },
      TEST_TIMEOUT_MS,
    );
  },
);
