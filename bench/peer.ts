/**
 * A benchmark peer: runs in a worker thread or a cluster worker and obeys commands from the
 * benchmark's main side. Each command names the channel it measures: roar, or the raw one.
 * The raw channel is a MessagePort (threads), IPC relayed by the primary (cluster workers),
 * or a WebSocket straight to the other peer (`ws-listen`, `ws-dial`, then `raw-via: "ws"`).
 */
import type { AddressInfo } from "node:net";
import { parentPort, type MessagePort } from "node:worker_threads";
import * as roar from "roar";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { message, pingPong, publishPaced, sendRaw } from "./harness.js";

/** Commands a peer obeys; each is answered with `{ reply: "ok", ... }`. */
export type PeerCommand =
  | { cmd: "subscribe"; scope: string; topic: string; expect: number }
  | { cmd: "publish"; scope: string; topic: string; count: number }
  | { cmd: "echo"; scope: string; from: string; to: string }
  | { cmd: "ping"; scope: string; from: string; to: string; count: number }
  | { cmd: "raw-receive"; expect: number }
  | { cmd: "raw-send"; count: number }
  | { cmd: "raw-echo" }
  | { cmd: "raw-ping"; count: number }
  | { cmd: "ws-listen" }
  | { cmd: "ws-dial"; url: string }
  | { cmd: "raw-via"; via: "ws" | "channel" };

/** What a peer answers. */
export interface PeerReply {
  reply: "ready" | "ok" | "done";
  /** Round-trip times in nanoseconds, from `ping` commands. */
  rtts?: number[];
  /** Nanoseconds spent in `publish` calls, from `publish` commands. */
  busyNs?: number;
  /** The port listened on, from `ws-listen` (and from a host's `start`, see host.ts). */
  port?: number;
  /** The port of a host's raw WebSocket relay, from a host's `start`. */
  rawPort?: number;
  /** A host's relay counters, from a host's `stats`. */
  stats?: roar.RelayStats;
}


const channel = parentPort ?? process;
const send = (reply: PeerReply): void => {
  if (parentPort) parentPort.postMessage(reply);
  else process.send?.(reply);
};
/** The raw channel: a MessagePort to the other peer (threads), or process IPC relayed by the primary. */
let rawPort: MessagePort | undefined;
/** A WebSocket straight to the other peer, used while `rawVia` is "ws". */
let rawSocket: WebSocket | undefined;
let rawVia: "ws" | "channel" = "channel";
const rawSend = (value: unknown): void => {
  // One frame per message, JSON-encoded as roar must encode it to cross a process.
  if (rawVia === "ws" && rawSocket) rawSocket.send(JSON.stringify(value));
  else if (rawPort) rawPort.postMessage(value);
  else process.send?.({ raw: value });
};
const useSocket = (socket: WebSocket): void => {
  rawSocket = socket;
  socket.on("message", (data: RawData) => onRaw(JSON.parse(data.toString())));
};
let onRaw: (value: unknown) => void = () => undefined;
let echoOff: (() => void) | undefined;
const routers = new Map<string, roar.Router>();
const router = (scope: string): roar.Router => {
  let r = routers.get(scope);
  if (r === undefined) routers.set(scope, (r = roar.createRouter({ scope, capacity: 1 << 20 })));
  return r;
};

function ping(count: number, sendPing: (i: number) => void, arm: (onPong: () => void) => void, disarm = (): void => undefined): void {
  pingPong(count, sendPing, arm, (rtts) => send({ reply: "done", rtts }), disarm);
}

async function obey(command: PeerCommand): Promise<void> {
  switch (command.cmd) {
    case "subscribe": {
      let received = 0;
      router(command.scope).on(command.topic, () => {
        if (++received === command.expect) send({ reply: "done" });
      });
      await router(command.scope).flush();
      return send({ reply: "ok" });
    }
    case "publish": {
      const busyNs = await publishPaced(router(command.scope), command.topic, command.count);
      return send({ reply: "ok", busyNs });
    }
    case "echo": {
      const r = router(command.scope);
      echoOff?.();
      echoOff = r.on(command.from, (m) => r.publish(command.to, m));
      await r.flush();
      return send({ reply: "ok" });
    }
    case "ping": {
      const r = router(command.scope);
      let off: (() => void) | undefined;
      await r.flush();
      return ping(
        command.count,
        (i) => r.publish(command.to, message(i)),
        (onPong) => (off = r.on(command.from, onPong)),
        () => off?.(),
      );
    }
    case "raw-receive": {
      let received = 0;
      onRaw = () => {
        if (++received === command.expect) send({ reply: "done" });
      };
      return send({ reply: "ok" });
    }
    case "raw-send":
      await sendRaw(rawSend, command.count);
      return send({ reply: "ok" });
    case "raw-echo":
      onRaw = (m) => rawSend(m);
      return send({ reply: "ok" });
    case "raw-ping":
      return ping(command.count, (i) => rawSend(message(i)), (onPong) => (onRaw = onPong));
    case "ws-listen": {
      const server = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
      server.on("connection", useSocket);
      await new Promise((resolve) => server.once("listening", resolve));
      return send({ reply: "ok", port: (server.address() as AddressInfo).port });
    }
    case "ws-dial": {
      const socket = new WebSocket(command.url, { perMessageDeflate: false });
      await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
      useSocket(socket);
      return send({ reply: "ok" });
    }
    case "raw-via":
      rawVia = command.via;
      return send({ reply: "ok" });
  }
}

channel.on("message", (data: unknown) => {
  const value = data as { port?: MessagePort; raw?: unknown; cmd?: string };
  if (value.port !== undefined) {
    rawPort = value.port;
    rawPort.on("message", (m) => onRaw(m));
    send({ reply: "ok" });
  } else if ("raw" in value) {
    onRaw(value.raw);
  } else {
    void obey(value as PeerCommand);
  }
});
// A cluster worker whose primary disconnects it is done (its raw WebSocket would keep it alive).
if (!parentPort) process.on("disconnect", () => process.exit(0));
// A cluster worker's IPC messages sent before this listener existed are lost: say when it does.
send({ reply: "ready" });
