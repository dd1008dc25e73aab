import { describe, expect, it } from "@jest/globals";
import { MAX_NAME_LENGTH, RoarError, describe as describeValue, type RoarErrorCode } from "../lib/errors.js";

const CODES: RoarErrorCode[] = [
  "ERR_ROAR_INVALID_SCOPE",
  "ERR_ROAR_INVALID_TOPIC",
  "ERR_ROAR_INVALID_CAPACITY",
  "ERR_ROAR_INVALID_OPTION",
  "ERR_ROAR_TIMEOUT",
  "ERR_ROAR_CANCELLED",
  "ERR_ROAR_ABORTED",
  "ERR_ROAR_UNSERIALIZABLE",
  "ERR_ROAR_CLOSED",
];

describe("RoarError", () => {
  it("is an Error and a RoarError", () => {
    const error = new RoarError("ERR_ROAR_CLOSED", "closed");
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(RoarError);
  });

  it.each(CODES)("carries the code %s it was made with", (code) => {
    expect(new RoarError(code, "something went wrong").code).toBe(code);
  });

  it("is named RoarError", () => {
    expect(new RoarError("ERR_ROAR_TIMEOUT", "late").name).toBe("RoarError");
  });

  it("keeps its message", () => {
    expect(new RoarError("ERR_ROAR_TIMEOUT", "waited too long").message).toBe("waited too long");
  });

  it("keeps the cause it was given", () => {
    const cause = new Error("underneath");
    expect(new RoarError("ERR_ROAR_ABORTED", "aborted", { cause }).cause).toBe(cause);
  });

  it("has no cause when none was given", () => {
    expect("cause" in new RoarError("ERR_ROAR_ABORTED", "aborted")).toBe(false);
  });

  it("has a stack trace", () => {
    expect(typeof new RoarError("ERR_ROAR_CLOSED", "closed").stack).toBe("string");
  });

  it("is caught by a catch that checks instanceof and code", () => {
    let caught: unknown;
    try {
      throw new RoarError("ERR_ROAR_INVALID_TOPIC", "bad topic");
    } catch (error) {
      caught = error;
    }
    expect(caught instanceof RoarError && caught.code === "ERR_ROAR_INVALID_TOPIC").toBe(true);
  });
});

describe("MAX_NAME_LENGTH", () => {
  it("is 1024 code units", () => {
    expect(MAX_NAME_LENGTH).toBe(1024);
  });
});

describe("describe (rendering a rejected value for a message)", () => {
  it("quotes strings", () => {
    expect(describeValue("abc")).toBe('"abc"');
  });

  it("shortens long strings and gives their length", () => {
    const rendered = describeValue("x".repeat(5000));
    expect(rendered.length).toBeLessThan(200);
    expect(rendered).toContain("5000");
  });

  it("renders bigints with their n suffix", () => {
    expect(describeValue(12n)).toBe("12n");
  });

  it.each<[string, unknown]>([
    ["undefined", undefined],
    ["null", null],
    ["a number", 1.5],
    ["NaN", NaN],
    ["a boolean", true],
    ["a symbol", Symbol("s")],
    ["a function", () => undefined],
    ["an array", [1, 2]],
    ["a plain object", { a: 1 }],
    ["a null-prototype object", Object.create(null) as object],
    ["a class instance", new (class Thing {})()],
  ])("renders %s as a non-empty string without throwing", (_, value) => {
    const rendered = describeValue(value);
    expect(typeof rendered).toBe("string");
    expect(rendered.length).toBeGreaterThan(0);
  });

  it("tells an array from another object", () => {
    expect(describeValue([])).not.toBe(describeValue({}));
  });

  it("names the kind of object it was given", () => {
    expect(describeValue(new Map())).toContain("Map");
  });
});
