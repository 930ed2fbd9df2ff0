/**
 * What users install works: @acp/core and @acp/store-memory are packed with pnpm, installed with
 * npm into a project outside the workspace, and the README's usage example is run there with plain
 * `node`, then driven with the official `acp-sdk` client.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "acp-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bareImports } from "./support/bare-imports.ts";
import { type ChildServer, startChildServer } from "./support/node-child-server.ts";
import { runCommand } from "./support/run-command.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const PACKAGES = [
  { name: "@acp/core", dir: join(ROOT, "packages/core") },
  { name: "@acp/store-memory", dir: join(ROOT, "packages/store-memory") },
];

/** The README's usage example, as a user would save it. */
const SERVER_MJS = `import { agent, createApp } from "@acp/core";
import { MemoryStore } from "@acp/store-memory";
import { serve } from "@hono/node-server";

const echo = agent({ name: "echo", description: "Echoes its input" },
  async function* (input) { for (const message of input) yield message; });
const app = createApp([echo], { store: new MemoryStore() });
serve({ fetch: app.fetch, port: Number(process.env.PORT) });
`;

/** Lists which file each public entry resolves to, the way Node's ESM loader does. */
const RESOLVE_MJS = `const specifiers = ["@acp/core", "@acp/core/testing", "@acp/store-memory"];
console.log(JSON.stringify(Object.fromEntries(specifiers.map((s) => [s, import.meta.resolve(s)]))));
`;

/** The environment of a user's shell: without the npm_* variables pnpm sets for the test run. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
}

/** Every file named in an `exports` map (conditions and subpaths included). */
function exportTargets(exports: unknown): string[] {
  if (typeof exports === "string") return [exports];
  if (exports && typeof exports === "object") return Object.values(exports).flatMap(exportTargets);
  return [];
}

interface PackageJson {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  exports?: unknown;
}

let temp = "";
let project = "";
let server: ChildServer | undefined;

beforeAll(async () => {
  const env = userEnv();
  // `pnpm test` builds first; standalone, build what is missing so the packs are not empty.
  if (PACKAGES.some((pkg) => !existsSync(join(pkg.dir, "dist")))) {
    await runCommand("pnpm", ["--filter", "@acp/core", "--filter", "@acp/store-memory", "build"], { cwd: ROOT, env });
  }
  temp = mkdtempSync(join(tmpdir(), "acp-pack-install-"));
  const tarballs: string[] = [];
  for (const pkg of PACKAGES) {
    const destination = join(temp, "packs", pkg.name.replace("/", "+"));
    await runCommand("pnpm", ["pack", "--pack-destination", destination], { cwd: pkg.dir, env });
    const [tarball, ...more] = readdirSync(destination).filter((file) => file.endsWith(".tgz"));
    if (!tarball || more.length > 0)
      throw new Error(`expected one tarball for ${pkg.name} in ${destination}, found ${[tarball, ...more].join(", ")}`);
    tarballs.push(join(destination, tarball));
  }

  project = join(temp, "project");
  mkdirSync(project);
  await runCommand("npm", ["init", "-y"], { cwd: project, env });
  const manifest = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(project, "package.json"), JSON.stringify({ ...manifest, type: "module" }, null, 2));
  // The same @hono/node-server range the demo app is tested with.
  const demo = JSON.parse(readFileSync(join(ROOT, "apps/demo/package.json"), "utf8")) as PackageJson;
  const nodeServer = `@hono/node-server@${demo.dependencies?.["@hono/node-server"] ?? "latest"}`;
  await runCommand("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...tarballs, nodeServer], {
    cwd: project,
    env,
  });

  writeFileSync(join(project, "resolve.mjs"), RESOLVE_MJS);
}, 180_000);

afterAll(() => {
  if (temp) rmSync(temp, { recursive: true, force: true });
});

describe("the packed packages installed with npm", () => {
  it.each(PACKAGES)("$name exports only dist files that exist", ({ name }) => {
    const installed = join(project, "node_modules", name);
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as PackageJson;
    const targets = exportTargets(manifest.exports);
    expect(targets.length, `${name} has an exports map`).toBeGreaterThan(0);
    for (const target of targets) {
      expect(target, `${name} exports`).toMatch(/^\.\/dist\//);
      expect(existsSync(join(installed, target)), `${name}: ${target} is in the package`).toBe(true);
    }
    expect(JSON.stringify(manifest), `${name} still names a workspace: version`).not.toContain("workspace:");
  });

  it.each(PACKAGES)("$name declares every package its dist imports", ({ name }) => {
    const installed = join(project, "node_modules", name);
    const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as PackageJson;
    const declared = new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
      name,
    ]);
    const undeclared = [...bareImports(join(installed, "dist"))].filter((imported) => !declared.has(imported));
    expect(undeclared, `${name} imports these without declaring them`).toEqual([]);
  });

  it("resolves every entry to dist, with one copy of @acp/core", async () => {
    const resolved = JSON.parse(await runCommand(process.execPath, ["resolve.mjs"], { cwd: project })) as Record<
      string,
      string
    >;
    expect(resolved).toEqual({
      "@acp/core": expect.stringMatching(/\/node_modules\/@acp\/core\/dist\/index\.mjs$/),
      "@acp/core/testing": expect.stringMatching(/\/node_modules\/@acp\/core\/dist\/testing\/index\.mjs$/),
      "@acp/store-memory": expect.stringMatching(/\/node_modules\/@acp\/store-memory\/dist\/index\.mjs$/),
    });
    // A second copy would break `instanceof StoreError` between the store and core.
    expect(existsSync(join(project, "node_modules/@acp/store-memory/node_modules/@acp/core"))).toBe(false);
  });
});

describe("the README example run with node, driven by the acp-sdk client", () => {
  // Started apart from the install so that the checks above still report when the server cannot start.
  beforeAll(async () => {
    writeFileSync(join(project, "server.mjs"), SERVER_MJS);
    server = await startChildServer("server.mjs", { cwd: project });
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  const client = (): Client => new Client({ baseUrl: server?.url ?? "" });

  it("lists the echo agent", async () => {
    const agents = await client().agents();
    expect(agents).toEqual([expect.objectContaining({ name: "echo", description: "Echoes its input" })]);
  });

  it("runs echo in sync mode", async () => {
    const run = await client().runSync("echo", "Hello from npm");
    expect(run.status, server?.output()).toBe("completed");
    expect(run.output).toEqual([
      expect.objectContaining({
        parts: [expect.objectContaining({ content: "Hello from npm", content_type: "text/plain" })],
      }),
    ]);
  });

  it("streams an echo run", async () => {
    const types: string[] = [];
    const parts: string[] = [];
    for await (const event of client().runStream("echo", "streamed")) {
      types.push(event.type);
      if (event.type === "message.part") parts.push(event.part.content ?? "");
    }
    expect(types.at(0), server?.output()).toBe("run.created");
    expect(types.at(-1), server?.output()).toBe("run.completed");
    expect(parts.join("")).toBe("streamed");
  });
});
