/**
 * Door: what a listening transport lets a connection hold before it has spoken roar.
 *
 * A connection is a *stranger* from the moment its TCP connection is accepted until its first
 * text reaches roar (the handshake; roar itself refuses a first text that is not one). Until
 * then it may hold only:
 *  - time: `timeout` milliseconds in all, TLS, HTTP upgrade and token check included — one
 *    timer from the accept, because a peer can stall in any of those phases (NATS gives a
 *    client 2 s to authenticate);
 *  - bytes: `maxBytes` received after the upgrade, so a stranger cannot make the listener
 *    buffer a frame of `maxPayload` (16 MiB) before it has said who it is;
 *  - a place: at most `maxStrangers` at once. One more turns away the *oldest*: a flood of
 *    connections that never speak then cannot lock out a host that shakes hands promptly (it
 *    needs its place for a round trip, the flood's oldest have had theirs for longest).
 * A stranger turned away is counted (`unauthenticated`, or `oversized` for the bytes) and its
 * socket destroyed.
 *
 * Strangers are known by their peer's address and port, which a TLS socket shares with the TCP
 * socket under it: the accept sees the TCP socket, the upgrade the TLS one.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TransportDropReason } from "../transport.js";

/** What a door lets a stranger hold. */
export interface DoorLimits {
  /** How long, in milliseconds, from the accept to the first text. */
  readonly timeout: number;
  /** How many strangers may wait at once. */
  readonly maxStrangers: number;
  /** How many bytes a stranger may send after its upgrade, before its first text. */
  readonly maxBytes: number;
}

/** One connection that has not yet sent its first text. */
export interface Stranger {
  /** Its peer's address and port: the key of the door's table. */
  readonly key: string;
  /** Its TCP socket, destroyed when it is turned away (which ends a TLS socket over it too). */
  readonly socket: Socket;
  /** Turns it away when its time is up. */
  readonly timer: NodeJS.Timeout;
  /** Bytes it sent since its upgrade. */
  bytes: number;
}

/** The door of one listener. */
export class Door {
  readonly #limits: DoorLimits;
  readonly #dropped: (reason: TransportDropReason) => void;
  /** The strangers, oldest first (a Map keeps insertion order). */
  readonly #strangers = new Map<string, Stranger>();

  constructor(limits: DoorLimits, dropped: (reason: TransportDropReason) => void) {
    this.#limits = limits;
    this.#dropped = dropped;
  }

  /** How many strangers wait now. */
  get size(): number {
    return this.#strangers.size;
  }

  /** A TCP connection was accepted: it is a stranger until {@link Door.admit}. */
  accept(socket: Socket): void {
    const key = keyOf(socket);
    // Already gone (reset as it was accepted): nothing to guard.
    if (key === undefined) return void socket.destroy();
    if (this.#strangers.size >= this.#limits.maxStrangers) {
      const [oldest] = this.#strangers.values();
      if (oldest !== undefined) this.#turnAway(oldest, "unauthenticated");
    }
    const stranger: Stranger = {
      key,
      socket,
      timer: setTimeout(() => this.#turnAway(stranger, "unauthenticated"), this.#limits.timeout),
      bytes: 0,
    };
    stranger.timer.unref();
    this.#strangers.set(key, stranger);
    socket.once("close", () => this.#forget(stranger));
  }

  /**
   * The stranger whose connection `socket` is (the socket of an upgrade request), or
   * `undefined` if it was turned away already.
   */
  strangerOn(socket: Duplex): Stranger | undefined {
    const key = keyOf(socket as Socket);
    return key === undefined ? undefined : this.#strangers.get(key);
  }

  /**
   * Counts what arrives on `upgraded` (the socket a WebSocket now reads) until the stranger is
   * admitted, and turns it away past `maxBytes`. Call it after the WebSocket took the socket:
   * its reader runs first and admits the stranger in the same turn as its first text.
   */
  watchBytes(stranger: Stranger, upgraded: Duplex): void {
    const count = (chunk: Buffer): void => {
      if (this.#strangers.get(stranger.key) !== stranger) return void upgraded.off("data", count);
      stranger.bytes += chunk.length;
      if (stranger.bytes <= this.#limits.maxBytes) return;
      upgraded.off("data", count);
      this.#turnAway(stranger, "oversized");
    };
    upgraded.on("data", count);
  }

  /** The stranger sent its first text: roar has it now. */
  admit(stranger: Stranger): void {
    this.#forget(stranger);
  }

  /** The stranger was refused (and counted) by its owner: the door forgets it. */
  refused(stranger: Stranger): void {
    this.#forget(stranger);
  }

  /** Turns every stranger away, uncounted: the listener closes. */
  close(): void {
    for (const stranger of [...this.#strangers.values()]) {
      this.#forget(stranger);
      stranger.socket.destroy();
    }
  }

  #turnAway(stranger: Stranger, reason: TransportDropReason): void {
    if (this.#strangers.get(stranger.key) !== stranger) return;
    this.#forget(stranger);
    this.#dropped(reason);
    stranger.socket.destroy();
  }

  #forget(stranger: Stranger): void {
    clearTimeout(stranger.timer);
    if (this.#strangers.get(stranger.key) === stranger) this.#strangers.delete(stranger.key);
  }
}

function keyOf(socket: Socket): string | undefined {
  const { remoteAddress, remotePort } = socket;
  return remoteAddress === undefined || remotePort === undefined ? undefined : `${remoteAddress} ${remotePort}`;
}
