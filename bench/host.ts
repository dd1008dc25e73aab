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
 */
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import * as roar from "roar";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { message, pingPong } from "./harness.js";

/** Commands a host obeys; each is answered with `{ reply: "ok", ... }`. */
export type HostCommand =
  /** Starts the relay, listening on a free port or dialling `peer` (and `rawPeer` for the raw relay), and forks the worker. */
  | { host: "start"; listen: boolean; peer?: string; rawPeer?: string }
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
  | { host: "raw-relay" };

const PEER = new URL("./peer.js", import.meta.url);

let relay: roar.Relay | undefined;
let worker: ClusterWorker | undefined;
let rawServer: WebSocketServer | undefined;
let rawSocket: WebSocket | undefined;
/** Takes the raw socket's frames in this primary while set; they go to the worker otherwise. */
let rawHere: ((value: unknown) => void) | undefined;
/** Routers of this primary, by scope, for its own round trips. */
const routers = new Map<string, roar.Router>();
let echoOff: (() => void) | undefined;

const router = (scope: string): roar.Router => {
  let r = routers.get(scope);
  if (r === undefined) routers.set(scope, (r = roar.createRouter({ scope, capacity: 1 << 20 })));
  return r;
};
/** One frame per message, JSON-encoded, as the worker's raw messages leave. */
const rawSend = (value: unknown): void => rawSocket?.send(JSON.stringify(value));

const reply = (message: object, then: () => void = () => undefined): void => void process.send?.(message, then);

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
      cluster.setupPrimary({ exec: PEER.pathname });
      worker = cluster.fork();
      worker.on("message", (message: { raw?: unknown }) => {
        if ("raw" in message) rawSend(message.raw);
        else reply(message);
      });
      return reply({ reply: "ok", port: transport.port, rawPort });
    }
    case "linked":
      while (relay?.stats().hosts !== 1 || rawSocket === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
      return reply({ reply: "ok" });
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
      rawSocket?.terminate();
      rawServer?.close();
      return reply({ reply: "ok" }, () => process.exit(0));
    }
  }
}

process.on("message", (message: HostCommand | object) => {
  if ("host" in message) void obey(message);
  else worker?.send(message as never);
});
// The benchmark went away: so does this host (and its worker, whose channel to it closes).
process.on("disconnect", () => process.exit(1));
