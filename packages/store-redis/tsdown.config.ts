import { defineConfig } from "tsdown";

export default defineConfig({
  entry: ["src/index.ts"],
  format: "esm",
  dts: true,
  // `.mjs` / `.d.mts` whatever `type` says: package.json `publishConfig.exports` names these files.
  fixedExtension: true,
  platform: "node",
  target: "node20",
});
