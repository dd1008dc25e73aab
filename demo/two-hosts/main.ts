/**
 * Two hosts on loopback, linked by roar's WebSocketTransport. Each host is a cluster primary
 * with cluster workers; every worker publishes a few messages on the "chatter" topic and prints
 * what it gets from the other host's workers. Then each host prints `relay.stats()` and exits.
 *
 *   npm run build && node build/demo/two-hosts/main.js [--workers 2] [--messages 3]
 *
 * That process is host A: it listens on a free port of 127.0.0.1 and starts host B, this same
 * program with `--dial`, as a second process. To run the hosts yourself (two terminals, or two
 * machines with `--host 0.0.0.0`):
 *
 *   node build/demo/two-hosts/main.js --listen 7400 --no-spawn     # prints the command for B
 *   ROAR_TOKEN=… node build/demo/two-hosts/main.js --dial ws://127.0.0.1:7400
 *
 * How the run knows when it is done, with nothing but roar and no sleeps:
 *  1. A primary waits until its relay is linked to the other host (`relay.stats().hosts`), and
 *     flushes its subscription to "host-done", before it forks its workers.
 *  2. A worker subscribes to "chatter" and "here", flushes (its interest has now reached both
 *     hosts), and publishes "here". Whoever hears a worker for the first time publishes "here"
 *     again: of two workers, the one that flushed last hears the other's "here", and answers.
 *     Once a worker has heard every other worker, every one of them subscribes to "chatter".
 *  3. Each worker publishes its messages, and reads "chatter" until it has every message of
 *     the other host's workers.
 *  4. When its workers have exited, a primary prints its stats and publishes "host-done", and
 *     waits for the other host's before it closes its relay: each prints its stats linked.
 */
import { spawn, type ChildProcess } from "node:child_process";
import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import * as roar from "roar";

const SCOPE = "two-hosts";

/** Host B, when this process is host A and started it. */
let hostB: ChildProcess | undefined;

/** What a worker publishes on "chatter". */
interface Chatter {
  host: string;
  worker: string;
  text: string;
}

/** Polls `condition` every 10 ms until it holds, or rejects after `timeout` ms. */
async function until(condition: () => boolean, what: string, timeout: number): Promise<void> {
  const end = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ---- a host: the cluster primary ----

async function primary(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      dial: { type: "string" },
      name: { type: "string" },
      workers: { type: "string", default: "2" },
      messages: { type: "string", default: "3" },
      timeout: { type: "string", default: "60000" },
      "no-spawn": { type: "boolean", default: false },
    },
  });
  const dial = values.dial;
  const name = values.name ?? (dial === undefined ? "A" : "B");
  const workers = Number(values.workers);
  const messages = Number(values.messages);
  const timeout = Number(values.timeout);
  const label = `[host ${name}]`;
  for (const [option, value] of Object.entries({ workers, messages, timeout })) {
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`--${option} must be an integer ≥ 1`);
  }
  const token = process.env.ROAR_TOKEN ?? randomBytes(16).toString("hex");

  let other: ChildProcess | undefined;
  const forked: Worker[] = [];
  // However it goes wrong, the demo ends.
  const watchdog = setTimeout(() => {
    console.error(`${label} gave up after ${timeout} ms`);
    other?.kill();
    for (const worker of forked) worker.process.kill();
    process.exit(1);
  }, timeout);

  const transport = new roar.WebSocketTransport(
    dial === undefined ? { listen: { port: Number(values.listen ?? 0), host: values.host }, token } : { peers: [dial], token },
  );
  const relay = await roar.startRelay({ transports: [transport] }); // resolves once it listens
  const router = roar.createRouter({ scope: SCOPE, capacity: 16 });
  const hostDone = router.subscribe<string>("host-done");

  if (dial === undefined) {
    const url = `ws://127.0.0.1:${transport.port}`;
    console.log(`${label} listening on ${values.host}:${transport.port}`);
    const args = ["--dial", url, "--name", "B", "--workers", String(workers), "--messages", String(messages), "--timeout", String(timeout)];
    if (values["no-spawn"]) {
      console.log(`${label} start host B with: ROAR_TOKEN=${token} node ${process.argv[1]} ${args.join(" ")}`);
    } else {
      other = hostB = spawn(process.execPath, [...process.execArgv, process.argv[1] as string, ...args], { stdio: "inherit", env: { ...process.env, ROAR_TOKEN: token } });
      console.log(`${label} started host B (pid ${other.pid})`);
      // Host B failing ends the demo at once, rather than when this host gives up waiting.
      other.once("exit", (code) => {
        if (code === 0) return;
        console.error(`${label} host B failed (exit code ${code})`);
        process.exit(1);
      });
    }
  } else {
    console.log(`${label} dialling ${dial}`);
  }

  await until(() => relay.stats().hosts === 1, "the other host", timeout);
  await router.flush(); // our interest in "host-done" has reached the other host
  console.log(`${label} linked to the other host; forking ${workers} worker${workers === 1 ? "" : "s"}`);

  const exits = Array.from({ length: workers }, (_, i) => {
    const worker = cluster.fork({ DEMO_HOST: name, DEMO_WORKER: String(i + 1), DEMO_WORKERS: String(workers), DEMO_MESSAGES: String(messages), DEMO_TIMEOUT: String(timeout) });
    forked.push(worker);
    return new Promise<number>((resolve) => worker.once("exit", (code) => resolve(code ?? 1)));
  });
  const codes = await Promise.all(exits);
  if (codes.some((code) => code !== 0)) process.exitCode = 1;

  const stats = relay.stats();
  const dropped = Object.values(stats.dropped).reduce((sum, count) => sum + count, 0);
  console.log(`${label} relay.stats(): hosts linked ${stats.hosts}, processes ${stats.processes}, sent ${stats.sent}, received ${stats.received}, dropped ${dropped}`);
  console.log(`${label} ${JSON.stringify(stats)}`);

  // Close only once the other host has printed its stats too.
  router.publish("host-done", name);
  for (;;) {
    const done = await hostDone.next({ timeout });
    if (done !== name) break;
  }
  await relay.close();
  router.close();
  if (other !== undefined && other.exitCode === null) await new Promise((resolve) => other?.once("exit", resolve));
  clearTimeout(watchdog);
  console.log(`${label} done`);
}

// ---- a cluster worker of a host ----

async function worker(): Promise<void> {
  const host = process.env.DEMO_HOST as string;
  const workers = Number(process.env.DEMO_WORKERS);
  const messages = Number(process.env.DEMO_MESSAGES);
  const timeout = Number(process.env.DEMO_TIMEOUT);
  const me = `${host}/${process.env.DEMO_WORKER}`;
  const label = `[${me}]`;

  const router = roar.createRouter({ scope: SCOPE, capacity: 1000 });
  const chatter = router.subscribe<Chatter>("chatter");
  const here = router.subscribe<string>("here");
  await router.flush(); // both subscriptions have reached every process of both hosts
  router.publish("here", me);

  // The roll call: until every other worker of both hosts has been heard (see the top).
  const heard = new Set<string>();
  while (heard.size < 2 * workers - 1) {
    const who = await here.next({ timeout });
    if (who === me || heard.has(who)) continue;
    heard.add(who);
    router.publish("here", me); // `who` may have subscribed after our first "here"
  }
  console.log(`${label} heard every worker: ${[...heard].sort().join(", ")}`);

  for (let i = 1; i <= messages; i++) router.publish("chatter", { host, worker: me, text: `message ${i} of ${messages} from ${me}` } satisfies Chatter);

  const expected = workers * messages;
  let fromOther = 0;
  while (fromOther < expected) {
    const message = await chatter.next({ timeout });
    if (message.host === host) continue; // our own host's, ours included
    fromOther++;
    console.log(`${label} got "${message.text}" from host ${message.host}, worker ${message.worker}`);
  }
  await router.flush(); // what we published has reached our primary
  console.log(`${label} done: ${fromOther} messages from the other host`);
  router.close();
  cluster.worker?.disconnect();
}

if (cluster.isWorker) {
  await worker().catch((error: unknown) => {
    console.error(`[${process.env.DEMO_HOST}/${process.env.DEMO_WORKER}] failed:`, error);
    process.exit(1);
  });
} else {
  await primary().catch((error: unknown) => {
    console.error("[host] failed:", error);
    hostB?.kill();
    process.exit(1);
  });
}
