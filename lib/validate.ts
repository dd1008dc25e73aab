/**
 * Argument checks at the public edge. Each throws a {@link RoarError} whose message names the
 * parameter, the value it got and what is allowed; none of them has side effects.
 */
import { MAX_NAME_LENGTH, RoarError, describe, type RoarErrorCode } from "./errors.js";

function assertName(value: unknown, parameter: string, code: RoarErrorCode): asserts value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_NAME_LENGTH) {
    throw new RoarError(
      code,
      `\`${parameter}\` must be a non-empty string of at most ${MAX_NAME_LENGTH} characters, got ${describe(value)}`,
    );
  }
}

/** Throws `ERR_ROAR_INVALID_SCOPE` unless `scope` is a valid scope name. */
export function assertScope(scope: unknown): asserts scope is string {
  assertName(scope, "scope", "ERR_ROAR_INVALID_SCOPE");
}

/** Throws `ERR_ROAR_INVALID_TOPIC` unless `topic` is a valid topic name. */
export function assertTopic(topic: unknown): asserts topic is string {
  // Inlined fast path: publish() calls this for every message.
  if (typeof topic === "string" && topic.length !== 0 && topic.length <= MAX_NAME_LENGTH) return;
  assertName(topic, "topic", "ERR_ROAR_INVALID_TOPIC");
}

/** Throws `ERR_ROAR_INVALID_CAPACITY` unless `capacity` is a positive safe integer. */
export function assertCapacity(capacity: unknown, parameter = "capacity"): asserts capacity is number {
  if (!Number.isSafeInteger(capacity) || (capacity as number) < 1) {
    throw new RoarError(
      "ERR_ROAR_INVALID_CAPACITY",
      `\`${parameter}\` must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}, got ${describe(capacity)}`,
    );
  }
}

/**
 * Throws `ERR_ROAR_INVALID_OPTION` unless `options` is a plain object whose keys are all in
 * `allowed`: a misspelt option is a bug the caller wants to hear about, not a silent default.
 */
export function assertOptions(options: unknown, parameter: string, allowed: readonly string[]): asserts options is Record<string, unknown> {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`${parameter}\` must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new RoarError(
        "ERR_ROAR_INVALID_OPTION",
        `unknown option \`${parameter}.${key}\`; allowed: ${allowed.map((name) => `\`${name}\``).join(", ")}`,
      );
    }
  }
}

/** Throws `ERR_ROAR_INVALID_OPTION` unless `value` is a function (or undefined, where `optional`). */
export function assertFunction(value: unknown, parameter: string, optional = false): void {
  if (typeof value === "function" || (optional && value === undefined)) return;
  throw new RoarError(
    "ERR_ROAR_INVALID_OPTION",
    `\`${parameter}\` must be a function${optional ? " or undefined" : ""}, got ${describe(value)}`,
  );
}
