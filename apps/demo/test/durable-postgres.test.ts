/** Durable runs on postgres, two instances: kill, drain and pause the owner; see durable/describe-durable.ts. */
import { describeDurableRuns } from "./durable/describe-durable.ts";
import { postgresBackend } from "./ha/backends.ts";

describeDurableRuns(postgresBackend);
