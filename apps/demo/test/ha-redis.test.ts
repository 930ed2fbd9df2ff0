/** Two demo instances on redis, alone and behind nginx: see ha/describe-ha.ts. */
import { redisBackend } from "./ha/backends.ts";
import { describeHighAvailability } from "./ha/describe-ha.ts";

describeHighAvailability(redisBackend);
