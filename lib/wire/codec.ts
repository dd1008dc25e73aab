/**
 * The payload codec: the only module that imports superjson.
 *
 * A payload is encoded once, where it first has to cross a process boundary, and carried as
 * is by every relay after that; it is decoded only where it is delivered.
 */
import superjson from "superjson";
import { RoarError } from "../errors.js";

/** A superjson-encoded payload, as it travels in frames (plain JSON data). */
export interface EncodedPayload {
  json: unknown;
  meta?: unknown;
}

/** Encodes a sendable value (see `sendable.ts`) for a process link. */
export function encodePayload(value: unknown): EncodedPayload {
  return superjson.serialize(value) as EncodedPayload;
}

/** Whether `value` has the shape of an encoded payload. */
export function isEncodedPayload(value: unknown): value is EncodedPayload {
  if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, "json")) return false;
  const meta = (value as { meta?: unknown }).meta;
  return meta === undefined || (typeof meta === "object" && meta !== null && !Array.isArray(meta));
}

/**
 * Decodes a payload that came from another process.
 * @throws {@link RoarError} `ERR_ROAR_MALFORMED` when it is not a valid encoding.
 */
export function decodePayload(payload: unknown): unknown {
  if (!isEncodedPayload(payload)) throw new RoarError("ERR_ROAR_MALFORMED", "a payload is not a superjson encoding");
  try {
    return superjson.deserialize(payload as Parameters<typeof superjson.deserialize>[0]);
  } catch (cause) {
    throw new RoarError("ERR_ROAR_MALFORMED", "a payload could not be decoded", { cause });
  }
}
