/**
 * Drop reports: how what a process drops reaches its host root's `relay.stats()`.
 *
 * Every process below the root (a cluster worker, an attached child) sends its parent the
 * totals of what it and everything below it dropped, in a `["d", totals]` frame, whenever
 * they changed: {@link REPORT_INTERVAL_MS} after a change at the latest, and before each flush
 * request, so that once a flush resolved the root counts what was dropped before it. Totals,
 * not increments: a report that is late or replaced loses nothing, and none is counted twice.
 * The parent keeps the last totals of each link below it, adds them to its own, and keeps
 * them when the link goes (what was dropped stays dropped). Worker threads report through a
 * shared counter instead (see `reportDropsTo` in link.ts).
 */
import type { Link } from "./links/link.js";

/** How often, at most, a process tells its parent what it dropped, in milliseconds. */
export const REPORT_INTERVAL_MS = 100;

/** What a drop report carries, in this order (as many as the wire's DROP_TOTALS, frames.ts). */
export const REPORTED = ["droppedQueueFull", "droppedMalformed", "droppedUndecodable", "droppedUnsendable"] as const;

/** One of the counters a drop report carries. */
export type ReportedCounter = (typeof REPORTED)[number];

/** The totals of a drop report, in the order of {@link REPORTED}. */
export type DropTotals = readonly number[];

/** @internal The reports of the processes below this one, by link. */
export class DropReports {
  /** The last totals each open link reported. */
  readonly #byLink = new Map<Link, DropTotals>();
  /** The last totals of links that closed, summed. */
  readonly #gone: number[] = REPORTED.map(() => 0);

  /** Takes `link`'s report: its totals replace what it said before. */
  take(link: Link, totals: DropTotals): void {
    this.#byLink.set(link, totals.slice(0, REPORTED.length));
  }

  /**
   * `link` closed, or its hub said bye: what it reported stays counted; a hub that starts
   * there later reports from zero.
   */
  settle(link: Link): void {
    const totals = this.#byLink.get(link);
    if (totals === undefined) return;
    this.#byLink.delete(link);
    for (let i = 0; i < REPORTED.length; i++) this.#gone[i] = (this.#gone[i] as number) + (totals[i] as number);
  }

  /** Adds every report into `counters`. */
  addTo(counters: Record<ReportedCounter, number>): void {
    for (const totals of [this.#gone, ...this.#byLink.values()]) {
      for (let i = 0; i < REPORTED.length; i++) counters[REPORTED[i] as ReportedCounter] += totals[i] as number;
    }
  }
}

/** @internal Tells the parent, when they changed, the totals of what this process dropped. */
export class DropReporter {
  /** The totals last sent, to tell whether they changed. */
  #sent: DropTotals = REPORTED.map(() => 0);
  #timer: NodeJS.Timeout | undefined;
  readonly #totals: () => Record<ReportedCounter, number>;
  readonly #send: (totals: DropTotals) => void;

  /**
   * @param totals - what this process and everything below it dropped so far
   * @param send - sends a drop report to the parent
   */
  constructor(totals: () => Record<ReportedCounter, number>, send: (totals: DropTotals) => void) {
    this.#totals = totals;
    this.#send = send;
  }

  /** Starts looking for changes every {@link REPORT_INTERVAL_MS}. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.report(), REPORT_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Stops looking (the link to the parent is gone). A new parent hears totals from zero again. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sent = REPORTED.map(() => 0);
  }

  /** Sends the totals now if they changed since they were last sent. */
  report(): void {
    const counters = this.#totals();
    const totals = REPORTED.map((name) => counters[name]);
    if (totals.every((total, i) => total === this.#sent[i])) return;
    this.#sent = totals;
    this.#send(totals);
  }
}
