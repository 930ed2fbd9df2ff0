/**
 * `GET /metrics` through `app.request()`: the body parsed line by line as Prometheus text, every
 * family present and counting what real runs, streams, store calls, sweeps and requests did.
 */
import { MemoryStore } from "@acp/store-memory";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { testAgents } from "../../test/support/agents.ts";
import { createRun, eventually, readUntil, startApp, stopApps, type TestApp, user } from "../../test/support/app.ts";
import { controlledStore } from "../../test/support/controlled-store.ts";
import { type Family, parsePrometheusText, sampleValue } from "../../test/support/prometheus-text.ts";
import { agent } from "../agent.ts";
import { createApp } from "../http/app.ts";
import { METRIC, OTHER_METHOD, UNMATCHED_ROUTE } from "./names.ts";

afterEach(async () => {
  await stopApps(200);
});

async function scrape(served: TestApp): Promise<{ text: string; families: Map<string, Family> }> {
  const response = await served.request("/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  const text = await response.text();
  return { text, families: parsePrometheusText(text) };
}

async function value(served: TestApp, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  return sampleValue((await scrape(served)).families, name, labels);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/** A durable agent that ticks until cancelled: what an instance adopts from a lost one. */
const ticking = agent({ name: "ticking", durable: true }, async function* tickingHandler(_input, ctx) {
  for (let tick = 0; tick < 1000 && !ctx.signal.aborted; tick++) {
    await sleep(10, ctx.signal);
    yield `tick ${tick} `;
  }
});

describe("metrics", () => {
  it("are off by default: no /metrics route, no registry", async () => {
    const served = await startApp(testAgents);
    expect(served.app.runtime.metrics).toBeUndefined();
    expect((await served.request("/metrics")).status).toBe(404);
  });

  it("refuses a metrics option that is neither a boolean nor a registry", () => {
    expect(() => createApp(testAgents, { store: new MemoryStore(), metrics: {} as never })).toThrow(
      "[acp] createApp(): metrics must be true, false or a prom-client Registry",
    );
  });

  it("fill a registry the application passes, and two apps may share it", async () => {
    const registry = new Registry();
    const first = await startApp(testAgents, { metrics: registry });
    const second = await startApp(testAgents, { metrics: registry });
    await createRun(first, { agent_name: "echo", input: [user("one")] });
    await createRun(second, { agent_name: "echo", input: [user("two")] });
    const families = parsePrometheusText(await registry.metrics());
    expect(sampleValue(families, METRIC.runsStarted, { agent: "echo" })).toBe(2);
  });

  it("serve every family as Prometheus text, counting real runs, streams, store calls and requests", async () => {
    const served = await startApp(testAgents, { metrics: true });
    const before = await scrape(served);
    for (const name of Object.values(METRIC)) expect(before.families.has(name), name).toBe(true);
    expect([...before.families.keys()].some((name) => name.startsWith("process_"))).toBe(true);
    expect([...before.families.keys()].some((name) => name.startsWith("nodejs_"))).toBe(true);
    expect(before.families.get(METRIC.runsStarted)!.type).toBe("counter");
    expect(before.families.get(METRIC.runDuration)!.type).toBe("histogram");
    expect(before.families.get(METRIC.runsInFlight)!.type).toBe("gauge");
    expect(before.families.get(METRIC.sseStreamsOpen)!.type).toBe("gauge");
    expect(before.families.get(METRIC.storeOperationDuration)!.type).toBe("histogram");
    // Series at zero before anything happened, for every agent this instance serves.
    expect(sampleValue(before.families, METRIC.runsStarted, { agent: "failing" })).toBe(0);
    expect(sampleValue(before.families, METRIC.runsFinished, { agent: "echo", status: "failed" })).toBe(0);

    const ids: string[] = [];
    ids.push((await createRun(served, { agent_name: "echo", input: [user("a")] })).run_id);
    ids.push((await createRun(served, { agent_name: "echo", input: [user("b")] })).run_id);
    const failed = await createRun(served, { agent_name: "failing", input: [user("no")] });
    expect(failed.status).toBe("failed");
    ids.push(failed.run_id, failed.session_id!);

    // A slow run in flight, followed by an SSE stream.
    const slow = await createRun(served, { agent_name: "slow", input: [user("ticks=1000 ms=10")], mode: "async" }, 202);
    ids.push(slow.run_id, slow.session_id!);
    const stream = await served.request(`/runs/${slow.run_id}/events`, { headers: { accept: "text/event-stream" } });
    const { reader } = await readUntil(stream, (text) => text.includes("tick 1"));
    const during = (await scrape(served)).families;
    expect(sampleValue(during, METRIC.runsInFlight, { agent: "slow" })).toBe(1);
    expect(sampleValue(during, METRIC.runsInFlight, { agent: "echo" })).toBe(0);
    expect(sampleValue(during, METRIC.sseStreamsOpen)).toBe(1);
    expect((await served.request(`/runs/${slow.run_id}/cancel`, { method: "POST" })).status).toBe(202);
    await reader.cancel();
    await eventually(async () => (await value(served, METRIC.runsInFlight, { agent: "slow" })) === 0);
    await eventually(async () => (await value(served, METRIC.sseStreamsOpen)) === 0);

    await served.request(`/runs/${ids[0]}`);
    await served.request(`/nowhere/${ids[0]}`);
    await served.request("/runs", { method: "PROPFIND" });
    await served.post("/runs", { agent_name: "nobody-at-all", input: [user("x")] });

    const { text, families } = await scrape(served);
    expect(sampleValue(families, METRIC.runsStarted, { agent: "echo" })).toBe(2);
    expect(sampleValue(families, METRIC.runsStarted, { agent: "failing" })).toBe(1);
    expect(sampleValue(families, METRIC.runsStarted, { agent: "slow" })).toBe(1);
    expect(sampleValue(families, METRIC.runsFinished, { agent: "echo", status: "completed" })).toBe(2);
    expect(sampleValue(families, METRIC.runsFinished, { agent: "failing", status: "failed" })).toBe(1);
    expect(sampleValue(families, METRIC.runsFinished, { agent: "slow", status: "cancelled" })).toBe(1);
    const durations = { agent: "echo", status: "completed" };
    expect(sampleValue(families, `${METRIC.runDuration}_count`, durations)).toBe(2);
    expect(sampleValue(families, `${METRIC.runDuration}_bucket`, { ...durations, le: "+Inf" })).toBe(2);
    expect(sampleValue(families, `${METRIC.storeOperationDuration}_count`, { operation: "createRun" })).toBe(4);
    expect(sampleValue(families, `${METRIC.storeOperationDuration}_count`, { operation: "getRun" })).toBeGreaterThan(0);
    expect(sampleValue(families, METRIC.storeErrors)).toBeUndefined();
    const requests = (route: string, method: string, status: string) =>
      sampleValue(families, METRIC.httpRequests, { method, route, status });
    expect(requests("/runs", "POST", "200")).toBe(3);
    expect(requests("/runs", "POST", "202")).toBe(1);
    expect(requests("/runs", "POST", "404")).toBe(1);
    expect(requests("/runs/:run_id", "GET", "200")).toBe(1);
    expect(requests("/runs/:run_id/events", "GET", "200")).toBe(1);
    expect(requests("/runs/:run_id/cancel", "POST", "202")).toBe(1);
    expect(requests(UNMATCHED_ROUTE, "GET", "404")).toBe(1);
    expect(requests(UNMATCHED_ROUTE, OTHER_METHOD, "404")).toBe(1);
    expect(requests("/metrics", "GET", "200")).toBeGreaterThan(0);
    // Bounded labels only: no id, no unknown agent name, no path that matched no route.
    for (const id of ids) expect(text).not.toContain(id);
    expect(text).not.toContain("nobody-at-all");
    expect(text).not.toContain("nowhere");
  });

  it("time and count store calls that fail", async () => {
    const { store, control } = controlledStore();
    const served = await startApp(testAgents, { metrics: true, storeTimeoutMs: 100 }, store);
    control.failing = new Set(["getRun"]);
    expect((await served.request(`/runs/${crypto.randomUUID()}`)).status).toBe(503);
    control.delayMs.getSession = 1000;
    const sessionId = crypto.randomUUID();
    expect((await served.request(`/sessions/${sessionId}`)).status).toBe(503);
    const { families } = await scrape(served);
    expect(sampleValue(families, METRIC.storeErrors, { operation: "getRun" })).toBe(1);
    expect(sampleValue(families, METRIC.storeErrors, { operation: "getSession" })).toBe(1);
    expect(sampleValue(families, `${METRIC.storeOperationDuration}_count`, { operation: "getRun" })).toBe(1);
    // The timed-out call is timed up to its timeout, not beyond.
    const timedOut = sampleValue(families, `${METRIC.storeOperationDuration}_sum`, { operation: "getSession" })!;
    expect(timedOut).toBeGreaterThanOrEqual(0.09);
    expect(timedOut).toBeLessThan(0.5);
    expect(sampleValue(families, METRIC.httpRequests, { route: "/runs/:run_id", status: "503" })).toBe(1);
  });

  it("count the orphans an instance failed, cancelled and adopted", async () => {
    const memory = new MemoryStore();
    const { store, control } = controlledStore(memory);
    const agents = [...testAgents, ticking];
    const options = { metrics: true, leaseMs: 300, storeTimeoutMs: 100, outageMs: 100 } as const;
    const lost = await startApp(agents, options, store);
    const survivor = await startApp(agents, options, memory);
    const toFail = await createRun(lost, { agent_name: "slow", input: [user("ticks=1000 ms=10")], mode: "async" }, 202);
    const toCancel = await createRun(
      lost,
      { agent_name: "slow", input: [user("ticks=1000 ms=10")], mode: "async" },
      202,
    );
    const toAdopt = await createRun(lost, { agent_name: "ticking", input: [user("go")], mode: "async" }, 202);
    control.failing = "all";
    expect((await survivor.request(`/runs/${toCancel.run_id}/cancel`, { method: "POST" })).status).toBe(202);
    await eventually(async () => {
      const ended = await Promise.all(
        [toFail, toCancel].map(
          async (run) => (await survivor.getJson<{ status: string }>(`/runs/${run.run_id}`)).status,
        ),
      );
      return ended.join() === "failed,cancelled";
    }, 10_000);
    await eventually(async () => (await value(survivor, METRIC.orphanedRuns, { outcome: "adopted" })) === 1, 10_000);
    const { families } = await scrape(survivor);
    expect(sampleValue(families, METRIC.orphanedRuns, { outcome: "failed" })).toBe(1);
    expect(sampleValue(families, METRIC.orphanedRuns, { outcome: "cancelled" })).toBe(1);
    // The adopted run's handler is held here now; it was not started here.
    expect(sampleValue(families, METRIC.runsInFlight, { agent: "ticking" })).toBe(1);
    expect(sampleValue(families, METRIC.runsStarted, { agent: "ticking" })).toBe(0);
    await survivor.request(`/runs/${toAdopt.run_id}/cancel`, { method: "POST" });
    await eventually(async () => (await value(survivor, METRIC.runsInFlight, { agent: "ticking" })) === 0);
    expect(await value(survivor, METRIC.runsFinished, { agent: "ticking", status: "cancelled" })).toBe(1);
    control.failing = new Set();
  });
});
