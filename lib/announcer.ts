/**
 * InterestAnnouncer: what a hub tells each link it wants, and what it takes in of what each
 * link says it wants — hellos, interest frames, and the table they feed (see interest.ts).
 *
 * Invariants:
 *  - the interest this hub announces to link L is "a local subscriber, or some holder other
 *    than L that L's far side does not reach by itself" ({@link wantedBeyond}): it is re-sent
 *    to every link whenever that changes (for a host link, also when its neighbours change,
 *    see host-topology.ts), so each link's far side knows exactly what it reaches through
 *    this hub;
 *  - a hello carries the sender's whole interest and replaces what the receiver knew of it;
 *  - the dispatchers know a topic has remote interest exactly while the table has a holder
 *    for it;
 *  - what one link's far side can make this hub write is bounded: at most
 *    {@link MAX_INTEREST_PER_LINK} topics (a link wanting more is closed), hello answers at
 *    most one per {@link HELLO_ANSWER_INTERVAL_MS}, and nothing but one hello, once it drains,
 *    to a link that is not reading (`interestStale`): however much churn happens meanwhile (a
 *    subscribe and its cancel cancel out), it costs this hub nothing more.
 *
 * Races handled:
 *  - a link's far side may start after this side said hello (a cluster worker loads roar
 *    after the primary attached it): every hello is answered with one carrying the full
 *    interest ({@link InterestAnnouncer.takeHello}), and interest frames are sent even
 *    before the far side greeted, so whichever side speaks first, both end up with the same
 *    picture;
 *  - a process still joining its parent does not know what lies beyond it: its hello asks its
 *    threads for everything (see {@link InterestAnnouncer.hello}, and join.ts);
 *  - a flush could resolve while a link that was not reading had not heard of a subscription:
 *    a link whose interest was held back is told everything before any flush or sync answer
 *    goes to it ({@link InterestAnnouncer.answer}), and the upstream link and threads, which
 *    no sync reaches, before a flush request leaves or a round starts
 *    ({@link InterestAnnouncer.resyncStale}).
 */
import type { ThreadDispatchers } from "./dispatcher.js";
import { MAX_INTEREST_PER_LINK, type InterestTable } from "./interest.js";
import type { Join } from "./join.js";
import type { Link, LinkBounds } from "./links/link.js";
import type { PressureWatch } from "./pressure.js";
import { wantedBeyond } from "./routing.js";
import type { Scope, Topic } from "./types.js";
import { PROTOCOL_VERSION, type Frame, type InterestKey } from "./wire/frames.js";
import { debuglog } from "node:util";

const debug = debuglog("roar");

/** The shortest time, in milliseconds, between two answers to one link's hellos. */
export const HELLO_ANSWER_INTERVAL_MS = 250;
/** What a link may hold, in bytes, before interest changes for it are coalesced: it is not reading. */
export const CONTROL_SLACK_BYTES = 1024 * 1024;

/** @internal How one hub announces interest and takes it in. */
export class InterestAnnouncer {
  /** The hub's open links (read only here). */
  readonly #links: ReadonlySet<Link>;
  /** Who wants what beyond each link. */
  readonly #interest: InterestTable;
  /** The local subscribers, whose interest shows to every link. */
  readonly #dispatchers: ThreadDispatchers;
  /** The hub's join: a process still joining asks its threads for everything. */
  readonly #join: Join;
  /** Links over their high-water mark: a link not reading is watched until it drains. */
  readonly #pressure: PressureWatch;
  /** A worker thread's hub (whose hellos carry no bounds and ask for nothing). */
  readonly #isThread: boolean;
  /** The bounds a main thread's hello gives its threads. */
  readonly #bounds: LinkBounds;
  /** The hub's id, sent in hellos. */
  readonly #node: string;
  /** When each link was last answered a hello, to rate-limit the answers (see #answerHello). */
  readonly #lastHelloAnswer = new WeakMap<Link, number>();
  /** Links whose hello waits to be answered, at the end of their rate limit's window. */
  readonly #helloAnswersDue = new Set<Link>();
  /** Fires at the end of the window of the answers due. */
  #helloAnswerTimer: NodeJS.Timeout | undefined;

  constructor(hub: { links: ReadonlySet<Link>; interest: InterestTable; dispatchers: ThreadDispatchers; join: Join; pressure: PressureWatch; isThread: boolean; bounds: LinkBounds; node: string }) {
    this.#links = hub.links;
    this.#interest = hub.interest;
    this.#dispatchers = hub.dispatchers;
    this.#join = hub.join;
    this.#pressure = hub.pressure;
    this.#isThread = hub.isThread;
    this.#bounds = hub.bounds;
    this.#node = hub.node;
  }

  /** Says hello on `link`: this hub's whole interest as seen from it; `reply` 0 asks for an answer. */
  hello(link: Link, reply: 0 | 1): void {
    // A hello tells everything: changes held back from a link that was not reading are in it.
    link.interestStale = false;
    const interest: InterestKey[] = [];
    for (const [scope, topic] of this.#dispatchers.subscribedTopics()) interest.push([scope, topic]);
    for (const [scope, topic, holders] of this.#interest.entries()) {
      if (wantedBeyond(holders, link) && !this.#dispatchers.get(scope)?.hasSubscribers(topic)) interest.push([scope, topic]);
    }
    // A process still joining cannot yet say what lies beyond it: it asks its threads for all.
    const wantsAll = link.kind === "thread" && !this.#isThread && this.#join.joining ? 1 : 0;
    if (link.kind === "thread" && !this.#isThread) {
      link.sendControl(["h", PROTOCOL_VERSION, this.#node, reply, interest, wantsAll, [this.#bounds.maxQueue, this.#bounds.maxQueueBytes]]);
    } else {
      link.sendControl(["h", PROTOCOL_VERSION, this.#node, reply, interest, wantsAll]);
    }
  }

  /**
   * Takes in the whole interest a hello from `link` carries, replacing what was known of it,
   * and answers it when it asked for an answer (`reply` 0).
   */
  takeHello(link: Link, interest: readonly InterestKey[], reply: 0 | 1): void {
    const wanted = new Map<Scope, Set<Topic>>();
    for (const [scope, topic] of interest) {
      let topics = wanted.get(scope);
      if (topics === undefined) wanted.set(scope, (topics = new Set()));
      topics.add(topic);
    }
    for (const [scope, topic] of this.#interest.of(link)) if (!wanted.get(scope)?.has(topic)) this.setLinkInterest(link, scope, topic, false);
    for (const [scope, topics] of wanted) for (const topic of topics) if (!link.isClosed) this.setLinkInterest(link, scope, topic, true);
    if (reply === 0) this.#answerHello(link);
  }

  /**
   * A process that was joining told its threads to send it everything; now that it knows what
   * lies beyond (or that nothing does), it tells them exactly (a hello with reply set, so they
   * do not answer).
   */
  greetThreads(): void {
    for (const link of this.#links) if (link.kind === "thread" && link !== this.#join.upstream) this.hello(link, 1);
  }

  /** Records that `link`'s far side does (or no longer does) want (scope, topic), and tells the others. */
  setLinkInterest(link: Link, scope: Scope, topic: Topic, on: boolean): void {
    const before = this.#interest.holders(scope, topic) ?? [];
    const change = this.#interest.set(link, scope, topic, on);
    if (change === "unchanged") return;
    if (change === "overLimit") {
      // A peer that wants more than a link may hold breaks the protocol.
      link.counters.droppedMalformed++;
      debug("[%s] link %d wants more than %d topics: closed", this.#node, link.id, MAX_INTEREST_PER_LINK);
      link.close();
      return;
    }
    const after = this.#interest.holders(scope, topic) ?? [];
    // Local interest already shows to every link: then nothing changes for them.
    const local = this.#dispatchers.get(scope)?.hasSubscribers(topic) ?? false;
    for (const other of local ? [] : this.#links) {
      const was = wantedBeyond(before, other);
      const is = wantedBeyond(after, other);
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

  /** Forgets all that `link`'s far side wanted, telling the others what changes for them. */
  forget(link: Link): void {
    for (const [scope, topic] of this.#interest.of(link)) this.setLinkInterest(link, scope, topic, false);
  }

  /** A topic gained its first local subscriber or lost its last. */
  localInterestChanged(scope: Scope, topic: Topic): void {
    const holders = this.#interest.holders(scope, topic) ?? [];
    // Local interest shows to every link; only the local flag changed, so "before" is its opposite.
    const local = this.#dispatchers.get(scope)?.hasSubscribers(topic) ?? false;
    for (const link of this.#links) {
      if (!wantedBeyond(holders, link)) this.#sendInterest(link, scope, topic, local);
    }
  }

  /**
   * Sends `link` the answer to its flush or sync. An answer vouches that interest arrived: a
   * link whose changes were held back (see #markStale) is told everything first.
   */
  answer(link: Link, frame: Frame): void {
    if (link.interestStale) this.hello(link, 1);
    link.sendControl(frame);
  }

  /**
   * Tells the links whose interest was held back and that no sync will reach — the upstream
   * link and threads — everything, before a flush request leaves or a round starts: either
   * vouches for interest everywhere a publish could come from.
   */
  resyncStale(): void {
    for (const link of this.#links) if (link.interestStale && (link.kind === "thread" || link === this.#join.upstream)) this.hello(link, 1);
  }

  /** `link` drained (see PressureWatch): it learns what it missed while it was not reading. */
  drained(link: Link): void {
    if (!link.interestStale || link.isClosed) return;
    if (notReading(link)) this.#pressure.watch(link, false);
    else this.hello(link, 1);
  }

  /**
   * Answers a hello that asked for one. The answer carries this hub's whole interest, so a
   * peer repeating hellos could make this hub write far more than it reads: answers to one
   * link are at most one per {@link HELLO_ANSWER_INTERVAL_MS} (those asked for meanwhile get
   * one answer at the end of it), and none goes to a link that is not reading — it gets the
   * interest when it drains (see {@link InterestAnnouncer.drained}).
   */
  #answerHello(link: Link): void {
    if (this.#helloAnswersDue.has(link)) return;
    // The upstream hub's hello (a relay that started again up there) is a welcome: answered
    // whatever the link holds.
    if (notReading(link) && link !== this.#join.upstream) {
      this.#markStale(link);
      return;
    }
    const now = performance.now();
    const last = this.#lastHelloAnswer.get(link);
    if (last === undefined || now - last >= HELLO_ANSWER_INTERVAL_MS) {
      this.#lastHelloAnswer.set(link, now);
      this.hello(link, 1);
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

  /** Sends a change of interest to `link`, or, when it is not reading, coalesces it (see #markStale). */
  #sendInterest(link: Link, scope: Scope, topic: Topic, on: boolean): void {
    if (link.interestStale) return;
    if (notReading(link)) this.#markStale(link);
    else link.sendControl(["i", scope, topic, on ? 1 : 0]);
  }

  /**
   * Stops sending `link` changes of interest until it drains, when one hello tells it the
   * whole of it (see the module's invariants).
   */
  #markStale(link: Link): void {
    link.interestStale = true;
    this.#pressure.watch(link, false);
  }
}

/**
 * Whether `link` is not reading what is sent to it: it holds a quarter of its message bound,
 * or more than {@link CONTROL_SLACK_BYTES}. Interest changes for it are then coalesced (and
 * the pressure watch looks at it until it is under both again: see
 * {@link InterestAnnouncer.drained}).
 */
function notReading(link: Link): boolean {
  return link.bytesHeld >= CONTROL_SLACK_BYTES || link.messagesHeld * 4 >= link.bounds.maxQueue;
}
