/**
 * The raw broker clients a benchmark host measures roar against: plain `ioredis` and `nats`,
 * one publish per message, each message JSON-encoded (as roar must encode it to leave the
 * process) and decoded on arrival.
 *  - Redis: `publisher.publish(channel, text)` on one connection → the `message` event of a
 *    second, subscribed connection (Redis wants a connection of its own for subscribing);
 *  - NATS: `nc.publish(subject, text)` → the callback of `nc.subscribe(subject)`, one
 *    connection for both.
 * Each host receives on a channel named after itself and sends on the other host's.
 */
import { Redis } from "ioredis";
import { connect } from "nats";
import type { Engine } from "./servers.js";

/** A raw client connected to the broker, subscribed to this host's channel. */
export interface RawBus {
  /** Publishes `value`, JSON-encoded, on the other host's channel: one publish. */
  send(value: unknown): void;
  close(): Promise<void>;
}

/** Connects a raw client of `engine` at `url`; `onMessage` gets each value published to `self`. */
export async function connectRaw(engine: Engine, url: string, self: string, other: string, onMessage: (value: unknown) => void): Promise<RawBus> {
  if (engine === "redis") {
    const publisher = new Redis(url, { lazyConnect: true });
    const subscriber = new Redis(url, { lazyConnect: true });
    await Promise.all([publisher.connect(), subscriber.connect()]);
    subscriber.on("message", (_channel: string, text: string) => onMessage(JSON.parse(text)));
    await subscriber.subscribe(`bench-raw:${self}`);
    const channel = `bench-raw:${other}`;
    let failed = 0;
    const onReply = (error: unknown): void => {
      if (error) failed++;
    };
    return {
      send: (value) => void publisher.publish(channel, JSON.stringify(value), onReply),
      close: async () => {
        if (failed !== 0) console.error(`bench: ${failed} raw redis publishes failed`);
        await Promise.all([publisher.quit(), subscriber.quit()]).catch(() => undefined);
        publisher.disconnect();
        subscriber.disconnect();
      },
    };
  }
  const connection = await connect({ servers: url });
  connection.subscribe(`bench-raw.${self}`, {
    callback: (error, message) => {
      if (error === null) onMessage(JSON.parse(message.string()));
    },
  });
  await connection.flush();
  const subject = `bench-raw.${other}`;
  return {
    send: (value) => connection.publish(subject, JSON.stringify(value)),
    close: async () => {
      await connection.flush().catch(() => undefined);
      await connection.close();
    },
  };
}
