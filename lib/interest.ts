/**
 * InterestTable: which links' far sides want each (scope, topic) — pg's `scopes` and
 * `monitors` tables in one record — indexed both ways, so that what one link wants is found
 * without walking every topic (a hello that replaces it, a link that goes), and bounded per
 * link, so that no peer can grow it past {@link MAX_INTEREST_PER_LINK} topics or
 * {@link MAX_INTEREST_BYTES_PER_LINK} bytes of names.
 *
 * Pure bookkeeping: the hub decides what a change means for its other links.
 */
import type { Link } from "./links/link.js";
import type { Scope, Topic } from "./types.js";
import type { InterestKey } from "./wire/frames.js";

/** The most (scope, topic) pairs one link's far side may want. */
export const MAX_INTEREST_PER_LINK = 262_144;
/** The most UTF-16 units of scope and topic names one link's far side may want, summed. */
export const MAX_INTEREST_BYTES_PER_LINK = 32 * 1024 * 1024;

/** What one link's far side wants. */
interface LinkInterest {
  /** By scope, the topics. */
  readonly topics: Map<Scope, Set<Topic>>;
  /** How many (scope, topic) pairs. */
  count: number;
  /** The lengths of their names, summed. */
  bytes: number;
}

/** What {@link InterestTable.set} did. */
export type InterestChange =
  /** Nothing: the link already wanted it, or did not. */
  | "unchanged"
  /** Recorded; `before` is who held it before, the table's entry now holds the rest. */
  | "changed"
  /** Refused: the link would want more than its bound. */
  | "overLimit";

/** @internal */
export class InterestTable {
  /** (scope, topic) → the links whose far sides want it; arrays replaced, never mutated. */
  readonly #holders = new Map<Scope, Map<Topic, readonly Link[]>>();
  /** Link → what its far side wants. */
  readonly #byLink = new Map<Link, LinkInterest>();

  /** The links whose far sides want (scope, topic); a stable snapshot. */
  holders(scope: Scope, topic: Topic): readonly Link[] | undefined {
    return this.#holders.get(scope)?.get(topic);
  }

  /** Every (scope, topic) with a holder, and its holders. */
  *entries(): IterableIterator<[Scope, Topic, readonly Link[]]> {
    for (const [scope, topics] of this.#holders) for (const [topic, holders] of topics) yield [scope, topic, holders];
  }

  /** Everything `link`'s far side wants. */
  of(link: Link): InterestKey[] {
    const keys: InterestKey[] = [];
    const interest = this.#byLink.get(link);
    if (interest !== undefined) for (const [scope, topics] of interest.topics) for (const topic of topics) keys.push([scope, topic]);
    return keys;
  }

  /** Records that `link`'s far side does (or no longer does) want (scope, topic). */
  set(link: Link, scope: Scope, topic: Topic, on: boolean): InterestChange {
    let interest = this.#byLink.get(link);
    const has = interest?.topics.get(scope)?.has(topic) ?? false;
    if (has === on) return "unchanged";
    const size = scope.length + topic.length;
    if (on) {
      if (interest === undefined) this.#byLink.set(link, (interest = { topics: new Map(), count: 0, bytes: 0 }));
      if (interest.count >= MAX_INTEREST_PER_LINK || interest.bytes + size > MAX_INTEREST_BYTES_PER_LINK) return "overLimit";
      let topics = interest.topics.get(scope);
      if (topics === undefined) interest.topics.set(scope, (topics = new Set()));
      topics.add(topic);
      interest.count++;
      interest.bytes += size;
    } else {
      const linkInterest = interest as LinkInterest;
      const topics = linkInterest.topics.get(scope) as Set<Topic>;
      topics.delete(topic);
      if (topics.size === 0) linkInterest.topics.delete(scope);
      linkInterest.count--;
      linkInterest.bytes -= size;
      if (linkInterest.count === 0) this.#byLink.delete(link);
    }
    const before = this.#holders.get(scope)?.get(topic) ?? [];
    const after = on ? [...before, link] : before.filter((holder) => holder !== link);
    let topics = this.#holders.get(scope);
    if (after.length !== 0) {
      if (topics === undefined) this.#holders.set(scope, (topics = new Map()));
      topics.set(topic, after);
    } else if (topics !== undefined) {
      topics.delete(topic);
      if (topics.size === 0) this.#holders.delete(scope);
    }
    return "changed";
  }
}
