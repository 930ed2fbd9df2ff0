/** The fuzz suite (support/fuzz-suite.ts) on the memory store, at full size. */
import { MemoryStore } from "@acp/store-memory";
import { describeFuzz } from "./support/fuzz-suite.ts";

describeFuzz("memory", async () => {
  const store = new MemoryStore();
  return { chosen: { store, description: "memory", close: async () => store.close?.() }, cleanup: async () => {} };
});
