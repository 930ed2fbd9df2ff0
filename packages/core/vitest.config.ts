import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: {
      // Core's tests run over the in-process MemoryStore, but core cannot list @acp/store-memory as a
      // dependency: store-memory depends on core, and turbo would see a build cycle. Its source is read
      // directly instead; its own `@acp/core` import resolves (through the workspace link) to this
      // package's src/index.ts, so both sides share one module instance (test/memory-store-alias.test.ts).
      "@acp/store-memory": fileURLToPath(new URL("../store-memory/src/index.ts", import.meta.url)),
    },
  },
  test: {
    name: "core",
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
  },
});
