/**
 * The pool's task: counts the primes in [from, to) by trial division — CPU-bound, synchronous
 * work — in `steps` chunks. After each chunk it publishes its progress on the "progress" topic
 * and looks for a message on the "cancel" topic with `receive()`, which takes in what was sent
 * to this thread even though its event loop does not turn while it computes.
 */
import { threadId } from "node:worker_threads";
import * as roar from "roar";

/** What the main thread asks of a task. */
export interface TaskInput {
  id: number;
  from: number;
  to: number;
  steps: number;
}

/** Published on "progress": a task started (`done: 0`) or finished a chunk. */
export interface Progress {
  id: number;
  thread: number;
  /** Numbers checked so far, of `total`. */
  done: number;
  total: number;
  /** Primes found so far. */
  primes: number;
}

/** Published on "cancel" by the main thread. */
export interface Cancel {
  reason: string;
}

/** What a task returns. */
export interface TaskResult {
  id: number;
  thread: number;
  status: "done" | "cancelled";
  /** Why it was cancelled, if it was. */
  reason?: string;
  done: number;
  total: number;
  primes: number;
  ms: number;
}

// One router per thread, made when tinypool loads this module in it; it joins the thread to
// the main thread's relay by itself.
// (main.ts imports only types from this module, so that it makes no router of this module's.)
const router = roar.createRouter({ scope: "tinypool-progress", capacity: 16 });

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  if (n % 3 === 0) return n === 3;
  for (let d = 5; d * d <= n; d += 6) if (n % d === 0 || n % (d + 2) === 0) return false;
  return true;
}

export default async function countPrimes({ id, from, to, steps }: TaskInput): Promise<TaskResult> {
  const cancel = router.subscribe<Cancel>("cancel", { capacity: 1 });
  try {
    // Our interest in "cancel" has reached the main thread: a cancel it publishes from now on
    // reaches `cancel`. (One published before, the main thread sends again when it sees
    // "started" below: see main.ts.)
    await router.flush();
    const start = Date.now();
    const total = to - from;
    const progress: Progress = { id, thread: threadId, done: 0, total, primes: 0 };
    router.publish("progress", progress);
    // From here on the task never awaits: the thread's event loop does not turn until it returns.
    const chunk = Math.max(1, Math.ceil(total / steps));
    for (let lo = from; lo < to; lo += chunk) {
      const message = cancel.receive();
      if (message.ok) return { ...progress, status: "cancelled", reason: message.value.reason, ms: Date.now() - start };
      const hi = Math.min(to, lo + chunk);
      for (let n = lo; n < hi; n++) if (isPrime(n)) progress.primes++;
      progress.done = hi - from;
      router.publish("progress", progress); // leaves now, not when the task ends
    }
    return { ...progress, status: "done", ms: Date.now() - start };
  } finally {
    cancel.cancel();
  }
}
