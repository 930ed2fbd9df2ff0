/**
 * The native load generator: `wrk` (C, one epoll loop per thread), driven with a Lua script that
 * sets the POST body and, in wrk's `done()` hook, prints the run's counts, errors and 1,000
 * latency quantiles as one JSON line. A JavaScript generator on the same two cores as the server
 * is itself the bottleneck of a fast server (bare Hono), which makes every ratio against that
 * server look better than it is; wrk is not.
 */
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { LoadTarget, LoadWindow, SliceReport } from "./load.ts";

/** Where `wrk` is on PATH, or undefined. */
export function findWrk(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const file = path.join(dir, "wrk");
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {}
  }
  return undefined;
}

/** `wrk -v`'s version, e.g. "debian/4.1.0-3+b2" (it prints its banner and exits 1). */
export function wrkVersion(file: string): string {
  const { stdout, stderr } = spawnSync(file, ["-v"], { encoding: "utf8" });
  return /^wrk (\S+)/m.exec(`${stdout}${stderr}`)?.[1] ?? "unknown";
}

/** What the Lua `done()` hook prints, after this marker. */
const MARKER = "BENCH_WRK_RESULT ";

/** The script: method, headers and body of every request; the summary as JSON at the end. */
function luaScript(body: string): string {
  // A long bracket string holds any JSON as is; pick a level the body does not close.
  let level = "=";
  while (body.includes(`]${level}]`)) level += "=";
  return `-- Written by the bench (apps/demo/bench/wrk.ts) for one run of wrk.
wrk.method = "POST"
wrk.body = [${level}[${body}]${level}]
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  local quantiles = {}
  for i = 1, 1000 do quantiles[i] = latency:percentile(i / 10) end
  io.write(string.format(
    '\\n${MARKER}{"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"quantilesUs":[%s]}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, table.concat(quantiles, ",")))
end
`;
}

interface WrkSummary {
  requests: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  /** Answers with a status of 400 or more (wrk counts those, not other non-2xx). */
  status: number;
  timeout: number;
  /** Latency at 0.1%, 0.2%, … 100% of the requests, in µs. */
  quantilesUs: number[];
}

/** wrk's settings for a target: `threads` event loops holding `target.clients` connections between them. */
export class WrkLoad {
  readonly #dir = mkdtempSync(path.join(os.tmpdir(), "acp-bench-wrk-"));
  readonly #script = path.join(this.#dir, "post.lua");

  constructor(
    readonly file: string,
    readonly target: LoadTarget,
    readonly threads: number,
  ) {
    writeFileSync(this.#script, luaScript(target.body));
  }

  /**
   * One run of wrk for `seconds` (whole seconds: wrk's unit). `onWindow` is called right before
   * wrk starts and right after it exits, so what it measures (server CPU) covers the requests.
   */
  async run(seconds: number, onWindow?: (edge: "start" | "end") => void, report?: SliceReport): Promise<LoadWindow> {
    const { url, path: urlPath, clients } = this.target;
    const args = [
      `-t${Math.min(this.threads, clients)}`,
      `-c${clients}`,
      `-d${Math.max(1, Math.round(seconds))}s`,
      "--timeout",
      "5s",
      "-s",
      this.#script,
      `${url}${urlPath}`,
    ];
    const started = performance.now();
    const ticker = report && setInterval(() => report("measuring", performance.now() - started), 500);
    onWindow?.("start");
    const child = spawn(this.file, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (exitCode) => resolve(exitCode));
    }).finally(() => clearInterval(ticker));
    onWindow?.("end");
    const line = output.split("\n").find((text) => text.startsWith(MARKER));
    if (code !== 0 || line === undefined)
      throw new Error(`wrk ${args.join(" ")} exited with ${code} without its summary:\n${output.slice(-2000)}`);
    const summary = JSON.parse(line.slice(MARKER.length)) as WrkSummary;
    const socketErrors = summary.connect + summary.read + summary.write + summary.timeout;
    const errors = socketErrors + summary.status;
    const ok = summary.requests - summary.status;
    const details = [
      summary.status > 0 ? `${summary.status} answers with status ≥ 400` : "",
      socketErrors > 0
        ? `socket errors: connect ${summary.connect}, read ${summary.read}, write ${summary.write}, timeout ${summary.timeout}`
        : "",
    ].filter(Boolean);
    return {
      requests: ok,
      // Each quantile stands for a thousandth of the requests wrk timed.
      latencies: summary.quantilesUs.map((us) => us / 1000),
      latencyWeight: summary.requests / 1000,
      completed: ok,
      errors,
      seconds: summary.durationUs / 1e6,
      ...(details.length > 0 ? { firstError: `wrk: ${details.join("; ")}` } : {}),
    };
  }

  async close(): Promise<void> {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
