/**
 * Link: one neighbour of a hub (a thread's port, a process's IPC channel, another host), with
 * an outbox that batches frames and bounds what this process holds for the neighbour.
 *
 * Batching: a frame leaves at once when the neighbour has taken in everything sent before it,
 * so a lone message pays no latency. While the neighbour is behind, frames gather and leave
 * together as soon as it has caught up, at the end of the current job (a microtask), when
 * {@link MAX_BATCH} have gathered, or when the oldest has waited {@link MAX_HOLD_MS} — the
 * rules that let a thread busy in synchronous work, which never reaches a microtask, still
 * send promptly each time it publishes.
 *
 * Bound: what the process really *holds* for the neighbour — the outbox, plus what the channel
 * still keeps in this process (a pipe's write queue in user space, a port's unread messages,
 * a host's messages kept for resending) — is at most {@link LinkBounds} in messages and in
 * bytes. Frames the kernel or the far side already took do not count: a publisher that has
 * not yielded its event loop is not a slow consumer. A message beyond the bound is dropped and
 * counted; the first drop of an *episode* (until the link is back under a quarter of its
 * bounds) is reported once, so the hub can warn. Control frames (hello, interest, flush,
 * sync) are never dropped: losing one would break the link's bookkeeping.
 *
 * Pressure: a link holding half of either bound or more is over its high-water mark; a
 * publisher is told so (`publish()` returns `false`) and may wait for it to drain.
 */
import type { Scope, Topic } from "../types.js";
import { foldMessages, type Frame } from "../wire/frames.js";

/** The most frames one batch carries. */
export const MAX_BATCH = 512;
/** How long, in milliseconds, the oldest gathered frame may wait before its batch leaves. */
export const MAX_HOLD_MS = 1;
/**
 * The default bound of a link in messages: NATS's default limit of pending messages for a slow
 * consumer, large enough to ride out bursts, small enough that a stalled neighbour costs
 * megabytes, not gigabytes.
 */
export const DEFAULT_MAX_QUEUE = 65_536;
/** The default bound of a link in bytes of encoded payloads: NATS's default pending bytes limit. */
export const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;

/**
 * The bounds of what a link may hold for its neighbour. One record is shared by every link a
 * host makes, so options given to a later `startRelay()` apply to the links made before it.
 */
export interface LinkBounds {
  /** Messages held, at most. */
  maxQueue: number;
  /** Bytes of encoded payloads held, at most (values between threads travel unencoded and count as messages only). */
  maxQueueBytes: number;
}

/** Fresh default bounds. */
export function defaultBounds(): LinkBounds {
  return { maxQueue: DEFAULT_MAX_QUEUE, maxQueueBytes: DEFAULT_MAX_QUEUE_BYTES };
}

/** @internal What a link reports to its hub. */
export interface LinkHandler {
  /** Frames arrived (already checked by the link). */
  onFrame(link: Link, frame: Frame): void;
  /** The link is gone; called once. */
  onClose(link: Link): void;
  /**
   * The link went over its high-water mark, or dropped a message (`dropped`, the first drop
   * of an episode): the hub watches it until it drains.
   */
  onPressure(link: Link, dropped: boolean): void;
}

/** Counters of one link. */
export interface LinkCounters {
  /** Messages sent to the neighbour. */
  sent: number;
  /** Messages received from the neighbour. */
  received: number;
  /** Messages dropped because the neighbour had `maxQueue` messages not yet taken in. */
  droppedQueueFull: number;
  /** Frames from the neighbour that were malformed and dropped. */
  droppedMalformed: number;
  /** Messages not sent because they were larger than the neighbour accepts (host links). */
  droppedOversized: number;
  /** Messages sent to a host that went away for good before it acknowledged them (host links). */
  droppedDisconnected: number;
  /** Messages the channel refused to carry (a value structured clone refuses, on a thread link). */
  droppedUnsendable: number;
}

/** Counters that all start at zero. */
export function zeroCounters(): LinkCounters {
  return { sent: 0, received: 0, droppedQueueFull: 0, droppedMalformed: 0, droppedOversized: 0, droppedDisconnected: 0, droppedUnsendable: 0 };
}

/** Adds `counters` into `total`. */
export function addCounters(total: LinkCounters, counters: LinkCounters): void {
  total.sent += counters.sent;
  total.received += counters.received;
  total.droppedQueueFull += counters.droppedQueueFull;
  total.droppedMalformed += counters.droppedMalformed;
  total.droppedOversized += counters.droppedOversized;
  total.droppedDisconnected += counters.droppedDisconnected;
  total.droppedUnsendable += counters.droppedUnsendable;
}

let nextLinkId = 1;

/**
 * In a worker thread, a shared counter that every drop for a full link is added to as well:
 * the thread's main thread reads it for `relay.stats()`, as it cannot read this thread's links.
 */
let threadDrops: Int32Array | undefined;

/** @internal Makes this thread's drops count in `counter` too (set once a worker thread starts). */
export function reportDropsTo(counter: Int32Array): void {
  threadDrops = counter;
}

/** @internal Counts `count` messages dropped for a full queue in `counters`, and for the main thread. */
export function countQueueFull(counters: LinkCounters, count: number): void {
  counters.droppedQueueFull += count;
  if (threadDrops !== undefined) Atomics.add(threadDrops, 0, count);
}

/**
 * Where a link stands against its bounds (see {@link Link.level}): `drained` under a quarter
 * of both, `high` at half of either or more (over the high-water mark), `filling` between.
 */
export type Level = "drained" | "filling" | "high";

/** @internal */
export abstract class Link {
  /** Unique within the process, for diagnostics. */
  readonly id = nextLinkId++;
  /**
   * `thread`: a thread of this process (values travel by structured clone); `process`: another
   * process of the host; `host`: another host's relay; `bus`: every other host on a message
   * broker (the last three carry values encoded).
   */
  abstract readonly kind: "thread" | "process" | "host" | "bus";
  /**
   * The form a message's payload takes on this link: `value`, the value itself (structured
   * clone carries it, between threads), or `encoded`, its superjson encoding (between
   * processes and hosts), which is what a link carries unless it says otherwise. The hub
   * routes by this, never by `kind`.
   */
  readonly carries: "value" | "encoded" = "encoded";
  /** What this link may hold for its neighbour; shared with the host's other links. */
  readonly bounds: LinkBounds;
  readonly counters: LinkCounters = zeroCounters();
  /** Set by the hub that owns the link. */
  handler: LinkHandler | undefined;
  /** A worker thread's shared drop counter, on its main thread's link to it (see {@link reportDropsTo}). */
  farDrops: Int32Array | undefined;
  /** Whether the far side's hub said hello (and not bye since): only such a hub is waited for in a sync. */
  greeted = false;
  /**
   * Whether the hub watches this link for pressure (see {@link LinkHandler.onPressure}); set
   * when it goes over its high-water mark or drops, cleared by the hub once it drained.
   */
  watched = false;
  /** Whether messages were dropped since the link last drained: one warning per episode. */
  inEpisode = false;
  /**
   * Whether the hub held back changes of interest for this link because it was not reading;
   * it then tells the link everything in one hello once it drains (see Hub).
   */
  interestStale = false;
  #outbox: Frame[] = [];
  #messagesInOutbox = 0;
  /** Bytes of the encoded payloads in the outbox. */
  #bytesInOutbox = 0;
  /** How many more messages than frames the runs in the outbox hold. */
  #runExtra = 0;
  #scheduled = false;
  #heldSince = 0;
  #closed = false;

  constructor(bounds: LinkBounds) {
    this.bounds = bounds;
  }

  /** `true` once the link is closed, by either side. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** What the far side is, in words, for warnings and errors (e.g. "cluster worker (pid 1234)"). */
  abstract get label(): string;

  /** Sends a control frame; never dropped while the link is open. */
  sendControl(frame: Frame): void {
    this.#enqueue(frame);
  }

  /** Messages this process holds for the neighbour: in the outbox and in the channel. */
  get messagesHeld(): number {
    return this.heldMessages() + this.#messagesInOutbox;
  }

  /** Bytes of encoded payloads this process holds for the neighbour. */
  get bytesHeld(): number {
    return this.heldBytes() + this.#bytesInOutbox;
  }

  /** Where the link stands against its bounds now. */
  get level(): Level {
    const { maxQueue, maxQueueBytes } = this.bounds;
    // Fractions of each bound, in quarters: the larger decides.
    const quarters = Math.max((this.messagesHeld * 4) / maxQueue, (this.bytesHeld * 4) / maxQueueBytes);
    return quarters >= 2 ? "high" : quarters >= 1 ? "filling" : "drained";
  }

  /** Whether the link holds its bound in messages or bytes: a message now would be dropped. */
  get isFull(): boolean {
    return this.messagesHeld >= this.bounds.maxQueue || this.bytesHeld >= this.bounds.maxQueueBytes;
  }

  /**
   * Counts a dropped message and returns `true` when the link holds its bound: a caller
   * checks this before it builds (and encodes or clones) the message.
   */
  dropIfFull(): boolean {
    const { maxQueue, maxQueueBytes } = this.bounds;
    // An outbox that alone holds the bound is written out first: the channel may take it (a
    // pipe's kernel buffer, a queue bounded in bytes only), and what it takes is not held.
    if (this.#outbox.length !== 0 && (this.#messagesInOutbox >= maxQueue || this.#bytesInOutbox >= maxQueueBytes)) this.flushOutbox();
    const messages = this.messagesHeld;
    const bytes = this.bytesHeld;
    if (messages < maxQueue && bytes < maxQueueBytes) {
      if (!this.watched && (messages * 2 >= maxQueue || bytes * 2 >= maxQueueBytes)) this.#pressure(false);
      return false;
    }
    this.countDropped(1);
    return true;
  }

  /** Sends a message frame; the caller has checked {@link Link.dropIfFull} first. */
  sendMessage(frame: Frame): void {
    if (this.#closed) return;
    this.#messagesInOutbox++;
    if (typeof frame[3] === "string" && this.carries === "encoded") this.#bytesInOutbox += frame[3].length;
    this.counters.sent++;
    this.#enqueue(frame);
  }

  /**
   * Sends a run of encoded messages on one (scope, topic) as it arrived from another link, as
   * many as the bounds leave room for; the rest (the newest) are dropped and counted.
   */
  sendRun(scope: Scope, topic: Topic, payloads: readonly unknown[], hops?: number): void {
    if (this.#closed) return;
    const { maxQueue, maxQueueBytes } = this.bounds;
    // As in dropIfFull: what the outbox holds goes to the channel first if the run would not fit beside it.
    if (this.#outbox.length !== 0 && this.#messagesInOutbox + payloads.length > maxQueue) this.flushOutbox();
    const messageRoom = maxQueue - this.messagesHeld;
    let byteRoom = maxQueueBytes - this.bytesHeld;
    let fit = 0;
    let bytes = 0;
    // Each message fits while the link holds less than its bounds before it (so a lone message
    // larger than maxQueueBytes still goes to a neighbour that holds nothing).
    while (fit < payloads.length && fit < messageRoom && byteRoom > 0) {
      const payload = payloads[fit];
      const length = typeof payload === "string" ? payload.length : 0;
      byteRoom -= length;
      bytes += length;
      fit++;
    }
    if (fit < payloads.length) {
      this.countDropped(payloads.length - fit);
      if (fit === 0) return;
      payloads = payloads.slice(0, fit);
    } else if (!this.watched && ((this.messagesHeld + fit) * 2 >= maxQueue || (this.bytesHeld + bytes) * 2 >= maxQueueBytes)) {
      this.#pressure(false);
    }
    this.#messagesInOutbox += fit;
    this.#bytesInOutbox += bytes;
    this.counters.sent += fit;
    // A run counts as the messages it holds, as the far side counts them (see PortLink).
    this.#runExtra += fit - 1;
    if (hops === undefined) this.#enqueue(fit === 1 ? ["m", scope, topic, payloads[0]] : ["M", scope, topic, payloads]);
    else this.#enqueue(fit === 1 ? ["m", scope, topic, payloads[0], hops] : ["M", scope, topic, payloads, hops]);
  }

  /** Counts `count` messages dropped for a full link; the first drop of an episode is reported. */
  countDropped(count: number): void {
    countQueueFull(this.counters, count);
    if (!this.inEpisode) {
      this.inEpisode = true;
      this.#pressure(true);
    }
  }

  /** Writes out what the outbox holds now. */
  flushOutbox(): void {
    if (this.#outbox.length === 0 || this.#closed) return;
    const batch = this.#outbox;
    const frames = batch.length + this.#runExtra;
    this.#outbox = [];
    this.#messagesInOutbox = 0;
    this.#bytesInOutbox = 0;
    this.#runExtra = 0;
    this.write(foldMessages(batch), frames);
  }

  /** Writes out what the outbox holds if the neighbour has taken in everything sent before. */
  flushIfCaughtUp(): void {
    if (this.#outbox.length !== 0 && this.inFlight() === 0) this.flushOutbox();
  }

  /**
   * Closes the link from this side, saying bye so the far side forgets what this side wanted;
   * the hub hears of it through `onClose`.
   */
  close(): void {
    if (this.#closed) return;
    this.#outbox.push(["b"]);
    this.flushOutbox();
    this.closed();
  }

  /** Subclasses call this once the link is gone, whichever side closed it. */
  protected closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#outbox = [];
    this.#messagesInOutbox = 0;
    this.#bytesInOutbox = 0;
    this.detach();
    this.handler?.onClose(this);
  }

  /** Subclasses call this with each batch that arrives. */
  protected receiveBatch(batch: unknown, isFrame: (value: unknown) => value is Frame): void {
    if (!Array.isArray(batch)) {
      this.counters.droppedMalformed++;
      return;
    }
    const handler = this.handler;
    for (const frame of batch) {
      if (this.#closed) return;
      if (!isFrame(frame)) {
        this.counters.droppedMalformed++;
      } else {
        if (frame[0] === "m") this.counters.received++;
        else if (frame[0] === "M") this.counters.received += frame[3].length;
        handler?.onFrame(this, frame);
      }
    }
  }

  /** Hands a batch to the channel; `frames` is how many frames it holds unfolded (a run counting as its messages). */
  protected abstract write(batch: Frame[], frames: number): void;
  /**
   * Messages written to the channel and not yet known to be taken in by the neighbour: only
   * for batching (a lone frame leaves at once when this is 0), never for the bound.
   */
  protected abstract inFlight(): number;
  /** Messages written to the channel that this process still holds (see the module's "Bound"). */
  protected abstract heldMessages(): number;
  /** Bytes of encoded payloads written to the channel that this process still holds; 0 where the link cannot tell. */
  protected abstract heldBytes(): number;
  /** Lets go of the channel: listeners off, nothing more sent. */
  protected abstract detach(): void;

  #pressure(dropped: boolean): void {
    this.watched = true;
    this.handler?.onPressure(this, dropped);
  }

  #enqueue(frame: Frame): void {
    if (this.#closed) return;
    const outbox = this.#outbox;
    outbox.push(frame);
    if (outbox.length === 1) {
      if (this.inFlight() === 0) {
        // The neighbour has taken in all we sent: this frame leaves now, with no latency.
        this.flushOutbox();
        return;
      }
      this.#heldSince = performance.now();
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => {
          this.#scheduled = false;
          this.flushOutbox();
        });
      }
    } else if (
      outbox.length >= MAX_BATCH ||
      this.inFlight() === 0 ||
      // The clock is read every 16th frame: a thread publishing that fast is never held long.
      ((outbox.length & 15) === 0 && performance.now() - this.#heldSince > MAX_HOLD_MS)
    ) {
      this.flushOutbox();
    }
  }
}
