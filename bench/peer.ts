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
import { Counter, message, pingPong, publishBurst, publishDrained, sendBurst, type Published, type Tally } from "./harness.js";

/** Commands a peer obeys; each is answered with `{ reply: "ok", ... }`. */
export type PeerCommand =
  /** Subscribes to `topic`, counting arrivals; `{ reply: "done", received, lastAt }` follows once `expect` arrived (or on `finish`). */
  | { cmd: "subscribe"; scope: string; topic: string; expect: number; workNs?: number }
  /** Makes this peer's router of `scope` and waits for its flush: it has joined, and knows what the host wants. */
  | { cmd: "join"; scope: string }
  /** Publishes `count` messages in one synchronous loop (see `publishBurst`), or with `drained`, waiting for `drained()` whenever `publish` says so. */
  | { cmd: "publish"; scope: string; topic: string; count: number; drained?: boolean }
  /** Answers with the tally of the round being counted (`subscribe` or `raw-receive`). */
  | { cmd: "count" }
  /** Ends the round being counted short: its `done` is sent now, if it was not already. */
  | { cmd: "finish" }
  | { cmd: "echo"; scope: string; from: string; to: string }
  | { cmd: "ping"; scope: string; from: string; to: string; count: number }
  | { cmd: "raw-receive"; expect: number; workNs?: number }
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
  /** Nanoseconds spent in the publishing loop, from `publish` commands. */
  busyNs?: number;
  /** How many `publish` calls returned `false`, from `publish` commands. */
  refused?: number;
  /** Messages counted in the round, from `done` and `count`. */
  received?: number;
  /** When the round's last message arrived (hrtime, ns), from `done` and `count`. */
  lastAt?: number;
  /** The process the peer runs in, from `ready`. */
  pid?: number;
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
/** The round being counted, by `subscribe` or `raw-receive`. */
let counter: Counter | undefined;
const count = (expect: number): Counter => (counter = new Counter(expect, (tally: Tally) => send({ reply: "done", ...tally })));
let echoOff: (() => void) | undefined;
const routers = new Map<string, roar.Router>();
const router = (scope: string): roar.Router => {
  let r = routers.get(scope);
  if (r === undefined) routers.set(scope, (r = roar.createRouter({ scope, capacity: 1 << 20 })));
  return r;
};

/** Keeps this thread busy for `ns` nanoseconds: the work of a consumer slower than its publisher. */
function work(ns: number): void {
  if (ns === 0) return;
  const until = process.hrtime.bigint() + BigInt(ns);
  while (process.hrtime.bigint() < until);
}

function ping(count: number, sendPing: (i: number) => void, arm: (onPong: () => void) => void, disarm = (): void => undefined): void {
  pingPong(count, sendPing, arm, (rtts) => send({ reply: "done", rtts }), disarm);
}

async function obey(command: PeerCommand): Promise<void> {
  switch (command.cmd) {
    case "subscribe": {
      globalThis.gc?.(); // a round starts: its peak RSS is not the last one's garbage
      const round = count(command.expect);
      const { workNs = 0 } = command;
      router(command.scope).on(command.topic, () => {
        work(workNs);
        round.arrive();
      });
      await router(command.scope).flush();
      return send({ reply: "ok" });
    }
    case "join":
      globalThis.gc?.();
      await router(command.scope).flush();
      return send({ reply: "ok" });
    case "publish": {
      const r = router(command.scope);
      const published: Published = command.drained ? await publishDrained(r, command.topic, command.count) : publishBurst(r, command.topic, command.count);
      return send({ reply: "ok", ...published });
    }
    case "count":
      return send({ reply: "ok", ...(counter?.tally ?? { received: 0, lastAt: 0 }) });
    case "finish":
      return counter?.finish();
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
      globalThis.gc?.();
      const round = count(command.expect);
      const { workNs = 0 } = command;
      onRaw = () => {
        work(workNs);
        round.arrive();
      };
      return send({ reply: "ok" });
    }
    case "raw-send":
      sendBurst(rawSend, command.count);
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
      globalThis.gc?.();
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
send({ reply: "ready", pid: process.pid });
