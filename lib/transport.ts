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
 * A transport that dials should name its {@link Transport.peers}, so that `startRelay` can wait
 * for them (see there). A transport that listens on a network guards its door: roar closes a
 * connection whose first text is not its handshake, is longer than 4096 characters or comes
 * later than 3 s; a transport should not let a stranger hold more than that before roar sees it
 * (see `WebSocketTransport`, which bounds the bytes, the time and the number of connections that
 * have not yet sent their first text).
 * See `WebSocketTransport` for a full example and `InProcessTransport` for a minimal one.
 */

/**
 * @internal The longest first text, in UTF-16 units (so at most three times as many UTF-8 bytes), roar
 * takes on a connection: a handshake is about a hundred. A longer one is refused before it is
 * parsed, and counted in `relay.stats().dropped.oversized`.
 */
export const MAX_HANDSHAKE_BYTES = 4096;

/**
 * @internal How long, in milliseconds, a connection may take to send its handshake once roar has it;
 * then it is closed, and counted in `relay.stats().dropped.unauthenticated` (NATS gives a client
 * 2 s to authenticate).
 */
export const HANDSHAKE_TIMEOUT_MS = 3000;

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
   * The addresses this transport dials, exactly as its connections to them give them in
   * {@link Connection.dialled}. When present, `startRelay` resolves only once each of them is
   * linked (the host there shook hands and said what it wants, so a `flush()` and a `publish`
   * afterwards reach it), or failed ({@link TransportContext.unreachable}), or the relay's
   * `connectTimeout` passed — then it warns `ERR_ROAR_PEER_UNREACHABLE` naming them, and the
   * transport goes on dialling. A transport without it makes `startRelay` resolve as soon as
   * {@link Transport.start} does.
   */
  readonly peers?: readonly string[];
  /**
   * Starts listening and dialling. Resolves once the transport listens (connections to peers
   * may open later); rejects when it cannot start, such as when its port is taken.
   */
  start(context: TransportContext): Promise<void>;
  /** Closes every connection and stops listening and dialling. */
  close(): Promise<void>;
  /**
   * Dials `address` (one of {@link Transport.peers}) now, without waiting for a backoff to end;
   * returns `false` if this transport does not dial it. roar asks when a host it does not know
   * links while the host that answered at `address` is away, and holds the new host's frames
   * until the answer (at most a few seconds): if a new process answers there, the old one is
   * gone, and is given up before the new one receives anything, so that no message is both
   * delivered to the new process and counted lost for the old. Optional: without it, the old
   * one is given up when this transport next dials `address` by itself.
   */
  redial?(address: string): boolean;
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
  /**
   * A peer this transport dials (one of {@link Transport.peers}) refused this host for a reason
   * that dialling again will not cure soon, such as its token: `startRelay` stops waiting for
   * it. The transport may go on dialling; the peer counts as linked once it is.
   */
  unreachable(address: string, reason: string): void;
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

/**
 * What a {@link BusTransport} carries texts on. The transport names each one on its broker (a
 * Redis channel, a NATS subject), escaping whatever the broker treats specially, so that
 * different channels never share a name.
 */
export type BusChannel =
  /** Messages of one (scope, topic): subscribed by every host that wants them. */
  | { readonly kind: "topic"; readonly scope: string; readonly topic: string }
  /** What one host says to another: subscribed by that host only. */
  | { readonly kind: "node"; readonly node: string }
  /** What a host says to every other one (presence, interest): subscribed by all. */
  | { readonly kind: "hosts" };

/**
 * A transport over a message broker (Redis, NATS): every host connects to the broker, and
 * the broker's own subscriptions route each message to the hosts that want it.
 *
 * roar subscribes this host to the topic channels it wants, publishes each batch of messages
 * once on its topic channel, and speaks to other hosts over the node and hosts channels (to
 * learn who wants what, and to sync). It numbers what it publishes, so a host counts what a
 * broker outage lost, and ignores what it published itself if the broker echoes it.
 */
export interface BusTransport {
  /** Marks a broker transport. */
  readonly kind: "bus";
  /** A short name for messages and diagnostics, such as `"nats"`. */
  readonly name: string;
  /** The longest text, in UTF-8 bytes, the broker takes, once started (NATS's `max_payload`). */
  readonly maxPayload: number | undefined;
  /** Connects; resolves once the broker is reachable. */
  start(context: BusContext): Promise<void>;
  /** Disconnects. */
  close(): Promise<void>;
  /** Starts receiving what is published on `channel`. */
  subscribe(channel: BusChannel): void;
  /** Stops receiving what is published on `channel`. */
  unsubscribe(channel: BusChannel): void;
  /**
   * Publishes `text` on `channel`, in order with everything published before.
   * @returns `true` (or a promise) once the client has taken the text; `false` when it cannot
   * be handed to the broker now because the broker is away (what it carried is counted
   * `disconnected`); `"full"` when the transport's own bound on what waits for the broker
   * refused it (counted `queueFull`). A refused text is counted by this host only: roar does
   * not number it, so no other host counts it again. A promise that rejects later is not
   * counted here — the broker may or may not have taken the text — but by each receiving host,
   * as a gap in the numbers, if the text was lost.
   */
  publish(channel: BusChannel, text: string): boolean | "full" | Promise<unknown>;
  /**
   * Bytes this process holds for the broker now: texts published and not yet handed to the
   * kernel (a client's outbound buffer), or, for a client that keeps each command until its
   * reply, not yet answered. A stalled broker reads nothing, so they pile up here: roar bounds
   * them (in bytes, and in the messages they carry) and drops and counts what is beyond, as for
   * any slow neighbour. Omit it where the client cannot tell; nothing then bounds the client.
   */
  heldBytes?(): number;
  /**
   * Resolves once the broker has taken in every subscribe, unsubscribe and publish so far.
   * roar also calls it at each keepalive to learn whether the broker answers this host: while
   * it does not (it rejects, or has not resolved by the next keepalive), other hosts' silence is
   * put down to the broker and they are not forgotten. So it must not resolve before the
   * broker has answered.
   */
  flush(): Promise<void>;
}

/** What roar gives a {@link BusTransport} when it starts. */
export interface BusContext {
  /** This host's node id, unique to this run of the process. */
  readonly node: string;
  /** A text arrived on a subscribed channel. */
  receive(channel: BusChannel, text: string): void;
  /** The connection to the broker was lost and is back: subscriptions stand, texts may have been lost. */
  reconnected(): void;
  /** Counts input dropped before it reached roar. */
  dropped(reason: TransportDropReason): void;
  /** Reports a problem worth a user's attention, once per kind, as a `RoarWarning`. */
  warn(message: string, code: string): void;
}
