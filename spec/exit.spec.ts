import { describe, expect, it } from "@jest/globals";
import { existsSync } from "node:fs";
import { runProgram } from "./helpers.js";

describe("a program using roar", () => {
  it("finds the built package (run `npm run build` first)", () => {
    expect(existsSync(new URL("../dist/index.js", import.meta.url))).toBe(true);
  });

  it("that creates a router, subscribes, publishes and ends, exits by itself with code 0", async () => {
    const outcome = await runProgram(`
      import * as roar from "roar";
      const router = roar.createRouter({ scope: "exit", capacity: 10 });
      const sub = router.subscribe("events");
      router.publish("events", "hello");
      const result = sub.receive();
      console.log(result.ok ? result.value : "nothing");
    `);
    expect(outcome).toMatchObject({ code: 0, signal: null });
    expect(outcome.stdout.trim()).toBe("hello");
  });

  it("that also registers a handler and awaits flush and next, exits by itself", async () => {
    const outcome = await runProgram(`
      import * as roar from "roar";
      const router = roar.new({ scope: "exit", capacity: 10 });
      const sub = roar.subscribe(router, "events");
      roar.on(router, "events", (message) => console.log("handler", message));
      await router.flush();
      roar.publish(router, "events", "hi");
      console.log("next", await sub.next({ timeout: 1000 }));
    `);
    expect(outcome).toMatchObject({ code: 0, signal: null });
    expect(outcome.stdout.trim().split("\n")).toEqual(["handler hi", "next hi"]);
  });

  it("that leaves a next() and a for await loop waiting forever, exits by itself", async () => {
    const outcome = await runProgram(`
      import * as roar from "roar";
      const router = roar.createRouter({ scope: "exit", capacity: 10 });
      const sub = router.subscribe("never");
      sub.next().then(() => console.log("unexpected"), () => console.log("unexpected"));
      (async () => { for await (const _ of router.subscribe("never")) console.log("unexpected"); })();
      console.log("done");
    `);
    expect(outcome).toMatchObject({ code: 0, signal: null });
    expect(outcome.stdout.trim()).toBe("done");
  });

  it("that closes its router, exits by itself", async () => {
    const outcome = await runProgram(`
      import * as roar from "roar";
      const router = roar.createRouter({ scope: "exit", capacity: 10 });
      router.subscribe("events");
      router.on("events", () => {});
      router.publish("events", 1);
      router.close();
    `);
    expect(outcome).toMatchObject({ code: 0, signal: null });
  });
});
