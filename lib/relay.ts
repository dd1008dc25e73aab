/**
 * Relay: the public handle on a process's main-thread hub — the root of a host in a cluster
 * primary or a lone process, an inner node in a cluster worker or attached child.
 */
import type { ChildProcess } from "node:child_process";
import type { Worker as ClusterWorker } from "node:cluster";
import { RoarError, describe } from "./errors.js";
import { assertMainThread, ensureHost, forgetHost, type RelayHost } from "./host.js";
import { DEFAULT_CONNECT_TIMEOUT_MS } from "./host-sessions.js";
import type { BusTransport, Transport } from "./transport.js";
import { assertOptions } from "./validate.js";

/** Options of {@link startRelay}. */
export interface RelayOptions {
  /**
   * How many messages each link of this process may hold for its neighbour — in its outbox and
   * in the channel (a pipe's queue in user space, a port's unread messages, a host's messages
   * not yet acknowledged) — before further messages to it are dropped and counted in
   * `dropped.queueFull`: the bound that keeps a stalled worker from growing this process's
   * memory. What the kernel or the neighbour took does not count. An integer ≥ 1; it applies
   * to links made before the call too.
   * @defaultValue 65536
   */
  maxQueue?: number;
  /**
   * The same bound in bytes of encoded payloads (values between threads of a process are not
   * encoded and count as messages only). An integer ≥ 1.
   * @defaultValue 67108864 (64 MiB)
   */
  maxQueueBytes?: number;
  /**
   * Transports that link this host to others (see {@link Transport}); started before the
   * returned promise resolves. Only a host's root process (its cluster primary, or a lone
   * process) links to other hosts.
   */
  transports?: readonly (Transport | BusTransport)[];
  /**
   * How long, in milliseconds, `startRelay` waits for the peers its transports dial (their
   * {@link Transport.peers}) to be linked, so that a `flush()` and a `publish` right after it
   * reach them. A peer not linked by then, or that refused this host (a wrong token), is named
   * in an `ERR_ROAR_PEER_UNREACHABLE` warning, and its transport goes on dialling it. 0 waits
   * for none: `startRelay` resolves once the transports are started.
   * @defaultValue 5000
   */
  connectTimeout?: number;
}

/** Counters of a relay, from {@link Relay.stats}. */
export interface RelayStats {
  /** Worker threads of this process linked now. */
  threads: number;
  /** Other processes (cluster workers, attached children, the parent) linked now. */
  processes: number;
  /** Other hosts linked now. */
  hosts: number;
  /** Other hosts whose connection dropped and that may come back (see `Transport.awayTimeout`). */
  hostsAway: number;
  /** Messages sent over links. */
  sent: number;
  /** Messages received over links. */
  received: number;
  /**
   * Messages or frames lost, by reason: here; for `queueFull`, in every worker thread of this
   * process too; and for `queueFull`, `malformed`, `undecodable` and `unsendable`, in every
   * process below this one (cluster workers and attached children report theirs to their
   * parent, at most 100 ms later and always before their next flush), so a host's root counts
   * every slow-consumer loss on the host. Each loss is counted once, where it happened.
   */
  dropped: {
    /**
     * Not sent on a link that held its bound (`maxQueue` messages or `maxQueueBytes` bytes)
     * for a neighbour that did not take them in: a slow or stopped consumer.
     */
    queueFull: number;
    /** Frames from another process that were not well-formed. */
    malformed: number;
    /** Payloads from another process that could not be decoded. */
    undecodable: number;
    /** Messages a thread port refused to carry (a value structured clone refuses; `publish` refuses those first). */
    unsendable: number;
    /**
     * Messages larger than the host they were for accepts, frames larger than this host
     * accepts, and connections that sent more than a few KiB before their handshake.
     */
    oversized: number;
    /**
     * Connections from other hosts refused before their handshake: for a wrong or missing
     * token, for not completing the handshake within a few seconds, or as the oldest of too many
     * such connections at once (see `WebSocketTransport`'s `maxUnauthenticated`).
     */
    unauthenticated: number;
    /**
     * Messages for another host's process that it never acknowledged: those sent to it and
     * not acknowledged, plus those that waited for it while it was away. They are counted when
     * that process is known to be gone for good — a new process answers at its address (as
     * this host finds when it dials there, which it does at once when a new host links while
     * that one is away, or as another host that dialled there says), its relay said bye, or
     * it stayed away longer than `awayTimeout` — once, by the host that kept them for it.
     * Messages published after that go to whoever wants them then (the new process, once its
     * interest arrives) and are not counted; a new process at the old one's address is not
     * sent anything before the old one is given up, so nothing it receives is counted.
     *
     * An upper bound on what that process's subscribers missed, exact for a host that died
     * while quiet: of what it received just before it died, what it had not yet acknowledged
     * (a host acknowledges at least every 1,024 messages and 20 ms, and before anything it
     * sends) may have been delivered. A host no one dials (it only dialled out) cannot be
     * recognised when it restarts: it is given up after `awayTimeout`, and what waited for it
     * until then is counted, even what its new process received meanwhile.
     */
    disconnected: number;
    /** Messages not passed on to another host because they had crossed 8 hosts: a ring of hosts, which roar does not support. */
    looped: number;
  };
}

const relays = new WeakMap<RelayHost, Relay>();

/**
 * The relay of this process: links its worker threads, cluster workers and attached children
 * so that a publish reaches every subscriber of its scope on the host.
 */
export class Relay implements AsyncDisposable {
  readonly #host: RelayHost;
  readonly #onClose: () => void;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link startRelay}. */
  constructor(host: RelayHost, onClose: () => void) {
    this.#host = host;
    this.#onClose = onClose;
  }

  /** `true` once {@link Relay.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Links a child process made with `child_process.fork` (or a cluster worker made before
   * the relay existed elsewhere) to this relay. The child joins once roar runs in it.
   *
   * @throws {@link RoarError} `ERR_ROAR_INVALID_OPTION` when `child` has no IPC channel,
   * `ERR_ROAR_CLOSED` after {@link Relay.close}.
   *
   * @example
   * ```ts
   * const child = fork("./child.js");
   * relay.attach(child);
   * ```
   */
  attach(child: ChildProcess | ClusterWorker): void {
    if (this.#closed) throw new RoarError("ERR_ROAR_CLOSED", "cannot attach: the relay is closed");
    const process = "process" in child && typeof child.isConnected === "function" ? child.process : (child as ChildProcess);
    if (typeof process?.send !== "function") {
      throw new RoarError(
        "ERR_ROAR_INVALID_OPTION",
        `\`child\` must be a ChildProcess with an IPC channel (from child_process.fork) or a cluster worker, got ${describe(child)}`,
      );
    }
    this.#host.attach(process);
  }

  /** Counters of this relay's links: how many, messages sent and received, dropped by reason. */
  stats(): RelayStats {
    const hub = this.#host.hub;
    const counters = hub.counters();
    const sessions = this.#host.sessions;
    const hosts = sessions.hostCount();
    return {
      threads: hub.linkCount("thread"),
      processes: hub.linkCount("process"),
      hosts: hosts.linked,
      hostsAway: hosts.away,
      sent: counters.sent,
      received: counters.received,
      dropped: {
        queueFull: counters.droppedQueueFull,
        malformed: counters.droppedMalformed + sessions.counters.malformed,
        undecodable: counters.droppedUndecodable,
        unsendable: counters.droppedUnsendable,
        oversized: counters.droppedOversized + sessions.counters.oversized,
        unauthenticated: sessions.counters.unauthenticated,
        disconnected: counters.droppedDisconnected,
        looped: counters.droppedLooped,
      },
    };
  }

  /**
   * Unlinks every thread, process and host, and stops the transports; routers of this process
   * then reach only their own thread. A later router or {@link startRelay} starts a new relay.
   * Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      // Links say bye first, over connections the transports still hold.
      this.#host.close();
      this.#onClose();
      this.#closing = this.#host.sessions.close();
    }
    return this.#closing;
  }

  /**
   * @internal Starts `transports`, after checking them, then waits up to `connectTimeout` ms
   * for the peers they dial (see {@link RelayOptions.connectTimeout}).
   */
  async addTransports(transports: readonly (Transport | BusTransport)[], connectTimeout = DEFAULT_CONNECT_TIMEOUT_MS): Promise<void> {
    if (transports.length === 0) return;
    const notRoot = this.#host.notRoot;
    if (notRoot !== undefined) {
      throw new RoarError("ERR_ROAR_UNSUPPORTED", `transports run in a host's root process (its cluster primary, or a lone process): ${notRoot}`);
    }
    for (const transport of transports) await this.#host.sessions.start(transport);
    await this.#host.sessions.peersLinked(transports, connectTimeout);
  }

  /** Closes the relay (`await using relay = await startRelay()`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts this process's relay, or returns the one already running. In a cluster primary the
 * relay also starts by itself with the first router; call this in a primary that never makes
 * a router, or to set options.
 *
 * @throws {@link RoarError} `ERR_ROAR_UNSUPPORTED` in a worker thread (threads join their main
 * thread's relay by themselves), `ERR_ROAR_INVALID_OPTION` for bad options.
 *
 * @example
 * ```ts
 * // in the cluster primary
 * const relay = await roar.startRelay();
 * for (let i = 0; i < 4; i++) cluster.fork();
 * ```
 */
export async function startRelay(options: RelayOptions = {}): Promise<Relay> {
  assertMainThread("startRelay()");
  const relay = relayOf(ensureHost(), options, forgetHost);
  await relay.addTransports(options.transports ?? [], options.connectTimeout);
  return relay;
}

/** @internal The relay of `host`, made on first use, with `options` applied (checked first). */
export function relayOf(host: RelayHost, options: RelayOptions, onClose: (host: RelayHost) => void): Relay {
  assertOptions(options, "options", ["maxQueue", "maxQueueBytes", "transports", "connectTimeout"]);
  const { maxQueue, maxQueueBytes, transports, connectTimeout } = options as RelayOptions;
  if (connectTimeout !== undefined && !(Number.isSafeInteger(connectTimeout) && connectTimeout >= 0)) {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.connectTimeout\` must be an integer ≥ 0 (milliseconds), got ${describe(connectTimeout)}`);
  }
  for (const [name, value] of [["maxQueue", maxQueue], ["maxQueueBytes", maxQueueBytes]] as const) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.${name}\` must be an integer ≥ 1, got ${describe(value)}`);
    }
  }
  if (transports !== undefined && !(Array.isArray(transports) && transports.every(isTransport))) {
    throw new RoarError(
      "ERR_ROAR_INVALID_OPTION",
      `\`options.transports\` must be an array of transports (objects with \`start\` and \`close\` methods), got ${describe(transports)}`,
    );
  }
  if (maxQueue !== undefined) host.bounds.maxQueue = maxQueue;
  if (maxQueueBytes !== undefined) host.bounds.maxQueueBytes = maxQueueBytes;
  if (maxQueue !== undefined || maxQueueBytes !== undefined) host.hub.boundsChanged();
  let relay = relays.get(host);
  if (relay === undefined) relays.set(host, (relay = new Relay(host, () => onClose(host))));
  return relay;
}

function isTransport(value: unknown): value is Transport | BusTransport {
  const transport = value as Partial<Transport> | null;
  return typeof transport === "object" && transport !== null && typeof transport.start === "function" && typeof transport.close === "function";
}
