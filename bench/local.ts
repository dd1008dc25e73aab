/**
 * In-thread delivery: roar's publish→callback and publish→buffered receive beside Node's
 * EventEmitter and mitt, all measured in this run.
 */
import { EventEmitter } from "node:events";
import mittImport from "mitt";
import * as roar from "roar";
import { measureSync, printTable } from "./harness.js";

// mitt's types describe its CommonJS build, but Node loads its ESM build, whose default export is the function.
const mitt = mittImport as unknown as typeof mittImport.default;

/** Runs the in-thread cases and prints their table. */
export function benchLocal(): void {
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
