/**
 * The `acp-instance` response header: every answer of the app names the instance that served it,
 * JSON, SSE, errors, refusals and CORS preflights alike.
 */
import { afterEach, describe, expect, it } from "vitest";
import { echo, words } from "../../test/support/agents.ts";
import { jsonInit, readUntil, startApp, stopApps, user } from "../../test/support/app.ts";
import { INSTANCE_HEADER } from "./app.ts";

afterEach(async () => {
  await stopApps(200);
});

describe("the acp-instance header", () => {
  it("names the instance on JSON answers, errors and 404s", async () => {
    const served = await startApp([echo]);
    const id = served.app.runtime.instanceId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const answers = await Promise.all([
      served.request("/ping"),
      served.request("/agents"),
      served.post("/runs", { agent_name: "echo", input: [user("hi")] }),
      served.post("/runs", { agent_name: "nobody", input: [user("hi")] }),
      served.post("/runs", { agent_name: "echo" }),
      served.request("/runs/not-a-uuid"),
      served.request("/no/such/route"),
    ]);
    expect(answers.map((response) => response.status)).toEqual([200, 200, 200, 404, 422, 422, 404]);
    for (const response of answers) expect(response.headers.get(INSTANCE_HEADER)).toBe(id);
  });

  it("names the instance on an SSE answer, before its first event", async () => {
    const served = await startApp([words]);
    const response = await served.request(
      "/runs",
      jsonInit({ agent_name: "words", mode: "stream", input: [user("a b c")] }),
    );
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    expect(response.headers.get(INSTANCE_HEADER)).toBe(served.app.runtime.instanceId);
    // The whole stream, to its end at the run's last event.
    const { text } = await readUntil(response, () => false);
    expect(text).toContain("run.completed");
  });

  it("differs between two instances of one store", async () => {
    const first = await startApp([echo]);
    const second = await startApp([echo], {}, first.store);
    const a = (await first.request("/agents")).headers.get(INSTANCE_HEADER);
    const b = (await second.request("/agents")).headers.get(INSTANCE_HEADER);
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    expect(a).not.toBe(b);
  });

  it("names the instance on 401s and preflights, and CORS lets a browser read it", async () => {
    const served = await startApp([echo], {
      auth: { apiKeys: ["k-1"] },
      cors: { origins: ["https://app.example.com"] },
    });
    const id = served.app.runtime.instanceId;
    const origin = "https://app.example.com";
    const refused = await served.request("/agents", { headers: { origin } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get(INSTANCE_HEADER)).toBe(id);
    const allowed = await served.request("/agents", { headers: { origin, "x-api-key": "k-1" } });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get(INSTANCE_HEADER)).toBe(id);
    const exposed = allowed.headers
      .get("access-control-expose-headers")
      ?.toLowerCase()
      .split(/\s*,\s*/);
    expect(exposed).toContain("acp-instance");
    const preflight = await served.request("/runs", {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get(INSTANCE_HEADER)).toBe(id);
  });
});
