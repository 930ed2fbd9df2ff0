/**
 * A CPU profile of a bench server over a window the bench chooses (not its start-up): V8's
 * sampling profiler, started and stopped through the server's inspector session
 * (`/__bench/profile/*`, acp-server.ts), saved beside the results and summarised for the report.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { repoDir } from "./processes.ts";
import { type CpuProfile, type ProfileSummary, summarize } from "./profile-summary.ts";

/** Sampling interval of the profiles in the report, µs. */
export const PROFILE_INTERVAL_US = 200;
/** Rows of each ranking in the report. */
const TOP = 12;

async function post(url: string): Promise<Response> {
  const response = await fetch(url, { method: "POST" });
  if (!response.ok) throw new Error(`POST ${url}: status ${response.status}: ${await response.text()}`);
  return response;
}

/** Starts profiling the server at `url`. */
export async function startProfile(url: string): Promise<void> {
  await post(`${url}/__bench/profile/start?intervalUs=${PROFILE_INTERVAL_US}`);
}

/** Stops it, saves the profile as `file` (`.cpuprofile`, for Chrome DevTools) and summarises it. */
export async function stopProfile(url: string, file: string): Promise<{ file: string; summary: ProfileSummary }> {
  const profile = (await (await post(`${url}/__bench/profile/stop`)).json()) as CpuProfile;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(profile));
  return { file: path.relative(repoDir, file), summary: summarize(profile, TOP) };
}
