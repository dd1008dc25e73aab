/**
 * tinypool: a real pool (spec/fixtures/tinypool-task.ts) run by a host process forked from the
 * spec, whose main thread is an ordinary Node main thread (a jest test's sandboxed `process`
 * cannot hear threads join: see threads.spec.ts).
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import type { BusyResult, ChildProcessResult, ExchangeResult } from "../fixtures/tinypool-task.js";
import { bySender, Cleanup, everyMessageOnce, forkPeer, range, testScope, TIMEOUT, type Peer } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** A host process with a pool of `runtime`; the pool is destroyed before the host is stopped. */
async function startPool(runtime: "worker_threads" | "child_process", { relay = true, threads = 2 } = {}): Promise<Peer> {
  const host = await forkPeer("host");
  cleanup.add(() => host.stop());
  if (relay) await host.peer.call("startRelay", {});
  await host.peer.call("poolStart", { runtime, maxThreads: threads, minThreads: threads });
  cleanup.add(() => host.peer.call("poolDestroy", {}));
  return host.peer;
}

describe("tinypool", () => {
  it("lets tasks that subscribe, flush and publish reach the main thread and each other, once and in order", async () => {
    const scope = testScope();
    const N = 100;
    const host = await startPool("worker_threads");
    await host.call("subscribe", { key: "t", scope, topic: "t", capacity: 10_000 });
    await host.call("flush", { scope });
    await host.call("sabCreate", { key: "ready", length: 1 });

    // Two tasks run at once; each subscribes and flushes, then all three parties wait until
    // everyone has (counted in shared memory) before publishing.
    const names = ["main", "task1", "task2"];
    for (const name of ["task1", "task2"]) {
      await host.call("poolRun", {
        key: name,
        task: { kind: "exchange", scope, name, peers: names, count: N, sabKey: "ready", parties: 3, timeout: TIMEOUT },
      });
    }
    await host.call("sabAdd", { key: "ready", index: 0, delta: 1 });
    await host.call("sabWait", { key: "ready", index: 0, atLeast: 3, timeout: TIMEOUT });
    await host.call("publish", { scope, topic: "t", from: "main", count: N, end: true });

    expect(bySender(await host.call("untilEnds", { key: "t", ends: names, timeout: TIMEOUT }))).toEqual(everyMessageOnce(names, N));
    for (const name of ["task1", "task2"]) {
      const result = (await host.call("poolWait", { key: name, timeout: TIMEOUT })) as ExchangeResult;
      expect(bySender(result.got)).toEqual(everyMessageOnce(names, N));
    }
  });

  it("delivers what a task that only publishes sends to the main thread's subscriber", async () => {
    // The commonest task: publish progress or a result and return. Its thread may be new to roar.
    const scope = testScope();
    const N = 10;
    const host = await startPool("worker_threads", { threads: 1 });
    await host.call("subscribe", { key: "t", scope, topic: "t" });
    await host.call("flush", { scope });
    const names = ["task1", "task2"];
    for (const name of names) {
      expect(await host.call("poolRun", { task: { kind: "publish", scope, topic: "t", name, count: N } })).toEqual({ published: N });
    }
    expect(bySender(await host.call("untilEnds", { key: "t", ends: names, timeout: 5_000 }))).toEqual(everyMessageOnce(names, N));
  });

  it("lets a long synchronous task see messages with receive() while it runs", async () => {
    const scope = testScope();
    const N = 50;
    const host = await startPool("worker_threads", { threads: 1 });
    await host.call("sabCreate", { key: "signal", length: 1 });
    await host.call("poolRun", { key: "busy", task: { kind: "busy", scope, topic: "busy", count: N, deadlineMs: 15_000, sabKey: "signal" } });
    // The task has subscribed and flushed, and is now in its loop: its event loop gets no turn.
    await host.call("sabWait", { key: "signal", index: 0, atLeast: 1, timeout: TIMEOUT });
    await host.call("publish", { scope, topic: "busy", from: "main", count: N });

    const result = (await host.call("poolWait", { key: "busy", timeout: TIMEOUT })) as BusyResult;
    expect(result.eventLoopTurned).toBe(false);
    expect(bySender(result.got)).toEqual({ main: range(N) });
    expect(result.elapsedMs).toBeLessThan(15_000);
  });

  it("does not hang a task in tinypool's child_process runtime: it warns ERR_ROAR_UNSUPPORTED, works locally, and its flush resolves", async () => {
    const scope = testScope();
    const host = await startPool("child_process", { threads: 1 });
    const result = (await host.call("poolRun", { task: { kind: "child-process", scope, topic: "t" } }, TIMEOUT)) as ChildProcessResult;
    expect(result.flushError).toBeUndefined();
    expect(result.flushed).toBe(true);
    expect(result.warnings.filter((warning) => warning.code?.startsWith("ERR_ROAR_"))).toEqual([
      expect.objectContaining({ name: "RoarWarning", code: "ERR_ROAR_UNSUPPORTED" }),
    ]);
    expect(result.ownMessage).toBe("local");
  });
});
