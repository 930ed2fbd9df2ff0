/**
 * Throughput of sync runs of the echo agent under `clients` concurrent keep-alive clients, on an
 * ACP instance over each store and on the bare-Hono ceiling. Every server runs from the start;
 * after each is warmed up, they are measured in interleaved rounds, one slice of each per round,
 * so that a change in the machine's load weighs on all of them alike and the ratios between them
 * hold.
 */
import { formatCount } from "../progress.ts";
import type { ScenarioContext } from "./context.ts";
import { type ThroughputResult, ThroughputServer, type ThroughputTarget } from "./throughput-server.ts";

export type { ThroughputResult, ThroughputTarget } from "./throughput-server.ts";

/** The servers in round `round`'s order: each round starts one further along, so no target always follows the same one. */
function rotated<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

export async function measureThroughput(context: ScenarioContext): Promise<ThroughputResult[]> {
  const { config, progress } = context;
  const targets: ThroughputTarget[] = ["ceiling", ...config.stores];
  const servers: ThroughputServer[] = [];
  try {
    for (const target of targets) {
      progress.update(`starting ${target}`);
      servers.push(await ThroughputServer.start(target, context));
    }
    for (const server of servers) {
      await server.warmUp(config.warmupSeconds * 1000, (_phase, elapsedMs) =>
        progress.update(`warm-up ${server.target} ${Math.floor(elapsedMs / 1000)}/${config.warmupSeconds} s`),
      );
    }
    const sliceMs = (config.seconds * 1000) / config.rounds;
    for (let round = 0; round < config.rounds; round++) {
      for (const server of rotated(servers, round)) {
        const label = `round ${round + 1}/${config.rounds}, ${server.target}`;
        progress.update(label);
        await server.measureSlice(sliceMs, (phase, elapsedMs, completed) =>
          progress.update(
            phase === "measuring" && completed !== undefined
              ? `${label}, ${formatCount(completed / Math.max(elapsedMs / 1000, 0.001))} req/s`
              : `${label}, ${phase} ${(elapsedMs / 1000).toFixed(0)} s`,
          ),
        );
      }
    }
    const results = servers.map((server) => server.result());
    for (const [index, result] of results.entries()) {
      if (result.errors > 0)
        console.error(
          `\n[bench] throughput ${result.target}: ${result.errors} failed requests, first: ${result.firstError}\n${servers[index]!.server.output().slice(-2000)}`,
        );
    }
    return results;
  } finally {
    await Promise.allSettled(servers.map((server) => server.stop()));
  }
}
