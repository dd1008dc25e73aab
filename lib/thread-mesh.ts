/**
 * ThreadMesh: how the threads of one process reach each other directly.
 *
 * A main thread introduces each thread that joins to every thread it has: it makes a
 * `MessageChannel` per pair and hands one end to each side in a peer frame, with what the
 * other side is known to want and its doorbell. A worker thread keeps every link it has
 * (to its main thread and to its peers) in one array and reads, before each publish, one
 * shared doorbell that every link into it rings after writing: one atomic read says whether
 * anything waits for it at all, however many threads there are.
 */
import { MessageChannel } from "node:worker_threads";
import type { Link, LinkBounds } from "./links/link.js";
import { createDoorbell, createPortCounters, PortLink } from "./links/port-link.js";
import type { InterestKey, PeerFrame } from "./wire/frames.js";

/** @internal */
export class ThreadMesh {
  /** This thread's doorbell, which every link into it rings (see PortLink). */
  readonly doorbell = createDoorbell();
  #lastRing = 0;
  /** The port links of this thread, replaced (never changed) when one comes or goes. */
  #links: readonly PortLink[] = [];

  /** Counts `link` in what {@link ThreadMesh.pump} reads, if it is a port link. */
  track(link: Link): void {
    if (link instanceof PortLink) this.#links = [...this.#links, link];
  }

  /** Stops counting `link`. */
  untrack(link: Link): void {
    this.#links = this.#links.filter((other) => other !== link);
  }

  /**
   * Takes in what other threads already sent here, on every port link, and with `andSend`,
   * sends what waits in outboxes whose neighbour has caught up — for a thread that loops on
   * `receive()` and never yields.
   */
  pump(andSend: boolean): void {
    if (andSend) for (const link of this.#links) link.flushIfCaughtUp();
    // Senders count a batch on the link before they ring, so a ring seen here means its batch
    // is visible on its link.
    const ring = Atomics.load(this.doorbell, 0);
    if (ring === this.#lastRing) return;
    let complete = true;
    // Taking in a peer frame adds a link (copy on write): go round again until none was added.
    for (let pumped: readonly PortLink[] | undefined; pumped !== this.#links; ) {
      pumped = this.#links;
      for (let i = 0; i < pumped.length; i++) {
        const link = pumped[i] as PortLink;
        if (link.hasUnread && !link.pump()) complete = false;
      }
    }
    if (complete) this.#lastRing = ring;
  }

  /**
   * In a main thread: gives `newcomer`'s thread and each of `others` a direct link to each
   * other. Each learns what the other is known to want; the other's own hello soon confirms it.
   */
  static introduce(newcomer: Link, others: Iterable<Link>, interestOf: (link: Link) => InterestKey[]): void {
    for (const other of others) {
      const { port1, port2 } = new MessageChannel();
      const counters = createPortCounters();
      newcomer.sendControl(["p", 0, port1, counters, interestOf(other), doorbellOf(other)]);
      other.sendControl(["p", 1, port2, counters, interestOf(newcomer), doorbellOf(newcomer)]);
    }
  }

  /** In a worker thread: the link a peer frame hands over. */
  static accept(frame: PeerFrame, bounds: LinkBounds): PortLink {
    const [, side, port, counters, , doorbell] = frame;
    return new PortLink(port, counters, side, bounds, "another worker thread of this process", doorbell);
  }
}

function doorbellOf(link: Link): Int32Array {
  // A main thread makes every thread link with the thread's doorbell (see host.ts).
  return (link as PortLink).farDoorbell as Int32Array;
}
