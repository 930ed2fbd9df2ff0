import { defineConfig } from "tsdown";

export default defineConfig({
  entry: ["src/index.ts", "src/testing/index.ts"],
  format: "esm",
  dts: true,
  // `.mjs` / `.d.mts` whatever `type` says: package.json `publishConfig.exports` names these files.
  fixedExtension: true,
  platform: "node",
  target: "node20",
  // Fail the build instead of inlining a package from node_modules: every import must be declared
  // in dependencies or peerDependencies, so users share one copy (and `instanceof` keeps working).
  deps: { onlyBundle: [] },
});
