/**
 * The playground: pick an agent and a mode, send a message, watch the run. Runs keep the page's
 * session id until "New session"; a stream that breaks is picked up again with `Last-Event-ID`
 * from whichever instance answers; every event is listed with its sequence number and the
 * instance (`acp-instance` header) that served it.
 */
import { type Answer, ApiError, apiKey, call, type EventStream, type Frame, openStream, setApiKey } from "./api.ts";
import { type Message, type Part, renderParts, revokeDownloads } from "./render.ts";

type Mode = "sync" | "async" | "stream";
type Status = "created" | "in-progress" | "awaiting" | "cancelling" | "cancelled" | "completed" | "failed";

interface Run {
  run_id: string;
  agent_name: string;
  status: Status;
  await_request?: { type: string; message?: Message } | null;
  output?: Message[];
  error?: { code: string; message: string; data?: unknown } | null;
}

interface AcpEvent {
  type: string;
  run?: Run;
  message?: Message;
  part?: Part;
  generic?: unknown;
  error?: { code: string; message: string };
}

interface AgentManifest {
  name: string;
  description?: string;
}

/** What the page knows about the run it follows. */
interface Follow {
  id: string | undefined;
  agent: string;
  mode: Mode;
  status: Status | undefined;
  /** The last sequence number received: what `Last-Event-ID` says on a reconnect. */
  lastSeq: number;
  /** Output messages already shown (sync and async runs show `run.output` as it grows). */
  shown: number;
  /** The last output message shown, and its parts then. */
  last: { body: HTMLElement; parts: string } | undefined;
  /** The agent message being streamed. */
  streaming: HTMLElement | undefined;
  /** The run's heading in the events list. */
  header: HTMLLIElement | undefined;
  controller: AbortController;
}

const SETTLED: ReadonlySet<string> = new Set(["awaiting", "completed", "failed", "cancelled"]);
const TERMINAL: ReadonlySet<string> = new Set(["completed", "failed", "cancelled"]);
const POLL_MS = 300;
const RECONNECT_ATTEMPTS = 8;

/** Example inputs for the demo's agents; any other agent gets a generic prompt. */
const EXAMPLES: Record<string, string> = {
  echo: "Hello!",
  tokens: "3 one token at a time delay=80",
  approval: "the deploy",
  artifacts: "the weather",
  chat: "my name is Ada",
  "history-echo": "first turn",
  failing: "please",
  slow: "ticks=30",
  "durable-steps": "5 steps delay=300",
  "durable-approval": "the backup",
};

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

const ui = {
  apiKey: byId<HTMLInputElement>("api-key"),
  alert: byId<HTMLParagraphElement>("alert"),
  sessionId: byId<HTMLElement>("session-id"),
  newSession: byId<HTMLButtonElement>("new-session"),
  transcript: byId<HTMLDivElement>("transcript"),
  status: byId<HTMLParagraphElement>("run-status"),
  resumeForm: byId<HTMLFormElement>("resume-form"),
  reply: byId<HTMLInputElement>("reply"),
  sendForm: byId<HTMLFormElement>("send-form"),
  agent: byId<HTMLSelectElement>("agent"),
  description: byId<HTMLParagraphElement>("agent-description"),
  mode: byId<HTMLSelectElement>("mode"),
  message: byId<HTMLTextAreaElement>("message"),
  send: byId<HTMLButtonElement>("send"),
  cancel: byId<HTMLButtonElement>("cancel"),
  events: byId<HTMLOListElement>("events"),
};

let sessionId = crypto.randomUUID();
let agents: AgentManifest[] = [];
let current: Follow | undefined;
/** Instances seen so far, in order: each gets its own colour in the events list. */
const instances: string[] = [];

// ---------------------------------------------------------------------------------------------
// Small DOM helpers: every piece of server or agent text goes in through textContent.

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function scrollToEnd(box: HTMLElement): void {
  box.scrollTop = box.scrollHeight;
}

function entry(kind: string, who?: string): { box: HTMLDivElement; body: HTMLDivElement } {
  const box = element("div", `entry ${kind}`);
  if (who) box.append(element("span", "who", who));
  const body = element("div", "body");
  box.append(body);
  ui.transcript.append(box);
  scrollToEnd(ui.transcript);
  return { box, body };
}

function note(text: string, kind = "note"): HTMLDivElement {
  const { box, body } = entry(kind);
  body.textContent = text;
  return box;
}

function showError(error: unknown): void {
  if (error instanceof DOMException && error.name === "AbortError") return;
  const box = note(describeError(error), "error");
  box.dataset.code = error instanceof ApiError ? error.code : "error";
  // An ACP error's `data` (details the agent or server chose to give) is shown as JSON under its message.
  if (error instanceof ApiError && error.data !== undefined && error.data !== null)
    box.querySelector(".body")?.append(element("pre", "json", JSON.stringify(error.data, null, 2)));
}

function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const status = error.status ? ` (HTTP ${error.status})` : "";
    return `Error ${error.code}${status}: ${error.message}`;
  }
  return `Error: ${(error as Error)?.message ?? String(error)}`;
}

function setAlert(text: string | undefined): void {
  ui.alert.textContent = text ?? "";
  ui.alert.hidden = text === undefined;
}

function shortId(id: string): string {
  return id.length > 12 ? id.slice(0, 8) : id;
}

function instanceBadge(instance: string | null): HTMLElement {
  const badge = element("span", "instance");
  if (!instance) {
    badge.textContent = "instance ?";
    return badge;
  }
  let index = instances.indexOf(instance);
  if (index === -1) index = instances.push(instance) - 1;
  badge.classList.add(`i${index % 4}`);
  badge.textContent = shortId(instance);
  badge.title = `served by instance ${instance}`;
  badge.dataset.instance = instance;
  return badge;
}

function listRow(
  className: string,
  detail: string | [string, string],
  instance: string | null,
  seq?: number,
): HTMLLIElement {
  const row = element("li", className);
  if (seq !== undefined) {
    row.append(element("span", "seq", String(seq)));
    row.dataset.seq = String(seq);
  }
  const [main, extra] = typeof detail === "string" ? [detail, ""] : detail;
  const text = element("span", "detail", main);
  if (extra) text.append(" ", element("small", undefined, extra));
  row.append(text, instanceBadge(instance));
  ui.events.append(row);
  scrollToEnd(ui.events);
  return row;
}

/** An event's type, and a short muted detail: the run's status, the part's content, the generic payload. */
function eventSummary(event: AcpEvent): [string, string] {
  if (event.run) return [event.type, event.run.status];
  if (event.part) {
    const content = event.part.content ?? event.part.content_url ?? "";
    const name = event.part.name ? `${event.part.name}: ` : "";
    return [event.type, `${name}${content.length > 40 ? `${content.slice(0, 40)}…` : content}`];
  }
  if (event.type === "generic") return [event.type, JSON.stringify(event.generic)];
  if (event.error) return [event.type, event.error.code];
  return [event.type, ""];
}

function listEvent(event: AcpEvent, seq: number | undefined, instance: string | null): void {
  const row = listRow("event", eventSummary(event), instance, seq);
  row.dataset.type = event.type;
}

function listRequest(what: string, answer: Answer<unknown>, extra = ""): void {
  listRow("request", `${what} → ${answer.status}${extra ? ` ${extra}` : ""}`, answer.instance);
}

// ---------------------------------------------------------------------------------------------
// Run state shown to the person.

function setStatus(follow: Follow, status: Status | undefined, text?: string): void {
  follow.status = status;
  if (current !== follow) return;
  const id = follow.id ? ` ${shortId(follow.id)}` : "";
  ui.status.textContent = text ?? `Run${id} (${follow.agent}, ${follow.mode}): ${status ?? "starting"}`;
  ui.status.dataset.status = status ?? "";
  if (follow.id) ui.status.dataset.runId = follow.id;
  if (follow.id && follow.header)
    follow.header.textContent = `${follow.agent} · ${follow.mode} · run ${shortId(follow.id)}`;
  const going = status === undefined || !TERMINAL.has(status);
  ui.cancel.hidden = !going;
  ui.cancel.disabled = status === "cancelling";
  ui.send.disabled = going && status !== "awaiting";
  ui.resumeForm.hidden = status !== "awaiting";
}

function showMessage(message: Message, asks = false): HTMLDivElement {
  const { box, body } = entry(asks ? "agent asks" : "agent", message.role ?? "agent");
  renderParts(message.parts ?? [], body);
  box.dataset.role = message.role ?? "";
  scrollToEnd(ui.transcript);
  return body;
}

/** Shows what a run record adds: new output messages, then the question of an awaiting run, or its error. */
function showRun(follow: Follow, run: Run): void {
  follow.id = run.run_id;
  const output = run.output ?? [];
  // The last message shown may have grown since (a poll can catch an agent between two parts).
  const grown = follow.shown > 0 ? output[follow.shown - 1] : undefined;
  if (grown && follow.last && JSON.stringify(grown.parts) !== follow.last.parts) {
    renderParts(grown.parts ?? [], follow.last.body);
    follow.last.parts = JSON.stringify(grown.parts);
  }
  for (const message of output.slice(follow.shown))
    follow.last = { body: showMessage(message), parts: JSON.stringify(message.parts) };
  follow.shown = output.length;
  settleIfDone(follow, run);
}

function settleIfDone(follow: Follow, run: Run): void {
  setStatus(follow, run.status);
  if (!SETTLED.has(run.status)) return;
  if (run.status === "awaiting") {
    if (run.await_request?.message) showMessage(run.await_request.message, true);
    if (current === follow) ui.reply.focus();
  } else if (run.status === "failed") {
    const error = run.error ?? { code: "server_error", message: "The run failed" };
    showError(new ApiError(0, error.code, error.message, null, error.data));
  } else if (run.status === "cancelled") {
    note("The run was cancelled.");
  }
}

// ---------------------------------------------------------------------------------------------
// Sync and async runs: the answer, then polling until the run settles, then its events.

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

async function pollUntilSettled(follow: Follow, run: Run): Promise<void> {
  let latest = run;
  while (!SETTLED.has(latest.status)) {
    await pause(POLL_MS, follow.controller.signal);
    const answer = await call<Run>("GET", `/runs/${latest.run_id}`, undefined, follow.controller.signal);
    listRequest(`GET /runs/${shortId(latest.run_id)}`, answer, answer.body.status);
    latest = answer.body;
    showRun(follow, latest);
  }
  await listStoredEvents(follow);
}

/** Lists the events not listed yet, from `GET /runs/{id}/events` (its JSON lists them from sequence number 1). */
async function listStoredEvents(follow: Follow): Promise<void> {
  if (!follow.id) return;
  const answer = await call<{ events: AcpEvent[] }>(
    "GET",
    `/runs/${follow.id}/events`,
    undefined,
    follow.controller.signal,
  );
  answer.body.events.forEach((event, index) => {
    const seq = index + 1;
    if (seq <= follow.lastSeq) return;
    listEvent(event, seq, answer.instance);
    follow.lastSeq = seq;
  });
}

async function runByAnswer(follow: Follow, method: string, path: string, body: unknown): Promise<void> {
  const answer = await call<Run>("POST", path, body, follow.controller.signal);
  listRequest(`${method} ${path.replace(/[0-9a-f-]{36}/, (id) => shortId(id))}`, answer, answer.body.status);
  showRun(follow, answer.body);
  await pollUntilSettled(follow, answer.body);
}

// ---------------------------------------------------------------------------------------------
// Stream runs: frames as they come; a broken stream continues from GET /runs/{id}/events.

/** Handles one frame; returns true when the stream has said all it will (the run settled). */
function onFrame(follow: Follow, frame: Frame, instance: string | null): boolean {
  const event = JSON.parse(frame.data) as AcpEvent;
  if (frame.id !== undefined) follow.lastSeq = frame.id;
  listEvent(event, frame.id, instance);
  switch (event.type) {
    case "run.created":
    case "run.in-progress":
    case "run.cancelling":
      if (event.run) {
        follow.id = event.run.run_id;
        setStatus(follow, event.run.status);
      }
      return false;
    case "message.created":
      follow.streaming = entry("agent", event.message?.role ?? "agent").body;
      return false;
    case "message.part": {
      if (!follow.streaming) follow.streaming = entry("agent", "agent").body;
      const parts = JSON.parse(follow.streaming.dataset.parts ?? "[]") as Part[];
      if (event.part) parts.push(event.part);
      follow.streaming.dataset.parts = JSON.stringify(parts);
      // Text is shown as it comes; markdown and the rest are laid out whole at message.completed.
      renderParts(parts, follow.streaming);
      scrollToEnd(ui.transcript);
      return false;
    }
    case "message.completed":
      if (!follow.streaming) follow.streaming = entry("agent", event.message?.role ?? "agent").body;
      renderParts(event.message?.parts ?? [], follow.streaming);
      delete follow.streaming.dataset.parts;
      follow.streaming = undefined;
      scrollToEnd(ui.transcript);
      return false;
    case "error":
      // An error frame (no id) says the server could not go on reading the run: resume after lastSeq.
      throw new ApiError(0, event.error?.code ?? "server_error", event.error?.message ?? "The stream failed");
    default:
      if (event.run && SETTLED.has(event.run.status)) {
        follow.id = event.run.run_id;
        settleIfDone(follow, event.run);
        return true;
      }
      return false;
  }
}

async function followStream(follow: Follow, open: () => Promise<EventStream>): Promise<void> {
  let stream = await open();
  follow.id ??= stream.runId ?? undefined;
  let failures = 0;
  for (;;) {
    let why = "the stream ended before the run did";
    try {
      for await (const frame of stream.frames) {
        failures = 0;
        if (onFrame(follow, frame, stream.instance)) return;
      }
    } catch (error) {
      if (follow.controller.signal.aborted) return;
      why = error instanceof ApiError ? `${error.code}: ${error.message}` : "the connection broke";
    }
    if (!follow.id) throw new ApiError(0, "network_error", `The stream broke before the run had an id (${why})`);
    stream = await reconnect(follow, why, ++failures);
  }
}

/** Opens GET /runs/{id}/events after the last event seen, retrying a few times; says so in the transcript. */
async function reconnect(follow: Follow, why: string, attempt: number): Promise<EventStream> {
  if (attempt > RECONNECT_ATTEMPTS)
    throw new ApiError(0, "network_error", `The stream broke ${RECONNECT_ATTEMPTS} times in a row (${why})`);
  note(`Stream interrupted after event ${follow.lastSeq} (${why}); reconnecting…`);
  for (let tries = 0; ; tries++) {
    await pause(Math.min(200 * 2 ** tries, 3000), follow.controller.signal);
    try {
      const stream = await openStream(
        "GET",
        `/runs/${follow.id}/events`,
        undefined,
        follow.lastSeq,
        follow.controller.signal,
      );
      note(
        `Reconnected with Last-Event-ID: ${follow.lastSeq}; continuing from event ${follow.lastSeq + 1}.`,
      ).classList.add("reconnected");
      listRow("reconnect", `reconnected after event ${follow.lastSeq}`, stream.instance);
      // The message being streamed, if any, goes on in the same bubble: the stream resumes right after its last part.
      return stream;
    } catch (error) {
      if (follow.controller.signal.aborted) throw error;
      // A client error (the run is gone, the key is wrong) will not pass by retrying.
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw error;
      if (tries + 1 >= RECONNECT_ATTEMPTS) throw error;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The controls.

function newFollow(mode: Mode, agent: string, id?: string): Follow {
  current?.controller.abort();
  const follow: Follow = {
    id,
    agent,
    mode,
    status: undefined,
    lastSeq: 0,
    shown: 0,
    last: undefined,
    streaming: undefined,
    header: undefined,
    controller: new AbortController(),
  };
  current = follow;
  return follow;
}

async function guarded(follow: Follow, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (follow.controller.signal.aborted) return;
    showError(error);
    if (current === follow) setStatus(follow, follow.status, `Run ${follow.id ? shortId(follow.id) : ""}: error`);
    ui.cancel.hidden = true;
    ui.send.disabled = false;
  }
}

function userMessage(text: string): Message {
  return { role: "user", parts: [{ content_type: "text/plain", content: text }] };
}

async function sendMessage(): Promise<void> {
  const text = ui.message.value.trim();
  const agent = ui.agent.value;
  if (!text || !agent || ui.send.disabled) return;
  const mode = ui.mode.value as Mode;
  const follow = newFollow(mode, agent);
  const { body } = entry("user", "you");
  body.append(element("span", "text", text));
  ui.message.value = "";
  follow.header = element("li", "run", `${agent} · ${mode}`);
  ui.events.append(follow.header);
  setStatus(follow, undefined);
  const request = { agent_name: agent, mode, session_id: sessionId, input: [userMessage(text)] };
  await guarded(follow, async () => {
    if (mode === "stream")
      await followStream(follow, () => openStream("POST", "/runs", request, undefined, follow.controller.signal));
    else await runByAnswer(follow, "POST", "/runs", request);
  });
}

async function resume(): Promise<void> {
  const awaiting = current;
  const text = ui.reply.value.trim();
  if (!awaiting?.id || awaiting.status !== "awaiting" || !text) return;
  ui.reply.value = "";
  ui.resumeForm.hidden = true;
  const { body } = entry("user", "you");
  body.append(element("span", "text", text));
  setStatus(awaiting, "in-progress");
  const path = `/runs/${awaiting.id}`;
  const request = {
    run_id: awaiting.id,
    mode: awaiting.mode,
    await_resume: { type: "message", message: userMessage(text) },
  };
  await guarded(awaiting, async () => {
    if (awaiting.mode === "stream")
      await followStream(awaiting, () => openStream("POST", path, request, undefined, awaiting.controller.signal));
    else await runByAnswer(awaiting, "POST", path, request);
  });
}

async function cancel(): Promise<void> {
  const follow = current;
  if (!follow) return;
  if (!follow.id) {
    // A sync run's id comes with its answer: until then the page can only stop waiting. The
    // server cancels a sync run whose client leaves before its answer (nobody else could reach it).
    follow.controller.abort();
    note("Stopped waiting. The server cancels a sync run whose client leaves before its answer.");
    setStatus(follow, follow.status, "Stopped waiting for the run");
    ui.cancel.hidden = true;
    ui.send.disabled = false;
    return;
  }
  ui.cancel.disabled = true;
  const wasAwaiting = follow.status === "awaiting";
  await guarded(follow, async () => {
    const answer = await call<Run>("POST", `/runs/${follow.id}/cancel`, undefined, follow.controller.signal);
    listRequest(`POST /runs/${shortId(follow.id!)}/cancel`, answer, answer.body.status);
    if (TERMINAL.has(follow.status ?? "")) return;
    setStatus(follow, answer.body.status);
    // A stream or an async poll is still following the run and will see it end; otherwise follow it here.
    if (wasAwaiting || follow.mode === "sync") await pollUntilSettled(follow, answer.body);
  });
}

function startSession(): void {
  current?.controller.abort();
  current = undefined;
  sessionId = crypto.randomUUID();
  ui.sessionId.textContent = sessionId;
  ui.sessionId.title = "Runs sent from this page share this session id";
  revokeDownloads();
  ui.transcript.replaceChildren();
  ui.events.replaceChildren();
  ui.status.textContent = "";
  ui.status.dataset.status = "";
  ui.resumeForm.hidden = true;
  ui.cancel.hidden = true;
  ui.send.disabled = false;
}

function describeAgent(): void {
  const chosen = agents.find((agent) => agent.name === ui.agent.value);
  ui.description.textContent = chosen?.description ?? "";
  ui.message.placeholder = `e.g. ${EXAMPLES[chosen?.name ?? ""] ?? "Hello"}`;
}

/** Counts the agent list requests, so that only the latest one's answer is shown (the key may change meanwhile). */
let agentRequests = 0;

async function loadAgents(): Promise<void> {
  const request = ++agentRequests;
  try {
    const answer = await call<{ agents: AgentManifest[] }>("GET", "/agents?limit=1000");
    if (request !== agentRequests) return;
    agents = answer.body.agents;
    const previous = ui.agent.value;
    ui.agent.replaceChildren(
      ...agents.map((agent) => {
        const option = element("option", undefined, agent.name);
        option.value = agent.name;
        option.title = agent.description ?? "";
        return option;
      }),
    );
    if (agents.some((agent) => agent.name === previous)) ui.agent.value = previous;
    setAlert(undefined);
  } catch (error) {
    if (request !== agentRequests) return;
    agents = [];
    ui.agent.replaceChildren();
    const hint =
      error instanceof ApiError && error.status === 401 ? " Type the server's API key in the API key field." : "";
    setAlert(`Cannot list the agents. ${describeError(error)}.${hint}`);
  }
  describeAgent();
}

function start(): void {
  ui.apiKey.value = apiKey();
  ui.apiKey.addEventListener("change", () => {
    setApiKey(ui.apiKey.value.trim());
    void loadAgents();
  });
  ui.agent.addEventListener("change", describeAgent);
  ui.newSession.addEventListener("click", startSession);
  ui.cancel.addEventListener("click", () => void cancel());
  ui.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void sendMessage();
  });
  ui.message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.sendForm.requestSubmit();
    }
  });
  ui.resumeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void resume();
  });
  startSession();
  void loadAgents();
}

start();
