/**
 * Flow control, part 3: a bounded control plane under storms. While one worker is stopped
 * (it reads nothing, so whatever its primary sends it stays in the primary), another worker
 * makes 200,000 unawaited flushes, or subscribes and cancels a million times in one loop:
 * the primary's memory must not grow with the number of requests.
 *
 * The primary runs with --expose-gc: its heap is measured after a full GC, its RSS from
 * /proc (VmRSS now, VmHWM peak), before and after.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import type { FlushOutcome, Memory } from "../fixtures/flow-protocol.js";
import { forkFlow, signal, type FlowPeer } from "./flow-support.js";
import { Cleanup, testScope, TIMEOUT } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const MiB = 2 ** 20;

/** A primary (with --expose-gc) and two workers, the first of them stopped. */
async function withStoppedWorker(): Promise<{ primary: FlowPeer; stopped: FlowPeer; stoppedPid: number; busy: FlowPeer }> {
  const forked = await forkFlow("primary", { execArgv: ["--expose-gc"] });
  cleanup.add(() => forked.stop());
  const primary = forked.peer;
  await primary.call("relay", {});
  const { peer: stopped, pid: stoppedPid } = await primary.fork("stopped");
  cleanup.add(() => signal(stoppedPid, "SIGCONT"));
  const { peer: busy } = await primary.fork("busy");
  return { primary, stopped, stoppedPid, busy };
}

function growth(before: Memory, after: Memory): { heapMiB: number; rssMiB: number; hwmMiB: number } {
  const round = (bytes: number): number => Math.round((bytes / MiB) * 10) / 10;
  return { heapMiB: round(after.heapUsed - before.heapUsed), rssMiB: round((after.rssKb - before.rssKb) * 1024), hwmMiB: round((after.hwmKb - before.hwmKb) * 1024) };
}

describe("storms do not grow the primary", () => {
  // Without coalescing (one request in flight per hub, one waiting per link), each flush was a
  // request the primary kept until its round completed: 200k unawaited flushes grew it ~100 MiB.
  it("200,000 unawaited flushes in a worker while another is stopped", async () => {
    const scope = testScope();
    const { primary, stopped, stoppedPid, busy } = await withStoppedWorker();
    await stopped.call("track", { key: "got", scope, topic: "t" });
    expect((await stopped.call("flush", { scope })).ok).toBe(true);
    expect((await busy.call("flush", { scope })).ok).toBe(true);
    const before = await primary.call("memory", {});
    signal(stoppedPid, "SIGSTOP");
    const storm = await busy.call("flushStorm", { scope, count: 200_000 });
    // Each gives up on the stopped worker, coalesced into one round: none resolves.
    expect(storm).toMatchObject({ resolved: 0, rejected: 200_000 });
    const after = await primary.call("memory", {});
    const grew = growth(before, after);
    console.log(`flush storm (200k): primary grew ${JSON.stringify(grew)}; the storm took ${Math.round(storm.elapsedMs)} ms`);
    expect(grew.heapMiB).toBeLessThan(4);
    expect(grew.hwmMiB).toBeLessThan(8);
    signal(stoppedPid, "SIGCONT");
    expect((await busy.call("flush", { scope })).ok).toBe(true);
  });

  // Interest deltas for a link that is not reading must be coalesced (a subscribe and its
  // cancel cancel out): otherwise each churn grows what the primary holds for the stopped one.
  // KNOWN (reported, being worked on): today the primary's RSS grows by ~280 MiB (heap +2 MiB:
  // it is the pipe's write queue of 2M interest frames for the stopped worker, which control
  // frames are never dropped from). Remove `.failing` once interest deltas are coalesced.
  it("1,000,000 subscribe/cancel in a worker while another is stopped", async () => {
    const scope = testScope();
    const { primary, stopped, stoppedPid, busy } = await withStoppedWorker();
    await stopped.call("track", { key: "got", scope, topic: "other" });
    expect((await stopped.call("flush", { scope })).ok).toBe(true);
    expect((await busy.call("flush", { scope })).ok).toBe(true);
    const before = await primary.call("memory", {});
    signal(stoppedPid, "SIGSTOP");
    const churn = await busy.call("churn", { scope, topic: "t", count: 1_000_000 });
    // The flush travels behind the churn: once it settles (timed out on the stopped worker)
    // the primary has taken in every interest change.
    const flushed: FlushOutcome = await busy.call("flush", { scope, timeout: 120_000 }, 120_000 + TIMEOUT);
    expect(flushed).toMatchObject({ ok: false, code: "ERR_ROAR_TIMEOUT" });
    const after = await primary.call("memory", {});
    const grew = growth(before, after);
    console.log(`interest churn (1M): primary grew ${JSON.stringify(grew)}; the churn took ${Math.round(churn.elapsedMs)} ms`);
    expect(grew.hwmMiB).toBeLessThan(16);
    signal(stoppedPid, "SIGCONT");
    expect((await busy.call("flush", { scope, timeout: 120_000 }, 120_000 + TIMEOUT)).ok).toBe(true);
  });
});
