/**
 * The fuzz suite (support/fuzz-suite.ts) on PostgreSQL, at half its size: what the memory store lets
 * through must not make this backend fail either (a 5xx, a crash, a run left going).
 */
import { postgresBackend } from "./ha/backends.ts";
import { describeFuzzOn } from "./support/fuzz-suite.ts";

describeFuzzOn(postgresBackend, 0.5);
