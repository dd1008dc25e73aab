/**
 * A roar transport over plain TCP (`node:net`), one text per line: roar's texts are JSON, in
 * which a newline never appears raw, so "\n" ends each one. It listens, dials `tcp://` peers,
 * and dials again (with backoff) when a connection it dialled drops; roar does the rest.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { Connection, Transport, TransportContext } from "roar";

export interface TcpTransportOptions {
  /** Where to listen; `port: 0` picks a free port (see `url`). */
  listen?: { port: number; host?: string };
  /** `tcp://host:port` addresses to dial. */
  peers?: readonly string[];
  /** The longest text, in UTF-8 bytes, a peer may send. @defaultValue 16 MiB */
  maxPayload?: number;
}

export class TcpTransport implements Transport {
  readonly name = "tcp";
  readonly #options: TcpTransportOptions;
  readonly #maxPayload: number;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #context: TransportContext | undefined;
  #server: Server | undefined;
  #url: string | undefined;
  #closed = false;

  constructor(options: TcpTransportOptions) {
    this.#options = options;
    this.#maxPayload = options.maxPayload ?? 16 * 1024 * 1024;
  }

  /** Where this transport listens, `tcp://host:port`, once started; `undefined` if it does not. */
  get url(): string | undefined {
    return this.#url;
  }

  async start(context: TransportContext): Promise<void> {
    this.#context = context;
    const listen = this.#options.listen;
    if (listen !== undefined) {
      const server = (this.#server = createServer((socket) => this.#open(socket, undefined)));
      const host = listen.host ?? "127.0.0.1";
      await new Promise<void>((resolve, reject) => server.once("error", reject).listen(listen.port, host, resolve));
      const { port } = server.address() as { port: number };
      this.#url = `tcp://${host}:${port}`;
    }
    for (const peer of this.#options.peers ?? []) this.#dial(peer, 0);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    const closing = [...this.#sockets].map((socket) => new Promise((resolve) => socket.once("close", resolve).end()));
    const cutOff = setTimeout(() => this.#sockets.forEach((socket) => socket.destroy()), 1000);
    await Promise.all(closing);
    clearTimeout(cutOff);
    await new Promise((resolve) => (this.#server === undefined ? resolve(undefined) : this.#server.close(resolve)));
  }

  #dial(url: string, attempt: number): void {
    if (this.#closed) return;
    const again = (next: number): void => this.#later(() => this.#dial(url, next), Math.min(5000, 50 * 2 ** next));
    // Linked already, by the connection the peer dialled: look again later, in case it drops.
    if (this.#context?.isLinked(url)) return this.#later(() => this.#dial(url, 0), 1000);
    const { hostname, port } = new URL(url);
    const socket = createConnection({ host: hostname, port: Number(port) });
    let opened = false;
    socket.once("connect", () => {
      opened = true;
      this.#open(socket, url);
    });
    socket.on("error", () => {}); // "close" follows
    socket.once("close", () => again(opened ? 0 : attempt + 1));
  }

  #open(socket: Socket, dialled: string | undefined): void {
    if (this.#closed) return void socket.destroy();
    this.#sockets.add(socket);
    socket.setNoDelay(true).setEncoding("utf8");
    const connection: Connection = {
      // `sent` once the socket took the text: roar batches while earlier texts wait.
      send: (text, sent) => void socket.write(`${text}\n`, () => sent()),
      close: () => void socket.end(),
      dialled,
      maxPayload: this.#maxPayload,
    };
    const events = (this.#context as TransportContext).connected(connection);
    let partial = "";
    socket.on("data", (chunk: string) => {
      let start = 0;
      for (let end = chunk.indexOf("\n"); end !== -1; end = chunk.indexOf("\n", start)) {
        events.receive(partial + chunk.slice(start, end));
        partial = "";
        start = end + 1;
      }
      partial += chunk.slice(start);
      // Measured in UTF-16 units: at most the byte length, so never refused below the limit.
      if (partial.length > this.#maxPayload) {
        this.#context?.dropped("oversized");
        socket.destroy();
      }
    });
    socket.on("error", () => {}); // "close" follows
    socket.once("close", () => {
      this.#sockets.delete(socket);
      events.closed();
    });
  }

  #later(run: () => void, ms: number): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    this.#timers.add(timer);
  }
}
