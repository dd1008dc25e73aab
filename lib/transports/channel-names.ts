/**
 * Channel names on a broker: a scope, a topic or a node id made safe for any broker.
 *
 * Every byte of the name's UTF-8 outside `A–Z a–z 0–9 _ -` is written `~XX` (hex), `~`
 * included, so the result has no separators, wildcards or spaces (NATS's `.`, `*`, `>`;
 * Redis's pattern characters), and two different names never meet in one channel.
 */
import type { BusChannel } from "../transport.js";

const SAFE = /^[A-Za-z0-9_-]*$/;

/** `name` with every byte a broker may treat specially escaped as `~XX`. */
export function escapeName(name: string): string {
  if (SAFE.test(name)) return name;
  let escaped = "";
  for (const byte of Buffer.from(name)) {
    const char = String.fromCharCode(byte);
    escaped += byte < 0x80 && SAFE.test(char) ? char : `~${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return escaped;
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
