/**
 * Runs a command to completion for tests that drive real tools (pnpm, npm, node). A failure
 * throws with the command's whole output, so the test report shows why it failed.
 */
import { spawn } from "node:child_process";

export interface RunCommandOptions {
  cwd: string;
  /** Replaces the environment of the command. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** Resolves with stdout when the command exits 0; rejects with stdout and stderr otherwise. */
export function runCommand(command: string, args: string[], options: RunCommandOptions): Promise<string> {
  const { cwd, env = process.env } = options;
  const line = [command, ...args].join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (error) =>
      reject(new Error(`\`${line}\` could not start in ${cwd}: ${error.message}`, { cause: error })),
    );
    child.on("close", (code, signal) => {
      if (code === 0) resolve(stdout);
      else
        reject(
          new Error(
            `\`${line}\` failed in ${cwd} (${signal ?? `exit ${code}`})\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
          ),
        );
    });
  });
}
