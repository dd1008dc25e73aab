/**
 * roar/testing: the conformance suite a {@link Transport} must pass.
 *
 * It is independent of the test framework: {@link transportConformance} returns named checks,
 * each an async function that throws (with `node:assert`) when the transport fails it.
 * Every check joins hosts made with `createHost()` in this process, through transports the
 * given factory makes, and checks the guarantees of the README's "Delivery semantics" across
 * them: exactly once, in order per publisher, scopes apart, interest, the same values
 * everywhere, hosts that come and go.
 *
 * @example
 * ```ts
 * import { transportConformance } from "roar/testing";
 *
 * describe("MyTransport", () => {
 *   for (const check of transportConformance((options) => myTransportFor(options))) {
 *     it(check.name, check.run, 60_000);
 *   }
 * });
 * ```
 * @packageDocumentation
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createHost, type Host } from "./isolated-host.js";
import type { Relay } from "./relay.js";
import type { Router } from "./router.js";
import type { Subscription } from "./subscription.js";
import type { BusTransport, Transport } from "./transport.js";

/** What the suite asks a factory for: one transport of one host. */
export interface TransportRequest {
  /** Whether other hosts must be able to reach this one (the hub of a star, a mesh member). */
  listen: boolean;
  /** Addresses (from {@link TransportUnderTest.address}) of hosts this one should dial. */
  peers: readonly string[];
}

/** What a factory returns: a transport, and where it can be reached once started. */
export interface TransportUnderTest {
  /** The transport, not yet started: the suite starts it with a host's relay. */
  transport: Transport | BusTransport;
  /** Where other transports reach this one, once started; for a broker, anything (unused). */
  address(): string;
  /**
   * Cuts every connection of this transport, as a network failure would (diallers dial again).
   * Needed by the checks that {@link ConformanceOptions.dropConnections} adds.
   */
  dropConnections?(): void;
}

/**
 * Makes a transport for one host. Transports that meet through a broker (one server all hosts
 * dial) may ignore `listen` and `peers`: every topology is then the same to them.
 */
export type TransportFactory = (request: TransportRequest) => TransportUnderTest;

/** One check of the suite. */
export interface ConformanceCheck {
  /** What it checks, as a test title. */
  name: string;
  /** Runs the check; rejects when the transport fails it. */
  run(): Promise<void>;
}

/** Options of {@link transportConformance}. */
export interface ConformanceOptions {
  /** How long one wait (hosts linking, messages arriving) may take, in milliseconds. @defaultValue 20000 */
  timeout?: number;
  /**
   * Adds a check that cuts connections mid-stream (the factory's transports must have
   * `dropConnections`): nothing may be lost or doubled across the resume.
   * @defaultValue false
   */
  dropConnections?: boolean;
}

/** A message of the checks: who published it, and its number in that publisher's run. */
interface Numbered {
  from: string;
  seq: number;
}

let runs = 0;

/** Hosts of one check, closed together. */
class Cluster {
  readonly hosts: Host[] = [];
  readonly relays: Relay[] = [];
  readonly #factory: TransportFactory;
  readonly #timeout: number;
  readonly scope = `conformance-${process.pid}-${++runs}`;

  constructor(factory: TransportFactory, timeout: number) {
    this.#factory = factory;
    this.#timeout = timeout;
  }

  /** Starts a host whose transport listens and/or dials `peers`; returns it and its address. */
  async host(listen: boolean, peers: readonly string[] = []): Promise<{ host: Host; relay: Relay; address: string; made: TransportUnderTest }> {
    const host = createHost();
    this.hosts.push(host);
    const made = this.#factory({ listen, peers });
    const relay = await host.startRelay({ transports: [made.transport] });
    this.relays.push(relay);
    return { host, relay, address: made.address(), made };
  }

  /** Waits until every relay is linked to `count` other hosts. */
  async linked(count: (index: number) => number): Promise<void> {
    await this.until(() => this.relays.every((relay, i) => relay.stats().hosts >= count(i)), "the hosts to link");
  }

  /** Polls `condition` until it holds. */
  async until(condition: () => boolean, what: string): Promise<void> {
    const end = Date.now() + this.#timeout;
    while (!condition()) {
      if (Date.now() > end) assert.fail(`timed out after ${this.#timeout} ms waiting for ${what}`);
      await sleep(5);
    }
  }

  /** Reads `count` messages from `sub`, failing if they do not come in time. */
  async take(sub: Subscription<unknown>, count: number): Promise<unknown[]> {
    const got: unknown[] = [];
    while (got.length < count) got.push(await sub.next({ timeout: this.#timeout }));
    return got;
  }

  async close(): Promise<void> {
    await Promise.all(this.hosts.map((host) => host.close()));
  }
}

/** Publishes `count` numbered messages from `from`. */
function publishRun(router: Router, topic: string, from: string, count: number): void {
  for (let seq = 0; seq < count; seq++) router.publish(topic, { from, seq } satisfies Numbered);
}

/** Asserts that `messages` hold each publisher's run exactly once, in order. */
function assertRuns(messages: readonly unknown[], publishers: readonly string[], count: number, where: string): void {
  const bySender = new Map<string, number[]>();
  for (const message of messages) {
    const { from, seq } = message as Numbered;
    let seqs = bySender.get(from);
    if (seqs === undefined) bySender.set(from, (seqs = []));
    seqs.push(seq);
  }
  const expected = Array.from({ length: count }, (_, i) => i);
  for (const publisher of publishers) {
    assert.deepEqual(bySender.get(publisher) ?? [], expected, `${where}: messages of ${publisher} (exactly once, in order)`);
  }
  assert.deepEqual([...bySender.keys()].sort(), [...publishers].sort(), `${where}: publishers seen`);
}

/**
 * Every host subscribes and publishes `count` numbered messages; every subscriber must get
 * every host's run once, in order, and nothing more.
 */
async function everyoneHearsEveryone(cluster: Cluster, hosts: readonly Host[], count: number): Promise<void> {
  const routers = hosts.map((host) => host.createRouter({ scope: cluster.scope, capacity: 10 * count }));
  const subs = routers.map((router) => router.subscribe("events"));
  await Promise.all(routers.map((router) => router.flush()));
  routers.forEach((router, i) => publishRun(router, "events", `host${i}`, count));
  const publishers = hosts.map((_, i) => `host${i}`);
  for (const [i, sub] of subs.entries()) assertRuns(await cluster.take(sub, count * hosts.length), publishers, count, `host${i}`);
  await Promise.all(routers.map((router) => router.flush()));
  for (const [i, sub] of subs.entries()) assert.equal(sub.size, 0, `host${i} got more than once`);
}

function isBusTransport(transport: Transport | BusTransport): transport is BusTransport {
  return (transport as Partial<BusTransport>).kind === "bus";
}

/** Runs `body` with a fresh cluster, closing it whatever happens. */
function check(name: string, factory: TransportFactory, timeout: number, body: (cluster: Cluster) => Promise<void>): ConformanceCheck {
  return {
    name,
    async run() {
      const cluster = new Cluster(factory, timeout);
      try {
        await body(cluster);
      } finally {
        await cluster.close();
      }
    },
  };
}

/**
 * The conformance checks for transports made by `factory`.
 *
 * @param factory - Makes one host's transport; called several times per check.
 */
export function transportConformance(factory: TransportFactory, options: ConformanceOptions = {}): ConformanceCheck[] {
  const timeout = options.timeout ?? 20_000;
  const COUNT = 500;
  const dropping: ConformanceCheck[] = !options.dropConnections
    ? []
    : [
        check("connections cut mid-stream resume: nothing is lost, nothing arrives twice, order holds", factory, timeout, async (cluster) => {
          const a = await cluster.host(true);
          const b = await cluster.host(false, [a.address]);
          await cluster.linked(() => 1);
          const router = b.host.createRouter({ scope: cluster.scope, capacity: 10_000 });
          const sub = router.subscribe("stream");
          await router.flush();
          const publisher = a.host.createRouter({ scope: cluster.scope, capacity: 10 });
          const cut = (a.made.dropConnections ?? assert.fail("the factory's transport has no dropConnections()")).bind(a.made);
          for (let round = 0; round < 5; round++) {
            for (let seq = round * 1000; seq < (round + 1) * 1000; seq++) publisher.publish("stream", { from: "a", seq } satisfies Numbered);
            await sleep(0);
            cut();
          }
          assertRuns(await cluster.take(sub, 5000), ["a"], 5000, "b");
          assert.equal(a.relay.stats().dropped.disconnected, 0, "a dropped connection that came back lost messages");
        }),
      ];
  return [
    ...dropping,
    check("a message published on one host reaches a subscriber on another", factory, timeout, async (cluster) => {
      const a = await cluster.host(true);
      const b = await cluster.host(false, [a.address]);
      await cluster.linked(() => 1);
      const subscriber = b.host.createRouter({ scope: cluster.scope, capacity: 10 });
      const sub = subscriber.subscribe("greetings");
      await subscriber.flush();
      a.host.createRouter({ scope: cluster.scope, capacity: 10 }).publish("greetings", "hello, host");
      assert.equal(await sub.next({ timeout }), "hello, host");
    }),

    check("startRelay resolves with the peers it dials linked: flush, then publish, reaches them (for a transport that names its `peers`)", factory, timeout, async (cluster) => {
      const a = await cluster.host(true);
      const subscriber = a.host.createRouter({ scope: cluster.scope, capacity: 10 });
      const sub = subscriber.subscribe("first");
      await subscriber.flush();
      const b = await cluster.host(false, [a.address]);
      // A transport that does not name its peers leaves a program to wait for them itself.
      if (isBusTransport(b.made.transport) || b.made.transport.peers === undefined) return;
      assert.equal(b.relay.stats().hosts, 1, "startRelay resolved before the peer was linked");
      const publisher = b.host.createRouter({ scope: cluster.scope, capacity: 10 });
      await publisher.flush();
      publisher.publish("first", "the first message");
      assert.equal(await sub.next({ timeout }), "the first message");
    }),

    check("a star of three hosts: every subscriber gets every message once, in order per publisher", factory, timeout, async (cluster) => {
      const hub = await cluster.host(true);
      const leaves = [await cluster.host(false, [hub.address]), await cluster.host(false, [hub.address])];
      const all = [hub, ...leaves];
      await cluster.linked((i) => (i === 0 ? 2 : 1));
      await everyoneHearsEveryone(cluster, all.map(({ host }) => host), COUNT);
    }),

    check("a full mesh of three hosts that dial each other: every message once, in order", factory, timeout, async (cluster) => {
      const first = await cluster.host(true);
      const second = await cluster.host(true, [first.address]);
      const third = await cluster.host(true, [first.address, second.address]);
      const all = [first, second, third];
      await cluster.linked(() => 2);
      await everyoneHearsEveryone(cluster, all.map(({ host }) => host), COUNT);
    }),

    check("scopes stay apart across hosts", factory, timeout, async (cluster) => {
      const a = await cluster.host(true);
      const b = await cluster.host(false, [a.address]);
      await cluster.linked(() => 1);
      const mine = b.host.createRouter({ scope: cluster.scope, capacity: 10 });
      const other = b.host.createRouter({ scope: `${cluster.scope}-other`, capacity: 10 });
      const wanted = mine.subscribe("t");
      const unwanted = other.subscribe("t");
      await mine.flush();
      a.host.createRouter({ scope: cluster.scope, capacity: 10 }).publish("t", "for my scope");
      assert.equal(await wanted.next({ timeout }), "for my scope");
      await mine.flush();
      assert.equal(unwanted.size, 0, "a message crossed into another scope");
    }),

    check("a host receives only the topics it subscribes to", factory, timeout, async (cluster) => {
      const a = await cluster.host(true);
      const b = await cluster.host(false, [a.address]);
      await cluster.linked(() => 1);
      const router = b.host.createRouter({ scope: cluster.scope, capacity: 100 });
      const sub = router.subscribe("wanted");
      await router.flush();
      const publisher = a.host.createRouter({ scope: cluster.scope, capacity: 10 });
      for (let i = 0; i < 50; i++) publisher.publish("unwanted", i);
      publisher.publish("wanted", "last");
      assert.equal(await sub.next({ timeout }), "last");
      assert.equal(b.relay.stats().received, 1, "messages for topics nobody on the host wants crossed");
    }),

    check("every value superjson carries arrives as itself", factory, timeout, async (cluster) => {
      const a = await cluster.host(true);
      const b = await cluster.host(false, [a.address]);
      await cluster.linked(() => 1);
      const router = b.host.createRouter({ scope: cluster.scope, capacity: 10 });
      const sub = router.subscribe("values");
      await router.flush();
      const value = {
        date: new Date(Date.UTC(2026, 10, 24)),
        map: new Map<unknown, unknown>([["k", 1], [2, "two"]]),
        set: new Set([1, "one"]),
        big: 12345678901234567890n,
        missing: undefined,
        pattern: /ro+ar/giu,
        nested: [{ deep: [null, -0, Number.NaN, Infinity] }],
        text: "ünïcødé ✓ \u2028",
      };
      a.host.createRouter({ scope: cluster.scope, capacity: 10 }).publish("values", value);
      assert.deepEqual(await sub.next({ timeout }), value);
    }),

    check("a burst of 20,000 messages arrives whole and in order", factory, timeout, async (cluster) => {
      const a = await cluster.host(true);
      const b = await cluster.host(false, [a.address]);
      await cluster.linked(() => 1);
      const router = b.host.createRouter({ scope: cluster.scope, capacity: 20_000 });
      const sub = router.subscribe("burst");
      await router.flush();
      publishRun(a.host.createRouter({ scope: cluster.scope, capacity: 10 }), "burst", "a", 20_000);
      assertRuns(await cluster.take(sub, 20_000), ["a"], 20_000, "b");
    }),

    check("interest sent before a host links reaches it; a host that closes is forgotten", factory, timeout, async (cluster) => {
      const a = await cluster.host(true);
      const router = a.host.createRouter({ scope: cluster.scope, capacity: 10 });
      const sub = router.subscribe("early");
      await router.flush();
      const b = await cluster.host(false, [a.address]);
      const c = await cluster.host(false, [a.address]);
      await cluster.linked((i) => (i === 0 ? 2 : 1));
      const publisher = b.host.createRouter({ scope: cluster.scope, capacity: 10 });
      await publisher.flush();
      publisher.publish("early", 1);
      assert.equal(await sub.next({ timeout }), 1);
      await c.host.close();
      await cluster.until(() => a.relay.stats().hosts === 1, "the closed host to be forgotten");
      // A flush does not wait for a host that is gone, and the others keep working.
      await publisher.flush();
      publisher.publish("early", 2);
      assert.equal(await sub.next({ timeout }), 2);
    }),
  ];
}
