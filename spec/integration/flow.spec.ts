/**
 * Flow control, part 2: bounds, loss accounting, backpressure and flush timeouts across real
 * process boundaries. Every primary here is a forked flow peer (spec/fixtures/flow-peer.ts)
 * that forks its own cluster workers; a "stopped" process is SIGSTOPped for real.
 *
 * Publishers publish in ONE synchronous loop; nothing waits a fixed time: every wait is for an
 * event or a condition, with a generous timeout.
 *
 * Messages here carry `padBytes` of padding where a case must go past the 64 MiB bound of an
 * IPC link (its pipe's queue is bounded in bytes): 1,000 bytes make ~1 KiB on the wire.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import type { Burst, Track } from "../fixtures/flow-protocol.js";
import { forkFlow, signal, type FlowPeer, type FlowProcess } from "./flow-support.js";
import { Cleanup, testScope, TIMEOUT } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Long enough for what a case moves to arrive on a loaded 2-core machine. */
const DELIVERY = 120_000;
const PAD = 1000;

async function start(name: string, execArgv: string[] = []): Promise<FlowProcess> {
  const forked = await forkFlow(name, { execArgv });
  cleanup.add(() => forked.stop());
  return forked;
}

/** A primary with its relay at default bounds, and its cluster workers. */
async function cluster(...names: string[]): Promise<{ primary: FlowPeer; workers: { peer: FlowPeer; pid: number }[]; primaryPid: number }> {
  const { peer: primary, pid: primaryPid } = await start("primary");
  await primary.call("relay", {});
  const workers = [];
  for (const name of names) {
    const worker = await primary.fork(name);
    // Whatever a case does, a stopped worker is resumed before its primary is killed.
    cleanup.add(() => signal(worker.pid, "SIGCONT"));
    workers.push(worker);
  }
  return { primary, workers, primaryPid };
}

/** What a subscriber shows when it got the first `count` messages of `from`, each once and in order. */
function head(from: string, count: number): Record<string, Track> {
  return { [from]: { count, last: count - 1, gaps: 0, backwards: 0 } };
}

function total(tracked: Record<string, Track>): number {
  return Object.values(tracked).reduce((sum, { count }) => sum + count, 0);
}

/** Subscribes `peer` under key "got" and flushes: its interest has reached the whole host. */
async function subscribe(peer: FlowPeer, scope: string, spinMicros?: number): Promise<void> {
  await peer.call("track", { key: "got", scope, topic: "t", ...(spinMicros === undefined ? {} : { spinMicros }) });
  expect((await peer.call("flush", { scope })).ok).toBe(true);
}

describe("loss at the default bounds is counted exactly where it happens, and warned once per episode", () => {
  // Without bounds in bytes, a stopped worker grows its primary without limit; without the
  // counting, router.stats() and relay.stats() say 0 while messages vanish; without the
  // episode logic, a warning per drop floods, or one warning ever hides a second stall.
  it("primary → a stopped worker: published = delivered + dropped, in the router's and relay's stats, one warning per episode", async () => {
    const scope = testScope();
    const { primary, workers } = await cluster("w");
    const [{ peer: worker, pid }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(worker, scope);
    const N = 100_000;
    let delivered = 0;
    let droppedSoFar = 0;
    for (const [episode, from] of [[1, "first"], [2, "second"]] as const) {
      signal(pid, "SIGSTOP");
      const burst = await primary.call("publish", { scope, topic: "t", from, count: N, padBytes: PAD });
      const dropped = burst.router.dropped.queueFull - droppedSoFar;
      droppedSoFar = burst.router.dropped.queueFull;
      // 100k of ~1 KiB is more than the 64 MiB the primary may hold for the worker.
      expect(dropped).toBeGreaterThan(0);
      expect(dropped).toBeLessThan(N);
      expect(burst.falses).toBeGreaterThanOrEqual(dropped);
      expect((await primary.call("stats", {})).dropped.queueFull).toBe(droppedSoFar);
      const warned = await primary.call("warnings", { code: "ERR_ROAR_SLOW_CONSUMER" });
      expect(warned).toHaveLength(episode);
      expect(warned[episode - 1]).toContain(`the child process (pid ${pid})`);
      signal(pid, "SIGCONT");
      // The head of the burst arrives whole and in order; the tail was dropped, and counted.
      delivered = N - dropped;
      expect((await worker.call("waitTracked", { key: "got", total: delivered + (episode === 2 ? N - (droppedSoFar - dropped) : 0), timeout: DELIVERY }, DELIVERY + TIMEOUT))[from]).toEqual(head(from, delivered)[from]);
      // Nothing more arrives after a flush that went through the worker.
      expect((await primary.call("flush", { scope })).ok).toBe(true);
      expect((await worker.call("tracked", { key: "got" }))[from]?.count).toBe(delivered);
    }
  });

  // Without drop reports, the primary's relay.stats() shows none of a worker's losses.
  it("a worker → its stopped primary: the drops are in the worker's router and relay stats, and in the primary's after the worker's flush", async () => {
    const scope = testScope();
    const { primary, workers, primaryPid } = await cluster("w");
    const [{ peer: worker }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(primary, scope);
    await worker.call("relay", {});
    expect((await worker.call("flush", { scope })).ok).toBe(true);
    const N = 100_000;
    // The worker waits until its parent is stopped, publishes, then resumes it.
    await worker.call("start", { key: "burst", op: "publish", args: { scope, topic: "t", from: "w", count: N, padBytes: PAD, whileParentStopped: true } });
    signal(primaryPid, "SIGSTOP");
    const burst = (await worker.call("result", { key: "burst", timeout: DELIVERY })) as Burst;
    const dropped = burst.router.dropped.queueFull;
    expect(dropped).toBeGreaterThan(0);
    expect((await worker.call("stats", {})).dropped.queueFull).toBe(dropped);
    expect(await worker.call("warnings", { code: "ERR_ROAR_SLOW_CONSUMER" })).toEqual([expect.stringContaining(`the parent process (pid ${primaryPid})`)]);
    expect((await worker.call("flush", { scope, timeout: DELIVERY })).ok).toBe(true);
    expect(await primary.call("tracked", { key: "got" })).toEqual(head("w", N - dropped));
    expect((await primary.call("stats", {})).dropped.queueFull).toBe(dropped);
  });

  // The slow-primary case (shared/repro/slow-consumer.mjs MODE=slow-primary): a 20 µs handler
  // in the primary while a worker floods 200k in one loop. Before flow control, the healthy
  // worker got 78,536 and the loss was counted only in the publisher's own relay.
  it("a slow handler in the primary costs a healthy worker nothing, and whatever is missing is counted exactly", async () => {
    const scope = testScope();
    const { primary, workers } = await cluster("pub", "healthy");
    const [{ peer: publisher }, { peer: healthy }] = workers as [{ peer: FlowPeer; pid: number }, { peer: FlowPeer; pid: number }];
    await subscribe(primary, scope, 20);
    await subscribe(healthy, scope);
    await publisher.call("relay", {});
    expect((await publisher.call("flush", { scope })).ok).toBe(true);
    const N = 200_000;
    const burst = await publisher.call("publish", { scope, topic: "t", from: "pub", count: N });
    // The flush travels behind the burst: when it resolves, the primary and the healthy
    // worker have taken in all that reached them (the primary spends 4 s in its handler).
    expect((await publisher.call("flush", { scope, timeout: DELIVERY })).ok).toBe(true);
    const atPublisher = burst.router.dropped.queueFull;
    const atRoot = (await primary.call("stats", {})).dropped.queueFull;
    const got = total(await healthy.call("tracked", { key: "got" }));
    expect(total(await primary.call("tracked", { key: "got" }))).toBe(N - atPublisher);
    // Every message the healthy worker misses is counted once, at the publisher or the root
    // (which includes the publisher's report).
    expect(got + atRoot).toBe(N);
    expect((await publisher.call("stats", {})).dropped.queueFull).toBe(atPublisher);
    // 200k small messages fit every bound: nothing at all is lost.
    expect(await healthy.call("tracked", { key: "got" })).toEqual(head("pub", N));
  });
});

describe("backpressure", () => {
  // Without publish() returning false and drained(), a producer cannot tell it is outrunning
  // its consumer: 1M of ~120 bytes (more than the 64 MiB bound) would be dropped past it.
  it("`if (!publish()) await drained()` delivers 1M to a slow but live worker with no loss", async () => {
    const scope = testScope();
    const { primary, workers } = await cluster("slow");
    const [{ peer: slow }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(slow, scope, 3);
    const N = 1_000_000;
    const burst = await primary.call("publish", { scope, topic: "t", from: "p", count: N, padBytes: 80, mode: "drained" }, DELIVERY + TIMEOUT);
    expect(burst.published).toBe(N);
    expect(burst.router.dropped.queueFull).toBe(0);
    expect(burst.waits).toBeGreaterThan(0);
    expect(await slow.call("waitTracked", { key: "got", total: N, timeout: DELIVERY }, DELIVERY + TIMEOUT)).toEqual(head("p", N));
    expect((await primary.call("stats", {})).dropped.queueFull).toBe(0);
    console.log(`drained loop → slow worker: ${N} in ${Math.round(burst.elapsedMs)} ms, ${burst.waits} waits, longest ${Math.round(burst.longestWaitMs)} ms`);
  });

  // KNOWN BUG (reported): against a stopped consumer, drained() resolves after the 1 s stuck
  // timeout, but publish() keeps returning false while the link is watched, and each drained()
  // judges progress afresh: the loop publishes ONE message per second from half the bound on
  // (8 s: 31,976 of 200,000 published, 8 waits of 1,000 ms, nothing dropped yet). It must
  // reach the bound and drop (counted) instead. Remove `.failing` once fixed.
  it("the same loop against a stopped worker never stalls: it reaches the bound, and the rest is dropped and counted", async () => {
    const scope = testScope();
    const { primary, workers } = await cluster("stopped");
    const [{ peer: stopped, pid }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(stopped, scope);
    signal(pid, "SIGSTOP");
    const N = 200_000;
    const burst = await primary.call("publish", { scope, topic: "t", from: "p", count: N, padBytes: PAD, mode: "drained", budgetMs: 15_000 });
    expect(burst.published).toBe(N);
    const dropped = burst.router.dropped.queueFull;
    expect(dropped).toBeGreaterThan(0);
    signal(pid, "SIGCONT");
    expect(await stopped.call("waitTracked", { key: "got", total: N - dropped, timeout: DELIVERY }, DELIVERY + TIMEOUT)).toEqual(head("p", N - dropped));
  });

  // Without whenFull: "throw", a full link drops silently for that link; with it, the publish
  // is refused whole: not even the local subscriber sees it, and nothing accepted is lost.
  it('whenFull: "throw" refuses a publish towards a stopped worker, locally too, and loses nothing it accepted', async () => {
    const scope = testScope();
    const { primary, workers } = await cluster("stopped");
    const [{ peer: stopped, pid }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(stopped, scope);
    await primary.call("track", { key: "got", scope, topic: "t" });
    signal(pid, "SIGSTOP");
    const N = 200_000;
    const burst = await primary.call("publish", { scope, topic: "t", from: "p", count: N, padBytes: PAD, whenFull: "throw" });
    expect(burst.error?.code).toBe("ERR_ROAR_QUEUE_FULL");
    expect(burst.error?.message).toContain(`the child process (pid ${pid})`);
    const accepted = burst.published;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(N);
    expect(burst.router).toMatchObject({ published: accepted, dropped: { queueFull: 0 } });
    // The refused message reached nobody, not even this thread.
    expect(await primary.call("tracked", { key: "got" })).toEqual(head("p", accepted));
    signal(pid, "SIGCONT");
    expect(await stopped.call("waitTracked", { key: "got", total: accepted, timeout: DELIVERY }, DELIVERY + TIMEOUT)).toEqual(head("p", accepted));
    expect((await primary.call("flush", { scope })).ok).toBe(true);
    expect(await stopped.call("tracked", { key: "got" })).toEqual(head("p", accepted));
    expect((await primary.call("stats", {})).dropped.queueFull).toBe(0);
  });
});

describe("flush never hangs", () => {
  // Without the sync round's timeout, one stopped worker held every other worker's flush for
  // ever (shared/repro/flush-stall.mjs).
  it("a stopped worker makes another worker's flush reject ERR_ROAR_TIMEOUT naming it within 5–10 s; after SIGCONT flushes resolve", async () => {
    const scope = testScope();
    const { workers } = await cluster("stopped", "other");
    const [{ peer: stopped, pid }, { peer: other }] = workers as [{ peer: FlowPeer; pid: number }, { peer: FlowPeer; pid: number }];
    await subscribe(stopped, scope);
    await subscribe(other, scope);
    signal(pid, "SIGSTOP");
    const outcome = await other.call("flush", { scope, timeout: 60_000 });
    expect(outcome).toMatchObject({ ok: false, code: "ERR_ROAR_TIMEOUT" });
    expect(outcome.message).toContain(`the child process (pid ${pid})`);
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(4900);
    expect(outcome.elapsedMs).toBeLessThan(15_000);
    signal(pid, "SIGCONT");
    expect((await other.call("flush", { scope })).ok).toBe(true);
    expect((await stopped.call("flush", { scope })).ok).toBe(true);
  });

  it("a stopped primary: a worker's flush({ timeout: 2000 }) rejects naming the parent", async () => {
    const scope = testScope();
    const { workers, primaryPid } = await cluster("w");
    const [{ peer: worker }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(worker, scope);
    await worker.call("start", { key: "flush", op: "flush", args: { scope, timeout: 2000, whileParentStopped: true } });
    signal(primaryPid, "SIGSTOP");
    const outcome = (await worker.call("result", { key: "flush", timeout: DELIVERY })) as { ok: boolean; code?: string; message?: string; elapsedMs: number };
    expect(outcome).toMatchObject({ ok: false, code: "ERR_ROAR_TIMEOUT" });
    expect(outcome.message).toContain(`the parent process (pid ${primaryPid})`);
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(1900);
    expect(outcome.elapsedMs).toBeLessThan(10_000);
    // The worker resumed its parent: flushes resolve again.
    expect((await worker.call("flush", { scope })).ok).toBe(true);
  });
});

describe("a cluster worker whose primary never loads roar", () => {
  // Without it, the worker waited in flush() for ever, silently, and sent every publish over
  // IPC to a primary that drops it (shared/repro/joining-forever.mjs).
  it("warns ERR_ROAR_NO_RELAY within a few seconds, flushes locally, and sends nothing over IPC for a topic only it subscribes to", async () => {
    const scope = testScope();
    const bare = await forkFlow("bare", { file: "bare-primary.js" });
    cleanup.add(() => bare.stop());
    const worker = bare.peer.child("worker");
    const started = Date.now();
    await worker.call("relay", {});
    const [warning] = await worker.call("waitWarnings", { code: "ERR_ROAR_NO_RELAY", count: 1, timeout: TIMEOUT });
    const warnedAfter = Date.now() - started;
    expect(warning).toContain("primary did not answer");
    expect(warnedAfter).toBeLessThan(10_000);
    await worker.call("track", { key: "got", scope, topic: "mine" });
    const flushed = await worker.call("flush", { scope });
    expect(flushed.ok).toBe(true);
    expect(flushed.elapsedMs).toBeLessThan(1000);
    const before = (await worker.call("stats", {})).sent;
    const N = 100_000;
    await worker.call("publish", { scope, topic: "mine", from: "w", count: N });
    expect(await worker.call("tracked", { key: "got" })).toEqual(head("w", N));
    expect((await worker.call("stats", {})).sent).toBe(before);
    console.log(`primary without roar: ERR_ROAR_NO_RELAY ${warnedAfter} ms after the worker's relay started`);
  });
});

describe("startRelay options in a cluster worker", () => {
  // Without it, the worker's link to its primary kept the default bounds made with it.
  it("maxQueueBytes given after the link to the primary exists bounds what the worker holds for its stopped primary", async () => {
    const scope = testScope();
    const { primary, workers, primaryPid } = await cluster("w");
    const [{ peer: worker }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(primary, scope);
    await worker.call("relay", {});
    expect((await worker.call("flush", { scope })).ok).toBe(true);
    await worker.call("relay", { maxQueueBytes: 2 ** 20 });
    // 20k of ~1 KiB: 20 MiB, a third of the default bound, twenty times this one.
    const N = 20_000;
    await worker.call("start", { key: "burst", op: "publish", args: { scope, topic: "t", from: "w", count: N, padBytes: PAD, whileParentStopped: true } });
    signal(primaryPid, "SIGSTOP");
    const burst = (await worker.call("result", { key: "burst", timeout: DELIVERY })) as Burst;
    const dropped = burst.router.dropped.queueFull;
    // At most the 1 MiB bound and what the kernel's socket buffer took (well under 8 MiB) got through.
    expect(N - dropped).toBeLessThan(9 * 1024);
    expect(await worker.call("warnings", { code: "ERR_ROAR_SLOW_CONSUMER" })).toEqual([expect.stringContaining("maxQueueBytes 1048576")]);
    expect((await worker.call("flush", { scope, timeout: DELIVERY })).ok).toBe(true);
    expect(await primary.call("tracked", { key: "got" })).toEqual(head("w", N - dropped));
    expect((await primary.call("stats", {})).dropped.queueFull).toBe(dropped);
  });

  // KNOWN BUG (reported): an IPC link counts messages only in its outbox, which holds up to a
  // batch (512) during a synchronous loop; with maxQueue below that, a burst to a HEALTHY
  // primary is dropped past the bound (10,000 published: 229 delivered, 9,771 dropped, and a
  // slow-consumer warning naming the healthy parent). Remove `.failing` once fixed.
  it("maxQueue below a batch does not drop a burst to a healthy primary", async () => {
    const scope = testScope();
    const { primary, workers } = await cluster("w");
    const [{ peer: worker }] = workers as [{ peer: FlowPeer; pid: number }];
    await subscribe(primary, scope);
    await worker.call("relay", { maxQueue: 100 });
    expect((await worker.call("flush", { scope })).ok).toBe(true);
    const burst = await worker.call("publish", { scope, topic: "t", from: "w", count: 10_000 });
    expect(burst.router.dropped.queueFull).toBe(0);
  });
});
