/**
 * WebSocketTransport: links hosts over WebSockets (`ws`), on plain TCP or TLS.
 *
 * A host listens, dials its peers, or both; roar on top keeps each pair of hosts to one
 * connection and routes so that star and full-mesh layouts both deliver exactly once. This
 * module only moves texts and guards the door:
 *  - a listener lets a connection hold little before its first text (roar's handshake): a few
 *    seconds, a few KiB, and one of `maxUnauthenticated` places (see door.ts);
 *  - a dialler sends the shared token in a header; a listener that expects one and gets a
 *    wrong or missing one refuses the upgrade itself (HTTP 401, its reason in a header), so a
 *    stranger never gets a WebSocket to send frames on. The dialler reports that as it does a
 *    close with code 4401, which listeners of earlier versions sent after the upgrade;
 *  - a listener without a token on an address other than loopback refuses to start unless
 *    told `insecure: true` (then it warns): anyone who reaches the port could join the host,
 *    and a `token: process.env.ROAR_TOKEN` whose variable is unset must not open it silently
 *    (Redis's protected mode draws the same line);
 *  - `maxPayload` bounds what a peer may send in one frame (`ws` closes a socket that sends
 *    more, with code 1009, and the frame is counted as oversized); it is also told to roar, so
 *    that peers split their batches to fit and drop (and count) a single message that cannot;
 *  - heartbeats: every `heartbeat` milliseconds each side pings; a peer that has not answered
 *    the previous ping, nor sent anything since, is taken for dead and its socket ended;
 *  - a dialled connection that drops is dialled again after a backoff that doubles up to
 *    `retry.max`, with jitter, so hosts that restart together do not dial in lockstep;
 *  - it names its `peers`, so `startRelay` waits until they are linked; a peer that refuses
 *    the token is reported unreachable at once (dialling goes on, in case it is fixed there).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { debuglog } from "node:util";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { RoarError } from "../errors.js";
import type { Connection, ConnectionEvents, Transport, TransportContext } from "../transport.js";
import { Door, type Stranger } from "./door.js";
import { isLoopback, settingsOf, type Settings, type WebSocketTransportOptions } from "./websocket-options.js";

export { DEFAULT_MAX_PAYLOAD, type WebSocketTransportOptions } from "./websocket-options.js";

const debug = debuglog("roar");

/** The header a dialler sends its token in. */
const TOKEN_HEADER = "x-roar-token";
/** The header of a refused upgrade that says why, as a close reason would. */
const REASON_HEADER = "x-roar-reason";
/** Close code of a connection refused for its token, by listeners of earlier versions (after the upgrade). */
export const CLOSE_UNAUTHORIZED = 4401;
/** Close code of a connection that roar ends (protocol error, duplicate, relay closing). */
const CLOSE_ROAR = 4000;
/** How long a closing transport waits for peers to answer its close, in milliseconds. */
const CLOSE_GRACE_MS = 1000;
/** How long a dial may wait for the peer's upgrade, in milliseconds. */
const DIAL_TIMEOUT_MS = 10_000;
/** How long a connection must have lasted for its loss to be dialled again at once, in milliseconds. */
const SERVED_MS = 1000;



function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/** A `ws` socket as roar sees it. */
class SocketConnection implements Connection {
  readonly dialled: string | undefined;
  readonly maxPayload: number;
  readonly socket: WebSocket;
  /** Whether the peer answered the last ping, or sent something since. */
  alive = true;

  constructor(socket: WebSocket, dialled: string | undefined, maxPayload: number) {
    this.socket = socket;
    this.dialled = dialled;
    this.maxPayload = maxPayload;
  }

  send(text: string, sent: () => void): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    this.socket.send(text, sent);
  }

  close(reason: string): void {
    // A close reason is at most 123 bytes.
    this.socket.close(CLOSE_ROAR, Buffer.from(reason).subarray(0, 123).toString());
  }
}

/**
 * Links hosts over WebSockets. Give it to the relay of each host's root process.
 *
 * @example
 * ```ts
 * // host A
 * const ws = new roar.WebSocketTransport({ listen: { port: 7400 }, token: process.env.ROAR_TOKEN });
 * await roar.startRelay({ transports: [ws] });
 * // host B
 * await roar.startRelay({
 *   transports: [new roar.WebSocketTransport({ peers: ["ws://host-a:7400"], token: process.env.ROAR_TOKEN })],
 * });
 * ```
 */
export class WebSocketTransport implements Transport {
  readonly name = "ws";
  readonly awayTimeout: number | undefined;
  readonly #settings: Settings;
  /** The digest of the token, compared in constant time. */
  readonly #token: Buffer | undefined;
  readonly #connections = new Set<SocketConnection>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Sockets dialled and not yet open. */
  readonly #dialling = new Set<WebSocket>();
  /** The timer of each peer's next dial, while one waits (see {@link WebSocketTransport.redial}). */
  readonly #nextDial = new Map<string, NodeJS.Timeout>();
  #context: TransportContext | undefined;
  #server: Server | undefined;
  #wss: WebSocketServer | undefined;
  /** The listener's guard against connections that have not yet shaken hands. */
  #door: Door | undefined;
  #pinger: NodeJS.Timeout | undefined;
  #port: number | undefined;
  #closed = false;

  /** @throws {@link RoarError} `ERR_ROAR_INVALID_OPTION` for bad options. */
  constructor(options: WebSocketTransportOptions) {
    const settings = settingsOf(options);
    this.#settings = settings;
    this.#token = settings.token === undefined ? undefined : digest(settings.token);
    this.awayTimeout = settings.awayTimeout;
  }

  /** The URLs this transport dials: `startRelay` waits until they are linked (see {@link Transport.peers}). */
  get peers(): readonly string[] {
    return this.#settings.peers;
  }

  /** The port this transport listens on, once started; `undefined` if it does not listen. */
  get port(): number | undefined {
    return this.#port;
  }

  async start(context: TransportContext): Promise<void> {
    if (this.#context !== undefined) throw new RoarError("ERR_ROAR_UNSUPPORTED", "this transport was started already");
    this.#context = context;
    const listen = this.#settings.listen;
    if (listen !== undefined) {
      await this.#listen(listen);
      if (this.#settings.token === undefined && !isLoopback(listen.host)) {
        context.warn(
          `the WebSocket transport listens on ${listen.host ?? "every address"}:${this.#port} without a token (\`insecure: true\`): anyone who reaches the port can join this host, read what it publishes and publish to it`,
          "ERR_ROAR_INSECURE",
        );
      }
    }
    if (this.#settings.heartbeat !== 0) {
      this.#pinger = setInterval(() => this.#ping(), this.#settings.heartbeat);
      this.#pinger.unref();
    }
    for (const peer of this.#settings.peers) this.#dial(peer, 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pinger);
    for (const timer of this.#timers) clearTimeout(timer);
    // Dials still waiting for their upgrade are given up, and so are strangers at the door.
    for (const socket of this.#dialling) socket.terminate();
    this.#door?.close();
    const closing = [...this.#connections].map(
      ({ socket }) => new Promise<void>((resolve) => (socket.readyState === WebSocket.CLOSED ? resolve() : socket.once("close", () => resolve()))),
    );
    for (const connection of this.#connections) connection.socket.close(CLOSE_ROAR, "roar: the relay closed");
    // A peer that does not answer the close within a second is cut off.
    const cutOff = setTimeout(() => {
      for (const connection of this.#connections) connection.socket.terminate();
    }, CLOSE_GRACE_MS);
    await Promise.all(closing);
    clearTimeout(cutOff);
    const wss = this.#wss;
    const server = this.#server;
    await new Promise<void>((resolve) => (wss === undefined ? resolve() : wss.close(() => resolve())));
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  async #listen({ port, host }: { port: number; host?: string }): Promise<void> {
    const tls = this.#settings.tls;
    const server = tls === undefined ? createHttpServer() : createHttpsServer(tls);
    const context = this.#context as TransportContext;
    const door = new Door(this.#settings.door, (reason) => context.dropped(reason));
    // ws's advice: authenticate in the server's "upgrade" event, before handleUpgrade, so a
    // refused client never gets a WebSocket.
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.#settings.maxPayload, perMessageDeflate: false });
    // "connection" is the TCP accept, before TLS: the door's one timer covers every phase.
    server.on("connection", (socket: Socket) => (this.#closed ? socket.destroy() : door.accept(socket)));
    server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(request, socket, head));
    // Anything but an upgrade is told what this port speaks, and the connection closed.
    server.on("request", (_request, response) => response.writeHead(426, { connection: "close", "content-type": "text/plain" }).end("roar: a WebSocket port\n"));
    wss.on("error", (error) => debug("ws server error: %o", error));
    this.#server = server;
    this.#wss = wss;
    this.#door = door;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (error) => debug("ws server error: %o", error));
    this.#port = (server.address() as AddressInfo).port;
    // Closed while it was starting to listen: it must not go on listening.
    if (this.#closed) server.close();
  }

  /** An upgrade request: its token is checked before the WebSocket exists. */
  #upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", (error) => debug("ws upgrade socket error: %s", error.message));
    const door = this.#door as Door;
    const stranger = door.strangerOn(socket);
    // Turned away while its request was parsed (its time was up), or the relay closed.
    if (stranger === undefined || this.#closed) return void socket.destroy();
    const refusal = this.#refusal(request);
    if (refusal !== undefined) {
      door.refused(stranger);
      (this.#context as TransportContext).dropped("unauthenticated");
      socket.end(`HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n${REASON_HEADER}: ${refusal}\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
      return;
    }
    (this.#wss as WebSocketServer).handleUpgrade(request, socket, head, (ws) => {
      door.watchBytes(stranger, socket);
      this.#open(ws, undefined, stranger);
    });
  }

  /** Why the token of `request` is refused, if it is. */
  #refusal(request: IncomingMessage): string | undefined {
    if (this.#token === undefined) return undefined;
    const offered = request.headers[TOKEN_HEADER];
    if (typeof offered === "string" && timingSafeEqual(digest(offered), this.#token)) return undefined;
    return offered === undefined ? "roar: unauthorized: no token" : "roar: unauthorized: wrong token";
  }

  #dial(url: string, attempt: number): void {
    if (this.#closed) return;
    const context = this.#context as TransportContext;
    if (context.isLinked(url)) {
      // Linked by the connection the peer dialled: look again later, in case it drops.
      this.#dialLater(url, 0, this.#settings.retryMax);
      return;
    }
    const tls = this.#settings.tls;
    const token = this.#settings.token;
    const socket = new WebSocket(url, {
      ...tls,
      maxPayload: this.#settings.maxPayload,
      perMessageDeflate: false,
      handshakeTimeout: DIAL_TIMEOUT_MS,
      headers: token === undefined ? {} : { [TOKEN_HEADER]: token },
    });
    this.#dialling.add(socket);
    let openedAt: number | undefined;
    /** Why the listener refused the token, if it did: before the upgrade (401) or after (4401). */
    let unauthorized: string | undefined;
    socket.on("unexpected-response", (_request, response) => {
      if (response.statusCode === 401) unauthorized = String(response.headers[REASON_HEADER] ?? "roar: unauthorized");
      else debug("ws dial %s: HTTP %d instead of an upgrade", url, response.statusCode);
      // ws leaves a refused upgrade to whoever listens for it: end it, which closes the socket.
      socket.terminate();
    });
    socket.on("open", () => {
      this.#dialling.delete(socket);
      openedAt = performance.now();
      this.#open(socket, url, undefined);
    });
    socket.on("close", (code, reason) => {
      this.#dialling.delete(socket);
      if (code === CLOSE_UNAUTHORIZED) unauthorized = reason.toString();
      if (unauthorized !== undefined) {
        context.warn(`the host at ${url} refused this host's token (${unauthorized}); set the same \`token\` on both`, "ERR_ROAR_UNAUTHORIZED");
        context.unreachable(url, `it refused this host's token: ${unauthorized}`);
      }
      // A connection that served a while and then dropped is dialled again soon; one that
      // failed, was refused or closed at once (a duplicate, this very host) later each time.
      const served = openedAt !== undefined && performance.now() - openedAt > SERVED_MS && unauthorized === undefined;
      const next = served ? 0 : attempt + 1;
      const backoff = Math.min(this.#settings.retryMax, this.#settings.retryMin * 2 ** next);
      // Jitter: between half and all of the backoff.
      this.#dialLater(url, next, backoff * (0.5 + Math.random() / 2));
    });
    socket.on("error", (error) => debug("ws dial %s: %s", url, error.message));
  }

  /** A WebSocket opened; `stranger` is its place at the door, for one accepted and not yet heard. */
  #open(socket: WebSocket, dialled: string | undefined, stranger: Stranger | undefined): void {
    const connection = new SocketConnection(socket, dialled, this.#settings.maxPayload);
    this.#connections.add(connection);
    const events: ConnectionEvents = (this.#context as TransportContext).connected(connection);
    let atDoor = stranger;
    socket.on("message", (data: RawData) => {
      connection.alive = true;
      if (atDoor !== undefined) {
        // Its first text: roar's handshake check takes over from the door.
        this.#door?.admit(atDoor);
        atDoor = undefined;
      }
      events.receive(data.toString());
    });
    socket.on("pong", () => (connection.alive = true));
    socket.on("error", (error: Error & { code?: string }) => {
      if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") this.#context?.dropped("oversized");
      debug("ws socket error: %s", error.message);
    });
    socket.on("close", () => {
      this.#connections.delete(connection);
      events.closed();
    });
  }

  #ping(): void {
    for (const connection of this.#connections) {
      if (!connection.alive) {
        debug("ws peer silent for two heartbeats: dropped");
        connection.socket.terminate();
        continue;
      }
      connection.alive = false;
      connection.socket.ping();
    }
  }

  /**
   * Dials `url` now rather than when its backoff ends, if it is one of {@link peers}; `false`
   * if it is not. roar asks when a host it does not know links while the one that answered at
   * `url` is away: the answer tells whether a new process took the old one's place.
   */
  redial(url: string): boolean {
    if (this.#closed || !this.#settings.peers.includes(url)) return false;
    const timer = this.#nextDial.get(url);
    // No timer: a dial is under way (or open), and answers by itself.
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#timers.delete(timer);
      this.#nextDial.delete(url);
      this.#dial(url, 0);
    }
    return true;
  }

  #dialLater(url: string, attempt: number, ms: number): void {
    const timer = this.#later(() => {
      this.#nextDial.delete(url);
      this.#dial(url, attempt);
    }, ms);
    if (timer !== undefined) this.#nextDial.set(url, timer);
  }

  #later(run: () => void, ms: number): NodeJS.Timeout | undefined {
    if (this.#closed) return undefined;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    this.#timers.add(timer);
    return timer;
  }
}
