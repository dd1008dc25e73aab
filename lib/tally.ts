/**
 * Tally: a hub's counters — what its links counted, what the hub itself dropped, what its
 * worker threads dropped (through their shared counters) and what the processes below it
 * reported (see stats.ts) — summed for `relay.stats()`.
 *
 * Invariants:
 *  - nothing counted is lost or counted twice when a link closes: its counters are folded
 *    into the hub's own then, and so is what its thread's shared drop counter holds — a
 *    thread brings a new counter each time it joins (see host.ts), so none is folded twice;
 *  - a process below that goes, or whose hub says bye, keeps its last report counted.
 */
import { addCounters, zeroCounters, type Link, type LinkCounters } from "./links/link.js";
import { DropReports, type DropTotals } from "./stats.js";

/** Counters of a hub, summed over its links (closed ones included). */
export interface HubCounters extends LinkCounters {
  /** Payloads from other processes that could not be decoded. */
  droppedUndecodable: number;
  /** Messages not passed on because they had crossed MAX_HOST_HOPS host links (a ring of hosts). */
  droppedLooped: number;
}

/** @internal The counters of one hub. */
export class Tally {
  /** What links that closed counted, and what the hub itself dropped; routing counts here. */
  readonly own: HubCounters = { ...zeroCounters(), droppedUndecodable: 0, droppedLooped: 0 };
  /** What the processes below this one reported they dropped (see stats.ts). */
  readonly #reports = new DropReports();

  /** Counters summed over `links` (the open ones) and every link this hub has had. */
  total(links: Iterable<Link>): HubCounters {
    const total = { ...this.own };
    this.#reports.addTo(total);
    for (const link of links) {
      addCounters(total, link.counters);
      if (link.farDrops !== undefined) total.droppedQueueFull += Atomics.load(link.farDrops, 0);
    }
    return total;
  }

  /** Takes a drop report from a process below (see stats.ts). */
  report(link: Link, totals: DropTotals): void {
    this.#reports.take(link, totals);
  }

  /** `link`'s hub went (its link closed, or it said bye): what it reported stays counted. */
  settle(link: Link): void {
    this.#reports.settle(link);
  }

  /** `link` closed: what it counted is folded into the hub's own counters. */
  linkClosed(link: Link): void {
    addCounters(this.own, link.counters);
    if (link.farDrops !== undefined) this.own.droppedQueueFull += Atomics.load(link.farDrops, 0);
  }
}
