/**
 * PortLink: a link between two threads of one process over a `MessagePort`.
 *
 * Values travel by structured clone, which carries every sendable value unchanged. The two
 * ends share four counters in a `SharedArrayBuffer`: frames sent and frames taken in, each
 * way. They give the sender its bound (sent − taken ≤ maxQueue: what the far thread has not
 * taken in waits in its port, in this process's memory) without acknowledgement messages, and tell a thread that is busy in synchronous work — a tinypool task, or one
 * waiting in `Atomics.wait` between tasks — that frames are waiting, so it can take them in
 * with `receiveMessageOnPort` before it publishes or reads a subscription.
 */
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import type { Frame } from "../wire/frames.js";
import { isFrame } from "../wire/validate-frame.js";
import { Link, type LinkBounds } from "./link.js";

/** Which end of the shared counters this side is: 0 or 1, one for each end. */
export type PortSide = 0 | 1;

/** How many frames a batch held before folding: what its sender counted as written. */
function countFrames(batch: unknown): number {
  if (!Array.isArray(batch)) return 1;
  let frames = 0;
  for (const frame of batch) frames += Array.isArray(frame) && frame[0] === "M" && Array.isArray(frame[3]) ? frame[3].length : 1;
  return frames;
}

function isDataCloneError(error: unknown): boolean {
  return error instanceof Error && error.name === "DataCloneError";
}

/** Whether structured clone carries `value`. */
function clones(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

/** Makes a thread's doorbell: one shared counter that every link into the thread rings. */
export function createDoorbell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

/** Makes the shared counters of a new port link. */
export function createPortCounters(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT));
}

/** @internal */
export class PortLink extends Link {
  readonly kind = "thread";
  override readonly carries = "value";
  readonly #port: MessagePort;
  readonly #counters: Int32Array;
  /** Index of the counter of frames this side sent; the next index counts what the other side took. */
  readonly #out: number;
  /** Index of the counter of frames the other side sent; the next index counts what this side took. */
  readonly #in: number;
  #taken = 0;
  #taking = false;
  /** The doorbell of the thread at the far end, if it has one (see the constructor). */
  readonly farDoorbell: Int32Array | undefined;
  /** What the far thread is, for warnings (see Link.label). */
  readonly label: string;
  readonly #onMessage = (batch: unknown): void => this.#take(batch);
  readonly #onClose = (): void => this.closed();

  /**
   * @param farDoorbell - the far thread's doorbell, rung after each write so that thread can
   * tell with one read, before each publish, whether any of its links has something for it.
   * @param label - what the far thread is, in words
   */
  constructor(port: MessagePort, counters: Int32Array, side: PortSide, bounds: LinkBounds, label: string, farDoorbell?: Int32Array) {
    super(bounds);
    this.label = label;
    this.#port = port;
    this.#counters = counters;
    this.farDoorbell = farDoorbell;
    this.#out = side === 0 ? 0 : 2;
    this.#in = side === 0 ? 2 : 0;
    port.on("message", this.#onMessage);
    port.on("close", this.#onClose);
    // A link never keeps its thread or process alive.
    port.unref();
  }

  /** Whether the other side sent frames this side has not taken in yet. */
  get hasUnread(): boolean {
    return Atomics.load(this.#counters, this.#in) !== this.#taken;
  }

  /**
   * Takes in, synchronously, every batch already sent here.
   * @returns `false` when it could not, being inside the handling of a batch already.
   */
  pump(): boolean {
    // A handler that publishes while a batch is being handled must not take in the next batch
    // ahead of the rest of this one: that would break the order of messages.
    if (this.#taking) return false;
    while (this.hasUnread && !this.isClosed) {
      const received = receiveMessageOnPort(this.#port);
      if (received === undefined) break;
      this.#take(received.message);
    }
    return true;
  }

  protected write(batch: Frame[], frames: number): void {
    // A peer frame hands over a port, which must be transferred; they are rare.
    const transfer: MessagePort[] = [];
    for (const frame of batch) if (frame[0] === "p") transfer.push(frame[2]);
    try {
      this.#port.postMessage(batch, transfer);
    } catch (error) {
      if (!isDataCloneError(error)) return; // The other side is gone; its 'close' event follows and cleans up.
      // A value structured clone refuses (publish refuses them first; this is the last guard):
      // the rest of the batch, control frames included, still goes, and the refused is counted.
      batch = this.#cloneable(batch);
      frames = countFrames(batch);
      try {
        this.#port.postMessage(batch, transfer);
      } catch {
        return;
      }
    }
    Atomics.add(this.#counters, this.#out, frames);
    if (this.farDoorbell !== undefined) Atomics.add(this.farDoorbell, 0, 1);
  }

  /** `batch` without the messages structured clone refuses, which are counted. */
  #cloneable(batch: Frame[]): Frame[] {
    const kept: Frame[] = [];
    for (const frame of batch) {
      if (frame[0] === "m") {
        if (clones(frame[3])) kept.push(frame);
        else this.counters.droppedUnsendable++;
      } else if (frame[0] === "M") {
        const payloads = frame[3].filter(clones);
        this.counters.droppedUnsendable += frame[3].length - payloads.length;
        if (payloads.length !== 0) kept.push(frame[4] === undefined ? ["M", frame[1], frame[2], payloads] : ["M", frame[1], frame[2], payloads, frame[4]]);
      } else {
        kept.push(frame);
      }
    }
    return kept;
  }

  protected inFlight(): number {
    return (Atomics.load(this.#counters, this.#out) - Atomics.load(this.#counters, this.#out + 1)) | 0;
  }

  protected heldMessages(): number {
    return this.inFlight();
  }

  protected heldBytes(): number {
    // Values are cloned, not encoded, so their size is not known without a second walk.
    return 0;
  }

  protected detach(): void {
    this.#port.off("message", this.#onMessage);
    this.#port.off("close", this.#onClose);
    this.#port.close();
  }

  #take(batch: unknown): void {
    // Counted as taken before it is handled: the sender may send again as soon as it sees room.
    const frames = countFrames(batch);
    this.#taken = (this.#taken + frames) | 0;
    Atomics.add(this.#counters, this.#in + 1, frames);
    this.#taking = true;
    try {
      this.receiveBatch(batch, isFrame);
    } finally {
      this.#taking = false;
    }
  }
}
