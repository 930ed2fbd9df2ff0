/**
 * One measured ACP instance, run as its own process (`node --expose-gc --import tsx
 * bench/acp-server.ts`) so that the load generator never shares its event loop. The store comes
 * from the environment exactly as for the demo (src/store-from-env.ts); `PORT` picks the port.
 * `BENCH_COUNT_STORE_CALLS=1` counts and times the calls the runtime makes to the store.
 *
 * Only this bench server answers `GET /__bench/memory`: it collects garbage, then reports
 * `process.memoryUsage()` and the store calls counted so far; `GET /__bench/store-calls`: those
 * counts alone, without collecting garbage; `GET /__bench/store-timings`:
 * the p50 and p99 of each store method's calls; and `GET /__bench/adoptions`: when each takeover
 * this instance attempted began (the wall-clock time of its `updateRun` raising a run's epoch).
 * `POST /__bench/profile/start` and `/stop` take a CPU profile of the window between them.
 * `BENCH_STAMP_WRITES=1` appends, to every
 * `message.part` whose content is a bare timestamp (the `broadcast` and `ticker` agents'), the
 * wall-clock time of the store call that writes it (`appendEvents`, or `updateRun` with the
 * transition it travels with): `<yielded> <written>`, so that a follower can time a part from its
 * write. `ACP_LEASE_MS` sets the lease, for the takeover measurement. `BENCH_OBSERVABILITY` measures what
 * observability costs: `metrics` turns the metrics on, `tracing` starts the OpenTelemetry SDK
 * (spans recorded, then dropped), `both` does both, `context` turns on Node's async context tracking
 * alone (an AsyncLocalStorage in use, as the SDK's context manager makes it).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { Session } from "node:inspector/promises";
import type { Event, Store, StoredRun } from "@acp/core";
import { startServer } from "../src/server.ts";
import { storeFromEnv } from "../src/store-from-env.ts";
import { benchAgents, wallClockMs } from "./bench-agents.ts";
import { keepConnectionsOpen } from "./keep-alive.ts";
import { percentile } from "./stats.ts";

/** Durations kept per store method, the latest ones, for percentiles. */
const KEPT_DURATIONS = 20_000;

/** Calls per store method and how long the latest took (ms), while counting is on. A reset empties `durations`. */
interface StoreCallLog {
  counts: Record<string, number>;
  /** Per method, a ring of the latest durations; `next` counts the writes. */
  durations: Record<string, { ring: number[]; next: number }>;
}

/** A takeover begun here: the first `updateRun` that wrote `epoch` for the run. */
interface Adoption {
  runId: string;
  epoch: number;
  /** Wall-clock ms when the call was made. */
  at: number;
}

const adoptions: Adoption[] = [];
const epochsSeen = new Map<string, number>();

/** Notes a takeover when an update raises the run's epoch past what this instance wrote before. */
function noteAdoption(args: unknown[]): void {
  const [runId, , next] = args as [string, number, StoredRun];
  const epoch = next?.epoch ?? 1;
  if (epoch <= (epochsSeen.get(runId) ?? 1)) return;
  epochsSeen.set(runId, epoch);
  adoptions.push({ runId, epoch, at: wallClockMs() });
}

/**
 * Wraps a store so that every method call is counted and timed (until its promise settles) by
 * name; behaviour is unchanged.
 */
function countingStore(store: Store, log: StoreCallLog): Store {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      let counted = wrapped.get(property);
      if (!counted) {
        const name = String(property);
        const durations = { ring: [] as number[], next: 0 };
        log.durations[name] = durations;
        const record = (started: number): void => {
          durations.ring[durations.next++ % KEPT_DURATIONS] = performance.now() - started;
        };
        counted = (...args: unknown[]) => {
          log.counts[name] = (log.counts[name] ?? 0) + 1;
          if (name === "updateRun") noteAdoption(args);
          const started = performance.now();
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (result instanceof Promise)
            result.then(
              () => record(started),
              () => record(started),
            );
          return result;
        };
        wrapped.set(property, counted);
      }
      return counted;
    },
  });
}

const TIMESTAMP = /^\d+(\.\d+)?$/;

/** `events` with the write time added to each timestamped part (copies; the caller's are untouched). */
function stamped(events: Event[]): Event[] {
  let written: string | undefined;
  return events.map((event) => {
    if (event.type !== "message.part") return event;
    const { content } = event.part;
    if (typeof content !== "string" || !TIMESTAMP.test(content)) return event;
    written ??= String(wallClockMs());
    return { ...event, part: { ...event.part, content: `${content} ${written}` } };
  });
}

/** Wraps a store so that the events it is given to write carry their write time (see BENCH_STAMP_WRITES). */
function stampingStore(store: Store): Store {
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property === "appendEvents")
        return function appendEvents(runId: string, events: Event[], ...rest: unknown[]) {
          return (value as (...a: unknown[]) => unknown).call(target, runId, stamped(events), ...rest);
        };
      if (property === "updateRun")
        return function updateRun(
          runId: string,
          version: number,
          next: StoredRun,
          events: Event[],
          ...rest: unknown[]
        ) {
          return (value as (...a: unknown[]) => unknown).call(target, runId, version, next, stamped(events), ...rest);
        };
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function timings(log: StoreCallLog): Record<string, { p50Ms: number; p99Ms: number; calls: number }> {
  return Object.fromEntries(
    Object.entries(log.durations)
      .filter(([, { ring }]) => ring.length > 0)
      .map(([name, { ring }]) => [
        name,
        { p50Ms: percentile(ring, 50), p99Ms: percentile(ring, 99), calls: ring.length },
      ]),
  );
}

const collectGarbage = (globalThis as { gc?: () => void }).gc;
const storeCalls: StoreCallLog = { counts: {}, durations: {} };
const chosen = await storeFromEnv();
if (process.env.BENCH_STAMP_WRITES === "1") chosen.store = stampingStore(chosen.store);
if (process.env.BENCH_COUNT_STORE_CALLS === "1") chosen.store = countingStore(chosen.store, storeCalls);
const leaseMs = Number(process.env.ACP_LEASE_MS) || undefined;
const observed = process.env.BENCH_OBSERVABILITY ?? "";
// Started before the app, as an application does; only when measured, so other scenarios load nothing of it.
if (observed === "tracing" || observed === "both") (await import("./tracing-sdk.ts")).startTracingSdk();
// Node's context tracking alone, as the SDK's context manager turns it on: a hook on every promise
// and async resource of the process. Shows which share of tracing's cost is Node's, not the spans'.
if (observed === "context") new AsyncLocalStorage().enterWith(true);
const demo = await startServer(benchAgents, chosen, {
  port: Number(process.env.PORT),
  host: "127.0.0.1",
  drainMs: 500,
  // The library is measured, not the demo's page.
  playground: false,
  app: {
    ...(leaseMs === undefined ? {} : { leaseMs }),
    metrics: observed === "metrics" || observed === "both",
    // The open-stream and fan-out measurements hold a thousand awaiting runs, core's default limit.
    limits: { maxConcurrentRuns: 100_000 },
  },
});
keepConnectionsOpen(demo.server);
// Added before the first request reaches the app (we are still in the tick that started listening).
demo.app.get("/__bench/memory", (c) => {
  // Twice: the first pass may only queue finalizers that free more on the second.
  collectGarbage?.();
  collectGarbage?.();
  return c.json({ memory: process.memoryUsage(), storeCalls: storeCalls.counts, gc: collectGarbage !== undefined });
});
/** The store calls counted so far, per method, without the collection `/__bench/memory` makes. */
demo.app.get("/__bench/store-calls", (c) => c.json(storeCalls.counts));
/** How long the store calls took, per method, since the last reset (`?reset=1` starts afresh). */
demo.app.get("/__bench/store-timings", (c) => {
  const result = timings(storeCalls);
  if (c.req.query("reset") === "1")
    for (const durations of Object.values(storeCalls.durations)) Object.assign(durations, { ring: [], next: 0 });
  return c.json(result);
});

/**
 * A CPU profile of a window the bench chooses (not of start-up): `start?intervalUs=…` starts V8's
 * sampling profiler, `stop` answers the profile (the `.cpuprofile` format).
 */
let profiler: Session | undefined;
demo.app.post("/__bench/profile/start", async (c) => {
  profiler?.disconnect();
  profiler = new Session();
  profiler.connect();
  await profiler.post("Profiler.enable");
  await profiler.post("Profiler.setSamplingInterval", { interval: Number(c.req.query("intervalUs")) || 1000 });
  await profiler.post("Profiler.start");
  return c.json({});
});
demo.app.post("/__bench/profile/stop", async (c) => {
  if (!profiler) return c.json({ code: "invalid_input", message: "no profile started" }, 400);
  const { profile } = await profiler.post("Profiler.stop");
  profiler.disconnect();
  profiler = undefined;
  return c.json(profile);
});

/** The takeovers this instance began (with BENCH_COUNT_STORE_CALLS=1). */
demo.app.get("/__bench/adoptions", (c) => c.json(adoptions));

const stop = (): void => {
  demo.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error("[bench-server] shutdown failed:", error);
      process.exit(1);
    },
  );
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
