/**
 * In-thread delivery: roar's publish→callback and publish→buffered receive beside Node's
 * EventEmitter and mitt, and subscribing and cancelling 100k handlers on one topic beside
 * EventEmitter's on/off, all measured in this run.
 */
import { EventEmitter } from "node:events";
import mittImport from "mitt";
import * as roar from "roar";
import { median, measureSync, printTable, type Result } from "./harness.js";

// mitt's types describe its CommonJS build, but Node loads its ESM build, whose default export is the function.
const mitt = mittImport as unknown as typeof mittImport.default;

/** Runs the in-thread cases and prints their tables. */
export function benchLocal(): void {
  benchDelivery();
  benchSubscribing();
}

function benchDelivery(): void {
  for (const [label, message] of [
    ["string message", "hello"],
    ["small object message", { id: 1, text: "hello", at: 1700000000000 }],
  ] as const) {
    let sink = 0;
    const emitter = new EventEmitter();
    emitter.on("events", (m: unknown) => void (sink += m === undefined ? 0 : 1));
    const bus = mitt<{ events: unknown }>();
    bus.on("events", (m) => void (sink += m === undefined ? 0 : 1));
    const router = roar.createRouter({ scope: `bench-${label}`, capacity: 1024 });
    router.on("events", (m) => void (sink += m === undefined ? 0 : 1));
    const buffered = roar.createRouter({ scope: `bench-buffered-${label}`, capacity: 1024 });
    const sub = buffered.subscribe("events");

    const ee = measureSync("EventEmitter emit→listener", (n) => {
      for (let i = 0; i < n; i++) emitter.emit("events", message);
    });
    const mt = measureSync("mitt emit→handler", (n) => {
      for (let i = 0; i < n; i++) bus.emit("events", message);
    });
    const cb = measureSync("roar publish→callback", (n) => {
      for (let i = 0; i < n; i++) router.publish("events", message);
    });
    const rx = measureSync("roar publish+receive (buffered)", (n) => {
      for (let i = 0; i < n; i++) {
        buffered.publish("events", message);
        if (!sub.receive().ok) throw new Error("lost a message");
      }
    });
    router.close();
    buffered.close();
    if (sink === 0) throw new Error("nothing was delivered");
    printTable(`In-thread delivery, ${label} (one subscriber)`, [
      { result: ee },
      { result: mt, baseline: ee },
      { result: cb, baseline: ee, target: "≥ 0.60×" },
      { result: rx, baseline: ee, target: "≥ 0.30×" },
    ]);
  }
}

/** How many handlers each subscribing round puts on one topic (a chat with that many clients). */
const CROWD = 100_000;

/**
 * Subscribing: CROWD handlers added to one topic and removed again, per round. roar removes
 * them first added first (each client leaves in the order it came, the hard order for a list);
 * EventEmitter last added first, its fast order: `off` searches from the newest listener, so
 * first added first costs it O(n) each (100k: tens of seconds).
 */
function benchSubscribing(): void {
  const ee = measureRounds("EventEmitter on + off, newest first", () => {
    const emitter = new EventEmitter();
    emitter.setMaxListeners(0);
    const listeners: (() => void)[] = [];
    for (let i = 0; i < CROWD; i++) {
      const listener = (): void => undefined;
      listeners.push(listener);
      emitter.on("said", listener);
    }
    for (let i = CROWD - 1; i >= 0; i--) emitter.off("said", listeners[i] as () => void);
  });
  let round = 0;
  const on = measureRounds("roar on + its cancel, oldest first", () => {
    const router = roar.createRouter({ scope: `bench-on-${round++}`, capacity: 1 });
    const offs: (() => void)[] = [];
    for (let i = 0; i < CROWD; i++) offs.push(router.on("said", () => undefined));
    for (const off of offs) off();
    router.close();
  });
  const subscribe = measureRounds("roar subscribe + cancel, oldest first", () => {
    const router = roar.createRouter({ scope: `bench-subscribe-${round++}`, capacity: 1 });
    const subs: roar.Subscription[] = [];
    for (let i = 0; i < CROWD; i++) subs.push(router.subscribe("said"));
    for (const sub of subs) sub.cancel();
    router.close();
  });
  const close = measureRounds("roar on, then router.close()", () => {
    const router = roar.createRouter({ scope: `bench-close-${round++}`, capacity: 1 });
    for (let i = 0; i < CROWD; i++) router.on("said", () => undefined);
    router.close();
  });
  printTable(`Subscribe + cancel, ${CROWD / 1000}k handlers on one topic (rate: handlers added and removed per second)`, [
    { result: ee },
    { result: on, baseline: ee, target: "≥ 0.1 M/s" },
    { result: subscribe, baseline: ee, target: "≥ 0.1 M/s" },
    { result: close, baseline: ee, target: "≥ 0.1 M/s" },
  ]);
}

/** Runs `run` (CROWD handlers added and removed) in rounds; the median rate, in handlers per second. */
function measureRounds(name: string, run: () => void, rounds = 5): Result {
  run(); // warm-up
  const rates: number[] = [];
  for (let i = 0; i < rounds; i++) {
    globalThis.gc?.();
    const started = process.hrtime.bigint();
    run();
    rates.push((CROWD * 1e9) / Number(process.hrtime.bigint() - started));
  }
  return { name, rate: median(rates) };
}
