/**
 * roar: distributed publish/subscribe for Node.js.
 *
 * This is the public surface; nothing in `lib/` imports it.
 * @packageDocumentation
 */
export { RoarError, MAX_NAME_LENGTH, type RoarErrorCode } from "./errors.js";
export { createRouter, createRouter as new, Router } from "./router.js";
export { Subscription } from "./subscription.js";
export { subscribe, on, publish } from "./functional.js";
export { MAX_DEPTH } from "./sendable.js";
export type {
  Handler,
  HandlerErrorInfo,
  NextOptions,
  ReceiveResult,
  RouterOptions,
  RouterStats,
  Scope,
  SubscribeOptions,
  Topic,
  Unsubscribe,
} from "./types.js";
