/**
 * Errors: one {@link RoarError} class whose stable `code` says what went wrong.
 *
 * Callers branch on `error.code` (or `instanceof RoarError`); the code survives when an error
 * crosses a process boundary as plain data, the class does not. Messages name the parameter,
 * the offending value and what is allowed, and may change wording between releases; codes do not.
 */

/** Every code a {@link RoarError} can carry. */
export type RoarErrorCode =
  /** A scope is not a non-empty string of at most {@link MAX_NAME_LENGTH} characters. */
  | "ERR_ROAR_INVALID_SCOPE"
  /** A topic is not a non-empty string of at most {@link MAX_NAME_LENGTH} characters. */
  | "ERR_ROAR_INVALID_TOPIC"
  /** A capacity is not a positive safe integer. */
  | "ERR_ROAR_INVALID_CAPACITY"
  /** An option is unknown or of the wrong type (a handler that is not a function, say). */
  | "ERR_ROAR_INVALID_OPTION"
  /** `next({ timeout })` waited longer than its timeout. */
  | "ERR_ROAR_TIMEOUT"
  /** The subscription was cancelled while a `next()` waited. */
  | "ERR_ROAR_CANCELLED"
  /** The `signal` given to `next()` was aborted; `cause` holds the signal's reason. */
  | "ERR_ROAR_ABORTED"
  /** A published message holds a value that cannot be sent to another thread or host. */
  | "ERR_ROAR_UNSERIALIZABLE"
  /** The router, subscription or relay was used after it was closed, or its link went down. */
  | "ERR_ROAR_CLOSED"
  /** A frame or payload from another process was not valid; it was dropped and counted. */
  | "ERR_ROAR_MALFORMED"
  /** A publish with `whenFull: "throw"` found a link that holds its bound; nothing was sent. */
  | "ERR_ROAR_QUEUE_FULL"
  /** roar cannot work where it was asked to (a tinypool `child_process` worker, say). */
  | "ERR_ROAR_UNSUPPORTED";

/** The longest scope or topic accepted, in UTF-16 code units. */
export const MAX_NAME_LENGTH = 1024;

/**
 * The one error class roar throws or rejects with.
 *
 * @example
 * ```ts
 * try {
 *   router.subscribe("");
 * } catch (error) {
 *   if (error instanceof RoarError && error.code === "ERR_ROAR_INVALID_TOPIC") { ... }
 * }
 * ```
 */
export class RoarError extends Error {
  /** The stable code of this kind of failure. */
  readonly code: RoarErrorCode;

  /**
   * @param code - What kind of failure this is.
   * @param message - What was wrong and what is allowed.
   * @param options - `cause`, where another error or reason lies behind this one.
   */
  constructor(code: RoarErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RoarError";
    this.code = code;
  }
}

/** Renders a rejected value for an error message: strings quoted, the rest by type. */
export function describe(value: unknown): string {
  if (typeof value === "string") {
    return value.length > 64 ? `${JSON.stringify(value.slice(0, 64))}… (${value.length} characters)` : JSON.stringify(value);
  }
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return value.toString();
  if (typeof value === "bigint") return `${value}n`;
  return String(value);
}
