/**
 * PressureWatch: the links of one hub that went over their high-water mark, until they drain;
 * what `router.drained()` waits on, and where slow-consumer episodes are reported.
 *
 * Links tell the watch when they go over half of a bound or drop a message (see Link's
 * "Pressure"). The watch then looks at them every millisecond — links hear of progress in
 * different ways (a pipe's queue shrinking, a far thread's counter, an acknowledgement) and
 * none of them announces it — and lets a link go once it holds under a quarter of its bounds,
 * which also ends its episode: its next drop warns again.
 *
 * A waiter in {@link PressureWatch.drained} is released when every watched link has drained,
 * or is *stuck*: dropping already (a slow consumer, whose messages are lost whether the
 * publisher waits or not), or has not taken in anything for {@link STUCK_MS}. A stopped
 * process must never stall a producer that waits for drain, as it must not stall a flush.
 */
import type { Link } from "./links/link.js";

/** How long a watched link may take in nothing before waiters stop waiting for it, in milliseconds. */
export const STUCK_MS = 1000;
/** How often watched links are looked at, in milliseconds. */
const WATCH_INTERVAL_MS = 1;

/** What the watch knows of one watched link. */
interface Watched {
  /** Messages plus bytes it held when last seen to make progress. */
  held: number;
  /** When it was last seen to make progress (`performance.now()`). */
  since: number;
  /** Whether it took nothing in for {@link STUCK_MS}: waiters pass it by until it makes progress. */
  stuck: boolean;
}

/** @internal */
export class PressureWatch {
  readonly #links = new Map<Link, Watched>();
  /** Resolvers of `drained()` calls still waiting. */
  #waiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Told when a watched link drained. */
  readonly #drained: (link: Link) => void;

  constructor(drained: (link: Link) => void) {
    this.#drained = drained;
  }

  /** Starts watching `link` (it went over its high-water mark, or `dropped` a message). */
  watch(link: Link, dropped: boolean): void {
    if (dropped) warnSlowConsumer(link);
    if (!this.#links.has(link)) this.#links.set(link, { held: holding(link), since: performance.now(), stuck: false });
    this.#arm();
  }

  /** Stops watching a link that closed. */
  forget(link: Link): void {
    this.#links.delete(link);
    this.#check();
  }

  /**
   * Resolves once no link of this hub is over its high-water mark, but for links that are
   * stuck (see the module docs). Resolves at once when none is watched.
   */
  drained(): Promise<void> {
    // Progress is judged from now on: a link that was filling while the publisher published
    // made none that could be seen, and is not stuck for that. One already stuck stays so
    // until it takes something in: a producer waiting on a stopped process each time
    // `publish` says so must not wait a second each time.
    const now = performance.now();
    for (const [link, watched] of this.#links) {
      if (watched.stuck) continue;
      watched.held = holding(link);
      watched.since = now;
    }
    if (!this.#holdsBack(now)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#waiters.push(resolve);
      this.#arm();
    });
  }

  /** Whether a watched link holds waiters back: it is neither drained, dropping, nor stuck. */
  #holdsBack(now: number): boolean {
    let holds = false;
    for (const [link, watched] of this.#links) {
      if (!watched.stuck && now - watched.since >= STUCK_MS) watched.stuck = true;
      if (!link.inEpisode && !watched.stuck && !link.isClosed && link.level !== "drained") holds = true;
    }
    return holds;
  }

  #arm(): void {
    if (this.#timer === undefined) this.#timer = setTimeout(() => this.#tick(), WATCH_INTERVAL_MS);
    // A program awaiting drain expects an answer: the timer then holds the event loop open.
    if (this.#waiters.length !== 0) this.#timer.ref();
    else this.#timer.unref();
  }

  #tick(): void {
    this.#timer = undefined;
    this.#check();
    if (this.#links.size !== 0) this.#arm();
  }

  #check(): void {
    const now = performance.now();
    const drained: Link[] = [];
    for (const [link, watched] of this.#links) {
      if (link.isClosed || link.level === "drained") {
        link.watched = false;
        link.inEpisode = false;
        this.#links.delete(link);
        if (!link.isClosed) drained.push(link);
        continue;
      }
      const held = holding(link);
      if (held < watched.held) {
        watched.held = held;
        watched.since = now;
        watched.stuck = false;
      }
    }
    // Told after the walk: a link told may be watched again at once.
    for (const link of drained) this.#drained(link);
    if (this.#waiters.length === 0 || this.#holdsBack(now)) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** What `link` holds, messages and bytes together: it made progress when this went down. */
function holding(link: Link): number {
  return link.messagesHeld + link.bytesHeld;
}

/** Warns, once per episode, that messages for `link` are being dropped. */
function warnSlowConsumer(link: Link): void {
  const { maxQueue, maxQueueBytes } = link.bounds;
  if (!link.isFull) {
    // The channel itself refused (a broker client at its own limit, such as Redis's maxPending).
    process.emitWarning(
      `roar: slow consumer: ${link.label} refused messages at its own limit: they are dropped and counted in dropped.queueFull ` +
        "until it takes them again. A publisher can wait for `router.drained()` when `publish()` returns false.",
      { type: "RoarWarning", code: "ERR_ROAR_SLOW_CONSUMER" },
    );
    return;
  }
  process.emitWarning(
    `roar: slow consumer: ${link.label} holds ${link.messagesHeld} messages (${link.bytesHeld} bytes) it has not taken in, ` +
      `the link's bound (maxQueue ${maxQueue}, maxQueueBytes ${maxQueueBytes}): messages for it are dropped and counted ` +
      "in dropped.queueFull until it catches up. A publisher can wait for `router.drained()` when `publish()` returns false.",
    { type: "RoarWarning", code: "ERR_ROAR_SLOW_CONSUMER" },
  );
}
