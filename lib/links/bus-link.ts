/**
 * BusLink: the link to every other host on a message broker, through a {@link BusTransport}.
 *
 * To its hub, the broker is one neighbour that wants the union of what the other hosts want.
 * Messages go out once per batch, on their topic channel, as the line `[origin, seq]` and
 * then each payload on a line of its own (a payload is JSON text, which never holds a raw line
 * break, and is carried as it is rather than escaped inside more JSON): the broker delivers
 * them to the hosts subscribed there. `seq` numbers the first payload; each
 * host numbers what it publishes on each topic channel, so a receiver sees a gap — counted in
 * `droppedDisconnected` — where a broker outage lost messages, and drops what it has already
 * seen. Only what the transport took is numbered: a text it refused is counted by this host
 * (`queueFull` or `disconnected`) and leaves no gap, so no receiver counts it again.
 *
 * Bound: what the broker client holds for the server (see {@link BusTransport.heldBytes}) is
 * this link's queue. A stalled server reads nothing, so it grows until the link's bound drops
 * and counts what is beyond; the texts published are remembered in order with their sizes, so
 * the bytes the client holds tell how many messages it holds.
 *
 * Hosts speak to each other over the hosts channel (everyone) and node channels (one host):
 *  - `["h", origin, reply, interest]` hello with everything the origin wants; a host answers a
 *    hello with `reply` 0 on the origin's node channel;
 *  - `["i", origin, scope, topic, on]` a change of interest;
 *  - `["k", origin]` keepalive, every {@link KEEPALIVE_MS}; a host not heard from for
 *    {@link SILENT_TICKS} of them is forgotten, with its interest. Only keepalives missed
 *    while the broker answers this host count: a stalled broker silences every host at once,
 *    and forgetting them would lose, counted nowhere, what is published for them meanwhile —
 *    instead their interest stands, and what the stall holds up is bounded like any queue;
 *  - `["b", origin]` bye;
 *  - `["s", origin, id]` / `["S", origin, id]` sync: the receiver runs a sync through its own
 *    processes and answers. A broker delivers one publisher's texts in order, across channels,
 *    so a sync arrives behind the interest sent before it.
 */
import type { BusChannel, BusTransport } from "../transport.js";
import type { Scope, Topic } from "../types.js";
import type { Frame, InterestKey } from "../wire/frames.js";
import { PROTOCOL_VERSION } from "../wire/frames.js";
import { isNode } from "../wire/validate-frame.js";
import { MAX_NAME_LENGTH } from "../errors.js";
import { MAX_INTEREST_PER_LINK } from "../interest.js";
import { Link, type LinkBounds } from "./link.js";

/** The most other hosts a bus link keeps track of. */
export const MAX_BUS_HOSTS = 1024;
/** How often a host says it is alive, in milliseconds. */
export const KEEPALIVE_MS = 2000;
/** How many keepalives in a row, missed while the broker answers, make a host forgotten. */
export const SILENT_TICKS = 3;
/** What the JSON of a data text adds to its payloads, at most, in bytes (origin and seq). */
const TEXT_OVERHEAD = 320;

const HOSTS: BusChannel = { kind: "hosts" };

function isName(value: unknown): value is string {
  return typeof value === "string" && value.length !== 0 && value.length <= MAX_NAME_LENGTH;
}

function isInterest(value: unknown): value is InterestKey[] {
  return Array.isArray(value) && value.every((key) => Array.isArray(key) && isName(key[0]) && isName(key[1]));
}

/** What the link tells its owner. */
export interface BusLinkEvents {
  /** A message larger than the broker takes was dropped. */
  oversized(bytes: number): void;
  /** A text from the broker was malformed. */
  malformed(): void;
}

/** Another host on the broker, as this one knows it. */
interface KnownHost {
  /** What it wants. */
  interest: Map<Scope, Set<Topic>>;
  /** Whether it spoke since the last keepalive tick. */
  heard: boolean;
  /** Ticks in a row, while the broker answered, that it was silent. */
  silent: number;
}

/** One text handed to the transport and perhaps still held by its client. */
interface HeldText {
  /** Its length, in UTF-16 units: at most its bytes for the broker, so the count errs toward held. */
  size: number;
  /** How many messages it carries (0 for what hosts say to each other). */
  messages: number;
}

/**
 * Whether the broker answered this host lately: `waiting` for a probe (a flush) sent at the
 * last tick, `answered` it, or it `failed` (the connection is down); `idle` before the first.
 */
type Probe = "idle" | "waiting" | "answered" | "failed";

/** @internal */
export class BusLink extends Link {
  readonly kind = "bus";
  override readonly carries = "encoded";
  readonly #bus: BusTransport;
  readonly #node: string;
  readonly #events: BusLinkEvents;
  /** Every other host known on the broker. */
  readonly #hosts = new Map<string, KnownHost>();
  /** How many other hosts want each (scope, topic). */
  readonly #wanted = new Map<Scope, Map<Topic, number>>();
  /** What this host wants, as its hub said. */
  readonly #mine = new Map<Scope, Set<Topic>>();
  /** The next number to publish on each topic channel. */
  readonly #nextOut = new Map<Scope, Map<Topic, number>>();
  /** The next number expected from each host on each topic channel. */
  readonly #nextIn = new Map<string, Map<Scope, Map<Topic, number>>>();
  /** This host's syncs under way (by the hub's id), and the hosts they wait for. */
  readonly #syncs = new Map<number, Set<string>>();
  /** Syncs other hosts asked for, by the id this link gave the hub. */
  readonly #asked = new Map<number, { node: string; id: number }>();
  #nextAsked = 1;
  #busy = false;
  readonly #keepalive: NodeJS.Timeout;
  #probe: Probe = "idle";
  /** Texts handed to the transport, oldest first from `#heldHead`, that its client may still hold. */
  #held: HeldText[] = [];
  #heldHead = 0;
  /** The sizes of the texts in `#held` from `#heldHead`, summed. */
  #heldSize = 0;
  /** The messages of the texts in `#held` from `#heldHead`, summed. */
  #heldCount = 0;

  constructor(bus: BusTransport, node: string, bounds: LinkBounds, events: BusLinkEvents) {
    super(bounds);
    this.#bus = bus;
    this.#node = node;
    this.#events = events;
    this.greeted = true;
    bus.subscribe(HOSTS);
    bus.subscribe({ kind: "node", node });
    this.#keepalive = setInterval(() => this.#tick(), KEEPALIVE_MS);
    this.#keepalive.unref();
  }

  /** How many other hosts are known on the broker. */
  get hostCount(): number {
    return this.#hosts.size;
  }

  /** The broker connection came back: texts may have been lost, so everyone says hello again. */
  reconnected(): void {
    this.#sayHello(HOSTS, 0);
    // A sync request or answer may have been lost on the way: ask again.
    for (const [id, waiting] of this.#syncs) for (const node of waiting) this.#say({ kind: "node", node }, ["s", this.#node, id]);
  }

  /** Takes in a text from the broker. */
  receive(channel: BusChannel, text: string): void {
    if (channel.kind === "topic") return this.#onMessages(channel.scope, channel.topic, text);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return this.#events.malformed();
    }
    if (!Array.isArray(value)) return this.#events.malformed();
    const [kind, origin] = value as [unknown, unknown];
    if (!isNode(origin)) return this.#events.malformed();
    if (origin === this.#node) return; // The broker echoed what this host said to everyone.
    const host = this.#hosts.get(origin);
    if (host !== undefined) host.heard = true;
    switch (kind) {
      case "h":
        if ((value[2] !== 0 && value[2] !== 1) || !isInterest(value[3])) return this.#events.malformed();
        this.#hello(origin, value[3]);
        if (value[2] === 0) {
          // A host says hello when it starts or is back from an outage, in which a sync
          // request to it, or its answer, may have been lost: ask it again.
          this.#sayHello({ kind: "node", node: origin }, 1);
          for (const [id, waiting] of this.#syncs) if (waiting.has(origin)) this.#say({ kind: "node", node: origin }, ["s", this.#node, id]);
        }
        return;
      case "i":
        if (host === undefined) return this.#greet(origin);
        if (!isName(value[2]) || !isName(value[3]) || (value[4] !== 0 && value[4] !== 1)) return this.#events.malformed();
        return this.#setInterest(host.interest, value[2], value[3], value[4] === 1);
      case "k":
        if (host === undefined) this.#greet(origin);
        return;
      case "b":
        return this.#forget(origin);
      case "s": {
        if (!Number.isSafeInteger(value[2])) return this.#events.malformed();
        const local = this.#nextAsked++;
        this.#asked.set(local, { node: origin, id: value[2] as number });
        return this.handler?.onFrame(this, ["s", local]);
      }
      case "S":
        if (!Number.isSafeInteger(value[2])) return this.#events.malformed();
        return this.#answered(value[2] as number, origin);
      default:
        return this.#events.malformed();
    }
  }

  protected write(batch: Frame[]): void {
    for (const frame of batch) {
      switch (frame[0]) {
        case "m":
          this.#publish(frame[1], frame[2], [frame[3] as string]);
          break;
        case "M":
          this.#publish(frame[1], frame[2], frame[3] as string[]);
          break;
        case "h": {
          // The hub's hello: all it wants from the broker. It expects a hello back.
          const wanted = new Set(frame[4].map(([scope, topic]) => JSON.stringify([scope, topic])));
          for (const [scope, topics] of [...this.#mine]) for (const topic of [...topics]) if (!wanted.has(JSON.stringify([scope, topic]))) this.#setMine(scope, topic, false);
          for (const [scope, topic] of frame[4]) this.#setMine(scope, topic, true);
          this.#sayHello(HOSTS, 0);
          if (frame[3] === 0) this.handler?.onFrame(this, ["h", PROTOCOL_VERSION, "bus", 1, this.#union()]);
          break;
        }
        case "i":
          if (this.#setMine(frame[1], frame[2], frame[3] === 1)) this.#say(HOSTS, ["i", this.#node, frame[1], frame[2], frame[3]]);
          break;
        case "s":
          void this.#sync(frame[1]);
          break;
        case "S": {
          const asked = this.#asked.get(frame[1]);
          this.#asked.delete(frame[1]);
          if (asked !== undefined) this.#say({ kind: "node", node: asked.node }, ["S", this.#node, asked.id]);
          break;
        }
        case "b":
          this.#say(HOSTS, ["b", this.#node]);
          break;
      }
    }
    // What is published in one job leaves in one batch: the first message goes at once, the
    // rest gather until the job ends.
    if (!this.#busy) {
      this.#busy = true;
      queueMicrotask(() => {
        this.#busy = false;
        this.flushIfCaughtUp();
      });
    }
  }

  get label(): string {
    return "the message broker";
  }

  protected inFlight(): number {
    return this.#busy ? 1 : 0;
  }

  /** Messages in the texts the broker client still holds: the newest ones, whose sizes cover the bytes it holds. */
  protected override heldMessages(): number {
    const bytes = this.heldBytes();
    const held = this.#held;
    // The client sends texts in the order it took them: what it holds is the newest ones.
    while (this.#heldHead < held.length && this.#heldSize - (held[this.#heldHead] as HeldText).size >= bytes) {
      const text = held[this.#heldHead++] as HeldText;
      this.#heldSize -= text.size;
      this.#heldCount -= text.messages;
    }
    if (this.#heldHead > 1024 && this.#heldHead * 2 > held.length) {
      this.#held = held.slice(this.#heldHead);
      this.#heldHead = 0;
    }
    return this.#heldCount;
  }

  /** Bytes the broker client holds for the server, as the transport tells (0 where it cannot). */
  protected override heldBytes(): number {
    return this.#bus.heldBytes?.() ?? 0;
  }

  protected detach(): void {
    clearInterval(this.#keepalive);
    this.#bus.unsubscribe(HOSTS);
    this.#bus.unsubscribe({ kind: "node", node: this.#node });
    for (const [scope, topics] of this.#mine) for (const topic of topics) this.#bus.unsubscribe({ kind: "topic", scope, topic });
  }

  /** Sends a message frame, unless it is larger than the broker takes: then it is dropped and counted. */
  override sendMessage(frame: Frame): void {
    if (this.#fits(frame[3] as string)) super.sendMessage(frame);
  }

  /** Sends a run of messages, but those larger than the broker takes, which are dropped and counted. */
  override sendRun(scope: Scope, topic: Topic, payloads: readonly unknown[]): void {
    let fitting = payloads;
    for (let i = 0; i < payloads.length; i++) {
      if (this.#fits(payloads[i] as string)) continue;
      fitting = payloads.filter((payload, j) => j < i || (j > i && this.#fits(payload as string)));
      break;
    }
    if (fitting.length !== 0) super.sendRun(scope, topic, fitting);
  }

  /** Whether one payload fits in a text the broker takes; if not, it is counted and reported. */
  #fits(payload: string): boolean {
    const limit = this.#bus.maxPayload ?? Number.POSITIVE_INFINITY;
    // A UTF-16 unit is at most three UTF-8 bytes: count bytes only when it could matter.
    if (payload.length * 3 + TEXT_OVERHEAD <= limit) return true;
    const bytes = Buffer.byteLength(payload) + TEXT_OVERHEAD;
    if (bytes <= limit) return true;
    this.counters.droppedOversized++;
    this.#events.oversized(bytes);
    return false;
  }

  /** Publishes a run, in as many texts as the broker's limit needs. */
  #publish(scope: Scope, topic: Topic, payloads: readonly string[]): void {
    let numbers = this.#nextOut.get(scope);
    if (numbers === undefined) this.#nextOut.set(scope, (numbers = new Map()));
    const seq = numbers.get(topic) ?? 0;
    const text = `${JSON.stringify([this.#node, seq])}\n${payloads.join("\n")}`;
    const limit = this.#bus.maxPayload ?? Number.POSITIVE_INFINITY;
    if (text.length * 3 > limit && payloads.length > 1 && Buffer.byteLength(text) > limit) {
      const half = payloads.length >> 1;
      this.#publish(scope, topic, payloads.slice(0, half));
      this.#publish(scope, topic, payloads.slice(half));
      return;
    }
    const published = this.#bus.publish({ kind: "topic", scope, topic }, text);
    if (published === false || published === "full") {
      // Not numbered: the next text takes these numbers, so no receiver sees a gap and counts
      // these again. The transport's reason is the one counted.
      if (published === "full") this.countDropped(payloads.length);
      else this.counters.droppedDisconnected += payloads.length;
      return;
    }
    numbers.set(topic, seq + payloads.length);
    this.#hold(text.length, payloads.length);
    // The broker may have taken a text whose answer was lost: a text really lost is counted by
    // each receiver, as the gap it leaves, and not here.
    if (published !== true) published.catch(() => undefined);
  }

  /** Remembers a text the transport took, for {@link BusLink.heldMessages}. */
  #hold(size: number, messages: number): void {
    if (this.#bus.heldBytes === undefined) return;
    this.#held.push({ size, messages });
    this.#heldSize += size;
    this.#heldCount += messages;
  }

  #onMessages(scope: Scope, topic: Topic, text: string): void {
    const lines = text.split("\n");
    let header: unknown;
    try {
      header = JSON.parse(lines[0] as string);
    } catch {
      return this.#events.malformed();
    }
    const [origin, seq] = Array.isArray(header) ? header : [];
    const payloads = lines.slice(1);
    // A payload is checked where it is decoded; here, only that there is one.
    if (!isNode(origin) || !Number.isSafeInteger(seq) || (seq as number) < 0 || payloads.length === 0) return this.#events.malformed();
    if (origin === this.#node) return;
    let byScope = this.#nextIn.get(origin);
    if (byScope === undefined) this.#nextIn.set(origin, (byScope = new Map()));
    let numbers = byScope.get(scope);
    if (numbers === undefined) byScope.set(scope, (numbers = new Map()));
    const expected = numbers.get(topic) ?? (seq as number);
    const first = seq as number;
    let fresh = payloads;
    if (first > expected) this.counters.droppedDisconnected += first - expected;
    else if (first < expected) fresh = fresh.slice(expected - first); // Seen already.
    numbers.set(topic, Math.max(expected, first + payloads.length));
    if (fresh.length === 0) return;
    this.counters.received += fresh.length;
    this.handler?.onFrame(this, fresh.length === 1 ? ["m", scope, topic, fresh[0]] : ["M", scope, topic, fresh]);
  }

  /** Records what this host wants; subscribes or unsubscribes its channel. `true` if it changed. */
  #setMine(scope: Scope, topic: Topic, on: boolean): boolean {
    let topics = this.#mine.get(scope);
    if (on === (topics?.has(topic) ?? false)) return false;
    const channel: BusChannel = { kind: "topic", scope, topic };
    if (on) {
      if (topics === undefined) this.#mine.set(scope, (topics = new Set()));
      topics.add(topic);
      this.#bus.subscribe(channel);
    } else {
      topics?.delete(topic);
      if (topics?.size === 0) this.#mine.delete(scope);
      this.#bus.unsubscribe(channel);
      // Numbers start afresh when the channel is subscribed again.
      for (const byScope of this.#nextIn.values()) byScope.get(scope)?.delete(topic);
    }
    return true;
  }

  #interest(): InterestKey[] {
    const keys: InterestKey[] = [];
    for (const [scope, topics] of this.#mine) for (const topic of topics) keys.push([scope, topic]);
    return keys;
  }

  #union(): InterestKey[] {
    const keys: InterestKey[] = [];
    for (const [scope, topics] of this.#wanted) for (const [topic] of topics) keys.push([scope, topic]);
    return keys;
  }

  /** A host said hello: what it wants replaces what was known. */
  #hello(origin: string, interest: readonly InterestKey[]): void {
    let host = this.#hosts.get(origin);
    if (host === undefined) {
      // A client of the broker making up node ids must not grow the table without end.
      if (this.#hosts.size >= MAX_BUS_HOSTS || interest.length > MAX_INTEREST_PER_LINK) return this.#events.malformed();
      this.#hosts.set(origin, (host = { interest: new Map(), heard: true, silent: 0 }));
    } else if (interest.length > MAX_INTEREST_PER_LINK) {
      return this.#events.malformed();
    }
    const wanted = new Set(interest.map(([scope, topic]) => JSON.stringify([scope, topic])));
    for (const [scope, topics] of [...host.interest]) {
      for (const topic of [...topics]) if (!wanted.has(JSON.stringify([scope, topic]))) this.#setInterest(host.interest, scope, topic, false);
    }
    for (const [scope, topic] of interest) this.#setInterest(host.interest, scope, topic, true);
  }

  /** A host this link does not know spoke: it asks for its hello. */
  #greet(origin: string): void {
    this.#sayHello({ kind: "node", node: origin }, 0);
  }

  /** Records a change of one host's interest; tells the hub when the union changes. */
  #setInterest(interest: Map<Scope, Set<Topic>>, scope: Scope, topic: Topic, on: boolean): void {
    let topics = interest.get(scope);
    if (on === (topics?.has(topic) ?? false)) return;
    if (on) {
      if (topics === undefined) interest.set(scope, (topics = new Set()));
      topics.add(topic);
    } else {
      topics?.delete(topic);
      if (topics?.size === 0) interest.delete(scope);
    }
    let counts = this.#wanted.get(scope);
    if (counts === undefined) this.#wanted.set(scope, (counts = new Map()));
    const before = counts.get(topic) ?? 0;
    const after = before + (on ? 1 : -1);
    if (after === 0) {
      counts.delete(topic);
      if (counts.size === 0) this.#wanted.delete(scope);
    } else counts.set(topic, after);
    if ((before === 0) !== (after === 0)) this.handler?.onFrame(this, ["i", scope, topic, on ? 1 : 0]);
  }

  /** Forgets a host that said bye or fell silent: its interest, and every sync's wait for it. */
  #forget(origin: string): void {
    const host = this.#hosts.get(origin);
    if (host === undefined) return;
    for (const [scope, topics] of [...host.interest]) for (const topic of [...topics]) this.#setInterest(host.interest, scope, topic, false);
    this.#hosts.delete(origin);
    this.#nextIn.delete(origin);
    for (const [id] of this.#syncs) this.#answered(id, origin);
  }

  async #sync(id: number): Promise<void> {
    try {
      await this.#bus.flush();
    } catch {
      // The broker is away: the hosts it reaches are waited for as usual, or forgotten.
    }
    const waiting = new Set(this.#hosts.keys());
    this.#syncs.set(id, waiting);
    for (const node of waiting) this.#say({ kind: "node", node }, ["s", this.#node, id]);
    if (waiting.size === 0) this.#answered(id, "");
  }

  #answered(id: number, origin: string): void {
    const waiting = this.#syncs.get(id);
    if (waiting === undefined) return;
    waiting.delete(origin);
    if (waiting.size !== 0) return;
    this.#syncs.delete(id);
    this.handler?.onFrame(this, ["S", id]);
  }

  #tick(): void {
    this.#say(HOSTS, ["k", this.#node]);
    const answered = this.#probe === "answered";
    // A probe that has not come back is a broker that stalls: no second one piles up behind it.
    if (this.#probe !== "waiting") {
      this.#probe = "waiting";
      this.#bus.flush().then(
        () => (this.#probe = "answered"),
        () => (this.#probe = "failed"),
      );
    }
    // Silence while the broker did not answer is the broker's, not the hosts'.
    if (!answered) return;
    for (const [node, host] of [...this.#hosts]) {
      if (host.heard) {
        host.heard = false;
        host.silent = 0;
      } else if (++host.silent >= SILENT_TICKS) this.#forget(node);
    }
  }

  /**
   * Says hello with everything this host wants. A hello too long for the broker goes as a
   * shorter hello and then one interest frame per topic left, which the far side reads alike.
   */
  #sayHello(channel: BusChannel, reply: 0 | 1): void {
    const interest = this.#interest();
    const limit = (this.#bus.maxPayload ?? Number.POSITIVE_INFINITY) - TEXT_OVERHEAD;
    let first = interest.length;
    while (first > 1 && Buffer.byteLength(JSON.stringify(interest.slice(0, first))) > limit) first >>= 1;
    this.#say(channel, ["h", this.#node, reply, interest.slice(0, first)]);
    for (const [scope, topic] of interest.slice(first)) this.#say(channel, ["i", this.#node, scope, topic, 1]);
  }

  #say(channel: BusChannel, frame: readonly unknown[]): void {
    // Hosts say hello again after an outage, which makes up for what is lost here.
    const text = JSON.stringify(frame);
    const published = this.#bus.publish(channel, text);
    if (published === false || published === "full") return;
    this.#hold(text.length, 0);
    if (typeof published === "object") published.catch(() => undefined);
  }
}
