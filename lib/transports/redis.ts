/**
 * roar/redis: hosts meet through a Redis server, whose pub/sub channels route each message to
 * the hosts that subscribe to it.
 *
 * Each (scope, topic) is a channel, `<prefix>:t:<scope>:<topic>` (names escaped as in
 * channel-names.ts); a host subscribes to the channels of the topics it wants. Two `ioredis`
 * connections are made from the options given — one publishes, one subscribes, as Redis
 * requires — with auth, TLS and the reconnect policy passed through. While the server is
 * away, publishing fails at once (the offline queue is off) and what it carried is counted
 * lost; subscriptions are made again when the client reconnects.
 *
 * ioredis writes each command to its socket at once; while the server does not read (stalled,
 * or too slow), what is published waits in the socket's write buffer, with no limit.
 * {@link RedisTransport.heldBytes} reports it, so the relay bounds it as it bounds every link;
 * `maxPending` bounds, besides, how many publishes may wait for their answer.
 *
 * @example
 * ```ts
 * import { RedisTransport } from "roar/redis";
 * await roar.startRelay({ transports: [new RedisTransport({ url: "redis://:secret@10.0.0.5:6379" })] });
 * ```
 * @packageDocumentation
 */
import { Redis, type RedisOptions } from "ioredis";
import { RoarError, describe } from "../errors.js";
import type { BusChannel, BusContext, BusTransport } from "../transport.js";
import { assertOptions } from "../validate.js";
import { ChannelNames } from "./channel-names.js";

/** Options of {@link RedisTransport}. */
export interface RedisTransportOptions {
  /** A `redis://` or `rediss://` URL (user, password and database included). */
  url?: string;
  /** `ioredis` options: host, port, username, password, tls, retryStrategy, … */
  redis?: RedisOptions;
  /** The first part of every channel roar uses; hosts share topics only under the same prefix. @defaultValue "roar" */
  prefix?: string;
  /** The longest text published, in bytes. @defaultValue 16 MiB */
  maxPayload?: number;
  /**
   * How many publishes may wait for the server's answer before more messages are dropped
   * (counted `queueFull` by the publishing host). What hosts say to each other (presence,
   * interest) is never refused for it. @defaultValue 65536
   */
  maxPending?: number;
}

/** Links hosts through a Redis server. */
export class RedisTransport implements BusTransport {
  readonly kind = "bus";
  readonly name = "redis";
  readonly maxPayload: number;
  readonly #options: RedisTransportOptions;
  readonly #names: ChannelNames;
  readonly #maxPending: number;
  /** Subscribed channels, by name. */
  readonly #channels = new Map<string, BusChannel>();
  #publisher: Redis | undefined;
  #subscriber: Redis | undefined;
  /** Publishes sent and not yet answered. */
  #pending = 0;

  /** @throws `RoarError` `ERR_ROAR_INVALID_OPTION` for bad options. */
  constructor(options: RedisTransportOptions = {}) {
    assertOptions(options, "options", ["url", "redis", "prefix", "maxPayload", "maxPending"]);
    const { url, prefix = "roar", maxPayload = 16 * 1024 * 1024, maxPending = 65_536 } = options as RedisTransportOptions;
    if (url !== undefined && typeof url !== "string") {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.url\` must be a redis:// or rediss:// URL, got ${describe(url)}`);
    }
    if (typeof prefix !== "string" || !/^[A-Za-z0-9_-]+$/.test(prefix)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.prefix\` must be letters, digits, _ or -, got ${describe(prefix)}`);
    }
    for (const [name, value] of [["maxPayload", maxPayload], ["maxPending", maxPending]] as const) {
      if (!(Number.isSafeInteger(value) && value >= 1)) {
        throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.${name}\` must be an integer ≥ 1, got ${describe(value)}`);
      }
    }
    this.#options = options;
    this.#names = new ChannelNames(prefix, ":");
    this.maxPayload = maxPayload;
    this.#maxPending = maxPending;
  }

  async start(context: BusContext): Promise<void> {
    if (this.#publisher !== undefined) throw new RoarError("ERR_ROAR_UNSUPPORTED", "this transport was started already");
    const options: RedisOptions = { ...this.#options.redis, enableOfflineQueue: false, autoResubscribe: true, lazyConnect: true };
    const publisher = this.#options.url === undefined ? new Redis(options) : new Redis(this.#options.url, options);
    const subscriber = publisher.duplicate();
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    subscriber.on("message", (name: string, text: string) => {
      const channel = this.#channels.get(name);
      if (channel !== undefined) context.receive(channel, text);
    });
    // Errors are retried by the client; a listener keeps them from being thrown, and keeps the
    // last one, which says why a first connection failed (`connect()` only says it closed).
    let lastError: unknown;
    publisher.on("error", (error: unknown) => (lastError = error));
    subscriber.on("error", (error: unknown) => (lastError = error));
    try {
      await Promise.all([publisher.connect(), subscriber.connect()]);
    } catch (error) {
      // No retrying after a refusal (a wrong password): the program must be free to exit.
      publisher.disconnect();
      subscriber.disconnect();
      this.#publisher = this.#subscriber = undefined;
      throw lastError ?? error;
    }
    let connected = true;
    subscriber.on("close", () => (connected = false));
    subscriber.on("ready", () => {
      if (connected) return;
      connected = true;
      context.reconnected();
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.#publisher?.quit().catch(() => undefined), this.#subscriber?.quit().catch(() => undefined)]);
    this.#publisher?.disconnect();
    this.#subscriber?.disconnect();
  }

  subscribe(channel: BusChannel): void {
    const name = this.#names.of(channel);
    if (this.#channels.has(name)) return;
    this.#channels.set(name, channel);
    this.#subscriber?.subscribe(name).catch(() => undefined);
  }

  unsubscribe(channel: BusChannel): void {
    const name = this.#names.of(channel);
    if (!this.#channels.delete(name)) return;
    this.#subscriber?.unsubscribe(name).catch(() => undefined);
  }

  publish(channel: BusChannel, text: string): boolean | "full" | Promise<unknown> {
    const publisher = this.#publisher;
    if (publisher === undefined || publisher.status !== "ready") return false;
    if (channel.kind === "topic" && this.#pending >= this.#maxPending) return "full";
    this.#pending++;
    return publisher.publish(this.#names.of(channel), text).finally(() => this.#pending--);
  }

  /**
   * Bytes written to the publishing connection and not yet handed to the kernel. (What was
   * handed on and is not yet answered is what a healthy server has not got round to: a burst
   * published in one job is all unanswered until the job ends, and is no slow consumer.)
   */
  heldBytes(): number {
    return this.#publisher?.stream?.writableLength ?? 0;
  }

  async flush(): Promise<void> {
    // Commands on one connection are answered in order: a PING answered means all before it were.
    await Promise.all([this.#publisher?.ping(), this.#subscriber?.ping()]);
  }
}
