/**
 * The payload codec: the only module that imports superjson.
 *
 * A payload is encoded once, where it first has to cross a process boundary, and carried as
 * is — a string — by every relay after that; it is decoded only where it is delivered.
 * Carrying a string rather than superjson's `{ json, meta }` object means the decoder parses
 * it in its own realm: superjson does not recognise objects made by another realm's `Object`
 * (as IPC messages are, seen from a `vm` context such as jest's), and would skip their types.
 */
import superjson from "superjson";
import { RoarError } from "../errors.js";
import { assertSendable, assertSendableJson } from "../sendable.js";

/** A superjson-encoded payload, as it travels in frames. */
export type EncodedPayload = string;

/**
 * Encodes a sendable value (see `sendable.ts`) for a process link.
 *
 * Most messages are flat JSON — a string, or an object or array of strings, finite numbers,
 * booleans and nulls — for which superjson adds no `meta` and whose walk is pure overhead:
 * those are written in superjson's format by `JSON.stringify` directly. Anything else (nested
 * objects, whose shared references superjson keeps, or any type JSON lacks) goes to superjson.
 */
export function encodePayload(value: unknown): EncodedPayload {
  return isFlatJson(value) ? `{"json":${JSON.stringify(value)}}` : superjson.stringify(value);
}

function isJsonPrimitive(value: unknown): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    default:
      return value === null;
  }
}

function isFlatJson(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return isJsonPrimitive(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isJsonPrimitive(value[i])) return false;
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) if (!isJsonPrimitive((value as Record<string, unknown>)[key])) return false;
  return true;
}

/** Whether `value` has the shape of an encoded payload. */
export function isEncodedPayload(value: unknown): value is EncodedPayload {
  return typeof value === "string";
}

/**
 * Decodes a payload that came from another process or host.
 *
 * The peer may be hostile: what it sent is checked as `publish` checks a message, so a
 * subscriber never receives what no local `publish` could have sent (an own `__proto__` key,
 * nesting deeper than MAX_DEPTH, or a type superjson knows but a message may not hold, such as
 * an Error or binary data).
 * @throws {@link RoarError} `ERR_ROAR_MALFORMED` when it is not a valid encoding of a sendable value.
 */
export function decodePayload(payload: EncodedPayload): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch (cause) {
    throw new RoarError("ERR_ROAR_MALFORMED", "a payload is not JSON", { cause });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || !Object.hasOwn(parsed, "json")) {
    throw new RoarError("ERR_ROAR_MALFORMED", "a payload is not a superjson encoding: it has no `json` field");
  }
  const meta: unknown = (parsed as { meta?: unknown }).meta;
  // Without meta, superjson would only copy what JSON.parse just made in this realm.
  if (meta === undefined) return checked((parsed as { json: unknown }).json, assertSendableJson);
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) {
    throw new RoarError("ERR_ROAR_MALFORMED", "a payload's superjson `meta` is not an object");
  }
  let value: unknown;
  try {
    // In place, as superjson.parse does: `parsed` is this call's own, and superjson's copy would
    // silently drop an own `__proto__` key that the check after this must see and refuse.
    value = superjson.deserialize(parsed as Parameters<typeof superjson.deserialize>[0], { inPlace: true });
  } catch (cause) {
    throw new RoarError("ERR_ROAR_MALFORMED", "a payload could not be decoded", { cause });
  }
  return checked(value, assertSendable);
}

/** `value`, once `check` (which throws ERR_ROAR_UNSERIALIZABLE) found it sendable. */
function checked(value: unknown, check: (value: unknown) => void): unknown {
  try {
    check(value);
  } catch (cause) {
    throw new RoarError("ERR_ROAR_MALFORMED", `a payload holds what a message may not: ${(cause as Error).message}`, { cause });
  }
  return value;
}
