/**
 * A tinypool pool counts primes in CPU-bound tasks (task.ts); each task reports its progress
 * on a roar topic while it computes, and this main thread draws a live progress bar per task.
 * The run can be cancelled through roar too: pressing `c` (or Ctrl-C, or `--cancel-after`,
 * `--cancel-at`) publishes on the "cancel" topic, which every running task reads between two
 * chunks of work, and stops.
 *
 *   npm run build && node build/demo/tinypool-progress/main.js [--tasks 8] [--size 5000000]
 *
 * On a terminal the bars are redrawn in place; otherwise (piped, in a test) each task prints a
 * plain line every 10 %. Either way the run ends with a summary of every task.
 *
 * A task that starts after the cancel was published (it waited in the pool's queue) subscribed
 * too late to get it: roar keeps no messages for later subscribers. So a task subscribes to
 * "cancel", flushes, then says "started" on "progress"; and the main thread, when it hears a
 * task start after it cancelled, publishes the cancel again. Either the first cancel reached
 * the task's subscription, or the task's "started" came after it — no task is missed.
 *
 * A task's result comes on tinypool's port and its progress on roar's, so its last reports may
 * come after its result; the result has the last word, and later reports are ignored.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import * as roar from "roar";
import Tinypool from "tinypool";
import type { Cancel, Progress, TaskInput, TaskResult } from "./task.js";

const USAGE = `usage: node build/demo/tinypool-progress/main.js [options]
  --tasks N          how many tasks (default 8); task i counts the primes in [i·size, (i+1)·size)
  --size N           how many numbers each task checks (default 5000000)
  --steps N          how many progress reports each task makes (default 100)
  --threads N        the pool's threads (default: os.availableParallelism())
  --cancel-after MS  cancel the run after MS milliseconds
  --cancel-at P      cancel the run once P % of all the work is done
While it runs, press c (or Ctrl-C) to cancel it; a second Ctrl-C quits at once.`;

function parseOptions(): { tasks: number; size: number; steps: number; threads: number; cancelAfter?: number; cancelAt?: number } {
  const { values } = parseArgs({
    options: {
      tasks: { type: "string" },
      size: { type: "string" },
      steps: { type: "string" },
      threads: { type: "string" },
      "cancel-after": { type: "string" },
      "cancel-at": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: keyof typeof values, fallback: number | undefined, min: number): number | undefined => {
    const text = values[name];
    if (text === undefined) return fallback;
    const value = Number(text);
    if (typeof text !== "string" || !Number.isSafeInteger(value) || value < min) {
      console.error(`--${name} must be an integer ≥ ${min}, got ${String(text)}\n${USAGE}`);
      process.exit(2);
    }
    return value;
  };
  return {
    tasks: int("tasks", 8, 1) as number,
    size: int("size", 5_000_000, 1) as number,
    steps: int("steps", 100, 1) as number,
    threads: int("threads", availableParallelism(), 1) as number,
    cancelAfter: int("cancel-after", undefined, 0),
    cancelAt: int("cancel-at", undefined, 0),
  };
}

const options = parseOptions();
const tty = process.stdout.isTTY === true;

/** What the main thread knows of one task. */
interface TaskState {
  input: TaskInput;
  status: "queued" | "running" | "done" | "cancelled" | "failed";
  thread?: number;
  done: number;
  primes: number;
  /** The last 10 % mark printed, when stdout is not a terminal. */
  printed: number;
  result?: TaskResult;
  error?: unknown;
}

const tasks: TaskState[] = Array.from({ length: options.tasks }, (_, i) => ({
  input: { id: i + 1, from: i * options.size, to: (i + 1) * options.size, steps: options.steps },
  status: "queued",
  done: 0,
  primes: 0,
  printed: 0,
}));
const totalWork = options.tasks * options.size;

const fmt = (n: number): string => n.toLocaleString("en-US");
const percent = (done: number, total: number): number => Math.floor((100 * done) / total);

// ---- roar: progress in, cancel out ----

const router = roar.createRouter({ scope: "tinypool-progress", capacity: 16 });
let cancelled: Cancel | undefined;

function cancel(reason: string): void {
  if (cancelled !== undefined) return;
  cancelled = { reason };
  router.publish("cancel", cancelled);
  if (!tty) console.log(`cancelling (${reason}): published on "cancel"`);
  draw();
}

router.on<Progress>("progress", (progress) => {
  const task = tasks[progress.id - 1];
  // A task's last progress may come after its result: tinypool's port and roar's are not one.
  if (task === undefined || task.result !== undefined) return;
  if (progress.done === 0) {
    task.status = "running";
    task.thread = progress.thread;
    if (!tty) console.log(`task ${task.input.id}: started on thread ${progress.thread}`);
    // It subscribed to "cancel" before saying so: a cancel published now reaches it.
    if (cancelled !== undefined) router.publish("cancel", cancelled);
  }
  task.done = progress.done;
  task.primes = progress.primes;
  if (!tty) printPlain(task);
  if (options.cancelAt !== undefined && percent(overallDone(), totalWork) >= options.cancelAt) cancel(`--cancel-at ${options.cancelAt}`);
});

function overallDone(): number {
  return tasks.reduce((sum, task) => sum + task.done, 0);
}

// ---- drawing ----

let drawnLines = 0;
let finished = false;

function bar(done: number, total: number, width = 30): string {
  const full = Math.round((width * done) / total);
  return "█".repeat(full) + "░".repeat(width - full);
}

function line(task: TaskState): string {
  const { id } = task.input;
  const total = task.input.to - task.input.from;
  const status =
    task.status === "queued" ? "queued" :
    task.status === "running" ? `thread ${task.thread}, ${fmt(task.primes)} primes so far` :
    task.status === "done" ? `done in ${seconds(task.result?.ms)}, ${fmt(task.primes)} primes` :
    task.status === "cancelled" ? `cancelled, ${fmt(task.primes)} primes so far` : "failed";
  return `task ${String(id).padStart(2)} ${bar(task.done, total)} ${String(percent(task.done, total)).padStart(3)} %  ${status}`;
}

/** Redraws every bar in place (on a terminal; elsewhere, lines are printed as things happen). */
function draw(): void {
  if (!tty) return;
  const width = Math.max(20, (process.stdout.columns || 100) - 1);
  const lines = tasks.map(line);
  lines.push(`all     ${bar(overallDone(), totalWork)} ${String(percent(overallDone(), totalWork)).padStart(3)} %`);
  lines.push(
    finished ? (cancelled === undefined ? "all done" : `cancelled (${cancelled.reason})`) :
    cancelled === undefined ? "press c to cancel" : `cancelling (${cancelled.reason}): published on "cancel"`,
  );
  let text = drawnLines === 0 ? "" : `\x1b[${drawnLines}A`;
  for (const each of lines) text += `\x1b[2K${each.slice(0, width)}\n`;
  process.stdout.write(text);
  drawnLines = lines.length;
}

function printPlain(task: TaskState): void {
  const total = task.input.to - task.input.from;
  const mark = Math.floor(percent(task.done, total) / 10) * 10;
  if (mark <= task.printed) return;
  task.printed = mark;
  console.log(`task ${task.input.id}: ${String(mark).padStart(3)} % [${bar(task.done, total, 20)}] ${fmt(task.primes)} primes so far`);
}

function seconds(ms: number | undefined): string {
  return `${((ms ?? 0) / 1000).toFixed(2)} s`;
}

// ---- input: the c key, Ctrl-C, and the options that cancel by themselves ----

let interrupts = 0;
function interrupted(): void {
  if (++interrupts > 1) {
    restoreTerminal();
    process.exit(130);
  }
  cancel("Ctrl-C");
}
process.on("SIGINT", interrupted);

function onKey(data: Buffer): void {
  const key = data.toString();
  if (key === "\u0003") interrupted(); // Ctrl-C, which raw mode delivers as a key
  else if (key.toLowerCase() === "c") cancel("c pressed");
}

const keyboard = process.stdin.isTTY === true;
if (keyboard) {
  process.stdin.setRawMode(true);
  process.stdin.on("data", onKey);
  process.stdin.resume();
}
if (tty) process.stdout.write("\x1b[?25l"); // hide the cursor while bars are redrawn

function restoreTerminal(): void {
  if (keyboard) {
    process.stdin.setRawMode(false);
    process.stdin.off("data", onKey);
    process.stdin.pause();
  }
  if (tty) process.stdout.write("\x1b[?25h");
}

const cancelTimer = options.cancelAfter === undefined ? undefined : setTimeout(() => cancel(`--cancel-after ${options.cancelAfter}`), options.cancelAfter);
const redraw = tty ? setInterval(draw, 50) : undefined;

// ---- the pool ----

console.log(`counting primes below ${fmt(totalWork)} in ${options.tasks} tasks of ${fmt(options.size)} numbers, on ${options.threads} threads` + (keyboard ? " (press c to cancel)" : ""));
const started = Date.now();
const pool = new Tinypool({ filename: new URL("./task.js", import.meta.url).href, minThreads: options.threads, maxThreads: options.threads });
draw();

await Promise.all(
  tasks.map(async (task) => {
    try {
      const result = (await pool.run(task.input)) as TaskResult;
      Object.assign(task, { result, status: result.status, thread: result.thread, done: result.done, primes: result.primes });
      if (!tty) {
        printPlain(task); // where it got to, if its last progress has not come yet
        console.log(
          result.status === "done"
            ? `task ${task.input.id}: done in ${seconds(result.ms)}`
            : `task ${task.input.id}: cancelled at ${percent(result.done, result.total)} % (${result.reason})`,
        );
      }
    } catch (error) {
      Object.assign(task, { status: "failed", error });
    }
    draw();
  }),
);

clearTimeout(cancelTimer);
clearInterval(redraw);
finished = true;
draw();
restoreTerminal();
process.off("SIGINT", interrupted);

// ---- the summary ----

console.log(`\nsummary (${seconds(Date.now() - started)} on ${options.threads} threads):`);
for (const task of tasks) {
  const { id, from } = task.input;
  const result = task.result;
  if (result === undefined) {
    console.log(`  task ${id}: failed — ${String(task.error)}`);
    continue;
  }
  const range = `${fmt(result.primes)} primes in [${fmt(from)}, ${fmt(from + result.done)})`;
  console.log(
    result.status === "done"
      ? `  task ${id}: done in ${seconds(result.ms)} on thread ${result.thread} — ${range}`
      : `  task ${id}: cancelled at ${percent(result.done, result.total)} % after ${seconds(result.ms)} on thread ${result.thread} (${result.reason}) — ${range}`,
  );
}
const count = (status: TaskState["status"]): number => tasks.filter((task) => task.status === status).length;
const failed = count("failed");
console.log(`${options.tasks} tasks: ${count("done")} done, ${count("cancelled")} cancelled` + (failed === 0 ? "" : `, ${failed} failed`));
if (failed !== 0) process.exitCode = 1;

await pool.destroy();
router.close();
