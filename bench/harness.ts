/**
 * A small benchmark harness: each case runs in rounds and the median rate is reported, so one
 * slow round on a busy machine does not decide the figure. In-thread cases run rounds of about
 * `roundMs` ({@link measureSync}); throughput cases across threads, processes and hosts run
 * rounds of {@link ROUND} messages published in one synchronous loop, and report beside their
 * rate what the receiver counted of what was published and the peak RSS of each process.
 */
import { readFileSync, writeFileSync } from "node:fs";
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

/**
 * The messages of one throughput round: the default bound of a link (`maxQueue`, 65,536), the
 * longest burst the defaults promise to carry whole on every path, whatever the consumer's speed.
 */
export const ROUND = 65_536;

/** The peer commands that prepare a round (before its clock starts): each process they reach collects its garbage first. */
export const ROUND_STARTS: ReadonlySet<string> = new Set(["subscribe", "join", "raw-receive", "raw-via"]);

/** What a publisher reports of one round. */
export interface Published {
  /** Nanoseconds spent in the publishing loop (waits for `drained()` included). */
  busyNs: number;
  /** How many `publish` calls returned `false` (a link over its high-water mark, or a drop). */
  refused: number;
}

/**
 * Publishes `count` messages on `topic` of router `r` in one synchronous loop, as a program in
 * a hurry does: no flush, no yield, so no link hears back from its neighbour meanwhile.
 */
export function publishBurst(r: Router, topic: string, count: number): Published {
  let refused = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) if (!r.publish(topic, message(i))) refused++;
  return { busyNs: Number(process.hrtime.bigint() - started), refused };
}

/**
 * Publishes `count` messages as the producer loop that never loses does: each time `publish`
 * returns `false`, it waits for `drained()` before the next.
 */
export async function publishDrained(r: Router, topic: string, count: number): Promise<Published> {
  let refused = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    if (!r.publish(topic, message(i))) {
      refused++;
      await r.drained();
    }
  }
  return { busyNs: Number(process.hrtime.bigint() - started), refused };
}

/** Sends `count` messages with `send`, one call per message, in one synchronous loop (the raw baseline of {@link publishBurst}). */
export function sendBurst(send: (value: unknown) => void, count: number): void {
  for (let i = 0; i < count; i++) send(message(i));
}

/**
 * What a receiver counts in a round: every message that arrived, and when the last did
 * (`process.hrtime` in nanoseconds: CLOCK_MONOTONIC, one clock for every thread and process
 * of the machine, so the benchmark's main process can set it against its own start).
 */
export interface Tally {
  received: number;
  lastAt: number;
}

/**
 * Counts a round's arrivals for a receiver: `arrive` is called for each message; `report` is
 * called once, with the tally, when `expect` arrived or when {@link Counter.finish} ends the
 * round short (the benchmark saw arrivals stop: messages were lost).
 */
export class Counter {
  readonly #expect: number;
  readonly #report: (tally: Tally) => void;
  #tally: Tally = { received: 0, lastAt: 0 };
  #reported = false;

  constructor(expect: number, report: (tally: Tally) => void) {
    this.#expect = expect;
    this.#report = report;
  }

  /** One message arrived. */
  arrive(): void {
    this.#tally.received++;
    this.#tally.lastAt = Number(process.hrtime.bigint());
    if (this.#tally.received === this.#expect) this.finish();
  }

  /** The tally so far. */
  get tally(): Tally {
    return { ...this.#tally };
  }

  /** Reports the tally now, unless it was reported already. */
  finish(): void {
    if (this.#reported) return;
    this.#reported = true;
    this.#report(this.tally);
  }
}

/** A field of /proc/PID/status in KiB (`VmHWM`, `VmRSS`), or `undefined` off Linux or once the process exited. */
function status(pid: number, field: "VmHWM" | "VmRSS"): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * Resets a process's peak resident set (VmHWM) to what it holds now (Linux: `5` to
 * /proc/PID/clear_refs), so a round's peak is its own; returns what it holds now, in KiB.
 */
export function resetPeakRss(pid: number): number | undefined {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    return undefined; // Not Linux, or the process exited: its peak is then reported as unknown.
  }
  return status(pid, "VmRSS");
}

/** The processes a round involves, by role ("publisher", "primary", ...): their peak RSS is read around it. */
export type Processes = readonly (readonly [role: string, pid: number])[];

/** A role's figures across rounds, in KiB. */
interface Peak {
  /** The highest VmHWM any round reached. */
  peak: number;
  /** The most any round added to what the process held when it started (VmHWM − VmRSS at the reset). */
  growth: number;
}

/**
 * The peaks of `processes` across rounds: {@link Peaks.round} resets them before a round and
 * keeps, for each role, the highest peak any round reached and the most a round added. A
 * process keeps the heap an earlier round grew (V8 seldom gives pages back), so its peak may
 * be another case's; what a round added is its own.
 */
export class Peaks {
  readonly #processes: Processes;
  /** Each role's figures; `undefined` once a round could not read them. */
  readonly #roles = new Map<string, Peak | undefined>();

  constructor(processes: Processes) {
    this.#processes = processes;
  }

  /** Runs `round` with every process's peak reset before it, and keeps the peaks it reached. */
  async round<T>(round: () => Promise<T>): Promise<T> {
    const starts = this.#processes.map(([, pid]) => resetPeakRss(pid));
    const outcome = await round();
    for (const [i, [role, pid]] of this.#processes.entries()) {
      const peak = status(pid, "VmHWM");
      const start = starts[i];
      const known = this.#roles.has(role) ? this.#roles.get(role) : { peak: 0, growth: 0 };
      if (peak === undefined || start === undefined || known === undefined) this.#roles.set(role, undefined);
      else this.#roles.set(role, { peak: Math.max(known.peak, peak), growth: Math.max(known.growth, peak - start) });
    }
    return outcome;
  }

  /** Each role's peak and most added in a round, in MiB, e.g. "publisher 61 (+3) · primary 74 (+12) MiB". */
  toString(): string {
    const mib = (kib: number): number => Math.round(kib / 1024);
    const cells = [...this.#roles].map(([role, figures]) => `${role} ${figures === undefined ? "?" : `${mib(figures.peak)} (+${mib(figures.growth)})`}`);
    return cells.length === 0 ? "" : `${cells.join(" · ")} MiB`;
  }
}

/** Rounds run before measuring, so the JIT has compiled both sides' paths. */
export const WARM_UP_ROUNDS = 2;

/** What one throughput round measured. */
export interface RoundResult {
  /** Messages delivered per second, from the start of the round to the last arrival. */
  rate: number;
  received: number;
  published: number;
}

/** A throughput case's figures: its median rate, what was delivered of what was published, and its processes' peaks. */
export interface Throughput extends Result {
  received: number;
  published: number;
  /** The peak RSS of each process involved, in words (see {@link Peaks.toString}). */
  peaks: string;
}

/**
 * One throughput case measured in rounds (alternating with other cases' rounds as its caller
 * likes): the median rate of the rounds after the warm-up, the messages delivered of those
 * published in every round (warm-up included: a loss is a loss), and the highest peak RSS of
 * each process across the rounds.
 */
export class Case {
  readonly name: string;
  readonly #warmUp: number;
  readonly #peaks: Peaks;
  readonly #rates: number[] = [];
  #received = 0;
  #published = 0;

  /** @param warmUp - rounds left out of the rate (their deliveries and peaks still count) */
  constructor(name: string, processes: Processes, warmUp = WARM_UP_ROUNDS) {
    this.name = name;
    this.#warmUp = warmUp;
    this.#peaks = new Peaks(processes);
  }

  /** Runs one round of the case. */
  async round(run: () => Promise<RoundResult>): Promise<RoundResult> {
    globalThis.gc?.();
    const outcome = await this.#peaks.round(run);
    this.#rates.push(outcome.rate);
    this.#received += outcome.received;
    this.#published += outcome.published;
    return outcome;
  }

  /** The figures so far. */
  get result(): Throughput {
    const measured = this.#rates.length > this.#warmUp ? this.#rates.slice(this.#warmUp) : [...this.#rates];
    return { name: this.name, rate: median(measured), received: this.#received, published: this.#published, peaks: this.#peaks.toString() };
  }
}

/** The rate of a round of `published` messages started at `startedNs` (hrtime), whose receiver counted `tally`. */
export function roundResult(startedNs: bigint, published: number, tally: Tally): RoundResult {
  const ns = Math.max(1, tally.lastAt - Number(startedNs));
  return { rate: (tally.received * 1e9) / ns, received: tally.received, published };
}

/** "100 %", or the share delivered with its figures when anything was lost. */
function formatDelivered(received: number, published: number): string {
  if (received === published) return "100 %";
  return `${((received * 100) / published).toFixed(2)} % (${received.toLocaleString("en")} of ${published.toLocaleString("en")})`;
}

/**
 * Prints a table of throughput cases, each with its ratio to `baseline`, what it delivered of
 * what it published, and the peak RSS of its processes; then `notes`, one a line.
 */
export function printThroughput(title: string, rows: { result: Throughput; baseline?: Throughput; target?: string }[], notes: readonly string[] = []): void {
  const lines = rows.map(({ result, baseline, target }) => [
    result.name,
    formatRate(result.rate),
    baseline ? `${(result.rate / baseline.rate).toFixed(2)}× ${baseline.name}` : "(baseline)",
    target ?? "",
    formatDelivered(result.received, result.published),
    result.peaks,
  ]);
  printColumns(title, ["case", "rate", "ratio", "target", "delivered", "peak RSS (+ most added in a round)"], lines);
  for (const note of notes) console.log(`  ${note}`);
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
