/**
 * Control frames that would make a relay write far more than it reads: a child that sends
 * hello after hello, each asking for the relay's whole interest in answer. Answers to one link
 * are rate-limited and never go to a link that does not read, so the relay's memory stays flat.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { fork } from "node:child_process";
import * as roar from "../../lib/index.js";
import type { Storm } from "../fixtures/storm-child.js";
import { Cleanup, fixture, once, testScope, TIMEOUT } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

describe("control-frame storms", () => {
  it("20,000 hellos asking for an answer, each worth the relay's whole interest (5,000 topics), grow the relay by megabytes, not gigabytes", async () => {
    const scope = testScope();
    const relay = await roar.startRelay();
    cleanup.add(() => relay.close());
    const router = roar.createRouter({ scope, capacity: 1 });
    cleanup.add(() => router.close());
    // An answer names every topic: 5,000 of ~40 characters, ~200 KB of hello.
    for (let i = 0; i < 5_000; i++) router.on(`a topic with a rather long name, number ${i}`, () => undefined);

    const child = fork(fixture("storm-child.js"), [], { env: { ...process.env, STORM_CHILD: "1" }, serialization: "json" });
    cleanup.add(() => void child.kill("SIGKILL"));
    const ready = once<{ kind: string }>(child, "message", "the storm child");
    relay.attach(child);
    await ready;

    const rssBefore = process.memoryUsage().rss;
    const sent = once(child, "message", "the storm to be sent", TIMEOUT * 3);
    child.send({ kind: "storm", hellos: 20_000 } satisfies Storm);
    await sent; // behind every hello on the same channel: all of them were taken in
    const grown = process.memoryUsage().rss - rssBefore;
    // Without the limit, 20,000 answers of ~200 KB each: 4 GB to write.
    expect(grown).toBeLessThan(64 * 2 ** 20);
    expect(relay.stats().processes).toBe(1);
    // (The child speaks roar's hello but no more: a flush would wait for its sync answer, and
    // time out naming it — which is what a flush must do with a peer that does not answer.)
    await expect(router.flush({ timeout: 20_000 })).rejects.toMatchObject({ code: "ERR_ROAR_TIMEOUT", message: expect.stringContaining(`pid ${child.pid}`) });
  });
});
