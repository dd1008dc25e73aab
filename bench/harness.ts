/**
 * A small benchmark harness: each case runs in rounds of about `roundMs`, and the median rate
 * is reported, so one slow round on a busy machine does not decide the figure.
 */
import type { Router } from "roar";

/** One measured case: a name and its median rate. */
export interface Result {
  name: string;
  /** Operations per second, median of the rounds. */
  rate: number;
}

/**
 * Measures `run(n)`, which must perform `n` operations, and returns its median rate.
 * `n` is calibrated so one round takes about `roundMs`.
 */
export function measureSync(name: string, run: (n: number) => void, { rounds = 7, roundMs = 200 } = {}): Result {
  let n = 1000;
  for (;;) {
    const started = process.hrtime.bigint();
    run(n);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (ms >= roundMs / 4) {
      n = Math.max(1, Math.round((n * roundMs) / Math.max(ms, 0.001)));
      break;
    }
    n *= 4;
  }
  const rates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    globalThis.gc?.();
    const started = process.hrtime.bigint();
    run(n);
    rates.push((n * 1e9) / Number(process.hrtime.bigint() - started));
  }
  return { name, rate: median(rates) };
}

/** Measures an asynchronous `run(n)` the same way, for cases that cross threads or processes. */
export async function measureAsync(name: string, run: (n: number) => Promise<void>, { rounds = 5, n = 20000 } = {}): Promise<Result> {
  await run(Math.min(n, 2000)); // warm-up
  const rates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    globalThis.gc?.();
    const started = process.hrtime.bigint();
    await run(n);
    rates.push((n * 1e9) / Number(process.hrtime.bigint() - started));
  }
  return { name, rate: median(rates) };
}

/** roar's publisher flushes every PACE messages (see {@link publishPaced}). */
const PACE = 8192;

/**
 * Publishes `count` messages on `topic` of router `r`, as fast as roar takes them; returns the
 * nanoseconds spent in `publish` calls (waits for flushes left out): the publish cost.
 *
 * flush() paces the publisher: it waits for the flush made one PACE of messages earlier, so at
 * most two PACEs wait for the relay — well under a link's bound, so a publisher faster than
 * its relay does not run into it and drop — and the pipe never runs dry.
 */
export async function publishPaced(r: Router, topic: string, count: number): Promise<number> {
  await r.flush();
  let previous = Promise.resolve();
  let busyNs = 0;
  let started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    r.publish(topic, message(i));
    if (i % PACE === PACE - 1) {
      busyNs += Number(process.hrtime.bigint() - started);
      await previous;
      previous = r.flush();
      started = process.hrtime.bigint();
    }
  }
  return busyNs + Number(process.hrtime.bigint() - started);
}

/** The raw sender yields to the event loop every CHUNK messages, as a streaming program does. */
const CHUNK = 1000;

/** Sends `count` messages with `send`, one call per message, yielding to the event loop every CHUNK. */
export async function sendRaw(send: (value: unknown) => void, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    send(message(i));
    if (i % CHUNK === CHUNK - 1) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The small message every cross-thread, cross-process and cross-host case sends. */
export const message = (i: number): { i: number; text: string } => ({ i, text: "hello, world" });

/**
 * Ping-pong: sends ping 0, and each time `arm`'s callback is called (a pong came back) records
 * the round trip and sends the next ping; after `count` round trips, calls `disarm` and then
 * `done` with the round-trip times in nanoseconds.
 */
export function pingPong(
  count: number,
  sendPing: (i: number) => void,
  arm: (onPong: () => void) => void,
  done: (rtts: number[]) => void,
  disarm = (): void => undefined,
): void {
  const rtts: number[] = [];
  let started = process.hrtime.bigint();
  arm(() => {
    const now = process.hrtime.bigint();
    rtts.push(Number(now - started));
    if (rtts.length === count) {
      disarm();
      return done(rtts);
    }
    started = process.hrtime.bigint();
    sendPing(rtts.length);
  });
  sendPing(0);
}

/** The median of `values` (which it sorts). */
export function median(values: number[]): number {
  values.sort((a, b) => a - b);
  const mid = values.length >> 1;
  return values.length % 2 === 1 ? (values[mid] as number) : ((values[mid - 1] as number) + (values[mid] as number)) / 2;
}

/** The `p`th percentile (0–100) of `values` (which it sorts), nearest rank. */
export function percentile(values: number[], p: number): number {
  values.sort((a, b) => a - b);
  return values[Math.min(values.length - 1, Math.max(0, Math.ceil((p / 100) * values.length) - 1))] as number;
}

/** Prints a table of rates, each with its ratio to `baseline` (a row of the same table). */
export function printTable(title: string, rows: { result: Result; baseline?: Result; target?: string }[]): void {
  const lines = rows.map(({ result, baseline, target }) => [
    result.name,
    formatRate(result.rate),
    baseline ? `${(result.rate / baseline.rate).toFixed(2)}× ${baseline.name}` : "(baseline)",
    target ?? "",
  ]);
  printColumns(title, ["case", "rate", "ratio", "target"], lines);
}

/** Prints `lines` of cells under `header`, in aligned columns. */
export function printColumns(title: string, header: string[], lines: string[][]): void {
  console.log(`\n${title}`);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => (line[i] as string).length)));
  const format = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i] as number)).join("  ").trimEnd();
  console.log(format(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const line of lines) console.log(format(line));
}

function formatRate(rate: number): string {
  return rate >= 1e6 ? `${(rate / 1e6).toFixed(2)} M/s` : `${(rate / 1e3).toFixed(1)} k/s`;
}
