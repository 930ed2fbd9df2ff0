import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "core",
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    // acp-sdk imports its package.json without `with { type: "json" }`, which Node's ESM loader rejects; vite handles it.
    server: { deps: { inline: ["acp-sdk"] } },
  },
});
