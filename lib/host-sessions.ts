/**
 * HostSessions: the hosts a relay is linked to, and the handshake that tells connections
 * from transports apart by the host at the far end.
 *
 * Every connection starts with a handshake, `["H", version, node, maxPayload, dial]`, from both
 * sides. Then the connection belongs to the {@link HostLink} of that node: a new one (which
 * joins the hub), or one that was away (which resumes). Two connections to one host — two
 * hosts that list each other as peers, or a host that dialled again before this side saw its
 * old connection drop — are settled the same way on both sides: the connection dialled by the
 * host with the smaller node id stays, unless both were dialled by the same side, where the
 * one it dialled last stays (the older one is likely dead): `dial` numbers the connections a
 * host dials, so both sides agree on which is newer whatever order the handshakes arrive in.
 *
 * The handshake is the door: a first text longer than {@link MAX_HANDSHAKE_BYTES} is refused
 * before it is parsed (a stranger's 15 MB of nested arrays would cost JSON.parse 700 MiB), and
 * a connection that sends none within {@link HANDSHAKE_TIMEOUT_MS} is closed.
 *
 * Readiness: a configured peer (an address in a transport's `peers`) is *linked* once the host
 * that answered there has a connected link whose far side said hello — its hello carries its
 * whole interest, so a publish made afterwards reaches what it wants, and a flush afterwards
 * waits for it. An address where this very host answered is linked as well (nothing to wait
 * for). `startRelay` waits for that ({@link HostSessions.peersLinked}); the hub sets a link's
 * `greeted` while it takes in a text, so every text received is a moment to look again.
 *
 * A new process at an old address: a host that answers, at an address this host dials, with a
 * node id other than the one that answered there before is a new process, and the old one is
 * not coming back — it is given up at once (what it had not acknowledged is counted lost). But
 * the new process usually dials first, and its connection does not say where it listens. So
 * when a host this one does not know links by dialling in while some host this one dials is
 * away, the new host is on *probation*: the transports dial the away hosts' addresses at once
 * ({@link Transport.redial}), and the new host's texts are held until each of those away hosts
 * is given up, is back, or {@link PROBATION_MS} passed. So an old process replaced by the new
 * one is given up before this host takes in the new one's interest — no message is both
 * delivered to the new process and counted lost for the old one.
 *
 * A broker transport has no connections to tell apart: it gets one {@link BusLink}, which
 * stands for every host on the broker (see bus-link.ts), and no other transport beside it.
 */
import type { Hub } from "./hub.js";
import { BusLink } from "./links/bus-link.js";
import { HostLink, type HostLinkEvents } from "./links/host-link.js";
import { RoarError } from "./errors.js";
import {
  HANDSHAKE_TIMEOUT_MS,
  MAX_HANDSHAKE_BYTES,
  type BusContext,
  type BusTransport,
  type Connection,
  type ConnectionEvents,
  type Transport,
  type TransportContext,
  type TransportDropReason,
} from "./transport.js";
import { PROTOCOL_VERSION } from "./wire/frames.js";
import { isNode } from "./wire/validate-frame.js";

/** The most hosts one host links to (node ids it keeps a link for, away ones included). */
export const MAX_HOSTS = 1024;
/** How long a host that dropped its connection keeps its place, by default, in milliseconds. */
export const DEFAULT_AWAY_TIMEOUT_MS = 30_000;
/** How long `startRelay` waits for the configured peers by default, in milliseconds. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/**
 * The longest a host on probation (see the header) has its texts held, in milliseconds: an
 * away host's address that answers nothing in that time did not take a new process.
 */
export const PROBATION_MS = 3000;
/** The most texts, and characters of them, held from a host on probation; beyond, it ends at once. */
const PROBATION_TEXTS = 1024;
const PROBATION_CHARS = 4 * 1024 * 1024;

/** A host on probation (see the header). */
interface Probation {
  /** The away hosts it may have replaced, whose addresses are being dialled again. */
  readonly suspects: Set<string>;
  /** What it sent meanwhile, in order, with the connection each came on (`undefined`: that connection closed). */
  readonly texts: [Connection, string | undefined][];
  /** Characters of `texts`. */
  chars: number;
  readonly timer: NodeJS.Timeout;
}

/** What was dropped before it reached a host link. */
export interface SessionCounters {
  malformed: number;
  oversized: number;
  unauthenticated: number;
}

/** One `startRelay` waiting for the peers of its transports. */
interface PeerWait {
  /** The addresses neither linked nor failed yet. */
  readonly pending: Set<string>;
  /** Ends the wait. */
  settle(): void;
}

type Handshake = readonly ["H", number, string, number, number?];

function isHandshake(value: unknown): value is Handshake {
  return (
    Array.isArray(value) &&
    value[0] === "H" &&
    Number.isSafeInteger(value[1]) &&
    (value[1] as number) >= 1 &&
    isNode(value[2]) &&
    Number.isSafeInteger(value[3]) &&
    (value[3] as number) >= 1 &&
    (value[4] === undefined || (Number.isSafeInteger(value[4]) && (value[4] as number) >= 0))
  );
}

/** @internal */
export class HostSessions {
  readonly #hub: Hub;
  readonly #links = new Map<string, HostLink>();
  /** The node that last answered at each address this host dialled. */
  readonly #dialled = new Map<string, string>();
  readonly #transports: (Transport | BusTransport)[] = [];
  #bus: BusLink | undefined;
  readonly #warned = new Set<string>();
  /** The number, in its dialler's count, of each connection (see the handshake). */
  readonly #dials = new WeakMap<Connection, number>();
  #lastDial = 0;
  /** The `startRelay` calls waiting for peers; each is settled once, then removed. */
  readonly #peerWaits = new Set<PeerWait>();
  /** Why a peer some wait is for could not be linked, as its transport said; forgotten when that wait ends. */
  readonly #unreachable = new Map<string, string>();
  /** The hosts on probation, each until it ends (see the header). */
  readonly #probations = new Map<HostLink, Probation>();
  readonly counters: SessionCounters = { malformed: 0, oversized: 0, unauthenticated: 0 };
  readonly #events: HostLinkEvents = {
    away: (link) => this.#hub.hostAway(link),
    back: (link) => this.#hub.hostBack(link),
    oversized: (link, bytes) =>
      this.#warn(
        `a message of ${bytes} bytes is larger than host ${link.node} accepts; it was dropped (counted in relay.stats().dropped.oversized). Raise that host's \`maxPayload\` to send it.`,
        "ERR_ROAR_OVERSIZED",
      ),
    gone: (link) => {
      if (this.#links.get(link.node) === link) this.#links.delete(link.node);
      const probation = this.#probations.get(link);
      if (probation !== undefined) {
        clearTimeout(probation.timer);
        this.#probations.delete(link);
      }
      // After the hub has let the link go (it hears of it once this returns): a host on
      // probation for it then takes in its interest where the gone one's is no more.
      if (this.#probations.size !== 0) queueMicrotask(() => this.#settleProbations());
    },
    replaced: (link, node) => {
      // A host still connected here is alive, whatever answers at the address the other dials.
      if (node !== link.node && this.#links.get(node)?.connection === undefined) this.#giveUp(node);
    },
  };
  #closed = false;

  constructor(hub: Hub) {
    this.#hub = hub;
  }

  /** Starts `transport`; resolves once it listens (or, for a broker, is connected). */
  async start(transport: Transport | BusTransport): Promise<void> {
    if (this.#transports.includes(transport)) return;
    if (this.#transports.length !== 0 && (isBus(transport) || this.#transports.some(isBus))) {
      // A host on a broker reaches every other host there; another transport beside it would
      // give hosts on both a second path.
      throw new RoarError("ERR_ROAR_UNSUPPORTED", "a host that uses a broker transport (Redis, NATS) uses no other transport");
    }
    this.#transports.push(transport);
    try {
      await (isBus(transport) ? this.#startBus(transport) : this.#startTransport(transport));
    } catch (error) {
      // It never started: the host may start another.
      this.#transports.splice(this.#transports.indexOf(transport), 1);
      throw error;
    }
  }

  async #startTransport(transport: Transport): Promise<void> {
    const context: TransportContext = {
      node: this.#hub.node,
      connected: (connection) => this.#connected(connection, transport),
      isLinked: (address) => {
        const node = this.#dialled.get(address);
        // An address where this very host answered is as good as linked: nothing to dial.
        return node !== undefined && (node === this.#hub.node || this.#links.get(node)?.connection !== undefined);
      },
      unreachable: (address, reason) => {
        // Kept only while a startRelay waits for the address, to name the reason when it gives up.
        if (![...this.#peerWaits].some((wait) => wait.pending.has(address))) return;
        this.#unreachable.set(address, reason);
        this.#checkPeers();
      },
      dropped: (reason: TransportDropReason) => void this.counters[reason]++,
      warn: (message, code) => this.#warn(message, code),
    };
    await transport.start(context);
  }

  /**
   * Resolves once every address the point-to-point `transports` name in their `peers` is
   * linked (see the header), has failed, or `timeout` ms have passed; then warns
   * `ERR_ROAR_PEER_UNREACHABLE`, naming those not linked. The transports go on dialling them.
   */
  async peersLinked(transports: readonly (Transport | BusTransport)[], timeout: number): Promise<void> {
    const addresses = new Set<string>();
    for (const transport of transports) if (!isBus(transport)) for (const address of transport.peers ?? []) addresses.add(address);
    if (addresses.size === 0 || timeout === 0 || this.#closed) return;
    let settle = noop;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const wait: PeerWait = { pending: new Set(addresses), settle };
    this.#peerWaits.add(wait);
    this.#checkPeers();
    // Not unref'd: a program awaiting startRelay expects it to resolve, even if the
    // transport's own timers would let the process exit meanwhile.
    const timer = setTimeout(() => this.#endWait(wait), timeout);
    await settled;
    clearTimeout(timer);
    const missing = [...addresses].filter((address) => !this.#peerLinked(address));
    const why = missing.map((address) => `${address} (${this.#unreachable.get(address) ?? `no answer within ${timeout} ms`})`);
    for (const address of addresses) this.#unreachable.delete(address);
    if (missing.length === 0 || this.#closed) return;
    this.#warn(
      `startRelay: not linked to ${why.join(", ")}; this host goes on dialling and links once they answer, but what is published before then does not reach them. Raise \`connectTimeout\` if they are only slow to start.`,
      "ERR_ROAR_PEER_UNREACHABLE",
    );
  }

  /** Whether the host that answered at `address` is linked, and has told its interest. */
  #peerLinked(address: string): boolean {
    const node = this.#dialled.get(address);
    if (node === undefined) return false;
    if (node === this.#hub.node) return true;
    const link = this.#links.get(node);
    return link !== undefined && link.connected && link.greeted;
  }

  /** Ends the waits whose every peer is linked or failed. */
  #checkPeers(): void {
    for (const wait of this.#peerWaits) {
      for (const address of wait.pending) {
        if (this.#peerLinked(address) || this.#unreachable.has(address)) wait.pending.delete(address);
      }
      if (wait.pending.size === 0) this.#endWait(wait);
    }
  }

  #endWait(wait: PeerWait): void {
    this.#peerWaits.delete(wait);
    wait.settle();
  }

  async #startBus(transport: BusTransport): Promise<void> {
    let link: BusLink | undefined;
    const context: BusContext = {
      node: this.#hub.node,
      receive: (channel, text) => link?.receive(channel, text),
      reconnected: () => link?.reconnected(),
      dropped: (reason: TransportDropReason) => void this.counters[reason]++,
      warn: (message, code) => this.#warn(message, code),
    };
    await transport.start(context);
    link = new BusLink(transport, this.#hub.node, this.#hub.bounds, {
      oversized: (bytes) =>
        this.#warn(
          `a message of ${bytes} bytes is larger than ${transport.name} takes (${transport.maxPayload} bytes); it was dropped (counted in relay.stats().dropped.oversized)`,
          "ERR_ROAR_OVERSIZED",
        ),
      malformed: () => void this.counters.malformed++,
    });
    this.#bus = link;
    this.#hub.addLink(link);
  }

  /** How many hosts are linked now, and how many are away. */
  hostCount(): { linked: number; away: number } {
    let linked = 0;
    for (const link of this.#links.values()) if (link.connected) linked++;
    return { linked: linked + (this.#bus?.hostCount ?? 0), away: this.#links.size - linked };
  }

  /** Stops every transport; the hub closes the links. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wait of this.#peerWaits) this.#endWait(wait);
    for (const { timer } of this.#probations.values()) clearTimeout(timer);
    this.#probations.clear();
    await Promise.allSettled(this.#transports.map((transport) => transport.close()));
  }

  #connected(connection: Connection, transport: Transport): ConnectionEvents {
    if (this.#closed) {
      connection.close("roar: the relay is closed");
      return { receive: noop, closed: noop };
    }
    const maxPayload = connection.maxPayload ?? Number.MAX_SAFE_INTEGER;
    let dial = 0;
    if (connection.dialled !== undefined) this.#dials.set(connection, (dial = ++this.#lastDial));
    connection.send(JSON.stringify([["H", PROTOCOL_VERSION, this.#hub.node, maxPayload, dial]]), noop);
    let link: HostLink | undefined;
    /** Set once the connection is refused: what the peer sent before it heard is ignored. */
    let refused = false;
    const timer = setTimeout(() => {
      refused = true;
      this.counters.unauthenticated++;
      connection.close("roar: protocol error: no handshake in time");
    }, HANDSHAKE_TIMEOUT_MS);
    timer.unref();
    return {
      receive: (text) => {
        if (link !== undefined) {
          if (this.#hold(link, connection, text)) return;
          link.receive(connection, text);
          if (this.#peerWaits.size !== 0) this.#checkPeers();
          return;
        }
        if (refused) return;
        clearTimeout(timer);
        if (text.length > MAX_HANDSHAKE_BYTES) {
          // Refused unparsed: parsing is what a stranger's big text would cost.
          refused = true;
          this.counters.oversized++;
          connection.close(`roar: protocol error: the first text must be the handshake, at most ${MAX_HANDSHAKE_BYTES} characters`);
          return;
        }
        let batch: unknown;
        try {
          batch = JSON.parse(text);
        } catch {
          batch = undefined;
        }
        // The handshake travels alone, so nothing a peer sends before it is linked is lost.
        if (!Array.isArray(batch) || batch.length !== 1 || !isHandshake(batch[0])) {
          refused = true;
          this.counters.malformed++;
          connection.close("roar: protocol error: expected a handshake, alone in its text");
          return;
        }
        link = this.#linkFor(connection, batch[0], transport);
        refused = link === undefined;
        // The address may now be known to lead to this very host, or to a linked one.
        if (this.#peerWaits.size !== 0) this.#checkPeers();
      },
      closed: () => {
        clearTimeout(timer);
        if (link !== undefined && this.#hold(link, connection, undefined)) return;
        link?.connectionClosed(connection);
      },
    };
  }

  /**
   * Whether another host may be linked: at most {@link MAX_HOSTS}, so that a peer making up
   * node ids cannot grow the table (and every neighbour list sent with it). A host that is
   * away makes room for a new one: the oldest away host is let go, as if it had expired.
   */
  #roomForHost(): boolean {
    if (this.#links.size < MAX_HOSTS) return true;
    for (const link of this.#links.values()) {
      if (link.connection === undefined) {
        link.expire();
        return true;
      }
    }
    return false;
  }

  #linkFor(connection: Connection, [, , node, peerMaxPayload, dial]: Handshake, transport: Transport): HostLink | undefined {
    if (connection.dialled === undefined) this.#dials.set(connection, dial ?? 0);
    if (node === this.#hub.node) {
      if (connection.dialled !== undefined) this.#dialled.set(connection.dialled, node);
      connection.close("roar: a host cannot link to itself");
      return undefined;
    }
    if (connection.dialled !== undefined) {
      const before = this.#dialled.get(connection.dialled);
      this.#dialled.set(connection.dialled, node);
      // A new process answers where another one did: the old one is not coming back.
      if (before !== undefined && before !== node) this.#giveUp(before);
    }
    const existing = this.#links.get(node);
    if (existing === undefined) {
      if (!this.#roomForHost()) {
        this.counters.malformed++;
        connection.close(`roar: too many hosts: this host links to at most ${MAX_HOSTS}`);
        return undefined;
      }
      const link = new HostLink(node, this.#hub.bounds, transport.awayTimeout ?? DEFAULT_AWAY_TIMEOUT_MS, this.#events);
      this.#links.set(node, link);
      link.attach(connection, peerMaxPayload);
      this.#hub.addLink(link);
      if (connection.dialled === undefined) this.#probe(link);
      return link;
    }
    const current = existing.connection;
    if (current !== undefined && !this.#prefers(connection, current, node)) {
      connection.close("roar: duplicate connection: these hosts are already linked");
      return undefined;
    }
    existing.attach(connection, peerMaxPayload);
    // An away host is back: a host on probation for it did not take its place.
    if (this.#probations.size !== 0) this.#settleProbations();
    return existing;
  }

  /**
   * Puts `link`, new here and dialled in, on probation if hosts this host dials are away: their
   * addresses are dialled again at once (see the header).
   */
  #probe(link: HostLink): void {
    const suspects = new Set<string>();
    for (const [address, node] of this.#dialled) {
      const away = this.#links.get(node);
      if (away === undefined || away === link || away.connection !== undefined) continue;
      if (this.#transports.some((transport) => !isBus(transport) && transport.redial?.(address) === true)) suspects.add(node);
    }
    if (suspects.size === 0) return;
    const timer = setTimeout(() => this.#release(link), PROBATION_MS);
    timer.unref();
    this.#probations.set(link, { suspects, texts: [], chars: 0, timer });
  }

  /** Holds a text (or, `undefined`, the close) of `connection` if `link` is on probation; `false` if it is not. */
  #hold(link: HostLink, connection: Connection, text: string | undefined): boolean {
    const probation = this.#probations.get(link);
    if (probation === undefined) return false;
    probation.texts.push([connection, text]);
    probation.chars += text?.length ?? 0;
    // A host that sends this much before it knows what this one wants is not waiting: no more holding.
    if (probation.texts.length >= PROBATION_TEXTS || probation.chars >= PROBATION_CHARS) this.#release(link);
    return true;
  }

  /** Ends each probation whose away hosts are all given up or back. */
  #settleProbations(): void {
    for (const [link, probation] of this.#probations) {
      for (const node of probation.suspects) {
        const suspect = this.#links.get(node);
        if (suspect === undefined || suspect.connection !== undefined) probation.suspects.delete(node);
      }
      if (probation.suspects.size === 0) this.#release(link);
    }
  }

  /** Ends `link`'s probation: what it sent meanwhile is taken in, in order. */
  #release(link: HostLink): void {
    const probation = this.#probations.get(link);
    if (probation === undefined) return;
    this.#probations.delete(link);
    clearTimeout(probation.timer);
    for (const [connection, text] of probation.texts) {
      if (text === undefined) link.connectionClosed(connection);
      else link.receive(connection, text);
    }
    if (this.#peerWaits.size !== 0) this.#checkPeers();
  }

  /**
   * Gives up the host `node`, replaced by a new process: the other hosts are told first, so
   * that each gives it up before it hears that this host no longer reaches it (the neighbour
   * list the hub sends next) — else one would pass to it, through this host's old route, what
   * it was already sending the new process, and count it lost too.
   */
  #giveUp(node: string): void {
    const link = this.#links.get(node);
    if (link === undefined) return;
    for (const other of this.#links.values()) if (other !== link) other.tellReplaced(node);
    link.expire();
  }

  /** Whether `candidate` should replace `current` as the connection to `node`. */
  #prefers(candidate: Connection, current: Connection, node: string): boolean {
    const candidateMine = candidate.dialled !== undefined;
    const currentMine = current.dialled !== undefined;
    if (candidateMine === currentMine) return (this.#dials.get(candidate) ?? 0) > (this.#dials.get(current) ?? 0);
    const smallerIsMe = this.#hub.node < node;
    return candidateMine === smallerIsMe;
  }

  #warn(message: string, code: string): void {
    if (this.#warned.has(code)) return;
    this.#warned.add(code);
    process.emitWarning(message, { type: "RoarWarning", code });
  }
}

function noop(): void {}

function isBus(transport: Transport | BusTransport): transport is BusTransport {
  return (transport as Partial<BusTransport>).kind === "bus";
}
