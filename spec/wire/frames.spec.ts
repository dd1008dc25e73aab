import { describe, expect, it } from "@jest/globals";
import { foldMessages, type Frame } from "../../lib/wire/frames.js";
import { isFrame } from "../../lib/wire/validate-frame.js";

describe("foldMessages", () => {
  it("folds consecutive messages on one (scope, topic) into one M frame, keeping order", () => {
    const batch: Frame[] = [
      ["m", "s", "t", 1],
      ["m", "s", "t", 2],
      ["i", "s", "u", 1],
      ["m", "s", "t", 3],
      ["m", "s", "u", 4],
      ["m", "s", "u", 5],
      ["m", "x", "u", 6],
    ];
    expect(foldMessages(batch)).toEqual([
      ["M", "s", "t", [1, 2]],
      ["i", "s", "u", 1],
      ["m", "s", "t", 3],
      ["M", "s", "u", [4, 5]],
      ["m", "x", "u", 6],
    ]);
  });

  it("folds runs that arrived as M frames with single messages around them", () => {
    const batch: Frame[] = [["m", "s", "t", 1], ["M", "s", "t", [2, 3]], ["m", "s", "t", 4], ["M", "s", "u", [5, 6]]];
    expect(foldMessages(batch)).toEqual([["M", "s", "t", [1, 2, 3, 4]], ["M", "s", "u", [5, 6]]]);
  });

  it("leaves a batch without runs as it is", () => {
    const batch: Frame[] = [["f", 1], ["m", "s", "t", 1], ["S", 2]];
    expect(foldMessages(batch)).toEqual(batch);
  });
});

describe("isFrame", () => {
  it.each<[string, unknown]>([
    ["a message", ["m", "s", "t", { a: 1 }]],
    ["a folded run", ["M", "s", "t", [1, 2]]],
    ["an interest change", ["i", "s", "t", 0]],
    ["a hello", ["h", 1, "node", 0, [["s", "t"]]]],
    ["a flush and its answer", ["F", 3]],
    ["a frame from a newer version, with a field more", ["m", "s", "t", 1, 0, "extra"]],
    ["a message that crossed hosts", ["M", "s", "t", ["1"], 3]],
  ])("accepts %s", (_, frame) => {
    expect(isFrame(frame)).toBe(true);
  });

  it.each<[string, unknown]>([
    ["a non-array", { 0: "m" }],
    ["an unknown kind", ["x", 1]],
    ["a message without payload", ["m", "s", "t"]],
    ["an empty topic", ["m", "s", "", 1]],
    ["a topic too long", ["m", "s", "t".repeat(1025), 1]],
    ["an empty run", ["M", "s", "t", []]],
    ["a run that is not an array", ["M", "s", "t", 1]],
    ["a message whose hop count is not a count", ["m", "s", "t", 1, -1]],
    ["a sync whose hop count is not a count", ["s", 1, "x"]],
    ["an interest that is not 0 or 1", ["i", "s", "t", 2]],
    ["a negative id", ["f", -1]],
    ["a fractional id", ["s", 1.5]],
    ["a hello with a bad interest list", ["h", 1, "n", 0, [["s"]]]],
    ["a hello with a huge node id", ["h", 1, "n".repeat(300), 0, []]],
  ])("refuses %s", (_, frame) => {
    expect(isFrame(frame)).toBe(false);
  });
});
