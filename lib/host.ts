/**
 * Joins this thread to its host: makes the thread's {@link Hub}, hands it to the dispatchers,
 * and links it to its neighbours.
 *
 *  - A worker thread (made by the user, by tinypool, or nested in another thread) hands a
 *    `MessagePort` to its process's main thread with `postMessageToThread(0, …)`. If the main
 *    thread has no hub yet, that fails at once: the thread warns once, keeps its messages to
 *    itself, and tries again with backoff until the main thread starts one.
 *  - A process's main thread accepts those ports (`process.on("workerMessage")`), attaches to
 *    every cluster worker, forked before or after it started, and, in a cluster worker or a
 *    forked child, links to its parent over IPC.
 */
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import type { ChildProcess } from "node:child_process";
import { isMainThread, MessageChannel, MessagePort, postMessageToThread, threadId } from "node:worker_threads";
import { threadDispatchers, type Beyond } from "./dispatcher.js";
import { RoarError } from "./errors.js";
import { Hub } from "./hub.js";
import { defaultBounds, reportDropsTo, type LinkBounds } from "./links/link.js";
import { IpcLink, isHelloMessage, sendIpc, type IpcChannel } from "./links/ipc-link.js";
import { createPortCounters, PortLink } from "./links/port-link.js";
import { PROTOCOL_VERSION } from "./wire/frames.js";
import { HostSessions } from "./host-sessions.js";
import { debuglog } from "node:util";

const debug = debuglog("roar");

/** What a joining thread posts to the main thread. */
interface JoinRequest {
  cmd: "NODE_ROAR_JOIN";
  v: number;
  port: MessagePort;
  counters: Int32Array;
  /** The thread's doorbell (see PortLink). */
  doorbell: Int32Array;
  /** The thread's count of messages its links dropped for a full queue (see reportDropsTo). */
  drops?: Int32Array;
  /** The thread's id, for warnings. */
  threadId?: number;
}

function isJoinRequest(value: unknown): value is JoinRequest {
  if (typeof value !== "object" || value === null) return false;
  const request = value as Partial<JoinRequest>;
  return (
    request.cmd === "NODE_ROAR_JOIN" &&
    request.port instanceof MessagePort &&
    request.counters instanceof Int32Array &&
    request.doorbell instanceof Int32Array
  );
}

/** Marks a child's channel with the relay that links it (see ThreadHost.attach). */
const ATTACHED = Symbol.for("roar.attachedRelay");

/** The mark: whether the relay that put it there is still open. Any copy of roar reads it. */
interface AttachMark {
  open: boolean;
}

/** How long a cluster worker waits for its primary's relay to say hello before it warns, in milliseconds. */
const PRIMARY_ANSWER_MS = 1000;
/** How long a forked child waits for its parent's relay to answer its hello, in milliseconds. */
const PARENT_ANSWER_MS = 250;

/** The first wait before trying again to join the main thread, in milliseconds. */
const MIN_JOIN_BACKOFF_MS = 100;
/** The longest wait between two attempts to join the main thread, in milliseconds. */
const MAX_JOIN_BACKOFF_MS = 2000;

/**
 * @internal What a {@link Relay} stands for: a hub that is the root of its host or a node in
 * it, the other hosts it is linked to, and how to attach children and close.
 */
export interface RelayHost {
  readonly hub: Hub;
  readonly sessions: HostSessions;
  /** The bounds of every link of the host, shared with them; see RelayOptions.maxQueue. */
  readonly bounds: LinkBounds;
  /** Why this host cannot link to other hosts, if it cannot. */
  readonly notRoot: string | undefined;
  /** Attaches a child process, once. */
  attach(child: ChildProcess): void;
  /** Closes every link and stops listening for new ones. */
  close(): void;
}

/** @internal This thread's hub, its links, and how to stop them. */
export class ThreadHost implements RelayHost {
  readonly hub: Hub;
  readonly sessions: HostSessions;
  readonly #cleanups: (() => void)[] = [];
  readonly #attached = new WeakSet<ChildProcess>();
  /** What marks the channels this relay links (see attach); closed with the relay. */
  readonly #mark: AttachMark = { open: true };
  #retry: NodeJS.Timeout | undefined;
  #backoffMs = MIN_JOIN_BACKOFF_MS;
  #closed = false;

  constructor() {
    this.hub = new Hub({ dispatchers: threadDispatchers, expectsUpstream: !isMainThread || process.send !== undefined, isThread: !isMainThread, bounds: defaultBounds() });
    this.sessions = new HostSessions(this.hub);
    const hub = this.hub;
    const beyond: Beyond = {
      interestChanged: (scope, topic) => hub.localInterestChanged(scope, topic),
      forward: (scope, topic, message, strict) => hub.forwardLocal(scope, topic, message, strict),
      drained: () => hub.drained(),
      flush: (timeout) => hub.flush(timeout),
    };
    threadDispatchers.pump = undefined;
    threadDispatchers.beyond = beyond;
    if (isMainThread) {
      this.#startMain();
    } else {
      threadDispatchers.pump = (andSend) => this.hub.mesh.pump(andSend);
      this.hub.onUpstreamLost = () => this.#scheduleJoin();
      this.#joinMainThread();
    }
  }

  get bounds(): LinkBounds {
    return this.hub.bounds;
  }

  get notRoot(): string | undefined {
    if (cluster.isWorker) return "a cluster worker reaches other hosts through its primary";
    if (this.hub.hasUpstream) return "this process is linked to a parent process's relay, which reaches other hosts";
    return undefined;
  }

  /** Attaches a forked child process (or a cluster worker) to this process's hub, once. */
  attach(child: ChildProcess): void {
    // The primary attaches cluster workers by itself; a second link on one channel would
    // take in every frame twice. So would a second copy of roar loaded in this process (an
    // ESM and a CommonJS one, two versions in node_modules, a test runner's module registry
    // per file): the channel is marked, in the registry every realm shares, with the relay
    // that holds it, and a relay of another copy leaves it alone.
    const marked = child as ChildProcess & { [ATTACHED]?: AttachMark };
    const mark = marked[ATTACHED];
    if (this.#attached.has(child) || (mark !== undefined && mark !== this.#mark && mark.open)) return;
    this.#attached.add(child);
    marked[ATTACHED] = this.#mark;
    this.hub.addLink(new IpcLink(child as IpcChannel, this.bounds));
  }

  /** Closes every link and stops listening for new ones. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#mark.open = false;
    for (const cleanup of this.#cleanups) cleanup();
    clearTimeout(this.#retry);
    this.hub.close();
    if (threadDispatchers.beyond !== undefined) {
      threadDispatchers.beyond = undefined;
      threadDispatchers.pump = undefined;
      threadDispatchers.clearRemoteInterest();
    }
  }

  #startMain(): void {
    const onWorkerMessage = (value: unknown): void => {
      if (!isJoinRequest(value)) return;
      const label = value.threadId === undefined ? "a worker thread" : `worker thread ${value.threadId}`;
      const link = new PortLink(value.port, value.counters, 0, this.bounds, label, value.doorbell);
      if (value.drops instanceof Int32Array) link.farDrops = value.drops;
      this.hub.addLink(link);
    };
    process.on("workerMessage", onWorkerMessage);
    this.#cleanups.push(() => process.off("workerMessage", onWorkerMessage));

    if (cluster.isPrimary) {
      const onFork = (worker: ClusterWorker): void => this.attach(worker.process);
      for (const worker of Object.values(cluster.workers ?? {})) if (worker !== undefined && worker.isConnected()) onFork(worker);
      cluster.on("fork", onFork);
      this.#cleanups.push(() => cluster.off("fork", onFork));
    }

    if (process.send !== undefined) this.#linkToParent();
  }

  /**
   * A cluster worker's parent is a cluster primary, whose relay starts with its first router;
   * it is this hub's upstream from the start. A child made by `child_process.fork` links up
   * only when its parent's relay says hello (after `relay.attach(child)`): its parent may not
   * use roar at all, and flush must not wait long for one that never answers.
   */
  #linkToParent(): void {
    const channel = process as unknown as IpcChannel;
    if (cluster.isWorker) {
      this.hub.addLink(new IpcLink(channel, this.bounds), { upstream: true });
      // A primary that runs roar answers at once; one that never loads it never does.
      const timer = setTimeout(() => {
        if (!this.hub.upstreamIsSilent()) return;
        process.emitWarning(
          "this cluster worker cannot reach a roar relay: its primary did not answer within a second (it creates no " +
            "router and never calls roar.startRelay()). Messages published here reach this worker's own threads only, " +
            "until the primary starts a relay; then the worker joins it by itself.",
          { type: "RoarWarning", code: "ERR_ROAR_NO_RELAY" },
        );
      }, PRIMARY_ANSWER_MS);
      timer.unref();
      this.#cleanups.push(() => clearTimeout(timer));
      return;
    }
    if (isTinypoolChildProcess()) {
      this.hub.stopExpectingUpstream();
      process.emitWarning(
        "roar cannot reach the relay of the process that started this tinypool `child_process` worker: tinypool keeps the " +
          "child's IPC channel to itself. Messages published here stay in this process. Use tinypool's default " +
          "`runtime: 'worker_threads'` to share roar topics with a pool.",
        { type: "RoarWarning", code: "ERR_ROAR_UNSUPPORTED" },
      );
      return;
    }
    const onHello = (message: unknown): void => {
      if (!isHelloMessage(message)) return;
      process.off("internalMessage", onHello);
      const link = new IpcLink(channel, this.bounds);
      this.hub.addLink(link, { upstream: true });
      // The link started listening after this message was emitted: hand it on.
      link.receive(message);
    };
    process.on("internalMessage", onHello);
    this.#cleanups.push(() => process.off("internalMessage", onHello));
    // Tell a parent that attached us before we listened that we are here. A parent whose
    // relay attached us answers within a round trip; one that does not run roar never does,
    // and this hub then stops waiting and is a root (it still links up if a hello comes later).
    sendIpc(channel, [["h", PROTOCOL_VERSION, this.hub.node, 0, []]]);
    const timer = setTimeout(() => this.hub.stopExpectingUpstream(), PARENT_ANSWER_MS);
    timer.unref();
    this.#cleanups.push(() => clearTimeout(timer));
  }

  /**
   * The link is made at once, before the main thread has the port: frames sent on it wait in
   * the port and are read when the main thread starts listening, so a thread that publishes
   * straight after making its router (a synchronous tinypool task) loses nothing. If the main
   * thread has no relay, nothing beyond this thread can be subscribed, so nothing sent is lost
   * when the link is closed and tried again later.
   */
  #joinMainThread(): void {
    const { port1, port2 } = new MessageChannel();
    const counters = createPortCounters();
    const link = new PortLink(port1, counters, 1, this.bounds, "the main thread");
    this.hub.addLink(link, { upstream: true });
    // A counter of its own for each join: the main hub it joins counts what this thread drops
    // from now on, never again what an earlier hub (a relay since closed) counted already.
    const drops = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
    reportDropsTo(drops);
    const request: JoinRequest = { cmd: "NODE_ROAR_JOIN", v: PROTOCOL_VERSION, port: port2, counters, doorbell: this.hub.mesh.doorbell, drops, threadId };
    postMessageToThread(0, request, [port2]).then(
      () => (this.#backoffMs = MIN_JOIN_BACKOFF_MS),
      (error: { code?: string }) => {
        debug("thread could not join the main thread (%s)", error.code);
        // Closing the link makes the hub report the upstream lost, which schedules the next try.
        link.close();
        this.#warnNoMainRelay();
      },
    );
  }

  /** Joins the main thread again after a while, waiting longer after each failure. */
  #scheduleJoin(): void {
    if (this.#closed) return;
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => this.#joinMainThread(), this.#backoffMs);
    this.#retry.unref();
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_JOIN_BACKOFF_MS);
  }

  #warnNoMainRelay(): void {
    if (this.#closed || warnedNoMainRelay) return;
    warnedNoMainRelay = true;
    process.emitWarning(
      "this worker thread cannot join roar yet: its process's main thread has no relay. Messages published here " +
        "stay in this thread, and flush() waits, until the main thread creates a router or calls roar.startRelay(); " +
        "this thread keeps trying.",
      { type: "RoarWarning", code: "ERR_ROAR_NO_RELAY" },
    );
  }

}

let warnedNoMainRelay = false;


function isTinypoolChildProcess(): boolean {
  return (process as { __tinypool_state__?: { isChildProcess?: boolean } }).__tinypool_state__?.isChildProcess === true;
}

let host: ThreadHost | undefined;

/** @internal This thread's host, started on first use. */
export function ensureHost(): ThreadHost {
  host ??= new ThreadHost();
  return host;
}

/** @internal Forgets the host after it closed. */
export function forgetHost(closed: RelayHost): void {
  if (host === closed) host = undefined;
}

/** @internal Fails unless this is a process's main thread. */
export function assertMainThread(operation: string): void {
  if (!isMainThread) {
    throw new RoarError("ERR_ROAR_UNSUPPORTED", `${operation} runs in a process's main thread; worker threads join it by themselves`);
  }
}
