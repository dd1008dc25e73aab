/**
 * A benchmark host: a process forked by hosts.ts that stands for one host — a cluster primary
 * whose relay links to the other host with a WebSocketTransport, and one cluster worker that
 * runs peer.ts. Commands with a `host` field are the host's own; any other message goes to
 * the worker, and the worker's replies come back to the benchmark's main process.
 *
 * The primary also holds a plain `ws` socket to the other host's primary, for the raw
 * baseline that takes roar's path: each `{ raw }` message of its worker leaves with one
 * `ws.send` (JSON-encoded), and each frame that arrives goes to the worker with one `send`.
 */
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import * as roar from "roar";
import { WebSocket, WebSocketServer, type RawData } from "ws";

/** Commands a host obeys; each is answered with `{ reply: "ok", ... }`. */
export type HostCommand =
  /** Starts the relay, listening on a free port or dialling `peer` (and `rawPeer` for the raw relay), and forks the worker. */
  | { host: "start"; listen: boolean; peer?: string; rawPeer?: string }
  /** Answers once the other host is linked, through roar and through the raw relay. */
  | { host: "linked" }
  /** Stops the worker and the relay, answers, and exits. */
  | { host: "stop" };

const PEER = new URL("./peer.js", import.meta.url);

let relay: roar.Relay | undefined;
let worker: ClusterWorker | undefined;
let rawServer: WebSocketServer | undefined;
let rawSocket: WebSocket | undefined;

const reply = (message: object, then: () => void = () => undefined): void => void process.send?.(message, then);

function useRawSocket(socket: WebSocket): void {
  rawSocket = socket;
  socket.on("message", (data: RawData) => worker?.send({ raw: JSON.parse(data.toString()) }));
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
        if ("raw" in message) rawSocket?.send(JSON.stringify(message.raw));
        else reply(message);
      });
      return reply({ reply: "ok", port: transport.port, rawPort });
    }
    case "linked":
      while (relay?.stats().hosts !== 1 || rawSocket === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
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
