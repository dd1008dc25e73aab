/**
 * Barrier: flushes and syncs — how a hub learns that what it sent so far was taken in
 * everywhere it matters — coalesced so that no number of requests grows what a hub holds, and
 * bounded in time so that no stopped process or host holds anyone's flush for ever.
 *
 * Two halves, one per direction:
 *  - {@link FlushRequests}, in a hub with an upstream: its own flushes and those its links
 *    below asked for travel up as one `["f", id]` at a time. Requests made while one is under
 *    way wait for the next, which is sent when the answer `["F", id, missing?]` comes: it
 *    covers everything sent before it, so they are all answered by it.
 *  - {@link SyncRounds}, in the hub that runs syncs (a host's root for flushes, any hub for
 *    the syncs it is asked to run): a *round* sends `["s", id]` to the links it must wait for
 *    and completes when all answered `["S", id, missing?]`, when they closed, or after
 *    {@link SYNC_TIMEOUT_MS}, naming those that did not answer. Requests arriving during a
 *    round join the next one. Rounds asked for by different links (another host, which has
 *    its own idea of whom the round must reach) never merge: each such link has its own queue.
 *    And a host's rounds do not wait for each other: up to {@link MAX_HOST_ROUNDS} run at once
 *    for one host. A host's sync can come back to it around a loop of hosts (each round asks
 *    the hosts the asker does not reach); a round queued behind the one that waits for it
 *    would hold both until the timeout. Hop counts end such loops.
 *
 * What waits is bounded by the links, not by the requests: each link has at most one request
 * waiting per queue — a later one replaces it, and its answer, naming the later id, covers
 * the earlier too (links are FIFO). Only the hub's own callers (`router.flush()`) add one
 * waiter each, and each of those has its own timeout.
 */
import type { Link } from "./links/link.js";
import { MAX_MISSING, type Frame } from "./wire/frames.js";

/** How long a sync round waits for a link before it completes without it, in milliseconds. */
export const SYNC_TIMEOUT_MS = 5_000;
/** How long `flush()` waits by default, in milliseconds: longer than a round, whose answer names who did not answer. */
export const DEFAULT_FLUSH_TIMEOUT_MS = 10_000;
/** How many rounds asked for by one host may run at once; later requests coalesce. */
export const MAX_HOST_ROUNDS = 8;

/**
 * Sends a link the answer to its flush or sync: the hub's, which first tells a link whose
 * interest it held back everything it missed — an answer vouches for interest.
 */
export type AnswerLink = (link: Link, frame: Frame) => void;

/** Settles one waiter: with no names, done; with names, those did not answer in time. */
export type Settle = (missing: readonly string[]) => void;

/** A flush made in this thread, by `router.flush()`. */
export interface LocalRequester {
  /** Settles the flush: done, or timed out naming who did not answer. */
  settle: Settle;
  /** Fails the flush (the relay closed under it). */
  fail(error: Error): void;
  /** Whether it is settled already (its own timeout ran out): it then waits for nothing. */
  readonly settled: boolean;
}

/** A request from a link: answered with `[answer, id, missing?]`. */
export interface LinkRequester {
  link: Link;
  id: number;
  answer: "F" | "S";
}

/** Who asked for a flush or sync. */
export type Requester = LocalRequester | LinkRequester;

/**
 * Who waits for one round or request: this thread's callers, and at most one request per link
 * (a later one replaces the earlier, whose answer it covers).
 */
export class Waiters {
  /** This thread's callers. */
  readonly locals: LocalRequester[] = [];
  /** For each link that asked, the id of its latest request and how to answer it. */
  readonly links = new Map<Link, { id: number; answer: "F" | "S" }>();

  get isEmpty(): boolean {
    return this.locals.length === 0 && this.links.size === 0;
  }

  add(requester: Requester): void {
    if ("link" in requester) {
      this.links.set(requester.link, { id: requester.id, answer: requester.answer });
      return;
    }
    // Flushes that gave up (their timeout ran out) while an answer is long in coming are let
    // go now and then: a program that flushes every second against a stopped parent must not
    // grow this list for ever.
    if (this.locals.length >= 1024 && (this.locals.length & 1023) === 0) {
      const live = this.locals.filter((local) => !local.settled);
      this.locals.length = 0;
      this.locals.push(...live);
    }
    this.locals.push(requester);
  }

  /** Every requester, in the order this thread's callers asked, then the links. */
  requesters(): Requester[] {
    const requesters: Requester[] = [...this.locals];
    for (const [link, { id, answer }] of this.links) requesters.push({ link, id, answer });
    return requesters;
  }

  /** Settles every requester: this thread's callers, and each link with `answer`. */
  settle(missing: readonly string[], answer: AnswerLink): void {
    for (const local of this.locals) local.settle(missing);
    for (const [link, request] of this.links) answer(link, answerFrame(request.answer, request.id, missing));
  }
}

function answerFrame(answer: "F" | "S", id: number, missing: readonly string[]): Frame {
  return missing.length === 0 ? [answer, id] : [answer, id, missing.slice(0, MAX_MISSING)];
}

/** @internal Flushes sent up to the upstream hub, one at a time. */
export class FlushRequests {
  /** The request under way: its id and who waits for it. */
  #inFlight: { id: number; waiters: Waiters } | undefined;
  /** Who waits for the next request, sent when the one under way is answered. */
  #next = new Waiters();
  readonly #send: (id: number) => void;
  readonly #newId: () => number;
  readonly #answer: AnswerLink;

  /**
   * @param send - sends `["f", id]` to the upstream hub
   * @param newId - a fresh id
   * @param answer - sends a link its answer
   */
  constructor(send: (id: number) => void, newId: () => number, answer: AnswerLink) {
    this.#send = send;
    this.#newId = newId;
    this.#answer = answer;
  }

  /** Asks the upstream hub for a flush covering everything sent so far. */
  request(requester: Requester): void {
    if (this.#inFlight !== undefined) {
      this.#next.add(requester);
      return;
    }
    const waiters = new Waiters();
    waiters.add(requester);
    this.#start(waiters);
  }

  /** The upstream hub answered request `id`. */
  answered(id: number, missing: readonly string[]): void {
    const inFlight = this.#inFlight;
    // An answer to a request sent to an earlier upstream, or sent twice (see resend): ignored.
    if (inFlight === undefined || inFlight.id !== id) return;
    this.#inFlight = undefined;
    inFlight.waiters.settle(missing, this.#answer);
    if (!this.#next.isEmpty) {
      const next = this.#next;
      this.#next = new Waiters();
      this.#start(next);
    }
  }

  /** Sends the request under way again (the upstream hub may have missed it: it listened late). */
  resend(): void {
    if (this.#inFlight !== undefined) this.#send(this.#inFlight.id);
  }

  /** The upstream is gone: hands back everyone who waited, in the order they asked. */
  takeAll(): Requester[] {
    const requesters = [...(this.#inFlight?.waiters.requesters() ?? []), ...this.#next.requesters()];
    this.#inFlight = undefined;
    this.#next = new Waiters();
    return requesters;
  }

  #start(waiters: Waiters): void {
    const id = this.#newId();
    this.#inFlight = { id, waiters };
    this.#send(id);
  }
}

/** A round under way. */
interface Round {
  readonly id: number;
  /** The links that have not answered yet. */
  readonly waiting: Set<Link>;
  readonly waiters: Waiters;
  /** Who did not answer: links that timed out here, and names from answers of those below. */
  readonly missing: string[];
  readonly timer: NodeJS.Timeout;
  readonly queue: RoundQueue;
}

/** The rounds asked for by one link (or by this hub and the links below it). */
interface RoundQueue {
  /** The link that asks for these rounds, or `undefined` for this hub's own. */
  readonly from: Link | undefined;
  /** Rounds under way: at most one for this hub's own, {@link MAX_HOST_ROUNDS} for a host's. */
  readonly running: Set<Round>;
  next: Waiters;
  /** The host links the latest request crossed, for the round that answers it. */
  hops: number;
}

/** What {@link SyncRounds} needs of its hub. */
export interface RoundHooks {
  /** The links a round asked for by `from` (undefined: this hub or a link below it) must wait for. */
  targets(from: Link | undefined, hops: number): Link[];
  /** Sends the sync request of round `id` to `link`. */
  sendSync(link: Link, id: number, hops: number): void;
  /** A fresh id. */
  newId(): number;
  /** Sends a link its answer. */
  answer: AnswerLink;
  /** A round starts (the hub brings links it does not sync up to date first). */
  starting(): void;
}

/** @internal Sync rounds run by this hub. */
export class SyncRounds {
  readonly #hooks: RoundHooks;
  /** The queue of rounds for each link that asks on its own behalf; `undefined` is this hub's own. */
  readonly #queues = new Map<Link | undefined, RoundQueue>();
  /** Rounds under way, by id, to match answers. */
  readonly #rounds = new Map<number, Round>();

  constructor(hooks: RoundHooks) {
    this.#hooks = hooks;
  }

  /**
   * Runs a round for `requester` — at once, or after the round under way for the same `from`.
   * @param from - the link that asked for a round of its own (another host), or `undefined`
   * @param hops - the host links the request crossed
   */
  sync(from: Link | undefined, hops: number, requester: Requester): void {
    let queue = this.#queues.get(from);
    if (queue === undefined) this.#queues.set(from, (queue = { from, running: new Set(), next: new Waiters(), hops }));
    queue.hops = hops;
    queue.next.add(requester);
    if (queue.running.size < (from === undefined ? 1 : MAX_HOST_ROUNDS)) this.#start(queue);
  }

  /** `link` answered round `id`, naming what did not answer below it, if anything. */
  answered(id: number, link: Link, missing: readonly string[]): void {
    const round = this.#rounds.get(id);
    if (round === undefined || !round.waiting.delete(link)) return;
    for (const name of missing) if (round.missing.length < MAX_MISSING) round.missing.push(name);
    if (round.waiting.size === 0) this.#complete(round);
  }

  /** `link` closed, or is away: no round waits for it any longer; rounds it asked for are dropped. */
  linkGone(link: Link): void {
    for (const round of [...this.#rounds.values()]) {
      if (round.waiting.delete(link) && round.waiting.size === 0) this.#complete(round);
    }
    for (const queue of this.#queues.values()) queue.next.links.delete(link);
    const own = this.#queues.get(link);
    if (own !== undefined && own.running.size === 0) this.#queues.delete(link);
  }

  /** Rounds asked for by `link` that wait for it again (it came back): their requests are sent anew. */
  resendTo(link: Link): void {
    for (const round of this.#rounds.values()) if (round.waiting.has(link)) this.#hooks.sendSync(link, round.id, round.queue.hops);
  }

  /** Stops every round: nobody is answered (the hub closed). */
  close(): void {
    for (const round of this.#rounds.values()) clearTimeout(round.timer);
    this.#rounds.clear();
    this.#queues.clear();
  }

  #start(queue: RoundQueue): void {
    this.#hooks.starting();
    const waiters = queue.next;
    queue.next = new Waiters();
    const waiting = new Set(this.#hooks.targets(queue.from, queue.hops));
    const id = this.#hooks.newId();
    const timer = setTimeout(() => this.#timedOut(id), SYNC_TIMEOUT_MS);
    // A round never keeps a process alive: its requesters' own timeouts or callers do.
    timer.unref();
    const round: Round = { id, waiting, waiters, missing: [], timer, queue };
    queue.running.add(round);
    if (waiting.size === 0) {
      // Nothing to wait for: answered after the current job, as a round trip would be.
      queueMicrotask(() => this.#complete(round));
      return;
    }
    this.#rounds.set(id, round);
    for (const link of waiting) this.#hooks.sendSync(link, id, queue.hops);
  }

  #timedOut(id: number): void {
    const round = this.#rounds.get(id);
    if (round === undefined) return;
    for (const link of round.waiting) if (round.missing.length < MAX_MISSING) round.missing.push(link.label);
    this.#complete(round);
  }

  #complete(round: Round): void {
    clearTimeout(round.timer);
    this.#rounds.delete(round.id);
    const queue = round.queue;
    queue.running.delete(round);
    round.waiters.settle(round.missing, this.#hooks.answer);
    if (!queue.next.isEmpty) this.#start(queue);
    // A queue of another link's rounds goes when idle: a table no peer can grow.
    else if (queue.from !== undefined && queue.running.size === 0) this.#queues.delete(queue.from);
  }
}
