import { describe, expect, it } from "@jest/globals";
import type { RoarError } from "../lib/errors.js";
import { MAX_DEPTH, assertSendable } from "../lib/sendable.js";
import { roarError } from "./helpers.js";
import { ARRIVES, REFUSED } from "./fixtures/value-cases.js";

function expectUnsendable(value: unknown): RoarError {
  return roarError(() => assertSendable(value), "ERR_ROAR_UNSERIALIZABLE");
}

/** `levels` arrays, each holding the next: `[[[...[]...]]]`. */
function nestedArrays(levels: number): unknown[] {
  let value: unknown[] = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
}

/** `levels` plain objects, each holding the next under `child`, the innermost holding `leaf`. */
function nestedObjects(levels: number, leaf: unknown = 1): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf };
  for (let i = 1; i < levels; i++) value = { child: value };
  return value;
}

/** A wide message of `count` small objects. */
function manyObjects(count: number): { items: { id: number; tags: string[] }[] } {
  return { items: Array.from({ length: count }, (_, id) => ({ id, tags: ["a", "b"] })) };
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

class List extends Array<number> {}

describe("assertSendable accepts", () => {
  it.each<[string, unknown]>([
    ["a string", "hello"],
    ["the empty string", ""],
    ["an integer", 42],
    ["a float", 1.5],
    ["NaN", NaN],
    ["Infinity", Infinity],
    ["-Infinity", -Infinity],
    ["-0", -0],
    ["true", true],
    ["false", false],
    ["null", null],
    ["undefined", undefined],
    ["a bigint", 12345678901234567890n],
  ])("%s", (_, value) => {
    expect(() => assertSendable(value)).not.toThrow();
  });

  it.each<[string, unknown]>([
    ["an empty array", []],
    ["an empty object", {}],
    ["nested arrays", [1, [2, [3, ["four"]]]]],
    ["nested plain objects", { a: { b: { c: "d" } }, list: [{ e: null }] }],
    ["objects holding special numbers, undefined and bigints", { nan: NaN, negZero: -0, missing: undefined, big: 1n }],
    ["a Map", new Map<unknown, unknown>([["a", 1], [{ k: 1 }, [2]]])],
    ["a Set", new Set([1, "two", { three: 3 }])],
    ["a Date", new Date(0)],
    ["a RegExp", /ab+c/gi],
    ["Maps and Sets nested in objects", { m: new Map([["s", new Set([new Date(1)])]]) }],
    ["an object with no prototype", Object.create(null) as object],
    ["an object with no prototype holding values", Object.assign(Object.create(null) as object, { a: 1, b: [2] })],
    ["an object with keys named after prototype properties", { hasOwnProperty: 1, toString: "s", valueOf: [] }],
    ["a Map keyed by __proto__", new Map([["__proto__", 1]])],
  ])("%s", (_, value) => {
    expect(() => assertSendable(value)).not.toThrow();
  });

  it("a cycle through an object", () => {
    const value: Record<string, unknown> = { name: "loop" };
    value["self"] = value;
    expect(() => assertSendable(value)).not.toThrow();
  });

  it("a cycle through an array", () => {
    const value: unknown[] = [1];
    value.push(value);
    expect(() => assertSendable(value)).not.toThrow();
  });

  it("a cycle through a Map and a Set", () => {
    const map = new Map<string, unknown>();
    const set = new Set<unknown>([map]);
    map.set("set", set);
    expect(() => assertSendable({ map })).not.toThrow();
  });

  it("shared references", () => {
    const shared = { a: 1 };
    expect(() => assertSendable([shared, shared, { again: shared }])).not.toThrow();
  });

  it("a shared reference that is reached many times in a large message", () => {
    const shared = { bad: false };
    expect(() => assertSendable(Array.from({ length: 1000 }, () => ({ shared })))).not.toThrow();
  });

  it(`nesting exactly MAX_DEPTH (${MAX_DEPTH}) levels deep`, () => {
    expect(MAX_DEPTH).toBe(512);
    expect(() => assertSendable(nestedArrays(MAX_DEPTH))).not.toThrow();
    expect(() => assertSendable(nestedObjects(MAX_DEPTH))).not.toThrow();
  });

  it("a large message of more than 256 objects", () => {
    expect(() => assertSendable(manyObjects(2000))).not.toThrow();
  });
});

describe("assertSendable rejects with ERR_ROAR_UNSERIALIZABLE", () => {
  it.each<[string, unknown]>([
    ["a function", () => undefined],
    ["an async function", async () => undefined],
    ["a class", Point],
    ["a symbol", Symbol("s")],
    ["a registered symbol", Symbol.for("s")],
  ])("%s at the top level", (_, value) => {
    expectUnsendable(value);
  });

  it.each<[string, unknown]>([
    ["a function in an object", { onClick: () => undefined }],
    ["a function in an array", [1, 2, () => undefined]],
    ["a symbol in an object", { kind: Symbol("k") }],
    ["a symbol in an array", [Symbol("k")]],
    ["a symbol deep inside", { a: [{ b: { c: [Symbol("deep")] } }] }],
    ["a symbol as a Map key", new Map([[Symbol("k"), 1]])],
    ["a symbol as a Map value", new Map([["k", Symbol("v")]])],
    ["a function as a Map value", new Map([["k", () => undefined]])],
    ["a function as a Map key", new Map([[() => undefined, 1]])],
    ["a symbol in a Set", new Set([1, Symbol("s")])],
    ["a function in a Set", new Set([() => undefined])],
    ["a function in an object with no prototype", Object.assign(Object.create(null) as object, { f: () => undefined })],
    ["a function next to a cycle", (() => { const v: Record<string, unknown> = {}; v["self"] = v; v["f"] = () => undefined; return v; })()],
  ])("%s", (_, value) => {
    expectUnsendable(value);
  });

  it.each<[string, unknown]>([
    ["a class instance", new Point(1, 2)],
    ["a class instance inside an object", { at: new Point(1, 2) }],
    ["an Error", new Error("boom")],
    ["a TypeError", new TypeError("boom")],
    ["a Buffer", Buffer.from("bytes")],
    ["a Uint8Array", new Uint8Array(4)],
    ["an ArrayBuffer", new ArrayBuffer(4)],
    ["a Promise", Promise.resolve(1)],
    ["a WeakMap", new WeakMap()],
    ["a WeakSet", new WeakSet()],
    ["a boxed String", new String("s")],
    ["a subclass of Map", new (class Registry extends Map {})()],
    ["a subclass of Date", new (class Day extends Date {})()],
    ["an object whose prototype is another plain object", Object.create({ inherited: 1 }) as object],
    // A Proxy looks like its target to every check, but structured clone refuses it.
    ["a Proxy of a plain object", new Proxy({ a: 1 }, {})],
    ["a Proxy of a plain object inside an object", { inner: new Proxy({ a: 1 }, {}) }],
    ["a Proxy of a plain object inside an array", [1, new Proxy({ a: 1 }, {})]],
    ["a Proxy of a plain object in a message of more than 256 objects", { ...manyObjects(300), extra: new Proxy({ a: 1 }, {}) }],
    // Both encodings bring an Array subclass back as a plain Array.
    ["an instance of an Array subclass", List.from([1, 2])],
    ["an empty instance of an Array subclass", new List()],
    ["an instance of an Array subclass inside an object", { list: List.from([1, 2]) }],
  ])("%s", (_, value) => {
    expectUnsendable(value);
  });

  it("an object with an own __proto__ key", () => {
    const value: unknown = JSON.parse('{"__proto__":1}');
    expectUnsendable(value);
  });

  it("an own __proto__ key nested inside", () => {
    expectUnsendable({ list: [JSON.parse('{"a":1,"__proto__":{"polluted":true}}')] });
  });

  it(`nesting deeper than MAX_DEPTH (${MAX_DEPTH})`, () => {
    expectUnsendable(nestedArrays(MAX_DEPTH + 1));
    expectUnsendable(nestedObjects(MAX_DEPTH + 1));
    expectUnsendable(nestedArrays(MAX_DEPTH * 4));
  });

  it("nesting deeper than MAX_DEPTH through Maps and Sets", () => {
    let value: unknown = 1;
    for (let i = 0; i < MAX_DEPTH + 1; i++) value = i % 2 === 0 ? new Map([["k", value]]) : new Set([value]);
    expectUnsendable(value);
  });

  it("a bad value deep inside a message of more than 256 objects", () => {
    const value = manyObjects(300);
    (value.items[299] as unknown as Record<string, unknown>)["callback"] = () => undefined;
    expectUnsendable(value);
  });

  it("a bad value at the end of a large array of primitives and objects", () => {
    const value: unknown[] = Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? i : { i }));
    value.push({ nested: { deeper: Symbol("last") } });
    expectUnsendable(value);
  });

  it("a bad value below the depth the first pass looks at", () => {
    expectUnsendable(nestedObjects(100, () => undefined));
  });

  it("a bad value reached through a cycle", () => {
    const value: Record<string, unknown> = {};
    const inner: Record<string, unknown> = { back: value };
    value["inner"] = inner;
    inner["bad"] = new Point(0, 0);
    expectUnsendable(value);
  });

  it("leaves the next check unaffected after a rejection", () => {
    expectUnsendable(manyObjects(300).items.concat([{ id: -1, tags: [Symbol("x") as unknown as string] }]));
    expect(() => assertSendable({ small: true })).not.toThrow();
  });
});

// superjson is the wire codec between processes and hosts (ARCHITECTURE.md, guarantee 6):
// a value that it refuses, or that it would not bring back as itself, cannot be sent, so
// `publish` must refuse it already, wherever the subscribers are.
describe("assertSendable rejects what superjson cannot carry unchanged", () => {
  it.each<[string, () => unknown]>([
    ["an own constructor key", () => ({ constructor: 1 })],
    ["an own prototype key", () => ({ prototype: "p" })],
    ["an own constructor key nested inside", () => ({ a: [{ constructor: new Date(0) }] })],
  ])("an object with %s (superjson throws on it as a prototype-pollution risk)", (_, make) => {
    expectUnsendable(make());
  });

  it("an invalid Date (superjson turns it into null)", () => {
    expectUnsendable(new Date(NaN));
  });

});

// The matrix's cases (spec/fixtures/value-cases.ts): the same table every peer of
// spec/integration/values.spec.ts publishes over every kind of link.
describe("assertSendable judges the value matrix's cases", () => {
  it.each(ARRIVES.map((c) => [c.name, c] as const))("accepts %s", (_, { make }) => {
    expect(() => assertSendable(make())).not.toThrow();
  });

  it.each(REFUSED.map((c) => [c.name, c] as const))("refuses %s, saying why", (_, { make, why }) => {
    expect(expectUnsendable(make()).message).toContain(why);
  });
});

describe("assertSendable's refusals say what to send instead", () => {
  it.each<[string, () => unknown, string]>([
    ["an arguments object", () => (function (..._: unknown[]) { return arguments; })(1), "`message` is an `arguments` object, which structured clone refuses: pass `Array.from(arguments)`"],
    ["a sparse array", () => ({ list: [1, 2, , 4] }), "`message.list` is a sparse array (a hole at index 2), whose holes would arrive as undefined in another thread and as null in another process: fill the holes"],
    ["an array with a named property", () => Object.assign(["a"], { total: 1 }), "`message` is an array with a named property `total`, which would reach another thread but not another process: send an object that holds the array and the property, e.g. `{ items: [...array], total: array.total }`"],
    ["a class instance", () => [new Point(0, 0)], "`message[0]` is an instance of class Point, which would arrive as a plain object or not at all: send a plain object"],
    ["a Buffer", () => Buffer.from("x"), "`message` is binary data (Buffer), which is not supported yet: send an array of numbers or a base64 string"],
    ["an object made by Object.create", () => Object.create({ inherited: 1 }) as object, "`message` is an object whose prototype is not Object.prototype"],
  ])("%s", (_, make, start) => {
    const { message } = expectUnsendable(make());
    expect(message.startsWith(start)).toBe(true);
    expect(message).toContain("a message may hold strings, numbers, booleans, null, undefined, bigints, and dense arrays, plain objects, Maps, Sets, Dates and RegExps of them");
  });

  it("a sparse array is refused at once, however long it is", () => {
    const huge: unknown[] = [];
    huge.length = 2 ** 32 - 1;
    const started = process.hrtime.bigint();
    expect(expectUnsendable(huge).message).toContain("hole at index 0");
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(1000);
  });

  it("a hole past the first pass's budget, and a named property on an array inside a large message", () => {
    const items: unknown[] = Array.from({ length: 300 }, (_, id) => ({ id }));
    items.length = 301;
    expect(expectUnsendable({ items }).message).toContain("`message.items` is a sparse array (a hole at index 300)");
    const named = Array.from({ length: 300 }, (_, id) => ({ id, tags: ["a"] }));
    Object.assign(named[299]!.tags, { extra: true });
    expect(expectUnsendable(named).message).toContain("`message[299].tags` is an array with a named property `extra`");
  });
});

describe("assertSendable leaves out, as JSON does", () => {
  it("accepts an object with a symbol-keyed property: the property is not part of the message", () => {
    expect(() => assertSendable({ visible: 1, [Symbol("hidden")]: 2 })).not.toThrow();
  });
});
