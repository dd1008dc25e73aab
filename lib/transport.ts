/**
 * The Transport interface: how a relay reaches the relays of other hosts.
 *
 * A transport moves text between hosts and nothing else. It opens connections (by listening,
 * dialling, or both) and hands each one to roar with {@link TransportContext.connected}; roar
 * does the rest on top of it — the handshake, interest, routing, acknowledgements, resending
 * what a dropped connection lost, and counting what could not be saved. A transport never sees
 * a router, a topic or a message: only batches of frames as strings.
 *
 * What a transport must do:
 *  - deliver each connection's texts in the order they were sent, each whole or not at all;
 *  - call `events.closed()` once when a connection ends, however it ends;
 *  - after {@link Transport.close}, open no more connections.
 *
 * What it may do: authenticate peers, encrypt, detect dead peers (heartbeats) and dial again
 * after a connection drops. roar recognises a host that comes back and resumes where it left.
 * See `WebSocketTransport` for a full example and `InProcessTransport` for a minimal one.
 */

/** Why a transport dropped input before roar saw it, as counted in `relay.stats().dropped`. */
export type TransportDropReason = "malformed" | "oversized" | "unauthenticated";

/** One transport: a way to reach other hosts. Pass it to `startRelay({ transports })`. */
export interface Transport {
  /** A short name for messages and diagnostics, such as `"ws"`. */
  readonly name: string;
  /**
   * How long, in milliseconds, a peer whose connection dropped keeps its place: its interest
   * is kept and messages for it wait (up to the relay's `maxQueue`) to be sent when it is
   * back. After that, what waited is counted as lost.
   * @defaultValue 30000
   */
  readonly awayTimeout?: number;
  /**
   * Starts listening and dialling. Resolves once the transport listens (connections to peers
   * may open later); rejects when it cannot start, such as when its port is taken.
   */
  start(context: TransportContext): Promise<void>;
  /** Closes every connection and stops listening and dialling. */
  close(): Promise<void>;
}

/** What roar gives a transport when it starts. */
export interface TransportContext {
  /** This host's node id, unique to this run of the process. */
  readonly node: string;
  /** A connection to another host opened: returns what to tell roar about it. */
  connected(connection: Connection): ConnectionEvents;
  /**
   * Whether the host that last answered at `address` (a connection's `dialled`) is linked now,
   * by this or another connection — as when two hosts list each other as peers and keep the
   * connection one of them dialled. A transport need not dial an address while this holds.
   */
  isLinked(address: string): boolean;
  /** Counts input dropped before it reached roar (a frame over `maxPayload`, a wrong token). */
  dropped(reason: TransportDropReason): void;
  /** Reports a problem worth a user's attention, once per kind, as a `RoarWarning`. */
  warn(message: string, code: string): void;
}

/** One connection to another host, as a transport provides it. */
export interface Connection {
  /**
   * Sends one text. `sent` is called once the transport has handed it on (to the socket, say):
   * roar sends no more than a batch at a time while earlier ones wait, which is its batching.
   */
  send(text: string, sent: () => void): void;
  /** Closes the connection, telling the peer `reason` where the transport can. */
  close(reason: string): void;
  /**
   * On a connection this host dialled, where it dialled (the peer's URL): roar then knows a
   * host that answers there again after a restart, and drops what waited for the old one.
   */
  readonly dialled?: string;
  /** The longest text, in UTF-8 bytes, this side accepts; the peer keeps its texts within it. */
  readonly maxPayload?: number;
}

/** What a transport tells roar about one connection. */
export interface ConnectionEvents {
  /** A text arrived. */
  receive(text: string): void;
  /** The connection ended, whichever side ended it. Call it once. */
  closed(): void;
}
