/**
 * Host links and their sessions, driven through createHost() and transports in this process:
 * resuming after a dropped connection, hosts gone for good, the bound while a host is away,
 * two hosts that dial each other, and a hand-written peer that speaks the wire protocol —
 * badly, on purpose.
 */
import { afterEach, describe, expect, it, jest } from "@jest/globals";
import { setTimeout as sleep } from "node:timers/promises";
import { createHost, type Host } from "../../lib/isolated-host.js";
import type { Relay } from "../../lib/relay.js";
import type { Connection, ConnectionEvents, Transport, TransportContext } from "../../lib/transport.js";
import { InProcessTransport } from "../../lib/transports/in-process.js";

const TIMEOUT = 20_000;
const hosts: Host[] = [];
let names = 0;

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.close()));
  jest.restoreAllMocks();
});

function host(): Host {
  const made = createHost();
  hosts.push(made);
  return made;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const end = Date.now() + TIMEOUT;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const hostOf = new Map<Relay, Host>();
/** The host of a relay made by `pair`. */
function b(relay: Relay): Host {
  return hostOf.get(relay) as Host;
}

/** Two hosts, `b` dialling `a` in process; returns them with their relays and transports. */
async function pair(options: { awayTimeout?: number; maxQueue?: number } = {}) {
  const name = `sessions-${++names}`;
  const a = host();
  const b = host();
  const ta = new InProcessTransport({ listen: name, awayTimeout: options.awayTimeout });
  const tb = new InProcessTransport({ peers: [name], awayTimeout: options.awayTimeout });
  const ra = await a.startRelay({ transports: [ta], maxQueue: options.maxQueue });
  const rb = await b.startRelay({ transports: [tb], maxQueue: options.maxQueue });
  await until(() => ra.stats().hosts === 1 && rb.stats().hosts === 1, "the hosts to link");
  hostOf.set(ra, a).set(rb, b);
  return { a, b, ra, rb, ta, tb, name };
}

async function drain(sub: { next(options: { timeout: number }): Promise<unknown> }, count: number): Promise<unknown[]> {
  const got: unknown[] = [];
  while (got.length < count) got.push(await sub.next({ timeout: TIMEOUT }));
  return got;
}

const range = (count: number): number[] => Array.from({ length: count }, (_, i) => i);

describe("a host link", () => {
  it("resumes after its connection drops: nothing is lost and nothing arrives twice", async () => {
    const { a, b, ra, ta } = await pair();
    const subscriber = b.createRouter({ scope: "s", capacity: 100_000 });
    const sub = subscriber.subscribe("t");
    await subscriber.flush();
    const publisher = a.createRouter({ scope: "s", capacity: 1 });
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2000; i++) publisher.publish("t", round * 2000 + i);
      // Dropped mid-stream: some of the round is written to the old connection, some waits.
      await sleep(0);
      ta.dropConnections();
    }
    expect(await drain(sub, 10_000)).toEqual(range(10_000));
    await subscriber.flush();
    expect(sub.size).toBe(0);
    expect(ra.stats().dropped.disconnected).toBe(0);
  });

  it("keeps a host that is away, with its interest, and sends what waited when it is back", async () => {
    const { a, b, ra, ta } = await pair();
    const subscriber = b.createRouter({ scope: "s", capacity: 1000 });
    const sub = subscriber.subscribe("t");
    await subscriber.flush();
    // Dropped, and the dialler cannot reach it until the listener is back.
    ta.dropConnections();
    await until(() => ra.stats().hostsAway === 1, "the host to be away");
    const publisher = a.createRouter({ scope: "s", capacity: 1 });
    for (let i = 0; i < 100; i++) publisher.publish("t", i);
    expect(await drain(sub, 100)).toEqual(range(100));
    expect(ra.stats()).toMatchObject({ hosts: 1, hostsAway: 0 });
  });

  it("bounds what waits for a host that is away, and counts what it drops", async () => {
    const { a, b, ra, tb } = await pair({ maxQueue: 100 });
    const subscriber = b.createRouter({ scope: "s", capacity: 1000 });
    const sub = subscriber.subscribe("t");
    await subscriber.flush();
    await tb.close(); // b's relay stays, but it is unreachable
    await until(() => ra.stats().hostsAway === 1, "the host to be away");
    const publisher = a.createRouter({ scope: "s", capacity: 1 });
    for (let i = 0; i < 1000; i++) publisher.publish("t", i);
    // The bound holds what waits: the first messages (less the few neighbour lists not yet acknowledged).
    const dropped = ra.stats().dropped.queueFull;
    expect(dropped).toBeGreaterThanOrEqual(900);
    expect(dropped).toBeLessThanOrEqual(910);
    // b comes back through a new transport: what waited for it arrives.
    const name = `sessions-${++names}`;
    await a.startRelay({ transports: [new InProcessTransport({ listen: name })] });
    await b.startRelay({ transports: [new InProcessTransport({ peers: [name] })] });
    expect(await drain(sub, 1000 - dropped)).toEqual(range(1000 - dropped));
  });

  it("gives up on a host that stays away longer than awayTimeout, and counts what it had not acknowledged", async () => {
    const { a, b, ra, tb } = await pair({ awayTimeout: 50 });
    const subscriber = b.createRouter({ scope: "s", capacity: 1000 });
    subscriber.subscribe("t");
    await subscriber.flush();
    await tb.close();
    await until(() => ra.stats().hostsAway === 1, "the host to be away");
    const publisher = a.createRouter({ scope: "s", capacity: 1 });
    for (let i = 0; i < 30; i++) publisher.publish("t", i);
    await until(() => ra.stats().hostsAway === 0, "the host to be given up");
    expect(ra.stats().dropped.disconnected).toBe(30);
    // Its interest went with it: later messages are not kept for it.
    publisher.publish("t", 30);
    expect(ra.stats().sent).toBe(30);
  });

  it("drops what waited for a host at once when a new process answers at its address", async () => {
    const { a, rb, ta, name } = await pair();
    const subscriber = a.createRouter({ scope: "s", capacity: 1000 });
    subscriber.subscribe("t");
    await subscriber.flush();
    // a, the listener, vanishes without a word (its relay never says bye): b keeps its place.
    await ta.close();
    await until(() => rb.stats().hostsAway === 1, "the listener to be away");
    const publisher = b(rb).createRouter({ scope: "s", capacity: 1 });
    for (let i = 0; i < 7; i++) publisher.publish("t", i);
    // A new process listens at the same address: the old one is not coming back.
    const again = host();
    const fresh = again.createRouter({ scope: "s", capacity: 1000 });
    const sub = fresh.subscribe("t");
    await again.startRelay({ transports: [new InProcessTransport({ listen: name })] });
    await until(() => rb.stats().hosts === 1, "the dialler to reach the new process");
    expect(rb.stats()).toMatchObject({ hostsAway: 0, dropped: { disconnected: 7 } });
    await fresh.flush();
    publisher.publish("t", "to the new process");
    expect(await sub.next({ timeout: TIMEOUT })).toBe("to the new process");
  });

  it("keeps one connection between two hosts that dial each other", async () => {
    const [x, y] = [`mutual-${++names}`, `mutual-${++names}`];
    const a = host();
    const b = host();
    // Started together: each startRelay waits for the other host to be linked.
    const [ra, rb] = await Promise.all([
      a.startRelay({ transports: [new InProcessTransport({ listen: x, peers: [y] })] }),
      b.startRelay({ transports: [new InProcessTransport({ listen: y, peers: [x] })] }),
    ]);
    expect([ra.stats().hosts, rb.stats().hosts]).toEqual([1, 1]);
    const subscriber = b.createRouter({ scope: "s", capacity: 1000 });
    const sub = subscriber.subscribe("t");
    await subscriber.flush();
    const publisher = a.createRouter({ scope: "s", capacity: 1 });
    for (let i = 0; i < 500; i++) publisher.publish("t", i);
    expect(await drain(sub, 500)).toEqual(range(500));
    await subscriber.flush();
    expect(sub.size).toBe(0);
    expect(ra.stats().sent).toBe(500);
  });
});

describe("a ring of hosts (a layout roar does not support)", () => {
  it("stops a message after 8 hosts and counts it, and a flush still resolves", async () => {
    const ring = [0, 1, 2, 3].map((i) => `ring-${i}-${++names}`);
    const hosts = ring.map(() => host());
    const relays: Relay[] = [];
    for (const [i, name] of ring.entries()) {
      relays.push(await (hosts[i] as Host).startRelay({ transports: [new InProcessTransport({ listen: name, peers: i === 0 ? [] : [ring[i - 1] as string] })] }));
    }
    await (hosts[0] as Host).startRelay({ transports: [new InProcessTransport({ peers: [ring[3] as string] })] });
    await until(() => relays.every((relay) => relay.stats().hosts === 2), "the ring to close");
    const counts = [0, 0, 0, 0];
    const routers = hosts.map((each, i) => {
      const router = each.createRouter({ scope: "s", capacity: 10 });
      router.on("t", () => void counts[i]!++);
      return router;
    });
    await Promise.all(routers.map((router) => router.flush()));
    (routers[0] as (typeof routers)[number]).publish("t", "once");
    await until(() => relays.reduce((sum, relay) => sum + relay.stats().dropped.looped, 0) > 0, "the message to be stopped");
    await Promise.all(routers.map((router) => router.flush()));
    const total = counts.reduce((sum, count) => sum + count, 0);
    expect(total).toBeGreaterThanOrEqual(4);
    expect(total).toBeLessThanOrEqual(4 * 8);
  });
});

describe("hosts whose links change under way", () => {
  it("loses nothing and doubles nothing when two hosts that reached each other through a third link directly", async () => {
    const [na, nb] = [`line-a-${++names}`, `line-b-${++names}`];
    const a = host();
    const b = host();
    const c = host();
    const ra = await a.startRelay({ transports: [new InProcessTransport({ listen: na })] });
    await b.startRelay({ transports: [new InProcessTransport({ listen: nb, peers: [na] })] });
    const rc = await c.startRelay({ transports: [new InProcessTransport({ peers: [nb] })] });
    const subscriber = c.createRouter({ scope: "s", capacity: 10 });
    const got: number[] = [];
    subscriber.on("t", (n) => void got.push(n as number));
    await until(() => ra.stats().hosts === 1 && rc.stats().hosts === 1, "the line to link");
    await subscriber.flush();
    const publisher = a.createRouter({ scope: "s", capacity: 1 });
    let published = 0;
    let publishing = true;
    const publish = (): void => {
      if (!publishing) return;
      for (let i = 0; i < 5; i++) publisher.publish("t", published++);
      setImmediate(publish);
    };
    publish();
    await until(() => got.length > 100, "messages through b");
    await c.startRelay({ transports: [new InProcessTransport({ peers: [na] })] }); // c dials a directly
    await until(() => rc.stats().hosts === 2, "the direct link");
    const linkedAt = published;
    await until(() => published > linkedAt + 1000, "more messages after the direct link");
    publishing = false;
    await subscriber.flush();
    await until(() => got.length >= published, "every message");
    expect(new Set(got).size).toBe(published);
    expect(got.length).toBe(published);
  });

  it("a host that comes back from away learns the neighbours of what waited for it in their place, and passes nothing on twice", async () => {
    const [na, nb] = [`away-a-${++names}`, `away-b-${++names}`];
    const a = host();
    const b = host();
    const c = host();
    const tb = new InProcessTransport({ listen: nb });
    const rb = await b.startRelay({ transports: [tb] });
    const ra = await a.startRelay({ transports: [new InProcessTransport({ listen: na, peers: [nb] })] });
    const rc = await c.startRelay({ transports: [new InProcessTransport({ peers: [nb] })] });
    const subscriber = c.createRouter({ scope: "s", capacity: 10 });
    const got: unknown[] = [];
    subscriber.on("t", (message) => void got.push(message));
    await until(() => rb.stats().hosts === 2, "the line to link");
    await subscriber.flush();
    await tb.close(); // the network around b fails: a and c are away there, b at them
    await until(() => ra.stats().hostsAway === 1 && rc.stats().hostsAway === 1, "b to be away");
    await c.startRelay({ transports: [new InProcessTransport({ peers: [na] })] }); // c links to a directly
    await until(() => ra.stats().hosts === 1 && rc.stats().hosts === 1, "the direct link");
    await subscriber.flush();
    a.createRouter({ scope: "s", capacity: 1 }).publish("t", "m"); // to c directly; waits at a for b
    await until(() => got.length === 1, "the message");
    await b.startRelay({ transports: [new InProcessTransport({ listen: nb })] }); // a and c dial b again
    await until(() => ra.stats().hosts === 2 && rc.stats().hosts === 2 && rb.stats().hosts === 2, "b to be back");
    await subscriber.flush();
    expect(got).toEqual(["m"]);
  });
});

/**
 * A transport whose one connection the test drives by hand, as a peer host would (or as a
 * broken or hostile one would).
 */
class HandTransport implements Transport {
  readonly name = "hand";
  readonly texts: unknown[][] = [];
  closedWith: string | undefined;
  events!: ConnectionEvents;
  #context!: TransportContext;

  constructor(readonly maxPayload?: number) {}

  start(context: TransportContext): Promise<void> {
    this.#context = context;
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  open(): void {
    const connection: Connection = {
      send: (text, sent) => {
        this.texts.push(JSON.parse(text) as unknown[]);
        sent();
      },
      close: (reason) => {
        this.closedWith ??= reason;
        queueMicrotask(() => this.events.closed());
      },
      ...(this.maxPayload === undefined ? {} : { maxPayload: this.maxPayload }),
    };
    this.events = this.#context.connected(connection);
  }

  send(...frames: unknown[]): void {
    this.events.receive(JSON.stringify(frames));
  }

  /** Frames of kind `kind` the host sent. */
  frames(kind: string): unknown[][] {
    return this.texts.flat().filter((frame) => Array.isArray(frame) && frame[0] === kind) as unknown[][];
  }
}

async function handPeer(maxPayload = 1 << 20): Promise<{ local: Host; relay: Relay; hand: HandTransport }> {
  const local = host();
  const hand = new HandTransport();
  const relay = await local.startRelay({ transports: [hand] });
  hand.open();
  hand.send(["H", 1, "hand-node", maxPayload]);
  hand.send(["R", "hand-session", "", 0]);
  await until(() => relay.stats().hosts === 1, "the hand peer to link");
  return { local, relay, hand };
}

describe("a host's input from the network", () => {
  it.each([
    ["a text that is not JSON", "{{{"],
    ["a handshake that is not one", JSON.stringify([["H", "one", "", -1]])],
    ["a batch that is not an array", JSON.stringify({ H: 1 })],
    ["a handshake with frames after it in its text", JSON.stringify([["H", 1, "hand-node", 1 << 20], ["R", "hand-session", "", 0]])],
  ])("refuses %s in place of a handshake: counted, connection closed", async (_, text) => {
    const local = host();
    const hand = new HandTransport();
    const relay = await local.startRelay({ transports: [hand] });
    hand.open();
    hand.events.receive(text);
    expect(relay.stats()).toMatchObject({ hosts: 0, dropped: { malformed: 1 } });
    expect(hand.closedWith).toMatch(/^roar: protocol error/);
  });

  it.each([
    ["a message before the resume", null, [["m", "s", "t", '{"json":1}']]],
    ["a frame of an unknown kind", ["R", "hand-session", "", 0], [["z"]]],
    ["a port introduction", ["R", "hand-session", "", 0], [["p", 0, {}, {}, [], {}]]],
    ["a flush request (hosts sync, they never flush upstream)", ["R", "hand-session", "", 0], [["f", 1]]],
    ["a message whose payload is not encoded", ["R", "hand-session", "", 0], [["m", "s", "t", { json: 1 }]]],
  ])("closes the connection of a peer that sends %s, and counts it", async (_, resume, ...texts) => {
    const local = host();
    const hand = new HandTransport();
    const relay = await local.startRelay({ transports: [hand] });
    hand.open();
    hand.send(["H", 1, "hand-node", 1 << 20]);
    if (resume !== null) hand.send(resume);
    for (const frames of texts as unknown[][][]) hand.send(...frames);
    await until(() => hand.closedWith !== undefined, "the connection to close");
    expect(hand.closedWith).toMatch(/^roar: protocol error/);
    expect(relay.stats().dropped.malformed).toBe(1);
  });

  it("closes the connection of a peer that resumes from a message it could not have received", async () => {
    const { hand, relay } = await handPeer();
    const session = hand.frames("R")[0]?.[1] as string;
    hand.events.closed();
    hand.open();
    hand.send(["H", 1, "hand-node", 1 << 20]);
    hand.send(["R", "hand-session", session, 5]);
    await until(() => hand.closedWith !== undefined, "the connection to close");
    expect(hand.closedWith).toMatch(/^roar: protocol error: a resume/);
    expect(relay.stats().dropped.malformed).toBe(1);
  });

  it("keeps, of two connections a peer dialled, the one it dialled last, whatever order their handshakes arrive in", async () => {
    const local = host();
    const hand = new HandTransport();
    await local.startRelay({ transports: [hand] });
    hand.open();
    const later = hand.events;
    hand.open();
    const earlier = hand.events;
    // The later dial's handshake arrives first: the earlier one's is refused, not taken as newer.
    later.receive(JSON.stringify([["H", 1, "hand-node", 1 << 20, 2]]));
    earlier.receive(JSON.stringify([["H", 1, "hand-node", 1 << 20, 1]]));
    expect(hand.closedWith).toBe("roar: duplicate connection: these hosts are already linked");
  });

  it("takes nothing a peer says about prototypes into any object", async () => {
    const { local, relay, hand } = await handPeer();
    const router = local.createRouter({ scope: "__proto__", capacity: 10 });
    const sub = router.subscribe("__proto__");
    hand.send(
      ["i", "__proto__", "__proto__", 1],
      ["m", "__proto__", "__proto__", '{"json":{"__proto__":{"polluted":true}}}'],
      ["m", "__proto__", "__proto__", '{"json":{"plain":"after"}}'],
    );
    const got = (await sub.next({ timeout: TIMEOUT })) as Record<string, unknown>;
    // An own `__proto__` key is what no publish could send: dropped where it is decoded, and counted.
    expect(got).toEqual({ plain: "after" });
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(relay.stats().dropped.undecodable).toBe(1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("splits batches to fit the peer's maxPayload, and drops and counts a message that cannot fit", async () => {
    const warning = jest.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    const { local, relay, hand } = await handPeer(2048);
    hand.send(["h", 1, "hand-node", 1, [["s", "t"]]]);
    await until(() => relay.stats().dropped.oversized === 0 && hand.frames("h").length > 0, "the hello");
    const router = local.createRouter({ scope: "s", capacity: 1 });
    router.publish("t", "x".repeat(4000));
    for (let i = 0; i < 200; i++) router.publish("t", `small ${i} ${"y".repeat(40)}`);
    await until(() => hand.frames("m").length + hand.frames("M").reduce((n, frame) => n + (frame[3] as unknown[]).length, 0) === 200, "the small messages");
    expect(relay.stats().dropped.oversized).toBe(1);
    for (const text of hand.texts) expect(Buffer.byteLength(JSON.stringify(text))).toBeLessThanOrEqual(2048);
    expect(warning).toHaveBeenCalledWith(expect.stringMatching(/larger than host hand-node accepts/), expect.objectContaining({ code: "ERR_ROAR_OVERSIZED" }));
  });

  it("counts a message's JSON escaping when it checks the peer's maxPayload", async () => {
    jest.spyOn(process, "emitWarning").mockImplementation(() => undefined);
    const { local, relay, hand } = await handPeer(2048);
    hand.send(["h", 1, "hand-node", 1, [["s", "t"]]]);
    await until(() => hand.frames("h").length > 0, "the hello");
    const router = local.createRouter({ scope: "s", capacity: 1 });
    router.publish("t", '"'.repeat(1500)); // 1,500 bytes as a string, over 3,000 escaped in a text
    router.publish("t", "fits");
    await until(() => hand.frames("m").length + hand.frames("M").length > 0, "the message that fits");
    expect(relay.stats().dropped.oversized).toBe(1);
    for (const text of hand.texts) expect(Buffer.byteLength(JSON.stringify(text))).toBeLessThanOrEqual(2048);
  });

  it("acknowledges what it received, so the peer may forget it", async () => {
    const { local, hand } = await handPeer();
    const sub = local.createRouter({ scope: "s", capacity: 10 }).subscribe("t");
    hand.send(["m", "s", "t", '{"json":"one"}'], ["M", "s", "t", ['{"json":"two"}', '{"json":"three"}']]);
    expect(await drain(sub, 3)).toEqual(["one", "two", "three"]);
    await until(() => hand.frames("A").some((frame) => frame[1] === 3), "an acknowledgement of all three");
  });

  it("resends, after a resume, exactly what the peer says it has not received", async () => {
    const { local, hand } = await handPeer();
    hand.send(["h", 1, "hand-node", 1, [["s", "t"]]]);
    await until(() => hand.frames("h").length > 0, "the hello");
    const router = local.createRouter({ scope: "s", capacity: 1 });
    for (let i = 0; i < 5; i++) router.publish("t", i);
    const session = hand.frames("R")[0]?.[1] as string;
    // The connection drops; the peer comes back having received what was numbered up to the
    // second message (neighbour lists are numbered with the messages).
    const numbered = (): unknown[] =>
      hand.texts.flat().flatMap((frame) => {
        const [kind, , , payloads] = frame as [string, unknown, unknown, unknown];
        return kind === "n" ? ["n"] : kind === "m" ? [payloads] : kind === "M" ? (payloads as unknown[]) : [];
      });
    await until(() => numbered().includes('{"json":4}'), "all five messages");
    const received = numbered().indexOf('{"json":1}') + 1;
    hand.events.closed();
    hand.texts.length = 0;
    hand.open();
    hand.send(["H", 1, "hand-node", 1 << 20]);
    hand.send(["R", "hand-session", session, received]);
    await until(() => hand.frames("M").length + hand.frames("m").length > 0, "the resent messages");
    const resent = hand.frames("M").flatMap((frame) => frame[3] as string[]).concat(hand.frames("m").map((frame) => frame[3] as string));
    expect(resent).toEqual(['{"json":2}', '{"json":3}', '{"json":4}']);
  });
});
