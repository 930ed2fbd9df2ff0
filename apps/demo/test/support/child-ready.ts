/**
 * Waiting for a server process of a test to say it is ready: resolves when `marker` appears in its
 * output; rejects, with that output, when it exits first, cannot be run, or takes longer than
 * `timeoutMs`.
 */
import type { ChildProcess } from "node:child_process";

export function untilReady(child: ChildProcess, marker: string, what: string, timeoutMs: number): Promise<void> {
  let output = "";
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} did not start within ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${what}: ${error.message}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${output}`));
    });
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes(marker)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
  });
}
