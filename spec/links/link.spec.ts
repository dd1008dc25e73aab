import { describe, expect, it } from "@jest/globals";
import { Link, MAX_BATCH, type LinkBounds } from "../../lib/links/link.js";
import type { Frame } from "../../lib/wire/frames.js";

/** A link whose channel is an array: `caughtUp` says whether the far side took in all. */
class FakeLink extends Link {
  readonly kind = "thread";
  readonly writes: { batch: Frame[]; frames: number }[] = [];
  pending = 0;
  caughtUp = true;

  protected write(batch: Frame[], frames: number): void {
    this.writes.push({ batch, frames });
    this.pending += frames;
  }

  get label(): string {
    return "a fake neighbour";
  }

  protected inFlight(): number {
    return this.caughtUp ? 0 : this.pending;
  }

  protected heldMessages(): number {
    return this.inFlight();
  }

  protected heldBytes(): number {
    return 0;
  }

  protected detach(): void {}
}

const message = (i: number): Frame => ["m", "s", "t", i];
const bounds = (maxQueue: number): LinkBounds => ({ maxQueue, maxQueueBytes: 64 * 1024 * 1024 });

describe("Link", () => {
  it("writes a message at once when the far side has taken in everything", () => {
    const link = new FakeLink(bounds(100));
    link.sendMessage(message(1));
    expect(link.writes).toEqual([{ batch: [message(1)], frames: 1 }]);
  });

  it("gathers messages while the far side is behind and writes them together at the end of the job, folded", async () => {
    const link = new FakeLink(bounds(100));
    link.caughtUp = false;
    link.pending = 1;
    for (let i = 0; i < 3; i++) link.sendMessage(message(i));
    expect(link.writes).toEqual([]);
    await Promise.resolve();
    expect(link.writes).toEqual([{ batch: [["M", "s", "t", [0, 1, 2]]], frames: 3 }]);
  });

  it("writes a full batch without waiting for the end of the job", () => {
    const link = new FakeLink(bounds(10_000));
    link.caughtUp = false;
    link.pending = 1;
    for (let i = 0; i < MAX_BATCH; i++) link.sendMessage(message(i));
    expect(link.writes).toHaveLength(1);
    expect(link.writes[0]?.frames).toBe(MAX_BATCH);
  });

  it("writes what it gathered as soon as the far side has caught up, when asked", () => {
    const link = new FakeLink(bounds(100));
    link.caughtUp = false;
    link.pending = 1;
    link.sendMessage(message(1));
    link.flushIfCaughtUp();
    expect(link.writes).toEqual([]);
    link.caughtUp = true;
    link.flushIfCaughtUp();
    expect(link.writes).toHaveLength(1);
  });

  it("counts a message as dropped when maxQueue messages are not yet taken in, but never holds back control frames", () => {
    const link = new FakeLink(bounds(2));
    link.caughtUp = false;
    link.pending = 2;
    expect(link.dropIfFull()).toBe(true);
    link.sendControl(["i", "s", "t", 1]);
    expect(link.counters.droppedQueueFull).toBe(1);
    link.flushOutbox();
    expect(link.writes).toEqual([{ batch: [["i", "s", "t", 1]], frames: 1 }]);
  });

  it("says bye when it closes, and sends nothing after", () => {
    const link = new FakeLink(bounds(100));
    link.close();
    link.sendMessage(message(1));
    expect(link.writes).toEqual([{ batch: [["b"]], frames: 1 }]);
    expect(link.isClosed).toBe(true);
  });

  it("sends a run as one frame, counting its messages, and drops the newest beyond the bound", () => {
    const link = new FakeLink(bounds(5));
    link.caughtUp = false;
    link.pending = 2;
    link.sendRun("s", "t", [1, 2, 3, 4, 5]);
    expect(link.counters).toMatchObject({ sent: 3, droppedQueueFull: 2 });
    link.flushOutbox();
    expect(link.writes).toEqual([{ batch: [["M", "s", "t", [1, 2, 3]]], frames: 3 }]);
  });
});
