/**
 * Subscriptions: what a dispatcher delivers to. A {@link Subscription} buffers messages for
 * its reader; a {@link CallbackSubscriber} hands each one to a handler at once.
 */
import { RoarError, describe } from "./errors.js";
import { RingBuffer } from "./ring-buffer.js";
import type { Handler, HandlerErrorInfo, NextOptions, ReceiveResult, Topic } from "./types.js";
import { assertOptions } from "./validate.js";

/** @internal What a dispatcher calls: one method, so delivery is one virtual call per subscriber. */
export interface Subscriber {
  /** `false` once cancelled: a delivery already under way skips it. */
  readonly active: boolean;
  /** Hands over one message; never throws. */
  deliver(message: unknown): void;
}

/** @internal The router side of a subscription: counters, error reporting and removal. */
export interface SubscriptionOwner {
  /** Removes the subscriber from its dispatcher and from the owner's books. */
  detach(topic: Topic, subscriber: Subscriber): void;
  /** Counts one message handed over. */
  countDelivered(): void;
  /** Counts one message lost to overflow. */
  countOverflow(): void;
  /** Hands a handler's error to `onError` or `process.emitWarning`; never throws. */
  reportError(error: unknown, info: HandlerErrorInfo): void;
  /** Synchronously takes in what other threads already sent, and sends what waits, where this thread can. */
  pump(): void;
}

const EMPTY: ReceiveResult<never> = Object.freeze({ ok: false });

interface Waiter<T> {
  resolve(value: T): void;
  /** Called with the reason the subscription ended. */
  end(reason: RoarError): void;
}

/**
 * A buffered subscription to one topic, made by {@link Router.subscribe}.
 *
 * Messages wait in a buffer of {@link Subscription.capacity} until read with
 * {@link Subscription.receive}, {@link Subscription.next} or `for await`. When the buffer is full,
 * the oldest message is dropped and counted in {@link Subscription.dropped}. A subscription lives
 * until {@link Subscription.cancel} (or its router's `close()`); breaking out of `for await`
 * cancels it.
 *
 * @example
 * ```ts
 * using sub = router.subscribe("events");
 * router.publish("events", "hi");
 * sub.receive(); // { ok: true, value: "hi" }
 * ```
 */
export class Subscription<T = unknown> implements Subscriber, AsyncIterable<T>, Disposable, AsyncDisposable {
  /** The topic this subscription receives. */
  readonly topic: Topic;
  #owner: SubscriptionOwner;
  #buffer: RingBuffer<T>;
  #waiters: Waiter<T>[] = [];
  #dropped = 0;
  #active = true;

  /** @internal Made by {@link Router.subscribe}. */
  constructor(owner: SubscriptionOwner, topic: Topic, capacity: number) {
    this.#owner = owner;
    this.topic = topic;
    this.#buffer = new RingBuffer<T>(capacity);
  }

  /** How many messages the buffer holds at most. */
  get capacity(): number {
    return this.#buffer.capacity;
  }

  /** How many messages are buffered now. */
  get size(): number {
    return this.#buffer.size;
  }

  /** How many messages were dropped, oldest first, because the buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** `true` once the subscription is cancelled; it then receives nothing more. */
  get closed(): boolean {
    return !this.#active;
  }

  /** @internal */
  get active(): boolean {
    return this.#active;
  }

  /** @internal Called by the dispatcher, once per message. */
  deliver(message: unknown): void {
    this.#owner.countDelivered();
    if (this.#waiters.length !== 0) {
      (this.#waiters.shift() as Waiter<T>).resolve(message as T);
    } else if (this.#buffer.push(message as T)) {
      this.#dropped++;
      this.#owner.countOverflow();
    }
  }

  /**
   * Takes the oldest buffered message without waiting.
   *
   * In a worker thread that is busy in synchronous work, this first takes in what other
   * threads have already sent, so a long task still sees messages.
   *
   * @returns `{ ok: true, value }`, or `{ ok: false }` when nothing is buffered (or the
   * subscription is cancelled).
   */
  receive(): ReceiveResult<T> {
    if (this.#buffer.size === 0) {
      if (!this.#active) return EMPTY;
      this.#owner.pump();
      if (this.#buffer.size === 0) return EMPTY;
    }
    return { ok: true, value: this.#buffer.shift() as T };
  }

  /**
   * Waits for the next message.
   *
   * Concurrent calls are served in the order they were made, one message each.
   *
   * @param options - `timeout` in milliseconds and an abort `signal`; see {@link NextOptions}.
   * @throws {@link RoarError} `ERR_ROAR_INVALID_OPTION` for a bad option.
   * @returns A promise of the message. It rejects with a {@link RoarError}: `ERR_ROAR_TIMEOUT`
   * after `timeout`, `ERR_ROAR_ABORTED` when `signal` aborts, `ERR_ROAR_CANCELLED` when the
   * subscription is (or already was) cancelled.
   *
   * @example
   * ```ts
   * const message = await sub.next({ timeout: 1000 });
   * ```
   */
  next(options: NextOptions = {}): Promise<T> {
    assertOptions(options, "options", ["timeout", "signal"]);
    const { timeout, signal } = options;
    if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0 && timeout <= 2 ** 31 - 1)) {
      throw new RoarError(
        "ERR_ROAR_INVALID_OPTION",
        `\`options.timeout\` must be a number of milliseconds from 0 to ${2 ** 31 - 1}, got ${describe(timeout)}`,
      );
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.signal\` must be an AbortSignal, got ${describe(signal)}`);
    }
    const ready = this.receive();
    if (ready.ok) return Promise.resolve(ready.value);
    if (!this.#active) return Promise.reject(cancelled(this.topic));
    if (signal?.aborted) return Promise.reject(aborted(signal));

    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter<T> = {
        resolve: (value) => {
          settle();
          resolve(value);
        },
        end: (reason) => {
          settle();
          reject(reason);
        },
      };
      const giveUp = (reason: RoarError): void => {
        const index = this.#waiters.indexOf(waiter);
        if (index !== -1) this.#waiters.splice(index, 1);
        waiter.end(reason);
      };
      const onAbort = (): void => giveUp(aborted(signal as AbortSignal));
      if (timeout !== undefined) {
        timer = setTimeout(
          () => giveUp(new RoarError("ERR_ROAR_TIMEOUT", `no message on topic ${describe(this.topic)} within ${timeout} ms`)),
          timeout,
        );
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /**
   * Iterates over messages as they arrive. The loop ends when the subscription is cancelled;
   * leaving it early (`break`, `return`, a throw) cancels the subscription.
   *
   * @example
   * ```ts
   * for await (const message of router.subscribe("events")) {
   *   if (message === "stop") break; // cancels the subscription
   * }
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    const done: IteratorReturnResult<undefined> = { done: true, value: undefined };
    return {
      next: () => {
        const ready = this.receive();
        if (ready.ok) return Promise.resolve({ done: false, value: ready.value });
        if (!this.#active) return Promise.resolve(done);
        return new Promise<IteratorResult<T>>((resolve) => {
          this.#waiters.push({ resolve: (value) => resolve({ done: false, value }), end: () => resolve(done) });
        });
      },
      return: () => {
        this.cancel();
        return Promise.resolve(done);
      },
    };
  }

  /**
   * Stops the subscription: it receives nothing more, its buffer is emptied, waiting
   * {@link Subscription.next} calls reject with `ERR_ROAR_CANCELLED` and `for await` loops end.
   * Calling it again does nothing.
   */
  cancel(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#buffer.clear();
    this.#owner.detach(this.topic, this);
    // The reason is an Error, whose stack costs microseconds: made only when someone waits,
    // so cancelling 100k idle subscriptions (a router's close()) stays O(1) each and cheap.
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    const reason = cancelled(this.topic);
    for (const waiter of waiters) waiter.end(reason);
  }

  /** Cancels the subscription (`using sub = router.subscribe(...)`). */
  [Symbol.dispose](): void {
    this.cancel();
  }

  /** Cancels the subscription (`await using sub = router.subscribe(...)`). */
  [Symbol.asyncDispose](): Promise<void> {
    this.cancel();
    return Promise.resolve();
  }
}

/** @internal A handler registered with {@link Router.on}. */
export class CallbackSubscriber implements Subscriber {
  active = true;
  readonly #owner: SubscriptionOwner;
  readonly #handler: Handler;
  readonly #info: HandlerErrorInfo;

  constructor(owner: SubscriptionOwner, info: HandlerErrorInfo, handler: Handler) {
    this.#owner = owner;
    this.#info = info;
    this.#handler = handler;
  }

  deliver(message: unknown): void {
    this.#owner.countDelivered();
    try {
      const result = this.#handler(message);
      if (result != null && typeof (result as PromiseLike<void>).then === "function") {
        (result as PromiseLike<void>).then(undefined, (error: unknown) => this.#owner.reportError(error, this.#info));
      }
    } catch (error) {
      this.#owner.reportError(error, this.#info);
    }
  }

  cancel(): void {
    if (!this.active) return;
    this.active = false;
    this.#owner.detach(this.#info.topic, this);
  }
}

function cancelled(topic: Topic): RoarError {
  return new RoarError("ERR_ROAR_CANCELLED", `the subscription to topic ${describe(topic)} was cancelled`);
}

function aborted(signal: AbortSignal): RoarError {
  return new RoarError("ERR_ROAR_ABORTED", "`next()` was aborted by its signal", { cause: signal.reason });
}
