/**
 * Throughput of sync runs of the echo agent under `clients` concurrent keep-alive clients, on an
 * ACP instance over a store or on the bare-Hono ceiling.
 */
import { namespace, type StoreName } from "../backends.ts";
import { closedLoop, type LoadResult } from "../load.ts";
import { cpuSeconds, startServer } from "../processes.ts";
import { formatCount } from "../progress.ts";
import type { ScenarioContext } from "./context.ts";

export type ThroughputTarget = "ceiling" | StoreName;

export interface ThroughputResult extends LoadResult {
  target: ThroughputTarget;
  /** CPU time the server process used per run during the measured window, in ms. */
  serverCpuMsPerRun?: number;
  /** Cores the server process kept busy during the measured window (1 = one core all the time). */
  serverCores?: number;
}

const BODY = JSON.stringify({
  agent_name: "echo",
  input: [{ role: "user", parts: [{ content_type: "text/plain", content: "Hello from the bench" }] }],
  mode: "sync",
});

function checkCompleted(status: number, body: string): void {
  if (status !== 200 || !body.includes('"status":"completed"')) throw new Error(`expected 200 and a completed run, got ${status}: ${body.slice(0, 200)}`);
}

export async function measureThroughput(target: ThroughputTarget, { config, progress, profileDir }: ScenarioContext): Promise<ThroughputResult> {
  const space = target === "ceiling" ? undefined : namespace(target);
  const server = await startServer({
    script: target === "ceiling" ? "ceiling-server.ts" : "acp-server.ts",
    env: space?.env ?? {},
    profileDir: profileDir(`throughput-${target}`),
  });
  const cpu: { start?: number; end?: number } = {};
  try {
    const result = await closedLoop({
      url: server.url,
      path: "/runs",
      body: BODY,
      clients: config.clients,
      warmupMs: config.warmupSeconds * 1000,
      measureMs: config.seconds * 1000,
      check: checkCompleted,
      onWindow: (edge) => (cpu[edge] = cpuSeconds(server.pid)),
      onProgress: (phase, elapsedMs, completed) =>
        progress.update(
          phase === "warm-up"
            ? `warm-up ${Math.floor(elapsedMs / 1000)}/${config.warmupSeconds} s`
            : `measuring ${Math.floor(elapsedMs / 1000)}/${config.seconds} s, ${formatCount(completed / Math.max(elapsedMs / 1000, 0.001))} req/s`,
        ),
    });
    if (result.errors > 0) console.error(`\n[bench] throughput ${target}: ${result.errors} failed requests, first: ${result.firstError}\n${server.output().slice(-2000)}`);
    const used = cpu.start !== undefined && cpu.end !== undefined ? cpu.end - cpu.start : undefined;
    return {
      target,
      ...result,
      ...(used === undefined || result.requests === 0 ? {} : { serverCpuMsPerRun: (used * 1000) / result.requests, serverCores: used / result.seconds }),
    };
  } finally {
    await server.stop();
    await space?.cleanup();
  }
}
