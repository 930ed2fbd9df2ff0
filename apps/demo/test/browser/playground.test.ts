/**
 * The playground in Debian's Chromium, against a demo instance started as `pnpm demo` starts it:
 * every control, every agent in every mode, await and resume, cancel, sessions, artifacts,
 * agent output that tries to inject HTML, a stream cut mid-run and resumed, and no request to
 * another origin. One browser for the file; the tests share one page and start each run in a
 * new session, which clears the transcript.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensurePlaygroundBuilt, launchBrowser, offOrigin, openPage } from "../support/browser.ts";
import { type Instance, startInstance, stopInstances } from "../support/cluster.ts";
import { pollUntil } from "../support/until.ts";
import { type CuttingProxy, startCuttingProxy } from "./cutting-proxy.ts";

type Mode = "sync" | "async" | "stream";
const MODES: Mode[] = ["sync", "async", "stream"];

let instance: Instance;
let proxy: CuttingProxy;
let browser: Browser;
let page: Page;
let requests: string[];
let dialogs: string[];

const transcript = (): ReturnType<Page["getByRole"]> => page.getByRole("log", { name: "Transcript" });
const agentSays = (text: string | RegExp) => transcript().locator(".entry.agent").filter({ hasText: text });

async function startRun(agent: string, mode: Mode, text: string, on = page): Promise<void> {
  await on.getByRole("button", { name: "New session" }).click();
  await on.getByRole("combobox", { name: "Agent" }).selectOption(agent);
  await on.getByRole("combobox", { name: "Mode" }).selectOption(mode);
  await on.getByRole("textbox", { name: "Message" }).fill(text);
  await on.getByRole("button", { name: "Send" }).click();
}

/** Waits until the run status line says `status` (completed, failed, awaiting, cancelled). */
async function runEnds(status: string, on = page): Promise<void> {
  await on
    .getByRole("status", { name: "Run status" })
    .filter({ hasText: `: ${status}` })
    .waitFor();
}

async function answer(reply: string, on = page): Promise<void> {
  await on.getByRole("textbox", { name: "Reply" }).fill(reply);
  await on.getByRole("button", { name: "Resume" }).click();
}

/**
 * The sequence numbers listed in the events panel, in order, once the run's `run.<status>` event is
 * listed (a sync or async run's events are read after its status shows).
 */
async function listedSeqs(status: string, on = page): Promise<number[]> {
  await on.locator(`#events li[data-type="run.${status}"]`).last().waitFor();
  return on.locator("#events li[data-seq]").evaluateAll((rows) => rows.map((row) => Number(row.dataset.seq)));
}

/** The runs of `agent` the instance has ended `cancelled` so far, from its Prometheus metrics. */
async function cancelledRuns(agent: string): Promise<number> {
  const text = await (await fetch(`${instance.url}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (row) =>
        row.startsWith("acp_runs_finished_total{") &&
        row.includes(`agent="${agent}"`) &&
        row.includes('status="cancelled"'),
    );
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

function expectNoGapNoRepeat(seqs: number[]): void {
  expect(seqs.length).toBeGreaterThan(2);
  expect(seqs).toEqual(seqs.map((_, index) => index + 1));
}

beforeAll(async () => {
  await ensurePlaygroundBuilt();
  // A short drain: a sync run the page stopped waiting for may still tick when the instance stops.
  [instance, browser] = await Promise.all([startInstance({ ACP_DRAIN_MS: "500" }), launchBrowser()]);
  proxy = await startCuttingProxy(instance.url);
  ({ page, requests, dialogs } = await openPage(browser));
  await page.goto(`${instance.url}/`);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  if (instance) await stopInstances([instance]);
});

describe("the playground", { timeout: 90_000 }, () => {
  it("has every control under its accessible name, and lists the agents with their descriptions", async () => {
    const agents = (
      (await (await fetch(`${instance.url}/agents?limit=1000`)).json()) as {
        agents: { name: string; description: string }[];
      }
    ).agents;
    const agent = page.getByRole("combobox", { name: "Agent" });
    await agent
      .locator("option")
      .nth(agents.length - 1)
      .waitFor({ state: "attached" });
    expect(await agent.locator("option").allTextContents()).toEqual(agents.map((a) => a.name));
    await agent.selectOption("slow");
    await page.getByText("A long task that can be cancelled").waitFor();
    const mode = page.getByRole("combobox", { name: "Mode" });
    expect(await mode.locator("option").allTextContents()).toEqual(["stream", "sync", "async"]);
    for (const [role, name] of [
      ["textbox", "Message"],
      ["button", "Send"],
      ["log", "Transcript"],
      ["textbox", "API key"],
      ["button", "New session"],
      ["status", "Run status"],
    ] as const)
      await page.getByRole(role, { name, exact: true }).waitFor({ state: "attached" });
    // Reply, Resume and Cancel appear only when they can be used.
    expect(await page.getByRole("textbox", { name: "Reply" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Resume" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Cancel" }).count()).toBe(0);
    expect(await page.title()).toBe("ACP playground");
  });

  it("completes an approval run the way README.md tells a person to", async () => {
    // The page as it opens: Mode is left as it is.
    expect(await page.getByRole("combobox", { name: "Mode" }).inputValue()).toBe("stream");
    await page.getByRole("combobox", { name: "Agent" }).selectOption("approval");
    await page.getByRole("textbox", { name: "Message" }).fill("the deploy");
    await page.getByRole("button", { name: "Send" }).click();
    await agentSays("Planning the deploy.").waitFor();
    await agentSays("Do you approve the deploy? Answer yes or no.").waitFor();
    await page.getByRole("textbox", { name: "Reply" }).fill("yes");
    await page.getByRole("button", { name: "Resume" }).click();
    await agentSays("Approved: doing the deploy.").waitFor();
    await runEnds("completed");
  });

  interface Case {
    agent: string;
    input: string;
    /** For an agent that awaits: the reply to resume it with. */
    reply?: string;
    ends: "completed" | "failed";
    shows: string | RegExp;
  }
  const cases: Case[] = [
    { agent: "echo", input: "hello from the playground", ends: "completed", shows: "hello from the playground" },
    { agent: "tokens", input: "3 tick tock", ends: "completed", shows: "tick tock tick tock tick tock" },
    { agent: "approval", input: "the deploy", reply: "yes", ends: "completed", shows: "Approved: doing the deploy." },
    { agent: "artifacts", input: "cats", ends: "completed", shows: "Download pixel.png" },
    { agent: "chat", input: "my name is Ada", ends: "completed", shows: "holds 0 earlier messages" },
    { agent: "history-echo", input: "first turn", ends: "completed", shows: "first turn" },
    { agent: "failing", input: "please", ends: "failed", shows: "x" },
    { agent: "slow", input: "ticks=3", ends: "completed", shows: "tick 1 tick 2 tick 3" },
    { agent: "durable-steps", input: "3 steps delay=20", ends: "completed", shows: "step 3 of 3 (attempt 1)" },
    {
      agent: "durable-approval",
      input: "the backup",
      reply: "yes",
      ends: "completed",
      shows: "Approved. Done: the backup. (attempt 1)",
    },
  ];
  const runs = cases.flatMap((c) => MODES.map((mode) => ({ ...c, mode })));

  it.each(runs)("runs $agent in $mode mode to its end", async ({ agent, input, reply, ends, shows, mode }) => {
    await startRun(agent, mode, input);
    if (reply !== undefined) {
      await runEnds("awaiting");
      await agentSays(/Do you approve .*\? Answer yes or no\./).waitFor();
      await answer(reply);
    }
    await runEnds(ends);
    if (ends === "failed") {
      const error = transcript().locator(".entry.error");
      await error
        .filter({ hasText: "invalid_input" })
        .filter({ hasText: "The failing agent refuses this input" })
        .waitFor();
      // The error's data, as the agent gave it.
      await error.locator("pre.json").filter({ hasText: '"hint": "try another agent"' }).waitFor();
    } else {
      await agentSays(shows).first().waitFor();
    }
    // Every event of the run listed once, in order, from 1 (a resume continues the numbering).
    expectNoGapNoRepeat(await listedSeqs(ends));
    // Each listed event names the instance that served it.
    const badges = await page
      .locator("#events li[data-seq] .instance")
      .evaluateAll((all) => all.map((badge) => (badge as HTMLElement).dataset.instance ?? ""));
    expect(badges.every((id) => id.length > 0)).toBe(true);
  });

  it("shows a streamed message as its parts arrive, before the run ends", async () => {
    await startRun("tokens", "stream", "alpha beta gamma delta epsilon zeta delay=300");
    // The first words are on the page while the run is still going (the last comes 1.8 s later).
    await page.waitForFunction(() => {
      const status = document.querySelector<HTMLElement>("#run-status")?.dataset.status;
      const text = document.querySelector(".entry.agent .body")?.textContent ?? "";
      return text.startsWith("alpha ") && !text.includes("zeta") && status === "in-progress";
    });
    await runEnds("completed");
    await agentSays("alpha beta gamma delta epsilon zeta").waitFor();
  });

  it("shows an async run's message growing between polls as one message", async () => {
    // Polls every 300 ms catch the message between its parts; each poll brings the message up to date.
    await startRun("tokens", "async", "one two three four five six delay=200");
    await runEnds("completed");
    await agentSays("one two three four five six").waitFor();
    expect(await transcript().locator(".entry.agent").count()).toBe(1);
  });

  it.each(["async", "stream"] as const)("cancels a slow run in %s mode", async (mode) => {
    await startRun("slow", mode, "ticks=600");
    await runEnds("in-progress");
    await page.getByRole("button", { name: "Cancel" }).click();
    await runEnds("cancelled");
    await transcript().getByText("The run was cancelled.").waitFor();
    expect(await page.getByRole("button", { name: "Cancel" }).count()).toBe(0);
  });

  it("cancels a run that awaits an answer", async () => {
    await startRun("approval", "stream", "the cleanup");
    await runEnds("awaiting");
    await page.getByRole("button", { name: "Cancel" }).click();
    await runEnds("cancelled");
    expect(await page.getByRole("textbox", { name: "Reply" }).count()).toBe(0);
  });

  it("stops waiting for a sync run when Cancel is pressed before its id is known, and the server cancels it", async () => {
    const cancelledBefore = await cancelledRuns("slow");
    await startRun("slow", "sync", "ticks=30");
    await page.getByRole("button", { name: "Cancel" }).click();
    await transcript()
      .getByText(/Stopped waiting\. The server cancels a sync run whose client leaves/)
      .waitFor();
    await page.getByRole("button", { name: "Send" }).and(page.locator(":enabled")).waitFor();
    // The page dropped its request: the server saw its client leave and cancelled the run.
    await pollUntil(
      "the sync run cancelled on the server",
      async () => ((await cancelledRuns("slow")) > cancelledBefore ? true : undefined),
      10_000,
      100,
    );
  });

  it("answers No to an approval", async () => {
    await startRun("approval", "sync", "the migration");
    await runEnds("awaiting");
    await answer("no");
    await runEnds("completed");
    await agentSays("Not approved: the migration dropped.").waitFor();
  });

  it("keeps the session across runs until New session", async () => {
    await startRun("chat", "sync", "my name is Ada");
    await agentSays("holds 0 earlier messages").waitFor();
    const first = await page.locator("#session-id").textContent();
    for (const [text, mode] of [
      ["what is my name?", "stream"],
      ["and now?", "async"],
    ] as const) {
      await page.getByRole("combobox", { name: "Mode" }).selectOption(mode);
      await page.getByRole("textbox", { name: "Message" }).fill(text);
      await page.getByRole("button", { name: "Send" }).click();
      await agentSays(`You say now: "${text}"`).waitFor();
    }
    await agentSays('holds 4 earlier messages. You said first: "my name is Ada"').waitFor();
    await page.getByRole("button", { name: "New session" }).click();
    expect(await transcript().locator(".entry").count()).toBe(0);
    const second = await page.locator("#session-id").textContent();
    expect(second).not.toBe(first);
    await page.getByRole("textbox", { name: "Message" }).fill("hello again");
    await page.getByRole("button", { name: "Send" }).click();
    await agentSays('holds 0 earlier messages. You said first: "hello again"').waitFor();
  });

  it("shows artifacts: markdown rendered, JSON pretty-printed, the image, each downloadable", async () => {
    await startRun("artifacts", "stream", "the weather");
    await runEnds("completed");
    await transcript().getByRole("heading", { name: "Report" }).waitFor();
    await transcript().locator("pre.json").filter({ hasText: '"topic": "the weather",' }).waitFor();
    const image = transcript().getByRole("img", { name: "pixel.png" });
    await image.waitFor();
    expect(await image.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBe(1);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      transcript().getByRole("link", { name: "Download data.json" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe("data.json");
    const stream = await download.createReadStream();
    let body = "";
    for await (const chunk of stream) body += String(chunk);
    expect(JSON.parse(body)).toEqual({ topic: "the weather", words: 2 });
  });

  it("renders agent output that tries to inject HTML as inert text", async () => {
    const attack = `<img src=x onerror="window.__pwned=1"> [click me](javascript:window.__pwned=2) <script>window.__pwned=3</script>`;
    for (const agent of ["echo", "artifacts"]) {
      await startRun(agent, "stream", attack);
      await runEnds("completed");
      // The text is shown as it was sent, tags and all.
      await agentSays('<img src=x onerror="window.__pwned=1">').first().waitFor();
    }
    // artifacts put the input in its markdown report: a heading, and the link left as text.
    await transcript().getByRole("heading", { name: "Report" }).waitFor();
    expect(await page.locator('img[src="x"], script:not([src]), a[href^="javascript:" i]').count()).toBe(0);
    expect(await transcript().getByRole("link", { name: "click me" }).count()).toBe(0);
    expect(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(dialogs).toEqual([]);
  });

  it("shows an ACP error answer (an unknown agent) in the transcript", async () => {
    await page.getByRole("button", { name: "New session" }).click();
    // An agent that is not in the list: the select is set from script, as a stale page would be.
    await page.getByRole("combobox", { name: "Agent" }).evaluate((select) => {
      const option = document.createElement("option");
      option.value = option.textContent = "nobody";
      (select as HTMLSelectElement).append(option);
      (select as HTMLSelectElement).value = "nobody";
    });
    await page.getByRole("textbox", { name: "Message" }).fill("hello?");
    await page.getByRole("button", { name: "Send" }).click();
    await transcript()
      .locator(".entry.error")
      .filter({ hasText: "not_found (HTTP 404): Agent nobody not found" })
      .waitFor();
    await page.reload();
  });

  it("resumes a stream cut mid-run with Last-Event-ID, with no event missing or repeated", async () => {
    const { page: cut, requests: cutRequests } = await openPage(browser, { width: 420, height: 900 });
    try {
      await cut.goto(`${proxy.url}/`);
      const cutDone = proxy.cutAfterEvent(8);
      await startRun("tokens", "stream", "40 word delay=50", cut);
      await cutDone;
      await cut
        .getByRole("log", { name: "Transcript" })
        .getByText(/Reconnected with Last-Event-ID: \d+/)
        .waitFor();
      await runEnds("completed", cut);
      const seqs = await listedSeqs("completed", cut);
      expectNoGapNoRepeat(seqs);
      // run.created, run.in-progress, message.created, 40 parts, message.completed, run.completed.
      expect(seqs).toHaveLength(45);
      expect(await cut.locator('#events li[data-type="message.part"]').count()).toBe(40);
      const text = await cut.locator(".entry.agent .body").last().textContent();
      expect(text).toBe("word ".repeat(40));
      await cut.locator("#events li.reconnect").waitFor();
      expect(offOrigin(cutRequests, proxy.url)).toEqual([]);
    } finally {
      await cut.context().close();
    }
  });

  it("made no request to another origin", () => {
    expect(requests.length).toBeGreaterThan(10);
    expect(offOrigin(requests, instance.url)).toEqual([]);
  });
});
