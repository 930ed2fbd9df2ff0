import { defineConfig } from "tsdown";

export default defineConfig({
  entry: ["src/index.ts"],
  format: "esm",
  dts: true,
  // `.mjs` / `.d.mts` whatever `type` says: package.json `publishConfig.exports` names these files.
  fixedExtension: true,
  platform: "node",
  target: "node20",
  // Fail the build instead of inlining a package from node_modules (@acp/core included, through its
  // own dependencies): declare it in peerDependencies so users share one copy and `instanceof` works.
  deps: { onlyBundle: [] },
});
