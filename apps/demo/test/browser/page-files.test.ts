/**
 * The playground's file handler (playground/serve.ts) on its own: which paths it answers, with
 * which headers, and that every other request goes on to the ACP app.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { playgroundHandler } from "../../playground/serve.ts";

let dir: string;
let serve: ReturnType<typeof playgroundHandler>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "acp-playground-"));
  await writeFile(path.join(dir, "index.html"), "<!doctype html><title>t</title>");
  await writeFile(path.join(dir, "app.js"), "export {};");
  serve = playgroundHandler({ instanceId: "instance-1", dir });
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe("playgroundHandler", () => {
  it("serves the page at / with its security headers and the instance id", async () => {
    const response = await serve(new Request("http://localhost/?from=readme"))!;
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(response.headers.get("content-security-policy")).toContain("connect-src 'self'");
    expect(response.headers.get("acp-instance")).toBe("instance-1");
    expect(await response.text()).toContain("<title>t</title>");
  });

  it("serves the bundle and answers 404 for a missing file of its own", async () => {
    const script = await serve(new Request("http://localhost/playground/app.js"))!;
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect((await serve(new Request("http://localhost/playground/nope.css"))!).status).toBe(404);
  });

  it("leaves every other request to the ACP app", () => {
    for (const request of [
      new Request("http://localhost/", { method: "POST", body: "{}" }),
      new Request("http://localhost/agents"),
      new Request("http://localhost/playground/../package.json"),
      new Request("http://localhost/playground/%2e%2e%2fpackage.json"),
      new Request("http://localhost/playground/app.map"),
      new Request("http://localhost/docs"),
    ])
      expect(serve(request)).toBeUndefined();
  });

  it("says how to build the page when it is not built", async () => {
    const unbuilt = playgroundHandler({ instanceId: "i", dir: path.join(dir, "missing") });
    const response = await unbuilt(new Request("http://localhost/"))!;
    expect(response.status).toBe(503);
    expect(await response.text()).toContain("pnpm --filter @acp/demo build");
  });
});
