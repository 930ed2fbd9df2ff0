/** A rolling deploy of three instances on postgres with 100 durable runs; see durable/describe-rolling-deploy.ts. */
import { describeRollingDeploy } from "./durable/describe-rolling-deploy.ts";
import { postgresBackend } from "./ha/backends.ts";

describeRollingDeploy(postgresBackend);
