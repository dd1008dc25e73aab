/**
 * The main demo: a clustered chat server. Run it with `npm run demo`, open the URL it prints in
 * a few tabs, and chat: a message posted to any worker appears at once on every page, whichever
 * worker serves it.
 *
 * The primary forks one worker per core (see ./worker.ts) and stays out of HTTP: the workers
 * share the port, and roar links them through the primary. The primary subscribes too and
 * prints the chat. Ctrl-C (SIGINT) or SIGTERM stops the workers and then the primary, exit code 0.
 */
import cluster, { type Worker } from "node:cluster";
import * as roar from "roar";
import type { ChatMessage } from "./message.js";
import { displayUrl, readConfig, SCOPE, TOPIC, USAGE, UsageError, type Config, type ToPrimary } from "./shared.js";
import { runWorker } from "./worker.js";

/** How long workers get to stop before they are killed. */
const STOP_GRACE_MS = 10_000;

let config: Config;
try {
  config = readConfig(process.argv.slice(2), process.env);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  if (cluster.isPrimary && error.message === "") console.log(USAGE);
  else if (cluster.isPrimary) console.error(`${error.message}\n\n${USAGE}`);
  process.exit(error.message === "" ? 0 : 2);
}

if (cluster.isPrimary) runPrimary(config);
else runWorker(config);

function runPrimary({ host, port, workers: count }: Config): void {
  // The primary's first router starts its relay, which links every worker forked from now on.
  const router = roar.createRouter({ scope: SCOPE, capacity: 100 });
  router.on<ChatMessage>(TOPIC, (m) => console.log(`[worker ${m.worker}] ${m.name}: ${m.text}`));

  const listening = new Set<Worker>();
  let stopping = false;
  let announced = false;
  let exitCode = 0;

  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.on("message", (message: ToPrimary) => {
      if (message?.kind === "roar-demo:fatal") fail(`worker ${worker.id}: ${message.message}`);
    });
    return worker;
  };

  cluster.on("listening", (worker, address) => {
    listening.add(worker);
    if (listening.size === count && !stopping && !announced) {
      announced = true;
      // Port 0 picks a free port; every worker shares the one the first got.
      console.log(`roar chat demo: ${displayUrl(host, address.port)} (${count} worker${count === 1 ? "" : "s"}) — Ctrl-C to stop`);
    }
  });

  cluster.on("exit", (worker, code, signal) => {
    const wasListening = listening.delete(worker);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) finish();
    } else if (wasListening) {
      console.error(`worker ${worker.id} (pid ${worker.process.pid}) died (${signal ?? `code ${code}`}); starting another`);
      fork();
    } else {
      fail(`worker ${worker.id} exited (${signal ?? `code ${code}`}) before it was listening`);
    }
  });

  function fail(message: string): void {
    if (stopping) return;
    console.error(`roar chat demo: ${message}`);
    exitCode = 1;
    stop();
  }

  function stop(): void {
    if (stopping) {
      // A second Ctrl-C: no more waiting.
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGKILL");
      process.exit(130);
    }
    stopping = true;
    if (exitCode === 0) console.log("stopping…");
    // The workers may have got the signal too (Ctrl-C signals the whole process group); they
    // stop on either, and tell their pages.
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
    if (Object.keys(cluster.workers ?? {}).length === 0) finish();
    setTimeout(() => {
      console.error(`roar chat demo: workers still running after ${STOP_GRACE_MS} ms; killing them`);
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGKILL");
      process.exit(1);
    }, STOP_GRACE_MS).unref();
  }

  function finish(): void {
    router.close();
    void roar.startRelay().then((relay) => relay.close()).finally(() => {
      if (exitCode === 0) console.log("stopped");
      process.exitCode = exitCode;
    });
  }

  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  for (let i = 0; i < count; i++) fork();
}
