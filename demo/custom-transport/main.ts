/**
 * Two hosts in one process, made with `roar.createHost()`, linked over TcpTransport on
 * loopback: each subscribes, flushes, and publishes to the other.
 *
 *   npm run build && node build/demo/custom-transport/main.js
 */
import * as roar from "roar";
import { TcpTransport } from "./tcp-transport.js";

const a = roar.createHost();
const b = roar.createHost();
const listener = new TcpTransport({ listen: { port: 0 } });
const relayA = await a.startRelay({ transports: [listener] });
const url = listener.url as string;
console.log(`host a listens on ${url}`);
const relayB = await b.startRelay({ transports: [new TcpTransport({ peers: [url] })] });

const routerA = a.createRouter({ scope: "demo", capacity: 10 });
const routerB = b.createRouter({ scope: "demo", capacity: 10 });
const atA = routerA.subscribe<string>("greetings");
const atB = routerB.subscribe<string>("greetings");
// Once linked, a flush means each host's interest has reached the other.
while (relayA.stats().hosts === 0 || relayB.stats().hosts === 0) await new Promise((resolve) => setTimeout(resolve, 10));
await Promise.all([routerA.flush(), routerB.flush()]);

routerA.publish("greetings", "hello from host a");
routerB.publish("greetings", "hello from host b");
// Each router gets its own message at once, and the other host's over TCP.
for (const [name, sub] of [["a", atA], ["b", atB]] as const) {
  const got = [await sub.next({ timeout: 5000 }), await sub.next({ timeout: 5000 })];
  console.log(`host ${name} got: ${got.map((text) => JSON.stringify(text)).join(", ")}`);
}
const { hosts, sent, received } = relayA.stats();
console.log(`host a relay.stats(): hosts ${hosts}, sent ${sent}, received ${received}`);
await Promise.all([a.close(), b.close()]);
