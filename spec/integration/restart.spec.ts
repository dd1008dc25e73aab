/**
 * A mesh host restarts: three real host processes on 127.0.0.1, each listening and dialling the
 * other two over `WebSocketTransport` (a full mesh). One, C, is killed (SIGKILL) and a new
 * process starts at its address — a new node id, which subscribes as soon as it starts, as a
 * program does. The survivors must count in `dropped.disconnected` exactly what was lost:
 * for each (publisher, subscriber at C), delivered to the old C + delivered to the new C +
 * counted == published, where that is knowable; nothing counted twice, nothing counted that
 * the new C got.
 *
 * The survivors redial slowly (`retry.min` of seconds), as hosts with the defaults do once a
 * peer has been down a while: a survivor that waited for its own next dial to find out that
 * a new process answers at C's address would keep (and later count) for the old C what it is
 * already sending the new one. Nothing here waits a fixed time: every wait is for an event.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import type { StatsReport, Traffic, TransportSpec } from "../fixtures/protocol.js";
import { ACK_EVERY } from "../../lib/links/host-link.js";
import { bySender, Cleanup, everyMessageOnce, forkPeer, freePorts, range, testScope, TIMEOUT, type Peer, type ProcessPeer } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const LOCAL = "127.0.0.1";
const TOKEN = "a shared secret of these hosts";
/** Survivors look for a lost peer again only after seconds: longer than a restart takes here. */
const SLOW_RETRY = { min: 4000, max: 10_000 };

interface Host {
  name: string;
  process: ProcessPeer;
  peer: Peer;
}

/**
 * Forks a host that listens on `port` and dials `peers`; with `subscribe`, it subscribes to
 * (scope, "t") under "sub" before it starts its transport, as a program that restarts does.
 */
async function startHost(name: string, port: number, peers: number[], subscribe?: string): Promise<Host> {
  const forked = await forkPeer(name);
  cleanup.add(() => forked.stop());
  if (subscribe !== undefined) await forked.peer.call("subscribe", { key: "sub", scope: subscribe, topic: "t", capacity: 1_000_000 });
  const options: TransportSpec = {
    listen: { port, host: LOCAL },
    peers: peers.map((peer) => `ws://${LOCAL}:${peer}`),
    token: TOKEN,
    retry: SLOW_RETRY,
    awayTimeout: 120_000,
  };
  // The first hosts of the mesh do not wait for peers that start after them.
  await forked.peer.call("startTransport", { options, connectTimeout: subscribe === undefined ? 0 : undefined });
  return { name, process: forked, peer: forked.peer };
}

/**
 * A, B and C in a full mesh. Started in that order each finds the ones before it listening, so
 * every survivor has dialled C at least once: it knows who answers at C's address.
 */
async function mesh(): Promise<{ A: Host; B: Host; C: Host; ports: number[] }> {
  const ports = await freePorts(3);
  const [a, b, c] = ports as [number, number, number];
  const C = await startHost("C", c, [a, b]);
  const B = await startHost("B", b, [a, c]);
  const A = await startHost("A", a, [b, c]);
  await linked([A, B, C], 2);
  return { A, B, C, ports };
}

async function linked(hosts: Host[], count: number): Promise<void> {
  await Promise.all(hosts.map((host) => host.peer.call("waitStats", { hosts: count, hostsAway: 0, timeout: TIMEOUT })));
}

function stats(host: Host): Promise<StatsReport> {
  return host.peer.call("stats", {});
}

function untilEnds(peer: Peer, ends: readonly string[]): Promise<Traffic[]> {
  return peer.call("untilEnds", { key: "sub", ends: [...ends], timeout: TIMEOUT });
}

/** The sequence numbers `from` published, as a subscriber got them (end marker left out). */
function seqsOf(messages: readonly unknown[], from: string): number[] {
  return (messages as Traffic[]).filter((message): message is Extract<Traffic, { seq: number }> => message.from === from && "seq" in message).map((message) => message.seq);
}

describe("a mesh host restarts", () => {
  it("killed when quiet: each survivor counts exactly what it published while the host was down, and nothing the new process got", async () => {
    const scope = testScope();
    const { A, B, C, ports } = await mesh();
    await C.peer.call("join", { key: "sub", scope, topic: "t", capacity: 1_000_000 });
    const [N1, N2, N3] = [500, 700, 300];

    // 1. The old C gets all of N1 from each, and its acknowledgements reach them: its flush is
    //    answered by A and B after they read what C sent before it.
    await A.peer.call("publish", { scope, topic: "t", from: "A1", count: N1 });
    await B.peer.call("publish", { scope, topic: "t", from: "B1", count: N1 });
    const before = await C.peer.call("next", { key: "sub", count: 2 * N1, timeout: TIMEOUT });
    await C.peer.call("flush", { scope });
    await C.process.stop(); // SIGKILL
    await Promise.all([A, B].map((host) => host.peer.call("waitStats", { hosts: 1, hostsAway: 1, timeout: TIMEOUT })));

    // 2. Published while C is down: kept for it, lost when it turns out to be gone.
    await A.peer.call("publish", { scope, topic: "t", from: "A2", count: N2 });
    await B.peer.call("publish", { scope, topic: "t", from: "B2", count: N2 });

    // 3. A new process at C's address, subscribed from its start, links and flushes; then N3.
    //    Its flush resolves once A and B took in its interest: from then on what they publish
    //    reaches it — and is not kept for the old C, which they must have given up first.
    const C2 = await startHost("C2", ports[2] as number, [ports[0] as number, ports[1] as number], scope);
    await linked([C2], 2);
    await C2.peer.call("flush", { scope });
    await A.peer.call("publish", { scope, topic: "t", from: "A3", count: N3, end: true });
    await B.peer.call("publish", { scope, topic: "t", from: "B3", count: N3, end: true });
    await linked([A, B], 2); // the old C given up (at once; without a redial, at the survivors' next dial)

    expect(bySender(before)).toEqual({ A1: range(N1), B1: range(N1) });
    // The new C gets N3 whole, once, and nothing kept for the old one.
    expect(bySender(await untilEnds(C2.peer, ["A3", "B3"]))).toEqual(everyMessageOnce(["A3", "B3"], N3));
    expect(await C2.peer.call("drain", { key: "sub" })).toEqual([]);
    // delivered (N1 to the old C, N3 to the new) + counted == published, at each survivor.
    const [a, b, c2] = await Promise.all([stats(A), stats(B), stats(C2)]);
    expect({ A: a.dropped.disconnected, B: b.dropped.disconnected }).toEqual({ A: N2, B: N2 });
    expect({ A: a.dropped.queueFull, B: b.dropped.queueFull }).toEqual({ A: 0, B: 0 });
    expect(c2.dropped.disconnected).toBe(0);
    // Nothing was passed on by one survivor to the other for the old C.
    expect({ A: a.received, B: b.received }).toEqual({ A: 0, B: 0 });
  });

  it("killed mid-stream: a survivor counts at most what the old process may not have had, and nothing the new one got", async () => {
    const scope = testScope();
    const { A, B, C, ports } = await mesh();
    await C.peer.call("join", { key: "sub", scope, topic: "t", capacity: 1_000_000 });

    await A.peer.call("floodStart", { key: "flood", scope, topic: "t", from: "A", chunk: 5 });
    await B.peer.call("floodStart", { key: "flood", scope, topic: "t", from: "B", chunk: 5 });
    // What the old C's subscriber had before it died: at least this much of each flood.
    const had = await C.peer.call("next", { key: "sub", count: 2000, timeout: TIMEOUT });
    await C.process.stop(); // SIGKILL, mid-stream
    const deadAt = await Promise.all([A, B].map((host) => host.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT })));
    await Promise.all([A, B].map((host) => host.peer.call("waitStats", { hostsAway: 1, timeout: TIMEOUT })));
    const restartAt = await Promise.all([A, B].map((host) => host.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT })));
    const C2 = await startHost("C2", ports[2] as number, [ports[0] as number, ports[1] as number], scope);
    await linked([C2], 2);
    await C2.peer.call("flush", { scope });
    const joinedAt = await Promise.all([A, B].map((host) => host.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT })));
    await Promise.all([A, B].map((host, i) => host.peer.call("floodWait", { key: "flood", atLeast: (joinedAt[i] as number) + 3 * ACK_EVERY, timeout: TIMEOUT })));
    const published = await Promise.all([A, B].map((host) => host.peer.call("floodStop", { key: "flood" })));
    await linked([A, B], 2); // the old C given up: its count is final
    await Promise.all([A, B].map((host) => host.peer.call("publish", { scope, topic: "t", from: host.name, count: 0, end: true })));

    const got = await untilEnds(C2.peer, ["A", "B"]);
    for (const [i, host] of [A, B].entries()) {
      // Distinct messages: the accounting is about what arrived, not how often. (A message may
      // arrive twice here while the new C joins the mesh under traffic, with or without this
      // fix — a routing defect of its own, kept out of this count.)
      const seqs = [...new Set(seqsOf(got, host.name))].sort((x, y) => x - y);
      const first = seqs[0] as number;
      // The new C gets a gapless run from no later than its flush to the end.
      expect(seqs).toEqual(range((published[i] as number) - first).map((k) => first + k));
      expect(first).toBeLessThanOrEqual(joinedAt[i] as number);
      const last = Math.max(...seqsOf(had, host.name));
      const counted = (await stats(host)).dropped.disconnected;
      // At least what was published while no C was there at all; at most what neither C
      // got, plus what the old one may have received and not yet acknowledged when it died.
      expect(counted).toBeGreaterThanOrEqual((restartAt[i] as number) - (deadAt[i] as number));
      expect(counted).toBeLessThanOrEqual(first - 1 - last + ACK_EVERY);
    }
  });
});
