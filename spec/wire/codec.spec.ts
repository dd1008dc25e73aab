import { describe, expect, it } from "@jest/globals";
import superjson from "superjson";
import { decodePayload, encodePayload } from "../../lib/wire/codec.js";
import { roarError } from "../helpers.js";
import { ARRIVES, nestedArrays } from "../fixtures/value-cases.js";
import { typedDump } from "../fixtures/rich.js";

describe("payload codec", () => {
  it.each<[string, unknown]>([
    ["a string", "hello"],
    ["a flat object", { id: 1, text: "hi", ok: true, none: null }],
    ["a flat array", [1, "two", false, null]],
    ["an empty object", {}],
    ["an empty array", []],
  ])("writes %s exactly as superjson does, without superjson's walk", (_, value) => {
    expect(encodePayload(value)).toBe(superjson.stringify(value));
  });

  it.each<[string, unknown]>([
    ["a nested object", { a: { b: [1, 2] } }],
    ["a Date", { at: new Date(5) }],
    ["undefined in an object", { a: undefined }],
    ["a bigint", { n: 10n }],
    ["NaN", { n: NaN }],
    ["-0", [-0]],
    ["a Map", new Map([[1, new Set([2])]])],
    ["a RegExp", /x/giu],
  ])("round-trips %s through superjson", (_, value) => {
    expect(decodePayload(encodePayload(value))).toEqual(value);
  });

  it("keeps shared references of nested objects as one object", () => {
    const shared = { n: 1 };
    const decoded = decodePayload(encodePayload({ a: shared, b: shared })) as { a: object; b: object };
    expect(decoded.a).toBe(decoded.b);
  });

  it.each<[string, string]>([
    ["text that is not JSON", "{nope"],
    ["JSON without a json field", '{"meta":{}}'],
    ["a meta that is not an object", '{"json":1,"meta":[1]}'],
    ["a prototype-pollution path", '{"json":1,"meta":{"values":{"__proto__.polluted":["Date"]}}}'],
  ])("refuses %s with ERR_ROAR_MALFORMED", (_, payload) => {
    roarError(() => decodePayload(payload), "ERR_ROAR_MALFORMED");
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it.each(ARRIVES.map((c) => [c.name, c] as const))("brings %s back as itself", (_, { make }) => {
    expect(typedDump(decodePayload(encodePayload(make())))).toEqual(typedDump(make()));
  });
});

// A peer may send anything; what it sends is held to what `publish` accepts (guarantee 7).
describe("payload codec, given what no publish could have sent", () => {
  const deep = JSON.stringify({ json: nestedArrays(600) });
  it.each<[string, string]>([
    ["an own __proto__ key", '{"json":{"__proto__":{"polluted":true}}}'],
    ["an own __proto__ key written with a unicode escape", '{"json":{"\\u005f_proto__":{"polluted":true}}}'],
    ["an own __proto__ key deep inside", '{"json":{"a":[1,{"b":{"__proto__":{"polluted":true}}}]}}'],
    ["an own constructor key", '{"json":{"constructor":{"prototype":{"polluted":true}}}}'],
    ["an own prototype key", '{"json":[{"prototype":1}]}'],
    ["an own __proto__ key beside values superjson annotates", JSON.stringify({ json: JSON.parse('{"at":"1970-01-01T00:00:00.000Z","__proto__":{"polluted":true}}') as unknown, meta: { values: { at: ["Date"] } } })],
    ["an own __proto__ key inside a Map", '{"json":[["k",{"__proto__":{"polluted":true}}]],"meta":{"values":["map"]}}'],
    [`nesting deeper than ${600 - 1} levels`, deep],
    ["an Error", superjson.stringify(new Error("boom"))],
    ["binary data", superjson.stringify({ bytes: new Uint8Array([1, 2]) })],
    ["a URL", superjson.stringify(new URL("https://example.com/"))],
    ["an invalid Date", '{"json":"x","meta":{"values":["Date"]}}'],
  ])("refuses %s with ERR_ROAR_MALFORMED, and pollutes nothing", (_, payload) => {
    const error = roarError(() => decodePayload(payload), "ERR_ROAR_MALFORMED");
    expect(error.message).toMatch(/^a payload (holds what a message may not|could not be decoded)/);
    const plain: Record<string, unknown> = {};
    expect(plain["polluted"]).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it("decodes names of Object.prototype's members as the plain keys they are", () => {
    const decoded = decodePayload('{"json":{"toString":1,"hasOwnProperty":"x","valueOf":[]}}');
    expect(typedDump(decoded)).toEqual(typedDump({ toString: 1, hasOwnProperty: "x", valueOf: [] }));
  });
});
