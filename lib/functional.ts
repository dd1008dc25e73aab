/**
 * The seed library's functional style: `roar.subscribe(router, topic)` and friends, each the
 * same as the method of the same name.
 */
import type { Router } from "./router.js";
import type { Subscription } from "./subscription.js";
import type { Handler, SubscribeOptions, Topic, Unsubscribe } from "./types.js";

/**
 * Same as {@link Router.subscribe}.
 * @example
 * ```ts
 * const sub = roar.subscribe(router, "events");
 * ```
 */
export function subscribe<T = unknown>(router: Router, topic: Topic, options?: SubscribeOptions): Subscription<T> {
  return router.subscribe<T>(topic, options);
}

/**
 * Same as {@link Router.on}.
 * @example
 * ```ts
 * const cancel = roar.on(router, "notifications", (message) => console.log(message));
 * ```
 */
export function on<T = unknown>(router: Router, topic: Topic, handler: Handler<T>): Unsubscribe {
  return router.on<T>(topic, handler);
}

/**
 * Same as {@link Router.publish}.
 * @example
 * ```ts
 * roar.publish(router, "events", "Hello, cluster!");
 * ```
 */
export function publish(router: Router, topic: Topic, message: unknown): boolean {
  return router.publish(topic, message);
}
