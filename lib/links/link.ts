/**
 * Link: one neighbour of a hub (a thread's port, a process's IPC channel), with an outbox
 * that batches frames and bounds what waits for the neighbour.
 *
 * Batching: a frame leaves at once when the neighbour has taken in everything sent before it,
 * so a lone message pays no latency. While the neighbour is behind, frames gather and leave
 * together as soon as it has caught up, at the end of the current job (a microtask), when
 * {@link MAX_BATCH} have gathered, or when the oldest has waited {@link MAX_HOLD_MS} — the
 * rules that let a thread busy in synchronous work, which never reaches a microtask, still
 * send promptly each time it publishes.
 *
 * Bound: at most `maxQueue` messages may be sent and not yet taken in by the neighbour; a
 * message beyond that is dropped and counted. Control frames (hello, interest, flush, sync)
 * are never dropped: they are few, and losing one would break the link's bookkeeping.
 */
import type { Scope, Topic } from "../types.js";
import { foldMessages, type Frame } from "../wire/frames.js";

/** The most frames one batch carries. */
export const MAX_BATCH = 512;
/** How long, in milliseconds, the oldest gathered frame may wait before its batch leaves. */
export const MAX_HOLD_MS = 1;
/**
 * The default bound of a link, in messages sent but not yet taken in: NATS's default limit of
 * pending messages for a slow consumer, large enough to ride out bursts, small enough that a
 * stalled neighbour costs megabytes, not gigabytes.
 */
export const DEFAULT_MAX_QUEUE = 65_536;

/** @internal What a link reports to its hub. */
export interface LinkHandler {
  /** Frames arrived (already checked by the link). */
  onFrame(link: Link, frame: Frame): void;
  /** The link is gone; called once. */
  onClose(link: Link): void;
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
}

/** Counters that all start at zero. */
export function zeroCounters(): LinkCounters {
  return { sent: 0, received: 0, droppedQueueFull: 0, droppedMalformed: 0, droppedOversized: 0, droppedDisconnected: 0 };
}

/** Adds `counters` into `total`. */
export function addCounters(total: LinkCounters, counters: LinkCounters): void {
  total.sent += counters.sent;
  total.received += counters.received;
  total.droppedQueueFull += counters.droppedQueueFull;
  total.droppedMalformed += counters.droppedMalformed;
  total.droppedOversized += counters.droppedOversized;
  total.droppedDisconnected += counters.droppedDisconnected;
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
  /** Messages sent and not yet taken in, at most. */
  readonly maxQueue: number;
  readonly counters: LinkCounters = zeroCounters();
  /** Set by the hub that owns the link. */
  handler: LinkHandler | undefined;
  /** A worker thread's shared drop counter, on its main thread's link to it (see {@link reportDropsTo}). */
  farDrops: Int32Array | undefined;
  /** Whether the far side's hub said hello (and not bye since): only such a hub is waited for in a sync. */
  greeted = false;
  #outbox: Frame[] = [];
  #messagesInOutbox = 0;
  /** How many more messages than frames the runs in the outbox hold. */
  #runExtra = 0;
  #scheduled = false;
  #heldSince = 0;
  #closed = false;

  constructor(maxQueue: number) {
    this.maxQueue = maxQueue;
  }

  /** `true` once the link is closed, by either side. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Sends a control frame; never dropped while the link is open. */
  sendControl(frame: Frame): void {
    this.#enqueue(frame);
  }

  /**
   * Counts a dropped message and returns `true` when the neighbour has `maxQueue` messages
   * not yet taken in: a caller checks this before it builds (and encodes) the message.
   */
  dropIfFull(): boolean {
    if (this.inFlight() + this.#messagesInOutbox < this.maxQueue) return false;
    countQueueFull(this.counters, 1);
    return true;
  }

  /** Sends a message frame; the caller has checked {@link Link.dropIfFull} first. */
  sendMessage(frame: Frame): void {
    this.#messagesInOutbox++;
    this.counters.sent++;
    this.#enqueue(frame);
  }

  /**
   * Sends a run of messages on one (scope, topic) as it arrived from another link, as many as
   * the bound leaves room for; the rest (the newest) are dropped and counted.
   */
  sendRun(scope: Scope, topic: Topic, payloads: readonly unknown[], hops?: number): void {
    const room = this.maxQueue - this.inFlight() - this.#messagesInOutbox;
    if (room < payloads.length) {
      countQueueFull(this.counters, payloads.length - Math.max(room, 0));
      if (room <= 0) return;
      payloads = payloads.slice(0, room);
    }
    this.#messagesInOutbox += payloads.length;
    this.counters.sent += payloads.length;
    // A run counts as the messages it holds, as the far side counts them (see PortLink).
    this.#runExtra += payloads.length - 1;
    if (hops === undefined) this.#enqueue(payloads.length === 1 ? ["m", scope, topic, payloads[0]] : ["M", scope, topic, payloads]);
    else this.#enqueue(payloads.length === 1 ? ["m", scope, topic, payloads[0], hops] : ["M", scope, topic, payloads, hops]);
  }

  /** Writes out what the outbox holds now. */
  flushOutbox(): void {
    if (this.#outbox.length === 0 || this.#closed) return;
    const batch = this.#outbox;
    const frames = batch.length + this.#runExtra;
    this.#outbox = [];
    this.#messagesInOutbox = 0;
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
  /** Messages written to the channel and not yet taken in by the neighbour. */
  protected abstract inFlight(): number;
  /** Lets go of the channel: listeners off, nothing more sent. */
  protected abstract detach(): void;
  /** Messages written to the channel that this process still holds for the neighbour (e.g. in a client's outbound buffer, not yet handed to the kernel). */
  protected heldMessages(): number {
    return this.inFlight();
  }
  /** Bytes of those, where the link can tell; 0 where it cannot. */
  protected heldBytes(): number {
    return 0;
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
