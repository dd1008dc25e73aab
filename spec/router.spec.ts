import { afterEach, describe, expect, it, jest } from "@jest/globals";
import { existsSync } from "node:fs";
import { RoarError } from "../lib/errors.js";
import { Router, createRouter } from "../lib/router.js";
import type { HandlerErrorInfo, RouterOptions } from "../lib/types.js";
import { roarError, runProgram } from "./helpers.js";

const routers: Router[] = [];
let scopeCount = 0;

/** A scope no other test uses. */
function freshScope(): string {
  return `${expect.getState().currentTestName ?? "router"} #${++scopeCount}`;
}

/** A router that afterEach closes. */
function makeRouter(options: Partial<RouterOptions> = {}): Router {
  const router = createRouter({ scope: freshScope(), capacity: 16, ...options });
  routers.push(router);
  return router;
}

afterEach(() => {
  for (const router of routers.splice(0)) router.close();
  jest.restoreAllMocks();
});


async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );
}

/** A promise and the function that resolves it. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

interface Warning extends Error {
  code?: unknown;
}

/**
 * Replaces process.emitWarning for one test and resolves with the first warning given to it.
 *
 * Why not `process.on("warning")`: under jest the `process` a spec sees is a copy whose events
 * never hear Node's own 'warning' event. The real event is checked in a child process below.
 */
function catchWarnings(): { first: Promise<Warning>; all: Warning[] } {
  const all: Warning[] = [];
  const { promise, resolve } = deferred<Warning>();
  jest.spyOn(process, "emitWarning").mockImplementation(((warning: string | Error) => {
    const error = typeof warning === "string" ? new Error(warning) : warning;
    all.push(error);
    resolve(error);
  }) as typeof process.emitWarning);
  return { first: promise, all };
}

describe("Router", () => {
  it("is made by createRouter", () => {
    expect(makeRouter()).toBeInstanceOf(Router);
  });

  it("keeps its scope and capacity", () => {
    const scope = freshScope();
    const router = makeRouter({ scope, capacity: 3 });
    expect(router.scope).toBe(scope);
    expect(router.capacity).toBe(3);
  });

  it("resolves flush", async () => {
    await expect(makeRouter().flush()).resolves.toBeUndefined();
  });
});

describe("Router.on", () => {
  it("calls the handler with each message on its topic", () => {
    const router = makeRouter();
    const seen: unknown[] = [];
    router.on("t", (message) => void seen.push(message));
    router.publish("t", 1);
    router.publish("other", 2);
    router.publish("t", 3);
    expect(seen).toEqual([1, 3]);
  });

  it("returns a function that removes the handler", () => {
    const router = makeRouter();
    const seen: unknown[] = [];
    const off = router.on("t", (message) => void seen.push(message));
    router.publish("t", 1);
    off();
    router.publish("t", 2);
    expect(seen).toEqual([1]);
  });

  it("returns a function that may be called more than once", () => {
    const router = makeRouter();
    const seen: unknown[] = [];
    const off = router.on("t", () => void seen.push("removed"));
    router.on("t", () => void seen.push("kept"));
    off();
    expect(() => off()).not.toThrow();
    router.publish("t", 1);
    expect(seen).toEqual(["kept"]);
  });

  it("returns a function that is also Disposable", () => {
    const router = makeRouter();
    const seen: unknown[] = [];
    const off = router.on("t", (message) => void seen.push(message));
    expect(typeof off).toBe("function");
    expect(typeof off[Symbol.dispose]).toBe("function");
    off[Symbol.dispose]();
    router.publish("t", 1);
    expect(seen).toEqual([]);
  });

  it("removes the handler at the end of a using block", () => {
    const router = makeRouter();
    const seen: unknown[] = [];
    {
      using _off = router.on("t", (message) => void seen.push(message));
      router.publish("t", "inside");
    }
    router.publish("t", "outside");
    expect(seen).toEqual(["inside"]);
  });

  it("removes only the handler it was returned for, even for the same function", () => {
    const router = makeRouter();
    let calls = 0;
    const handler = (): void => void calls++;
    const off = router.on("t", handler);
    router.on("t", handler);
    off();
    router.publish("t", 1);
    expect(calls).toBe(1);
  });
});

describe("Router.publish", () => {
  it("refuses an unserializable message with ERR_ROAR_UNSERIALIZABLE and delivers it to no one", () => {
    const scope = freshScope();
    const router = makeRouter({ scope });
    const other = makeRouter({ scope });
    const sub = router.subscribe("t");
    const otherSub = other.subscribe("t");
    const seen: unknown[] = [];
    router.on("t", (message) => void seen.push(message));
    other.on("t", (message) => void seen.push(message));
    roarError(() => router.publish("t", { callback: () => undefined }), "ERR_ROAR_UNSERIALIZABLE");
    roarError(() => router.publish("t", new (class Thing {})()), "ERR_ROAR_UNSERIALIZABLE");
    roarError(() => router.publish("t", Symbol("s")), "ERR_ROAR_UNSERIALIZABLE");
    expect(sub.size).toBe(0);
    expect(otherSub.size).toBe(0);
    expect(seen).toEqual([]);
    expect(router.stats()).toEqual({ published: 0, delivered: 0, dropped: { overflow: 0, queueFull: 0 } });
    expect(other.stats().delivered).toBe(0);
  });

  it("refuses an unserializable message even when nobody subscribes", () => {
    roarError(() => makeRouter().publish("nobody", () => undefined), "ERR_ROAR_UNSERIALIZABLE");
  });

  it("delivers the very object that was published", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    const message = { list: [1, 2, 3], when: new Date(0), tags: new Set(["a"]) };
    router.publish("t", message);
    const received = sub.receive();
    expect(received.ok && received.value).toBe(message);
  });

  it("delivers every sendable kind of value", () => {
    const router = makeRouter();
    const sub = router.subscribe("t", { capacity: 100 });
    const values: unknown[] = [undefined, null, -0, NaN, 1n, "s", true, new Map([[1, 2]]), new Set([1]), /x/g, new Date(1), [1, [2]]];
    for (const value of values) router.publish("t", value);
    const received: unknown[] = [];
    for (let r = sub.receive(); r.ok; r = sub.receive()) received.push(r.value);
    expect(received).toHaveLength(values.length);
    received.forEach((value, i) => expect(value).toBe(values[i]));
  });
});

describe("Router.stats", () => {
  it("starts at zero", () => {
    expect(makeRouter().stats()).toEqual({ published: 0, delivered: 0, dropped: { overflow: 0, queueFull: 0 } });
  });

  it("counts messages published, including those nobody received", () => {
    const router = makeRouter();
    router.publish("t", 1);
    router.publish("u", 2);
    expect(router.stats().published).toBe(2);
  });

  it("counts deliveries to this router's subscriptions and handlers", () => {
    const router = makeRouter();
    router.subscribe("t");
    router.subscribe("t");
    router.on("t", () => undefined);
    router.publish("t", 1);
    router.publish("t", 2);
    expect(router.stats().delivered).toBe(6);
  });

  it("counts deliveries on the receiving router and publishes on the publishing one", () => {
    const scope = freshScope();
    const publisher = makeRouter({ scope });
    const receiver = makeRouter({ scope });
    receiver.subscribe("t");
    publisher.publish("t", 1);
    expect(publisher.stats()).toEqual({ published: 1, delivered: 0, dropped: { overflow: 0, queueFull: 0 } });
    expect(receiver.stats()).toEqual({ published: 0, delivered: 1, dropped: { overflow: 0, queueFull: 0 } });
  });

  it("counts overflow drops", () => {
    const router = makeRouter();
    router.subscribe("t", { capacity: 2 });
    for (let i = 0; i < 7; i++) router.publish("t", i);
    expect(router.stats().dropped.overflow).toBe(5);
    expect(router.stats().delivered).toBe(7);
  });

  it("does not count refused publishes", () => {
    const router = makeRouter();
    roarError(() => router.publish("", 1), "ERR_ROAR_INVALID_TOPIC");
    roarError(() => router.publish("t", () => undefined), "ERR_ROAR_UNSERIALIZABLE");
    expect(router.stats().published).toBe(0);
  });

  it("returns a snapshot, not a live view", () => {
    const router = makeRouter();
    const before = router.stats();
    router.publish("t", 1);
    expect(before.published).toBe(0);
  });

  it("can still be read after close", () => {
    const router = makeRouter();
    router.publish("t", 1);
    router.close();
    expect(router.stats().published).toBe(1);
  });
});

describe("handler errors", () => {
  it("a throwing handler does not stop delivery to the others and reaches onError with its scope and topic", () => {
    const calls: [unknown, HandlerErrorInfo][] = [];
    const router = makeRouter({ onError: (error, info) => void calls.push([error, info]) });
    const failure = new Error("handler failed");
    const seen: unknown[] = [];
    router.on("t", () => {
      throw failure;
    });
    router.on("t", (message) => void seen.push(message));
    const sub = router.subscribe("t");
    expect(() => router.publish("t", "m")).not.toThrow();
    expect(seen).toEqual(["m"]);
    expect(sub.size).toBe(1);
    expect(calls).toEqual([[failure, { scope: router.scope, topic: "t" }]]);
    expect(calls[0]?.[0]).toBe(failure);
  });

  it("a rejecting async handler does not stop delivery and reaches onError with its scope and topic", async () => {
    const reported = deferred<[unknown, HandlerErrorInfo]>();
    const router = makeRouter({ onError: (error, info) => reported.resolve([error, info]) });
    const failure = new Error("async handler failed");
    const seen: unknown[] = [];
    router.on("t", async () => {
      await Promise.resolve();
      throw failure;
    });
    router.on("t", (message) => void seen.push(message));
    router.publish("t", "m");
    expect(seen).toEqual(["m"]);
    const [error, info] = await reported.promise;
    expect(error).toBe(failure);
    expect(info).toEqual({ scope: router.scope, topic: "t" });
  });

  it("a handler returning a rejecting thenable is reported like a throw", async () => {
    const reported = deferred<unknown>();
    const router = makeRouter({ onError: (error) => reported.resolve(error) });
    const thenable = { then: (_: unknown, reject?: (reason: unknown) => void): void => reject?.("thenable failed") };
    router.on("t", () => thenable as unknown as PromiseLike<void>);
    router.publish("t", "m");
    await expect(reported.promise).resolves.toBe("thenable failed");
  });

  it("a handler that throws a non-Error value reaches onError with that value", () => {
    const errors: unknown[] = [];
    const router = makeRouter({ onError: (error) => void errors.push(error) });
    router.on("t", () => {
      throw "plain string"; // eslint-disable-line no-throw-literal
    });
    router.publish("t", 1);
    expect(errors).toEqual(["plain string"]);
  });

  it("each failing handler reaches onError once per message", () => {
    const errors: unknown[] = [];
    const router = makeRouter({ onError: (error) => void errors.push(error) });
    router.on("t", (message) => {
      throw new Error(`first ${String(message)}`);
    });
    router.on("t", (message) => {
      throw new Error(`second ${String(message)}`);
    });
    router.publish("t", 1);
    router.publish("t", 2);
    expect(errors).toHaveLength(4);
  });

  it("an onError that throws still does not stop delivery, and the failure is not swallowed", async () => {
    const warnings = catchWarnings();
    const router = makeRouter({
      onError: () => {
        throw new Error("onError failed too");
      },
    });
    const seen: unknown[] = [];
    router.on("t", () => {
      throw new Error("handler failed");
    });
    router.on("t", (message) => void seen.push(message));
    expect(() => router.publish("t", "m")).not.toThrow();
    router.publish("t", "n");
    expect(seen).toEqual(["m", "n"]);
    const warning = await warnings.first;
    expect(warning.name).toBe("RoarHandlerWarning");
    expect(warning.code).toBe("ERR_ROAR_HANDLER");
  });

  it("without onError, a throwing handler's error reaches process.emitWarning as a RoarHandlerWarning", async () => {
    const warnings = catchWarnings();
    const router = makeRouter();
    const failure = new Error("handler failed");
    const seen: unknown[] = [];
    router.on("t", () => {
      throw failure;
    });
    router.on("t", (message) => void seen.push(message));
    router.publish("t", "m");
    expect(seen).toEqual(["m"]);
    const warning = await warnings.first;
    expect(warning).toBeInstanceOf(Error);
    expect(warning.name).toBe("RoarHandlerWarning");
    expect(warning.code).toBe("ERR_ROAR_HANDLER");
    expect(warning.cause).toBe(failure);
    expect(warning.message).toContain("t");
  });

  it("without onError, a rejecting async handler's error reaches process.emitWarning as a RoarHandlerWarning", async () => {
    const warnings = catchWarnings();
    const router = makeRouter();
    const failure = new Error("async handler failed");
    router.on("t", () => Promise.reject(failure));
    router.publish("t", "m");
    const warning = await warnings.first;
    expect(warning.name).toBe("RoarHandlerWarning");
    expect(warning.code).toBe("ERR_ROAR_HANDLER");
    expect(warning.cause).toBe(failure);
  });

  it("without onError, a handler error still reaches process.emitWarning in a form Node accepts, from another realm too", () => {
    // Under jest, lib code runs in a vm context whose Error is not Node's, and Node's
    // emitWarning throws ERR_INVALID_ARG_TYPE for such an Error. The handler's error must still
    // be reported ("never swallowed silently"), so some call must go through.
    const emitWarning = jest.spyOn(process, "emitWarning");
    const router = makeRouter();
    router.on("t", () => {
      throw new Error("handler failed");
    });
    router.publish("t", "m");
    expect(emitWarning).toHaveBeenCalled();
    expect(emitWarning.mock.results.some((result) => result.type === "return")).toBe(true);
  });

  it("a handler error whose message cannot be read still does not stop delivery", async () => {
    // Run in a fresh copy of the library: were delivery left stuck, no other test would get a message.
    let isolated: typeof import("../lib/router.js") | undefined;
    await jest.isolateModulesAsync(async () => {
      isolated = await import("../lib/router.js");
    });
    if (isolated === undefined) throw new Error("the router module did not load");
    catchWarnings();
    const router = isolated.createRouter({ scope: freshScope(), capacity: 4 });
    try {
      const unreadable = new Error("x");
      Object.defineProperty(unreadable, "message", {
        get() {
          throw new Error("message getter failed");
        },
      });
      const seen: unknown[] = [];
      router.on("t", () => {
        throw unreadable;
      });
      router.on("t", (message) => void seen.push(message));
      expect(() => router.publish("t", 1)).not.toThrow();
      expect(() => router.publish("t", 2)).not.toThrow();
      expect(seen).toEqual([1, 2]);
    } finally {
      router.close();
    }
  });
});

describe("Router.close", () => {
  it("cancels every subscription the router made", () => {
    const router = makeRouter();
    const subs = [router.subscribe("a"), router.subscribe("a"), router.subscribe("b")];
    router.publish("a", 1);
    router.close();
    expect(subs.map((sub) => sub.closed)).toEqual([true, true, true]);
    expect(subs.map((sub) => sub.size)).toEqual([0, 0, 0]);
  });

  it("stops every handler the router registered", () => {
    const scope = freshScope();
    const router = makeRouter({ scope });
    const other = makeRouter({ scope });
    const seen: unknown[] = [];
    router.on("t", (message) => void seen.push(message));
    router.on("u", (message) => void seen.push(message));
    router.close();
    other.publish("t", 1);
    other.publish("u", 2);
    expect(seen).toEqual([]);
  });

  it("rejects a pending next() with ERR_ROAR_CANCELLED and ends a for await loop", async () => {
    const router = makeRouter();
    const pending = router.subscribe("t").next();
    const loop = (async () => {
      for await (const _ of router.subscribe("u")) {
        // nothing arrives
      }
      return "ended";
    })();
    router.close();
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(RoarError);
    expect((error as RoarError).code).toBe("ERR_ROAR_CANCELLED");
    await expect(loop).resolves.toBe("ended");
  });

  it("makes later subscribe, on and publish throw ERR_ROAR_CLOSED", () => {
    const router = makeRouter();
    router.close();
    roarError(() => router.subscribe("t"), "ERR_ROAR_CLOSED");
    roarError(() => router.on("t", () => undefined), "ERR_ROAR_CLOSED");
    roarError(() => router.publish("t", 1), "ERR_ROAR_CLOSED");
  });

  it("reports closed", () => {
    const router = makeRouter();
    expect(router.closed).toBe(false);
    router.close();
    expect(router.closed).toBe(true);
  });

  it("is idempotent", () => {
    const scope = freshScope();
    const router = makeRouter({ scope });
    const other = makeRouter({ scope });
    const sub = other.subscribe("t");
    router.close();
    expect(() => router.close()).not.toThrow();
    expect(router.closed).toBe(true);
    // A second close must not release the shared dispatcher a second time.
    const third = makeRouter({ scope });
    third.publish("t", "still shared");
    expect(sub.receive()).toEqual({ ok: true, value: "still shared" });
  });

  it("of one router leaves another router of the same scope working", () => {
    const scope = freshScope();
    const closing = makeRouter({ scope });
    const staying = makeRouter({ scope });
    const closingSub = closing.subscribe("t");
    const stayingSub = staying.subscribe("t");
    const seen: unknown[] = [];
    staying.on("t", (message) => void seen.push(message));
    closing.close();
    staying.publish("t", "after");
    expect(stayingSub.receive()).toEqual({ ok: true, value: "after" });
    expect(seen).toEqual(["after"]);
    expect(closingSub.closed).toBe(true);
    expect(closingSub.size).toBe(0);
    expect(staying.subscribe("u").closed).toBe(false);
  });

  it("of one router leaves the other routers of its scope connected, even before they subscribed", () => {
    const scope = freshScope();
    const closing = makeRouter({ scope });
    const early = makeRouter({ scope });
    closing.close();
    const late = makeRouter({ scope });
    const earlySub = early.subscribe("t");
    const lateSub = late.subscribe("t");
    early.publish("t", "from early");
    late.publish("t", "from late");
    expect([earlySub.receive(), earlySub.receive()]).toEqual([
      { ok: true, value: "from early" },
      { ok: true, value: "from late" },
    ]);
    expect([lateSub.receive(), lateSub.receive()]).toEqual([
      { ok: true, value: "from early" },
      { ok: true, value: "from late" },
    ]);
  });

  it("leaves a subscription cancelled before close alone", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    sub.cancel();
    expect(() => router.close()).not.toThrow();
    expect(sub.closed).toBe(true);
  });

  it("happens on Symbol.dispose", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    router[Symbol.dispose]();
    expect(router.closed).toBe(true);
    expect(sub.closed).toBe(true);
  });

  it("happens at the end of a using block", () => {
    let escaped: Router | undefined;
    {
      using router = createRouter({ scope: freshScope(), capacity: 1 });
      escaped = router;
      expect(router.closed).toBe(false);
    }
    expect(escaped.closed).toBe(true);
  });
});

describe("handler warnings in a real Node process", () => {


  it("emits a RoarHandlerWarning with code ERR_ROAR_HANDLER and the handler's error as cause on process 'warning'", async () => {
    expect(existsSync(new URL("../dist/index.js", import.meta.url))).toBe(true); // run `npm run build` first
    const result = await runProgram(`
      import * as roar from "roar";
      const failure = new Error("handler failed");
      const rejected = new Error("async handler failed");
      const warnings = [];
      process.on("warning", (warning) => {
        if (warning.name !== "RoarHandlerWarning") return;
        warnings.push({ name: warning.name, code: warning.code, cause: warning.cause === failure ? "failure" : warning.cause === rejected ? "rejected" : String(warning.cause) });
        if (warnings.length === 2) console.log(JSON.stringify({ warnings, seen }));
      });
      const router = roar.createRouter({ scope: "warnings", capacity: 4 });
      const seen = [];
      router.on("t", () => { throw failure; });
      router.on("u", async () => { throw rejected; });
      router.on("t", (message) => { seen.push(message); });
      router.publish("t", "m");
      router.publish("u", "n");
    `);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout.trim()) as { warnings: { name: string; code: string; cause: string }[]; seen: unknown[] };
    expect(report.seen).toEqual(["m"]);
    expect(report.warnings).toEqual(
      expect.arrayContaining([
        { name: "RoarHandlerWarning", code: "ERR_ROAR_HANDLER", cause: "failure" },
        { name: "RoarHandlerWarning", code: "ERR_ROAR_HANDLER", cause: "rejected" },
      ]),
    );
  });
});
