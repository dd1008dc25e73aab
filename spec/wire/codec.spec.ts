import { describe, expect, it } from "@jest/globals";
import superjson from "superjson";
import { decodePayload, encodePayload } from "../../lib/wire/codec.js";
import { roarError } from "../helpers.js";

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
});
