/**
 * The demo serves `GET /metrics` in the Prometheus text format by default, over real HTTP, and
 * hides it with `ACP_METRICS=off`.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Instance, startInstance, stopInstances } from "./support/cluster.ts";

let instances: Instance[] = [];

afterEach(async () => {
  await stopInstances(instances);
  instances = [];
});

async function start(env: Record<string, string>): Promise<Instance> {
  const instance = await startInstance(env);
  instances.push(instance);
  return instance;
}

describe("demo metrics", () => {
  it("serves /metrics by default, counting the runs it served", async () => {
    const instance = await start({});
    const created = await fetch(`${instance.url}/runs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_name: "echo", input: [{ role: "user", parts: [{ content: "hi" }] }] }),
    });
    expect((await created.json()) as { status: string }).toMatchObject({ status: "completed" });
    const response = await fetch(`${instance.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain("# TYPE acp_runs_started_total counter");
    expect(text).toContain('acp_runs_started_total{agent="echo"} 1\n');
    expect(text).toContain('acp_runs_finished_total{agent="echo",status="completed"} 1\n');
    expect(text).toContain('acp_http_requests_total{method="POST",route="/runs",status="200"} 1\n');
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(instance.output()).toContain("metrics: GET /metrics");
  });

  it("hides /metrics with ACP_METRICS=off", async () => {
    const instance = await start({ ACP_METRICS: "off" });
    expect((await fetch(`${instance.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${instance.url}/ping`)).status).toBe(200);
    expect(instance.output()).toContain("metrics: off");
  });
});
