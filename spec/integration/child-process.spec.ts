/**
 * child_process.fork: children running compiled peers (spec/fixtures/peer.ts), joined to the
 * jest process's relay with `relay.attach(child)`.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import * as roar from "../../lib/index.js";
import { bySender, Cleanup, everyMessageOnce, forkPeer, testScope, TIMEOUT, untilEnds, type Peer, type ProcessPeer } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

async function setup(scope: string): Promise<{ relay: roar.Relay; router: roar.Router; sub: roar.Subscription }> {
  const relay = await roar.startRelay();
  cleanup.add(() => relay.close());
  const router = roar.createRouter({ scope, capacity: 10_000 });
  cleanup.add(() => router.close());
  const sub = router.subscribe("t");
  await router.flush();
  return { relay, router, sub };
}

async function forkChild(name: string, attachTo?: roar.Relay): Promise<ProcessPeer> {
  const child = await forkPeer(name, attachTo === undefined ? {} : { onFork: (process) => attachTo.attach(process) });
  cleanup.add(() => child.stop());
  return child;
}

/** Every side publishes N numbered messages and an end marker; every side must get all of them once, in order. */
async function exchange(router: roar.Router, sub: roar.Subscription, children: [string, Peer][], scope: string, N: number): Promise<void> {
  const names = ["primary", ...children.map(([name]) => name)];
  const publishing = children.map(([from, peer]) => peer.call("publish", { scope, topic: "t", from, count: N, end: true }));
  for (let seq = 0; seq < N; seq++) router.publish("t", { from: "primary", seq });
  router.publish("t", { from: "primary", end: true });
  await Promise.all(publishing);

  expect(bySender(await untilEnds(sub, names))).toEqual(everyMessageOnce(names, N));
  for (const [, peer] of children) {
    expect(bySender(await peer.call("untilEnds", { key: "t", ends: names, timeout: TIMEOUT }))).toEqual(everyMessageOnce(names, N));
    expect(await peer.call("drain", { key: "t" })).toEqual([]);
  }
  expect(sub.receive()).toEqual({ ok: false });
}

describe("child_process.fork children joined with relay.attach", () => {
  it("exchange messages both ways with the primary and each other, once and in order, when made and attached before they use roar", async () => {
    // What a program does: fork, attach at once; the child then makes its router, subscribes
    // and flushes in one go, and from then on expects every publish on the host.
    const scope = testScope();
    const N = 200;
    const { relay, router, sub } = await setup(scope);
    const c1 = (await forkChild("c1", relay)).peer;
    const c2 = (await forkChild("c2", relay)).peer;
    await c1.call("join", { key: "t", scope, topic: "t", capacity: 10_000 });
    await c2.call("join", { key: "t", scope, topic: "t", capacity: 10_000 });
    expect(relay.stats().processes).toBe(2);
    await exchange(router, sub, [["c1", c1], ["c2", c2]], scope, N);
  });

  it("exchange messages both ways with the primary and each other, once and in order, when attached after they subscribed", async () => {
    const scope = testScope();
    const N = 200;
    const { relay, router, sub } = await setup(scope);
    const children = [await forkChild("c1"), await forkChild("c2")];
    const [c1, c2] = children.map(({ peer }) => peer) as [Peer, Peer];
    for (const peer of [c1, c2]) await peer.call("subscribe", { key: "t", scope, topic: "t", capacity: 10_000 });
    // Attach both; the flushes below travel behind the relay's hello on each channel.
    for (const { child } of children) relay.attach(child);
    for (const peer of [c1, c2]) await peer.call("flush", { scope });
    expect(relay.stats().processes).toBe(2);
    await exchange(router, sub, [["c1", c1], ["c2", c2]], scope, N);
  });
});
