import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NotificationSender } from "../src/notification-sender.ts";
import { assertReachable, connect, randomName } from "./database.ts";

const listener = connect({ max: 1 });
beforeAll(assertReachable);
afterAll(() => listener.end({ timeout: 5 }));

/** A postgres.js instance that counts the statements it sends. */
function countingConnection(): { sql: ReturnType<typeof connect>; statements: () => number } {
  let count = 0;
  const sql = connect({ max: 2, debug: () => count++ });
  return { sql, statements: () => count };
}

/** Collects the payloads heard on `channel` until `expected` of them arrived. */
async function hear(
  channel: string,
  expected: number,
): Promise<{ heard: string[]; all: Promise<void>; stop: () => Promise<void> }> {
  const heard: string[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const meta = await listener.listen(channel, (payload) => {
    heard.push(payload);
    if (heard.length === expected) done();
  });
  return { heard, all, stop: () => meta.unlisten() };
}

describe("NotificationSender", () => {
  it("delivers every payload of concurrent senders, in fewer statements than payloads", async () => {
    const channel = randomName("acp_test");
    const { sql, statements } = countingConnection();
    const payloads = Array.from({ length: 100 }, (_, i) => `payload-${i}`);
    const { heard, all, stop } = await hear(channel, payloads.length);
    try {
      const sender = new NotificationSender(sql, channel);
      await Promise.all(payloads.map((payload) => sender.send(payload)));
      await all;
      expect(heard.toSorted()).toEqual(payloads.toSorted());
      expect(statements()).toBeLessThan(payloads.length);
    } finally {
      await stop();
      await sql.end({ timeout: 5 });
    }
  });

  it("rejects the senders of a batch that fails, and sends the next batch", async () => {
    const channel = randomName("acp_test");
    const sql = connect({ max: 1 });
    const { heard, all, stop } = await hear(channel, 2);
    try {
      const sender = new NotificationSender(sql, channel);
      const first = sender.send("first");
      // Queued behind `first`, so both go in the second batch, which fails: PostgreSQL refuses
      // payloads of 8,000 bytes or more.
      const queued = sender.send("queued");
      const tooLong = sender.send("x".repeat(8_000));
      await expect(first).resolves.toBeUndefined();
      await expect(queued).rejects.toThrow(/payload string too long/);
      await expect(tooLong).rejects.toThrow(/payload string too long/);
      await sender.send("after");
      await all;
      expect(heard).toEqual(["first", "after"]);
    } finally {
      await stop();
      await sql.end({ timeout: 5 });
    }
  });
});
