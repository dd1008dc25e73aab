/**
 * The door of a WebSocket listener: what a connection that has not shaken hands may hold.
 *
 * The listener runs in a host process of its own (spec/fixtures/peer.ts), so its memory and
 * descriptors are its own; this process plays the strangers, as an attacker would: raw TCP
 * sockets that never speak, WebSockets that never send the handshake, a big text where the
 * handshake should be, a wrong token, and a flood of all of them while a real host dials.
 *
 * Nothing waits a fixed time: every wait is for an event or a condition, with a generous
 * timeout; where time is the claim, it is measured and bounded with room for a loaded machine.
 */
import { afterEach, describe, expect, it, jest } from "@jest/globals";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import { RoarError } from "../../lib/errors.js";
import { createHost, type Host } from "../../lib/isolated-host.js";
import type { Connection, ConnectionEvents, Transport, TransportContext } from "../../lib/transport.js";
import { WebSocketTransport } from "../../lib/transports/websocket.js";
import type { StatsReport, TransportSpec } from "../fixtures/protocol.js";
import { Cleanup, forkPeer, range, TIMEOUT, waitFor, type ProcessPeer } from "../integration/support.js";

const cleanup = new Cleanup();
afterEach(async () => {
  await cleanup.run();
  jest.restoreAllMocks();
});

const LOCAL = "127.0.0.1";
const TOKEN = "the secret of these hosts";
const RETRY = { min: 20, max: 250 };
/** The listener's handshake timeout where a test measures it. */
const HANDSHAKE_MS = 1500;
/** Room for a loaded 2-core machine on top of a bound measured in time. */
const SLACK_MS = 5000;

interface Listener {
  process: ProcessPeer;
  url: string;
  port: number;
  stats(): Promise<StatsReport>;
}

/** A host process whose relay listens on 127.0.0.1 with `options` (the token, unless given). */
async function listener(options: Partial<TransportSpec> = {}): Promise<Listener> {
  const forked = await forkPeer("door-listener");
  cleanup.add(() => forked.stop());
  const { port } = await forked.peer.call("startTransport", { options: { listen: { port: 0, host: LOCAL }, token: TOKEN, ...options } });
  return { process: forked, port: port as number, url: `ws://${LOCAL}:${port}`, stats: () => forked.peer.call("stats", {}) };
}

/** A real host process dialling `url`; resolves once its startRelay did (so, linked). */
async function dialler(url: string): Promise<ProcessPeer> {
  const forked = await forkPeer("door-dialler");
  cleanup.add(() => forked.stop());
  await forked.peer.call("startTransport", { options: { peers: [url], token: TOKEN, retry: RETRY } });
  return forked;
}

/** A raw TCP socket to `port` that never sends a byte. */
interface Silent {
  /** When it connected. */
  opened: number;
  /** Resolves with when it closed. */
  closed: Promise<number>;
  /** Whether it has closed. */
  isClosed(): boolean;
}

/** Connects a {@link Silent} socket; resolves once connected. */
async function silentSocket(port: number): Promise<Silent> {
  const socket: Socket = connect(port, LOCAL);
  socket.on("error", () => undefined); // a reset is a close too
  cleanup.add(() => socket.destroy());
  let isClosed = false;
  const closed = new Promise<number>((resolve) =>
    socket.once("close", () => {
      isClosed = true;
      resolve(performance.now());
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("close", () => reject(new Error("closed before it connected")));
  });
  return { opened: performance.now(), closed, isClosed: () => isClosed };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** The peak resident set of process `pid`, in bytes (VmHWM). */
function peakRss(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (match === null) throw new Error(`no VmHWM for ${pid}`);
  return Number(match[1]) * 1024;
}

/** A WebSocket to `url` with `token`; `texts` collects what the listener sends. */
function rawWebSocket(url: string, token: string | undefined) {
  const socket = new WebSocket(url, { headers: token === undefined ? {} : { "x-roar-token": token }, perMessageDeflate: false });
  cleanup.add(() => socket.terminate());
  socket.on("error", () => undefined);
  const texts: string[] = [];
  socket.on("message", (data) => texts.push(data.toString()));
  const opened = new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("close", (code) => reject(new Error(`closed (${code}) before it opened`)));
  });
  opened.catch(() => undefined);
  const closed = new Promise<{ at: number; code: number }>((resolve) => socket.once("close", (code) => resolve({ at: performance.now(), code })));
  return { socket, texts, opened, closed };
}

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error("it did not throw");
}

describe("the door of a WebSocket listener", () => {
  it("closes 1,000 raw TCP connections that never speak within its handshake timeout, and a real host links afterwards", async () => {
    // Places for all of them: here the timer alone must close them.
    const L = await listener({ handshakeTimeout: HANDSHAKE_MS, maxUnauthenticated: 2000 });
    const sockets = await Promise.all(range(1000).map(() => silentSocket(L.port)));
    const lifetimes = await within(
      Promise.all(sockets.map(async ({ opened, closed }) => (await closed) - opened)),
      HANDSHAKE_MS + SLACK_MS,
      "the listener closing every silent socket",
    );
    expect(Math.max(...lifetimes)).toBeLessThan(HANDSHAKE_MS + SLACK_MS);
    // Closed by the timer, not at once: each was given its time.
    expect(Math.min(...lifetimes)).toBeGreaterThan(HANDSHAKE_MS * 0.5);
    expect((await L.stats()).dropped.unauthenticated).toBe(1000);

    await dialler(L.url);
    expect((await L.stats()).hosts).toBe(1);
  });

  it("closes a WebSocket that upgrades with the right token but never sends the handshake", async () => {
    const L = await listener({ handshakeTimeout: HANDSHAKE_MS });
    const raw = rawWebSocket(L.url, TOKEN);
    await raw.opened;
    const opened = performance.now();
    // The listener says its handshake; this client never answers.
    await waitFor(() => raw.texts.length === 1, "the listener's handshake");
    expect(JSON.parse(raw.texts[0] as string)[0][0]).toBe("H");
    const { at } = await within(raw.closed, HANDSHAKE_MS + SLACK_MS, "the listener closing the silent WebSocket");
    expect(at - opened).toBeLessThan(HANDSHAKE_MS + SLACK_MS);
    const stats = await L.stats();
    expect({ unauthenticated: stats.dropped.unauthenticated, hosts: stats.hosts }).toEqual({ unauthenticated: 1, hosts: 0 });
  });

  it("refuses a 1 MiB text sent before the handshake without buffering or parsing it: the listener's peak RSS does not grow", async () => {
    const L = await listener();
    // A real host first, so that the listener's peak includes what linking costs.
    const D = await dialler(L.url);
    await D.stop();
    await L.process.peer.call("waitStats", { hosts: 0, timeout: TIMEOUT });
    const pid = L.process.child.pid as number;
    const before = peakRss(pid);
    // Nested arrays: the costliest JSON to parse (about 50 bytes of heap per byte of text).
    const bomb = "[".repeat(512 * 1024) + "]".repeat(512 * 1024);
    const raws = range(8).map(() => rawWebSocket(L.url, TOKEN));
    await Promise.all(raws.map((raw) => raw.opened));
    for (const raw of raws) raw.socket.send(bomb);
    for (const raw of raws) await within(raw.closed, TIMEOUT, "the listener refusing the big text");
    const grown = peakRss(pid) - before;
    // 8 MiB were sent in all; parsing one of them would cost ~50 MiB.
    expect(grown).toBeLessThan(16 * 1024 * 1024);
    const stats = await L.process.peer.call("waitStats", { droppedAtLeast: { oversized: 8 }, timeout: TIMEOUT });
    expect({ oversized: stats.dropped.oversized, malformed: stats.dropped.malformed }).toEqual({ oversized: 8, malformed: 0 });
    // And the listener still takes a real host.
    await dialler(L.url);
    expect((await L.stats()).hosts).toBe(1);
  });

  it("refuses a wrong or missing token before the upgrade: HTTP 401 with the reason, no WebSocket, no handshake sent", async () => {
    const L = await listener();
    for (const [token, reason] of [
      ["not the secret", "roar: unauthorized: wrong token"],
      [undefined, "roar: unauthorized: no token"],
    ] as const) {
      const socket = new WebSocket(L.url, { headers: token === undefined ? {} : { "x-roar-token": token }, perMessageDeflate: false });
      cleanup.add(() => socket.terminate());
      socket.on("error", () => undefined);
      let upgraded = false;
      socket.on("upgrade", () => (upgraded = true));
      socket.on("open", () => (upgraded = true));
      const response = await within(
        new Promise<{ status: number | undefined; reason: unknown }>((resolve) =>
          socket.once("unexpected-response", (_request, res) => {
            resolve({ status: res.statusCode, reason: res.headers["x-roar-reason"] });
            socket.terminate();
          }),
        ),
        TIMEOUT,
        "the refusal",
      );
      expect({ ...response, upgraded }).toEqual({ status: 401, reason, upgraded: false });
    }
    expect((await L.stats()).dropped.unauthenticated).toBe(2);
  });

  it("a dialler refused before the upgrade warns ERR_ROAR_UNAUTHORIZED with the listener's reason", async () => {
    const L = await listener();
    const W = await forkPeer("door-wrong-token");
    cleanup.add(() => W.stop());
    // startRelay resolves at once for a peer that refused the token, however long connectTimeout is.
    await W.peer.call("startTransport", { options: { peers: [L.url], token: "not the secret", retry: RETRY }, connectTimeout: 10 * TIMEOUT });
    const refused = await W.peer.call("waitWarning", { code: "ERR_ROAR_UNAUTHORIZED", timeout: TIMEOUT });
    expect(refused.message).toMatch(/refused this host's token \(roar: unauthorized: wrong token\)/);
    const unreachable = await W.peer.call("waitWarning", { code: "ERR_ROAR_PEER_UNREACHABLE", timeout: TIMEOUT });
    expect(unreachable.message).toContain(`${L.url} (it refused this host's token`);
    expect((await L.stats()).dropped.unauthenticated).toBeGreaterThanOrEqual(1);
  });

  it("a flood of connections beyond maxUnauthenticated does not lock out a host that shakes hands", async () => {
    // The timer never frees a place in this test: only the bound does.
    const L = await listener({ handshakeTimeout: 10 * TIMEOUT, maxUnauthenticated: 64 });
    const flood = await Promise.all(range(500).map(() => silentSocket(L.port)));
    // The listener keeps only the newest 64.
    await waitFor(() => flood.filter((socket) => socket.isClosed()).length >= 436, "the oldest 436 to be closed");
    let flooding = true;
    const more = (async () => {
      let sent = 0;
      while (flooding) {
        await Promise.all(range(10).map(() => silentSocket(L.port).catch(() => undefined)));
        sent += 10;
      }
      return sent;
    })();
    try {
      // A real host dials through the flood: its startRelay resolves once it is linked.
      await dialler(L.url);
    } finally {
      flooding = false;
    }
    const sent = await more;
    expect((await L.stats()).hosts).toBe(1);
    // Every connection beyond the 64 places is closed and counted.
    await L.process.peer.call("waitStats", { hosts: 1, droppedAtLeast: { unauthenticated: 500 + sent - 64 }, timeout: TIMEOUT });
  });
});

describe("a listener without a token", () => {
  const captured: { code: string | undefined; message: string }[] = [];
  /**
   * Records the warnings roar emits. (Under jest the `process` a spec sees is a copy whose
   * events the real one does not reach: spy on emitWarning instead of listening.)
   */
  function captureWarnings(): void {
    jest.spyOn(process, "emitWarning").mockImplementation(((warning: string | Error, options?: { code?: string }) => {
      captured.push({ code: options?.code, message: String(warning) });
    }) as typeof process.emitWarning);
  }
  const hosts: Host[] = [];
  afterEach(async () => {
    captured.length = 0;
    await Promise.all(hosts.splice(0).map((host) => host.close()));
  });

  it("refuses to listen beyond loopback unless told `insecure: true`", () => {
    for (const host of [undefined, "0.0.0.0", "::", "10.0.0.1", "example.com"]) {
      const error = thrown(() => new WebSocketTransport({ listen: { port: 0, host } }));
      expect(error).toBeInstanceOf(RoarError);
      expect(error).toMatchObject({ code: "ERR_ROAR_INVALID_OPTION", message: expect.stringMatching(/without `options.token` lets anyone who reaches the port join/) });
    }
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) {
      expect(() => new WebSocketTransport({ listen: { port: 0, host } })).not.toThrow();
    }
    expect(() => new WebSocketTransport({ listen: { port: 0, host: "0.0.0.0" }, token: TOKEN })).not.toThrow();
    expect(() => new WebSocketTransport({ listen: { port: 0 }, insecure: "yes" as unknown as boolean })).toThrow(/`options.insecure` must be a boolean/);
  });

  it("with `insecure: true`, listens on every address and warns ERR_ROAR_INSECURE at start", async () => {
    captureWarnings();
    const host = createHost();
    hosts.push(host);
    const transport = new WebSocketTransport({ listen: { port: 0, host: "0.0.0.0" }, insecure: true });
    await host.startRelay({ transports: [transport] });
    expect(captured.find((warning) => warning.code === "ERR_ROAR_INSECURE")?.message).toMatch(
      new RegExp(`listens on 0\\.0\\.0\\.0:${transport.port} without a token .*anyone who reaches the port can join this host`),
    );
  });

  it("on loopback, starts without a word", async () => {
    captureWarnings();
    const host = createHost();
    hosts.push(host);
    await host.startRelay({ transports: [new WebSocketTransport({ listen: { port: 0, host: LOCAL } })] });
    expect(captured.filter((warning) => warning.code?.startsWith("ERR_ROAR_"))).toEqual([]);
  });
});

describe("roar's own door, whatever the transport", () => {
  /** A transport that opens one connection to roar and sends `first` on it. */
  function oneConnection(first: string): { transport: Transport; closed: Promise<string> } {
    let closedWith: (reason: string) => void = () => undefined;
    const closed = new Promise<string>((resolve) => (closedWith = resolve));
    const transport: Transport = {
      name: "one-connection",
      async start(context: TransportContext) {
        const connection: Connection = { send: (_text, sent) => sent(), close: (reason) => closedWith(reason) };
        const events: ConnectionEvents = context.connected(connection);
        setImmediate(() => events.receive(first));
      },
      async close() {},
    };
    return { transport, closed };
  }

  it("refuses a first text over 4096 characters without parsing it, and counts it oversized", async () => {
    const host = createHost();
    cleanup.add(() => host.close());
    const bomb = "[".repeat(512 * 1024) + "]".repeat(512 * 1024);
    const parse = jest.spyOn(JSON, "parse");
    const { transport, closed } = oneConnection(bomb);
    const relay = await host.startRelay({ transports: [transport] });
    expect(await within(closed, TIMEOUT, "the refusal")).toMatch(/^roar: protocol error: the first text must be the handshake, at most 4096 characters/);
    expect(parse.mock.calls.some(([text]) => text === bomb)).toBe(false);
    expect(relay.stats().dropped).toMatchObject({ oversized: 1, malformed: 0 });
  });

  it("closes a connection that sends no handshake within 3 s, and counts it unauthenticated", async () => {
    const host = createHost();
    cleanup.add(() => host.close());
    let closedWith: (reason: string) => void = () => undefined;
    const closed = new Promise<string>((resolve) => (closedWith = resolve));
    const started = performance.now();
    const relay = await host.startRelay({
      transports: [
        {
          name: "silent",
          async start(context: TransportContext) {
            context.connected({ send: (_text, sent) => sent(), close: (reason) => closedWith(reason) });
          },
          async close() {},
        },
      ],
    });
    expect(await within(closed, 3000 + SLACK_MS, "the close")).toBe("roar: protocol error: no handshake in time");
    expect(performance.now() - started).toBeGreaterThanOrEqual(2900);
    expect(relay.stats().dropped.unauthenticated).toBe(1);
  });
});
