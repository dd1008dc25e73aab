/**
 * Hub: routes messages between this thread's dispatchers and its links. Every thread that
 * uses roar has one; a process's main-thread hub is its relay.
 *
 * The processes of a host form a tree: each cluster worker's or attached child's main thread
 * links to its parent, and the root is the cluster primary (or a lone process). Inside a
 * process, the threads form a full mesh: every worker thread (however nested: it hands its
 * port straight to thread 0) links to the main thread, which introduces it to every other
 * thread with a port of their own. The root hubs of hosts link to each other through
 * transports (host links, see host-link.ts), in a mesh, a star or a tree; each tells its
 * neighbours which hosts it is linked to ("n" frames). Routing is one rule — forward a message
 * on every link, except the one it came in on, whose far side wants it, but never where the
 * previous hop reached by itself (#reachedDirectly): from a thread to a thread (the publishing
 * thread reached every thread itself; Phoenix's "a forwarded message is never forwarded
 * again"), nor from a host to a host it is linked to (NATS's rule for routes). On those shapes
 * each subscriber gets each message exactly once, over a single path, so in order per
 * publisher (links are FIFO).
 *
 * Invariants:
 *  - `#holders` maps (scope, topic) to the links whose far side has a subscriber; the local
 *    dispatchers are the one more holder;
 *  - the interest this hub announces to link L is "a local subscriber, or some holder other
 *    than L that L's far side does not reach by itself" (#wantedBeyond): it is re-sent to
 *    every link whenever that changes (for a host link, also when its neighbours change), so
 *    each link's far side knows exactly what it reaches through this hub;
 *  - flush: a flush travels towards the root behind everything sent before it; the root then
 *    runs a *sync* down every process link (not thread links — threads pick up what waits for
 *    them before they publish, see PortLink) and to every linked host, which runs its own
 *    (on to the hosts the asker is not linked to), and answers when all are done. When a
 *    flush resolves, every hub on the host, and on the linked hosts, has taken in the
 *    interest sent before it, so a publish made anywhere afterwards reaches the subscriber.
 *
 * Races handled:
 *  - a link's far side may start after this side said hello (a cluster worker loads roar
 *    after the primary attached it): every hello is answered with one carrying the full
 *    interest, and interest frames are sent even before the far side greeted, so whichever
 *    side speaks first, both end up with the same picture;
 *  - flush requests sent upstream before the upstream hub listened are sent again when it
 *    says hello (a repeated answer is ignored);
 *  - a link that closes takes its interest with it and counts as done in every pending sync;
 *  - a thread that publishes before its main thread welcomed it (a synchronous tinypool task)
 *    holds those messages until the main thread's hello, which comes after its introductions
 *    to every other thread: then it routes them as if published just then, and nothing is
 *    sent to a thread before the link to it exists;
 *  - a thread introduced to a new one tells it what it wants in its own hello; until then the
 *    new thread goes by what the main thread knew. A subscription whose flush resolved is
 *    always in that picture: the flush's answer reached the subscribing thread after its
 *    introduction to the new thread, so its hello to the new thread went out first;
 *  - a process still joining its parent does not know what lies beyond it: it sends all it
 *    publishes, and all its threads send it, up (its hello asks its threads for everything),
 *    and says exactly what it wants once its parent's hello arrives;
 *  - a hub that closes says bye: the far side forgets what it wanted and stops waiting for it
 *    in syncs, but keeps listening on a channel that outlives it, where a later hub says
 *    hello again. A thread whose main thread said bye drops all its links and joins anew; a
 *    host whose peer said bye closes the link to it;
 *  - a host link whose connection drops is away (see host-link.ts): its interest stays, syncs
 *    stop waiting for it, and when it is back both sides say hello anew and syncs still
 *    waiting for it are sent again.
 */
import type { ThreadDispatchers } from "./dispatcher.js";
import { RoarError } from "./errors.js";
import type { HostLink } from "./links/host-link.js";
import { addCounters, countQueueFull, zeroCounters, type Link, type LinkBounds, type LinkCounters, type LinkHandler } from "./links/link.js";
import { PressureWatch } from "./pressure.js";
import { DEFAULT_FLUSH_TIMEOUT_MS, FlushRequests, SYNC_TIMEOUT_MS, SyncRounds, Waiters, type Requester } from "./barrier.js";
import { DropReporter, DropReports } from "./stats.js";
import { InterestTable, MAX_INTEREST_PER_LINK } from "./interest.js";
import type { Scope, Topic } from "./types.js";
import { Envelope } from "./wire/envelope.js";
import { decodePayload, isEncodedPayload } from "./wire/codec.js";
import { MAX_HOST_HOPS, PROTOCOL_VERSION, type Frame, type InterestKey, type PeerFrame } from "./wire/frames.js";
import { debuglog } from "node:util";
import { ThreadMesh } from "./thread-mesh.js";

const debug = debuglog("roar");

/** The shortest time, in milliseconds, between two answers to one link's hellos. */
const HELLO_ANSWER_INTERVAL_MS = 250;

/** What a link may hold, in bytes, before interest changes for it are coalesced: it is not reading. */
const CONTROL_SLACK_BYTES = 1024 * 1024;

/** Marks a payload of a run that could not be decoded. */
const UNDECODABLE: unique symbol = Symbol("undecodable");

/** Counters of a hub, summed over its links (closed ones included). */
export interface HubCounters extends LinkCounters {
  /** Payloads from other processes that could not be decoded. */
  droppedUndecodable: number;
  /** Messages not passed on because they had crossed MAX_HOST_HOPS host links (a ring of hosts). */
  droppedLooped: number;
}

/** @internal */
export class Hub implements LinkHandler {
  /** A random id for diagnostics, sent in hellos. */
  readonly node = `${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  readonly #links = new Set<Link>();
  /** Who wants what beyond each link (see interest.ts). */
  readonly #interest = new InterestTable();
  /** When each link was last answered a hello, to rate-limit the answers (see #answerHello). */
  readonly #lastHelloAnswer = new WeakMap<Link, number>();
  /** Links whose hello waits to be answered, at the end of their rate limit's window. */
  readonly #helloAnswersDue = new Set<Link>();
  #helloAnswerTimer: NodeJS.Timeout | undefined;
  #upstream: Link | undefined;
  #nextId = 1;
  /** Flushes sent to the upstream hub, one at a time (see barrier.ts). */
  readonly #flushUp = new FlushRequests(
    (id) => {
      // What this process dropped reaches the root before the flush does, and so does the
      // interest held back from links that were not reading (see #markStale).
      this.#reporter?.report();
      this.#resyncStale();
      this.#upstream?.sendControl(["f", id]);
    },
    () => this.#nextId++,
    (link, frame) => this.#answer(link, frame),
  );
  /** Flushes waiting for an upstream link (a thread whose main thread has no relay yet). */
  #waitingForUpstream = new Waiters();
  /** Sync rounds this hub runs (see barrier.ts). */
  readonly #rounds = new SyncRounds({
    targets: (from, hops) => this.#syncTargets(from, hops),
    sendSync: (link, id, hops) => {
      // A sync answers for interest: a link whose changes were held back gets them first.
      if (link.interestStale) this.#sayHello(link, 1);
      link.sendControl(isHost(link) && hops !== 0 ? ["s", id, hops] : ["s", id]);
    },
    newId: () => this.#nextId++,
    answer: (link, frame) => this.#answer(link, frame),
    // Threads are not synced (they take in what waits for them before they publish): a round
    // vouches for their interest too, so those held back from hear it now.
    starting: () => this.#resyncStale(),
  });
  /** What the processes below this one reported they dropped (see stats.ts). */
  readonly #reports = new DropReports();
  /** Tells the parent what this process dropped; only in a process's main thread. */
  readonly #reporter: DropReporter | undefined;
  /** For each thread's shared drop counter, how much of it is in `#hubCounters` already. */
  readonly #foldedDrops = new WeakMap<Int32Array, number>();
  readonly #hubCounters: HubCounters = { ...zeroCounters(), droppedUndecodable: 0, droppedLooped: 0 };
  /** Whether this hub has, or is about to get, a link towards the root. */
  #expectsUpstream: boolean;
  /** Messages published here while joining, before they could be routed; bounded by maxQueue. */
  #early: Envelope[] = [];
  /** The bounds of what waits here and of every link of this thread's host (shared with them). */
  readonly bounds: LinkBounds;
  /** Links over their high-water mark, until they drain. */
  readonly #pressure = new PressureWatch(
    (link) => warnSlowConsumer(link),
    (link) => this.#drained(link),
  );
  /** What the publish under way met: links that dropped it, and whether one is over its high-water mark. */
  #outcome = { drops: 0, pressured: false };
  /** Whether the upstream hub said hello since the upstream link was made (see #onHello). */
  #welcomed = false;
  /** A thread's: whether its main thread, still joining its parent, asked for everything. */
  #upstreamWantsAll = false;
  /**
   * A cluster worker's: whether its primary never answered its hello (it runs no roar): it
   * routes as a root would until a hello comes, rather than send everything up for ever.
   */
  #upstreamSilent = false;
  /** Called when the link to the upstream hub is lost and this hub must join again. */
  onUpstreamLost: (() => void) | undefined;
  /** A worker thread's hub: it holds what it publishes until its main thread has welcomed it. */
  readonly #isThread: boolean;
  /** This thread's links to the other threads of its process, and its doorbell. */
  readonly mesh = new ThreadMesh();
  #closed = false;

  /** The dispatchers this hub serves: its thread's, or those of an isolated host. */
  readonly #dispatchers: ThreadDispatchers;

  constructor({ dispatchers, expectsUpstream, isThread, bounds }: { dispatchers: ThreadDispatchers; expectsUpstream: boolean; isThread: boolean; bounds: LinkBounds }) {
    this.#dispatchers = dispatchers;
    this.#expectsUpstream = expectsUpstream;
    this.#isThread = isThread;
    this.bounds = bounds;
    this.#reporter = isThread ? undefined : new DropReporter(() => this.counters(), (totals) => this.#upstream?.sendControl(["d", totals]));
    this.#updateForwardAll();
  }

  /**
   * Whether the dispatchers hand this hub every message, wanted beyond or not: while this hub
   * joins (it does not yet know what lies beyond), and in a thread whose main thread asked for
   * everything. Derived from the state it depends on; called after each change of it.
   */
  #updateForwardAll(): void {
    this.#dispatchers.forwardAll = !this.#closed && (this.#joining || this.#upstreamWantsAll);
  }

  /**
   * Gives up waiting for an upstream link (a forked child whose parent never said hello):
   * this hub is a root after all. What waited for the upstream is settled here.
   */
  stopExpectingUpstream(): void {
    if (!this.#expectsUpstream || this.#upstream !== undefined) return;
    this.#expectsUpstream = false;
    this.#updateForwardAll();
    // Held for a parent that turned out not to run roar: nothing beyond this process wanted them.
    this.#early = [];
    this.#greetThreadsAgain();
    const waiting = this.#waitingForUpstream;
    this.#waitingForUpstream = new Waiters();
    for (const requester of waiting.requesters()) this.#rounds.sync(undefined, 0, requester);
  }

  /** The bounds changed (a later `startRelay()`): this main thread's threads learn them. */
  boundsChanged(): void {
    if (!this.#isThread) this.#greetThreadsAgain();
  }

  /**
   * The upstream hub has not said hello in the time a running relay answers (a cluster
   * primary that never loads roar): stop sending everything up and route as a root. A hello
   * that comes later welcomes this hub as usual.
   * @returns `false` when the upstream hub did say hello
   */
  upstreamIsSilent(): boolean {
    if (this.#upstream === undefined || this.#welcomed || this.#upstreamSilent || this.#closed) return false;
    this.#upstreamSilent = true;
    this.#updateForwardAll();
    this.#early = [];
    this.#greetThreadsAgain();
    const requesters = [...this.#flushUp.takeAll(), ...this.#waitingForUpstream.requesters()];
    this.#waitingForUpstream = new Waiters();
    for (const requester of requesters) this.#rounds.sync(undefined, 0, requester);
    return true;
  }

  /** Whether this hub has a link towards a root above it. */
  get hasUpstream(): boolean {
    return this.#upstream !== undefined;
  }

  /** How many links of each kind are open. */
  linkCount(kind: Link["kind"]): number {
    let count = 0;
    for (const link of this.#links) if (link.kind === kind) count++;
    return count;
  }

  /** Counters summed over every link this hub has had. */
  counters(): HubCounters {
    const total = { ...this.#hubCounters };
    this.#reports.addTo(total);
    for (const link of this.#links) {
      addCounters(total, link.counters);
      if (link.farDrops !== undefined) total.droppedQueueFull += this.#unfoldedDrops(link.farDrops);
    }
    return total;
  }

  /** What a thread's shared drop counter holds beyond what was folded in when a link to it closed. */
  #unfoldedDrops(farDrops: Int32Array): number {
    return Atomics.load(farDrops, 0) - (this.#foldedDrops.get(farDrops) ?? 0);
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
    // A main thread introduces a new thread to every thread it has, before saying hello: the
    // new thread routes what it published while joining once that hello arrives, and by then
    // it has a direct link to every thread.
    if (link.kind === "thread" && !this.#isThread) {
      const others = [...this.#links].filter((other) => other.kind === "thread" && other !== this.#upstream && !other.isClosed);
      ThreadMesh.introduce(link, others, (other) => this.#interest.of(other));
    }
    this.#links.add(link);
    this.mesh.track(link);
    if (upstream) {
      this.#upstream = link;
      this.#welcomed = false;
      this.#expectsUpstream = true;
      this.#updateForwardAll();
    }
    this.#sayHello(link, 0);
    if (upstream && !this.#isThread) {
      const early = this.#early;
      this.#early = [];
      for (const envelope of early) this.#send(link, envelope);
      this.#reporter?.start();
      this.#sendWaitingFlushes();
    }
    debug("[%s] link %d (%s%s) added", this.node, link.id, link.kind, upstream ? ", upstream" : "");
  }

  /** Whether this hub waits for its upstream hub's hello (or for an upstream at all). */
  get #joining(): boolean {
    return this.#expectsUpstream && !this.#welcomed && !this.#upstreamSilent;
  }

  #sendWaitingFlushes(): void {
    const waiting = this.#waitingForUpstream;
    this.#waitingForUpstream = new Waiters();
    for (const requester of waiting.requesters()) this.#flushUp.request(requester);
  }

  /**
   * A process that was joining told its threads to send it everything; now that it knows what
   * lies beyond, it tells them exactly (a hello with reply set, so they do not answer).
   */
  #greetThreadsAgain(): void {
    for (const link of this.#links) if (link.kind === "thread" && link !== this.#upstream) this.#sayHello(link, 1);
  }

  /** While joining, what a thread sent here goes up too: the hubs above know who wants it. */
  #upWhileJoining(envelope: Envelope, holders: readonly Link[] | undefined): void {
    const upstream = this.#upstream;
    if (upstream === undefined) this.#hold(envelope);
    else if (holders === undefined || !holders.includes(upstream)) this.#send(upstream, envelope);
  }

  /** Closes every link; the hub routes nothing more. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#updateForwardAll();
    for (const link of [...this.#links]) link.close();
    const error = new RoarError("ERR_ROAR_CLOSED", "the relay closed before the flush completed");
    for (const local of this.#waitingForUpstream.locals) local.fail(error);
    this.#waitingForUpstream = new Waiters();
    this.#rounds.close();
    this.#reporter?.stop();
  }

  // ---- the local side (called through the thread's Beyond) ----

  /** A topic gained its first local subscriber or lost its last. */
  localInterestChanged(scope: Scope, topic: Topic): void {
    const holders = this.#interest.holders(scope, topic) ?? [];
    // Local interest shows to every link; only the local flag changed, so "before" is its opposite.
    const local = this.#dispatchers.get(scope)?.hasSubscribers(topic) ?? false;
    for (const link of this.#links) {
      if (!Hub.#wantedBeyond(holders, link)) this.#sendInterest(link, scope, topic, local);
    }
  }

  /**
   * Sends a message published in this thread to the links that want it.
   * @param strict - refuse it whole, before anything is sent, when a link it goes to is full
   * @returns what it met on the way (see {@link ForwardOutcome})
   * @throws {@link RoarError} `ERR_ROAR_QUEUE_FULL` when `strict` and a link is full
   */
  forwardLocal(scope: Scope, topic: Topic, value: unknown, strict: boolean): ForwardOutcome {
    const holders = this.#interest.holders(scope, topic);
    if (strict && holders !== undefined) this.#assertRoom(scope, topic, holders);
    const outcome = this.#outcome;
    outcome.drops = 0;
    outcome.pressured = false;
    if (this.#dispatchers.forwardAll) {
      const envelope = Envelope.ofValue(scope, topic, value);
      if (this.#isThread && !this.#welcomed) {
        // A joining thread waits for its main thread's welcome, which brings what lies beyond
        // and its direct links to the other threads; then it routes what waited.
        this.#hold(envelope);
        return outcome;
      }
      // A joining process sends everything up, and so does a thread whose main thread asked
      // for everything while it joins its parent: the hubs above know who wants what.
      this.#upWhileJoining(envelope, holders);
      if (holders !== undefined) this.#route(envelope, holders, undefined);
      return outcome;
    }
    if (holders !== undefined) this.#route(Envelope.ofValue(scope, topic, value), holders, undefined);
    return outcome;
  }

  /** Throws ERR_ROAR_QUEUE_FULL if a link a publish on (scope, topic) goes to is full. */
  #assertRoom(scope: Scope, topic: Topic, holders: readonly Link[]): void {
    for (const link of holders) {
      if (!link.isFull) continue;
      throw new RoarError(
        "ERR_ROAR_QUEUE_FULL",
        `cannot publish on topic ${JSON.stringify(topic)} in scope ${JSON.stringify(scope)}: ${link.label} holds ` +
          `${link.messagesHeld} messages (${link.bytesHeld} bytes) not yet taken in, its bound (maxQueue ${this.bounds.maxQueue}, ` +
          `maxQueueBytes ${this.bounds.maxQueueBytes}); nothing was sent. Wait for \`router.drained()\` and publish again.`,
      );
    }
  }

  /** Resolves once no link of this thread is over its high-water mark (see {@link PressureWatch.drained}). */
  drained(): Promise<void> {
    return this.#pressure.drained();
  }

  #hold(envelope: Envelope): void {
    if (this.#early.length < this.bounds.maxQueue) this.#early.push(envelope);
    else {
      countQueueFull(this.#hubCounters, 1);
      this.#outcome.drops++;
    }
  }

  /**
   * Resolves once all that this thread sent so far has reached the root, and the root synced;
   * rejects with ERR_ROAR_TIMEOUT after `timeout` ms, or when the root's sync timed out,
   * naming what did not answer.
   */
  flush(timeout = DEFAULT_FLUSH_TIMEOUT_MS): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      // Links never keep a thread alive, but a program awaiting a flush expects an answer:
      // this timer holds the event loop open until it comes, or until it gives up.
      const timer = setTimeout(() => {
        settled = true;
        reject(new RoarError("ERR_ROAR_TIMEOUT", `flush() did not complete within ${timeout} ms: ${this.#whoDelays()} did not answer`));
      }, timeout);
      this.#request({
        get settled() {
          return settled;
        },
        settle: (missing) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (missing.length === 0) resolve();
          else reject(new RoarError("ERR_ROAR_TIMEOUT", `flush() could not complete: ${missing.join(", ")} did not answer within ${SYNC_TIMEOUT_MS} ms`));
        },
        fail: (error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  /** Asks for a flush: of the upstream hub, or, at the root, of a sync round here. */
  #request(requester: Requester): void {
    // A joining thread sends its flush after what it held back, once welcomed.
    if (this.#upstreamSilent) this.#rounds.sync(undefined, 0, requester);
    else if (this.#upstream !== undefined && !(this.#isThread && !this.#welcomed)) this.#flushUp.request(requester);
    else if (this.#expectsUpstream) this.#waitingForUpstream.add(requester);
    else this.#rounds.sync(undefined, 0, requester);
  }

  /** What a flush that timed out waited for, in words. */
  #whoDelays(): string {
    if (this.#upstream !== undefined) return this.#upstream.label;
    if (this.#expectsUpstream) return this.#isThread ? "the main thread's relay (none is running)" : "the parent process's relay (not linked yet)";
    return "this host's links";
  }

  // ---- the link side ----

  /** @internal LinkHandler */
  onFrame(link: Link, frame: Frame): void {
    switch (frame[0]) {
      case "m":
        return this.#onMessage(link, frame[1], frame[2], frame[3], frame[4]);
      case "M":
        return this.#onRun(link, frame[1], frame[2], frame[3], frame[4]);
      case "i":
        return this.#setLinkInterest(link, frame[1], frame[2], frame[3] === 1);
      case "h":
        // A thread's links are bounded as its process's main thread says (startRelay's options).
        if (this.#isThread && link === this.#upstream && frame[6] !== undefined) [this.bounds.maxQueue, this.bounds.maxQueueBytes] = frame[6];
        return this.#onHello(link, frame[3], frame[4], frame[5] === 1);
      case "f":
        // A flush from below; the upstream hub never asks this one for a flush.
        if (link !== this.#upstream) this.#request({ link, id: frame[1], answer: "F" });
        return;
      case "F":
        if (link === this.#upstream) this.#flushUp.answered(frame[1], frame[2] ?? []);
        return;
      case "s":
        // A sync comes from the root of this host, or from another host (which ran its own,
        // and has its own idea of whom this one must reach: its rounds are its own).
        if (link === this.#upstream) this.#rounds.sync(undefined, 0, { link, id: frame[1], answer: "S" });
        else if (isHost(link) || link.kind === "bus") this.#rounds.sync(link, isHost(link) ? (frame[2] ?? 0) + 1 : 0, { link, id: frame[1], answer: "S" });
        return;
      case "S":
        return this.#rounds.answered(frame[1], link, frame[2] ?? []);
      case "d":
        // Drop reports come from processes below only (threads share a counter instead).
        if (link === this.#upstream || link.kind !== "process") link.counters.droppedMalformed++;
        else this.#reports.take(link, frame[1]);
        return;
      case "p":
        return this.#onPeer(link, frame);
      case "b":
        return this.#onBye(link);
      case "n":
        if (!isHost(link)) {
          link.counters.droppedMalformed++;
          return;
        }
        link.neighbours = new Set(frame[1]);
        // What this hub reaches for the far side depends on the far side's neighbours.
        return this.#sayHello(link, 1);
    }
  }

  /** A host link's connection dropped: it is kept (with its interest) but not waited for. */
  hostAway(link: HostLink): void {
    link.greeted = false;
    this.#rounds.linkGone(link);
  }

  /**
   * A host link has a connection again (after being away, or on a newer connection that
   * replaced its old one): both sides say what they want anew, and syncs still waiting for
   * it, whose request or answer the old connection may have lost, are sent again.
   */
  hostBack(link: HostLink): void {
    if (!this.#links.has(link)) return;
    this.#sayHello(link, 0);
    link.sendControl(["n", this.#hostNodes()]);
    this.#rounds.resendTo(link);
  }

  /**
   * The node ids of the hosts this hub sends to itself: those whose hello it has had, away
   * ones included (what it sends them waits for them).
   */
  #hostNodes(): string[] {
    const nodes: string[] = [];
    for (const link of this.#links) if (isHost(link) && link.known) nodes.push(link.node);
    return nodes;
  }

  /** Tells every host link which hosts this hub is linked to. */
  #neighboursChanged(): void {
    const nodes = this.#hostNodes();
    for (const link of this.#links) if (isHost(link)) link.sendControl(["n", nodes]);
  }

  /** @internal LinkHandler */
  onPressure(link: Link, dropped: boolean): void {
    this.#pressure.watch(link, dropped);
  }

  /** @internal LinkHandler */
  onClose(link: Link): void {
    if (!this.#links.delete(link)) return;
    this.#pressure.forget(link);
    this.mesh.untrack(link);
    addCounters(this.#hubCounters, link.counters);
    if (link.farDrops !== undefined) {
      // A thread that joins again brings the same counter: only what is new counts then.
      this.#hubCounters.droppedQueueFull += this.#unfoldedDrops(link.farDrops);
      this.#foldedDrops.set(link.farDrops, Atomics.load(link.farDrops, 0));
    }
    this.#forget(link);
    if (link === this.#upstream) {
      this.#upstream = undefined;
      this.#upstreamLost();
    }
    if (isHost(link)) this.#neighboursChanged();
    debug("[%s] link %d (%s) closed", this.node, link.id, link.kind);
  }

  /**
   * The far side's hub went away (its relay closed) but the channel stays: forget what it
   * wanted, skip it in syncs, and keep listening — a hub started there later says hello.
   */
  #onBye(link: Link): void {
    if (isHost(link)) {
      // Another host's relay closed: it is not away, it is gone, having acknowledged all it
      // took in; what it did not is lost.
      link.expire();
      return;
    }
    if (link === this.#upstream && link.kind === "thread") {
      // A thread's main thread closed its relay: its port is going; join again from scratch.
      link.close();
      return;
    }
    link.greeted = false;
    this.#forget(link);
    if (link !== this.#upstream) return;
    this.#upstreamLost();
    // The parent's relay closed; its channel stays. Until a relay there says hello again,
    // this process routes as a root — not as one joining, which would send it everything.
    this.upstreamIsSilent();
  }

  /** Drops what `link`'s far side wanted, and stops waiting for it in every sync. */
  #forget(link: Link): void {
    for (const [scope, topic] of this.#interest.of(link)) this.#setLinkInterest(link, scope, topic, false);
    this.#rounds.linkGone(link);
    this.#reports.settle(link);
  }

  /**
   * The upstream hub is gone (its link closed, or it said bye). Flushes it had not answered
   * fail with ERR_ROAR_CLOSED — unless it never welcomed us (a thread's join that failed), in
   * which case they were never taken in and wait for the next upstream. A thread also drops
   * its direct links, which its main thread makes anew when it joins again.
   */
  #upstreamLost(): void {
    const error = this.#closed
      ? new RoarError("ERR_ROAR_CLOSED", "the relay closed before the flush completed")
      : this.#welcomed
        ? new RoarError("ERR_ROAR_CLOSED", "the parent relay closed before the flush completed")
        : undefined;
    for (const requester of this.#flushUp.takeAll()) {
      // Requests from links below wait for the next upstream (they time out where they were
      // made); this thread's own fail, unless the upstream never took them in.
      if (error !== undefined && !("link" in requester)) requester.fail(error);
      else if (!this.#closed) this.#waitingForUpstream.add(requester);
    }
    this.#reporter?.stop();
    this.#welcomed = false;
    this.#upstreamWantsAll = false;
    this.#upstreamSilent = false;
    this.#updateForwardAll();
    if (this.#closed) return;
    if (this.#isThread) {
      for (const other of [...this.#links]) if (other !== this.#upstream) other.close();
    }
    this.onUpstreamLost?.();
  }

  #onMessage(from: Link, scope: Scope, topic: Topic, payload: unknown, hops?: number): void {
    let envelope: Envelope;
    if (from.kind === "thread") {
      envelope = Envelope.ofValue(scope, topic, payload);
    } else if (isEncodedPayload(payload)) {
      envelope = Envelope.ofEncoded(scope, topic, payload);
    } else {
      from.counters.droppedMalformed++;
      return;
    }
    if (isHost(from)) envelope.hops = (hops ?? 0) + 1;
    this.#route(envelope, this.#interest.holders(scope, topic), from);
  }

  /**
   * A run of messages on one (scope, topic). From a thread, each is routed on its own; from
   * another process or host, the run is passed on as it came, its payloads still encoded, to
   * the links that carry them encoded, and decoded only for threads and local subscribers.
   */
  #onRun(from: Link, scope: Scope, topic: Topic, payloads: readonly unknown[], hops?: number): void {
    if (from.kind === "thread") {
      for (const payload of payloads) this.#onMessage(from, scope, topic, payload);
      return;
    }
    let encoded = payloads as readonly string[];
    if (!payloads.every(isEncodedPayload)) {
      encoded = payloads.filter(isEncodedPayload);
      from.counters.droppedMalformed += payloads.length - encoded.length;
    }
    const holders = this.#interest.holders(scope, topic) ?? [];
    const dispatcher = this.#dispatchers.get(scope);
    const local = dispatcher !== undefined && dispatcher.hasSubscribers(topic);
    const crossed = isHost(from) ? (hops ?? 0) + 1 : 0;
    let values: unknown[] | undefined;
    for (const link of holders) {
      if (link === from || Hub.#reachedDirectly(from, link)) continue;
      if (isHost(link)) {
        if (crossed >= MAX_HOST_HOPS) this.#hubCounters.droppedLooped += encoded.length;
        else link.sendRun(scope, topic, encoded, crossed === 0 ? undefined : crossed);
        continue;
      }
      if (link.kind !== "thread") {
        link.sendRun(scope, topic, encoded);
        continue;
      }
      values ??= this.#decodeRun(encoded);
      for (const value of values) if (value !== UNDECODABLE && !link.dropIfFull()) link.sendMessage(["m", scope, topic, value]);
    }
    if (!local) return;
    for (const value of values ?? this.#decodeRun(encoded)) if (value !== UNDECODABLE) dispatcher.deliverLocal(topic, value);
  }

  /** Decodes the payloads of a run; one that cannot be decoded is counted, and marked. */
  #decodeRun(payloads: readonly string[]): unknown[] {
    return payloads.map((payload) => {
      try {
        return decodePayload(payload);
      } catch (error) {
        this.#hubCounters.droppedUndecodable++;
        debug("[%s] undecodable payload dropped: %o", this.node, error);
        return UNDECODABLE;
      }
    });
  }

  /** Sends `envelope` to every holder but `from`, and to local subscribers when it came from a link. */
  #route(envelope: Envelope, holders: readonly Link[] | undefined, from: Link | undefined): void {
    let undecodable = false;
    if (holders !== undefined) {
      for (const link of holders) {
        if (link === from || (from !== undefined && Hub.#reachedDirectly(from, link))) continue;
        // A payload that cannot be decoded still goes, as it is, to links that carry it encoded.
        if (!this.#send(link, envelope)) undecodable = true;
      }
    }
    if (from?.kind === "thread" && !this.#isThread && this.#joining) this.#upWhileJoining(envelope, holders);
    const dispatcher = from === undefined ? undefined : this.#dispatchers.get(envelope.scope);
    if (dispatcher !== undefined && dispatcher.hasSubscribers(envelope.topic)) {
      try {
        dispatcher.deliverLocal(envelope.topic, envelope.value);
      } catch (error) {
        undecodable = true;
        debug("[%s] undecodable payload dropped: %o", this.node, error);
      }
    }
    if (undecodable) this.#hubCounters.droppedUndecodable++;
  }

  /** Sends `envelope` on `link` in the link's form; `false` when its payload cannot be decoded. */
  #send(link: Link, envelope: Envelope): boolean {
    if (isHost(link) && envelope.hops !== 0) {
      if (envelope.hops >= MAX_HOST_HOPS) {
        // Only a layout with a ring of hosts gets here: the message would go round for ever.
        this.#hubCounters.droppedLooped++;
        return true;
      }
      if (this.#dropped(link)) return true;
      link.sendMessage(["m", envelope.scope, envelope.topic, envelope.encoded, envelope.hops]);
      return true;
    }
    // A neighbour that is too far behind costs no encoding or clone: the message is dropped first.
    if (this.#dropped(link)) return true;
    try {
      link.sendMessage(["m", envelope.scope, envelope.topic, link.kind === "thread" ? envelope.value : envelope.encoded]);
      return true;
    } catch (error) {
      // Only decoding can throw here: a payload from another process that is not valid.
      debug("[%s] undecodable payload not sent on link %d: %o", this.node, link.id, error);
      return false;
    }
  }

  /** Whether `link` is full and dropped a message; notes what the publish under way met. */
  #dropped(link: Link): boolean {
    const dropped = link.dropIfFull();
    if (dropped) this.#outcome.drops++;
    if (link.watched) this.#outcome.pressured = true;
    return dropped;
  }

  #onHello(link: Link, reply: 0 | 1, interest: readonly InterestKey[], wantsAll: boolean): void {
    link.greeted = true;
    if (isHost(link) && !link.known) {
      // From now on this hub sends to that host itself: its neighbours must stop passing on
      // what this hub sends them for it — and learn so before any message it sends them next.
      link.known = true;
      this.#neighboursChanged();
    }
    // The upstream hub's hello says what lies beyond it: no need to send it everything, unless
    // it asks for everything (a thread's main thread still joining its parent).
    const welcome = link === this.#upstream && !this.#welcomed;
    if (link === this.#upstream) {
      this.#welcomed = true;
      this.#upstreamSilent = false;
      this.#upstreamWantsAll = this.#isThread && wantsAll;
      this.#updateForwardAll();
    }
    // The hello carries the far side's whole interest: it replaces what we knew.
    const wanted = new Map<Scope, Set<Topic>>();
    for (const [scope, topic] of interest) {
      let topics = wanted.get(scope);
      if (topics === undefined) wanted.set(scope, (topics = new Set()));
      topics.add(topic);
    }
    for (const [scope, topic] of this.#interest.of(link)) if (!wanted.get(scope)?.has(topic)) this.#setLinkInterest(link, scope, topic, false);
    for (const [scope, topics] of wanted) for (const topic of topics) if (!link.isClosed) this.#setLinkInterest(link, scope, topic, true);
    if (reply === 0) this.#answerHello(link);
    if (welcome) {
      // Now this hub knows what lies beyond it: route what was published while joining; then a
      // thread sends the flushes made meanwhile behind it, and a process tells its threads
      // exactly what to send it instead of everything.
      const early = this.#early;
      this.#early = [];
      for (const envelope of early) {
        const holders = this.#interest.holders(envelope.scope, envelope.topic);
        if (holders !== undefined) this.#route(envelope, holders, undefined);
      }
      if (this.#isThread) this.#sendWaitingFlushes();
      else this.#greetThreadsAgain();
    }
    if (link === this.#upstream) {
      // Flushes sent before the upstream hub listened may be lost: send them again.
      this.#flushUp.resend();
    }
  }

  /**
   * Answers a hello that asked for one. The answer carries this hub's whole interest, so a
   * peer repeating hellos could make this hub write far more than it reads: answers to one
   * link are at most one per {@link HELLO_ANSWER_INTERVAL_MS} (those asked for meanwhile get
   * one answer at the end of it), and none goes to a link that is not reading — it gets the
   * interest when it drains (see #drained).
   */
  #answerHello(link: Link): void {
    if (this.#helloAnswersDue.has(link)) return;
    // The upstream hub's hello (a relay that started again up there) is a welcome: answered
    // whatever the link holds.
    if (Hub.#notReading(link) && link !== this.#upstream) {
      this.#markStale(link);
      return;
    }
    const now = performance.now();
    const last = this.#lastHelloAnswer.get(link);
    if (last === undefined || now - last >= HELLO_ANSWER_INTERVAL_MS) {
      this.#lastHelloAnswer.set(link, now);
      this.#sayHello(link, 1);
      return;
    }
    this.#helloAnswersDue.add(link);
    this.#helloAnswerTimer ??= setTimeout(() => {
      this.#helloAnswerTimer = undefined;
      const due = [...this.#helloAnswersDue];
      this.#helloAnswersDue.clear();
      for (const waiting of due) if (!waiting.isClosed && this.#links.has(waiting)) this.#answerHello(waiting);
    }, HELLO_ANSWER_INTERVAL_MS).unref();
  }

  /**
   * Whether `link` is not reading what is sent to it: it holds a quarter of its message bound,
   * or more than {@link CONTROL_SLACK_BYTES}. Interest changes for it are then coalesced (and
   * the pressure watch looks at it until it is under both again: see #drained).
   */
  static #notReading(link: Link): boolean {
    return link.bytesHeld >= CONTROL_SLACK_BYTES || link.messagesHeld * 4 >= link.bounds.maxQueue;
  }

  /** Sends a change of interest to `link`, or, when it is not reading, coalesces it (see #markStale). */
  #sendInterest(link: Link, scope: Scope, topic: Topic, on: boolean): void {
    if (link.interestStale) return;
    if (Hub.#notReading(link)) this.#markStale(link);
    else link.sendControl(["i", scope, topic, on ? 1 : 0]);
  }

  /**
   * Stops sending `link` changes of interest until it drains, when one hello tells it the
   * whole of it: however much churn happens meanwhile (a subscribe and its cancel cancel out),
   * a link that does not read costs this hub nothing more.
   */
  #markStale(link: Link): void {
    link.interestStale = true;
    this.#pressure.watch(link, false);
  }

  /**
   * Sends `link` the answer to its flush or sync. An answer vouches that interest arrived: a
   * link whose changes were held back (see #markStale) is told everything first.
   */
  #answer(link: Link, frame: Frame): void {
    if (link.interestStale) this.#sayHello(link, 1);
    link.sendControl(frame);
  }

  /**
   * Tells the links whose interest was held back and that no sync will reach — the upstream
   * link and threads — everything, before a flush request leaves or a round starts: either
   * vouches for interest everywhere a publish could come from.
   */
  #resyncStale(): void {
    for (const link of this.#links) if (link.interestStale && (link.kind === "thread" || link === this.#upstream)) this.#sayHello(link, 1);
  }

  /** `link` drained (see PressureWatch): it learns what it missed while it was not reading. */
  #drained(link: Link): void {
    if (!link.interestStale || link.isClosed) return;
    if (Hub.#notReading(link)) this.#pressure.watch(link, false);
    else this.#sayHello(link, 1);
  }

  #onPeer(from: Link, frame: PeerFrame): void {
    if (from !== this.#upstream || from.kind !== "thread" || !this.#isThread) {
      // Only a thread's main thread introduces peers; anything else breaks the protocol.
      from.counters.droppedMalformed++;
      frame[2].close();
      return;
    }
    const peer = ThreadMesh.accept(frame, this.bounds);
    this.addLink(peer);
    for (const [scope, topic] of frame[4]) this.#setLinkInterest(peer, scope, topic, true);
  }

  #sayHello(link: Link, reply: 0 | 1): void {
    // A hello tells everything: changes held back from a link that was not reading are in it.
    link.interestStale = false;
    const interest: InterestKey[] = [];
    for (const [scope, topic] of this.#dispatchers.subscribedTopics()) interest.push([scope, topic]);
    for (const [scope, topic, holders] of this.#interest.entries()) {
      if (Hub.#wantedBeyond(holders, link) && !this.#dispatchers.get(scope)?.hasSubscribers(topic)) interest.push([scope, topic]);
    }
    // A process still joining cannot yet say what lies beyond it: it asks its threads for all.
    const wantsAll = link.kind === "thread" && !this.#isThread && this.#joining ? 1 : 0;
    if (link.kind === "thread" && !this.#isThread) {
      link.sendControl(["h", PROTOCOL_VERSION, this.node, reply, interest, wantsAll, [this.bounds.maxQueue, this.bounds.maxQueueBytes]]);
    } else {
      link.sendControl(["h", PROTOCOL_VERSION, this.node, reply, interest, wantsAll]);
    }
  }

  /**
   * Whether, leaving local subscribers aside, something reached through this hub wants what
   * `holders` want, as seen from `link`: a holder to which this hub forwards what comes in on
   * `link`.
   */
  static #wantedBeyond(holders: readonly Link[], link: Link): boolean {
    for (const holder of holders) if (holder !== link && !Hub.#reachedDirectly(link, holder)) return true;
    return false;
  }

  /**
   * Whether what comes in on `from` already reached `to` without this hub: threads of a
   * process reach each other directly, and so do hosts that are neighbours. (A host's
   * neighbours, as it said in its last "n" frame, are the hosts it sends to itself.)
   */
  static #reachedDirectly(from: Link, to: Link): boolean {
    if (from.kind === "thread") return to.kind === "thread";
    return isHost(from) && isHost(to) && from.neighbours.has(to.node);
  }

  /** Records that `link`'s far side does (or no longer does) want (scope, topic), and tells the others. */
  #setLinkInterest(link: Link, scope: Scope, topic: Topic, on: boolean): void {
    const before = this.#interest.holders(scope, topic) ?? [];
    const change = this.#interest.set(link, scope, topic, on);
    if (change === "unchanged") return;
    if (change === "overLimit") {
      // A peer that wants more than a link may hold breaks the protocol.
      link.counters.droppedMalformed++;
      debug("[%s] link %d wants more than %d topics: closed", this.node, link.id, MAX_INTEREST_PER_LINK);
      link.close();
      return;
    }
    const after = this.#interest.holders(scope, topic) ?? [];
    // Local interest already shows to every link: then nothing changes for them.
    const local = this.#dispatchers.get(scope)?.hasSubscribers(topic) ?? false;
    for (const other of local ? [] : this.#links) {
      const was = Hub.#wantedBeyond(before, other);
      const is = Hub.#wantedBeyond(after, other);
      if (was !== is) this.#sendInterest(other, scope, topic, is);
    }
    if ((before.length !== 0) !== (after.length !== 0)) {
      if (after.length !== 0) this.#dispatchers.getOrCreate(scope).setRemoteInterest(topic, true);
      else {
        const dispatcher = this.#dispatchers.get(scope);
        if (dispatcher !== undefined) {
          dispatcher.setRemoteInterest(topic, false);
          this.#dispatchers.forgetIfIdle(dispatcher);
        }
      }
    }
  }

  /**
   * The links a sync round asked for by `from` (another host, or `undefined`: this hub or a
   * link below it) waits for: every process link but the upstream one, and every host that
   * `from` does not reach itself.
   */
  #syncTargets(from: Link | undefined, hops: number): Link[] {
    const targets: Link[] = [];
    // A process that has not said hello has no roar state to sync (it may never load roar);
    // when it does say hello, the answer carries everything, this sync's interest included.
    // A host runs roar (it shook hands): it is waited for unless it is away.
    for (const link of this.#links) {
      if (link.kind === "thread" || link === this.#upstream || link === from) continue;
      if (isHost(link) ? link.connection === undefined || hops >= MAX_HOST_HOPS : !link.greeted) continue;
      if (from !== undefined && Hub.#reachedDirectly(from, link)) continue;
      targets.push(link);
    }
    return targets;
  }
}

/**
 * What a publish met beyond its thread: how many links dropped it (they were full), and
 * whether a link it went to is over its high-water mark. The object is reused by every publish.
 */
export interface ForwardOutcome {
  drops: number;
  pressured: boolean;
}

/** Warns, once per episode, that messages for `link` are being dropped. */
function warnSlowConsumer(link: Link): void {
  const { maxQueue, maxQueueBytes } = link.bounds;
  process.emitWarning(
    `roar: slow consumer: ${link.label} holds ${link.messagesHeld} messages (${link.bytesHeld} bytes) it has not taken in, ` +
      `the link's bound (maxQueue ${maxQueue}, maxQueueBytes ${maxQueueBytes}): messages for it are dropped and counted ` +
      "in dropped.queueFull until it catches up. A publisher can wait for `router.drained()` when `publish()` returns false.",
    { type: "RoarWarning", code: "ERR_ROAR_SLOW_CONSUMER" },
  );
}

function isHost(link: Link): link is HostLink {
  return link.kind === "host";
}
