/**
 * A benchmark host: a process forked by hosts.ts that stands for one host — a cluster primary
 * whose relay links to the other host with a WebSocketTransport, and one cluster worker that
 * runs peer.ts. Commands with a `host` field are the host's own; any other message goes to
 * the worker, and the worker's replies come back to the benchmark's main process.
 *
 * The primary also holds a plain `ws` socket to the other host's primary, for the raw
 * baseline that takes roar's path: each `{ raw }` message of its worker leaves with one
 * `ws.send` (JSON-encoded), and each frame that arrives goes to the worker with one `send`.
 *
 * The primaries also ping-pong themselves, host to host with no worker in the way: through
 * roar routers of their own (`echo`, `ping`), and over that raw socket (`raw-echo`,
 * `raw-ping`), whose frames then stay in the primary until `raw-relay`.
 *
 * Started with `bus` (brokers.ts), the relay links to the other host through a Redis or NATS
 * server (RedisTransport, NatsTransport) instead, and the raw channel is that engine's plain
 * client (broker-raw.ts) — one publish per message, this host's channel to the other's — used
 * by the primary itself: `raw-echo`, `raw-ping`, and for throughput `raw-send` / `raw-receive`,
 * beside roar's `subscribe` / `publish` in routers of the primary.
 */
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import * as roar from "roar";
import { NatsTransport } from "roar/nats";
import { RedisTransport } from "roar/redis";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { connectRaw, type RawBus } from "./broker-raw.js";
import { Counter, message, pingPong, publishBurst, ROUND_STARTS, sendBurst, type Tally } from "./harness.js";
import type { PeerCommand } from "./peer.js";
import type { Engine } from "./servers.js";

/** Commands a host obeys; each is answered with `{ reply: "ok", ... }`. */
export type HostCommand =
  /**
   * Starts the relay, listening on a free port or dialling `peer` (and `rawPeer` for the raw
   * relay), and forks the worker; with `bus`, the relay and the raw client use that broker
   * instead, this host receiving raw messages on channel `self` and sending on `other`.
   */
  | { host: "start"; listen?: boolean; peer?: string; rawPeer?: string; bus?: { engine: Engine; url: string; self: string; other: string } }
  /** Answers once the other host is linked, through roar and through the raw relay. */
  | { host: "linked" }
  /** Stops the worker and the relay, answers, and exits. */
  | { host: "stop" }
  /** Publishes on `to` each message a router of this primary receives on `from`. */
  | { host: "echo"; scope: string; from: string; to: string }
  /** Ping-pongs `count` times through a router of this primary; answered with `{ reply: "done", rtts }`. */
  | { host: "ping"; scope: string; from: string; to: string; count: number }
  /** Sends each frame of the raw socket back, one `ws.send` each, instead of to the worker. */
  | { host: "raw-echo" }
  /** Ping-pongs `count` times over the raw socket; answered with `{ reply: "done", rtts }`. */
  | { host: "raw-ping"; count: number }
  /** Frames of the raw socket go to the worker again (after `raw-echo` or `raw-ping`). */
  | { host: "raw-relay" }
  /** Subscribes a router of this primary to `topic`; `{ reply: "done", received, lastAt }` follows once `expect` messages arrived (or on `finish`). */
  | { host: "subscribe"; scope: string; topic: string; expect: number }
  /** Makes a router of this primary for `scope` and waits for its flush. */
  | { host: "join"; scope: string }
  /** Publishes `count` messages from a router of this primary in one synchronous loop, as a worker does (see `publishBurst`). */
  | { host: "publish"; scope: string; topic: string; count: number }
  /** Counts raw messages (broker hosts); `{ reply: "done", received, lastAt }` follows once `expect` arrived (or on `finish`). */
  | { host: "raw-receive"; expect: number }
  /** Sends `count` raw messages, one publish each, in one synchronous loop (broker hosts). */
  | { host: "raw-send"; count: number }
  /** Answers with the tally of the round this primary counts (`subscribe` or `raw-receive`). */
  | { host: "count" }
  /** Ends the round this primary counts short: its `done` is sent now, if it was not already. */
  | { host: "finish" }
  /** Answers with `{ reply: "ok", stats }`, the relay's `stats()`. */
  | { host: "stats" };

const PEER = new URL("./peer.js", import.meta.url);

let relay: roar.Relay | undefined;
let worker: ClusterWorker | undefined;
let rawServer: WebSocketServer | undefined;
let rawSocket: WebSocket | undefined;
/** The raw broker client, when the host was started with `bus`. */
let rawBus: RawBus | undefined;
/** Takes the raw socket's frames in this primary while set; they go to the worker otherwise. */
let rawHere: ((value: unknown) => void) | undefined;
/** Routers of this primary, by scope, for its own round trips. */
const routers = new Map<string, roar.Router>();
let echoOff: (() => void) | undefined;
/** The round this primary counts, by `subscribe` or `raw-receive`. */
let counter: Counter | undefined;

const router = (scope: string): roar.Router => {
  let r = routers.get(scope);
  if (r === undefined) routers.set(scope, (r = roar.createRouter({ scope, capacity: 1 << 20 })));
  return r;
};
/** One frame (or one publish) per message, JSON-encoded, as the worker's raw messages leave. */
const rawSend = (value: unknown): void => (rawBus !== undefined ? rawBus.send(value) : rawSocket?.send(JSON.stringify(value)));

const reply = (message: object, then: () => void = () => undefined): void => void process.send?.(message, then);
const count = (expect: number): Counter => (counter = new Counter(expect, (tally: Tally) => reply({ reply: "done", ...tally })));

function useRawSocket(socket: WebSocket): void {
  rawSocket = socket;
  socket.on("message", (data: RawData) => {
    const value: unknown = JSON.parse(data.toString());
    if (rawHere !== undefined) rawHere(value);
    else worker?.send({ raw: value });
  });
}

async function obey(command: HostCommand): Promise<void> {
  switch (command.host) {
    case "start": {
      const { bus } = command;
      if (bus !== undefined) {
        const transport = bus.engine === "redis" ? new RedisTransport({ url: bus.url }) : new NatsTransport({ servers: bus.url });
        relay = await roar.startRelay({ transports: [transport] });
        rawBus = await connectRaw(bus.engine, bus.url, bus.self, bus.other, (value) => rawHere?.(value));
        forkWorker();
        return reply({ reply: "ok" });
      }
      const transport = new roar.WebSocketTransport({
        listen: command.listen ? { port: 0, host: "127.0.0.1" } : undefined,
        peers: command.peer === undefined ? [] : [command.peer],
      });
      relay = await roar.startRelay({ transports: [transport] });
      let rawPort: number | undefined;
      if (command.listen) {
        rawServer = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
        rawServer.on("connection", useRawSocket);
        await once(rawServer, "listening");
        rawPort = (rawServer.address() as AddressInfo).port;
      }
      if (command.rawPeer !== undefined) {
        const socket = new WebSocket(command.rawPeer, { perMessageDeflate: false });
        await once(socket, "open");
        useRawSocket(socket);
      }
      forkWorker();
      return reply({ reply: "ok", port: transport.port, rawPort });
    }
    case "linked":
      // Over a broker, hosts learn of each other by its hello: linked once it came.
      while ((relay?.stats().hosts ?? 0) < 1 || (rawSocket === undefined && rawBus === undefined)) await new Promise((resolve) => setTimeout(resolve, 5));
      return reply({ reply: "ok" });
    case "subscribe": {
      globalThis.gc?.(); // a round starts: its peak RSS is not the last one's garbage
      const round = count(command.expect);
      router(command.scope).on(command.topic, () => round.arrive());
      await router(command.scope).flush();
      return reply({ reply: "ok" });
    }
    case "join":
      globalThis.gc?.();
      await router(command.scope).flush();
      return reply({ reply: "ok" });
    case "publish":
      return reply({ reply: "ok", ...publishBurst(router(command.scope), command.topic, command.count) });
    case "raw-receive": {
      globalThis.gc?.();
      const round = count(command.expect);
      rawHere = () => round.arrive();
      return reply({ reply: "ok" });
    }
    case "raw-send":
      sendBurst(rawSend, command.count);
      return reply({ reply: "ok" });
    case "count":
      return reply({ reply: "ok", ...(counter?.tally ?? { received: 0, lastAt: 0 }) });
    case "finish":
      return counter?.finish();
    case "stats":
      return reply({ reply: "ok", stats: relay?.stats() });
    case "echo": {
      const r = router(command.scope);
      echoOff?.();
      echoOff = r.on(command.from, (m) => r.publish(command.to, m));
      await r.flush();
      return reply({ reply: "ok" });
    }
    case "ping": {
      const r = router(command.scope);
      let off: (() => void) | undefined;
      await r.flush();
      return pingPong(
        command.count,
        (i) => r.publish(command.to, message(i)),
        (onPong) => (off = r.on(command.from, onPong)),
        (rtts) => reply({ reply: "done", rtts }),
        () => off?.(),
      );
    }
    case "raw-echo":
      rawHere = rawSend;
      return reply({ reply: "ok" });
    case "raw-ping":
      return pingPong(
        command.count,
        (i) => rawSend(message(i)),
        (onPong) => (rawHere = onPong),
        (rtts) => reply({ reply: "done", rtts }),
        () => (rawHere = undefined),
      );
    case "raw-relay":
      rawHere = undefined;
      return reply({ reply: "ok" });
    case "stop": {
      if (worker !== undefined && worker.isConnected()) {
        // The worker exits when its channel closes (see peer.ts): a clean exit, which lets
        // `node --cpu-prof` write its profile. It is killed if it does not.
        const exited = once(worker, "exit");
        worker.disconnect();
        const timer = setTimeout(() => worker?.kill("SIGKILL"), 2000);
        await exited;
        clearTimeout(timer);
      }
      echoOff?.();
      for (const r of routers.values()) r.close();
      await relay?.close();
      await rawBus?.close();
      rawSocket?.terminate();
      rawServer?.close();
      return reply({ reply: "ok" }, () => process.exit(0));
    }
  }
}

function forkWorker(): void {
  cluster.setupPrimary({ exec: PEER.pathname });
  worker = cluster.fork();
  worker.on("message", (message: { raw?: unknown }) => {
    if ("raw" in message) rawSend(message.raw);
    else reply(message);
  });
}

process.on("message", (message: HostCommand | PeerCommand | object) => {
  if ("host" in message) return void obey(message);
  // A round of the worker's starts: this primary, which it may cross, collects its garbage too.
  if ("cmd" in message && ROUND_STARTS.has(message.cmd)) globalThis.gc?.();
  worker?.send(message as never);
});
// The benchmark went away: so does this host (and its worker, whose channel to it closes).
process.on("disconnect", () => process.exit(1));
