/**
 * roar/nats: hosts meet through a NATS server (or cluster), whose subjects route each
 * message to the hosts that subscribe to it.
 *
 * Each (scope, topic) is a subject, `<prefix>.t.<scope>.<topic>`, with anything NATS treats
 * specially escaped (see channel-names.ts); a host subscribes to the subjects of the topics it
 * wants, so NATS's own interest graph does the routing. Connection options — servers, token,
 * user and password, nkeys, TLS, reconnect policy — go to the `nats` client as they are.
 *
 * @example
 * ```ts
 * import { NatsTransport } from "roar/nats";
 * await roar.startRelay({ transports: [new NatsTransport({ servers: "nats://10.0.0.5:4222", token: process.env.NATS_TOKEN })] });
 * ```
 * @packageDocumentation
 */
import { connect, Events, type ConnectionOptions, type NatsConnection, type Subscription } from "nats";
import { RoarError, describe } from "../errors.js";
import type { BusChannel, BusContext, BusTransport } from "../transport.js";
import { ChannelNames } from "./channel-names.js";

/** Options of {@link NatsTransport}: the `nats` client's connection options, and a subject prefix. */
export interface NatsTransportOptions extends ConnectionOptions {
  /** The first token of every subject roar uses; hosts share topics only under the same prefix. @defaultValue "roar" */
  prefix?: string;
}

/** Links hosts through a NATS server. */
export class NatsTransport implements BusTransport {
  readonly kind = "bus";
  readonly name = "nats";
  readonly #options: ConnectionOptions;
  readonly #names: ChannelNames;
  readonly #subscriptions = new Map<string, Subscription>();
  #connection: NatsConnection | undefined;
  #context: BusContext | undefined;

  /** @throws `RoarError` `ERR_ROAR_INVALID_OPTION` for a bad prefix. */
  constructor(options: NatsTransportOptions = {}) {
    const { prefix = "roar", ...connection } = options;
    if (typeof prefix !== "string" || !/^[A-Za-z0-9_-]+$/.test(prefix)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.prefix\` must be letters, digits, _ or -, got ${describe(prefix)}`);
    }
    this.#names = new ChannelNames(prefix, ".");
    // What this host publishes comes back to it only if it asks: it does not.
    this.#options = { maxReconnectAttempts: -1, ...connection, noEcho: true };
  }

  /** The server's `max_payload`, once connected. */
  get maxPayload(): number | undefined {
    return this.#connection?.info?.max_payload;
  }

  async start(context: BusContext): Promise<void> {
    if (this.#connection !== undefined) throw new RoarError("ERR_ROAR_UNSUPPORTED", "this transport was started already");
    const connection = await connect(this.#options);
    this.#connection = connection;
    void (async () => {
      for await (const status of connection.status()) {
        if (status.type === Events.Reconnect) context.reconnected();
      }
    })();
    this.#context = context;
  }

  async close(): Promise<void> {
    const connection = this.#connection;
    if (connection === undefined || connection.isClosed()) return;
    // What was published (a bye, say) reaches the server before the connection goes.
    await connection.flush().catch(() => undefined);
    await connection.close();
  }

  subscribe(channel: BusChannel): void {
    const subject = this.#names.of(channel);
    if (this.#subscriptions.has(subject)) return;
    const context = this.#context as BusContext;
    const subscription = (this.#connection as NatsConnection).subscribe(subject, {
      callback: (error, message) => {
        if (error === null) context.receive(channel, message.string());
      },
    });
    this.#subscriptions.set(subject, subscription);
  }

  unsubscribe(channel: BusChannel): void {
    const subject = this.#names.of(channel);
    this.#subscriptions.get(subject)?.unsubscribe();
    this.#subscriptions.delete(subject);
  }

  publish(channel: BusChannel, text: string): boolean {
    const connection = this.#connection;
    if (connection === undefined || connection.isClosed()) return false;
    try {
      // While reconnecting, the client keeps what is published, up to its reconnectBufSize.
      connection.publish(this.#names.of(channel), text);
      return true;
    } catch {
      return false;
    }
  }

  flush(): Promise<void> {
    return this.#connection?.flush() ?? Promise.resolve();
  }
}
