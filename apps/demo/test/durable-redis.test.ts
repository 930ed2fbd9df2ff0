/** Durable runs on redis, two instances: kill, drain and pause the owner; see durable/describe-durable.ts. */
import { describeDurableRuns } from "./durable/describe-durable.ts";
import { redisBackend } from "./ha/backends.ts";

describeDurableRuns(redisBackend);
