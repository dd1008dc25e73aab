/**
 * Hosts: real host processes on 127.0.0.1, linked by `WebSocketTransport`.
 *
 * Each host is a peer process (spec/fixtures/peer.ts) forked from the spec: an ordinary Node
 * main thread, the root of its own host, which becomes a cluster primary when it forks
 * cluster workers (peers too). The spec starts a transport in each host's root
 * (`startTransport`), waits until the hosts are linked (`waitStats`), and checks what
 * arrives where, what the relays count, and what the network sees — with raw `ws` clients
 * where a test plays a host that misbehaves.
 *
 * Nothing here waits a fixed time: every wait is for an event or a condition, with a generous
 * timeout, so the tests hold on a loaded 2-core machine.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import type { StatsReport, Traffic, TransportSpec } from "../fixtures/protocol.js";
import { bySender, Cleanup, everyMessageOnce, forkPeer, freePorts, range, testScope, TIMEOUT, waitFor, type Peer, type ProcessPeer } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const LOCAL = "127.0.0.1";
const TOKEN = "a shared secret of these hosts";
/** Dial again soon after a failure, so reconnections do not slow the tests down. */
const RETRY = { min: 20, max: 250 };

function tlsFile(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url)), "utf8");
}

/** A host: a peer process that is the root of its host, with a WebSocket transport. */
interface Host {
  name: string;
  process: ProcessPeer;
  peer: Peer;
  /** The port it listens on, if it listens. */
  port: number | null;
  /** `ws://127.0.0.1:port` (or `wss://`), if it listens. */
  url: string;
}

/** Forks a host process and starts its transport with `options` (the token, unless given). */
async function startHost(name: string, options: TransportSpec, { maxQueue }: { maxQueue?: number } = {}): Promise<Host> {
  const forked = await forkPeer(name);
  cleanup.add(() => forked.stop());
  const { port } = await forked.peer.call("startTransport", { options: { token: TOKEN, retry: RETRY, ...options }, maxQueue });
  const scheme = options.tls?.cert === undefined ? "ws" : "wss";
  return { name, process: forked, peer: forked.peer, port, url: port === null ? "" : `${scheme}://${LOCAL}:${port}` };
}

/** Waits until each host has the given number of other hosts linked (and none away, unless given). */
async function linked(...expected: [Host, number][]): Promise<void> {
  await Promise.all(expected.map(([host, hosts]) => host.peer.call("waitStats", { hosts, hostsAway: 0, timeout: TIMEOUT })));
}

function stats(host: Host): Promise<StatsReport> {
  return host.peer.call("stats", {});
}

/** What relay.stats().dropped shows when nothing was lost. */
const NO_DROPS = { queueFull: 0, malformed: 0, undecodable: 0, unsendable: 0, oversized: 0, unauthenticated: 0, disconnected: 0, looped: 0 };

/**
 * Every publisher publishes `count` numbered messages on "t" and an end marker; every
 * subscriber (joined under key "sub") must get every publisher's run once, in order, and
 * nothing more.
 */
async function everyMessageOnceEverywhere(scope: string, subscribers: readonly [string, Peer][], publishers: readonly [string, Peer][], count: number): Promise<void> {
  const names = publishers.map(([name]) => name);
  await Promise.all(publishers.map(([from, peer]) => peer.call("publish", { scope, topic: "t", from, count, end: true })));
  for (const [name, peer] of subscribers) {
    const got = await untilEnds(peer, names);
    expect({ [name]: bySender(got) }).toEqual({ [name]: everyMessageOnce(names, count) });
    expect(await peer.call("drain", { key: "sub" })).toEqual([]);
  }
}

/** Subscribes `peer` to (scope, topic) under `key` and flushes: its interest has reached every host. */
async function join(peer: Peer, scope: string, topic = "t", key = "sub"): Promise<void> {
  await peer.call("join", { key, scope, topic, capacity: 100_000 });
}

function untilEnds(peer: Peer, ends: readonly string[], key = "sub"): Promise<Traffic[]> {
  return peer.call("untilEnds", { key, ends: [...ends], timeout: TIMEOUT });
}

/** The sequence numbers `from` published, as a subscriber got them (end marker left out). */
function seqsOf(messages: readonly Traffic[], from: string): number[] {
  return messages.filter((message): message is Extract<Traffic, { seq: number }> => message.from === from && "seq" in message).map((message) => message.seq);
}

// ---- raw WebSocket clients: a host that misbehaves ----

interface Raw {
  socket: WebSocket;
  /** Texts the host sent. */
  texts: string[];
  opened: Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
  send(value: unknown): void;
}

function rawClient(url: string, { token, ca }: { token?: string; ca?: string } = {}): Raw {
  const socket = new WebSocket(url, { headers: token === undefined ? {} : { "x-roar-token": token }, ca, perMessageDeflate: false });
  const texts: string[] = [];
  socket.on("message", (data) => texts.push(data.toString()));
  socket.on("error", () => undefined); // the close that follows says how it ended
  const opened = new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("close", (code) => reject(new Error(`closed (${code}) before it opened`)));
  });
  opened.catch(() => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.once("close", (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  cleanup.add(() => socket.terminate());
  return { socket, texts, opened, closed, send: (value) => socket.send(typeof value === "string" ? value : JSON.stringify(value)) };
}

/** A raw client that handshakes as host `node` and resumes a fresh session, as roar does. */
async function rawHost(url: string, node: string, maxPayload = 1 << 20): Promise<Raw> {
  const raw = rawClient(url, { token: TOKEN });
  await raw.opened;
  raw.send([["H", 1, node, maxPayload]]);
  raw.send([["R", `${node}-session`, "", 0]]);
  // The host's resume comes after its handshake: from then on it reads our frames.
  await waitFor(() => raw.texts.some((text) => text.startsWith('[["R"')), `${node}: the host's resume`);
  return raw;
}

/** Dials `url` with `token` and returns how the listener refused the upgrade (it must refuse). */
function refusedUpgrade(url: string, token: string | undefined): Promise<{ status: number; reason: unknown }> {
  const socket = new WebSocket(url, { headers: token === undefined ? {} : { "x-roar-token": token }, perMessageDeflate: false });
  cleanup.add(() => socket.terminate());
  socket.on("error", () => undefined);
  return new Promise((resolve, reject) => {
    socket.once("open", () => reject(new Error("the upgrade was accepted")));
    socket.once("unexpected-response", (_request, response) => {
      resolve({ status: response.statusCode ?? 0, reason: response.headers["x-roar-reason"] });
      socket.terminate();
    });
  });
}

function closedWithin(raw: Raw, what: string): Promise<{ code: number; reason: string }> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    raw.closed,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: the host did not close the connection within ${TIMEOUT} ms`)), TIMEOUT))),
  ]).finally(() => clearTimeout(timer));
}

describe("hosts over WebSocketTransport", () => {
  it("star: hosts A and B dial H; every subscriber, in primaries and cluster workers of every host, gets every message once and in order", async () => {
    const scope = testScope();
    const N = 200;
    const H = await startHost("H", { listen: { port: 0, host: LOCAL } });
    const [A, B] = await Promise.all([startHost("A", { peers: [H.url] }), startHost("B", { peers: [H.url] })]);
    const [[h1], [a1, a2], [b1]] = await Promise.all([
      Promise.all([H.peer.forkWorker("h1")]),
      Promise.all([A.peer.forkWorker("a1"), A.peer.forkWorker("a2")]),
      Promise.all([B.peer.forkWorker("b1")]),
    ]);
    await linked([H, 2], [A, 1], [B, 1]);

    const subscribers: [string, Peer][] = [
      ["H", H.peer],
      ["h1", h1],
      ["a1", a1],
      ["a2", a2],
      ["b1", b1],
      ["B", B.peer],
    ];
    for (const [, peer] of subscribers) await join(peer, scope);
    const publishers: [string, Peer][] = [
      ["h1", h1],
      ["a1", a1],
      ["A", A.peer],
      ["b1", b1],
    ];
    await everyMessageOnceEverywhere(scope, subscribers, publishers, N);
    for (const host of [H, A, B]) {
      const { dropped } = await stats(host);
      expect({ [host.name]: dropped }).toEqual({ [host.name]: NO_DROPS });
    }
  });

  it("full mesh: 3 hosts that each dial the other two keep one connection per pair and deliver every message once and in order", async () => {
    const scope = testScope();
    const N = 200;
    const ports = await freePorts(3);
    const urls = ports.map((port) => `ws://${LOCAL}:${port}`);
    const hosts = await Promise.all(
      ["A", "B", "C"].map((name, i) => startHost(name, { listen: { port: ports[i] as number, host: LOCAL }, peers: urls.filter((_, j) => j !== i) })),
    );
    const [A, B, C] = hosts as [Host, Host, Host];
    const c1 = await C.peer.forkWorker("c1");
    await linked([A, 2], [B, 2], [C, 2]);

    const subscribers: [string, Peer][] = [
      ["A", A.peer],
      ["B", B.peer],
      ["c1", c1],
    ];
    for (const [, peer] of subscribers) await join(peer, scope);
    const publishers: [string, Peer][] = [
      ["A", A.peer],
      ["B", B.peer],
      ["C", C.peer],
      ["c1", c1],
    ];
    await everyMessageOnceEverywhere(scope, subscribers, publishers, N);
    for (const host of hosts) {
      const { hosts: linkedHosts, hostsAway, dropped } = await stats(host);
      expect({ [host.name]: { linkedHosts, hostsAway, dropped } }).toEqual({
        [host.name]: { linkedHosts: 2, hostsAway: 0, dropped: NO_DROPS },
      });
    }
  });

  it("keeps scopes apart across hosts", async () => {
    const [s1, s2, s3] = [testScope(), testScope(), testScope()];
    const L = await startHost("L", { listen: { port: 0, host: LOCAL } });
    const D = await startHost("D", { peers: [L.url] });
    const d1 = await D.peer.forkWorker("d1");
    await linked([L, 1], [D, 1]);
    // L subscribes to t in s1 and s2; D's worker to t in s2 only; nobody to s3.
    await join(L.peer, s1, "t", "s1");
    await join(L.peer, s2, "t", "s2");
    await join(d1, s2, "t", "s2");
    // Each publisher publishes in every scope (s3 has no subscriber here), and only then the
    // end markers: a message that leaked into another scope would reach a subscriber before
    // that scope's end marker from the same publisher (each path is FIFO).
    const publishers = [
      ["d1", d1],
      ["L", L.peer],
    ] as const;
    const scopes = [
      [s1, "s1"],
      [s2, "s2"],
      [s3, "s3"],
    ] as const;
    for (const end of [false, true]) {
      for (const [from, peer] of publishers) {
        for (const [scope, name] of scopes) await peer.call("publish", { scope, topic: "t", from: `${from}@${name}`, count: end ? 0 : 5, start: 0, end });
      }
    }
    // Each subscriber sees its own scope's messages (its own host's included), and nothing else.
    expect(bySender(await untilEnds(L.peer, ["d1@s1", "L@s1"], "s1"))).toEqual(everyMessageOnce(["d1@s1", "L@s1"], 5));
    expect(bySender(await untilEnds(L.peer, ["d1@s2", "L@s2"], "s2"))).toEqual(everyMessageOnce(["d1@s2", "L@s2"], 5));
    expect(bySender(await untilEnds(d1, ["d1@s2", "L@s2"], "s2"))).toEqual(everyMessageOnce(["d1@s2", "L@s2"], 5));
    for (const [peer, key] of [
      [L.peer, "s1"],
      [L.peer, "s2"],
      [d1, "s2"],
    ] as const) {
      expect({ [key]: await peer.call("drain", { key }) }).toEqual({ [key]: [] });
    }
  });

  it("a host killed mid-stream and restarted on the same port: its peer dials it again, nothing arrives twice, and what the dead host missed is counted", async () => {
    const scope = testScope();
    // K is killed; P dials it (and gives it up only when a new process answers at its
    // address: awayTimeout is long, so that every loss here is the one under test); B is a
    // bystander that subscribes too.
    const K = await startHost("K", { listen: { port: 0, host: LOCAL } });
    const P = await startHost("P", { listen: { port: 0, host: LOCAL }, peers: [K.url], awayTimeout: 30_000 });
    const B = await startHost("B", { peers: [P.url] });
    await linked([P, 2], [K, 1], [B, 1]);
    await join(K.peer, scope);
    await join(B.peer, scope);

    await P.peer.call("floodStart", { key: "flood", scope, topic: "t", from: "P", chunk: 5 });
    await K.peer.call("waitStats", { receivedAtLeast: 200, timeout: TIMEOUT }); // mid-stream
    await K.process.stop(); // SIGKILL
    const deadAt = await P.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT });
    await P.peer.call("waitStats", { hosts: 1, hostsAway: 1, timeout: TIMEOUT });

    // A new process listens where K did; P dials it again by itself.
    const restartAt = await P.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT });
    const K2 = await startHost("K2", { listen: { port: K.port as number, host: LOCAL } });
    await linked([P, 2], [K2, 1]);
    const linkedAt = await P.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT });
    await join(K2.peer, scope);
    const joinedAt = await P.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT });
    await P.peer.call("floodWait", { key: "flood", atLeast: joinedAt + 500, timeout: TIMEOUT });
    const published = await P.peer.call("floodStop", { key: "flood" });
    await P.peer.call("publish", { scope, topic: "t", from: "P", count: 0, end: true });

    // The bystander got everything, once, in order: K's death cost it nothing.
    expect(bySender(await untilEnds(B.peer, ["P"]))).toEqual(everyMessageOnce(["P"], published));
    // The new K got a gapless run, from after it linked (nothing kept for the old K was
    // passed to it) to the end, each once.
    const got = seqsOf(await untilEnds(K2.peer, ["P"]), "P");
    const first = got[0] as number;
    expect(got).toEqual(range(published - first).map((i) => first + i));
    expect(first).toBeGreaterThanOrEqual(linkedAt);
    expect(first).toBeLessThanOrEqual(joinedAt);
    expect(restartAt).toBeGreaterThanOrEqual(deadAt);

    // P counted as lost what it had sent the old K that K had not acknowledged: at least
    // everything published while K was dead, at most everything P sent K.
    const p = await stats(P);
    const k2 = await stats(K2);
    expect(p.hosts).toBe(2);
    expect(p.hostsAway).toBe(0);
    expect(p.dropped.queueFull).toBe(0);
    expect(p.dropped.disconnected).toBeGreaterThanOrEqual(restartAt - deadAt);
    expect(p.dropped.disconnected).toBeGreaterThan(0);
    const sentToOldK = p.sent - (published + 1) /* to B */ - k2.received; /* to K2 */
    expect(p.dropped.disconnected).toBeLessThanOrEqual(sentToOldK);
    expect(k2.received).toBe(got.length + 1);
  });

  it("a dialling host killed and restarted is a new host: the listener gives the old one up after awayTimeout and counts what it missed", async () => {
    const scope = testScope();
    const AWAY = 1500;
    const L = await startHost("L", { listen: { port: 0, host: LOCAL }, awayTimeout: AWAY, heartbeat: 200 });
    const D = await startHost("D", { peers: [L.url], heartbeat: 200 });
    await linked([L, 1], [D, 1]);
    await join(D.peer, scope);
    await L.peer.call("floodStart", { key: "flood", scope, topic: "t", from: "L", chunk: 5 });
    await D.peer.call("waitStats", { receivedAtLeast: 200, timeout: TIMEOUT });
    await D.process.stop(); // SIGKILL
    const deadAt = await L.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT });
    // Published while the old D is away (well within awayTimeout), so counted when it expires.
    await L.peer.call("floodWait", { key: "flood", atLeast: deadAt + 20, timeout: TIMEOUT });
    await L.peer.call("waitStats", { hostsAway: 1, timeout: TIMEOUT });

    const D2 = await startHost("D2", { peers: [L.url], heartbeat: 200 });
    await D2.peer.call("waitStats", { hosts: 1, timeout: TIMEOUT });
    await join(D2.peer, scope);
    const joinedAt = await L.peer.call("floodWait", { key: "flood", atLeast: 0, timeout: TIMEOUT });
    // The old D is given up after awayTimeout: hosts 1 (D2), none away, its losses counted.
    const given = await L.peer.call("waitStats", { hosts: 1, hostsAway: 0, timeout: TIMEOUT });
    expect(given.dropped.disconnected).toBeGreaterThanOrEqual(20);
    await L.peer.call("floodWait", { key: "flood", atLeast: joinedAt + 300, timeout: TIMEOUT });
    const published = await L.peer.call("floodStop", { key: "flood" });
    await L.peer.call("publish", { scope, topic: "t", from: "L", count: 0, end: true });

    const got = seqsOf(await untilEnds(D2.peer, ["L"]), "L");
    const first = got[0] as number;
    expect(got).toEqual(range(published - first).map((i) => first + i));
    expect(first).toBeGreaterThanOrEqual(deadAt + 20);
    expect(first).toBeLessThanOrEqual(joinedAt);
    const l = await stats(L);
    const d2 = await stats(D2);
    expect(l.dropped.disconnected).toBe(given.dropped.disconnected);
    expect(l.dropped.disconnected).toBeLessThanOrEqual(l.sent - d2.received);
  });

  it("heartbeats find a stopped host: the listener shows it away, and once it runs again it resumes and gets what was published meanwhile, once", async () => {
    const scope = testScope();
    const heartbeat = 200;
    const L = await startHost("L", { listen: { port: 0, host: LOCAL }, heartbeat, awayTimeout: 60_000 }, { maxQueue: 1000 });
    const D = await startHost("D", { peers: [L.url], heartbeat, awayTimeout: 60_000 });
    const d1 = await D.peer.forkWorker("d1");
    await linked([L, 1], [D, 1]);
    await join(D.peer, scope);
    await join(d1, scope);
    // All of it fits within L's maxQueue (1000) of messages D has not acknowledged.
    const [N1, N2, N3] = [100, 300, 100];

    await L.peer.call("publish", { scope, topic: "t", from: "L", count: N1 });
    D.process.child.kill("SIGSTOP");
    cleanup.add(() => D.process.child.kill("SIGCONT"));
    // A stopped process's kernel still acknowledges TCP: only heartbeats can tell.
    await L.peer.call("waitStats", { hosts: 0, hostsAway: 1, timeout: TIMEOUT });
    await L.peer.call("publish", { scope, topic: "t", from: "L", start: N1, count: N2 });
    D.process.child.kill("SIGCONT");
    await linked([L, 1], [D, 1]);
    await L.peer.call("publish", { scope, topic: "t", from: "L", start: N1 + N2, count: N3, end: true });

    for (const peer of [D.peer, d1]) {
      expect(bySender(await untilEnds(peer, ["L"]))).toEqual(everyMessageOnce(["L"], N1 + N2 + N3));
      expect(await peer.call("drain", { key: "sub" })).toEqual([]);
    }
    const l = await stats(L);
    expect(l.dropped).toEqual(NO_DROPS);
  });

  it("a host whose relay closes says bye: its peer forgets it at once (gone, not away), and a relay started there again links anew", async () => {
    const scope = testScope();
    const L = await startHost("L", { listen: { port: 0, host: LOCAL }, awayTimeout: 60_000 });
    const D = await startHost("D", { peers: [L.url] });
    await linked([L, 1], [D, 1]);
    await join(D.peer, scope);
    const N = 50;
    await L.peer.call("publish", { scope, topic: "t", from: "L1", count: N, end: true });
    expect(bySender(await untilEnds(D.peer, ["L1"]))).toEqual(everyMessageOnce(["L1"], N));

    await D.peer.call("closeRelay", {});
    // Without the bye, L would keep D away for a minute (awayTimeout).
    await L.peer.call("waitStats", { hosts: 0, hostsAway: 0, timeout: TIMEOUT });
    await L.peer.call("publish", { scope, topic: "t", from: "L2", count: N, end: true }); // nobody beyond L wants these now

    // A new relay in D (a new node) links again, with the subscription D's router still has.
    await D.peer.call("startTransport", { options: { peers: [L.url], token: TOKEN, retry: RETRY } });
    await linked([L, 1], [D, 1]);
    await D.peer.call("flush", { scope });
    await L.peer.call("publish", { scope, topic: "t", from: "L3", count: N, end: true });
    expect(bySender(await untilEnds(D.peer, ["L3"]))).toEqual(everyMessageOnce(["L3"], N));
    expect(await D.peer.call("drain", { key: "sub" })).toEqual([]);
    // L sent runs 1 and 3 only: it forgot D's interest with the bye, so run 2 went nowhere.
    const l = await stats(L);
    expect(l.sent).toBe(2 * (N + 1));
    // D acknowledged run 1 as it said bye: nothing is counted lost.
    expect(l.dropped.disconnected).toBe(0);
  });

  it("refuses a wrong or missing token before the upgrade (HTTP 401, counted), and a host with the wrong token never links and warns", async () => {
    const L = await startHost("L", { listen: { port: 0, host: LOCAL } });
    for (const [token, what] of [
      [undefined, "no token"],
      ["not the secret", "wrong token"],
    ] as const) {
      expect(await refusedUpgrade(L.url, token)).toEqual({ status: 401, reason: `roar: unauthorized: ${what}` });
    }
    expect((await L.peer.call("waitStats", { droppedAtLeast: { unauthenticated: 2 }, timeout: TIMEOUT })).dropped.unauthenticated).toBe(2);

    const W = await startHost("W", { peers: [L.url], token: "not the secret" });
    const warning = await W.peer.call("waitWarning", { code: "ERR_ROAR_UNAUTHORIZED", timeout: TIMEOUT });
    expect(warning).toMatchObject({ name: "RoarWarning", code: "ERR_ROAR_UNAUTHORIZED" });
    expect(warning.message).toMatch(/unauthorized: wrong token/);
    // It keeps trying, and is refused every time.
    await L.peer.call("waitStats", { droppedAtLeast: { unauthenticated: 5 }, timeout: TIMEOUT });
    // A host with the right token links meanwhile.
    const G = await startHost("G", { peers: [L.url] });
    await linked([G, 1]);
    expect((await stats(L)).hosts).toBe(1);
    const w = await stats(W);
    expect({ hosts: w.hosts, hostsAway: w.hostsAway }).toEqual({ hosts: 0, hostsAway: 0 });
    expect((await W.peer.call("warnings", {})).filter((warning) => warning.code === "ERR_ROAR_UNAUTHORIZED")).toHaveLength(1);
  });

  it("garbage from the network is counted, a host that breaks the protocol is disconnected (4000), nothing is polluted, and the host keeps working", async () => {
    const scope = testScope();
    const L = await startHost("L", { listen: { port: 0, host: LOCAL }, awayTimeout: 1000 });
    const l1 = await L.peer.forkWorker("l1");
    const D = await startHost("D", { peers: [L.url] });
    await linked([L, 1], [D, 1]);
    await join(L.peer, scope);
    await join(D.peer, scope);
    for (const peer of [L.peer, l1, D.peer]) await join(peer, "__proto__", "__proto__", "proto");

    const proto = JSON.stringify({ json: JSON.parse('{"__proto__":{"polluted":true}}') as unknown });
    const broken: [string, (raw: Raw) => void, boolean][] = [
      ["a text that is not JSON", (raw) => raw.send("this is not JSON"), false],
      ["JSON that is not an array", (raw) => raw.send({ H: 1 }), false],
      ["a prototype-polluting object instead of the handshake", (raw) => raw.send('{"__proto__":{"polluted":1}}'), false],
      ["a frame before the resume", (raw) => (raw.send([["H", 1, "raw-early", 65536]]), raw.send([["i", scope, "t", 1]])), false],
      ["a peer frame", (raw) => raw.send([["p", 0, {}, {}, [], {}]]), true],
      ["a prototype-polluting object as a batch", (raw) => raw.send('{"__proto__":{"polluted":1}}'), true],
      ["a message whose payload is not encoded", (raw) => raw.send([["m", scope, "t", { json: 1 }]]), true],
      ["a frame of no known kind", (raw) => raw.send([["__proto__", 1]]), true],
    ];
    await Promise.all(
      broken.map(async ([what, send, afterResume], i) => {
        const raw = afterResume ? await rawHost(L.url, `raw-${i}`) : rawClient(L.url, { token: TOKEN });
        await raw.opened;
        send(raw);
        const { code, reason } = await closedWithin(raw, what);
        expect({ what, code, reason: reason.slice(0, "roar: protocol error".length) }).toEqual({ what, code: 4000, reason: "roar: protocol error" });
      }),
    );
    expect((await stats(L)).dropped.malformed).toBe(broken.length);

    // Well-formed frames that try their luck with prototype names are just names.
    const raw = await rawHost(L.url, "raw-proto");
    raw.send([["i", "__proto__", "__proto__", 1]]);
    raw.send([
      ["m", "__proto__", "__proto__", proto],
      ["m", "__proto__", "__proto__", JSON.stringify({ json: { a: 1 }, meta: { values: { "__proto__.polluted": ["undefined"] } } })],
      ["m", "__proto__", "constructor", proto],
      ["m", "__proto__", "__proto__", JSON.stringify({ json: "after" })],
    ]);
    for (const peer of [L.peer, l1, D.peer]) {
      // An own `__proto__` key is what no publish could send: dropped where it is decoded.
      const got = await peer.call("next", { key: "proto", count: 1, timeout: TIMEOUT });
      expect(got.map((message) => JSON.stringify(message))).toEqual(['"after"']);
      expect(await peer.call("pollution", {})).toEqual([]);
    }
    // The host forwarded the undecodable payload as it was, and counted it where it could not deliver it.
    expect((await stats(L)).dropped.undecodable).toBeGreaterThanOrEqual(2);
    expect(raw.socket.readyState).toBe(WebSocket.OPEN);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();

    // The host still links, routes and delivers.
    const N = 50;
    await D.peer.call("publish", { scope, topic: "t", from: "D", count: N, end: true });
    await L.peer.call("publish", { scope, topic: "t", from: "L", count: N, end: true });
    expect(bySender(await untilEnds(L.peer, ["D", "L"]))).toEqual(everyMessageOnce(["D", "L"], N));
    expect(bySender(await untilEnds(D.peer, ["D", "L"]))).toEqual(everyMessageOnce(["D", "L"], N));
    expect((await stats(D)).dropped.malformed).toBe(0);
    expect((await stats(L)).hosts).toBeGreaterThanOrEqual(1);
  });

  it("a frame larger than maxPayload closes the connection (1009) and is counted; a message larger than the far host accepts is dropped, counted and warned of, and the rest arrives", async () => {
    const scope = testScope();
    const X = await startHost("X", { listen: { port: 0, host: LOCAL }, maxPayload: 4096 });
    const Y = await startHost("Y", { peers: [X.url] });
    await linked([X, 1], [Y, 1]);

    const raw = rawClient(X.url, { token: TOKEN });
    await raw.opened;
    raw.send("x".repeat(10 * 1024));
    expect((await closedWithin(raw, "an oversized frame")).code).toBe(1009);
    expect((await X.peer.call("waitStats", { droppedAtLeast: { oversized: 1 }, timeout: TIMEOUT })).dropped.oversized).toBe(1);

    await join(X.peer, scope);
    await Y.peer.call("publish", { scope, topic: "t", from: "Y", count: 1 });
    await Y.peer.call("publish", { scope, topic: "t", from: "Y", start: 1, count: 1, padBytes: 10_000 });
    // Many small messages at once: more than 4096 bytes together, so sent in several texts.
    await Y.peer.call("publish", { scope, topic: "t", from: "Y", start: 2, count: 200, padBytes: 100, end: true });
    expect(bySender(await untilEnds(X.peer, ["Y"]))).toEqual({ Y: [0, ...range(200).map((i) => i + 2), "end"] });
    const warning = await Y.peer.call("waitWarning", { code: "ERR_ROAR_OVERSIZED", timeout: TIMEOUT });
    expect(warning.name).toBe("RoarWarning");
    const y = await stats(Y);
    expect(y.dropped.oversized).toBe(1);
    const x = await stats(X);
    expect({ oversized: x.dropped.oversized, malformed: x.dropped.malformed, hosts: x.hosts }).toEqual({ oversized: 1, malformed: 0, hosts: 1 });
  });

  it("wss://: a host trusting the listener's self-signed certificate links and exchanges messages; one that does not trust it never links", async () => {
    const scope = testScope();
    const cert = tlsFile("cert.pem");
    const S = await startHost("S", { listen: { port: 0, host: LOCAL }, tls: { cert, key: tlsFile("key.pem") } });
    expect(S.url).toMatch(/^wss:/);
    const [G, N] = await Promise.all([startHost("G", { peers: [S.url], tls: { ca: cert } }), startHost("N", { peers: [S.url] })]);
    await linked([S, 1], [G, 1]);
    await join(S.peer, scope);
    await join(G.peer, scope);
    await N.peer.call("subscribe", { key: "sub", scope, topic: "t" });
    const count = 50;
    await S.peer.call("publish", { scope, topic: "t", from: "S", count, end: true });
    await G.peer.call("publish", { scope, topic: "t", from: "G", count, end: true });
    for (const host of [S, G]) expect(bySender(await untilEnds(host.peer, ["S", "G"]))).toEqual(everyMessageOnce(["S", "G"], count));

    // N has been dialling (and failing the TLS handshake) all along.
    const n = await stats(N);
    expect({ hosts: n.hosts, hostsAway: n.hostsAway, received: n.received }).toEqual({ hosts: 0, hostsAway: 0, received: 0 });
    expect(await N.peer.call("drain", { key: "sub" })).toEqual([]);
    expect((await stats(S)).hosts).toBe(1);
  });
});
