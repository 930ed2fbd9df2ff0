import { describeStoreConformance } from "@acp/core/testing";
import { describe, it } from "vitest";
import { MemoryStore } from "../src/index.ts";

describeStoreConformance(
  { name: "MemoryStore", create: async ({ ttlMs }) => new MemoryStore({ ttlMs }) },
  { describe, it },
);
