/**
 * The EventWriter over an in-process memory store behind a guard and a switchboard: group commit
 * in order, batches, hand-over to a transition, a run that ended, and store outages, including an
 * append that timed out but landed, which must not be written twice.
 */
import { describe, expect, it } from "vitest";
import { controlledStore } from "../../test/support/controlled-store.ts";
import type { Event } from "../models.ts";
import { StoreError } from "../store.ts";
import { label, labelOf, newRun, runEvent, withStatus } from "../testing/index.ts";
import { EventWriter, RunGoneError } from "./event-writer.ts";
import { guardStore } from "./guarded-store.ts";

/** A running run with its two opening events, and a writer over a guarded, controlled store. */
async function setUp(options: { timeoutMs?: number; outageMs?: number; maxBatch?: number } = {}) {
  const { timeoutMs = 1_000, outageMs = 2_000, maxBatch } = options;
  const { store, control } = controlledStore();
  const record = newRun("in-progress");
  const runId = record.run.run_id;
  expect(await store.createRun(record, [runEvent(withStatus(record, "created")), runEvent(record)])).toBe(true);
  const writer = new EventWriter(guardStore(store, timeoutMs), runId, 2, outageMs, maxBatch);
  // Calls made while setting up do not count.
  control.calls = {};
  return {
    control,
    writer,
    record,
    /** The labels of the log after its two opening events. */
    labels: async () => (await control.inner.readEvents(runId, 2)).map((stored) => labelOf(stored.event)),
  };
}

const labels = (...values: (string | number)[]): Event[] => values.map((value) => label(value));
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("EventWriter", () => {
  it("appends the events pushed together in one call, in order, and knows the log's new length", async () => {
    const { control, writer, labels: written } = await setUp();
    for (const event of labels(1, 2, 3, 4, 5)) writer.push(event);
    await writer.flush();
    expect(control.calls.appendEvents).toBe(1);
    expect(await written()).toEqual([1, 2, 3, 4, 5]);
    expect(writer.lastSeq).toBe(7);
  });

  it("queues what comes while an append is in flight and sends it in the next one", async () => {
    const { control, writer, labels: written } = await setUp();
    control.held.add("appendEvents");
    writer.push(label("a"));
    await Promise.resolve();
    expect(writer.busy).toBe(true);
    for (const event of labels("b", "c", "d")) writer.push(event);
    expect(writer.backlog).toBe(3);
    control.release();
    await writer.flush();
    expect(control.calls.appendEvents).toBe(2);
    expect(await written()).toEqual(["a", "b", "c", "d"]);
  });

  it("splits a backlog into batches of maxBatch", async () => {
    const { control, writer, labels: written } = await setUp({ maxBatch: 4 });
    for (let i = 0; i < 10; i++) writer.push(label(i));
    await writer.flush();
    expect(control.calls.appendEvents).toBe(3);
    expect(await written()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("with untilTurnEnds, gathers what one event-loop turn pushes into one call", async () => {
    for (const untilTurnEnds of [false, true]) {
      const { control, writer } = await setUp();
      writer.untilTurnEnds = untilTurnEnds;
      writer.push(label(1));
      await Promise.resolve();
      writer.push(label(2));
      await nextTurn();
      await writer.flush();
      expect(control.calls.appendEvents).toBe(untilTurnEnds ? 1 : 2);
    }
  });

  it("hands queued events to a transition, and takes back what it gives back, in front", async () => {
    const { control, writer, labels: written } = await setUp();
    for (const event of labels(1, 2)) writer.push(event);
    const taken = writer.takeBuffered();
    expect(taken.map(labelOf)).toEqual([1, 2]);
    await nextTurn();
    expect(control.calls.appendEvents ?? 0).toBe(0);
    writer.giveBack(taken);
    writer.push(label(3));
    await writer.flush();
    expect(await written()).toEqual([1, 2, 3]);
  });

  it("hands nothing over while an append is in flight", async () => {
    const { control, writer } = await setUp();
    control.held.add("appendEvents");
    writer.push(label(1));
    await Promise.resolve();
    writer.push(label(2));
    expect(writer.takeBuffered()).toEqual([]);
    control.release();
    await writer.flush();
  });

  it("drain resolves once the append in flight has landed", async () => {
    const { control, writer, labels: written } = await setUp();
    control.held.add("appendEvents");
    writer.push(label(1));
    await Promise.resolve();
    let drained = false;
    const draining = writer.drain().then(() => {
      drained = true;
    });
    await nextTurn();
    expect(drained).toBe(false);
    control.release();
    await draining;
    expect(writer.busy).toBe(false);
    expect(await written()).toEqual([1]);
  });

  it("fails with RunGoneError once the run has ended elsewhere, and refuses further events", async () => {
    const { control, writer, record } = await setUp();
    const ended = withStatus({ ...record, version: 1 }, "failed");
    expect((await control.inner.updateRun(record.run.run_id, 1, ended, [runEvent(ended)])).ok).toBe(true);
    writer.push(label(1));
    await expect(writer.flush()).rejects.toBeInstanceOf(RunGoneError);
    await expect(writer.drain()).rejects.toBeInstanceOf(RunGoneError);
    expect(() => writer.push(label(2))).toThrow(RunGoneError);
    expect(() => writer.throwIfFailed()).toThrow(RunGoneError);
  });

  it("retries through a short outage and writes each event once", async () => {
    const { control, writer, labels: written } = await setUp();
    control.failing = new Set(["appendEvents"]);
    for (const event of labels(1, 2)) writer.push(event);
    setTimeout(() => {
      control.failing = new Set();
    }, 150);
    await writer.flush();
    expect(control.calls.appendEvents).toBeGreaterThan(1);
    expect(await written()).toEqual([1, 2]);
    expect(writer.lastSeq).toBe(4);
  });

  it("does not write again an append that timed out but landed", async () => {
    const { control, writer, labels: written } = await setUp({ timeoutMs: 40 });
    control.delayMs.appendEvents = 150;
    for (const event of labels(1, 2, 3)) writer.push(event);
    await writer.flush();
    // One call: the retry found the batch in the log's tail once the late call had landed.
    expect(control.calls.appendEvents).toBe(1);
    expect(await written()).toEqual([1, 2, 3]);
    expect(writer.lastSeq).toBe(5);
    delete control.delayMs.appendEvents;
    writer.push(label(4));
    await writer.flush();
    expect(await written()).toEqual([1, 2, 3, 4]);
  });

  it("writes again an append that timed out and never landed", async () => {
    const { control, writer, labels: written } = await setUp({ timeoutMs: 40 });
    control.held.add("appendEvents");
    writer.push(label(1));
    // Held past its timeout, then refused by the backend: it did not land.
    setTimeout(() => {
      control.failing = new Set(["appendEvents"]);
      control.release();
      setTimeout(() => {
        control.failing = new Set();
      }, 100);
    }, 80);
    await writer.flush();
    expect(await written()).toEqual([1]);
    expect(control.calls.appendEvents).toBeGreaterThan(1);
  });

  it("gives up after outageMs and fails with the store's error", async () => {
    const { control, writer } = await setUp({ outageMs: 250 });
    control.failing = new Set(["appendEvents"]);
    writer.push(label(1));
    const started = Date.now();
    await expect(writer.flush()).rejects.toBeInstanceOf(StoreError);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(control.calls.appendEvents).toBeGreaterThan(1);
    expect(() => writer.push(label(2))).toThrow(StoreError);
  });
});
