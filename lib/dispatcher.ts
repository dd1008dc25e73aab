/**
 * Dispatchers: one per scope in each thread, shared by every router of that scope there.
 *
 * Invariants:
 *  - delivery in a thread is synchronous and in publish order: a publish made by a handler
 *    while a delivery is under way is delivered right after that delivery, never inside it,
 *    so every subscriber sees one router's messages in the order they were published;
 *  - a subscriber added during a delivery gets the next message, not the current one; a
 *    subscriber removed during a delivery is not called again (a delivery iterates a snapshot
 *    that nothing mutates, and `active` is checked before each call, as emittery does);
 *  - adding or removing a subscriber is O(1), however many a topic has: the subscribers live
 *    in an insertion-ordered `Set`, and a change only marks the topic's snapshot stale. The
 *    next delivery makes a new one, in O(n) — no more than the delivery itself costs — so
 *    the publish path of a topic whose subscribers do not change is one array walk, as before;
 *  - an unknown topic or scope is empty, not an error; topic keys live in `Map`s, so
 *    `"__proto__"` is an ordinary topic.
 *
 * What lies beyond the thread is behind the {@link Beyond} interface: dispatchers tell it
 * which topics gained or lost their last local subscriber and hand it what must leave, and it
 * tells them which topics are wanted elsewhere.
 */
import type { ForwardOutcome } from "./hub.js";
import type { Subscriber } from "./subscription.js";
import type { Scope, Topic } from "./types.js";

/** @internal What lies beyond this thread, as the dispatchers see it. */
export interface Beyond {
  /** `topic` in `scope` gained its first subscriber in this thread, or lost its last. */
  interestChanged(scope: Scope, topic: Topic): void;
  /**
   * Sends a message published in this thread towards its subscribers elsewhere; with `strict`,
   * refuses it (throws) before sending anything when a link it must take is full.
   */
  forward(scope: Scope, topic: Topic, message: unknown, strict: boolean): ForwardOutcome;
  /** Resolves once no link beyond this thread is over its high-water mark. */
  drained(): Promise<void>;
  /** Resolves once all that was forwarded or changed so far has reached the host's root relay. */
  flush(timeout?: number): Promise<void>;
}

interface TopicEntry {
  /** The subscribers in the order they subscribed; a `Set`, so adding and removing are O(1). */
  readonly members: Set<Subscriber>;
  /**
   * `members` as an array for deliveries to walk. Never mutated, so a delivery under way (or
   * deferred) walks a stable snapshot; replaced on the first delivery after a change.
   */
  snapshot: readonly Subscriber[];
  /**
   * Whether `members` changed since `snapshot` was made. A flag beside it rather than an
   * `undefined` snapshot: the field then only ever holds arrays, which keeps the property
   * load on the publish path monomorphic.
   */
  stale: boolean;
  /** Whether subscribers beyond this thread want this topic. */
  remote: boolean;
}

/** @internal The subscribers of one scope in this thread. */
export class Dispatcher {
  readonly scope: Scope;
  readonly #topics = new Map<Topic, TopicEntry>();
  readonly #dispatchers: ThreadDispatchers;
  /** Routers of this scope alive in the thread; the dispatcher goes when the last one closes. */
  routers = 0;

  constructor(dispatchers: ThreadDispatchers, scope: Scope) {
    this.#dispatchers = dispatchers;
    this.scope = scope;
  }

  /** Adds a subscriber to `topic`. */
  add(topic: Topic, subscriber: Subscriber): void {
    const entry = this.#topics.get(topic);
    if (entry === undefined) {
      this.#topics.set(topic, { members: new Set([subscriber]), snapshot: [subscriber], stale: false, remote: false });
    } else {
      const first = entry.members.size === 0;
      entry.members.add(subscriber);
      entry.stale = true;
      if (!first) return;
    }
    this.#dispatchers.beyond?.interestChanged(this.scope, topic);
  }

  /** Removes a subscriber from `topic`; unknown subscribers are ignored. */
  remove(topic: Topic, subscriber: Subscriber): void {
    const entry = this.#topics.get(topic);
    if (entry === undefined || !entry.members.delete(subscriber)) return;
    entry.stale = true;
    if (entry.members.size !== 0) return;
    if (!entry.remote) this.#topics.delete(topic);
    this.#dispatchers.beyond?.interestChanged(this.scope, topic);
  }

  /** Whether any subscriber in this thread wants `topic`. */
  hasSubscribers(topic: Topic): boolean {
    return (this.#topics.get(topic)?.members.size ?? 0) !== 0;
  }

  /** Topics with at least one subscriber in this thread. */
  *subscribedTopics(): IterableIterator<Topic> {
    for (const [topic, entry] of this.#topics) if (entry.members.size !== 0) yield topic;
  }

  /** Records whether subscribers beyond this thread want `topic`. */
  setRemoteInterest(topic: Topic, remote: boolean): void {
    const entry = this.#topics.get(topic);
    if (entry !== undefined) {
      entry.remote = remote;
      if (!remote && entry.members.size === 0) this.#topics.delete(topic);
    } else if (remote) {
      this.#topics.set(topic, { members: new Set(), snapshot: NO_SUBSCRIBERS, stale: false, remote });
    }
  }

  /** Forgets every remote interest (the link beyond the thread went away). */
  clearRemoteInterest(): void {
    for (const [topic, entry] of this.#topics) {
      entry.remote = false;
      if (entry.members.size === 0) this.#topics.delete(topic);
    }
  }

  /** Whether the dispatcher holds nothing and can be forgotten. */
  get isIdle(): boolean {
    return this.routers === 0 && this.#topics.size === 0;
  }

  /**
   * Delivers a message published in this thread: first it is handed beyond the thread (so
   * that the order of leaving matches the order of publishing), then to local subscribers.
   * @returns what the message met beyond the thread, or `undefined` if it did not leave it
   */
  publish(topic: Topic, message: unknown, strict: boolean): ForwardOutcome | undefined {
    // Interest that reached this thread must count before deciding where the message goes.
    const pump = this.#dispatchers.pump;
    if (pump !== undefined) pump(false);
    const dispatchers = this.#dispatchers;
    const entry = this.#topics.get(topic);
    if (entry === undefined) return dispatchers.forwardAll ? dispatchers.beyond?.forward(this.scope, topic, message, strict) : undefined;
    const outcome = entry.remote || dispatchers.forwardAll ? dispatchers.beyond?.forward(this.scope, topic, message, strict) : undefined;
    const subscribers = entry.stale ? snapshot(entry) : entry.snapshot;
    if (subscribers.length !== 0) deliver(subscribers, message);
    return outcome;
  }

  /** Delivers a message that arrived from beyond this thread to local subscribers only. */
  deliverLocal(topic: Topic, message: unknown): void {
    const entry = this.#topics.get(topic);
    if (entry === undefined) return;
    const subscribers = entry.stale ? snapshot(entry) : entry.snapshot;
    if (subscribers.length !== 0) deliver(subscribers, message);
  }
}

/** @internal The dispatchers of this thread, by scope, and what lies beyond them. */
export class ThreadDispatchers {
  readonly #byScope = new Map<Scope, Dispatcher>();
  /** Set once this thread is joined to something beyond it. */
  beyond: Beyond | undefined;
  /**
   * Takes in, synchronously, what other threads have already sent here (and, with `andSend`,
   * sends what this thread's links hold back); set in worker threads, whose event loop may be
   * held by synchronous work when they publish or read.
   */
  pump: ((andSend: boolean) => void) | undefined;
  /**
   * Set while this thread is joining a hub above it and does not yet know what lies beyond:
   * every message is then handed beyond, and the hubs above, which do know, route it.
   */
  forwardAll = false;

  /** The dispatcher of `scope`, made on first use; call {@link release} when done. */
  acquire(scope: Scope): Dispatcher {
    const dispatcher = this.getOrCreate(scope);
    dispatcher.routers++;
    return dispatcher;
  }

  /** Gives back what {@link acquire} took; an idle dispatcher is forgotten. */
  release(dispatcher: Dispatcher): void {
    dispatcher.routers--;
    this.forgetIfIdle(dispatcher);
  }

  /** The dispatcher of `scope`, if this thread has one. */
  get(scope: Scope): Dispatcher | undefined {
    return this.#byScope.get(scope);
  }

  /** The dispatcher of `scope`, made if need be (to record remote interest). */
  getOrCreate(scope: Scope): Dispatcher {
    let dispatcher = this.#byScope.get(scope);
    if (dispatcher === undefined) {
      dispatcher = new Dispatcher(this, scope);
      this.#byScope.set(scope, dispatcher);
    }
    return dispatcher;
  }

  /** Forgets `dispatcher` when it holds nothing. */
  forgetIfIdle(dispatcher: Dispatcher): void {
    if (dispatcher.isIdle && this.#byScope.get(dispatcher.scope) === dispatcher) this.#byScope.delete(dispatcher.scope);
  }

  /** Every (scope, topic) with a subscriber in this thread. */
  *subscribedTopics(): IterableIterator<[Scope, Topic]> {
    for (const [scope, dispatcher] of this.#byScope) {
      for (const topic of dispatcher.subscribedTopics()) yield [scope, topic];
    }
  }

  /** Forgets all remote interest, in every scope. */
  clearRemoteInterest(): void {
    for (const dispatcher of [...this.#byScope.values()]) {
      dispatcher.clearRemoteInterest();
      this.forgetIfIdle(dispatcher);
    }
  }
}

/** The snapshot of a topic without local subscribers (one wanted only beyond the thread). */
const NO_SUBSCRIBERS: readonly Subscriber[] = Object.freeze([]);

/** Makes `entry`'s snapshot after a change to its members (see the module's invariants). */
function snapshot(entry: TopicEntry): readonly Subscriber[] {
  entry.stale = false;
  return (entry.snapshot = entry.members.size === 0 ? NO_SUBSCRIBERS : [...entry.members]);
}

/** The dispatchers of the thread this module runs in. */
export const threadDispatchers = new ThreadDispatchers();

// Deliveries asked for while one is under way wait here (see the module's invariants), in
// two arrays side by side rather than one record each, so a handler that publishes 100k
// messages costs no allocation per message. They are `const` so that the check on the hot
// path reads a constant.
/** Whether a delivery is under way in this thread. */
let delivering = false;
/** For each waiting message, the snapshot of its topic's subscribers when it was published. */
const waitingSubscribers: (readonly Subscriber[])[] = [];
/** The waiting messages, in publish order; `waitingSubscribers[i]` is for `waitingMessages[i]`. */
const waitingMessages: unknown[] = [];

function deliver(subscribers: readonly Subscriber[], message: unknown): void {
  if (delivering) {
    waitingSubscribers.push(subscribers);
    waitingMessages.push(message);
    return;
  }
  // No try/finally on this hot path: Subscriber.deliver never throws (handlers' errors are
  // caught and reported where they run), so `delivering` is always reset.
  delivering = true;
  deliverTo(subscribers, message);
  if (waitingMessages.length !== 0) deliverWaiting();
  delivering = false;
}

/**
 * Delivers what waits, oldest first, including what these deliveries publish. The queue is
 * walked by index, not emptied with `shift()`, which is O(n) on a long queue and made a
 * handler that publishes 100k messages quadratic; a delivered slot is cleared at once, so a
 * long chain of publishes from handlers does not hold the messages it already delivered.
 */
function deliverWaiting(): void {
  for (let i = 0; i < waitingMessages.length; i++) {
    const subscribers = waitingSubscribers[i] as readonly Subscriber[];
    const message = waitingMessages[i];
    waitingSubscribers[i] = NO_SUBSCRIBERS;
    waitingMessages[i] = undefined;
    deliverTo(subscribers, message);
  }
  waitingSubscribers.length = 0;
  waitingMessages.length = 0;
}

function deliverTo(subscribers: readonly Subscriber[], message: unknown): void {
  for (let i = 0; i < subscribers.length; i++) {
    const subscriber = subscribers[i] as Subscriber;
    if (subscriber.active) subscriber.deliver(message);
  }
}
