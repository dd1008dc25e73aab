/**
 * HostTopology: what a host's root hub knows and says of the hosts around it — which hosts
 * it sends to itself ("known": it has had their hello), which hosts each neighbour sends to
 * itself (its `neighbours`, from its "n" frames), and which host links are away.
 *
 * Hosts link in a mesh, a star or a tree. Routing never passes a message from a host to a
 * host that the first reaches itself (see `reachedDirectly` in routing.ts), and interest is
 * announced to a host as seen from it: so when the set of hosts one side reaches changes, the
 * other side must hear it, and what it is told it reaches through this hub changes with it.
 *
 * Invariants:
 *  - every host link hears, in an "n" frame, the node ids of the hosts this hub sends to
 *    itself (those whose hello it has had, away ones included: what it sends them waits for
 *    them), after each change of that set;
 *  - a host whose "n" frame arrives is sent this hub's interest anew, as seen from it.
 *
 * Races handled:
 *  - a host that becomes known (its first hello): its neighbours must stop passing on what
 *    this hub sends them for it, and learn so before any message this hub sends them next
 *    ({@link HostTopology.greeted});
 *  - a host link whose connection drops is away (see host-link.ts): its interest stays, syncs
 *    stop waiting for it, and when it is back both sides say hello anew and syncs still
 *    waiting for it are sent again ({@link HostTopology.away}, {@link HostTopology.back}).
 */
import type { SyncRounds } from "./barrier.js";
import type { InterestAnnouncer } from "./announcer.js";
import type { HostLink } from "./links/host-link.js";
import type { Link } from "./links/link.js";
import { isHost } from "./routing.js";

/** @internal The host links of one hub, as a topology. */
export class HostTopology {
  /** The hub's open links (read only here). */
  readonly #links: ReadonlySet<Link>;
  /** Says hello to a link, with this hub's interest as seen from it. */
  readonly #announcer: InterestAnnouncer;
  /** The hub's sync rounds, which stop and resume waiting for hosts that go away and come back. */
  readonly #rounds: SyncRounds;

  constructor(hub: { links: ReadonlySet<Link>; announcer: InterestAnnouncer; rounds: SyncRounds }) {
    this.#links = hub.links;
    this.#announcer = hub.announcer;
    this.#rounds = hub.rounds;
  }

  /** `link` said hello: a host not known before is one this hub now sends to itself. */
  greeted(link: Link): void {
    if (!isHost(link) || link.known) return;
    // From now on this hub sends to that host itself: its neighbours must stop passing on
    // what this hub sends them for it — and learn so before any message it sends them next.
    link.known = true;
    this.#neighboursChanged();
  }

  /**
   * `link` said which hosts it sends to itself (an "n" frame).
   * @returns `false` when `link` is not a host link (the frame breaks the protocol)
   */
  neighbours(link: Link, nodes: readonly string[]): boolean {
    if (!isHost(link)) return false;
    link.neighbours = new Set(nodes);
    // What this hub reaches for the far side depends on the far side's neighbours.
    this.#announcer.hello(link, 1);
    return true;
  }

  /** A host link's connection dropped: it is kept (with its interest) but not waited for. */
  away(link: HostLink): void {
    link.greeted = false;
    this.#rounds.linkGone(link);
  }

  /**
   * A host link has a connection again (after being away, or on a newer connection that
   * replaced its old one): both sides say what they want anew, and syncs still waiting for
   * it, whose request or answer the old connection may have lost, are sent again.
   */
  back(link: HostLink): void {
    if (!this.#links.has(link)) return;
    this.#announcer.hello(link, 0);
    link.sendControl(["n", this.#hostNodes()]);
    this.#rounds.resendTo(link);
  }

  /** `link` closed: if it went to a host, the others learn this hub no longer sends to it. */
  closed(link: Link): void {
    if (isHost(link)) this.#neighboursChanged();
  }

  /**
   * The node ids of the hosts this hub sends to itself: those whose hello it has had, away
   * ones included (what it sends them waits for them).
   */
  #hostNodes(): string[] {
    const nodes: string[] = [];
    for (const link of this.#links) if (isHost(link) && link.known) nodes.push(link.node);
    return nodes;
  }

  /** Tells every host link which hosts this hub is linked to. */
  #neighboursChanged(): void {
    const nodes = this.#hostNodes();
    for (const link of this.#links) if (isHost(link)) link.sendControl(["n", nodes]);
  }
}
