/**
 * The broker transports — `NatsTransport` (roar/nats) and `RedisTransport` (roar/redis) —
 * against real servers this spec starts on 127.0.0.1 (spec/support/servers.ts): first the
 * shipped conformance suite, then what is particular to a broker: credentials, names that
 * must stay apart on it (and never act as wildcards), the largest text it takes, bad texts
 * published by someone else, and the broker restarted mid-stream.
 *
 * Hosts are `createHost()`s in this process. Each test uses a subject/channel prefix of its
 * own, so hosts of other tests on the same server are never counted or reached. Nothing waits
 * a fixed time: every wait is for an event or a condition, with a generous timeout.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from "@jest/globals";
import { Redis } from "ioredis";
import { connect as natsConnect } from "nats";
import { setTimeout as sleep } from "node:timers/promises";
import { createHost, type Host } from "../../lib/isolated-host.js";
import type { Relay } from "../../lib/relay.js";
import type { Router } from "../../lib/router.js";
import type { Subscription } from "../../lib/subscription.js";
import { transportConformance } from "../../lib/testing.js";
import type { BusTransport, Transport } from "../../lib/transport.js";
import { NatsTransport, type NatsTransportOptions } from "../../lib/transports/nats.js";
import { RedisTransport, type RedisTransportOptions } from "../../lib/transports/redis.js";
import { runProgram } from "../helpers.js";
import { Cleanup, TIMEOUT, waitFor } from "../integration/support.js";
import { startServer, type BrokerKind, type BrokerServer } from "../support/servers.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());
afterEach(() => {
  jest.restoreAllMocks();
});

/** The servers all tests share (a test that restarts its broker starts one of its own). */
const servers: Partial<Record<"nats" | "natsToken" | "natsUser" | "natsSmall" | "redis" | "redisPassword", BrokerServer>> = {};
const NATS_TOKEN = "the nats token";
const NATS_USER = { user: "roar", pass: "the nats password" };
const REDIS_PASSWORD = "the redis password";
/** NATS's `max_payload` on the small server, and RedisTransport's `maxPayload` where it is tested. */
const SMALL = 4096;

beforeAll(async () => {
  [servers.nats, servers.natsToken, servers.natsUser, servers.natsSmall, servers.redis, servers.redisPassword] = await Promise.all([
    startServer("nats"),
    startServer("nats", { token: NATS_TOKEN }),
    startServer("nats", NATS_USER),
    startServer("nats", { maxPayload: SMALL }),
    startServer("redis"),
    startServer("redis", { password: REDIS_PASSWORD }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(servers).map((server) => server?.stop()));
}, 60_000);

function server(name: keyof typeof servers): BrokerServer {
  const found = servers[name];
  if (found === undefined) throw new Error(`the ${name} server did not start`);
  return found;
}

// ---- transports ----

let prefixes = 0;
/** A subject/channel prefix of the test's own. */
function freshPrefix(): string {
  return `p${process.pid}x${++prefixes}`;
}

/** Reconnects come quickly, so an outage does not slow the tests down. */
function nats(at: BrokerServer, options: NatsTransportOptions = {}): NatsTransport {
  return new NatsTransport({ servers: at.address, reconnectTimeWait: 50, reconnectJitter: 0, ...options });
}

function redis(at: BrokerServer, { password, ...options }: Omit<RedisTransportOptions, "url"> & { password?: string } = {}): RedisTransport {
  const auth = password === undefined ? "" : `:${encodeURIComponent(password)}@`;
  return new RedisTransport({ url: `redis://${auth}${at.address}`, redis: { retryStrategy: () => 50 }, ...options });
}

interface Broker {
  kind: BrokerKind;
  /** The shared server without auth. */
  plain(): BrokerServer;
  /** A transport on `at` with `prefix`. */
  transport(at: BrokerServer, prefix: string): BusTransport;
}

const BROKERS: Broker[] = [
  { kind: "nats", plain: () => server("nats"), transport: (at, prefix) => nats(at, { prefix }) },
  { kind: "redis", plain: () => server("redis"), transport: (at, prefix) => redis(at, { prefix }) },
];

// ---- hosts ----

interface OnBroker {
  host: Host;
  relay: Relay;
  router(scope: string): Router;
}

/** Starts a host whose relay has `transport`; closed after the test. */
async function startHost(transport: BusTransport): Promise<OnBroker> {
  const host = createHost();
  cleanup.add(() => host.close());
  const relay = await host.startRelay({ transports: [transport] });
  const routers = new Map<string, Router>();
  return {
    host,
    relay,
    router(scope) {
      let router = routers.get(scope);
      if (router === undefined) routers.set(scope, (router = host.createRouter({ scope, capacity: 100_000 })));
      return router;
    },
  };
}

/** Starts `count` hosts through `make` and waits until each knows the others. */
async function startHosts(count: number, make: () => BusTransport): Promise<OnBroker[]> {
  const hosts: OnBroker[] = [];
  for (let i = 0; i < count; i++) hosts.push(await startHost(make()));
  await waitFor(() => hosts.every(({ relay }) => relay.stats().hosts === count - 1), `${count} hosts to know each other`);
  return hosts;
}

async function take(sub: Subscription<unknown>, count: number): Promise<unknown[]> {
  const got: unknown[] = [];
  try {
    while (got.length < count) got.push(await sub.next({ timeout: TIMEOUT }));
  } catch (error) {
    throw new Error(`${(error as Error).message}, after ${got.length} of ${count}: ${JSON.stringify(got).slice(0, 300)}`);
  }
  return got;
}

const range = (count: number, start = 0): number[] => Array.from({ length: count }, (_, i) => start + i);

const NO_DROPS = { queueFull: 0, malformed: 0, undecodable: 0, unsendable: 0, oversized: 0, unauthenticated: 0, disconnected: 0, looped: 0 };

/** Captures warnings (under jest, `process.on("warning")` hears nothing: see router.spec.ts). */
function catchWarnings(): { name: string; code: unknown; message: string }[] {
  const warnings: { name: string; code: unknown; message: string }[] = [];
  jest.spyOn(process, "emitWarning").mockImplementation(((warning: string | Error, options?: { type?: string; code?: string } | string) => {
    const fields = typeof options === "object" ? options : { type: options };
    warnings.push({ name: fields.type ?? "Warning", code: fields.code, message: String(warning) });
  }) as typeof process.emitWarning);
  return warnings;
}

// ---- the conformance suite ----

for (const broker of BROKERS) {
  describe(`${broker.kind}: the shipped conformance suite`, () => {
    const prefix = freshPrefix();
    // A broker transport ignores listen and peers: every host meets every other on the broker.
    // (`TransportUnderTest.transport` is typed `Transport`, though the suite takes broker transports too.)
    const checks = transportConformance(() => ({ transport: broker.transport(broker.plain(), prefix), address: () => "" }));
    for (const check of checks) it(check.name, check.run, 60_000);
  });
}

// ---- credentials ----

describe("credentials", () => {
  /** Starts a host with `transport`; resolves with what startRelay rejected with (or fails). */
  async function refused(transport: BusTransport): Promise<Error & { code?: unknown }> {
    const host = createHost();
    cleanup.add(() => host.close());
    const outcome = await host.startRelay({ transports: [transport] }).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    if (outcome === undefined) throw new Error("startRelay resolved with the wrong credentials");
    return outcome;
  }

  /** Two hosts with the right credentials link, and a message crosses (so the refused one is not in the way). */
  async function rightOnesLink(make: () => BusTransport): Promise<void> {
    const [a, b] = await startHosts(2, make);
    const sub = b!.router("s").subscribe("t");
    await b!.router("s").flush();
    a!.router("s").publish("t", "with the right credentials");
    expect(await sub.next({ timeout: TIMEOUT })).toBe("with the right credentials");
    expect(a!.relay.stats().hosts).toBe(1);
  }

  it("nats: a wrong or missing token makes startRelay reject with the server's Authorization Violation; the right one links", async () => {
    const at = server("natsToken");
    const prefix = freshPrefix();
    for (const token of ["not the token", undefined]) {
      const error = await refused(nats(at, { prefix, ...(token === undefined ? {} : { token }) }));
      expect({ code: error.code, message: error.message }).toEqual({ code: "AUTHORIZATION_VIOLATION", message: expect.stringMatching(/authorization violation/i) });
    }
    await rightOnesLink(() => nats(at, { prefix, token: NATS_TOKEN }));
  });

  it("nats: a wrong user or password makes startRelay reject; the right ones link", async () => {
    const at = server("natsUser");
    const prefix = freshPrefix();
    for (const credentials of [{ user: NATS_USER.user, pass: "not the password" }, { user: "nobody", pass: NATS_USER.pass }]) {
      const error = await refused(nats(at, { prefix, ...credentials }));
      expect(error.code).toBe("AUTHORIZATION_VIOLATION");
    }
    await rightOnesLink(() => nats(at, { prefix, ...NATS_USER }));
  });

  it("redis: a wrong or missing password makes startRelay reject; the right one links", async () => {
    const at = server("redisPassword");
    const prefix = freshPrefix();
    for (const password of ["not the password", undefined]) {
      await refused(redis(at, { prefix, ...(password === undefined ? {} : { password }) }));
    }
    await rightOnesLink(() => redis(at, { prefix, password: REDIS_PASSWORD }));
  });

  it("redis: the rejection for a wrong password says why", async () => {
    const error = await refused(redis(server("redisPassword"), { prefix: freshPrefix(), password: "not the password" }));
    expect(error.message).toMatch(/WRONGPASS|password|auth/i);
  });

  it("redis: a program whose startRelay was refused for its password exits by itself", async () => {
    const url = `redis://:wrong@${server("redisPassword").address}`;
    const outcome = await runProgram(
      `
      import * as roar from "roar";
      import { RedisTransport } from "roar/redis";
      try {
        await roar.startRelay({ transports: [new RedisTransport({ url: ${JSON.stringify(url)} })] });
        console.log("resolved");
      } catch (error) {
        console.log("rejected");
      }
      `,
      5_000,
    );
    expect({ code: outcome.code, stdout: outcome.stdout.trim() }).toEqual({ code: 0, stdout: "rejected" });
  });

  it("a host whose broker transport failed to start can start one that works", async () => {
    const at = server("natsToken");
    const prefix = freshPrefix();
    const host = createHost();
    cleanup.add(() => host.close());
    await expect(host.startRelay({ transports: [nats(at, { prefix, token: "not the token" })] })).rejects.toMatchObject({ code: "AUTHORIZATION_VIOLATION" });
    await host.startRelay({ transports: [nats(at, { prefix, token: NATS_TOKEN })] });
  });
});

// ---- names on the broker ----

/** Every byte outside A–Z a–z 0–9 _ - is escaped as ~XX: this decodes one escaped name, independently of lib/. */
function unescapeName(escaped: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    if (escaped[i] === "~") {
      bytes.push(Number.parseInt(escaped.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(escaped.charCodeAt(i));
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Names a broker may treat specially (NATS's `.`, `*`, `>`; Redis's `:` and pattern characters), the escape character itself, unicode, and prototype names. */
const NAMES = [
  ".",
  "*",
  ">",
  "a.b",
  "a.*",
  "a.>",
  "*.>",
  "a b",
  " ",
  "\t",
  "~",
  "~2E", // what "." escapes to: must not meet "."
  "~7E",
  ":",
  "a:b",
  "*:?[]\\^",
  "ü",
  "u\u0308", // "ü" decomposed: another name
  "日本語",
  "🦁",
  "__proto__",
  "constructor",
  "hasOwnProperty",
  "t",
  "-",
  "_",
];
const SCOPES = [".", "*", ">", "a b", "~2E", "ü", "__proto__", "plain"];

/** Watches every topic subject/channel under `prefix` on the broker, as another client would. */
async function watchTopics(broker: Broker, at: BrokerServer, prefix: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const count = (name: string): void => void seen.set(name, (seen.get(name) ?? 0) + 1);
  if (broker.kind === "nats") {
    const connection = await natsConnect({ servers: at.address });
    cleanup.add(() => connection.close());
    connection.subscribe(`${prefix}.t.>`, { callback: (error, message) => error === null && count(message.subject) });
    await connection.flush();
  } else {
    const client = new Redis(`redis://${at.address}`);
    cleanup.add(() => client.disconnect());
    client.on("pmessageBuffer", (_pattern: Buffer, channel: Buffer) => count(channel.toString("latin1")));
    await client.psubscribe(`${prefix}:t:*`);
  }
  return seen;
}

for (const broker of BROKERS) {
  describe(`${broker.kind}: names on the broker`, () => {
    it("scopes and topics with separators, wildcards, spaces, the escape character, unicode and prototype names stay apart and arrive", async () => {
      const at = broker.plain();
      const prefix = freshPrefix();
      const seen = await watchTopics(broker, at, prefix);
      const [publisher, subscriber] = await startHosts(2, () => broker.transport(at, prefix));
      const pairs = SCOPES.flatMap((scope) => NAMES.map((topic) => [scope, topic] as const));
      const subs = pairs.map(([scope, topic]) => subscriber!.router(scope).subscribe(topic));
      await Promise.all(SCOPES.map((scope) => subscriber!.router(scope).flush()));

      for (const [scope, topic] of pairs) publisher!.router(scope).publish(topic, { scope, topic });
      for (const [i, sub] of subs.entries()) {
        const [scope, topic] = pairs[i]!;
        expect(await sub.next({ timeout: TIMEOUT })).toEqual({ scope, topic });
      }
      // Anything that crossed to the wrong subscription would be here by now: a flush is a sync through every host.
      await Promise.all(SCOPES.map((scope) => subscriber!.router(scope).flush()));
      expect(subs.map((sub) => sub.size)).toEqual(pairs.map(() => 0));
      expect(subscriber!.relay.stats()).toMatchObject({ received: pairs.length, dropped: NO_DROPS });

      // On the broker: one subject/channel per (scope, topic), four parts, nothing but safe characters and escapes.
      await waitFor(() => seen.size === pairs.length, `the watcher to see ${pairs.length} names (saw ${seen.size})`);
      const separator = broker.kind === "nats" ? "." : ":";
      const decoded = [...seen.keys()].map((name) => {
        const parts = name.split(separator);
        expect({ name, parts: parts.length, safe: parts.every((part) => /^(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+$/.test(part)) }).toEqual({ name, parts: 4, safe: true });
        expect(parts.slice(0, 2)).toEqual([prefix, "t"]);
        return JSON.stringify([unescapeName(parts[2]!), unescapeName(parts[3]!)]);
      });
      expect(decoded.sort()).toEqual(pairs.map((pair) => JSON.stringify(pair)).sort());
    });

    it("the longest plain names (1024 characters each) work", async () => {
      const at = broker.plain();
      const prefix = freshPrefix();
      const [publisher, subscriber] = await startHosts(2, () => broker.transport(at, prefix));
      const scope = "s".repeat(1024);
      const topic = "t".repeat(1024);
      const sub = subscriber!.router(scope).subscribe(topic);
      await subscriber!.router(scope).flush();
      publisher!.router(scope).publish(topic, "long names");
      expect(await sub.next({ timeout: TIMEOUT })).toBe("long names");
    });

    // On NATS, a subject longer than the server's max_control_line (4 KiB) would make the server
    // close the connection, again on every reconnect: long names must become short subjects.
    it(
      `the longest names that need escaping (1024 characters of 3 UTF-8 bytes: 9,216 escaped characters each) work, and do not cut the host off`,
      async () => {
        const at = broker.plain();
        const prefix = freshPrefix();
        const [publisher, subscriber] = await startHosts(2, () => broker.transport(at, prefix));
        const scope = "日".repeat(1024);
        const topic = "本".repeat(1024);
        const sub = subscriber!.router(scope).subscribe(topic);
        const control = subscriber!.router("control").subscribe("t");
        await Promise.all([subscriber!.router(scope).flush(), subscriber!.router("control").flush()]);
        publisher!.router("control").publish("t", "short names");
        publisher!.router(scope).publish(topic, "long names");
        expect(await control.next({ timeout: 10_000 })).toBe("short names");
        expect(await sub.next({ timeout: 10_000 })).toBe("long names");
      },
      60_000,
    );
  });
}

// ---- bad texts on the broker ----

for (const broker of BROKERS) {
  describe(`${broker.kind}: bad texts published by another client`, () => {
    it("are counted in dropped.malformed, pollute nothing, and the hosts keep working", async () => {
      const at = broker.plain();
      const prefix = freshPrefix();
      const [publisher, subscriber] = await startHosts(2, () => broker.transport(at, prefix));
      const sub = subscriber!.router("s").subscribe("t");
      await subscriber!.router("s").flush();

      const separator = broker.kind === "nats" ? "." : ":";
      const hosts = [prefix, "h"].join(separator);
      const topic = [prefix, "t", "s", "t"].join(separator);
      const bad: [string, string][] = [
        [hosts, "this is not JSON"],
        [hosts, '{"__proto__":{"polluted":true}}'],
        [hosts, "[]"],
        [hosts, '["h", 42, 0, []]'],
        [hosts, '["h", "someone", 2, []]'],
        [hosts, '["__proto__", "someone"]'],
        [topic, "this is not JSON"],
        [topic, '{"__proto__":{"polluted":true}}'],
        [topic, '["someone", 1.5, ["{\\"json\\":1}"]]'],
        [topic, '["someone", 0, []]'],
        [topic, '["someone", 0, [{"json":1}]]'],
        [topic, '[42, 0, ["{\\"json\\":1}"]]'],
      ];
      if (broker.kind === "nats") {
        const connection = await natsConnect({ servers: at.address });
        cleanup.add(() => connection.close());
        for (const [subject, text] of bad) connection.publish(subject, text);
        await connection.flush();
      } else {
        const client = new Redis(`redis://${at.address}`);
        cleanup.add(() => client.disconnect());
        for (const [channel, text] of bad) await client.publish(channel, text);
      }
      const topicTexts = bad.filter(([name]) => name === topic).length;
      // Every host hears the hosts channel; only the subscriber hears the topic.
      await waitFor(() => subscriber!.relay.stats().dropped.malformed === bad.length, `the subscriber to count ${bad.length} malformed texts`);
      await waitFor(() => publisher!.relay.stats().dropped.malformed === bad.length - topicTexts, "the publisher to count the malformed texts");
      expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();

      publisher!.router("s").publish("t", "still working");
      expect(await sub.next({ timeout: TIMEOUT })).toBe("still working");
      expect(subscriber!.relay.stats()).toMatchObject({ hosts: 1, received: 1, dropped: { ...NO_DROPS, malformed: bad.length } });
      expect(sub.size).toBe(0);
    });
  });
}

// ---- the largest text a broker takes ----

interface Sized {
  seq: number;
  pad?: string;
}

const SIZED: { kind: BrokerKind; what: string; make(prefix: string): BusTransport }[] = [
  { kind: "nats", what: `the server's max_payload (${SMALL} bytes)`, make: (prefix) => nats(server("natsSmall"), { prefix }) },
  { kind: "redis", what: `the transport's maxPayload (${SMALL} bytes)`, make: (prefix) => redis(server("redis"), { prefix, maxPayload: SMALL }) },
];

for (const sized of SIZED) {
  describe(`${sized.kind}: messages larger than ${sized.what}`, () => {
    it("are dropped, counted in dropped.oversized and warned of (ERR_ROAR_OVERSIZED); smaller ones, and many small ones together larger than it, arrive in order", async () => {
      const warnings = catchWarnings();
      const prefix = freshPrefix();
      const [publisher, subscriber] = await startHosts(2, () => sized.make(prefix));
      const sub = subscriber!.router("s").subscribe("t");
      await subscriber!.router("s").flush();

      const router = publisher!.router("s");
      router.publish("t", { seq: 0 } satisfies Sized);
      router.publish("t", { seq: 1, pad: "x".repeat(2 * SMALL) } satisfies Sized); // too large
      router.publish("t", { seq: 2, pad: "x".repeat(SMALL - 600) } satisfies Sized); // close to the limit, but within
      router.publish("t", { seq: 3, pad: "é".repeat(SMALL) } satisfies Sized); // 2 bytes a character: too large
      // 200 small messages in one go: 20 times the limit together, so published in several texts.
      for (let seq = 4; seq < 204; seq++) router.publish("t", { seq, pad: "x".repeat(100) } satisfies Sized);
      router.publish("t", { seq: 204 } satisfies Sized);

      const got = (await take(sub, 203)) as Sized[];
      expect(got.map(({ seq }) => seq)).toEqual([0, 2, ...range(201, 4)]);
      await subscriber!.router("s").flush();
      expect(sub.size).toBe(0);
      expect(publisher!.relay.stats().dropped).toEqual({ ...NO_DROPS, oversized: 2 });
      expect(subscriber!.relay.stats().dropped).toEqual(NO_DROPS);
      const oversized = warnings.filter((warning) => warning.code === "ERR_ROAR_OVERSIZED");
      expect(oversized).toEqual([{ name: "RoarWarning", code: "ERR_ROAR_OVERSIZED", message: expect.stringMatching(/larger than/) }]);
    });

    // On NATS, the size checks count a payload's UTF-8 bytes, but the text that carries it is
    // JSON, where each `"`, `\\` or control character of the payload takes 2 to 6 more bytes: a
    // run that "fits" is refused by the client (MAX_PAYLOAD_EXCEEDED) and lost whole, counted as
    // `disconnected`, without a warning.
    it(
      `messages whose JSON escaping grows them (quotes, backslashes, control characters) are split to fit too, or dropped as oversized`,
      async () => {
        const prefix = freshPrefix();
        const [publisher, subscriber] = await startHosts(2, () => sized.make(prefix));
        const sub = subscriber!.router("s").subscribe("t");
        await subscriber!.router("s").flush();
        cleanup.add(() => sub.cancel());
        const { got, done } = reader(sub);
        const router = publisher!.router("s");
        // `"\<U+0001>` is 10 bytes in a payload, 15 in the text that carries it.
        for (let seq = 0; seq < 100; seq++) router.publish("t", { seq, pad: '"\\\u0001'.repeat(100) } satisfies Sized);
        router.publish("t", { seq: 100, pad: '"'.repeat(SMALL / 3) } satisfies Sized); // 1,365 quotes: ~2.7 KB of payload, ~5.5 KB of text
        router.publish("t", { seq: 101 } satisfies Sized);
        router.publish("t", "end");
        // Fails at once, rather than after a timeout, when the publisher counts something lost.
        await waitFor(() => got.at(-1) === "end" || publisher!.relay.stats().dropped.disconnected !== 0, "every message to arrive");
        expect(publisher!.relay.stats().dropped.disconnected).toBe(0);
        await done;
        // Message 100 arrives, or is dropped as oversized (and counted and warned of as such): nothing else is lost.
        const seqs = (got.slice(0, -1) as Sized[]).map(({ seq }) => seq);
        expect(seqs.filter((seq) => seq !== 100)).toEqual([...range(100), 101]);
        expect(publisher!.relay.stats().dropped).toEqual({ ...NO_DROPS, oversized: seqs.includes(100) ? 0 : 1 });
        expect(subscriber!.relay.stats().dropped).toEqual(NO_DROPS);
      },
      60_000,
    );
  });
}

// ---- the broker restarted mid-stream ----

/** Publishes numbers 0, 1, 2, … on (router, topic), a few at a time, until stopped. */
function flood(router: Router, topic: string, chunk = 5): { readonly count: number; stop(): Promise<number> } {
  let count = 0;
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      for (let i = 0; i < chunk; i++) router.publish(topic, count++);
      await sleep(1); // pacing, not a wait for anything: a steady stream, whatever the machine's load
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

/** Reads a subscription into `got` until the string "end" arrives. */
function reader(sub: Subscription<unknown>): { got: unknown[]; done: Promise<void> } {
  const got: unknown[] = [];
  const done = (async () => {
    for await (const message of sub) {
      got.push(message);
      if (message === "end") return;
    }
  })();
  return { got, done };
}

for (const broker of BROKERS) {
  describe(`${broker.kind}: the broker restarted mid-stream`, () => {
    it("publishing goes on through the outage; afterwards messages flow again, none twice, in order, and each subscriber's losses are counted exactly", async () => {
      const at = await startServer(broker.kind);
      cleanup.add(() => at.stop());
      const prefix = freshPrefix();
      const [publisher, ...subscribers] = await startHosts(3, () => broker.transport(at, prefix));
      const readers = subscribers.map((subscriber) => {
        const sub = subscriber.router("s").subscribe("t");
        cleanup.add(() => sub.cancel());
        return reader(sub);
      });
      await Promise.all(subscribers.map((subscriber) => subscriber.router("s").flush()));
      const stream = flood(publisher!.router("s"), "t");
      cleanup.add(() => stream.stop());

      await waitFor(() => readers.every(({ got }) => got.length >= 200), "messages to flow before the outage");
      await at.stop("SIGKILL");
      const downAt = stream.count;
      // publish() neither throws nor blocks while the broker is away (the flood would stop).
      await waitFor(() => stream.count >= downAt + 300, "publishing to go on while the broker is down");
      await at.start();
      const upAt = stream.count;
      const lastOf = (got: unknown[]): number => (typeof got.at(-1) === "number" ? (got.at(-1) as number) : -1);
      await waitFor(() => readers.every(({ got }) => lastOf(got) >= upAt), "messages published after the restart to arrive");
      // Both ends are back on the broker: from here on nothing is lost.
      const flowingAt = stream.count;
      await waitFor(() => readers.every(({ got }) => lastOf(got) >= flowingAt + 100), "the stream to go on after the restart");
      const published = await stream.stop();
      publisher!.router("s").publish("t", "end");
      await Promise.all(readers.map(({ done }) => done));

      // What the publisher could not hand to the broker it counted itself, and numbered not:
      // a subscriber counts only what the broker took and lost, so nothing is counted twice.
      const refused = publisher!.relay.stats().dropped.disconnected;
      for (const [i, { got }] of readers.entries()) {
        const seqs = got.slice(0, -1) as number[];
        // In order and never twice: strictly increasing; nothing that was not published.
        expect(seqs.every((seq, j) => j === 0 || seq > seqs[j - 1]!)).toBe(true);
        expect(seqs.at(-1)).toBeLessThan(published);
        // Everything before the outage, and everything since both ends were back, arrived.
        expect(seqs.slice(0, 200)).toEqual(range(200));
        expect(seqs.filter((seq) => seq >= flowingAt)).toEqual(range(published - flowingAt, flowingAt));
        // Exact accounting: what arrived, what the subscriber counted lost and what the publisher
        // counted refused is what was published.
        const stats = subscribers[i]!.relay.stats();
        expect({ subscriber: i, received: stats.received, lost: stats.dropped.disconnected }).toEqual({
          subscriber: i,
          received: got.length,
          lost: published + 1 - got.length - refused,
        });
        expect(stats.dropped).toEqual({ ...NO_DROPS, disconnected: published - seqs.length - refused });
        expect(stats.hosts).toBe(2);
      }
      if (broker.kind === "redis") {
        // Redis refuses publishes at once while it is away: the publisher counted them itself.
        expect(refused).toBeGreaterThan(0);
      }
    });
  });
}
