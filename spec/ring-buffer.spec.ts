import { describe, expect, it } from "@jest/globals";
import { RingBuffer } from "../lib/ring-buffer.js";

describe("RingBuffer", () => {
  it("keeps items in FIFO order", () => {
    const buffer = new RingBuffer<number>(3);
    buffer.push(1);
    buffer.push(2);
    expect(buffer.shift()).toBe(1);
    expect(buffer.shift()).toBe(2);
    expect(buffer.shift()).toBeUndefined();
  });
});
