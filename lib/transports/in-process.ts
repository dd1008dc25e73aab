/**
 * InProcessTransport: links hosts made with `createHost()` in one process, by name.
 *
 * It is the smallest useful transport, and a model for writing one: a listener registers
 * its name, a dialler connects to it (and again after the connection drops, while the
 * transport runs), and each side's texts reach the other in order, a turn of the event loop
 * later, as a socket's would. Only text crosses, so nothing passes by reference.
 */
import { RoarError, describe } from "../errors.js";
import type { Connection, ConnectionEvents, Transport, TransportContext } from "../transport.js";
import { assertOptions } from "../validate.js";

/** Options of {@link InProcessTransport}. */
export interface InProcessTransportOptions {
  /** A name to be reached at by other in-process transports; unique in the process. */
  listen?: string;
  /** Names of the transports to connect to; connecting waits until they listen. */
  peers?: readonly string[];
  /** See {@link Transport.awayTimeout}. @defaultValue 30000 */
  awayTimeout?: number;
}

const listening = new Map<string, InProcessTransport>();

/** How long to wait before dialling again, at first and at most, in milliseconds. */
const RETRY_MIN_MS = 10;
const RETRY_MAX_MS = 1000;

/** One end of an in-process connection. */
class End implements Connection {
  readonly dialled: string | undefined;
  events: ConnectionEvents | undefined;
  other!: End;
  /** Texts on their way to this end, and whether the far end closed behind them. */
  #queue: string[] = [];
  #farClosed = false;
  #scheduled = false;
  /** Whether this end may still send; once false, it receives nothing more either. */
  #open = true;
  readonly #onGone: (end: End) => void;

  constructor(dialled: string | undefined, onGone: (end: End) => void) {
    this.dialled = dialled;
    this.#onGone = onGone;
  }

  send(text: string, sent: () => void): void {
    if (!this.#open) return;
    this.other.#arrive(text);
    sent();
  }

  /** Closes this end at once; the far end gets what was sent before, then hears of the close. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#queue = [];
    this.other.#farClosed = true;
    this.other.#schedule();
    setImmediate(() => this.#gone());
  }

  #arrive(text: string): void {
    if (!this.#open) return;
    this.#queue.push(text);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const queue = this.#queue;
      this.#queue = [];
      for (const text of queue) if (this.#open) this.events?.receive(text);
      if (this.#farClosed && this.#open) {
        this.#open = false;
        this.#gone();
      }
    });
  }

  #gone(): void {
    this.#onGone(this);
    this.events?.closed();
  }
}

/**
 * Links hosts of one process ({@link createHost}) by name, like a network would.
 *
 * @example
 * ```ts
 * await a.startRelay({ transports: [new roar.InProcessTransport({ listen: "a" })] });
 * await b.startRelay({ transports: [new roar.InProcessTransport({ peers: ["a"] })] });
 * ```
 */
export class InProcessTransport implements Transport {
  readonly name = "in-process";
  readonly awayTimeout: number | undefined;
  readonly #listen: string | undefined;
  readonly #peers: readonly string[];
  readonly #ends = new Set<End>();
  readonly #retries = new Map<string, NodeJS.Timeout>();
  #context: TransportContext | undefined;
  #closed = false;

  /** @throws {@link RoarError} `ERR_ROAR_INVALID_OPTION` for bad options. */
  constructor(options: InProcessTransportOptions = {}) {
    assertOptions(options, "options", ["listen", "peers", "awayTimeout"]);
    const { listen, peers = [], awayTimeout } = options as InProcessTransportOptions;
    if (listen !== undefined && (typeof listen !== "string" || listen.length === 0)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.listen\` must be a non-empty string, got ${describe(listen)}`);
    }
    if (!Array.isArray(peers) || !peers.every((peer) => typeof peer === "string" && peer.length !== 0)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.peers\` must be an array of non-empty strings, got ${describe(peers)}`);
    }
    if (awayTimeout !== undefined && !(Number.isSafeInteger(awayTimeout) && awayTimeout >= 0)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.awayTimeout\` must be an integer ≥ 0 (milliseconds), got ${describe(awayTimeout)}`);
    }
    this.#listen = listen;
    this.#peers = [...peers];
    this.awayTimeout = awayTimeout;
  }

  /** The names this transport dials: `startRelay` waits until they are linked (see {@link Transport.peers}). */
  get peers(): readonly string[] {
    return this.#peers;
  }

  /** The name this transport is reached at, if it listens. */
  get address(): string | undefined {
    return this.#listen;
  }

  start(context: TransportContext): Promise<void> {
    if (this.#context !== undefined) return Promise.reject(new RoarError("ERR_ROAR_UNSUPPORTED", "this transport was started already"));
    if (this.#listen !== undefined) {
      if (listening.has(this.#listen)) {
        return Promise.reject(new RoarError("ERR_ROAR_INVALID_OPTION", `another in-process transport listens at ${describe(this.#listen)}`));
      }
      listening.set(this.#listen, this);
    }
    this.#context = context;
    for (const peer of this.#peers) this.#dial(peer, RETRY_MIN_MS);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#closed = true;
    if (this.#listen !== undefined && listening.get(this.#listen) === this) listening.delete(this.#listen);
    for (const timer of this.#retries.values()) clearTimeout(timer);
    for (const end of [...this.#ends]) end.close();
    return Promise.resolve();
  }

  /** Drops every connection, as a network failure would; diallers dial again. For tests. */
  dropConnections(): void {
    for (const end of [...this.#ends]) end.close();
  }

  #dial(peer: string, wait: number): void {
    if (this.#closed) return;
    const listener = listening.get(peer);
    const context = this.#context as TransportContext;
    if (listener === undefined || listener.#context === undefined || context.isLinked(peer)) {
      this.#retries.set(peer, setTimeout(() => this.#dial(peer, Math.min(wait * 2, RETRY_MAX_MS)), wait).unref());
      return;
    }
    const mine = new End(peer, (end) => {
      this.#ends.delete(end);
      // Dial again after a drop, unless this transport closed.
      this.#retries.set(peer, setTimeout(() => this.#dial(peer, RETRY_MIN_MS), RETRY_MIN_MS).unref());
    });
    this.#retries.delete(peer);
    const theirs = new End(undefined, (end) => listener.#ends.delete(end));
    mine.other = theirs;
    theirs.other = mine;
    this.#ends.add(mine);
    listener.#ends.add(theirs);
    theirs.events = (listener.#context as TransportContext).connected(theirs);
    mine.events = context.connected(mine);
  }
}
