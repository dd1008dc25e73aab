/**
 * Domain names and option shapes shared by the public API. Type-only: no runtime code.
 */

/** A namespace of topics. Routers of one scope see each other's messages; scopes never mix. */
export type Scope = string;

/** A topic within a scope, e.g. `"orders:created"`. Any non-empty string, `"__proto__"` included. */
export type Topic = string;

/** What {@link Subscription.receive} returns: a message, or word that none is buffered. */
export type ReceiveResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false };

/** Where a handler's error came from, as passed to {@link RouterOptions.onError}. */
export interface HandlerErrorInfo {
  /** The scope of the router that registered the handler. */
  readonly scope: Scope;
  /** The topic whose message the handler was given. */
  readonly topic: Topic;
}

/** Options of {@link createRouter}. */
export interface RouterOptions {
  /** The scope this router publishes and subscribes in: a non-empty string. */
  scope: Scope;
  /** The default buffer size, in messages, of each subscription this router makes: an integer ≥ 1. */
  capacity: number;
  /**
   * Called with what a handler registered through {@link Router.on} threw or rejected with.
   * @defaultValue reports through `process.emitWarning`, so nothing is swallowed silently.
   */
  onError?: (error: unknown, info: HandlerErrorInfo) => void;
  /**
   * What `publish` does when a link its message must take (to another thread, process or
   * host) holds its bound (see `RelayOptions.maxQueue`): `"drop"` drops the message for that
   * link and counts it in `dropped.queueFull`, as a slow consumer's messages are; `"throw"`
   * refuses the whole publish with `ERR_ROAR_QUEUE_FULL` before anything is delivered, so
   * the caller can wait for {@link Router.drained} and publish again.
   * @defaultValue "drop"
   */
  whenFull?: "drop" | "throw";
}

/** Options of {@link Router.subscribe}. */
export interface SubscribeOptions {
  /** This subscription's buffer size in messages, an integer ≥ 1. @defaultValue the router's `capacity` */
  capacity?: number;
}

/** Options of {@link Router.flush}. */
export interface FlushOptions {
  /**
   * Reject with `ERR_ROAR_TIMEOUT`, naming what did not answer, after this many milliseconds.
   * A process or host that does not answer a sync within 5 s is named sooner, in the same way.
   * @defaultValue 10000
   */
  timeout?: number | undefined;
}

/** Options of {@link Subscription.next}. */
export interface NextOptions {
  /** Reject with `ERR_ROAR_TIMEOUT` after this many milliseconds. @defaultValue wait without limit */
  timeout?: number;
  /** Reject with `ERR_ROAR_ABORTED` when this signal aborts. */
  signal?: AbortSignal;
}

/**
 * A handler registered with {@link Router.on}. What it returns is ignored, but a returned
 * promise that rejects is reported like a throw.
 */
export type Handler<T = unknown> = (message: T) => unknown;

/** Cancels what {@link Router.on} registered; also `Disposable`, for `using off = router.on(...)`. */
export type Unsubscribe = (() => void) & Disposable;

/** Counters of one router, from {@link Router.stats}. */
export interface RouterStats {
  /** Messages this router published. */
  published: number;
  /** Messages handed to this router's subscriptions and handlers. */
  delivered: number;
  /** Messages lost, by reason. */
  dropped: {
    /** Pushed out of a full subscription buffer (the oldest message goes). */
    overflow: number;
    /**
     * Not sent on a link of this thread that held its bound, counted once per link: what this
     * router's publishes lost to slow consumers right here. Drops further on (a cluster
     * primary's link to a stopped worker) are counted where they happen, and in the host
     * root's `relay.stats()`.
     */
    queueFull: number;
  };
}
