/**
 * Where a server's CPU time went, from a `node --cpu-prof` profile: self time by area (our
 * packages, each dependency, Node internals, garbage collection) and by function.
 * Usage: `node --import tsx bench/profile-summary.ts <file.cpuprofile>…`
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Node's profile files are named CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the main one. */
export function isMainThreadProfile(file: string): boolean {
  return /\.\d+\.0\.\d+\.cpuprofile$/.test(file);
}

/** The package or part of Node a script belongs to. */
function areaOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  // Apart from the rest of Node: the hooks that context tracking (AsyncLocalStorage) runs on every promise.
  if (url === "node:async_hooks" || url === "node:internal/async_hooks") return "node async_hooks";
  if (url.startsWith("node:")) return "node internals";
  const workspace = /\/(packages|apps)\/([^/]+)\//.exec(url);
  if (workspace && !url.includes("/node_modules/")) return `@acp/${workspace[2]}`;
  const dependency =
    /\/node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url) ??
    /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  return dependency ? dependency[1]! : url;
}

/** Code of a package, ours or a dependency: not Node's, not the module loader's, not a pseudo-frame. */
function isPackageCode(url: string, functionName: string): boolean {
  const area = areaOf(url, functionName);
  // Module top levels (evaluated once, at start-up) would bury the steady state.
  return (
    !area.startsWith("(") && !area.startsWith("node ") && area !== "tsx" && area !== "esbuild" && functionName !== ""
  );
}

function shortUrl(url: string): string {
  return url
    .replace(/^file:\/\//, "")
    .replace(/^.*\/node_modules\/\.pnpm\/[^/]+\/node_modules\//, "")
    .replace(/^.*\/(packages|apps)\//, "$1/");
}

function functionKey({ functionName, url, lineNumber, columnNumber }: ProfileNode["callFrame"]): string {
  return `${functionName || "(anonymous)"} ${url ? `${shortUrl(url)}:${lineNumber + 1}:${columnNumber + 1}` : ""}`.trim();
}

/** Microseconds of CPU, sorted from most to least. */
export type Ranked = [name: string, micros: number][];

export interface ProfileSummary {
  busyUs: number;
  idleUs: number;
  /** Self time by area, all of them: our packages, each dependency, Node internals, GC, … */
  areas: Ranked;
  /** Self time by function. */
  functions: Ranked;
  /** Total time (self and callees) of package functions, ours and dependencies'. */
  inclusive: Ranked;
}

/** Where a profile's CPU time went: every area, and the top `top` entries of the other rankings. */
export function summarize(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const selfByNode = new Map<number, number>();
  for (const [index, id] of profile.samples.entries()) {
    selfByNode.set(id, (selfByNode.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
  }

  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, micros] of selfByNode) {
    const { functionName, url } = byId.get(id)!.callFrame;
    if (functionName === "(idle)") {
      idle += micros;
      continue;
    }
    busy += micros;
    const area = areaOf(url, functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + micros);
    const key = functionKey(byId.get(id)!.callFrame);
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
  }
  // Inclusive time of the functions of packages (ours and dependencies, not Node's own): each
  // sample counts once for every distinct function on its stack, so that "where does a request
  // spend its time" reads top-down, through Hono and the store clients too.
  const inclusive = new Map<string, number>();
  profile.samples.forEach((sampleId, index) => {
    const seen = new Set<string>();
    for (let id: number | undefined = sampleId; id !== undefined; id = parentOf.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (!isPackageCode(frame.url, frame.functionName)) continue;
      const key = functionKey(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + (profile.timeDeltas[index] ?? 0));
    }
  });
  const sorted = (map: Map<string, number>, limit: number): Ranked =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, limit);
  return {
    busyUs: busy,
    idleUs: idle,
    areas: sorted(byArea, byArea.size),
    functions: sorted(byFunction, top),
    inclusive: sorted(inclusive, top),
  };
}

/** The summary of a profile file, as text. */
export async function summarizeProfile(file: string, top = 25): Promise<string> {
  const summary = summarize(JSON.parse(await readFile(file, "utf8")) as CpuProfile, top);
  const share = (micros: number): string => `${((micros / summary.busyUs) * 100).toFixed(1).padStart(5)}%`;
  const lines = [
    `busy ${(summary.busyUs / 1e6).toFixed(2)} s, idle ${(summary.idleUs / 1e6).toFixed(2)} s`,
    "",
    "self time by area:",
  ];
  for (const [area, micros] of summary.areas) lines.push(`  ${share(micros)}  ${area}`);
  lines.push("", `self time by function (top ${top}):`);
  for (const [name, micros] of summary.functions) lines.push(`  ${share(micros)}  ${name}`);
  lines.push("", "total time (self and callees) of package functions:");
  for (const [name, micros] of summary.inclusive) lines.push(`  ${share(micros)}  ${name}`);
  return lines.join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const file of process.argv.slice(2).filter(isMainThreadProfile))
    console.log(`\n## ${file}\n\n${await summarizeProfile(file)}`);
}
