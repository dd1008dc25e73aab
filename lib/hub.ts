/**
 * Hub: routes messages between this thread's dispatchers and its links. Every thread that
 * uses roar has one; a process's main-thread hub is its relay.
 *
 * The processes of a host form a tree: each cluster worker's or attached child's main thread
 * links to its parent, and the root is the cluster primary (or a lone process). Inside a
 * process, the threads form a full mesh: every worker thread (however nested: it hands its
 * port straight to thread 0) links to the main thread, which introduces it to every other
 * thread with a port of their own (thread-mesh.ts). The root hubs of hosts link to each other
 * through transports (host links, see host-link.ts), in a mesh, a star or a tree; each tells
 * its neighbours which hosts it is linked to (host-topology.ts).
 *
 * The hub composes one piece per job and dispatches the frames links hand it to them:
 *  - routing.ts: the one forwarding rule, and the form each link carries a payload in;
 *  - interest.ts and announcer.ts: who wants what beyond each link, and what this hub tells
 *    each link it wants (hellos, interest frames, their rate limits);
 *  - join.ts: where this hub stands towards the root, as one state, and what waits on it;
 *  - barrier.ts: flushes sent up, and the sync rounds this hub runs;
 *  - host-topology.ts: known hosts, neighbours, hosts away and back;
 *  - stats.ts and pressure.ts: what was dropped, and links over their high-water mark.
 *
 * Invariants:
 *  - every open link is in `#links` and has this hub as its handler; a link leaves it once,
 *    in onClose, and takes with it its interest, its place in every sync round and its drop
 *    report, its counters folded into the hub's;
 *  - flush: a flush travels towards the root behind everything sent before it; the root then
 *    runs a *sync* down every process link (not thread links — threads pick up what waits for
 *    them before they publish, see PortLink) and to every linked host, which runs its own
 *    (on to the hosts the asker is not linked to), and answers when all are done (see
 *    #syncTargets). When a flush resolves, every hub on the host, and on the linked hosts,
 *    has taken in the interest sent before it, so a publish made anywhere afterwards reaches
 *    the subscriber.
 *
 * Races handled here (those of joining the parent are in join.ts, those of announcing
 * interest in announcer.ts, those of hosts away and back in host-topology.ts, each at the
 * branch that handles it):
 *  - a link that closes takes its interest with it and counts as done in every pending sync
 *    (onClose);
 *  - a thread introduced to a new one tells it what it wants in its own hello; until then the
 *    new thread goes by what the main thread knew (addLink, #onPeer). A subscription whose
 *    flush resolved is always in that picture: the flush's answer reached the subscribing
 *    thread after its introduction to the new thread, so its hello to the new thread went
 *    out first;
 *  - a hub that closes says bye: the far side forgets what it wanted and stops waiting for it
 *    in syncs, but keeps listening on a channel that outlives it, where a later hub says
 *    hello again. A thread whose main thread said bye drops all its links and joins anew; a
 *    process whose parent said bye routes as a root until a relay there says hello; a host
 *    whose peer said bye closes the link to it (#onBye).
 */
import type { ThreadDispatchers } from "./dispatcher.js";
import type { HostLink } from "./links/host-link.js";
import type { Link, LinkBounds, LinkHandler } from "./links/link.js";
import { PressureWatch } from "./pressure.js";
import { DEFAULT_FLUSH_TIMEOUT_MS, SyncRounds } from "./barrier.js";
import { Join } from "./join.js";
import { isHost, reachedDirectly, Routing, type ForwardOutcome } from "./routing.js";
import { InterestAnnouncer } from "./announcer.js";
import { HostTopology } from "./host-topology.js";
import { DropReporter } from "./stats.js";
import { Tally, type HubCounters } from "./tally.js";
import { InterestTable } from "./interest.js";
import type { Scope, Topic } from "./types.js";
import { MAX_HOST_HOPS, type Frame, type InterestKey, type PeerFrame } from "./wire/frames.js";
import { debuglog } from "node:util";
import { ThreadMesh } from "./thread-mesh.js";

const debug = debuglog("roar");

export type { ForwardOutcome } from "./routing.js";
export type { HubCounters } from "./tally.js";

/** @internal */
export class Hub implements LinkHandler {
  /** A random id for diagnostics, sent in hellos. */
  readonly node = `${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  /** Every open link of this hub (the pieces read it; only addLink and onClose change it). */
  readonly #links = new Set<Link>();
  /** Who wants what beyond each link (see interest.ts). */
  readonly #interest = new InterestTable();
  /** The next id of a flush or sync this hub sends. */
  #nextId = 1;
  /** Where this hub stands towards the root of its host, and what waits on it (see join.ts). */
  readonly #join: Join;
  /** How messages are forwarded (see routing.ts). */
  readonly #routing: Routing;
  /** What this hub tells each link it wants, and takes in of what each wants (see announcer.ts). */
  readonly #announcer: InterestAnnouncer;
  /** The hosts around this one (see host-topology.ts). */
  readonly #hosts: HostTopology;
  /** Sync rounds this hub runs (see barrier.ts). */
  readonly #rounds = new SyncRounds({
    targets: (from, hops) => this.#syncTargets(from, hops),
    sendSync: (link, id, hops) => {
      // A sync answers for interest: a link whose changes were held back gets them first.
      if (link.interestStale) this.#announcer.hello(link, 1);
      link.sendControl(isHost(link) && hops !== 0 ? ["s", id, hops] : ["s", id]);
    },
    newId: () => this.#nextId++,
    answer: (link, frame) => this.#announcer.answer(link, frame),
    // Threads are not synced (they take in what waits for them before they publish): a round
    // vouches for their interest too, so those held back from hear it now.
    starting: () => this.#announcer.resyncStale(),
  });
  /** Tells the parent what this process dropped; only in a process's main thread. */
  readonly #reporter: DropReporter | undefined;
  /** What this hub, its links and the processes below it counted (see tally.ts). */
  readonly #tally = new Tally();
  /** The bounds of what waits here and of every link of this thread's host (shared with them). */
  readonly bounds: LinkBounds;
  /** Links over their high-water mark, until they drain. */
  readonly #pressure = new PressureWatch((link) => this.#announcer.drained(link));
  /** Called when the link to the upstream hub is lost and this hub must join again. */
  onUpstreamLost: (() => void) | undefined;
  /** A worker thread's hub: it holds what it publishes until its main thread has welcomed it. */
  readonly #isThread: boolean;
  /** This thread's links to the other threads of its process, and its doorbell. */
  readonly mesh = new ThreadMesh();

  constructor({ dispatchers, expectsUpstream, isThread, bounds }: { dispatchers: ThreadDispatchers; expectsUpstream: boolean; isThread: boolean; bounds: LinkBounds }) {
    this.#isThread = isThread;
    this.bounds = bounds;
    this.#reporter = isThread ? undefined : new DropReporter(() => this.counters(), (totals) => this.#upstream?.sendControl(["d", totals]));
    this.#join = new Join({
      expectsUpstream,
      isThread,
      bounds,
      hooks: {
        forwardAll: (on) => (dispatchers.forwardAll = on),
        greetThreads: () => this.#announcer.greetThreads(),
        syncHere: (requester) => this.#rounds.sync(undefined, 0, requester),
        route: (envelope) => {
          const holders = this.#interest.holders(envelope.scope, envelope.topic);
          if (holders !== undefined) this.#routing.route(envelope, holders, undefined);
        },
        send: (link, envelope) => this.#routing.send(link, envelope),
        droppedHeld: () => this.#routing.droppedHeld(),
        beforeFlush: () => {
          // What this process dropped reaches the root before the flush does, and so does the
          // interest held back from links that were not reading (see InterestAnnouncer).
          this.#reporter?.report();
          this.#announcer.resyncStale();
        },
        answer: (link, frame) => this.#announcer.answer(link, frame),
        newId: () => this.#nextId++,
      },
    });
    const shared = { links: this.#links, interest: this.#interest, dispatchers, join: this.#join, isThread, bounds, node: this.node };
    this.#routing = new Routing({ ...shared, counters: this.#tally.own });
    this.#announcer = new InterestAnnouncer({ ...shared, pressure: this.#pressure });
    this.#hosts = new HostTopology({ links: this.#links, announcer: this.#announcer, rounds: this.#rounds });
  }

  /** The link towards the root, if this hub has one (see join.ts). */
  get #upstream(): Link | undefined {
    return this.#join.upstream;
  }

  /** Gives up waiting for an upstream link: this hub is a root after all (see {@link Join.stopExpecting}). */
  stopExpectingUpstream(): void {
    this.#join.stopExpecting();
  }

  /** The bounds changed (a later `startRelay()`): this main thread's threads learn them. */
  boundsChanged(): void {
    if (!this.#isThread) this.#announcer.greetThreads();
  }

  /**
   * The upstream hub has not said hello in the time a running relay answers: route as a root
   * (see {@link Join.silent}).
   * @returns `false` when the upstream hub did say hello
   */
  upstreamIsSilent(): boolean {
    return this.#join.silent();
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
    return this.#tally.total(this.#links);
  }

  /**
   * Adds a link and says hello on it. `upstream` marks the link towards the root.
   */
  addLink(link: Link, { upstream = false } = {}): void {
    if (this.#join.closed) {
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
      this.#join.linked(link, () => this.#announcer.hello(link, 0));
      this.#reporter?.start();
    } else {
      this.#announcer.hello(link, 0);
    }
    debug("[%s] link %d (%s%s) added", this.node, link.id, link.kind, upstream ? ", upstream" : "");
  }

  /** Closes every link; the hub routes nothing more. */
  close(): void {
    if (this.#join.closed) return;
    this.#join.close(() => {
      for (const link of [...this.#links]) link.close();
    });
    this.#rounds.close();
    this.#reporter?.stop();
  }

  // ---- the local side (called through the thread's Beyond) ----

  /** A topic gained its first local subscriber or lost its last. */
  localInterestChanged(scope: Scope, topic: Topic): void {
    this.#announcer.localInterestChanged(scope, topic);
  }

  /** Sends a message published in this thread to the links that want it (see {@link Routing.forwardLocal}). */
  forwardLocal(scope: Scope, topic: Topic, value: unknown, strict: boolean): ForwardOutcome {
    return this.#routing.forwardLocal(scope, topic, value, strict);
  }

  /** Resolves once no link of this thread is over its high-water mark (see {@link PressureWatch.drained}). */
  drained(): Promise<void> {
    return this.#pressure.drained();
  }

  /**
   * Resolves once all that this thread sent so far has reached the root, and the root synced;
   * rejects with ERR_ROAR_TIMEOUT after `timeout` ms, or when the root's sync timed out,
   * naming what did not answer.
   */
  flush(timeout = DEFAULT_FLUSH_TIMEOUT_MS): Promise<void> {
    return this.#join.flush(timeout);
  }

  // ---- the link side ----

  /** @internal LinkHandler */
  onFrame(link: Link, frame: Frame): void {
    switch (frame[0]) {
      case "m":
        return this.#routing.onMessage(link, frame[1], frame[2], frame[3], frame[4]);
      case "M":
        return this.#routing.onRun(link, frame[1], frame[2], frame[3], frame[4]);
      case "i":
        return this.#announcer.setLinkInterest(link, frame[1], frame[2], frame[3] === 1);
      case "h":
        // A thread's links are bounded as its process's main thread says (startRelay's options).
        if (this.#isThread && link === this.#upstream && frame[6] !== undefined) [this.bounds.maxQueue, this.bounds.maxQueueBytes] = frame[6];
        return this.#onHello(link, frame[3], frame[4], frame[5] === 1);
      case "f":
        // A flush from below; the upstream hub never asks this one for a flush.
        if (link !== this.#upstream) this.#join.request({ link, id: frame[1], answer: "F" });
        return;
      case "F":
        if (link === this.#upstream) this.#join.flushAnswered(frame[1], frame[2] ?? []);
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
        else this.#tally.report(link, frame[1]);
        return;
      case "p":
        return this.#onPeer(link, frame);
      case "b":
        return this.#onBye(link);
      case "n":
        if (!this.#hosts.neighbours(link, frame[1])) link.counters.droppedMalformed++;
        return;
    }
  }

  /** A host link's connection dropped (see {@link HostTopology.away}). */
  hostAway(link: HostLink): void {
    this.#hosts.away(link);
  }

  /** A host link has a connection again (see {@link HostTopology.back}). */
  hostBack(link: HostLink): void {
    this.#hosts.back(link);
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
    this.#tally.linkClosed(link);
    this.#forget(link);
    if (link === this.#upstream) this.#upstreamLost(false);
    this.#hosts.closed(link);
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
    this.#upstreamLost(true);
    // The parent's relay closed; its channel stays. Until a relay there says hello again,
    // this process routes as a root — not as one joining, which would send it everything.
    this.#join.silent();
  }

  /** Drops what `link`'s far side wanted, and stops waiting for it in every sync. */
  #forget(link: Link): void {
    this.#announcer.forget(link);
    this.#rounds.linkGone(link);
    this.#tally.settle(link);
  }

  /**
   * The upstream hub is gone: its link closed, or (`stillLinked`) it said bye (see
   * {@link Join.lost}). A thread also drops its direct links, which its main thread makes
   * anew when it joins again.
   */
  #upstreamLost(stillLinked: boolean): void {
    this.#join.lost(stillLinked);
    this.#reporter?.stop();
    if (this.#join.closed) return;
    if (this.#isThread) {
      for (const other of [...this.#links]) if (other !== this.#upstream) other.close();
    }
    this.onUpstreamLost?.();
  }

  #onHello(link: Link, reply: 0 | 1, interest: readonly InterestKey[], wantsAll: boolean): void {
    link.greeted = true;
    this.#hosts.greeted(link);
    const takeIn = (): void => this.#announcer.takeHello(link, interest, reply);
    // The upstream hub's hello says what lies beyond it (see Join.upstreamHello).
    if (link === this.#upstream) this.#join.upstreamHello(wantsAll, takeIn);
    else takeIn();
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
    for (const [scope, topic] of frame[4]) this.#announcer.setLinkInterest(peer, scope, topic, true);
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
      if (from !== undefined && reachedDirectly(from, link)) continue;
      targets.push(link);
    }
    return targets;
  }
}
