/**
 * roar/nats: hosts meet through a NATS server (or cluster), whose subjects route each
 * message to the hosts that subscribe to it.
 *
 * Each (scope, topic) is a subject, `<prefix>.t.<scope>.<topic>`, with anything NATS treats
 * specially escaped (see channel-names.ts); a host subscribes to the subjects of the topics it
 * wants, so NATS's own interest graph does the routing. Connection options — servers, token,
 * user and password, nkeys, TLS, reconnect policy — go to the `nats` client as they are.
 *
 * The client never refuses a publish: while the server does not read (stalled, or too slow),
 * what is published waits in the client's outbound buffer and its socket's write buffer, with
 * no limit. {@link NatsTransport.heldBytes} reports those, so the relay bounds them as it
 * bounds every link (`maxQueue`) and counts what it drops.
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

/**
 * Where nats.js 2.x keeps what is on its way to the server: its outbound buffer, drained into
 * the socket at the end of each job, and the socket's write buffer, which grows once the
 * kernel's is full. The client has no documented way to read them; each part is checked
 * before use, so another client version reads as holding nothing rather than failing.
 */
interface ClientInternals {
  readonly protocol?: {
    readonly outbound?: { size?: () => number };
    readonly transport?: { readonly socket?: { readonly writableLength?: number } };
  };
}

/** Bytes the nats.js connection holds for the server now (see {@link ClientInternals}). */
function outboundBytes(connection: NatsConnection): number {
  const protocol = (connection as unknown as ClientInternals).protocol;
  const outbound = protocol?.outbound;
  const buffered = typeof outbound?.size === "function" ? outbound.size() : 0;
  const writable = protocol?.transport?.socket?.writableLength;
  return buffered + (typeof writable === "number" ? writable : 0);
}

/** Whether the connection exposes what {@link outboundBytes} reads. */
function canMeasure(connection: NatsConnection): boolean {
  return typeof (connection as unknown as ClientInternals).protocol?.outbound?.size === "function";
}

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
    if (!canMeasure(connection)) {
      context.warn(
        "this version of the `nats` client does not show what it buffers for the server: nothing bounds it while the server stalls (roar is tested with nats 2.29)",
        "ERR_ROAR_UNSUPPORTED",
      );
    }
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
      // While reconnecting, the client takes what is published and lets it go when it dials
      // again (nats.js 2.x resets its outbound buffer then): receivers count the gap it leaves.
      connection.publish(this.#names.of(channel), text);
      return true;
    } catch {
      return false;
    }
  }

  flush(): Promise<void> {
    return this.#connection?.flush() ?? Promise.resolve();
  }

  /** Bytes published and not yet handed to the kernel: the client's outbound buffer and its socket's. */
  heldBytes(): number {
    const connection = this.#connection;
    return connection === undefined ? 0 : outboundBytes(connection);
  }
}
