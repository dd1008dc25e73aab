/**
 * Router: the handle a program publishes and subscribes through, bound to one scope.
 *
 * A router is thin: it checks arguments, keeps what it made (so `close()` can undo it) and
 * counts, and leaves delivery to its thread's {@link Dispatcher} for the scope.
 */
import { threadDispatchers, type Dispatcher, type ThreadDispatchers } from "./dispatcher.js";
import { RoarError, describe } from "./errors.js";
import { assertSendable } from "./sendable.js";
import { CallbackSubscriber, Subscription, type Subscriber, type SubscriptionOwner } from "./subscription.js";
import type { FlushOptions, Handler, HandlerErrorInfo, RouterOptions, RouterStats, Scope, SubscribeOptions, Topic, Unsubscribe } from "./types.js";
import { assertCapacity, assertFunction, assertOptions, assertScope, assertTopic } from "./validate.js";

/** @internal Runs when a router is made, so the thread can join its host (set by the package entry). */
let onRouterCreated: (() => void) | undefined;

/** @internal Sets what runs when a router is made. */
export function setRouterCreatedHook(hook: () => void): void {
  onRouterCreated = hook;
}

/**
 * Publishes and subscribes within one scope. Make one with {@link createRouter}.
 *
 * Every router of a scope in a thread shares one dispatcher, so two routers of one scope see
 * each other's messages exactly once, and a router receives its own messages.
 */
export class Router implements Disposable {
  /** The scope this router publishes and subscribes in. */
  readonly scope: Scope;
  /** The default buffer size of the subscriptions this router makes. */
  readonly capacity: number;
  readonly #onError: RouterOptions["onError"];
  readonly #dispatchers: ThreadDispatchers;
  readonly #dispatcher: Dispatcher;
  /** What this router made, by topic, so close() can cancel it. */
  readonly #made = new Map<Topic, Set<Subscriber & { cancel(): void }>>();
  readonly #owner: SubscriptionOwner;
  #closed = false;
  #published = 0;
  #delivered = 0;
  #overflow = 0;
  #queueFull = 0;
  /** Whether a publish that finds a full link is refused (`whenFull: "throw"`) rather than dropped there. */
  readonly #strict: boolean;

  /** @internal Use {@link createRouter} (or `Host.createRouter`, which passes its own dispatchers). */
  constructor(options: RouterOptions, dispatchers: ThreadDispatchers = threadDispatchers) {
    assertOptions(options, "options", ["scope", "capacity", "onError", "whenFull"]);
    assertScope(options.scope);
    assertCapacity(options.capacity);
    assertFunction(options.onError, "onError", true);
    if (options.whenFull !== undefined && options.whenFull !== "drop" && options.whenFull !== "throw") {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.whenFull\` must be "drop" or "throw", got ${describe(options.whenFull)}`);
    }
    this.#strict = options.whenFull === "throw";
    this.scope = options.scope;
    this.capacity = options.capacity;
    this.#onError = options.onError;
    this.#dispatchers = dispatchers;
    this.#dispatcher = dispatchers.acquire(this.scope);
    this.#owner = {
      detach: (topic, subscriber) => this.#detach(topic, subscriber),
      countDelivered: () => void this.#delivered++,
      countOverflow: () => void this.#overflow++,
      reportError: (error, info) => this.#reportError(error, info),
      pump: () => dispatchers.pump?.(true),
    };
    if (dispatchers === threadDispatchers) onRouterCreated?.();
  }

  /** `true` once {@link Router.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Subscribes to `topic` in this router's scope, buffering up to `capacity` messages.
   *
   * The subscription sees messages published after this call: at once those published in this
   * thread, and, once {@link Router.flush} has resolved, those published anywhere on the host.
   *
   * @param topic - A non-empty string.
   * @param options - `capacity`, to override the router's default.
   * @throws {@link RoarError} `ERR_ROAR_INVALID_TOPIC`, `ERR_ROAR_INVALID_CAPACITY`,
   * `ERR_ROAR_INVALID_OPTION`, or `ERR_ROAR_CLOSED` after {@link Router.close}.
   *
   * @example
   * ```ts
   * const sub = router.subscribe("events", { capacity: 10 });
   * for await (const event of sub) console.log(event);
   * ```
   */
  subscribe<T = unknown>(topic: Topic, options: SubscribeOptions = {}): Subscription<T> {
    this.#assertOpen("subscribe");
    assertTopic(topic);
    assertOptions(options, "options", ["capacity"]);
    const capacity = options.capacity === undefined ? this.capacity : options.capacity;
    assertCapacity(capacity, "options.capacity");
    const subscription = new Subscription<T>(this.#owner, topic, capacity);
    this.#attach(topic, subscription);
    return subscription;
  }

  /**
   * Calls `handler` with every message on `topic` in this router's scope.
   *
   * A handler that throws, or returns a promise that rejects, never stops delivery to other
   * subscribers: the error goes to the router's `onError`, or to `process.emitWarning`.
   *
   * @returns A function that removes the handler; it is also `Disposable`.
   * @throws {@link RoarError} `ERR_ROAR_INVALID_TOPIC`, `ERR_ROAR_INVALID_OPTION` when
   * `handler` is not a function, or `ERR_ROAR_CLOSED` after {@link Router.close}.
   *
   * @example
   * ```ts
   * const off = router.on("notifications", (message) => console.log(message));
   * off();
   * ```
   */
  on<T = unknown>(topic: Topic, handler: Handler<T>): Unsubscribe {
    this.#assertOpen("on");
    assertTopic(topic);
    assertFunction(handler, "handler");
    const info: HandlerErrorInfo = Object.freeze({ scope: this.scope, topic });
    const subscriber = new CallbackSubscriber(this.#owner, info, handler as Handler);
    this.#attach(topic, subscriber);
    const off = (): void => subscriber.cancel();
    return Object.assign(off, { [Symbol.dispose]: off });
  }

  /**
   * Publishes `message` on `topic` to every subscriber of this scope: those in this thread
   * before `publish` returns, those elsewhere soon after, each exactly once and in the order
   * this router published.
   *
   * Local subscribers receive `message` itself (treat messages as immutable); others receive
   * a copy. A message may hold what superjson and structured clone both carry unchanged
   * (see the README); anything else is refused here, wherever the subscribers are.
   *
   * Like `stream.write()`, it returns `false` when a link the message took (to another
   * thread, process or host) holds half its bound or more, or had to drop it: a producer that
   * must not lose messages then waits for {@link Router.drained} before it publishes more.
   * Nothing requires waiting: a link that fills up drops messages for its slow consumer only,
   * and counts them.
   *
   * @returns `false` when the publisher should wait for {@link Router.drained}
   * @throws {@link RoarError} `ERR_ROAR_INVALID_TOPIC`, `ERR_ROAR_UNSERIALIZABLE`,
   * `ERR_ROAR_QUEUE_FULL` (only with `whenFull: "throw"`), or `ERR_ROAR_CLOSED` after
   * {@link Router.close}.
   *
   * @example
   * ```ts
   * for (const event of events) {
   *   if (!router.publish("events", event)) await router.drained();
   * }
   * ```
   */
  publish(topic: Topic, message: unknown): boolean {
    if (this.#closed) this.#assertOpen("publish");
    assertTopic(topic);
    assertSendable(message);
    const outcome = this.#dispatcher.publish(topic, message, this.#strict);
    this.#published++;
    if (outcome === undefined) return true;
    this.#queueFull += outcome.drops;
    return outcome.drops === 0 && !outcome.pressured;
  }

  /**
   * Resolves once no link of this thread towards other threads, processes or hosts is over
   * its high-water mark — or once those still over it are stuck (a stopped process, a slow
   * consumer already dropping), which a producer must not wait for. Resolves at once when
   * `publish` would return `true`. Like a stream's `'drain'` event.
   *
   * @example
   * ```ts
   * if (!router.publish("events", event)) await router.drained();
   * ```
   */
  drained(): Promise<void> {
    return this.#dispatchers.beyond?.drained() ?? Promise.resolve();
  }

  /**
   * Resolves once everything this router did so far (subscribe, cancel, publish) has reached
   * the host's root relay: a publish made anywhere on the host afterwards reaches this
   * router's subscriptions. In a thread that is alone, it resolves at once.
   *
   * It never waits for ever: a process or host that does not answer within 5 s (a stopped or
   * dead one) makes it reject with `ERR_ROAR_TIMEOUT` naming it, and so does `timeout`.
   *
   * @throws {@link RoarError} `ERR_ROAR_INVALID_OPTION` for a bad `timeout`.
   * @example
   * ```ts
   * const sub = router.subscribe("events");
   * await router.flush(); // now publishes from any worker reach `sub`
   * ```
   */
  flush(options: FlushOptions = {}): Promise<void> {
    assertOptions(options, "options", ["timeout"]);
    const { timeout } = options as FlushOptions;
    if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0 && timeout <= 2 ** 31 - 1)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.timeout\` must be a number of milliseconds from 0 to ${2 ** 31 - 1}, got ${describe(timeout)}`);
    }
    return this.#dispatchers.beyond?.flush(timeout) ?? Promise.resolve();
  }

  /** Counters of this router: published, delivered, and dropped by reason. */
  stats(): RouterStats {
    return { published: this.#published, delivered: this.#delivered, dropped: { overflow: this.#overflow, queueFull: this.#queueFull } };
  }

  /**
   * Cancels every subscription and handler this router made; later calls to `subscribe`,
   * `on` and `publish` throw `ERR_ROAR_CLOSED`. Calling it again does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscribers of [...this.#made.values()]) {
      for (const subscriber of [...subscribers]) subscriber.cancel();
    }
    this.#dispatchers.release(this.#dispatcher);
  }

  /** Closes the router (`using router = createRouter(...)`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #attach(topic: Topic, subscriber: Subscriber & { cancel(): void }): void {
    let subscribers = this.#made.get(topic);
    if (subscribers === undefined) this.#made.set(topic, (subscribers = new Set()));
    subscribers.add(subscriber);
    this.#dispatcher.add(topic, subscriber);
  }

  #detach(topic: Topic, subscriber: Subscriber): void {
    this.#dispatcher.remove(topic, subscriber);
    const subscribers = this.#made.get(topic);
    if (subscribers?.delete(subscriber as Subscriber & { cancel(): void }) && subscribers.size === 0) this.#made.delete(topic);
  }

  #reportError(error: unknown, info: HandlerErrorInfo): void {
    if (this.#onError !== undefined) {
      try {
        this.#onError(error, info);
        return;
      } catch (onErrorFailure) {
        error = new AggregateError([error, onErrorFailure], "a handler failed, and so did `onError`");
      }
    }
    // This must never throw: it runs inside a delivery. The error may be anything — an object
    // whose `message` getter throws, a revoked Proxy — so each step that reads it is guarded.
    let what: string;
    try {
      what = error instanceof Error ? String(error.message) : describe(error);
    } catch {
      what = "(an error that cannot be described)";
    }
    const text = `a handler of topic ${describe(info.topic)} in scope ${describe(info.scope)} failed: ${what} (pass \`onError\` to createRouter to handle it)`;
    // emitWarning ignores its options when given an Error, so the handler's error rides as
    // `cause`. It refuses an Error from another realm (a vm context, jest), so fall back to text.
    try {
      const warning = new Error(text, { cause: error });
      warning.name = "RoarHandlerWarning";
      Object.assign(warning, { code: "ERR_ROAR_HANDLER" });
      process.emitWarning(warning);
    } catch {
      try {
        process.emitWarning(text, { type: "RoarHandlerWarning", code: "ERR_ROAR_HANDLER" });
      } catch {
        // Only a replaced process.emitWarning gets here; delivery must go on regardless.
      }
    }
  }

  #assertOpen(operation: string): void {
    if (this.#closed) {
      throw new RoarError("ERR_ROAR_CLOSED", `cannot ${operation}: the router of scope ${describe(this.scope)} is closed`);
    }
  }
}

/**
 * Makes a router for `scope` whose subscriptions buffer `capacity` messages by default.
 *
 * @throws {@link RoarError} `ERR_ROAR_INVALID_SCOPE`, `ERR_ROAR_INVALID_CAPACITY` or
 * `ERR_ROAR_INVALID_OPTION` for bad options.
 *
 * @example
 * ```ts
 * const router = roar.createRouter({ scope: "my_app", capacity: 100 });
 * ```
 */
export function createRouter(options: RouterOptions): Router {
  return new Router(options);
}
