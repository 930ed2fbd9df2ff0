import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "demo",
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // acp-sdk imports its package.json without `with { type: "json" }`, which Node 20's ESM loader rejects; vite handles it.
    server: { deps: { inline: ["acp-sdk"] } },
  },
});
