/**
 * Routing: the one forwarding rule of a hub. A message goes on every link, except the one it
 * came in on, whose far side wants it, but never where the previous hop reached by itself
 * ({@link reachedDirectly}): from a thread to a thread (the publishing thread reached every
 * thread itself; Phoenix's "a forwarded message is never forwarded again"), nor from a host
 * to a host it is linked to (NATS's rule for routes). On the shapes a host's processes and
 * hosts form, each subscriber gets each message exactly once, over a single path, so in order
 * per publisher (links are FIFO).
 *
 * Each link says which form it carries a payload in ({@link Link.carries}): the value (a
 * thread's port, by structured clone) or its encoding (processes, hosts, brokers). An
 * {@link Envelope} makes each form at most once, when the first link or subscriber needs it;
 * a run of encoded messages from another process goes on as it came to links that carry it
 * encoded, and is decoded only for threads and local subscribers.
 *
 * Invariants:
 *  - a message from a link goes to the local subscribers too; one published here does not
 *    (the dispatcher delivered it already);
 *  - a message that crossed {@link MAX_HOST_HOPS} host links goes to no further host (only a
 *    ring of hosts gets there) and is counted in `droppedLooped`;
 *  - a full link drops a message before it is encoded or cloned for it (`dropIfFull` first),
 *    and the publish under way learns it in {@link ForwardOutcome};
 *  - a payload from another process that cannot be decoded is counted once per message in
 *    `droppedUndecodable`, and still goes, as it is, to links that carry it encoded.
 *
 * Races: a message a main thread's thread sends while the main thread joins its parent also
 * goes up (see Join.fromThread): the hubs above know who wants it.
 */
import type { ThreadDispatchers } from "./dispatcher.js";
import { RoarError } from "./errors.js";
import type { HubCounters } from "./tally.js";
import type { InterestTable } from "./interest.js";
import type { Join } from "./join.js";
import type { HostLink } from "./links/host-link.js";
import { countQueueFull, type Link, type LinkBounds } from "./links/link.js";
import type { Scope, Topic } from "./types.js";
import { decodePayload, isEncodedPayload } from "./wire/codec.js";
import { Envelope } from "./wire/envelope.js";
import { MAX_HOST_HOPS } from "./wire/frames.js";
import { debuglog } from "node:util";

const debug = debuglog("roar");

/** Marks a payload of a run that could not be decoded. */
const UNDECODABLE: unique symbol = Symbol("undecodable");

/**
 * What a publish met beyond its thread: how many links dropped it (they were full), and
 * whether a link it went to is over its high-water mark. The object is reused by every publish.
 */
export interface ForwardOutcome {
  drops: number;
  pressured: boolean;
}

/** Whether `link` goes to another host (and so carries hop counts and neighbours). */
export function isHost(link: Link): link is HostLink {
  return link.kind === "host";
}

/**
 * Whether what comes in on `from` already reached `to` without this hub: threads of a
 * process reach each other directly, and so do hosts that are neighbours. (A host's
 * neighbours, as it said in its last "n" frame, are the hosts it sends to itself.)
 */
export function reachedDirectly(from: Link, to: Link): boolean {
  if (from.kind === "thread") return to.kind === "thread";
  return isHost(from) && isHost(to) && from.neighbours.has(to.node);
}

/**
 * Whether, leaving local subscribers aside, something reached through this hub wants what
 * `holders` want, as seen from `link`: a holder to which this hub forwards what comes in on
 * `link`.
 */
export function wantedBeyond(holders: readonly Link[], link: Link): boolean {
  for (const holder of holders) if (holder !== link && !reachedDirectly(link, holder)) return true;
  return false;
}

/** @internal How one hub forwards messages. */
export class Routing {
  /** Who wants what beyond each link. */
  readonly #interest: InterestTable;
  /** The local subscribers: the one more holder a message from a link goes to. */
  readonly #dispatchers: ThreadDispatchers;
  /** The hub's join: what it does with messages while it does not know what lies beyond. */
  readonly #join: Join;
  /** The hub's own counters, where what routing drops is counted. */
  readonly #counters: HubCounters;
  /** The hub's bounds, named in the error a strict publish gets. */
  readonly #bounds: LinkBounds;
  /** The hub's id, for diagnostics. */
  readonly #node: string;
  /** What the publish under way met: links that dropped it, and whether one is over its high-water mark. */
  readonly #outcome: ForwardOutcome = { drops: 0, pressured: false };

  constructor({ interest, dispatchers, join, counters, bounds, node }: { interest: InterestTable; dispatchers: ThreadDispatchers; join: Join; counters: HubCounters; bounds: LinkBounds; node: string }) {
    this.#interest = interest;
    this.#dispatchers = dispatchers;
    this.#join = join;
    this.#counters = counters;
    this.#bounds = bounds;
    this.#node = node;
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
      // While joining, a message goes up, or waits for the welcome (see Join.takesPublish).
      const envelope = Envelope.ofValue(scope, topic, value);
      if (!this.#join.takesPublish(envelope, holders) && holders !== undefined) this.route(envelope, holders, undefined);
      return outcome;
    }
    if (holders !== undefined) this.route(Envelope.ofValue(scope, topic, value), holders, undefined);
    return outcome;
  }

  /** A message held while joining was dropped (too many were held): the publish under way met a drop. */
  droppedHeld(): void {
    countQueueFull(this.#counters, 1);
    this.#outcome.drops++;
  }

  /** A message from `from`, routed on. */
  onMessage(from: Link, scope: Scope, topic: Topic, payload: unknown, hops?: number): void {
    let envelope: Envelope;
    if (from.carries === "value") {
      envelope = Envelope.ofValue(scope, topic, payload);
    } else if (isEncodedPayload(payload)) {
      envelope = Envelope.ofEncoded(scope, topic, payload);
    } else {
      from.counters.droppedMalformed++;
      return;
    }
    if (isHost(from)) envelope.hops = (hops ?? 0) + 1;
    this.route(envelope, this.#interest.holders(scope, topic), from);
  }

  /**
   * A run of messages on one (scope, topic). Values (from a thread) are routed each on its
   * own; encoded payloads (from another process or host) are passed on as they came, still
   * encoded, to the links that carry them encoded, and decoded only for the links that carry
   * values and for local subscribers.
   */
  onRun(from: Link, scope: Scope, topic: Topic, payloads: readonly unknown[], hops?: number): void {
    if (from.carries === "value") {
      for (const payload of payloads) this.onMessage(from, scope, topic, payload);
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
      if (link === from || reachedDirectly(from, link)) continue;
      if (link.carries === "encoded") {
        if (!isHost(link)) link.sendRun(scope, topic, encoded);
        else if (crossed >= MAX_HOST_HOPS) this.#counters.droppedLooped += encoded.length;
        else link.sendRun(scope, topic, encoded, crossed === 0 ? undefined : crossed);
        continue;
      }
      values ??= this.#decodeRun(encoded);
      for (const value of values) if (value !== UNDECODABLE && !link.dropIfFull()) link.sendMessage(["m", scope, topic, value]);
    }
    if (!local) return;
    for (const value of values ?? this.#decodeRun(encoded)) if (value !== UNDECODABLE) dispatcher.deliverLocal(topic, value);
  }

  /** Sends `envelope` to every holder but `from`, and to local subscribers when it came from a link. */
  route(envelope: Envelope, holders: readonly Link[] | undefined, from: Link | undefined): void {
    let undecodable = false;
    if (holders !== undefined) {
      for (const link of holders) {
        if (link === from || (from !== undefined && reachedDirectly(from, link))) continue;
        // A payload that cannot be decoded still goes, as it is, to links that carry it encoded.
        if (!this.send(link, envelope)) undecodable = true;
      }
    }
    if (from?.kind === "thread") this.#join.fromThread(envelope, holders);
    const dispatcher = from === undefined ? undefined : this.#dispatchers.get(envelope.scope);
    if (dispatcher !== undefined && dispatcher.hasSubscribers(envelope.topic)) {
      try {
        dispatcher.deliverLocal(envelope.topic, envelope.value);
      } catch (error) {
        undecodable = true;
        debug("[%s] undecodable payload dropped: %o", this.#node, error);
      }
    }
    if (undecodable) this.#counters.droppedUndecodable++;
  }

  /** Sends `envelope` on `link` in the form the link carries; `false` when its payload cannot be decoded. */
  send(link: Link, envelope: Envelope): boolean {
    if (isHost(link) && envelope.hops !== 0) {
      if (envelope.hops >= MAX_HOST_HOPS) {
        // Only a layout with a ring of hosts gets here: the message would go round for ever.
        this.#counters.droppedLooped++;
        return true;
      }
      if (this.#dropped(link)) return true;
      link.sendMessage(["m", envelope.scope, envelope.topic, envelope.encoded, envelope.hops]);
      return true;
    }
    // A neighbour that is too far behind costs no encoding or clone: the message is dropped first.
    if (this.#dropped(link)) return true;
    try {
      link.sendMessage(["m", envelope.scope, envelope.topic, link.carries === "value" ? envelope.value : envelope.encoded]);
      return true;
    } catch (error) {
      // Only decoding can throw here: a payload from another process that is not valid.
      debug("[%s] undecodable payload not sent on link %d: %o", this.#node, link.id, error);
      return false;
    }
  }

  /** Throws ERR_ROAR_QUEUE_FULL if a link a publish on (scope, topic) goes to is full. */
  #assertRoom(scope: Scope, topic: Topic, holders: readonly Link[]): void {
    for (const link of holders) {
      if (!link.isFull) continue;
      throw new RoarError(
        "ERR_ROAR_QUEUE_FULL",
        `cannot publish on topic ${JSON.stringify(topic)} in scope ${JSON.stringify(scope)}: ${link.label} holds ` +
          `${link.messagesHeld} messages (${link.bytesHeld} bytes) not yet taken in, its bound (maxQueue ${this.#bounds.maxQueue}, ` +
          `maxQueueBytes ${this.#bounds.maxQueueBytes}); nothing was sent. Wait for \`router.drained()\` and publish again.`,
      );
    }
  }

  /** Whether `link` is full and dropped a message; notes what the publish under way met. */
  #dropped(link: Link): boolean {
    const dropped = link.dropIfFull();
    if (dropped) this.#outcome.drops++;
    if (link.watched) this.#outcome.pressured = true;
    return dropped;
  }

  /** Decodes the payloads of a run; one that cannot be decoded is counted, and marked. */
  #decodeRun(payloads: readonly string[]): unknown[] {
    return payloads.map((payload) => {
      try {
        return decodePayload(payload);
      } catch (error) {
        this.#counters.droppedUndecodable++;
        debug("[%s] undecodable payload dropped: %o", this.#node, error);
        return UNDECODABLE;
      }
    });
  }
}
