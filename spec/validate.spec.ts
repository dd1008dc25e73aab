import { afterEach, describe, expect, it } from "@jest/globals";
import { MAX_NAME_LENGTH, RoarError } from "../lib/errors.js";
import { createRouter, type Router } from "../lib/router.js";
import type { RouterOptions } from "../lib/types.js";
import { assertCapacity, assertFunction, assertOptions, assertScope, assertTopic } from "../lib/validate.js";
import { roarError } from "./helpers.js";


const routers: Router[] = [];
let scopeCount = 0;

/** A scope no other test uses. */
function freshScope(): string {
  return `${expect.getState().currentTestName ?? "validate"} #${++scopeCount}`;
}

/** Creates a router that afterEach closes; `options` may be anything, to test validation. */
function router(options: unknown): Router {
  const made = createRouter(options as RouterOptions);
  routers.push(made);
  return made;
}

afterEach(() => {
  for (const made of routers.splice(0)) made.close();
});

const BAD_NAMES: [string, unknown][] = [
  ["the empty string", ""],
  ["a string longer than 1024 characters", "x".repeat(MAX_NAME_LENGTH + 1)],
  ["a number", 42],
  ["zero", 0],
  ["null", null],
  ["undefined", undefined],
  ["a boolean", true],
  ["an array", ["events"]],
  ["an object", { name: "events" }],
  ["a symbol", Symbol("events")],
  ["a String object", new String("events")],
];

const BAD_CAPACITIES: [string, unknown][] = [
  ["0", 0],
  ["-1", -1],
  ["1.5", 1.5],
  ["NaN", NaN],
  ["Infinity", Infinity],
  ["-Infinity", -Infinity],
  ['the string "3"', "3"],
  ["undefined", undefined],
  ["null", null],
  ["a bigint", 3n],
  ["2 ** 53 (not a safe integer)", 2 ** 53],
];

const ORDINARY_NAMES = ["__proto__", "constructor", "hasOwnProperty", "toString", "prototype", "valueOf"];

describe("assertScope", () => {
  it.each(BAD_NAMES)("rejects %s with ERR_ROAR_INVALID_SCOPE naming the scope", (_, value) => {
    expect(roarError(() => assertScope(value), "ERR_ROAR_INVALID_SCOPE").message).toContain("scope");
  });

  it.each(["a", "my_app", "x".repeat(MAX_NAME_LENGTH), ...ORDINARY_NAMES])("accepts %j", (scope) => {
    expect(() => assertScope(scope)).not.toThrow();
  });
});

describe("assertTopic", () => {
  it.each(BAD_NAMES)("rejects %s with ERR_ROAR_INVALID_TOPIC naming the topic", (_, value) => {
    expect(roarError(() => assertTopic(value), "ERR_ROAR_INVALID_TOPIC").message).toContain("topic");
  });

  it.each(["a", "orders:created", " ", "x".repeat(MAX_NAME_LENGTH), ...ORDINARY_NAMES])("accepts %j", (topic) => {
    expect(() => assertTopic(topic)).not.toThrow();
  });
});

describe("assertCapacity", () => {
  it.each(BAD_CAPACITIES)("rejects %s with ERR_ROAR_INVALID_CAPACITY naming the capacity", (_, value) => {
    expect(roarError(() => assertCapacity(value), "ERR_ROAR_INVALID_CAPACITY").message).toContain("capacity");
  });

  it.each([1, 2, 100, Number.MAX_SAFE_INTEGER])("accepts %d", (capacity) => {
    expect(() => assertCapacity(capacity)).not.toThrow();
  });

  it("names the parameter it was given", () => {
    expect(roarError(() => assertCapacity(0, "options.capacity"), "ERR_ROAR_INVALID_CAPACITY").message).toContain("options.capacity");
  });
});

describe("assertOptions", () => {
  it.each<[string, unknown]>([
    ["null", null],
    ["undefined", undefined],
    ["a string", "scope"],
    ["a number", 3],
    ["an array", []],
    ["a function", () => undefined],
  ])("rejects %s with ERR_ROAR_INVALID_OPTION", (_, value) => {
    roarError(() => assertOptions(value, "options", ["a"]), "ERR_ROAR_INVALID_OPTION");
  });

  it("rejects an unknown key with ERR_ROAR_INVALID_OPTION naming the key", () => {
    const error = roarError(() => assertOptions({ scope: "s", capcity: 3 }, "options", ["scope", "capacity"]), "ERR_ROAR_INVALID_OPTION");
    expect(error.message).toContain("capcity");
  });

  it("accepts an object with only allowed keys, or none", () => {
    expect(() => assertOptions({ scope: "s", capacity: 3 }, "options", ["scope", "capacity"])).not.toThrow();
    expect(() => assertOptions({}, "options", ["scope"])).not.toThrow();
    expect(() => assertOptions(Object.create(null), "options", ["scope"])).not.toThrow();
  });
});

describe("assertFunction", () => {
  it.each<[string, unknown]>([
    ["a string", "fn"],
    ["a number", 1],
    ["an object", {}],
    ["null", null],
  ])("rejects %s with ERR_ROAR_INVALID_OPTION naming the parameter", (_, value) => {
    expect(roarError(() => assertFunction(value, "handler"), "ERR_ROAR_INVALID_OPTION").message).toContain("handler");
  });

  it("rejects undefined unless the parameter is optional", () => {
    roarError(() => assertFunction(undefined, "handler"), "ERR_ROAR_INVALID_OPTION");
    expect(() => assertFunction(undefined, "onError", true)).not.toThrow();
  });

  it("accepts functions, async functions and classes' methods", () => {
    expect(() => assertFunction(() => undefined, "handler")).not.toThrow();
    expect(() => assertFunction(async () => undefined, "handler")).not.toThrow();
    expect(() => assertFunction(Math.max, "handler")).not.toThrow();
  });
});

describe("createRouter options", () => {
  it.each(BAD_NAMES)("rejects a scope that is %s with ERR_ROAR_INVALID_SCOPE", (_, scope) => {
    expect(roarError(() => router({ scope, capacity: 1 }), "ERR_ROAR_INVALID_SCOPE").message).toContain("scope");
  });

  it.each(BAD_CAPACITIES)("rejects a capacity of %s with ERR_ROAR_INVALID_CAPACITY", (_, capacity) => {
    expect(roarError(() => router({ scope: freshScope(), capacity }), "ERR_ROAR_INVALID_CAPACITY").message).toContain("capacity");
  });

  it("rejects a missing capacity with ERR_ROAR_INVALID_CAPACITY", () => {
    roarError(() => router({ scope: freshScope() }), "ERR_ROAR_INVALID_CAPACITY");
  });

  it("rejects a misspelt option with ERR_ROAR_INVALID_OPTION naming it", () => {
    const error = roarError(() => router({ scope: freshScope(), capacity: 1, capcity: 3 }), "ERR_ROAR_INVALID_OPTION");
    expect(error.message).toContain("capcity");
  });

  it.each<[string, unknown]>([
    ["missing", undefined],
    ["null", null],
    ["a string", "my_app"],
    ["a number", 100],
    ["an array", ["my_app", 100]],
  ])("rejects options that are %s with ERR_ROAR_INVALID_OPTION", (_, options) => {
    roarError(() => router(options), "ERR_ROAR_INVALID_OPTION");
  });

  it.each<[string, unknown]>([
    ["a string", "log"],
    ["a number", 1],
    ["an object", { handle() {} }],
    ["null", null],
  ])("rejects an onError that is %s with ERR_ROAR_INVALID_OPTION naming onError", (_, onError) => {
    const error = roarError(() => router({ scope: freshScope(), capacity: 1, onError }), "ERR_ROAR_INVALID_OPTION");
    expect(error.message).toContain("onError");
  });

  it("accepts an onError function and an explicitly undefined onError", () => {
    expect(() => router({ scope: freshScope(), capacity: 1, onError: () => undefined })).not.toThrow();
    expect(() => router({ scope: freshScope(), capacity: 1, onError: undefined })).not.toThrow();
  });

  it("accepts a scope of exactly 1024 characters", () => {
    expect(router({ scope: "s".repeat(MAX_NAME_LENGTH), capacity: 1 }).scope).toBe("s".repeat(MAX_NAME_LENGTH));
  });

  it("keeps the scope and capacity it was given", () => {
    const scope = freshScope();
    const made = router({ scope, capacity: 7 });
    expect(made.scope).toBe(scope);
    expect(made.capacity).toBe(7);
  });
});

describe("topic and option checks at the router's edge", () => {
  it.each(BAD_NAMES)("subscribe rejects a topic that is %s with ERR_ROAR_INVALID_TOPIC", (_, topic) => {
    const made = router({ scope: freshScope(), capacity: 1 });
    expect(roarError(() => made.subscribe(topic as string), "ERR_ROAR_INVALID_TOPIC").message).toContain("topic");
  });

  it.each(BAD_NAMES)("on rejects a topic that is %s with ERR_ROAR_INVALID_TOPIC", (_, topic) => {
    const made = router({ scope: freshScope(), capacity: 1 });
    expect(roarError(() => made.on(topic as string, () => undefined), "ERR_ROAR_INVALID_TOPIC").message).toContain("topic");
  });

  it.each(BAD_NAMES)("publish rejects a topic that is %s with ERR_ROAR_INVALID_TOPIC", (_, topic) => {
    const made = router({ scope: freshScope(), capacity: 1 });
    expect(roarError(() => made.publish(topic as string, "m"), "ERR_ROAR_INVALID_TOPIC").message).toContain("topic");
  });

  it.each(BAD_CAPACITIES.filter(([, value]) => value !== undefined))(
    "subscribe rejects a capacity of %s with ERR_ROAR_INVALID_CAPACITY",
    (_, capacity) => {
      const made = router({ scope: freshScope(), capacity: 1 });
      const error = roarError(() => made.subscribe("t", { capacity } as { capacity: number }), "ERR_ROAR_INVALID_CAPACITY");
      expect(error.message).toContain("capacity");
    },
  );

  it("subscribe rejects an unknown option with ERR_ROAR_INVALID_OPTION naming it", () => {
    const made = router({ scope: freshScope(), capacity: 1 });
    const error = roarError(() => made.subscribe("t", { capcity: 2 } as unknown as { capacity: number }), "ERR_ROAR_INVALID_OPTION");
    expect(error.message).toContain("capcity");
  });

  it("subscribe rejects options that are not an object with ERR_ROAR_INVALID_OPTION", () => {
    const made = router({ scope: freshScope(), capacity: 1 });
    roarError(() => made.subscribe("t", null as unknown as { capacity: number }), "ERR_ROAR_INVALID_OPTION");
    roarError(() => made.subscribe("t", 5 as unknown as { capacity: number }), "ERR_ROAR_INVALID_OPTION");
  });

  it.each<[string, unknown]>([
    ["undefined", undefined],
    ["a string", "handler"],
    ["an object", {}],
  ])("on rejects a handler that is %s with ERR_ROAR_INVALID_OPTION naming the handler", (_, handler) => {
    const made = router({ scope: freshScope(), capacity: 1 });
    const error = roarError(() => made.on("t", handler as () => void), "ERR_ROAR_INVALID_OPTION");
    expect(error.message).toContain("handler");
  });

  it("a rejected subscribe leaves nothing subscribed", () => {
    const made = router({ scope: freshScope(), capacity: 1 });
    roarError(() => made.subscribe("t", { capacity: 0 }), "ERR_ROAR_INVALID_CAPACITY");
    made.publish("t", "m");
    expect(made.stats().delivered).toBe(0);
  });
});

describe("names that are also Object.prototype properties", () => {
  const prototypeKeys = (): string[] => Object.getOwnPropertyNames(Object.prototype).sort();

  it.each(ORDINARY_NAMES)("%s works as an ordinary topic", (topic) => {
    const before = prototypeKeys();
    const made = router({ scope: freshScope(), capacity: 4 });
    const sub = made.subscribe<string>(topic);
    const seen: string[] = [];
    made.on<string>(topic, (message) => void seen.push(message));
    made.publish(topic, "hello");
    made.publish("other", "not for it");
    expect(sub.receive()).toEqual({ ok: true, value: "hello" });
    expect(sub.receive()).toEqual({ ok: false });
    expect(seen).toEqual(["hello"]);
    expect(prototypeKeys()).toEqual(before);
    expect(({} as Record<string, unknown>)["hello"]).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it.each(ORDINARY_NAMES)("%s works as an ordinary scope, isolated from the others", (scope) => {
    const before = prototypeKeys();
    const made = router({ scope, capacity: 4 });
    const other = router({ scope: freshScope(), capacity: 4 });
    const sub = made.subscribe<string>("events");
    const otherSub = other.subscribe<string>("events");
    made.publish("events", "mine");
    expect(sub.receive()).toEqual({ ok: true, value: "mine" });
    expect(otherSub.receive()).toEqual({ ok: false });
    expect(prototypeKeys()).toEqual(before);
  });

  it("keeps scopes named after prototype properties apart from each other", () => {
    const made = ORDINARY_NAMES.map((scope) => router({ scope, capacity: 4 }));
    const subs = made.map((each) => each.subscribe<string>("t"));
    made[0]?.publish("t", `only ${ORDINARY_NAMES[0]}`);
    expect(subs.map((sub) => sub.size)).toEqual(ORDINARY_NAMES.map((_, i) => (i === 0 ? 1 : 0)));
  });

  it("a publish on an unsubscribed topic named after a prototype property is simply empty", () => {
    const made = router({ scope: freshScope(), capacity: 4 });
    expect(() => made.publish("hasOwnProperty", 1)).not.toThrow();
    expect(() => made.publish("__proto__", 1)).not.toThrow();
    expect(made.stats().delivered).toBe(0);
  });
});
