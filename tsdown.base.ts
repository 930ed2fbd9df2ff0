/**
 * The build every published package shares: ESM with types, for Node 20. Each package's
 * tsdown.config.ts names only its entry points.
 */
import { defineConfig, type UserConfig } from "tsdown";

export function packageBuild(entry: string[]): UserConfig {
  return defineConfig({
    entry,
    format: "esm",
    dts: true,
    // `.mjs` / `.d.mts` whatever `type` says: package.json `publishConfig.exports` names these files.
    fixedExtension: true,
    platform: "node",
    target: "node20",
    // Fail the build instead of inlining a package from node_modules (@acp/core included): every
    // import must be declared in dependencies or peerDependencies, so users share one copy and
    // `instanceof` keeps working.
    deps: { onlyBundle: [] },
  });
}
