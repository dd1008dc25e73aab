/**
 * HostLink: a link to another host's relay, over whatever connection a Transport provides.
 *
 * A host link outlives its connections. When one drops, the link is *away*: the hub keeps the
 * far side's interest, and messages for it wait (within `maxQueue`) until a connection to the
 * same host opens again, when both sides *resume*: each says how many messages it has received
 * in this session, and each resends what the other has not. So a dropped connection loses
 * nothing, and nothing arrives twice. A host that stays away longer than `awayTimeout` (or
 * comes back as a new process) is gone for good; what it had not acknowledged is counted in
 * `droppedDisconnected`.
 *
 * Session frames, read here and never seen by the hub:
 *  - `["R", session, yourSession, received]`: the first frame on a connection after the
 *    handshake. `session` names this side's numbering of what it sends (a random id made with
 *    the link), `yourSession` the far side's numbering as this side knows it ("" if it does
 *    not), and `received` how many messages of that numbering arrived here. Messages carry no
 *    sequence numbers: they are counted in order on both sides, and so are the neighbour
 *    lists (`n`) sent among them, which are kept and resent with them, in their place.
 *  - `["A", received]`: an acknowledgement, sent every {@link ACK_EVERY} messages and
 *    {@link ACK_DELAY_MS} after any message not yet acknowledged. What is acknowledged is no
 *    longer kept for resending; what is kept (unacknowledged plus not yet sent) counts against
 *    the link's bound in bytes, and what waits for a connection in messages too, so a host
 *    that stops reading cannot grow this process's memory, while one that reads is never
 *    taken for slow because its acknowledgements are a round trip behind. An acknowledgement
 *    due also goes ahead of any batch this side sends.
 *  - `["G", node]`: a new process answers where the host `node` did, so that host is gone for
 *    good; a host that has it away gives it up at once (see host-sessions.ts).
 *
 * A frame that is not well-formed breaks the protocol: it is counted, and the connection is
 * closed (the link stays, away, and may resume).
 */
import type { Connection } from "../transport.js";
import type { Frame, MessageFrame, NeighboursFrame } from "../wire/frames.js";
import { isFrame, isNode } from "../wire/validate-frame.js";
import { isEncodedPayload } from "../wire/codec.js";
import { Link, type LinkBounds } from "./link.js";

/** Acknowledge at least every this many messages received. */
export const ACK_EVERY = 1024;
/** Acknowledge messages received at most this long, in milliseconds, after the first of them. */
export const ACK_DELAY_MS = 20;
/**
 * What a kept message costs beyond its payload (its frame, an array of four or five slots
 * sharing the names): counted in the bytes a host link holds, so that the bound measures memory.
 */
const KEPT_ENTRY_BYTES = 32;
/** What the UTF-8 encoding of a frame's names and punctuation may add to its payload, at most. */
const FRAME_OVERHEAD = 64;

/**
 * What is kept for resending, in the order it was sent: messages, and the neighbour lists
 * sent among them — the far side must read each message with the neighbours that held when
 * it was sent, or it would pass on what this side sent directly, or hold back what it did not.
 */
type Kept = MessageFrame | NeighboursFrame;

/** What a host link tells its owner (the host's sessions). */
export interface HostLinkEvents {
  /** The link's connection dropped; it is away. */
  away(link: HostLink): void;
  /** The link has a connection again, and both sides resumed. */
  back(link: HostLink): void;
  /** A message larger than the far side accepts was dropped. */
  oversized(link: HostLink, bytes: number): void;
  /** The link closed for good. */
  gone(link: HostLink): void;
  /** The far side says that a new process answers where the host `node` did. */
  replaced(link: HostLink, node: string): void;
}

/** @internal */
export class HostLink extends Link {
  readonly kind = "host";
  override readonly carries = "encoded";
  /** The far host's node id. */
  readonly node: string;
  /** The node ids of the hosts the far side sends to itself, as it last said. */
  neighbours: ReadonlySet<string> = new Set();
  /** Whether the hub has had the far side's hello, and so sends to it directly (see Hub). */
  known = false;
  readonly #events: HostLinkEvents;
  readonly #awayTimeout: number;
  readonly #session = Math.random().toString(36).slice(2, 12);
  #peerSession = "";
  #connection: Connection | undefined;
  #peerMaxPayload = Number.POSITIVE_INFINITY;
  #resumed = false;
  /** Batches written since the connection opened and before the far side said where to resume. */
  #held: Frame[][] = [];
  /** The number of the first message in `#held`. */
  #heldFrom = 0;
  /** What was sent numbered `#acked + 1` to `#numbered` (messages and neighbour lists), from `#keptHead` on. */
  #kept: Kept[] = [];
  #keptHead = 0;
  /** Bytes of the payloads kept, from `#keptHead` on. */
  #keptBytes = 0;
  #acked = 0;
  #numbered = 0;
  /** The number of the last message written to a connection. */
  #written = 0;
  #received = 0;
  #acknowledged = 0;
  #ackTimer: NodeJS.Timeout | undefined;
  #awayTimer: NodeJS.Timeout | undefined;

  constructor(node: string, bounds: LinkBounds, awayTimeout: number, events: HostLinkEvents) {
    super(bounds);
    this.node = node;
    this.#awayTimeout = awayTimeout;
    this.#events = events;
  }

  /** The connection the link uses now, if any. */
  get connection(): Connection | undefined {
    return this.#connection;
  }

  /** Whether the link has a connection on which both sides resumed. */
  get connected(): boolean {
    return this.#resumed;
  }

  /**
   * Uses `connection` from now on (closing the one used before, if any) and says where the far
   * side should resume. `peerMaxPayload` is the longest text the far side accepts.
   */
  attach(connection: Connection, peerMaxPayload: number): void {
    const previous = this.#connection;
    if (previous !== undefined) {
      this.#lose();
      previous.close("roar: replaced by a newer connection to the same host");
    }
    clearTimeout(this.#awayTimer);
    this.#connection = connection;
    this.#peerMaxPayload = peerMaxPayload;
    this.#text([["R", this.#session, this.#peerSession, this.#received]]);
  }

  /** Tells the far side that a new process answers where the host `node` did (see the `G` frame). */
  tellReplaced(node: string): void {
    if (this.#resumed) this.#text([["G", node]]);
  }

  /** Closes the link, first acknowledging what arrived, so the far side counts none of it lost. */
  override close(): void {
    if (this.#resumed) this.#sendAck();
    super.close();
  }

  /** `connection` ended: if it was the link's, the link is away until another one opens. */
  connectionClosed(connection: Connection): void {
    if (connection !== this.#connection || this.isClosed) return;
    this.#lose();
    this.#awayTimer = setTimeout(() => this.expire(), this.#awayTimeout);
    this.#awayTimer.unref();
    this.#events.away(this);
  }

  /** The far host is gone for good: what it did not acknowledge is counted lost. */
  expire(): void {
    this.counters.droppedDisconnected += this.#messagesKept(this.#numbered);
    this.#kept = [];
    this.#keptHead = 0;
    this.#keptBytes = 0;
    this.#acked = this.#numbered;
    this.closed();
  }

  /** Takes in a text that arrived on `connection`. */
  receive(connection: Connection, text: string): void {
    if (connection !== this.#connection || this.isClosed) return;
    let batch: unknown;
    try {
      batch = JSON.parse(text);
    } catch {
      return this.#broken("a text that is not JSON");
    }
    if (!Array.isArray(batch)) return this.#broken("a batch that is not an array");
    const handler = this.handler;
    for (const frame of batch as unknown[]) {
      if (connection !== this.#connection) return;
      if (!Array.isArray(frame)) return this.#broken("a frame that is not an array");
      switch (frame[0]) {
        case "R":
          if (!isResume(frame)) return this.#broken("a malformed resume frame");
          this.#resume(frame[1], frame[2], frame[3]);
          continue;
        case "A":
          if (!Number.isSafeInteger(frame[1])) return this.#broken("a malformed acknowledgement");
          this.#acknowledge(frame[1] as number);
          continue;
        case "G":
          if (frame.length !== 2 || !isNode(frame[1])) return this.#broken("a malformed notice of a replaced host");
          this.#events.replaced(this, frame[1]);
          continue;
        case "p":
        case "f":
        case "F":
          return this.#broken(`a "${String(frame[0])}" frame, which hosts never send each other`);
      }
      if (!this.#resumed || !isFrame(frame)) return this.#broken(this.#resumed ? "a malformed frame" : "a frame before the resume");
      if (frame[0] === "m") {
        if (!isEncodedPayload(frame[3])) return this.#broken("a message whose payload is not encoded");
        this.counters.received++;
        this.#countReceived(1);
        handler?.onFrame(this, frame);
      } else if (frame[0] === "M") {
        const payloads = frame[3];
        for (const payload of payloads) if (!isEncodedPayload(payload)) return this.#broken("a message whose payload is not encoded");
        this.counters.received += payloads.length;
        this.#countReceived(payloads.length);
        handler?.onFrame(this, frame);
      } else {
        if (frame[0] === "n") this.#countReceived(1);
        handler?.onFrame(this, frame);
      }
    }
  }

  /** Sends a message frame, unless it is larger than the far side accepts: then it is dropped and counted. */
  override sendMessage(frame: MessageFrame): void {
    if (this.#fits(frame[1], frame[2], frame[3] as string)) super.sendMessage(frame);
  }

  /** Sends a run of messages, but those larger than the far side accepts, which are dropped and counted. */
  override sendRun(scope: string, topic: string, payloads: readonly unknown[], hops?: number): void {
    let fitting = payloads;
    for (let i = 0; i < payloads.length; i++) {
      if (this.#fits(scope, topic, payloads[i] as string)) continue;
      fitting = payloads.filter((payload, j) => j < i || (j > i && this.#fits(scope, topic, payload as string)));
      break;
    }
    if (fitting.length !== 0) super.sendRun(scope, topic, fitting, hops);
  }

  /** Whether a message fits in the far side's maxPayload; if not, it is counted and reported. */
  #fits(scope: string, topic: string, payload: string): boolean {
    // In a text, each name and the payload is a JSON string, where a UTF-16 unit takes at
    // most 6 bytes: count bytes only when it could matter.
    if ((payload.length + scope.length + topic.length) * 6 + FRAME_OVERHEAD <= this.#peerMaxPayload) return true;
    const bytes = Buffer.byteLength(JSON.stringify([scope, topic, payload])) + FRAME_OVERHEAD;
    if (bytes <= this.#peerMaxPayload) return true;
    this.counters.droppedOversized++;
    this.#events.oversized(this, bytes);
    return false;
  }

  protected write(batch: Frame[]): void {
    const from = this.#numbered + 1;
    for (const frame of batch) {
      if (frame[0] === "m") {
        this.#kept.push(frame);
        this.#keptBytes += (frame[3] as string).length;
      } else if (frame[0] === "n") {
        this.#kept.push(frame);
      } else if (frame[0] === "M") {
        for (const payload of frame[3]) {
          this.#kept.push(frame[4] === undefined ? ["m", frame[1], frame[2], payload] : ["m", frame[1], frame[2], payload, frame[4]]);
          this.#keptBytes += (payload as string).length;
        }
      }
    }
    this.#numbered = this.#acked + this.#kept.length - this.#keptHead;
    if (this.#connection === undefined) return; // Away: messages wait; the hub says hello again on return.
    if (!this.#resumed) {
      if (this.#held.length === 0) this.#heldFrom = from;
      this.#held.push(batch);
      return;
    }
    this.#written = this.#numbered;
    // What arrived is acknowledged ahead of anything this side sends: the far side learns it
    // no later than it reads this batch (an answer to its sync, say), and keeps less at risk.
    if (this.#received !== this.#acknowledged) this.#sendAck();
    this.#send(batch);
  }

  get label(): string {
    return `the host ${this.node}`;
  }

  protected inFlight(): number {
    return this.#numbered - this.#acked;
  }

  /**
   * Messages waiting for a connection (the host is away, or the connection has not resumed):
   * what was written is on its way, and counts in bytes only, below.
   */
  protected heldMessages(): number {
    return this.#numbered - this.#written;
  }

  /** What is kept for resending — every message not yet acknowledged — with what each entry costs. */
  protected heldBytes(): number {
    return this.#keptBytes + KEPT_ENTRY_BYTES * (this.#kept.length - this.#keptHead);
  }

  protected detach(): void {
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#awayTimer);
    // Closed from this side, the connection ends after what was written: nothing is counted
    // lost (a far side that said bye first was expired, which counts).
    const connection = this.#connection;
    this.#connection = undefined;
    this.#resumed = false;
    connection?.close("roar: the link was closed");
    this.#events.gone(this);
  }

  #lose(): void {
    this.#connection = undefined;
    this.#resumed = false;
    this.#held = [];
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  #resume(peerSession: string, mySession: string, received: number): void {
    /** Whether the far side's link is the one this side resumed with before (not a new one there). */
    const sameFarLink = this.#peerSession !== "" && peerSession === this.#peerSession;
    if (peerSession !== this.#peerSession) {
      // The far side numbers what it sends afresh: a new link there, or the first connection.
      this.#peerSession = peerSession;
      this.#received = 0;
      this.#acknowledged = 0;
    }
    if (mySession !== this.#session && sameFarLink) {
      // Race: the far side's link never read this side's resume (two connections crossed, and
      // the one that carried it was replaced there first). A side takes in nothing before it
      // reads the resume, so none of what was written arrived: all of it is resent, none lost.
      received = this.#acked;
    } else if (mySession !== this.#session) {
      // The far side does not know this numbering (a new link there, which knows nothing of
      // the old one's): what was written before may or may not have arrived, so it is counted
      // lost; what was never written is numbered afresh.
      this.counters.droppedDisconnected += this.#messagesKept(this.#written);
      this.#trim(this.#written);
      this.#numbered -= this.#written;
      if (this.#held.length !== 0) this.#heldFrom -= this.#written;
      this.#acked = 0;
      this.#written = 0;
      received = 0;
    } else if (received < this.#acked || received > this.#written) {
      return this.#broken("a resume from a message it could not have received");
    }
    this.#acknowledge(received);
    // Resend what the far side missed and what waited while the link was away, then what was
    // written since this connection opened, in the order it was written.
    const resendUpTo = this.#held.length !== 0 ? this.#heldFrom - 1 : this.#numbered;
    const missed: Frame[] = [];
    for (let i = this.#keptHead + received - this.#acked; i < this.#keptHead + resendUpTo - this.#acked; i++) {
      missed.push(this.#kept[i] as Kept);
    }
    this.#resumed = true;
    this.#written = this.#numbered;
    const held = this.#held;
    this.#held = [];
    for (let i = 0; i < missed.length; i += 512) this.#send(missed.slice(i, i + 512));
    for (const batch of held) this.#send(batch);
    this.#events.back(this);
  }

  #acknowledge(received: number): void {
    if (received <= this.#acked || received > this.#written) return;
    this.#trim(received);
    this.#acked = received;
  }

  /** Forgets kept messages up to number `upTo`. */
  #trim(upTo: number): void {
    const head = this.#keptHead + upTo - this.#acked;
    for (let i = this.#keptHead; i < head; i++) {
      const kept = this.#kept[i] as Kept;
      if (kept[0] === "m") this.#keptBytes -= (kept[3] as string).length;
    }
    this.#keptHead = head;
    if (this.#keptHead > 1024 && this.#keptHead * 2 > this.#kept.length) {
      this.#kept = this.#kept.slice(this.#keptHead);
      this.#keptHead = 0;
    }
  }

  /** How many messages (not neighbour lists) are kept, numbered up to `upTo`. */
  #messagesKept(upTo: number): number {
    let messages = 0;
    for (let i = this.#keptHead; i < this.#keptHead + upTo - this.#acked; i++) if ((this.#kept[i] as Kept)[0] === "m") messages++;
    return messages;
  }

  #countReceived(count: number): void {
    this.#received += count;
    if (this.#received - this.#acknowledged >= ACK_EVERY) this.#sendAck();
    else if (this.#ackTimer === undefined) {
      this.#ackTimer = setTimeout(() => this.#sendAck(), ACK_DELAY_MS);
      this.#ackTimer.unref();
    }
  }

  #sendAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#received === this.#acknowledged) return;
    this.#acknowledged = this.#received;
    this.#text([["A", this.#received]]);
  }

  /** Sends frames, split so that no text is longer than the far side accepts. */
  #send(frames: Frame[]): void {
    const text = JSON.stringify(frames);
    if (text.length * 3 <= this.#peerMaxPayload || Buffer.byteLength(text) <= this.#peerMaxPayload) {
      this.#connection?.send(text, noop);
      return;
    }
    if (frames.length > 1) {
      const half = frames.length >> 1;
      this.#send(frames.slice(0, half));
      this.#send(frames.slice(half));
      return;
    }
    const [frame] = frames as [Frame];
    if (frame[0] === "M" && frame[3].length > 1) {
      const half = frame[3].length >> 1;
      this.#send([["M", frame[1], frame[2], frame[3].slice(0, half)]]);
      this.#send([["M", frame[1], frame[2], frame[3].slice(half)]]);
      return;
    }
    if (frame[0] === "h" && frame[4].length > 1) {
      // A hello naming more topics than fit: a shorter hello, then the rest as interest frames,
      // which the far side reads alike.
      const half = frame[4].length >> 1;
      const rest: Frame[] = frame[4].slice(half).map(([scope, topic]) => ["i", scope, topic, 1]);
      this.#send([["h", frame[1], frame[2], frame[3], frame[4].slice(0, half), frame[5]], ...rest]);
      return;
    }
    // One message always fits (sendMessage dropped bigger ones), and so does any other frame.
    this.#connection?.send(text, noop);
  }

  #text(frames: readonly unknown[]): void {
    this.#connection?.send(JSON.stringify(frames), noop);
  }

  #broken(what: string): void {
    this.counters.droppedMalformed++;
    const connection = this.#connection;
    if (connection === undefined) return;
    this.connectionClosed(connection);
    connection.close(`roar: protocol error: ${what}`);
  }
}

function noop(): void {}

function isResume(frame: unknown[]): frame is ["R", string, string, number] {
  return (
    typeof frame[1] === "string" &&
    frame[1].length !== 0 &&
    frame[1].length <= 64 &&
    typeof frame[2] === "string" &&
    frame[2].length <= 64 &&
    Number.isSafeInteger(frame[3]) &&
    (frame[3] as number) >= 0
  );
}
