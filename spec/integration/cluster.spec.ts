/**
 * node:cluster: real `cluster.fork` workers running compiled peers (spec/fixtures/peer.ts).
 * The jest process is the cluster primary; its relay is the lib/ copy of roar, started by the
 * first router or by `startRelay()`, and closed after every test.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { fork } from "node:child_process";
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import { readFileSync } from "node:fs";
import * as roar from "../../lib/index.js";
import { MALFORMED, UNDECODABLE, type Go } from "../fixtures/garbage-child.js";
import { collectWarnings } from "../helpers.js";
import { isPeerEvent, isReply, isUserMessage } from "../fixtures/protocol.js";
import { makeRich, typedDump } from "../fixtures/rich.js";
import {
  bySender,
  Cleanup,
  everyMessageOnce,
  fixture,
  forkClusterPeer,
  forkPeer,
  once,
  range,
  testScope,
  TIMEOUT,
  untilEnds,
  waitFor,
  type ProcessPeer,
} from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function startRelay(options: roar.RelayOptions = {}): Promise<roar.Relay> {
  const relay = await roar.startRelay(options);
  cleanup.add(() => relay.close());
  return relay;
}

function createRouter(scope: string): roar.Router {
  const router = roar.createRouter({ scope, capacity: 10_000 });
  cleanup.add(() => router.close());
  return router;
}

async function forkWorker(name: string): Promise<ProcessPeer & { worker: ClusterWorker }> {
  const worker = await forkClusterPeer(name);
  cleanup.add(() => worker.stop());
  return worker;
}

/**
 * Publishes numbered messages in chunks, one chunk a millisecond at most, until stopped: a
 * steady flood that a live receiver keeps up with (so none of it is dropped), whatever the load.
 */
function flood(router: roar.Router, topic: string, from: string, chunk: number, padBytes = 0): { readonly count: number; stop(): Promise<number> } {
  let count = 0;
  let stopped = false;
  const pad = "x".repeat(padBytes);
  const done = (async () => {
    while (!stopped) {
      for (let i = 0; i < chunk; i++) router.publish(topic, padBytes === 0 ? { from, seq: count++ } : { from, seq: count++, pad });
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  return {
    get count() {
      return count;
    },
    async stop() {
      stopped = true;
      await done;
      return count;
    },
  };
}

describe("cluster", () => {
  it("delivers every message of every publisher once and in order to each subscriber in the primary and 2 workers", async () => {
    const scope = testScope();
    const N = 200;
    const relay = await startRelay();
    const router = createRouter(scope);
    const sub = router.subscribe("t");
    const handled: unknown[] = [];
    router.on("t", (message) => void handled.push(message));
    await router.flush();
    const workers = [await forkWorker("w1"), await forkWorker("w2")];
    for (const { peer } of workers) {
      await peer.call("subscribe", { key: "sub", scope, topic: "t", capacity: 10_000 });
      await peer.call("on", { key: "handler", scope, topic: "t" });
      await peer.call("flush", { scope });
    }
    expect(relay.stats().processes).toBe(2);
    const names = ["primary", "w1", "w2"];

    const publishing = workers.map(({ peer }, i) => peer.call("publish", { scope, topic: "t", from: names[i + 1] as string, count: N, end: true }));
    for (let seq = 0; seq < N; seq++) router.publish("t", { from: "primary", seq });
    router.publish("t", { from: "primary", end: true });
    await Promise.all(publishing);

    expect(bySender(await untilEnds(sub, names))).toEqual(everyMessageOnce(names, N));
    expect(bySender(handled)).toEqual(everyMessageOnce(names, N));
    expect(sub.receive()).toEqual({ ok: false });
    for (const { peer } of workers) {
      expect(bySender(await peer.call("untilEnds", { key: "sub", ends: names, timeout: TIMEOUT }))).toEqual(everyMessageOnce(names, N));
      expect(bySender(await peer.call("handled", { key: "handler" }))).toEqual(everyMessageOnce(names, N));
      expect(await peer.call("drain", { key: "sub" })).toEqual([]);
    }
  });

  it("joins a worker forked before the primary made its first router", async () => {
    const scope = testScope();
    const N = 50;
    // No relay in this process yet: the worker's flush cannot complete.
    const { peer } = await forkWorker("early");
    await peer.call("subscribe", { key: "down", scope, topic: "down" });
    await peer.call("flushStart", { key: "f", scope });
    expect(await peer.call("flushState", { key: "f" })).toBe("pending");

    const router = createRouter(scope); // starts the relay, which attaches the running worker
    cleanup.add(() => roar.startRelay().then((relay) => relay.close()));
    const up = router.subscribe("up");
    await router.flush();
    await peer.call("flushWait", { key: "f", timeout: TIMEOUT });
    expect((await roar.startRelay()).stats().processes).toBe(1);

    for (let seq = 0; seq < N; seq++) router.publish("down", { from: "primary", seq });
    router.publish("down", { from: "primary", end: true });
    await peer.call("publish", { scope, topic: "up", from: "early", count: N, end: true });
    expect(bySender(await peer.call("untilEnds", { key: "down", ends: ["primary"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["primary"], N));
    expect(bySender(await untilEnds(up, ["early"]))).toEqual(everyMessageOnce(["early"], N));
  });

  it("completes a worker's flush while another worker has not used roar (yet)", async () => {
    const scope = testScope();
    await startRelay();
    const router = createRouter(scope);
    const up = router.subscribe("up");
    await router.flush();
    const w1 = (await forkWorker("w1")).peer;
    await forkWorker("w2"); // a worker that does not use roar, or has not got round to it yet
    await w1.call("subscribe", { key: "down", scope, topic: "down" });
    await w1.call("flushStart", { key: "f", scope });
    await w1.call("flushWait", { key: "f", timeout: 10_000 });
    router.publish("down", { from: "primary", end: true });
    await w1.call("publish", { scope, topic: "up", from: "w1", count: 0, end: true });
    expect(await w1.call("next", { key: "down", count: 1, timeout: TIMEOUT })).toEqual([{ from: "primary", end: true }]);
    await expect(up.next({ timeout: TIMEOUT })).resolves.toEqual({ from: "w1", end: true });
  });

  it("a cluster worker that closes its relay does not hold up the primary's flush, and joins again when it starts a new one", async () => {
    const scope = testScope();
    const N = 20;
    await startRelay();
    const router = createRouter(scope);
    const up = router.subscribe("up");
    await router.flush();
    const { peer } = await forkWorker("w");
    await peer.call("subscribe", { key: "down", scope, topic: "down" });
    await peer.call("flush", { scope });

    // The worker closes its relay and lives on, its IPC channel open: nothing there answers.
    await peer.call("closeRelay", {});
    let flushed: unknown = "pending";
    router.flush().then(
      () => (flushed = "resolved"),
      (error: unknown) => (flushed = error),
    );
    await waitFor(() => flushed !== "pending", "the primary's flush to settle");
    expect(flushed).toBe("resolved");

    // A new relay in the worker joins the primary again, with the worker's old and new interest.
    await peer.call("startRelay", {});
    await peer.call("subscribe", { key: "again", scope, topic: "again" });
    await peer.call("flush", { scope });
    for (const topic of ["down", "again"]) {
      for (let seq = 0; seq < N; seq++) router.publish(topic, { from: "primary", seq });
      router.publish(topic, { from: "primary", end: true });
    }
    await peer.call("publish", { scope, topic: "up", from: "w", count: N, end: true });
    expect(bySender(await peer.call("untilEnds", { key: "again", ends: ["primary"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["primary"], N));
    expect(bySender(await peer.call("untilEnds", { key: "down", ends: ["primary"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["primary"], N));
    expect(bySender(await untilEnds(up, ["w"]))).toEqual(everyMessageOnce(["w"], N));
  });

  it("attaching a cluster worker the relay already attached delivers each message once", async () => {
    const scope = testScope();
    const N = 20;
    const relay = await startRelay();
    const router = createRouter(scope);
    const up = router.subscribe("up");
    await router.flush();
    const { peer, worker } = await forkWorker("w"); // attached by the relay when it was forked
    relay.attach(worker);
    relay.attach(worker);
    await peer.call("subscribe", { key: "down", scope, topic: "down" });
    await peer.call("flush", { scope });

    await peer.call("publish", { scope, topic: "up", from: "w", count: N, end: true });
    await peer.call("flush", { scope }); // the primary took in all of it, copies included
    expect(bySender(await untilEnds(up, ["w"]))).toEqual(everyMessageOnce(["w"], N));
    expect(up.receive()).toEqual({ ok: false });

    for (let seq = 0; seq < N; seq++) router.publish("down", { from: "primary", seq });
    router.publish("down", { from: "primary", end: true });
    await router.flush(); // the worker took in all of it, copies included
    expect(bySender(await peer.call("untilEnds", { key: "down", ends: ["primary"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["primary"], N));
    expect(await peer.call("drain", { key: "down" })).toEqual([]);
    expect(relay.stats().processes).toBe(1);
  });

  it("delivers what a new worker publishes first, right after making its router, to a subscriber that flushed before", async () => {
    // A worker that announces itself at start-up: the primary's subscription was flushed
    // before the worker existed, so this publish is "made anywhere on the host after" it.
    const scope = testScope();
    await startRelay();
    const router = createRouter(scope);
    const sub = router.subscribe("t");
    await router.flush();
    const { peer } = await forkWorker("fresh");
    await peer.call("publish", { scope, topic: "t", from: "fresh", count: 3, end: true }); // its first roar call
    expect(bySender(await untilEnds(sub, ["fresh"], 5_000))).toEqual(everyMessageOnce(["fresh"], 3));
  });

  it("carries rich values both ways between a worker and a primary that is an ordinary process (not a jest test)", async () => {
    // The primary here is a forked peer, not this jest process (see the next test).
    const scope = testScope();
    const host = await forkPeer("primary");
    cleanup.add(() => host.stop());
    const primary = host.peer;
    await primary.call("startRelay", {});
    await primary.call("subscribe", { key: "rich", scope, topic: "rich" });
    await primary.call("flush", { scope });
    const worker = await primary.forkWorker("w");
    await worker.call("subscribe", { key: "rich", scope, topic: "rich" });
    await worker.call("flush", { scope });
    const expected = typedDump(makeRich());

    await worker.call("publishRich", { scope, topic: "rich" });
    expect(await primary.call("nextDump", { key: "rich", count: 1, timeout: TIMEOUT })).toEqual([expected]);
    await primary.call("publishRich", { scope, topic: "rich" });
    expect(await worker.call("nextDump", { key: "rich", count: 2, timeout: TIMEOUT })).toEqual([expected, expected]);
  });

  it("carries Date, Map, Set, BigInt, undefined, RegExp, -0, NaN, shared references and cycles between processes as themselves, with this jest test as the primary", async () => {
    const scope = testScope();
    await startRelay();
    const router = createRouter(scope);
    const sub = router.subscribe("rich");
    await router.flush();
    const w1 = (await forkWorker("w1")).peer;
    const w2 = (await forkWorker("w2")).peer;
    for (const peer of [w1, w2]) {
      await peer.call("subscribe", { key: "rich", scope, topic: "rich" });
      await peer.call("flush", { scope });
    }
    const expected = typedDump(makeRich());

    // primary → workers
    const published = makeRich();
    router.publish("rich", published);
    const own = sub.receive();
    expect(own.ok && own.value).toBe(published); // local subscribers get the value itself
    expect(await w1.call("nextDump", { key: "rich", count: 1, timeout: TIMEOUT })).toEqual([expected]);
    expect(await w2.call("nextDump", { key: "rich", count: 1, timeout: TIMEOUT })).toEqual([expected]);

    // worker → primary and the other worker
    await w1.call("publishRich", { scope, topic: "rich" });
    const received = (await sub.next({ timeout: TIMEOUT })) as Record<string, unknown>;
    expect(received["date"]).toBeInstanceOf(Date);
    expect(received["map"]).toBeInstanceOf(Map);
    expect(received["set"]).toBeInstanceOf(Set);
    expect(received["regex"]).toBeInstanceOf(RegExp);
    expect(typeof received["big"]).toBe("bigint");
    expect(received).toEqual(makeRich());
    expect(typedDump(received)).toEqual(expected);
    expect(Object.hasOwn(received, "missing")).toBe(true);
    expect(received["missing"]).toBeUndefined();
    const pair = received["pair"] as unknown[];
    expect(pair[0]).toBe(pair[1]);
    const cycle = received["cycle"] as Record<string, unknown>;
    expect(cycle["self"]).toBe(cycle);
    expect(await w2.call("nextDump", { key: "rich", count: 1, timeout: TIMEOUT })).toEqual([expected]);
    expect(await w1.call("nextDump", { key: "rich", count: 1, timeout: TIMEOUT })).toEqual([expected]); // its own
  });

  it("keeps scopes apart across processes: the same topic in another scope is another topic", async () => {
    const base = testScope();
    const [A, B] = [`${base}-A`, `${base}-B`];
    const N = 20;
    await startRelay();
    const routerA = createRouter(A);
    const routerB = createRouter(B);
    const subA = routerA.subscribe("t");
    const subB = routerB.subscribe("t");
    await routerA.flush();
    const w1 = (await forkWorker("w1")).peer; // scope A
    const w2 = (await forkWorker("w2")).peer; // scope B
    await w1.call("subscribe", { key: "A", scope: A, topic: "t" });
    await w2.call("subscribe", { key: "B", scope: B, topic: "t" });
    await w1.call("flush", { scope: A });
    await w2.call("flush", { scope: B });

    // As in the thread spec: home-scope messages, then an end marker in both scopes.
    const publishPrimary = (from: string, home: roar.Router, other: roar.Router): void => {
      for (let seq = 0; seq < N; seq++) home.publish("t", { from, seq });
      home.publish("t", { from, end: true });
      other.publish("t", { from, end: true });
    };
    publishPrimary("primary-A", routerA, routerB);
    publishPrimary("primary-B", routerB, routerA);
    await Promise.all(
      (
        [
          ["w1", w1, A, B],
          ["w2", w2, B, A],
        ] as const
      ).map(async ([from, peer, home, other]) => {
        await peer.call("publish", { scope: home, topic: "t", from, count: N, end: true });
        await peer.call("publish", { scope: other, topic: "t", from, count: 0, end: true });
      }),
    );

    const names = ["primary-A", "primary-B", "w1", "w2"];
    const seenInA = { "primary-A": [...range(N), "end"], w1: [...range(N), "end"], "primary-B": ["end"], w2: ["end"] };
    const seenInB = { "primary-B": [...range(N), "end"], w2: [...range(N), "end"], "primary-A": ["end"], w1: ["end"] };
    expect(bySender(await untilEnds(subA, names))).toEqual(seenInA);
    expect(bySender(await untilEnds(subB, names))).toEqual(seenInB);
    expect(bySender(await w1.call("untilEnds", { key: "A", ends: names, timeout: TIMEOUT }))).toEqual(seenInA);
    expect(bySender(await w2.call("untilEnds", { key: "B", ends: names, timeout: TIMEOUT }))).toEqual(seenInB);
  });

  it("leaves the user's own process.on('message') and worker.on('message') traffic untouched: roar's frames never show there", async () => {
    const scope = testScope();
    const N = 500;
    const USER = 100;
    await startRelay();
    const router = createRouter(scope);
    const sub = router.subscribe("t");
    await router.flush();
    const clusterMessages: unknown[] = [];
    const onClusterMessage = (_worker: ClusterWorker, message: unknown): void => void clusterMessages.push(message);
    cluster.on("message", onClusterMessage);
    cleanup.add(() => cluster.off("message", onClusterMessage));
    const workers = [(await forkWorker("w1")).peer, (await forkWorker("w2")).peer];
    for (const peer of workers) {
      await peer.call("subscribe", { key: "sub", scope, topic: "t", capacity: 10_000 });
      await peer.call("flush", { scope });
    }

    // roar traffic both ways, with user messages both ways in the middle of it
    const names = ["primary", "w1", "w2"];
    const publishing = workers.map(async (peer, i) => {
      const from = names[i + 1] as string;
      await peer.call("publish", { scope, topic: "t", from, count: N / 2, start: 0 });
      await peer.call("userSend", { count: USER });
      await peer.call("publish", { scope, topic: "t", from, count: N / 2, start: N / 2, end: true });
    });
    for (let seq = 0; seq < N / 2; seq++) router.publish("t", { from: "primary", seq });
    for (let i = 0; i < USER; i++) for (const peer of workers) peer.sendUser(i);
    for (let seq = N / 2; seq < N; seq++) router.publish("t", { from: "primary", seq });
    router.publish("t", { from: "primary", end: true });
    await Promise.all(publishing);

    expect(bySender(await untilEnds(sub, names))).toEqual(everyMessageOnce(names, N));
    for (const [i, peer] of workers.entries()) {
      expect(bySender(await peer.call("untilEnds", { key: "sub", ends: names, timeout: TIMEOUT }))).toEqual(everyMessageOnce(names, N));
      // The worker's process.on("message") saw the spec's commands and user messages, nothing else.
      const { user, foreign } = await peer.call("userReceived", {});
      expect(foreign).toEqual([]);
      expect(user).toEqual(range(USER).map((n) => ({ kind: "user", i: n, from: "spec" })));
      // The primary's worker.on("message") saw the worker's replies, events and user messages, nothing else.
      expect(peer.foreign).toEqual([]);
      expect(peer.user).toEqual(range(USER).map((n) => ({ kind: "user", i: n, from: names[i + 1] })));
    }
    // So did cluster.on("message").
    expect(clusterMessages.filter((message) => !isReply(message) && !isPeerEvent(message) && !isUserMessage(message))).toEqual([]);
    expect(clusterMessages.filter(isUserMessage)).toHaveLength(2 * USER);
  });

  it("throws ERR_ROAR_UNSERIALIZABLE in a worker that publishes a value that cannot be sent, and sends nothing", async () => {
    const scope = testScope();
    await startRelay();
    const router = createRouter(scope);
    const sub = router.subscribe("t");
    await router.flush();
    const { peer } = await forkWorker("w");
    for (const kind of ["function", "symbol", "class", "buffer", "error"] as const) {
      const thrown = await peer.call("publishBad", { scope, topic: "t", kind });
      expect(thrown).toMatchObject({ name: "RoarError", code: "ERR_ROAR_UNSERIALIZABLE" });
    }
    // The worker's router still works, and none of the bad values went anywhere.
    await peer.call("publish", { scope, topic: "t", from: "w", count: 1, end: true });
    expect(bySender(await untilEnds(sub, ["w"]))).toEqual(everyMessageOnce(["w"], 1));
  });

  it("keeps the primary and the other worker working when a worker is SIGKILLed mid-flood, and forgets the dead one", async () => {
    const scope = testScope();
    const N = 100;
    const relay = await startRelay();
    const router = createRouter(scope);
    const fromW1 = router.subscribe("from-w1", { capacity: 100 });
    const fromW2 = router.subscribe("from-w2");
    await router.flush();
    const w1 = await forkWorker("w1");
    const w2 = await forkWorker("w2");
    await w1.peer.call("subscribe", { key: "flood", scope, topic: "flood", capacity: 100 });
    await w1.peer.call("subscribe", { key: "only-w1", scope, topic: "only-w1" });
    await w1.peer.call("flush", { scope });
    await w2.peer.call("subscribe", { key: "flood", scope, topic: "flood", capacity: 100 });
    await w2.peer.call("subscribe", { key: "after", scope, topic: "after" });
    await w2.peer.call("flush", { scope });
    expect(relay.stats().processes).toBe(2);

    // Both directions flood: the primary to both workers, w1 to the primary.
    const down = flood(router, "flood", "primary", 50);
    try {
      await w1.peer.call("floodStart", { key: "up", scope, topic: "from-w1", from: "w1", chunk: 50 });
      await w1.peer.call("floodWait", { key: "up", atLeast: 2_000, timeout: TIMEOUT });
      await waitFor(() => down.count >= 2_000, "the primary's flood");
      expect(await fromW1.next({ timeout: TIMEOUT })).toMatchObject({ from: "w1" });

      w1.child.kill("SIGKILL");
      expect((await w1.exited).signal).toBe("SIGKILL");
      await waitFor(() => relay.stats().processes === 1, "the relay to drop the dead worker");

      // The flood goes on, and w2 keeps receiving it to the end.
      const atDeath = down.count;
      await waitFor(() => down.count >= atDeath + 1_000, "more flood after the kill");
    } finally {
      await down.stop();
    }
    router.publish("flood", { from: "primary", end: true });
    const tail = bySender(await w2.peer.call("untilEnds", { key: "flood", ends: ["primary"], timeout: TIMEOUT }))["primary"] ?? [];
    expect(tail.slice(-2)).toEqual([down.count - 1, "end"]);

    // A topic only the dead worker wanted is sent nowhere.
    const sentBefore = relay.stats().sent;
    for (let seq = 0; seq < N; seq++) router.publish("only-w1", { from: "primary", seq });
    expect(relay.stats().sent).toBe(sentBefore);

    // The primary and w2 exchange messages both ways, once and in order.
    for (let seq = 0; seq < N; seq++) router.publish("after", { from: "primary", seq });
    router.publish("after", { from: "primary", end: true });
    await w2.peer.call("publish", { scope, topic: "from-w2", from: "w2", count: N, end: true });
    expect(bySender(await w2.peer.call("untilEnds", { key: "after", ends: ["primary"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["primary"], N));
    expect(bySender(await untilEnds(fromW2, ["w2"]))).toEqual(everyMessageOnce(["w2"], N));
    expect(relay.stats().sent).toBe(sentBefore + N + 1);
  });

  it("drops and counts malformed frames and undecodable payloads from a child, is not polluted, and keeps working", async () => {
    const scope = testScope();
    const relay = await startRelay();
    const router = createRouter(scope);
    const sub = router.subscribe("t");
    await router.flush();
    const before = relay.stats();

    const child = fork(fixture("garbage-child.js"), [], {
      env: { ...process.env, GARBAGE_CHILD: "1" },
      execArgv: [],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const exited = once(child, "exit", "the garbage child to exit", 60_000);
    cleanup.add(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    });
    relay.attach(child);
    await once(child, "message", "the garbage child to be ready");
    const sent = once(child, "message", "the garbage child to send its garbage");
    child.send({ kind: "go", scope, topic: "t" } satisfies Go);
    await sent;

    // The one good message was sent after the garbage on the same channel: once it is here,
    // all the garbage has been dealt with.
    const first = await sub.next({ timeout: TIMEOUT });
    const rest: unknown[] = [];
    for (let r = sub.receive(); r.ok; r = sub.receive()) rest.push(r.value);
    const after = relay.stats();
    expect(after.dropped.malformed - before.dropped.malformed).toBe(MALFORMED);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain("polluted");
    expect(after.dropped.undecodable - before.dropped.undecodable).toBe(UNDECODABLE);
    expect([first, ...rest]).toEqual([{ after: "garbage", at: new Date(5), big: 5n }]);

    // The relay still works, the garbage child still attached: a worker joins and exchanges
    // messages both ways.
    const N = 20;
    const { peer } = await forkWorker("w");
    await peer.call("subscribe", { key: "t", scope, topic: "t" });
    await peer.call("flush", { scope });
    for (let seq = 0; seq < N; seq++) router.publish("t", { from: "primary", seq });
    router.publish("t", { from: "primary", end: true });
    await peer.call("publish", { scope, topic: "t", from: "w", count: N, end: true });
    expect(bySender(await peer.call("untilEnds", { key: "t", ends: ["primary", "w"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["primary", "w"], N));
    expect(bySender(await untilEnds(sub, ["primary", "w"]))).toEqual(everyMessageOnce(["primary", "w"], N));
  });

  it("bounds the primary's memory when a subscribed worker is stopped under a burst, counts what it drops, warns once and tells the publisher", async () => {
    const scope = testScope();
    const TOTAL = 200_000;
    const PAD = 1_000; // ~1 KB a message: unbounded, the burst would hold ~200 MB for the stopped worker
    const BOUND = 8 * 2 ** 20;
    const relay = await startRelay({ maxQueueBytes: BOUND });
    const router = createRouter(scope);
    const w = await forkWorker("stalled");
    await w.peer.call("subscribe", { key: "flood", scope, topic: "flood", capacity: 10 });
    await w.peer.call("subscribe", { key: "after", scope, topic: "after" });
    await w.peer.call("flush", { scope });
    const pid = w.child.pid as number;
    const warnings = collectWarnings("ERR_ROAR_SLOW_CONSUMER");
    cleanup.add(() => warnings.stop());

    process.kill(pid, "SIGSTOP");
    // (the worker's cleanup sends SIGCONT before SIGKILL)
    await waitFor(() => /^\d+ \(.*\) T/.test(readFileSync(`/proc/${pid}/stat`, "utf8")), "the worker to be stopped");

    const before = relay.stats();
    const rssBefore = process.memoryUsage().rss;
    const pad = "x".repeat(PAD);
    let refused = 0;
    // One synchronous loop, as a program that has messages to send does it.
    for (let seq = 0; seq < TOTAL; seq++) if (!router.publish("flood", { from: "primary", seq, pad })) refused++;
    const rssAfter = process.memoryUsage().rss;
    const after = relay.stats();
    const sent = after.sent - before.sent;
    const dropped = after.dropped.queueFull - before.dropped.queueFull;

    // What waits for the stopped worker is the bound and what the kernel's pipe took, no more.
    expect(rssAfter - rssBefore).toBeLessThan(BOUND + 64 * 2 ** 20);
    expect(sent + dropped).toBe(TOTAL); // every message is either sent or counted
    expect(dropped).toBeGreaterThan(TOTAL * 0.75);
    expect(router.stats().dropped.queueFull).toBe(dropped); // the publisher sees its own losses
    expect(refused).toBeGreaterThanOrEqual(dropped); // publish() said so, from half the bound on
    await waitFor(() => warnings.length !== 0, "the slow-consumer warning");
    expect(warnings).toHaveLength(1); // one per episode, not one per drop
    expect(warnings[0]).toMatch(/slow consumer: the child process \(pid \d+\)/);

    // Once it runs again, the worker catches up and the link works as before.
    process.kill(pid, "SIGCONT");
    await w.peer.call("drain", { key: "flood" }); // answered after everything sent before it was read
    for (let seq = 0; seq < 10; seq++) router.publish("after", { from: "primary", seq });
    router.publish("after", { from: "primary", end: true });
    expect(bySender(await w.peer.call("untilEnds", { key: "after", ends: ["primary"], timeout: TIMEOUT }))).toEqual(everyMessageOnce(["primary"], 10));
  });
});
