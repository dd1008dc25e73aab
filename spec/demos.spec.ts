/**
 * The demos, run as a user runs them: compiled by `npm run build` into build/demo, each in a
 * process of its own (with its children: pool threads, cluster workers, a second host), to
 * completion. The spec checks how each exits and what it prints.
 *
 * Nothing waits a fixed time: each run is awaited until its process and every process that
 * shares its output have exited, with a generous timeout, so the tests hold on a loaded
 * 2-core machine. A run that times out is killed with its whole process group.
 */
import { describe, expect, it } from "@jest/globals";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** How long a demo may run. */
const RUN_TIMEOUT = 90_000;
/** How long a test may take: a run, and the checks after it. */
const TEST_TIMEOUT = RUN_TIMEOUT + 30_000;

/** The path of a compiled demo; fails clearly when the build is missing. */
function demo(file: string): string {
  const path = fileURLToPath(new URL(`../build/demo/${file}`, import.meta.url));
  if (!existsSync(path)) throw new Error(`${path} does not exist: run \`npm run build\` before this spec`);
  return path;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  lines: string[];
}

/**
 * Runs a compiled demo with `args`, its output piped (so it is not a terminal), and resolves
 * once it exited and its output closed — that is, once every process it started that shares
 * its output (cluster workers, a second host) has exited too.
 */
function run(file: string, args: readonly string[] = []): Promise<Run> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not the demos'
  const child = spawn(process.execPath, [demo(file), ...args], { stdio: ["ignore", "pipe", "pipe"], env, detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // The whole group: the demo and whatever it started.
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // gone already
      }
      reject(new Error(`${file} ${args.join(" ")} did not end within ${RUN_TIMEOUT} ms\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
    }, RUN_TIMEOUT);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, lines: stdout.split("\n").filter((line) => line.length !== 0) });
    });
  });
}

/** Shows the whole output when a run did not exit as it should. */
function expectExit(result: Run, code = 0): void {
  if (result.code !== code) throw new Error(`exited with ${result.code} (signal ${result.signal}), expected ${code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
}

const number = (text: string): number => Number(text.replaceAll(",", ""));

/** How many primes are in [from, to), by a sieve (the demo counts them by trial division). */
function primesIn(from: number, to: number): number {
  const composite = new Uint8Array(to);
  let count = 0;
  for (let n = 2; n < to; n++) {
    if (composite[n] === 1) continue;
    if (n >= from) count++;
    for (let multiple = n * n; multiple < to; multiple += n) composite[multiple] = 1;
  }
  return count;
}

// ---- tinypool-progress ----

interface TaskSummary {
  id: number;
  status: "done" | "cancelled";
  primes: number;
  from: number;
  to: number;
  line: string;
}

/** The summary lines: `  task 3: done in … — 1,234 primes in [400,000, 600,000)`. */
function taskSummaries(lines: readonly string[]): TaskSummary[] {
  const start = lines.findIndex((line) => line.startsWith("summary ("));
  expect(start).toBeGreaterThanOrEqual(0);
  return lines.slice(start + 1).flatMap((line) => {
    const match = /^ {2}task (\d+): (done|cancelled) .* — ([\d,]+) primes in \[([\d,]+), ([\d,]+)\)$/.exec(line);
    if (match === null) return [];
    const [, id, status, primes, from, to] = match as unknown as [string, string, "done" | "cancelled", string, string, string];
    return [{ id: Number(id), status, primes: number(primes), from: number(from), to: number(to), line }];
  });
}

/** The plain progress lines of task `id`, as percentages in the order printed. */
function progressOf(lines: readonly string[], id: number): number[] {
  return lines.flatMap((line) => {
    const match = new RegExp(`^task ${id}: +(\\d+) % \\[[█░]+\\] [\\d,]+ primes so far$`).exec(line);
    return match === null ? [] : [Number(match[1])];
  });
}

describe("demo: tinypool-progress", () => {
  it("runs every task to the end, printing each one's progress, and sums up what each found", async () => {
    const tasks = 4;
    const size = 200_000;
    const result = await run("tinypool-progress/main.js", ["--tasks", `${tasks}`, "--size", `${size}`, "--steps", "10", "--threads", "2"]);
    expectExit(result);
    expect(result.stderr).toBe("");
    const { lines } = result;
    expect(lines[0]).toBe(`counting primes below ${(tasks * size).toLocaleString("en-US")} in ${tasks} tasks of ${size.toLocaleString("en-US")} numbers, on 2 threads`);

    for (let id = 1; id <= tasks; id++) {
      // Started, then progress every 10 % up to 100 %, then done. The main thread takes a
      // task's result on tinypool's port and its progress on roar's, so reports that come after
      // the result (as can happen on a loaded machine) are not printed: the result has the last
      // word, and the progress line it prints itself. So "started" may be missing.
      const started = lines.findIndex((line) => new RegExp(`^task ${id}: started on thread \\d+$`).test(line));
      const done = lines.findIndex((line) => new RegExp(`^task ${id}: done in \\d+\\.\\d\\d s$`).test(line));
      const progress = progressOf(lines, id);
      expect(done).toBeGreaterThan(started);
      expect(progress.at(-1)).toBe(100);
      expect(progress).toEqual([...new Set(progress)].sort((a, b) => a - b));
      expect(progress.every((percent) => percent % 10 === 0 && percent > 0)).toBe(true);
      const lastProgress = lines.findIndex((line) => line.startsWith(`task ${id}: 100 %`));
      expect(lastProgress).toBeGreaterThan(started);
      expect(lastProgress).toBeLessThan(done);
    }

    const summaries = taskSummaries(lines);
    expect(summaries.map(({ id, status, from, to }) => ({ id, status, from, to }))).toEqual(
      Array.from({ length: tasks }, (_, i) => ({ id: i + 1, status: "done", from: i * size, to: (i + 1) * size })),
    );
    for (const summary of summaries) expect(summary.primes).toBe(primesIn(summary.from, summary.to));
    expect(lines.at(-1)).toBe(`${tasks} tasks: ${tasks} done, 0 cancelled`);
  }, TEST_TIMEOUT);

  it("cancels through the \"cancel\" topic: running tasks stop where they are, and tasks that start later stop at once", async () => {
    // Each task is a few hundred milliseconds of work; the run is cancelled once 5 % of it is
    // done, while the first two tasks run and the other four wait in the pool's queue.
    const tasks = 6;
    const size = 3_000_000;
    const result = await run("tinypool-progress/main.js", ["--tasks", `${tasks}`, "--size", `${size}`, "--steps", "100", "--threads", "2", "--cancel-at", "5"]);
    expectExit(result);
    expect(result.stderr).toBe("");
    const { lines } = result;
    const cancelling = lines.indexOf('cancelling (--cancel-at 5): published on "cancel"');
    expect(cancelling).toBeGreaterThan(0);

    const summaries = taskSummaries(lines);
    expect(summaries.map(({ id }) => id)).toEqual(Array.from({ length: tasks }, (_, i) => i + 1));
    const cancelled = summaries.filter(({ status }) => status === "cancelled");
    expect(cancelled.length).toBeGreaterThanOrEqual(1);
    for (const summary of summaries) {
      const from = (summary.id - 1) * size;
      expect(summary.from).toBe(from);
      if (summary.status === "done") {
        expect(summary.to).toBe(from + size);
      } else {
        // What a cancelled task reports is what it counted before it stopped.
        expect(summary.line).toMatch(/^ {2}task \d+: cancelled at \d+ % after \d+\.\d\d s on thread \d+ \(--cancel-at 5\) — /);
        expect(summary.to).toBeLessThan(from + size);
        expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^task ${summary.id}: cancelled at \\d+ % \\(--cancel-at 5\\)$`)));
      }
      expect(summary.primes).toBe(primesIn(summary.from, summary.to));
    }
    // A task the main thread heard start after it published the cancel (which the task may
    // have missed) is sent the cancel again. (A task's "started" is not printed when its
    // result came first.)
    for (const { id, status } of summaries) {
      const started = lines.findIndex((line) => line.startsWith(`task ${id}: started on thread `));
      if (started > cancelling) expect(status).toBe("cancelled");
    }
    expect(lines.at(-1)).toBe(`${tasks} tasks: ${tasks - cancelled.length} done, ${cancelled.length} cancelled`);
  }, TEST_TIMEOUT);
});

// ---- two-hosts ----

describe("demo: two-hosts", () => {
  it("links two hosts over WebSocketTransport: every worker gets every message of the other host's workers, and both hosts end linked", async () => {
    const workers = 2;
    const messages = 3;
    const result = await run("two-hosts/main.js", ["--workers", `${workers}`, "--messages", `${messages}`]);
    expectExit(result);
    expect(result.stderr).toBe("");
    const { lines } = result;
    expect(lines).toContainEqual(expect.stringMatching(/^\[host A\] listening on 127\.0\.0\.1:\d+$/));
    expect(lines).toContainEqual(expect.stringMatching(/^\[host B\] dialling ws:\/\/127\.0\.0\.1:\d+$/));

    const names = (host: string): string[] => Array.from({ length: workers }, (_, i) => `${host}/${i + 1}`);
    for (const [host, other] of [["A", "B"], ["B", "A"]] as const) {
      for (const worker of names(host)) {
        // Exactly the other host's messages, each once.
        const got = lines.filter((line) => line.startsWith(`[${worker}] got `)).sort();
        const expected = names(other)
          .flatMap((from) => Array.from({ length: messages }, (_, i) => `[${worker}] got "message ${i + 1} of ${messages} from ${from}" from host ${other}, worker ${from}`))
          .sort();
        expect(got).toEqual(expected);
        expect(lines).toContain(`[${worker}] done: ${workers * messages} messages from the other host`);
      }
      const stats = lines.find((line) => line.startsWith(`[host ${host}] relay.stats(): `));
      expect(stats).toMatch(new RegExp(`^\\[host ${host}\\] relay\\.stats\\(\\): hosts linked 1, processes \\d+, sent \\d+, received \\d+, dropped 0$`));
      const json = lines.find((line) => line.startsWith(`[host ${host}] {`)) as string;
      expect(JSON.parse(json.slice(`[host ${host}] `.length))).toMatchObject({ hosts: 1, hostsAway: 0 });
      expect(lines).toContain(`[host ${host}] done`);
    }
  }, TEST_TIMEOUT);
});

// ---- custom-transport ----

describe("demo: custom-transport", () => {
  it("is a transport in well under 200 lines", () => {
    const source = readFileSync(fileURLToPath(new URL("../demo/custom-transport/tcp-transport.ts", import.meta.url)), "utf8");
    expect(source.trimEnd().split("\n").length).toBeLessThan(150);
  });

  it("passes every check of roar's conformance suite", async () => {
    const result = await run("custom-transport/conformance.js");
    expectExit(result);
    expect(result.stderr).toBe("");
    const summary = /^(\d+) of (\d+) checks passed$/.exec(result.lines.at(-1) ?? "");
    expect(summary).not.toBeNull();
    const [, passed, total] = summary as unknown as [string, string, string];
    expect(passed).toBe(total);
    expect(Number(total)).toBeGreaterThanOrEqual(8);
    expect(result.lines.filter((line) => line.startsWith("✓ "))).toHaveLength(Number(total));
    expect(result.lines.filter((line) => line.startsWith("✗ "))).toEqual([]);
  }, TEST_TIMEOUT);

  it("links two hosts of one process over it, both ways", async () => {
    const result = await run("custom-transport/main.js");
    expectExit(result);
    expect(result.stderr).toBe("");
    expect(result.lines).toEqual([
      expect.stringMatching(/^host a listens on tcp:\/\/127\.0\.0\.1:\d+$/),
      'host a got: "hello from host a", "hello from host b"',
      'host b got: "hello from host b", "hello from host a"',
      "host a relay.stats(): hosts 1, sent 1, received 1",
    ]);
  }, TEST_TIMEOUT);
});
