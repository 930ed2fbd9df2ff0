import { describe, expect, it } from "vitest";
import { ClientWatch } from "./client-gone.ts";

const request = (): { request: Request; leave: () => void } => {
  const client = new AbortController();
  return { request: new Request("http://localhost/runs", { signal: client.signal }), leave: () => client.abort() };
};

const until = async (check: () => boolean): Promise<void> => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe("ClientWatch", () => {
  it("calls onGone once for a client that left before or after its signal is listened to", async () => {
    const watch = new ClientWatch(10);
    const early = request();
    const late = request();
    let gone = 0;
    watch.watch(early.request, () => gone++);
    early.leave();
    await until(() => gone === 1);
    watch.watch(late.request, () => gone++);
    await new Promise((resolve) => setTimeout(resolve, 40));
    late.leave();
    await until(() => gone === 2);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(gone).toBe(2);
  });

  it("does not call onGone once stopped, whether or not its signal was listened to", async () => {
    const watch = new ClientWatch(10);
    const young = request();
    const old = request();
    let gone = 0;
    const stopOld = watch.watch(old.request, () => gone++);
    await new Promise((resolve) => setTimeout(resolve, 40));
    const stopYoung = watch.watch(young.request, () => gone++);
    stopOld();
    stopYoung();
    old.leave();
    young.leave();
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(gone).toBe(0);
  });
});
