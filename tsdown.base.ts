/**
 * The build every published package shares: ESM with types, for Node 20. Each package's
 * tsdown.config.ts names only its entry points; the build writes the package's export maps from them.
 */
import { defineConfig, type UserConfig } from "tsdown";

export function packageBuild(entry: string[]): UserConfig {
  return defineConfig({
    entry,
    format: "esm",
    dts: true,
    // `.mjs` / `.d.mts` whatever `type` says, so Node and TypeScript read them as ESM in any setting.
    fixedExtension: true,
    platform: "node",
    target: "node20",
    // Fail the build instead of inlining a package from node_modules (@acp/core included): every
    // import must be declared in dependencies or peerDependencies, so users share one copy and
    // `instanceof` keeps working.
    deps: { onlyBundle: [] },
    // package.json `exports` (the workspace's) and `publishConfig.exports` (what npm users get) are
    // written by the build from the entries: commit them after adding an entry.
    exports: {
      // In the workspace an entry resolves to its TypeScript source, so tests, typechecks and the
      // demo need no build; `publishConfig.exports` points at dist.
      devExports: true,
      // Only the entries: the published map names dist files alone (apps/demo/test/pack-install.test.ts).
      packageJson: false,
      customExports: (exports, { isPublish }) => (isPublish ? exports : withBuiltCondition(exports)),
    },
  });
}

/**
 * Adds the `acp-built` condition to each source entry of the workspace's export map: the benchmark
 * servers run with `node --conditions=acp-built` to measure the built code users run. The dist path
 * follows from the source path because tsdown mirrors `src/` into `dist/` (`.ts` → `.mjs`).
 */
function withBuiltCondition(exports: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(exports).map(([subpath, target]) => {
      const source = typeof target === "string" ? /^\.\/src\/(.+)\.ts$/.exec(target) : null;
      return [subpath, source ? { "acp-built": `./dist/${source[1]}.mjs`, default: target } : target];
    }),
  );
}
