/** A rolling deploy of three instances on redis with 100 durable runs; see durable/describe-rolling-deploy.ts. */
import { describeRollingDeploy } from "./durable/describe-rolling-deploy.ts";
import { redisBackend } from "./ha/backends.ts";

describeRollingDeploy(redisBackend);
