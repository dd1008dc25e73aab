/**
 * Hosts through a broker: real host processes joined through one `redis-server` and through
 * one `nats-server`, started by this spec on 127.0.0.1 (spec/support/servers.ts).
 *
 * Each host is a peer process (spec/fixtures/peer.ts) forked from the spec, the root of its
 * own host — a lone process, or a cluster primary with a worker — whose relay runs a
 * `NatsTransport` or `RedisTransport` (`startTransport`, which imports roar/nats or roar/redis
 * as a user's program does). The spec waits until the hosts know each other (`waitStats`) and
 * checks what arrives where. Each test uses a prefix of its own, so the hosts of one test never
 * meet those of another on the shared server.
 *
 * Nothing here waits a fixed time: every wait is for an event or a condition, with a generous
 * timeout, so the tests hold on a loaded 2-core machine.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@jest/globals";
import type { NatsSpec, RedisSpec, StatsReport, Traffic } from "../fixtures/protocol.js";
import { startServer, type BrokerKind, type BrokerServer } from "../support/servers.js";
import { bySender, Cleanup, everyMessageOnce, forkPeer, testScope, TIMEOUT, type Peer, type ProcessPeer } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const servers: Partial<Record<BrokerKind, BrokerServer>> = {};

beforeAll(async () => {
  [servers.nats, servers.redis] = await Promise.all([startServer("nats"), startServer("redis")]);
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(servers).map((server) => server?.stop()));
}, 60_000);

let prefixes = 0;

/** What `startTransport` is given for `kind`: the test's server and prefix, and quick reconnects. */
function brokerOptions(kind: BrokerKind, prefix: string): { nats: NatsSpec } | { redis: RedisSpec } {
  const server = servers[kind];
  if (server === undefined) throw new Error(`the ${kind} server did not start`);
  return kind === "nats"
    ? { nats: { servers: server.address, prefix, reconnectTimeWait: 50 } }
    : { redis: { url: `redis://${server.address}`, prefix, retryDelay: 50 } };
}

/** A host: a peer process that is the root of its host, on the broker. */
interface Host {
  name: string;
  process: ProcessPeer;
  peer: Peer;
}

/** Forks a host process, starts its broker transport, and (for a primary) forks its cluster workers. */
async function startHost(name: string, kind: BrokerKind, prefix: string): Promise<Host> {
  const forked = await forkPeer(name);
  cleanup.add(() => forked.stop());
  await forked.peer.call("startTransport", brokerOptions(kind, prefix));
  return { name, process: forked, peer: forked.peer };
}

function stats(peer: Peer): Promise<StatsReport> {
  return peer.call("stats", {});
}

/** Subscribes `peer` to (scope, topic) under `key` and flushes: its interest has reached every host. */
async function join(peer: Peer, scope: string, key = "sub", topic = "t"): Promise<void> {
  await peer.call("join", { key, scope, topic, capacity: 100_000 });
}

function untilEnds(peer: Peer, ends: readonly string[], key = "sub"): Promise<Traffic[]> {
  return peer.call("untilEnds", { key, ends: [...ends], timeout: TIMEOUT });
}

const NO_DROPS = { queueFull: 0, malformed: 0, undecodable: 0, unsendable: 0, oversized: 0, unauthenticated: 0, disconnected: 0, looped: 0 };

describe.each(["redis", "nats"] as const)("hosts through %s", (kind) => {
  it("lone processes and a cluster primary with a worker: every subscriber gets every message exactly once, in order per publisher, and scopes stay apart", async () => {
    const prefix = `i${process.pid}x${++prefixes}`;
    const scope = testScope();
    const other = `${scope}-other`;
    const [A, B, C] = await Promise.all([startHost("A", kind, prefix), startHost("B", kind, prefix), startHost("C", kind, prefix)]);
    const b1 = await B.peer.forkWorker("b1");
    await Promise.all([A, B, C].map(({ peer }) => peer.call("waitStats", { hosts: 2, timeout: TIMEOUT })));
    await B.peer.call("waitStats", { processes: 1, timeout: TIMEOUT });

    // Everyone subscribes to the scope; the worker and C also to another scope, with the same topic.
    const subscribers: [string, Peer][] = [
      ["A", A.peer],
      ["B", B.peer],
      ["b1", b1],
      ["C", C.peer],
    ];
    for (const [, peer] of subscribers) await join(peer, scope);
    await join(b1, other, "other");
    await join(C.peer, other, "other");

    // Four publishers at once: two lone hosts, a primary and its worker; one more in the other scope.
    const N = 300;
    const publishers = subscribers.map(([name]) => name);
    await Promise.all([
      ...subscribers.map(([name, peer]) => peer.call("publish", { scope, topic: "t", from: name, count: N, end: true })),
      A.peer.call("publish", { scope: other, topic: "t", from: "A-other", count: N, end: true }),
    ]);

    for (const [name, peer] of subscribers) {
      expect({ at: name, got: bySender(await untilEnds(peer, publishers)) }).toEqual({ at: name, got: everyMessageOnce(publishers, N) });
    }
    for (const [name, peer] of [
      ["b1", b1],
      ["C", C.peer],
    ] as const) {
      expect({ at: name, got: bySender(await untilEnds(peer, ["A-other"], "other")) }).toEqual({ at: name, got: everyMessageOnce(["A-other"], N) });
    }
    // Nothing more comes: a flush is a sync through every host, so anything sent twice would be here by now.
    for (const [, peer] of subscribers) await peer.call("flush", { scope });
    for (const [name, peer] of subscribers) expect({ at: name, more: await peer.call("drain", { key: "sub" }) }).toEqual({ at: name, more: [] });
    for (const [name, peer] of [
      ["b1", b1],
      ["C", C.peer],
    ] as const) {
      expect({ at: name, more: await peer.call("drain", { key: "other" }) }).toEqual({ at: name, more: [] });
    }

    for (const host of [A, B, C]) {
      const report = await stats(host.peer);
      expect({ host: host.name, hosts: report.hosts, dropped: report.dropped }).toEqual({ host: host.name, hosts: 2, dropped: NO_DROPS });
    }
    // Each message crossed the broker once per host that wanted it: C received the 3 other hosts'
    // runs in the scope (A's, B's and b1's) and A's run in the other scope, each with its end marker.
    expect((await stats(C.peer)).received).toBe(4 * (N + 1));
  });

  it("a host killed without a word is forgotten once its keepalives stop; the others' flushes then do not wait for it, and they go on", async () => {
    const prefix = `i${process.pid}x${++prefixes}`;
    const scope = testScope();
    const [A, B, K] = await Promise.all([startHost("A", kind, prefix), startHost("B", kind, prefix), startHost("K", kind, prefix)]);
    await Promise.all([A, B, K].map(({ peer }) => peer.call("waitStats", { hosts: 2, timeout: TIMEOUT })));
    for (const host of [A, B, K]) await join(host.peer, scope);

    await K.process.stop(); // SIGKILL: no bye
    // A flush started now waits for every host A knows, K too: until K is forgotten, or until
    // the sync gives up on it (5 s), whichever comes first — it never hangs.
    await A.peer.call("flushStart", { key: "while K is silent", scope });
    // Three keepalives (6 s) missed: forgotten, with its interest.
    await Promise.all([A, B].map(({ peer }) => peer.call("waitStats", { hosts: 1, timeout: TIMEOUT })));
    const outcome = await A.peer.call("flushWait", { key: "while K is silent", timeout: TIMEOUT }).then(
      () => "resolved",
      (error: { code?: string }) => error.code,
    );
    expect(["resolved", "ERR_ROAR_TIMEOUT"]).toContain(outcome);
    await Promise.all([A, B].map(({ peer }) => peer.call("flush", { scope })));

    const N = 100;
    await A.peer.call("publish", { scope, topic: "t", from: "A", count: N, end: true });
    await B.peer.call("publish", { scope, topic: "t", from: "B", count: N, end: true });
    for (const host of [A, B]) {
      expect({ at: host.name, got: bySender(await untilEnds(host.peer, ["A", "B"])) }).toEqual({ at: host.name, got: everyMessageOnce(["A", "B"], N) });
    }
    for (const host of [A, B]) {
      const report = await stats(host.peer);
      expect({ host: host.name, hosts: report.hosts, dropped: report.dropped }).toEqual({ host: host.name, hosts: 1, dropped: NO_DROPS });
    }
  });
});
