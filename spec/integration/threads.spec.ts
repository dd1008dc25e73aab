/**
 * Worker threads: real `new Worker`s running compiled peers (spec/fixtures/peer.ts).
 *
 * The main thread of these tests is a *host* process forked from the spec, not the jest
 * process itself: jest gives each test file a sandboxed copy of `process`, so the
 * `process.on("workerMessage")` listener that roar's relay adds in a jest test never hears
 * the ports threads post with `postMessageToThread`. The host is
 * an ordinary Node main thread, as in production; the spec drives it and its threads with
 * typed commands over IPC and checks what they report.
 *
 * Threads of a process reach each other directly: the main thread introduces each new thread
 * to every thread it has, with a port of their own.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { Worker } from "node:worker_threads";
import * as roar from "../../lib/index.js";
import { makeRich, typedDump } from "../fixtures/rich.js";
import { isPeerEvent, type Command } from "../fixtures/protocol.js";
import { bySender, Cleanup, everyMessageOnce, fixture, forkPeer, once, range, testScope, TIMEOUT, type Peer } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

/** Forks a host process (an ordinary Node main thread) and, unless told not to, starts its relay. */
async function startHost({ relay = true } = {}): Promise<Peer> {
  const host = await forkPeer("host");
  cleanup.add(() => host.stop());
  if (relay) await host.peer.call("startRelay", {});
  return host.peer;
}

describe("worker threads", () => {
  it("delivers every message of every publisher once and in order to each subscriber in the main thread and 2 worker threads", async () => {
    const scope = testScope();
    const N = 200;
    const host = await startHost();
    const t1 = await host.spawnThread("t1");
    const t2 = await host.spawnThread("t2");
    const sides: [string, Peer][] = [
      ["main", host],
      ["t1", t1],
      ["t2", t2],
    ];
    for (const [, peer] of sides) {
      await peer.call("subscribe", { key: "sub", scope, topic: "t", capacity: 10_000 });
      await peer.call("on", { key: "handler", scope, topic: "t" });
      await peer.call("flush", { scope });
    }
    const names = sides.map(([name]) => name);

    // Everyone publishes at once.
    await Promise.all(sides.map(([from, peer]) => peer.call("publish", { scope, topic: "t", from, count: N, end: true })));

    for (const [, peer] of sides) {
      const got = await peer.call("untilEnds", { key: "sub", ends: names, timeout: TIMEOUT });
      expect(bySender(got)).toEqual(everyMessageOnce(names, N));
      // The handler is called in the same deliveries, so it has seen the same by now.
      expect(bySender(await peer.call("handled", { key: "handler" }))).toEqual(everyMessageOnce(names, N));
      // Nothing more is waiting: no message came twice.
      expect(await peer.call("drain", { key: "sub" })).toEqual([]);
    }
    const stats = await host.call("stats", {});
    expect(stats.threads).toBe(2);
  });

  it("delivers what a new thread publishes first, before it has joined, to a subscriber that flushed before", async () => {
    // A thread that announces itself at start-up: the main thread's subscription was flushed
    // before the thread existed, so this publish is "made anywhere on the host after" it.
    const scope = testScope();
    const host = await startHost();
    await host.call("subscribe", { key: "t", scope, topic: "t" });
    await host.call("flush", { scope });
    const fresh = await host.spawnThread("fresh");
    await fresh.call("publish", { scope, topic: "t", from: "fresh", count: 3, end: true }); // its first roar call
    expect(bySender(await host.call("untilEnds", { key: "t", ends: ["fresh"], timeout: 5_000 }))).toEqual(everyMessageOnce(["fresh"], 3));
  });

  it("sends thread-to-thread messages straight to the other thread, not through the main thread", async () => {
    const scope = testScope();
    const N = 50;
    const host = await startHost();
    const a = await host.spawnThread("a");
    const b = await host.spawnThread("b");
    await b.call("subscribe", { key: "t", scope, topic: "t" });
    await b.call("flush", { scope });
    await a.call("publish", { scope, topic: "t", from: "a", count: N, end: true });
    expect(bySender(await b.call("untilEnds", { key: "t", ends: ["a"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["a"], N));
    // The main thread neither received nor sent any of them.
    const stats = await host.call("stats", {});
    expect(stats.received).toBe(0);
    expect(stats.sent).toBe(0);
  });

  it("delivers what a new thread publishes first, before it has joined, to another thread that flushed before", async () => {
    const scope = testScope();
    const host = await startHost();
    const old = await host.spawnThread("old");
    await old.call("subscribe", { key: "t", scope, topic: "t" });
    await old.call("flush", { scope });
    const fresh = await host.spawnThread("fresh");
    await fresh.call("publish", { scope, topic: "t", from: "fresh", count: 3, end: true }); // its first roar call
    expect(bySender(await old.call("untilEnds", { key: "t", ends: ["fresh"], timeout: 5_000 }))).toEqual(everyMessageOnce(["fresh"], 3));
  });

  it("lets a thread started inside a thread join the main thread's relay by itself and exchange messages both ways", async () => {
    const scope = testScope();
    const N = 50;
    const host = await startHost();
    await host.call("subscribe", { key: "up", scope, topic: "up" });
    await host.call("flush", { scope });
    // The outer thread never uses roar: the nested one must find the main thread on its own.
    const outer = await host.spawnThread("outer");
    const nested = await outer.spawnThread("nested");
    await nested.call("subscribe", { key: "down", scope, topic: "down" });
    await nested.call("flush", { scope });
    expect((await host.call("stats", {})).threads).toBe(1);

    await host.call("publish", { scope, topic: "down", from: "main", count: N, end: true });
    await nested.call("publish", { scope, topic: "up", from: "nested", count: N, end: true });

    expect(bySender(await nested.call("untilEnds", { key: "down", ends: ["main"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["main"], N));
    expect(bySender(await host.call("untilEnds", { key: "up", ends: ["nested"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["nested"], N));
  });

  it("keeps scopes apart across threads: the same topic in another scope is another topic", async () => {
    const base = testScope();
    const [A, B] = [`${base}-A`, `${base}-B`];
    const N = 20;
    const host = await startHost();
    const t1 = await host.spawnThread("t1"); // scope A
    const t2 = await host.spawnThread("t2"); // scope B
    await host.call("subscribe", { key: "A", scope: A, topic: "t" });
    await host.call("subscribe", { key: "B", scope: B, topic: "t" });
    await t1.call("subscribe", { key: "A", scope: A, topic: "t" });
    await t2.call("subscribe", { key: "B", scope: B, topic: "t" });
    for (const peer of [host, t1, t2]) await peer.call("flush", { scope: A });

    // Each publisher sends N messages in its home scope, then an end marker in *both* scopes:
    // the marker in the other scope travels behind the home-scope messages on the same links,
    // so once a subscriber has every marker, anything that leaked across would be there too.
    const publishers: [string, Peer, string][] = [
      ["main-A", host, A],
      ["main-B", host, B],
      ["t1", t1, A],
      ["t2", t2, B],
    ];
    await Promise.all(
      publishers.map(async ([from, peer, home]) => {
        await peer.call("publish", { scope: home, topic: "t", from, count: N, end: true });
        await peer.call("publish", { scope: home === A ? B : A, topic: "t", from, count: 0, end: true });
      }),
    );

    const names = publishers.map(([name]) => name);
    const seenInA = { "main-A": [...range(N), "end"], t1: [...range(N), "end"], "main-B": ["end"], t2: ["end"] };
    const seenInB = { "main-B": [...range(N), "end"], t2: [...range(N), "end"], "main-A": ["end"], t1: ["end"] };
    expect(bySender(await host.call("untilEnds", { key: "A", ends: names, timeout: TIMEOUT }))).toEqual(seenInA);
    expect(bySender(await t1.call("untilEnds", { key: "A", ends: names, timeout: TIMEOUT }))).toEqual(seenInA);
    expect(bySender(await host.call("untilEnds", { key: "B", ends: names, timeout: TIMEOUT }))).toEqual(seenInB);
    expect(bySender(await t2.call("untilEnds", { key: "B", ends: names, timeout: TIMEOUT }))).toEqual(seenInB);
  });

  it("carries Date, Map, Set, BigInt, undefined, RegExp, -0, NaN, shared references and cycles between threads as themselves", async () => {
    const scope = testScope();
    const expected = typedDump(makeRich());
    const host = await startHost();
    const t1 = await host.spawnThread("t1");
    const t2 = await host.spawnThread("t2");
    for (const peer of [host, t1, t2]) await peer.call("subscribe", { key: "rich", scope, topic: "rich" });
    for (const peer of [host, t1, t2]) await peer.call("flush", { scope });

    // main → threads, thread → main and the other thread, each checked where it arrives
    // (the dump records instanceof and prototype checks made in the receiving thread).
    await host.call("publishRich", { scope, topic: "rich" });
    await t1.call("publishRich", { scope, topic: "rich" });
    expect(await host.call("nextDump", { key: "rich", count: 2, timeout: TIMEOUT })).toEqual([expected, expected]);
    expect(await t1.call("nextDump", { key: "rich", count: 2, timeout: TIMEOUT })).toEqual([expected, expected]);
    expect(await t2.call("nextDump", { key: "rich", count: 2, timeout: TIMEOUT })).toEqual([expected, expected]);
  });

  it("lets a thread busy in a synchronous loop see messages with receive()", async () => {
    const scope = testScope();
    const N = 50;
    const host = await startHost();
    const busy = await host.spawnThread("busy");
    await busy.call("subscribe", { key: "in", scope, topic: "in" });
    await busy.call("flush", { scope });
    await host.call("sabCreate", { key: "signal", length: 2 });

    // The thread says through shared memory that it has entered its loop; from then on its
    // event loop gets no turn until the loop ends.
    const spinning = busy.call("busyReceive", { key: "in", count: N, deadlineMs: 15_000, sabKey: "signal" });
    await host.call("sabWait", { key: "signal", index: 0, atLeast: 1, timeout: TIMEOUT });
    await host.call("publish", { scope, topic: "in", from: "main", count: N });
    const result = await spinning;

    expect(result.eventLoopTurned).toBe(false);
    expect(bySender(result.got)).toEqual({ main: range(N) });
    expect(result.elapsedMs).toBeLessThan(15_000);
  });

  it("sends what a thread busy in a synchronous loop publishes while it is still busy", async () => {
    const scope = testScope();
    const N = 20;
    const host = await startHost();
    await host.call("subscribe", { key: "acks", scope, topic: "ack" });
    await host.call("flush", { scope });
    const busy = await host.spawnThread("busy");
    await busy.call("subscribe", { key: "pings", scope, topic: "ping" });
    await busy.call("flush", { scope });
    await host.call("sabCreate", { key: "signal", length: 2 });

    // The thread answers each ping with an ack, publishing from inside its loop, and stays
    // in the loop until the main thread has every ack (sab[1] = 1) or 15 s passed.
    const spinning = busy.call("busyReceive", { key: "pings", count: N, deadlineMs: 15_000, sabKey: "signal", ackScope: scope, ackTopic: "ack" });
    await host.call("sabWait", { key: "signal", index: 0, atLeast: 1, timeout: TIMEOUT });
    await host.call("publish", { scope, topic: "ping", from: "main", count: N });
    let acks: unknown[] | Error;
    try {
      acks = await host.call("next", { key: "acks", count: N, timeout: 8_000 });
    } catch (error) {
      acks = error as Error; // says how many had arrived
    } finally {
      await host.call("sabStore", { key: "signal", index: 1, value: 1 });
    }
    const result = await spinning;

    expect(result.eventLoopTurned).toBe(false);
    expect(bySender(result.got)).toEqual({ main: range(N) });
    // Every ack reached the main thread while the publishing thread was still in its loop.
    expect(acks).toEqual(range(N).map((seq) => ({ from: "main", seq })));
    expect(result.released).toBe(true);
  });

  it("a thread that is blocked (Atomics.wait, as an idle tinypool thread) still sees, when it wakes and publishes, the interest of a thread that joined and flushed while it was blocked", async () => {
    const scope = testScope();
    const N = 20;
    const host = await startHost();
    const blocked = await host.spawnThread("blocked");
    await blocked.call("flush", { scope });
    await host.call("sabCreate", { key: "signal", length: 2 });

    // The thread blocks until sab[1] is set; from then on its event loop gets no turn until it
    // has published, so it learns of the new thread only from what it takes in as it publishes.
    const publishing = blocked.call("blockThenPublish", { sabKey: "signal", timeout: TIMEOUT, scope, topic: "t", from: "blocked", count: N, end: true });
    await host.call("sabWait", { key: "signal", index: 0, atLeast: 1, timeout: TIMEOUT });
    const fresh = await host.spawnThread("fresh");
    await fresh.call("subscribe", { key: "t", scope, topic: "t" });
    await fresh.call("flush", { scope }); // a publish made anywhere on the host afterwards reaches it

    await host.call("sabStore", { key: "signal", index: 1, value: 1 });
    const result = await publishing;
    expect(result).toEqual({ woken: "ok", eventLoopTurned: false });
    expect(bySender(await fresh.call("untilEnds", { key: "t", ends: ["blocked"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["blocked"], N));
    expect(await fresh.call("drain", { key: "t" })).toEqual([]);
  });

  it("counts, in the main thread's relay.stats(), what a thread drops for another thread that stopped reading", async () => {
    const scope = testScope();
    const host = await startHost();
    const stalled = await host.spawnThread("stalled");
    await stalled.call("on", { key: "t", scope, topic: "t" });
    await stalled.call("flush", { scope });
    const publisher = await host.spawnThread("publisher");
    await publisher.call("flush", { scope });
    await host.call("sabCreate", { key: "signal", length: 2 });
    // The subscriber blocks in Atomics.wait: its direct link from the publisher fills up.
    const blocked = stalled.call("blockThenPublish", { sabKey: "signal", timeout: TIMEOUT, scope, topic: "other", from: "stalled", count: 0 });
    // If an expectation below fails, the host is stopped under it: that rejection is not news.
    blocked.catch(() => undefined);
    await host.call("sabWait", { key: "signal", index: 0, atLeast: 1, timeout: TIMEOUT });
    const N = 100_000;
    await publisher.call("publish", { scope, topic: "t", from: "publisher", count: N });
    // The link holds at most 65,536 frames (its default bound; a control frame or two not yet
    // read may take a place): the rest were dropped by the publisher's thread.
    const { queueFull } = (await host.call("stats", {})).dropped;
    expect(queueFull).toBeGreaterThanOrEqual(N - 65_536);
    expect(queueFull).toBeLessThan(N - 65_536 + 16);
    await host.call("sabStore", { key: "signal", index: 1, value: 1 });
    await blocked;
    // Exact: every message reached the stalled thread or was counted, once.
    const deadline = Date.now() + TIMEOUT;
    let got = 0;
    while ((got = ((await stalled.call("handled", { key: "t" })) as unknown[]).length) + queueFull < N && Date.now() < deadline);
    expect(got + queueFull).toBe(N);
  });

  it("after the main thread closes its relay and starts a new one, a worker thread joins again: its flush resolves and messages flow both ways", async () => {
    const scope = testScope();
    const N = 20;
    const host = await startHost();
    await host.call("subscribe", { key: "up", scope, topic: "up" });
    await host.call("flush", { scope });
    const thread = await host.spawnThread("t");
    await thread.call("subscribe", { key: "down", scope, topic: "down" });
    await thread.call("flush", { scope });
    expect((await host.call("stats", {})).threads).toBe(1);

    await host.call("closeRelay", {});
    await host.call("startRelay", {});
    // The thread joins the new relay by itself; wait until it has, so the flush travels on the
    // new link (one sent on the old link before the thread heard of the close would rightly
    // fail with ERR_ROAR_CLOSED).
    const deadline = Date.now() + TIMEOUT;
    while ((await host.call("stats", {})).threads !== 1) {
      if (Date.now() > deadline) throw new Error("the thread did not join the new relay");
    }
    await thread.call("flushStart", { key: "f", scope });
    await thread.call("flushWait", { key: "f", timeout: TIMEOUT });
    expect((await host.call("stats", {})).threads).toBe(1);

    // The subscriptions made before the relay closed hold on both sides.
    await host.call("publish", { scope, topic: "down", from: "main", count: N, end: true });
    await thread.call("publish", { scope, topic: "up", from: "t", count: N, end: true });
    expect(bySender(await thread.call("untilEnds", { key: "down", ends: ["main"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["main"], N));
    expect(bySender(await host.call("untilEnds", { key: "up", ends: ["t"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["t"], N));
  });

  it("lets a thread started before its main thread has a relay wait, warn ERR_ROAR_NO_RELAY, then join once the main thread makes a router", async () => {
    const scope = testScope();
    const N = 20;
    const host = await startHost({ relay: false }); // a child process whose main thread has no router yet
    const early = await host.spawnThread("early");
    await early.call("subscribe", { key: "down", scope, topic: "down" });
    await early.call("flushStart", { key: "f", scope });

    const warning = await early.call("waitWarning", { code: "ERR_ROAR_NO_RELAY", timeout: TIMEOUT });
    expect(warning.code).toBe("ERR_ROAR_NO_RELAY");
    expect(await early.call("flushState", { key: "f" })).toBe("pending");

    // Now the main thread makes its first router: the thread joins and its flush completes.
    await host.call("subscribe", { key: "up", scope, topic: "up" });
    await host.call("flush", { scope });
    await early.call("flushWait", { key: "f", timeout: TIMEOUT });
    expect((await host.call("stats", {})).threads).toBe(1);

    await host.call("publish", { scope, topic: "down", from: "main", count: N, end: true });
    await early.call("publish", { scope, topic: "up", from: "early", count: N, end: true });
    expect(bySender(await early.call("untilEnds", { key: "down", ends: ["main"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["main"], N));
    expect(bySender(await host.call("untilEnds", { key: "up", ends: ["early"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["early"], N));
    // It warned once, however many times it tried.
    expect((await early.call("warnings", {})).filter((w) => w.code === "ERR_ROAR_NO_RELAY")).toHaveLength(1);
  });

  it("forgets a thread terminated mid-flood: its links and interest go, nothing more is sent to it, the others keep receiving", async () => {
    const scope = testScope();
    const N = 100;
    const host = await startHost();
    await host.call("subscribe", { key: "from-a", scope, topic: "from-a", capacity: 100 });
    await host.call("flush", { scope });
    const a = await host.spawnThread("a");
    const b = await host.spawnThread("b");
    await a.call("subscribe", { key: "flood", scope, topic: "flood", capacity: 100 });
    await a.call("subscribe", { key: "only-a", scope, topic: "only-a" });
    await a.call("flush", { scope });
    await b.call("subscribe", { key: "flood", scope, topic: "flood", capacity: 100 });
    await b.call("subscribe", { key: "after", scope, topic: "after" });
    await b.call("flush", { scope });
    expect((await host.call("stats", {})).threads).toBe(2);

    // Both directions flood: the main thread to a and b, a to the main thread.
    await host.call("floodStart", { key: "down", scope, topic: "flood", from: "main", chunk: 50 });
    await a.call("floodStart", { key: "up", scope, topic: "from-a", from: "a", chunk: 50 });
    await host.call("floodWait", { key: "down", atLeast: 2_000, timeout: TIMEOUT });
    await a.call("floodWait", { key: "up", atLeast: 2_000, timeout: TIMEOUT });
    expect((await host.call("next", { key: "from-a", count: 1, timeout: TIMEOUT }))[0]).toMatchObject({ from: "a" });

    await host.call("terminate", { name: "a" });
    const stats = await host.call("waitStats", { threads: 1, timeout: TIMEOUT });
    expect(stats.threads).toBe(1);

    // The flood goes on after a is gone, and b keeps receiving it to the end.
    const atDeath = await host.call("floodWait", { key: "down", atLeast: 0, timeout: TIMEOUT });
    await host.call("floodWait", { key: "down", atLeast: atDeath + 1_000, timeout: TIMEOUT });
    const flooded = await host.call("floodStop", { key: "down" });
    await host.call("publish", { scope, topic: "flood", from: "main", count: 0, end: true });
    const tail = bySender(await b.call("untilEnds", { key: "flood", ends: ["main"], timeout: TIMEOUT }))["main"] ?? [];
    expect(tail.at(-1)).toBe("end");
    expect(tail.at(-2)).toBe(flooded - 1);

    // A topic only the dead thread wanted costs nothing any more.
    const sentBefore = (await host.call("stats", {})).sent;
    await host.call("publish", { scope, topic: "only-a", from: "main", count: N, end: true });
    expect((await host.call("stats", {})).sent).toBe(sentBefore);

    // The surviving thread still gets everything, once, in order — and only it is sent to.
    await host.call("publish", { scope, topic: "after", from: "main", count: N, end: true });
    expect(bySender(await b.call("untilEnds", { key: "after", ends: ["main"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["main"], N));
    expect((await host.call("stats", {})).sent).toBe(sentBefore + N + 1);
  });
});
