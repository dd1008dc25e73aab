/**
 * Hub: routes messages between this thread's dispatchers and its links. Every thread that
 * uses roar has one; a process's main-thread hub is its relay.
 *
 * The hubs of a host form a tree: each worker thread links to its process's main thread (any
 * thread, however nested, hands its port straight to thread 0), and each cluster worker's or
 * attached child's main thread links to its parent. The root is the cluster primary (or a
 * lone process). On a tree, "forward on every link, except the one it came in on, whose
 * interest matches" delivers each message exactly once and in order per publisher (links are
 * FIFO, and the path between two hubs is unique).
 *
 * Invariants:
 *  - `#holders` maps (scope, topic) to the links whose far side has a subscriber; the local
 *    dispatchers are the one more holder, read from `threadDispatchers`;
 *  - the interest this hub announces to link L is "some holder other than L": it is re-sent
 *    to every link whenever that changes, so each link's far side always knows exactly what
 *    lies beyond this hub;
 *  - flush: a flush travels towards the root behind everything sent before it; the root then
 *    runs a *sync* down every process link (not thread links — threads pick up what waits for
 *    them before they publish, see PortLink) and answers when all are done. When a flush
 *    resolves, every hub on the host has taken in the interest sent before it, so a publish
 *    made anywhere afterwards reaches the subscriber.
 *
 * Races handled:
 *  - a link's far side may start after this side said hello (a cluster worker loads roar
 *    after the primary attached it): every hello is answered with one carrying the full
 *    interest, and interest frames are sent even before the far side greeted, so whichever
 *    side speaks first, both end up with the same picture;
 *  - flush requests sent upstream before the upstream hub listened are sent again when it
 *    says hello (a repeated answer is ignored);
 *  - a link that closes takes its interest with it and counts as done in every pending sync.
 */
import { threadDispatchers } from "./dispatcher.js";
import { RoarError } from "./errors.js";
import type { Link, LinkCounters, LinkHandler } from "./links/link.js";
import type { Scope, Topic } from "./types.js";
import { Envelope } from "./wire/envelope.js";
import { isEncodedPayload } from "./wire/codec.js";
import { PROTOCOL_VERSION, type Frame, type InterestKey } from "./wire/frames.js";
import { debuglog } from "node:util";

const debug = debuglog("roar");

interface PendingFlush {
  resolve(): void;
  reject(error: Error): void;
}

/** Counters of a hub, summed over its links (closed ones included). */
export interface HubCounters extends LinkCounters {
  /** Payloads from other processes that could not be decoded. */
  droppedUndecodable: number;
}

/** @internal */
export class Hub implements LinkHandler {
  /** A random id for diagnostics, sent in hellos. */
  readonly node = `${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  readonly #links = new Set<Link>();
  readonly #holders = new Map<Scope, Map<Topic, readonly Link[]>>();
  #upstream: Link | undefined;
  #nextId = 1;
  /** Flushes sent upstream, by the id they were sent with. */
  readonly #flushes = new Map<number, PendingFlush>();
  /** Flushes waiting for an upstream link (a thread whose main thread has no relay yet). */
  #waitingForUpstream: PendingFlush[] = [];
  readonly #syncs = new Map<number, { waiting: Set<Link>; done(): void }>();
  readonly #closedCounters: HubCounters = { sent: 0, received: 0, droppedQueueFull: 0, droppedMalformed: 0, droppedUndecodable: 0 };
  /** Whether this hub has, or is about to get, a link towards the root. */
  #expectsUpstream: boolean;
  /** Messages published here while joining, before any upstream link existed; bounded. */
  #early: Envelope[] = [];
  readonly #maxEarly: number;
  #closed = false;
  #flushesUnderWay = 0;
  #keepAlive: NodeJS.Timeout | undefined;

  constructor({ expectsUpstream, maxEarly }: { expectsUpstream: boolean; maxEarly: number }) {
    this.#expectsUpstream = expectsUpstream;
    this.#maxEarly = maxEarly;
    threadDispatchers.forwardAll = expectsUpstream;
  }

  /**
   * Gives up waiting for an upstream link (a forked child whose parent never said hello):
   * this hub is a root after all. What waited for the upstream is settled here.
   */
  stopExpectingUpstream(): void {
    if (!this.#expectsUpstream || this.#upstream !== undefined) return;
    this.#expectsUpstream = false;
    threadDispatchers.forwardAll = false;
    this.#early = [];
    const waiting = this.#waitingForUpstream;
    this.#waitingForUpstream = [];
    for (const flush of waiting) this.#runSync(flush.resolve);
  }

  /** The link towards the root, if any. */
  get upstream(): Link | undefined {
    return this.#upstream;
  }

  /** How many links of each kind are open. */
  linkCount(kind: Link["kind"]): number {
    let count = 0;
    for (const link of this.#links) if (link.kind === kind) count++;
    return count;
  }

  /** Counters summed over every link this hub has had. */
  counters(): HubCounters {
    const total = { ...this.#closedCounters };
    for (const link of this.#links) addCounters(total, link.counters);
    return total;
  }

  /**
   * Adds a link and says hello on it. `upstream` marks the link towards the root.
   */
  addLink(link: Link, { upstream = false } = {}): void {
    if (this.#closed) {
      link.close();
      return;
    }
    link.handler = this;
    this.#links.add(link);
    if (upstream) this.#upstream = link;
    this.#sayHello(link, 0);
    if (upstream) {
      this.#expectsUpstream = true;
      threadDispatchers.forwardAll = true;
      const early = this.#early;
      this.#early = [];
      for (const envelope of early) this.#send(link, envelope);
      const waiting = this.#waitingForUpstream;
      this.#waitingForUpstream = [];
      for (const flush of waiting) this.#sendFlush(flush);
    }
    debug("[%s] link %d (%s%s) added", this.node, link.id, link.kind, upstream ? ", upstream" : "");
  }

  /** Closes every link; the hub routes nothing more. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    threadDispatchers.forwardAll = false;
    for (const link of [...this.#links]) link.close();
    const error = new RoarError("ERR_ROAR_CLOSED", "the relay closed before the flush completed");
    for (const flush of this.#waitingForUpstream) flush.reject(error);
    this.#waitingForUpstream = [];
  }

  // ---- the local side (called through the thread's Beyond) ----

  /** A topic gained its first local subscriber or lost its last. */
  localInterestChanged(scope: Scope, topic: Topic): void {
    const holders = this.#holdersOf(scope, topic);
    // Local interest shows to every link; only the local flag changed, so "before" is its opposite.
    const local = threadDispatchers.get(scope)?.hasSubscribers(topic) ?? false;
    for (const link of this.#links) {
      const others = holders.some((holder) => holder !== link);
      if (!others) link.sendControl(["i", scope, topic, local ? 1 : 0]);
    }
  }

  /** Sends a message published in this thread to the links that want it. */
  forwardLocal(scope: Scope, topic: Topic, value: unknown): void {
    const holders = this.#holders.get(scope)?.get(topic);
    if (threadDispatchers.forwardAll) {
      // Joining: the hubs above know who wants what, so everything goes up to them.
      const envelope = Envelope.ofValue(scope, topic, value);
      const upstream = this.#upstream;
      if (upstream === undefined) {
        if (this.#early.length < this.#maxEarly) this.#early.push(envelope);
        else this.#closedCounters.droppedQueueFull++;
      } else if (holders === undefined || !holders.includes(upstream)) {
        this.#send(upstream, envelope);
      }
      if (holders !== undefined) this.#route(envelope, holders, undefined);
      return;
    }
    if (holders === undefined) return;
    this.#route(Envelope.ofValue(scope, topic, value), holders, undefined);
  }

  /** Resolves once all that this thread sent so far has reached the root, and the root synced. */
  flush(): Promise<void> {
    const flushed = new Promise<void>((resolve, reject) => {
      const flush: PendingFlush = { resolve, reject };
      if (this.#upstream !== undefined) this.#sendFlush(flush);
      else if (this.#expectsUpstream) this.#waitingForUpstream.push(flush);
      else this.#runSync(resolve);
    });
    // Links never keep a thread alive, but a program awaiting a flush expects an answer: hold
    // the event loop open until it comes.
    if (this.#flushesUnderWay++ === 0) this.#keepAlive = setInterval(() => undefined, 2 ** 30);
    const settled = (): void => {
      if (--this.#flushesUnderWay === 0) clearInterval(this.#keepAlive);
    };
    flushed.then(settled, settled);
    return flushed;
  }

  // ---- the link side ----

  /** @internal LinkHandler */
  onFrame(link: Link, frame: Frame): void {
    switch (frame[0]) {
      case "m":
        return this.#onMessage(link, frame[1], frame[2], frame[3]);
      case "i":
        return this.#setLinkInterest(link, frame[1], frame[2], frame[3] === 1);
      case "h":
        return this.#onHello(link, frame[3], frame[4]);
      case "f":
        return this.#onFlushRequest(link, frame[1]);
      case "F": {
        if (link !== this.#upstream) return;
        const flush = this.#flushes.get(frame[1]);
        this.#flushes.delete(frame[1]);
        return flush?.resolve();
      }
      case "s":
        if (link === this.#upstream) this.#runSync(() => link.sendControl(["S", frame[1]]));
        return;
      case "S":
        return this.#syncAnswered(frame[1], link);
    }
  }

  /** @internal LinkHandler */
  onClose(link: Link): void {
    if (!this.#links.delete(link)) return;
    addCounters(this.#closedCounters, link.counters);
    for (const [scope, topics] of [...this.#holders]) {
      for (const [topic, holders] of [...topics]) {
        if (holders.includes(link)) this.#setLinkInterest(link, scope, topic, false);
      }
    }
    for (const [id] of this.#syncs) this.#syncAnswered(id, link);
    if (link === this.#upstream) {
      this.#upstream = undefined;
      // A thread that failed to join tries again with a new link: its flushes wait for that.
      if (!this.#closed) {
        threadDispatchers.forwardAll = this.#expectsUpstream;
        this.#waitingForUpstream.push(...this.#flushes.values());
      } else {
        const error = new RoarError("ERR_ROAR_CLOSED", "the relay closed before the flush completed");
        for (const flush of this.#flushes.values()) flush.reject(error);
      }
      this.#flushes.clear();
    }
    debug("[%s] link %d (%s) closed", this.node, link.id, link.kind);
  }

  #onMessage(from: Link, scope: Scope, topic: Topic, payload: unknown): void {
    let envelope: Envelope;
    if (from.kind === "thread") {
      envelope = Envelope.ofValue(scope, topic, payload);
    } else if (isEncodedPayload(payload)) {
      envelope = Envelope.ofEncoded(scope, topic, payload);
    } else {
      from.counters.droppedMalformed++;
      return;
    }
    this.#route(envelope, this.#holders.get(scope)?.get(topic), from);
  }

  /** Sends `envelope` to every holder but `from`, and to local subscribers when it came from a link. */
  #route(envelope: Envelope, holders: readonly Link[] | undefined, from: Link | undefined): void {
    if (holders !== undefined) {
      for (const link of holders) {
        if (link !== from && !this.#send(link, envelope)) return;
      }
    }
    if (from === undefined) return;
    const dispatcher = threadDispatchers.get(envelope.scope);
    if (dispatcher === undefined || !dispatcher.hasSubscribers(envelope.topic)) return;
    let value: unknown;
    try {
      value = envelope.value;
    } catch (error) {
      this.#closedCounters.droppedUndecodable++;
      debug("[%s] undecodable payload dropped: %o", this.node, error);
      return;
    }
    dispatcher.deliverLocal(envelope.topic, value);
  }

  /** Sends `envelope` on `link` in the link's form; `false` when its payload cannot be decoded. */
  #send(link: Link, envelope: Envelope): boolean {
    try {
      link.sendMessage(["m", envelope.scope, envelope.topic, link.kind === "thread" ? envelope.value : envelope.encoded]);
      return true;
    } catch (error) {
      // Only decoding can throw here: a payload from another process that is not valid.
      this.#closedCounters.droppedUndecodable++;
      debug("[%s] undecodable payload dropped: %o", this.node, error);
      return false;
    }
  }

  #onHello(link: Link, reply: 0 | 1, interest: readonly InterestKey[]): void {
    link.greeted = true;
    // The upstream hub's hello says exactly what lies beyond it: no need to send it everything.
    if (link === this.#upstream) threadDispatchers.forwardAll = false;
    // The hello carries the far side's whole interest: it replaces what we knew.
    const wanted = new Map<Scope, Set<Topic>>();
    for (const [scope, topic] of interest) {
      let topics = wanted.get(scope);
      if (topics === undefined) wanted.set(scope, (topics = new Set()));
      topics.add(topic);
    }
    for (const [scope, topics] of [...this.#holders]) {
      for (const [topic, holders] of [...topics]) {
        if (holders.includes(link) && !wanted.get(scope)?.has(topic)) this.#setLinkInterest(link, scope, topic, false);
      }
    }
    for (const [scope, topics] of wanted) for (const topic of topics) this.#setLinkInterest(link, scope, topic, true);
    if (reply === 0) this.#sayHello(link, 1);
    if (link === this.#upstream) {
      // Flushes sent before the upstream hub listened may be lost: send them again.
      for (const [id] of this.#flushes) link.sendControl(["f", id]);
    }
  }

  #sayHello(link: Link, reply: 0 | 1): void {
    const interest: InterestKey[] = [];
    for (const [scope, topic] of threadDispatchers.subscribedTopics()) interest.push([scope, topic]);
    for (const [scope, topics] of this.#holders) {
      for (const [topic, holders] of topics) {
        if (holders.some((holder) => holder !== link) && !threadDispatchers.get(scope)?.hasSubscribers(topic)) {
          interest.push([scope, topic]);
        }
      }
    }
    link.sendControl(["h", PROTOCOL_VERSION, this.node, reply, interest]);
  }

  #holdersOf(scope: Scope, topic: Topic): readonly Link[] {
    return this.#holders.get(scope)?.get(topic) ?? [];
  }

  /** Records that `link`'s far side does (or no longer does) want (scope, topic), and tells the others. */
  #setLinkInterest(link: Link, scope: Scope, topic: Topic, on: boolean): void {
    const before = this.#holdersOf(scope, topic);
    if (before.includes(link) === on) return;
    const after = on ? [...before, link] : before.filter((holder) => holder !== link);
    let topics = this.#holders.get(scope);
    if (after.length !== 0) {
      if (topics === undefined) this.#holders.set(scope, (topics = new Map()));
      topics.set(topic, after);
    } else if (topics !== undefined) {
      topics.delete(topic);
      if (topics.size === 0) this.#holders.delete(scope);
    }
    const local = threadDispatchers.get(scope)?.hasSubscribers(topic) ?? false;
    for (const other of this.#links) {
      if (local) break; // local interest already shows to every link; nothing changes for them
      const was = before.some((holder) => holder !== other);
      const is = after.some((holder) => holder !== other);
      if (was !== is) other.sendControl(["i", scope, topic, is ? 1 : 0]);
    }
    if ((before.length !== 0) !== (after.length !== 0)) {
      if (after.length !== 0) threadDispatchers.getOrCreate(scope).setRemoteInterest(topic, true);
      else {
        const dispatcher = threadDispatchers.get(scope);
        if (dispatcher !== undefined) {
          dispatcher.setRemoteInterest(topic, false);
          threadDispatchers.forgetIfIdle(dispatcher);
        }
      }
    }
  }

  #sendFlush(flush: PendingFlush): void {
    const id = this.#nextId++;
    this.#flushes.set(id, flush);
    (this.#upstream as Link).sendControl(["f", id]);
  }

  #onFlushRequest(from: Link, id: number): void {
    const answer = (): void => from.sendControl(["F", id]);
    if (this.#upstream === undefined) {
      this.#runSync(answer);
    } else if (from !== this.#upstream) {
      this.#sendFlush({ resolve: answer, reject: () => undefined });
    }
  }

  /** Sends a sync down every process link but the upstream one; `done` runs when all answered. */
  #runSync(done: () => void): void {
    const waiting = new Set<Link>();
    // A process that has not said hello has no roar state to sync (it may never load roar);
    // when it does say hello, the answer carries everything, this sync's interest included.
    for (const link of this.#links) if (link.kind === "process" && link.greeted && link !== this.#upstream) waiting.add(link);
    if (waiting.size === 0) {
      queueMicrotask(done);
      return;
    }
    const id = this.#nextId++;
    this.#syncs.set(id, { waiting, done });
    for (const link of waiting) link.sendControl(["s", id]);
  }

  #syncAnswered(id: number, link: Link): void {
    const sync = this.#syncs.get(id);
    if (sync === undefined || !sync.waiting.delete(link) || sync.waiting.size !== 0) return;
    this.#syncs.delete(id);
    sync.done();
  }
}

function addCounters(total: LinkCounters, counters: LinkCounters): void {
  total.sent += counters.sent;
  total.received += counters.received;
  total.droppedQueueFull += counters.droppedQueueFull;
  total.droppedMalformed += counters.droppedMalformed;
}
