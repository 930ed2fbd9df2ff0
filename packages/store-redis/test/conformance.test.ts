import { describeStoreConformance } from "@acp/core/testing";
import { describe, it } from "vitest";
import { connectTo, REDIS_URL, redisTarget } from "./support/target.ts";

describeStoreConformance(redisTarget("RedisStore", connectTo(REDIS_URL)), { describe, it });
// Replies have other shapes in RESP3 (ZRANGE … WITHSCORES answers pairs, for one).
describeStoreConformance(redisTarget("RedisStore (RESP3 client)", connectTo(REDIS_URL, { RESP: 3 })), { describe, it });
