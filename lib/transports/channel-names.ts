/**
 * Channel names on a broker: a scope, a topic or a node id made safe for any broker.
 *
 * Every byte of the name's UTF-8 outside `A–Z a–z 0–9 _ -` is written `~XX` (hex), `~`
 * included, so the result has no separators, wildcards or spaces (NATS's `.`, `*`, `>`;
 * Redis's pattern characters), and two different names never meet in one channel. A name
 * whose escaped form is longer than {@link MAX_PART} is written `~H` and its SHA-256 instead
 * (`H` is not a hex digit, so no escaped name looks like that): a subject must fit in a NATS
 * server's control line (4 KiB by default), and a name may be 1,024 characters of 9 escaped
 * bytes each.
 */
import { createHash } from "node:crypto";
import type { BusChannel } from "../transport.js";

/** The longest escaped name written as it is; longer ones are hashed. */
export const MAX_PART = 200;

const SAFE = /^[A-Za-z0-9_-]*$/;
/** In a `u` pattern, a surrogate pair is one code point: what this matches is alone. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** `name` with every byte a broker may treat specially escaped as `~XX`, or hashed if that is long. */
export function escapeName(name: string): string {
  let escaped = name;
  if (LONE_SURROGATE.test(name)) {
    // A lone surrogate has no UTF-8: each UTF-16 unit is written instead, after `~U` (not a
    // hex digit, so no other escaped name looks like that).
    escaped = "~U";
    for (let i = 0; i < name.length; i++) escaped += name.charCodeAt(i).toString(16).toUpperCase().padStart(4, "0");
  } else if (!SAFE.test(name)) {
    escaped = "";
    for (const byte of Buffer.from(name)) {
      const char = String.fromCharCode(byte);
      escaped += byte < 0x80 && SAFE.test(char) ? char : `~${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  return escaped.length <= MAX_PART ? escaped : `~H${createHash("sha256").update(escaped).digest("hex")}`;
}

/** The broker's name for `channel`: `prefix`, a kind letter and the escaped names, joined by `separator`. */
export function channelName(prefix: string, separator: string, channel: BusChannel): string {
  switch (channel.kind) {
    case "topic":
      return [prefix, "t", escapeName(channel.scope), escapeName(channel.topic)].join(separator);
    case "node":
      return [prefix, "n", escapeName(channel.node)].join(separator);
    case "hosts":
      return [prefix, "h"].join(separator);
  }
}

/** The most names a {@link ChannelNames} remembers before it starts afresh. */
const MAX_REMEMBERED = 10_000;

/** {@link channelName} with the names of recent topics remembered: a publish names its channel once. */
export class ChannelNames {
  readonly #prefix: string;
  readonly #separator: string;
  #topics = new Map<string, Map<string, string>>();
  #remembered = 0;

  constructor(prefix: string, separator: string) {
    this.#prefix = prefix;
    this.#separator = separator;
  }

  /** The broker's name for `channel`. */
  of(channel: BusChannel): string {
    if (channel.kind !== "topic") return channelName(this.#prefix, this.#separator, channel);
    let topics = this.#topics.get(channel.scope);
    let name = topics?.get(channel.topic);
    if (name !== undefined) return name;
    name = channelName(this.#prefix, this.#separator, channel);
    // Topics may be made up per message ("user:123"): what is remembered stays bounded.
    if (++this.#remembered > MAX_REMEMBERED) {
      this.#topics = new Map();
      this.#remembered = 1;
      topics = undefined;
    }
    if (topics === undefined) this.#topics.set(channel.scope, (topics = new Map()));
    topics.set(channel.topic, name);
    return name;
  }
}
