/**
 * The quick start: the seed library's example, in TypeScript. Run it with `npm run demo:quick-start`.
 */
import * as roar from "roar";

// Create a router with buffer capacity and scope.
const router = roar.new({ capacity: 100, scope: "my_app" });

// Subscribe to a topic.
const sub = roar.subscribe<string>(router, "events");

// Publish a message (reaches every subscriber of "my_app", wherever it runs).
roar.publish(router, "events", "Hello, cluster!");

// Receive messages.
const result = sub.receive();
console.log(result.ok ? result.value : "No messages");

// Callbacks, with the method style.
const off = router.on<string>("notifications", (message) => console.log(`Received: ${message}`));
router.publish("notifications", "New user signed up!");
off();

// Buffers keep the newest `capacity` messages and count what they drop.
const small = router.subscribe<number>("ticks", { capacity: 2 });
for (let tick = 1; tick <= 5; tick++) router.publish("ticks", tick);
console.log(`kept ${small.size} ticks, dropped ${small.dropped}:`, small.receive(), small.receive());

sub.cancel();
router.close();
