/**
 * Join: how a hub becomes part of the tree of its host — its link towards the root (the
 * *upstream*), what it does while it does not yet know what lies beyond that link, and where
 * its flushes go meanwhile.
 *
 * A hub is in one {@link JoinState} at a time, and moves between them only thus:
 *
 *     from               what happens                                    to
 *     awaitingParent     the upstream link is made (linked)              joining
 *     awaitingParent     no parent answered in time (stopExpecting)      root
 *     root               a parent's hello comes after all (linked)       joining
 *     joining            the upstream hub says hello (upstreamHello)     welcomed
 *     joining            a cluster primary never answers (silent)        silent
 *     silent, welcomed   the upstream hub says hello                     welcomed
 *     linked states      the upstream hub says bye (lost, then silent)   silent
 *     linked states      the upstream link closes (lost)                 awaitingParent
 *
 * Invariants:
 *  - `upstream` is set exactly in the linked states (`joining`, `welcomed`, `silent`);
 *  - the dispatchers hand the hub every message (`forwardAll`) exactly while the hub is not
 *    closed and either does not know what lies beyond it (`awaitingParent`, `joining`) or is a
 *    thread whose main thread, still joining its own parent, asked for everything; this is
 *    derived in one place, {@link Join}'s `#set`, after every transition;
 *  - messages held while joining (`#early`) are at most `maxQueue`; one more is dropped and
 *    counted. They are routed, sent up, or forgotten on the transition out of joining;
 *  - flushes made while no upstream can take them wait in `#waiting`, and go up (or to a sync
 *    round here) on the transition that settles where they belong.
 *
 * Races handled (each at the branch that handles it):
 *  - flush requests sent upstream before the upstream hub listened are sent again when it
 *    says hello (see {@link Join.upstreamHello});
 *  - a thread that publishes before its main thread welcomed it (see {@link Join.takesPublish});
 *  - a process still joining its parent (see {@link Join.sendUp});
 *  - a parent that never answers (see {@link Join.stopExpecting}, {@link Join.silent});
 *  - an upstream that goes away, by closing or by saying bye (see {@link Join.lost}; after a
 *    bye a process goes on to `silent`, see Hub's #onBye).
 */
import { FlushRequests, SYNC_TIMEOUT_MS, Waiters, type AnswerLink, type Requester } from "./barrier.js";
import { RoarError } from "./errors.js";
import type { Link, LinkBounds } from "./links/link.js";
import type { Envelope } from "./wire/envelope.js";

/**
 * Where a hub stands towards the root of its host:
 *  - `root`: it has no parent (a lone process, a cluster primary, an isolated host, or a
 *    forked child whose parent never said hello);
 *  - `awaitingParent`: it expects an upstream link it does not have (a forked child before
 *    its parent's hello, a thread between two attempts to join its main thread);
 *  - `joining`: linked up, but the upstream hub has not said hello (since the link was made,
 *    or since it said bye): the hub does not know what lies beyond it;
 *  - `welcomed`: the upstream hub said hello; `wantsAll` when it asked this thread for
 *    everything, as a main thread still joining its own parent does;
 *  - `silent`: a cluster worker whose primary never answered (it runs no roar), or a process
 *    whose parent's relay said bye: the hub routes as a root would until a hello comes, rather
 *    than send everything up for ever.
 */
export type JoinState =
  | { readonly kind: "root" }
  | { readonly kind: "awaitingParent" }
  | { readonly kind: "joining"; readonly upstream: Link }
  | { readonly kind: "welcomed"; readonly upstream: Link; readonly wantsAll: boolean }
  | { readonly kind: "silent"; readonly upstream: Link };

/** What {@link Join} needs of its hub. */
export interface JoinHooks {
  /** Sets whether the dispatchers hand the hub every message, wanted beyond or not. */
  forwardAll(on: boolean): void;
  /** Tells this process's threads again what to send it (a hello with reply set). */
  greetThreads(): void;
  /** Runs a sync round here, as a root does, for `requester`. */
  syncHere(requester: Requester): void;
  /** Routes a message that was held while joining, as if published just then. */
  route(envelope: Envelope): void;
  /** Sends `envelope` on `link`, in the link's form. */
  send(link: Link, envelope: Envelope): void;
  /** A message held while joining was dropped: the queue of held messages was full. */
  droppedHeld(): void;
  /** Called just before a flush request goes up. */
  beforeFlush(): void;
  /** Sends a link below the answer to its flush (see barrier.ts). */
  answer: AnswerLink;
  /** A fresh id for a flush request. */
  newId(): number;
}

/** @internal The join state of one hub, with what waits on it. */
export class Join {
  /** Where the hub stands towards the root; changed only by `#set`. */
  #state: JoinState;
  /** A worker thread's hub: it holds what it publishes until its main thread has welcomed it. */
  readonly #isThread: boolean;
  /** Messages published here while joining, before they could be routed; bounded by maxQueue. */
  #early: Envelope[] = [];
  /** Flushes waiting for an upstream that can take them (a thread whose main thread has no relay yet). */
  #waiting = new Waiters();
  /** Flushes sent to the upstream hub, one at a time (see barrier.ts). */
  readonly #flushUp: FlushRequests;
  /** Whether the hub closed: it forwards nothing more, and flushes left fail. */
  #closed = false;
  /** The bounds of what waits here (shared with the hub's links). */
  readonly #bounds: LinkBounds;
  readonly #hooks: JoinHooks;

  constructor({ expectsUpstream, isThread, bounds, hooks }: { expectsUpstream: boolean; isThread: boolean; bounds: LinkBounds; hooks: JoinHooks }) {
    this.#isThread = isThread;
    this.#bounds = bounds;
    this.#hooks = hooks;
    this.#flushUp = new FlushRequests(
      (id) => {
        hooks.beforeFlush();
        this.upstream?.sendControl(["f", id]);
      },
      hooks.newId,
      hooks.answer,
    );
    this.#state = expectsUpstream ? { kind: "awaitingParent" } : { kind: "root" };
    this.#set(this.#state);
  }

  /** Where the hub stands now. */
  get state(): JoinState {
    return this.#state;
  }

  /** The link towards the root, in the linked states. */
  get upstream(): Link | undefined {
    const state = this.#state;
    return state.kind === "joining" || state.kind === "welcomed" || state.kind === "silent" ? state.upstream : undefined;
  }

  /** Whether the hub closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the hub does not know what lies beyond it: it waits for its upstream hub's hello, or for an upstream at all. */
  get joining(): boolean {
    return this.#state.kind === "awaitingParent" || this.#state.kind === "joining";
  }

  #set(state: JoinState): void {
    this.#state = state;
    // The one place forwardAll is derived from the state.
    this.#hooks.forwardAll(!this.#closed && (this.joining || (state.kind === "welcomed" && state.wantsAll)));
  }

  /**
   * The link towards the root is made (also for a root whose parent said hello after all):
   * the hub joins on it. `greet` says hello on it; a
   * process then sends up, behind its hello, what it published and the flushes made while it
   * had no upstream (a thread holds both until its main thread welcomes it).
   */
  linked(link: Link, greet: () => void): void {
    this.#set({ kind: "joining", upstream: link });
    greet();
    if (this.#isThread) return;
    const early = this.#early;
    this.#early = [];
    for (const envelope of early) this.#hooks.send(link, envelope);
    this.#sendWaitingFlushes();
  }

  /**
   * Gives up waiting for an upstream link (a forked child whose parent never said hello):
   * the hub is a root after all. What waited for the upstream is settled here.
   */
  stopExpecting(): void {
    if (this.#state.kind !== "awaitingParent") return;
    this.#set({ kind: "root" });
    // Held for a parent that turned out not to run roar: nothing beyond this process wanted them.
    this.#early = [];
    this.#hooks.greetThreads();
    const waiting = this.#waiting;
    this.#waiting = new Waiters();
    for (const requester of waiting.requesters()) this.#hooks.syncHere(requester);
  }

  /**
   * The upstream hub has not said hello in the time a running relay answers (a cluster
   * primary that never loads roar): stop sending everything up and route as a root. A hello
   * that comes later welcomes this hub as usual.
   * @returns `false` when the upstream hub did say hello
   */
  silent(): boolean {
    const state = this.#state;
    if (state.kind !== "joining" || this.#closed) return false;
    this.#set({ kind: "silent", upstream: state.upstream });
    this.#early = [];
    this.#hooks.greetThreads();
    const requesters = [...this.#flushUp.takeAll(), ...this.#waiting.requesters()];
    this.#waiting = new Waiters();
    for (const requester of requesters) this.#hooks.syncHere(requester);
    return true;
  }

  /**
   * The upstream hub said hello: it says what lies beyond it, so the hub no longer sends it
   * everything — unless it asks for everything (`wantsAll`: a thread's main thread still
   * joining its parent). `takeIn` takes in the interest the hello carries; then, if this
   * hello welcomes the hub, what waited for it goes.
   */
  upstreamHello(wantsAll: boolean, takeIn: () => void): void {
    const state = this.#state;
    if (state.kind !== "joining" && state.kind !== "welcomed" && state.kind !== "silent") return takeIn();
    const welcome = state.kind !== "welcomed";
    this.#set({ kind: "welcomed", upstream: state.upstream, wantsAll: this.#isThread && wantsAll });
    takeIn();
    if (welcome) {
      // Now this hub knows what lies beyond it: route what was published while joining; then a
      // thread sends the flushes made meanwhile behind it, and a process tells its threads
      // exactly what to send it instead of everything.
      const early = this.#early;
      this.#early = [];
      for (const envelope of early) this.#hooks.route(envelope);
      if (this.#isThread) this.#sendWaitingFlushes();
      else this.#hooks.greetThreads();
    }
    // Race: flushes sent before the upstream hub listened may be lost: send them again (a
    // repeated answer is ignored).
    this.#flushUp.resend();
  }

  /**
   * The upstream hub is gone: its link closed, or (`stillLinked`) it said bye on a channel
   * that outlives it, where a later hub says hello again. Flushes it had not answered fail
   * with ERR_ROAR_CLOSED — unless it never welcomed us (a thread's join that failed), in
   * which case they were never taken in and wait for the next upstream.
   */
  lost(stillLinked: boolean): void {
    const state = this.#state;
    const error = this.#closed
      ? new RoarError("ERR_ROAR_CLOSED", "the relay closed before the flush completed")
      : state.kind === "welcomed"
        ? new RoarError("ERR_ROAR_CLOSED", "the parent relay closed before the flush completed")
        : undefined;
    for (const requester of this.#flushUp.takeAll()) {
      // Requests from links below wait for the next upstream (they time out where they were
      // made); this thread's own fail, unless the upstream never took them in.
      if (error !== undefined && !("link" in requester)) requester.fail(error);
      else if (!this.#closed) this.#waiting.add(requester);
    }
    const upstream = this.upstream;
    this.#set(stillLinked && upstream !== undefined ? { kind: "joining", upstream } : { kind: "awaitingParent" });
  }

  /** The upstream hub answered flush request `id`. */
  flushAnswered(id: number, missing: readonly string[]): void {
    this.#flushUp.answered(id, missing);
  }

  /**
   * A message published here while the dispatchers forward everything.
   * @returns whether it is held (then nothing more is done with it now); otherwise it is
   * routed as usual, having gone up too
   */
  takesPublish(envelope: Envelope, holders: readonly Link[] | undefined): boolean {
    if (this.#isThread && this.#state.kind !== "welcomed") {
      // Race: a thread that publishes before its main thread welcomed it (a synchronous
      // tinypool task) holds those messages until the main thread's hello, which comes after
      // its introductions to every other thread (it brings what lies beyond and the direct
      // links to the other threads): then it routes them as if published just then, and
      // nothing is sent to a thread before the link to it exists.
      this.#hold(envelope);
      return true;
    }
    // A joining process sends everything up, and so does a thread whose main thread asked
    // for everything while it joins its parent: the hubs above know who wants what.
    this.sendUp(envelope, holders);
    return false;
  }

  /** A message from one of this main thread's threads: while joining, it goes up too. */
  fromThread(envelope: Envelope, holders: readonly Link[] | undefined): void {
    if (!this.#isThread && this.joining) this.sendUp(envelope, holders);
  }

  /**
   * Race: a process still joining its parent does not know what lies beyond it: it sends all
   * it publishes, and all its threads send it, up (its hello asks its threads for
   * everything), and says exactly what it wants once its parent's hello arrives. With no
   * upstream link yet, the message is held until there is one.
   */
  sendUp(envelope: Envelope, holders: readonly Link[] | undefined): void {
    const upstream = this.upstream;
    if (upstream === undefined) this.#hold(envelope);
    else if (holders === undefined || !holders.includes(upstream)) this.#hooks.send(upstream, envelope);
  }

  /**
   * Resolves once all that this thread sent so far has reached the root, and the root synced;
   * rejects with ERR_ROAR_TIMEOUT after `timeout` ms, or when the root's sync timed out,
   * naming what did not answer.
   */
  flush(timeout: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      // Links never keep a thread alive, but a program awaiting a flush expects an answer:
      // this timer holds the event loop open until it comes, or until it gives up.
      const timer = setTimeout(() => {
        settled = true;
        reject(new RoarError("ERR_ROAR_TIMEOUT", `flush() did not complete within ${timeout} ms: ${this.whoDelays()} did not answer`));
      }, timeout);
      this.request({
        get settled() {
          return settled;
        },
        settle: (missing) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (missing.length === 0) resolve();
          else reject(new RoarError("ERR_ROAR_TIMEOUT", `flush() could not complete: ${missing.join(", ")} did not answer within ${SYNC_TIMEOUT_MS} ms`));
        },
        fail: (error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  /** Asks for a flush: of the upstream hub, or, at the root, of a sync round here. */
  request(requester: Requester): void {
    const state = this.#state;
    if (state.kind === "silent" || state.kind === "root") this.#hooks.syncHere(requester);
    // A joining thread sends its flush after what it held back, once welcomed.
    else if (state.kind === "welcomed" || (state.kind === "joining" && !this.#isThread)) this.#flushUp.request(requester);
    else this.#waiting.add(requester);
  }

  /** What a flush that timed out waited for, in words. */
  whoDelays(): string {
    const upstream = this.upstream;
    if (upstream !== undefined) return upstream.label;
    if (this.#state.kind === "awaitingParent") return this.#isThread ? "the main thread's relay (none is running)" : "the parent process's relay (not linked yet)";
    return "this host's links";
  }

  /**
   * The hub closes: it forwards nothing more; `closeLinks` closes its links (the upstream's
   * flushes fail as it goes), then flushes that waited for an upstream fail too.
   */
  close(closeLinks: () => void): void {
    this.#closed = true;
    this.#set(this.#state);
    closeLinks();
    const error = new RoarError("ERR_ROAR_CLOSED", "the relay closed before the flush completed");
    for (const local of this.#waiting.locals) local.fail(error);
    this.#waiting = new Waiters();
  }

  #hold(envelope: Envelope): void {
    if (this.#early.length < this.#bounds.maxQueue) this.#early.push(envelope);
    else this.#hooks.droppedHeld();
  }

  #sendWaitingFlushes(): void {
    const waiting = this.#waiting;
    this.#waiting = new Waiters();
    for (const requester of waiting.requesters()) this.#flushUp.request(requester);
  }
}
