/** Two demo instances on postgres, alone and behind nginx: see ha/describe-ha.ts. */
import { postgresBackend } from "./ha/backends.ts";
import { describeHighAvailability } from "./ha/describe-ha.ts";

describeHighAvailability(postgresBackend);
