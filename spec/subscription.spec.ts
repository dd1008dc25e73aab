import { afterEach, describe, expect, it } from "@jest/globals";
import { RoarError, type RoarErrorCode } from "../lib/errors.js";
import { createRouter, type Router } from "../lib/router.js";
import { Subscription } from "../lib/subscription.js";
import type { NextOptions } from "../lib/types.js";

const routers: Router[] = [];
let scopeCount = 0;

/** A router in a scope no other test uses; afterEach closes it. */
function makeRouter(capacity = 16): Router {
  const router = createRouter({ scope: `${expect.getState().currentTestName ?? "subscription"} #${++scopeCount}`, capacity });
  routers.push(router);
  return router;
}

afterEach(() => {
  for (const router of routers.splice(0)) router.close();
});

/** Lets every pending timer-free callback run: one full turn of the event loop. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** What `promise` rejected with; fails the test if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${String(value)}`);
    },
    (error: unknown) => error,
  );
}

function expectRoarError(error: unknown, code: RoarErrorCode): RoarError {
  expect(error).toBeInstanceOf(RoarError);
  expect((error as RoarError).code).toBe(code);
  return error as RoarError;
}

/** Tracks whether `promise` has settled yet. */
function track<T>(promise: Promise<T>): { readonly settled: boolean } {
  const state = { settled: false };
  promise.then(
    () => void (state.settled = true),
    () => void (state.settled = true),
  );
  return state;
}

describe("Subscription basics", () => {
  it("is a Subscription made by router.subscribe", () => {
    expect(makeRouter().subscribe("t")).toBeInstanceOf(Subscription);
  });

  it("reports its topic", () => {
    expect(makeRouter().subscribe("orders:created").topic).toBe("orders:created");
  });

  it("takes the router's capacity by default", () => {
    expect(makeRouter(7).subscribe("t").capacity).toBe(7);
  });

  it("takes the capacity option over the router's default", () => {
    const router = makeRouter(2);
    const sub = router.subscribe<number>("t", { capacity: 5 });
    expect(sub.capacity).toBe(5);
    for (let i = 0; i < 5; i++) router.publish("t", i);
    expect(sub.size).toBe(5);
    expect(sub.dropped).toBe(0);
  });

  it("takes a smaller capacity option over a larger router default", () => {
    const router = makeRouter(100);
    const sub = router.subscribe<number>("t", { capacity: 1 });
    router.publish("t", 1);
    router.publish("t", 2);
    expect(sub.size).toBe(1);
    expect(sub.dropped).toBe(1);
  });

  it("counts buffered messages in size", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    expect(sub.size).toBe(0);
    router.publish("t", 1);
    router.publish("t", 2);
    expect(sub.size).toBe(2);
    sub.receive();
    expect(sub.size).toBe(1);
  });

  it("is open until cancelled", () => {
    const sub = makeRouter().subscribe("t");
    expect(sub.closed).toBe(false);
    sub.cancel();
    expect(sub.closed).toBe(true);
  });

  it("sees only messages published after it subscribed", () => {
    const router = makeRouter();
    router.publish("t", "before");
    const sub = router.subscribe("t");
    router.publish("t", "after");
    expect(sub.receive()).toEqual({ ok: true, value: "after" });
    expect(sub.receive()).toEqual({ ok: false });
  });

  it("sees only its own topic", () => {
    const router = makeRouter();
    const sub = router.subscribe("a");
    router.publish("b", "other");
    expect(sub.size).toBe(0);
  });
});

describe("Subscription.receive", () => {
  it("returns { ok: false } at once when nothing is buffered", () => {
    const sub = makeRouter().subscribe("t");
    expect(sub.receive()).toEqual({ ok: false });
  });

  it("returns buffered messages oldest first", () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    router.publish("t", "one");
    router.publish("t", "two");
    expect(sub.receive()).toEqual({ ok: true, value: "one" });
    expect(sub.receive()).toEqual({ ok: true, value: "two" });
    expect(sub.receive()).toEqual({ ok: false });
  });

  it("returns an undefined message as { ok: true, value: undefined }", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    router.publish("t", undefined);
    expect(sub.receive()).toEqual({ ok: true, value: undefined });
    expect(sub.receive()).toEqual({ ok: false });
  });

  it("returns { ok: false } after cancel", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    router.publish("t", 1);
    sub.cancel();
    expect(sub.receive()).toEqual({ ok: false });
  });
});

describe("Subscription overflow", () => {
  it("drops the oldest message when capacity is reached", () => {
    const router = makeRouter();
    const sub = router.subscribe<number>("t", { capacity: 3 });
    for (let i = 1; i <= 5; i++) router.publish("t", i);
    expect(sub.size).toBe(3);
    expect([sub.receive(), sub.receive(), sub.receive(), sub.receive()]).toEqual([
      { ok: true, value: 3 },
      { ok: true, value: 4 },
      { ok: true, value: 5 },
      { ok: false },
    ]);
  });

  it("counts dropped messages", () => {
    const router = makeRouter();
    const sub = router.subscribe<number>("t", { capacity: 3 });
    expect(sub.dropped).toBe(0);
    for (let i = 1; i <= 5; i++) router.publish("t", i);
    expect(sub.dropped).toBe(2);
  });

  it("counts dropped messages in router.stats().dropped.overflow", () => {
    const router = makeRouter();
    router.subscribe<number>("t", { capacity: 2 });
    router.subscribe<number>("t", { capacity: 4 });
    for (let i = 1; i <= 5; i++) router.publish("t", i);
    expect(router.stats().dropped.overflow).toBe(3 + 1);
  });

  it("does not count messages that were read in time", () => {
    const router = makeRouter();
    const sub = router.subscribe<number>("t", { capacity: 1 });
    for (let i = 1; i <= 5; i++) {
      router.publish("t", i);
      expect(sub.receive()).toEqual({ ok: true, value: i });
    }
    expect(sub.dropped).toBe(0);
    expect(router.stats().dropped.overflow).toBe(0);
  });

  it("does not drop a message handed straight to a waiting next()", async () => {
    const router = makeRouter();
    const sub = router.subscribe<number>("t", { capacity: 1 });
    const first = sub.next();
    router.publish("t", 1);
    router.publish("t", 2);
    await expect(first).resolves.toBe(1);
    expect(sub.receive()).toEqual({ ok: true, value: 2 });
    expect(sub.dropped).toBe(0);
  });
});

describe("Subscription.next", () => {
  it("resolves at once with a buffered message", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    router.publish("t", "ready");
    await expect(sub.next()).resolves.toBe("ready");
    expect(sub.size).toBe(0);
  });

  it("resolves with a buffered message even with a zero timeout", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    router.publish("t", "ready");
    await expect(sub.next({ timeout: 0 })).resolves.toBe("ready");
  });

  it("waits for a message published later", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    const pending = sub.next();
    const state = track(pending);
    await turn();
    expect(state.settled).toBe(false);
    router.publish("t", "later");
    await expect(pending).resolves.toBe("later");
    expect(sub.size).toBe(0);
  });

  it("waits for a message published later from a timer", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    setImmediate(() => router.publish("t", "from a callback"));
    await expect(sub.next({ timeout: 10_000 })).resolves.toBe("from a callback");
  });

  it("rejects with ERR_ROAR_TIMEOUT when nothing arrives in time", async () => {
    const sub = makeRouter().subscribe("t");
    expectRoarError(await rejection(sub.next({ timeout: 5 })), "ERR_ROAR_TIMEOUT");
  });

  it("rejects with ERR_ROAR_TIMEOUT after a zero timeout when nothing is buffered", async () => {
    const sub = makeRouter().subscribe("t");
    expectRoarError(await rejection(sub.next({ timeout: 0 })), "ERR_ROAR_TIMEOUT");
  });

  it("leaves a message that arrives after a timeout in the buffer", async () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    await rejection(sub.next({ timeout: 1 }));
    router.publish("t", "late");
    expect(sub.receive()).toEqual({ ok: true, value: "late" });
  });

  it("rejects with ERR_ROAR_ABORTED when its signal aborts, with the reason as cause", async () => {
    const sub = makeRouter().subscribe("t");
    const controller = new AbortController();
    const reason = new Error("user gave up");
    const pending = sub.next({ signal: controller.signal });
    controller.abort(reason);
    const error = expectRoarError(await rejection(pending), "ERR_ROAR_ABORTED");
    expect(error.cause).toBe(reason);
  });

  it("rejects with ERR_ROAR_ABORTED at once when its signal is already aborted, with the reason as cause", async () => {
    const sub = makeRouter().subscribe("t");
    const reason = { why: "already" };
    const error = expectRoarError(await rejection(sub.next({ signal: AbortSignal.abort(reason) })), "ERR_ROAR_ABORTED");
    expect(error.cause).toBe(reason);
  });

  it("leaves a message that arrives after an abort in the buffer", async () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    const controller = new AbortController();
    const pending = sub.next({ signal: controller.signal });
    controller.abort();
    await rejection(pending);
    router.publish("t", "kept");
    expect(sub.receive()).toEqual({ ok: true, value: "kept" });
  });

  it("rejects a pending call with ERR_ROAR_CANCELLED when the subscription is cancelled", async () => {
    const sub = makeRouter().subscribe("t");
    const pending = sub.next();
    sub.cancel();
    expectRoarError(await rejection(pending), "ERR_ROAR_CANCELLED");
  });

  it("rejects with ERR_ROAR_CANCELLED when called after cancel", async () => {
    const sub = makeRouter().subscribe("t");
    sub.cancel();
    expectRoarError(await rejection(sub.next()), "ERR_ROAR_CANCELLED");
  });

  it("rejects every pending call with ERR_ROAR_CANCELLED on cancel", async () => {
    const sub = makeRouter().subscribe("t");
    const pending = [sub.next(), sub.next({ timeout: 60_000 }), sub.next({ signal: new AbortController().signal })];
    sub.cancel();
    for (const each of pending) expectRoarError(await rejection(each), "ERR_ROAR_CANCELLED");
  });

  it("serves concurrent calls in call order, one message each", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    const first = sub.next();
    const second = sub.next();
    const third = sub.next();
    router.publish("t", "a");
    router.publish("t", "b");
    router.publish("t", "c");
    await expect(Promise.all([first, second, third])).resolves.toEqual(["a", "b", "c"]);
  });

  it("serves the next waiter in line when an earlier one times out", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    const early = sub.next({ timeout: 1 });
    const later = sub.next();
    expectRoarError(await rejection(early), "ERR_ROAR_TIMEOUT");
    router.publish("t", "for the later one");
    await expect(later).resolves.toBe("for the later one");
  });

  it.each<[string, unknown]>([
    ["an unknown key", { timout: 10 }],
    ["null", null],
    ["a number", 10],
    ["a negative timeout", { timeout: -1 }],
    ["a NaN timeout", { timeout: NaN }],
    ["an infinite timeout", { timeout: Infinity }],
    ["a timeout beyond what setTimeout allows", { timeout: 2 ** 31 }],
    ["a string timeout", { timeout: "10" }],
    ["a signal that is not an AbortSignal", { signal: { aborted: false } }],
  ])("refuses %s with ERR_ROAR_INVALID_OPTION", async (_, options) => {
    const sub = makeRouter().subscribe("t");
    let error: unknown;
    try {
      const pending = sub.next(options as NextOptions);
      sub.cancel(); // were the options taken, the call would now reject as cancelled
      error = await rejection(pending);
    } catch (thrown) {
      error = thrown;
    }
    expectRoarError(error, "ERR_ROAR_INVALID_OPTION");
  });

  it("names the bad option in its error", () => {
    const sub = makeRouter().subscribe("t");
    expect(() => sub.next({ timeout: -1 })).toThrow(/timeout/);
    expect(() => sub.next({ signal: "stop" as unknown as AbortSignal })).toThrow(/signal/);
  });
});

describe("Subscription async iteration", () => {
  it("yields messages in order and ends when cancelled", async () => {
    const router = makeRouter();
    const sub = router.subscribe<number>("t");
    router.publish("t", 1);
    router.publish("t", 2);
    const seen: number[] = [];
    for await (const message of sub) {
      seen.push(message);
      if (message === 2) setImmediate(() => router.publish("t", 3));
      if (message === 3) sub.cancel();
    }
    expect(seen).toEqual([1, 2, 3]);
  });

  it("ends a loop that is waiting when the subscription is cancelled from outside", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    const seen: string[] = [];
    let gotFirst!: () => void;
    const first = new Promise<void>((resolve) => (gotFirst = resolve));
    const loop = (async () => {
      for await (const message of sub) {
        seen.push(message);
        gotFirst();
      }
      return "ended";
    })();
    router.publish("t", "one");
    await first;
    await turn(); // the loop is waiting for the next message now
    sub.cancel();
    await expect(loop).resolves.toBe("ended");
    expect(seen).toEqual(["one"]);
  });

  it("cancels the subscription when the loop is left with break", async () => {
    const router = makeRouter();
    const sub = router.subscribe<number>("t");
    router.publish("t", 1);
    router.publish("t", 2);
    for await (const message of sub) {
      expect(message).toBe(1);
      break;
    }
    expect(sub.closed).toBe(true);
    expect(sub.size).toBe(0);
  });

  it("cancels the subscription when the loop body throws", async () => {
    const router = makeRouter();
    const sub = router.subscribe<number>("t");
    router.publish("t", 1);
    await expect(
      (async () => {
        for await (const _ of sub) throw new Error("stop");
      })(),
    ).rejects.toThrow("stop");
    expect(sub.closed).toBe(true);
  });

  it("ends at once on a cancelled subscription", async () => {
    const sub = makeRouter().subscribe("t");
    sub.cancel();
    const seen: unknown[] = [];
    for await (const message of sub) seen.push(message);
    expect(seen).toEqual([]);
  });

  it("shares the line of waiters with next()", async () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    const iterator = sub[Symbol.asyncIterator]();
    const fromIterator = iterator.next();
    const fromNext = sub.next();
    router.publish("t", "a");
    router.publish("t", "b");
    await expect(fromIterator).resolves.toEqual({ done: false, value: "a" });
    await expect(fromNext).resolves.toBe("b");
  });
});

describe("Subscription.cancel", () => {
  it("stops further delivery", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    sub.cancel();
    router.publish("t", "after");
    expect(sub.size).toBe(0);
    expect(router.stats().delivered).toBe(0);
  });

  it("empties the buffer", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    router.publish("t", 1);
    router.publish("t", 2);
    sub.cancel();
    expect(sub.size).toBe(0);
    expect(sub.receive()).toEqual({ ok: false });
  });

  it("is idempotent", async () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    const other = router.subscribe("t");
    const pending = sub.next();
    sub.cancel();
    expect(() => sub.cancel()).not.toThrow();
    expect(sub.closed).toBe(true);
    expectRoarError(await rejection(pending), "ERR_ROAR_CANCELLED");
    router.publish("t", "still flowing");
    expect(other.receive()).toEqual({ ok: true, value: "still flowing" });
  });

  it("leaves other subscriptions to the same topic alone", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    const other = router.subscribe("t");
    sub.cancel();
    router.publish("t", "m");
    expect(other.receive()).toEqual({ ok: true, value: "m" });
  });

  it("keeps dropped counting what was lost before", () => {
    const router = makeRouter();
    const sub = router.subscribe("t", { capacity: 1 });
    router.publish("t", 1);
    router.publish("t", 2);
    sub.cancel();
    expect(sub.dropped).toBe(1);
  });

  it("happens on Symbol.dispose", () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    sub[Symbol.dispose]();
    expect(sub.closed).toBe(true);
    router.publish("t", 1);
    expect(sub.size).toBe(0);
  });

  it("happens on Symbol.asyncDispose", async () => {
    const router = makeRouter();
    const sub = router.subscribe("t");
    await sub[Symbol.asyncDispose]();
    expect(sub.closed).toBe(true);
  });

  it("happens at the end of a using block", () => {
    const router = makeRouter();
    let escaped: Subscription | undefined;
    {
      using sub = router.subscribe("t");
      escaped = sub;
      expect(sub.closed).toBe(false);
    }
    expect(escaped.closed).toBe(true);
  });

  it("happens at the end of an await using block", async () => {
    const router = makeRouter();
    let escaped: Subscription | undefined;
    {
      await using sub = router.subscribe("t");
      escaped = sub;
    }
    expect(escaped.closed).toBe(true);
  });
});
