import { describe, expect, it } from "@jest/globals";
import { RingBuffer } from "../lib/ring-buffer.js";

/** Shifts everything out of `buffer`, oldest first. */
function drain<T>(buffer: RingBuffer<T>): T[] {
  const items: T[] = [];
  while (buffer.size > 0) items.push(buffer.shift() as T);
  return items;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

describe("RingBuffer", () => {
  it("keeps items in FIFO order", () => {
    const buffer = new RingBuffer<number>(3);
    buffer.push(1);
    buffer.push(2);
    buffer.push(3);
    expect(buffer.shift()).toBe(1);
    expect(buffer.shift()).toBe(2);
    expect(buffer.shift()).toBe(3);
    expect(buffer.shift()).toBeUndefined();
  });

  it("returns undefined from shift when empty", () => {
    const buffer = new RingBuffer<string>(4);
    expect(buffer.shift()).toBeUndefined();
    expect(buffer.size).toBe(0);
  });

  it("counts the items it holds in size", () => {
    const buffer = new RingBuffer<number>(4);
    expect(buffer.size).toBe(0);
    buffer.push(1);
    buffer.push(2);
    expect(buffer.size).toBe(2);
    buffer.shift();
    expect(buffer.size).toBe(1);
  });

  it("reports its capacity", () => {
    expect(new RingBuffer<number>(7).capacity).toBe(7);
  });

  it("returns false from push while there is room", () => {
    const buffer = new RingBuffer<number>(2);
    expect(buffer.push(1)).toBe(false);
    expect(buffer.push(2)).toBe(false);
  });

  it("drops the oldest item when capacity is reached and returns true", () => {
    const buffer = new RingBuffer<number>(3);
    for (const item of [1, 2, 3]) buffer.push(item);
    expect(buffer.push(4)).toBe(true);
    expect(buffer.size).toBe(3);
    expect(drain(buffer)).toEqual([2, 3, 4]);
  });

  it("keeps the newest items after many overflows", () => {
    const buffer = new RingBuffer<number>(5);
    let dropped = 0;
    for (const item of range(0, 23)) if (buffer.push(item)) dropped++;
    expect(dropped).toBe(18);
    expect(drain(buffer)).toEqual([18, 19, 20, 21, 22]);
  });

  it("holds exactly one item, the newest, at capacity 1", () => {
    const buffer = new RingBuffer<string>(1);
    expect(buffer.push("a")).toBe(false);
    expect(buffer.push("b")).toBe(true);
    expect(buffer.push("c")).toBe(true);
    expect(buffer.size).toBe(1);
    expect(buffer.shift()).toBe("c");
    expect(buffer.shift()).toBeUndefined();
    expect(buffer.push("d")).toBe(false);
    expect(buffer.shift()).toBe("d");
  });

  it("grows past 16 items up to its capacity without dropping", () => {
    const capacity = 1000;
    const buffer = new RingBuffer<number>(capacity);
    for (const item of range(0, capacity)) expect(buffer.push(item)).toBe(false);
    expect(buffer.size).toBe(capacity);
    expect(buffer.push(capacity)).toBe(true);
    expect(drain(buffer)).toEqual(range(1, capacity + 1));
  });

  it("grows to a capacity that is not a power of two", () => {
    const buffer = new RingBuffer<number>(20);
    for (const item of range(0, 20)) expect(buffer.push(item)).toBe(false);
    expect(buffer.push(20)).toBe(true);
    expect(drain(buffer)).toEqual(range(1, 21));
  });

  it("keeps FIFO order when it grows while its contents wrap around", () => {
    const buffer = new RingBuffer<number>(100);
    for (const item of range(0, 16)) buffer.push(item);
    for (let i = 0; i < 5; i++) buffer.shift();
    for (const item of range(16, 21)) buffer.push(item); // wraps within the first 16 slots
    for (const item of range(21, 40)) buffer.push(item); // grows with the head in the middle
    expect(drain(buffer)).toEqual(range(5, 40));
  });

  it("keeps FIFO order when it wraps around at full capacity", () => {
    const buffer = new RingBuffer<number>(4);
    for (const item of range(0, 4)) buffer.push(item);
    buffer.shift();
    buffer.shift();
    buffer.push(4);
    buffer.push(5);
    expect(buffer.push(6)).toBe(true);
    expect(drain(buffer)).toEqual([3, 4, 5, 6]);
  });

  it("accepts a capacity far larger than what it holds", () => {
    const buffer = new RingBuffer<number>(Number.MAX_SAFE_INTEGER);
    for (const item of range(0, 100)) expect(buffer.push(item)).toBe(false);
    expect(drain(buffer)).toEqual(range(0, 100));
  });

  it("holds undefined as an item, counted in size", () => {
    const buffer = new RingBuffer<undefined>(2);
    buffer.push(undefined);
    expect(buffer.size).toBe(1);
    expect(buffer.shift()).toBeUndefined();
    expect(buffer.size).toBe(0);
  });

  it("empties on clear and stays usable at the same capacity", () => {
    const buffer = new RingBuffer<number>(40);
    for (const item of range(0, 30)) buffer.push(item);
    buffer.shift();
    buffer.clear();
    expect(buffer.size).toBe(0);
    expect(buffer.shift()).toBeUndefined();
    expect(buffer.capacity).toBe(40);
    for (const item of range(100, 140)) expect(buffer.push(item)).toBe(false);
    expect(buffer.push(140)).toBe(true);
    expect(drain(buffer)).toEqual(range(101, 141));
  });
});
