/**
 * Every span name part and attribute name core's traces use, in one place. The GenAI ones follow
 * the OpenTelemetry semantic conventions for generative AI, which are still marked experimental:
 * when they are renamed, this module is the only one to change.
 */

// GenAI (experimental conventions): the span of one agent invocation.
/** The operation of a run's span, and the first word of its name (`invoke_agent <agent name>`). */
export const INVOKE_AGENT = "invoke_agent";
export const GEN_AI_OPERATION_NAME = "gen_ai.operation.name";
export const GEN_AI_AGENT_NAME = "gen_ai.agent.name";
/** The ACP session id: the conversation the run belongs to. */
export const GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id";

// ACP's own.
export const ACP_RUN_ID = "acp.run.id";
/** 1 for a run's first execution, one more for each takeover of a durable run. */
export const ACP_RUN_ATTEMPT = "acp.run.attempt";
/** The run's status when its span ended (`completed`, `failed`, `cancelled`, or `awaiting`/`in-progress` when handed off). */
export const ACP_RUN_STATUS = "acp.run.status";
/** The instance that did the work of the span. */
export const ACP_INSTANCE_ID = "acp.instance.id";

// Stable conventions.
export const ERROR_TYPE = "error.type";
export const HTTP_REQUEST_METHOD = "http.request.method";
export const HTTP_ROUTE = "http.route";
export const HTTP_RESPONSE_STATUS_CODE = "http.response.status_code";
export const URL_PATH = "url.path";
export const URL_SCHEME = "url.scheme";
export const USER_AGENT_ORIGINAL = "user_agent.original";
/** The store method a store span stands for (`createRun`, `updateRun`, …). */
export const DB_OPERATION_NAME = "db.operation.name";
