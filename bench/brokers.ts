/**
 * Across hosts through a broker: for each engine (Redis, NATS), two host processes on
 * 127.0.0.1 — each a cluster primary whose relay uses that engine's transport (RedisTransport,
 * NatsTransport), with one cluster worker (host.ts) — beside the engine's plain client
 * measured in the same run, against one `redis-server` and one `nats-server` this section
 * starts on free ports and stops by PID at the end, however it ends.
 *
 * The raw baseline is what a program would write without roar, in the two primaries, one
 * publish per message, each message JSON-encoded: ioredis `publish` → a subscribed
 * connection's `message` event; nats `nc.publish` → the `nc.subscribe` callback
 * (broker-raw.ts). Raw round trips are ping-pong between the primaries through the broker.
 *
 * The targeted roar figures are taken in the same two processes, primary A's router → broker
 * → primary B's router: like the raw client, one process publishes on its broker connection
 * and another receives on its own, so the only difference is roar (batching, interest, the
 * envelope) — the like-for-like comparison. Worker → worker (worker → primary A → broker →
 * primary B → worker, as the ws section measures) is shown beside it, against the same
 * baseline, for what a cluster worker sees; its extra IPC hops have no raw counterpart here.
 *
 * The methodology is the cross-host one (hosts.ts): warm-up rounds, then the median of rounds
 * for throughput, each round {@link ROUND} messages published in one synchronous loop (roar's
 * and the raw client's alike), with what the receiver counted and the peak RSS of each process
 * (the broker server's too); throughput and round-trip rounds alternate between the cases so
 * a change in the machine's load hits them all; each round's p50 and p99, the first tenth of
 * its pings left out, and the median of the rounds reported. Measuring starts once each relay
 * knows the other host (`hosts >= 1`) and a flush went through.
 */
import type { ChildProcess } from "node:child_process";
import { Case, printThroughput, ROUND, roundResult, WARM_UP_ROUNDS, type Processes, type RoundResult } from "./harness.js";
import { alternate, roundNote, type Peer, roarRound, roarRoundTrips, settle } from "./cross.js";
import { guarded, primaryRawRoundTrips, primaryRoarRoundTrips, RoundTrips, startHost, stopHost } from "./hosts.js";
import { locate, startServer, type Engine, type Server } from "./servers.js";

const ENGINES: readonly Engine[] = ["redis", "nats"];
const PINGS = 2000;
const THROUGHPUT_ROUNDS = 7;
const LATENCY_ROUNDS = 5;
/** One engine's cases fail, rather than hang, if they have not finished by then. */
const ENGINE_MS = 90_000;
/** How long one round may take before it counts as stuck (a lost message, a dead host). */
const ROUND_MS = 30_000;

const NAMES: Record<Engine, { server: string; client: string; how: string }> = {
  redis: { server: "redis-server", client: "ioredis", how: "ioredis publish → a subscribed connection's message event" },
  nats: { server: "nats-server", client: "nats", how: "nc.publish → nc.subscribe callback" },
};

let scopes = 0;

/** One round of `count` messages from primary `from` to primary `to` through roar routers of theirs, in a fresh scope, published in one synchronous loop. */
async function primaryRoarRound(from: Peer, to: Peer, count: number): Promise<RoundResult> {
  const scope = `brokers-${++scopes}`;
  await to.run({ host: "subscribe", scope, topic: "t", expect: count });
  await from.run({ host: "join", scope });
  const arrived = to.next("done");
  const started = process.hrtime.bigint();
  await from.run({ host: "publish", scope, topic: "t", count });
  return roundResult(started, count, await settle(to, arrived, "primary"));
}

/** One round of `count` messages from primary `from` to primary `to` with the raw client, one publish each, in one synchronous loop. */
async function primaryRawRound(from: Peer, to: Peer, count: number): Promise<RoundResult> {
  await to.run({ host: "raw-receive", expect: count });
  const arrived = to.next("done");
  const started = process.hrtime.bigint();
  await from.run({ host: "raw-send", count });
  return roundResult(started, count, await settle(to, arrived, "primary"));
}

/** Runs the broker cases of every engine whose server is installed, and prints their tables. */
export async function benchBrokers(): Promise<void> {
  const servers = new Map<Engine, Server>();
  try {
    const started = await Promise.allSettled(
      ENGINES.map(async (engine) => {
        const binary = locate(engine);
        if (binary === undefined) return;
        servers.set(engine, await startServer(engine, binary));
      }),
    );
    for (const [i, engine] of ENGINES.entries()) {
      const server = servers.get(engine);
      const outcome = started[i] as PromiseSettledResult<void>;
      if (server !== undefined) {
        await benchEngine(engine, server);
      } else if (outcome.status === "rejected") {
        console.log(`\nHost → host through ${engine}: skipped: ${NAMES[engine].server} did not start: ${(outcome.reason as Error).message}`);
        process.exitCode = 1;
      } else {
        console.log(`\nHost → host through ${engine}: skipped: install ${NAMES[engine].server} (apt-get install -y ${NAMES[engine].server})`);
      }
    }
  } finally {
    await Promise.all([...servers.values()].map((server) => server.stop()));
  }
}

/** One engine's cases, between two hosts of its own; a failure is reported and the run goes on. */
async function benchEngine(engine: Engine, server: Server): Promise<void> {
  const hosts: Peer[] = [];
  let watchdog: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      measure(engine, server, hosts),
      new Promise<never>((_, reject) => (watchdog = setTimeout(() => reject(new Error(`took over ${ENGINE_MS / 1000} s`)), ENGINE_MS))),
    ]);
  } catch (error) {
    console.log(`\nHost → host through ${engine}: failed: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(watchdog);
    await Promise.all(hosts.map(stopHost));
  }
}

async function measure(engine: Engine, server: Server, hosts: Peer[]): Promise<void> {
  const { client, how } = NAMES[engine];
  const start = async (self: string, other: string): Promise<Peer> => {
    const { peer } = await startHost({ bus: { engine, url: server.url, self, other } });
    hosts.push(peer);
    return peer;
  };
  const [a, b] = await Promise.all([start("a", "b"), start("b", "a")]);
  // Each relay knows the other host once its hello came over the broker.
  await Promise.all([a, b].map((peer) => guarded(peer.run({ host: "linked" }), peer.handle as ChildProcess, `linking over ${engine}`)));
  const round = <T>(promise: Promise<T>, what: string): Promise<T> => guarded(promise, b.handle as ChildProcess, what, ROUND_MS);

  // Throughput: rounds alternate between the three, so a change in load hits all of them.
  const pid = (peer: Peer): number => (peer.handle as ChildProcess).pid ?? 0;
  const primaries: Processes = [
    ["primary A", pid(a)],
    [NAMES[engine].server, server.pid],
    ["primary B", pid(b)],
  ];
  const workers: Processes = [["publisher", a.pid], ...primaries, ["receiver", b.pid]];
  const raw = new Case(`raw ${client}, one publish per message`, primaries);
  const primary = new Case(`roar primary A → ${engine} → primary B`, primaries);
  const worker = new Case(`roar worker → primary A → ${engine} → primary B → worker`, workers);
  await alternate(WARM_UP_ROUNDS + THROUGHPUT_ROUNDS, [
    [raw, () => round(primaryRawRound(a, b, ROUND), `in a raw ${client} round`)],
    [primary, () => round(primaryRoarRound(a, b, ROUND), "in a roar primary round")],
    [worker, () => round(roarRound(a, b, ROUND), "in a roar worker round")],
  ]);
  printThroughput(
    `Host → host throughput through ${engine} (host A → host B; raw: ${how}), small messages`,
    [
      { result: raw.result },
      { result: primary.result, baseline: raw.result, target: "≥ 2×" },
      { result: worker.result, baseline: raw.result },
    ],
    [roundNote(WARM_UP_ROUNDS, THROUGHPUT_ROUNDS, "the three alternating")],
  );

  // Round trips: a warm-up round, then rounds alternating between the three.
  const rawTrips = `raw ${client} ping-pong, primary ↔ primary`;
  const primaryTrips = "roar primary ↔ primary, two topics";
  const workerTrips = "roar worker ↔ worker, two topics";
  const trips = new RoundTrips();
  for (let i = 0; i < 1 + LATENCY_ROUNDS; i++) {
    const record = (name: string, rtts: number[]): void => (i === 0 ? undefined : trips.record(name, rtts));
    record(rawTrips, await round(primaryRawRoundTrips(a, b, PINGS), `in raw ${client} round trips`));
    record(primaryTrips, await round(primaryRoarRoundTrips(a, b, PINGS), "in roar primary round trips"));
    record(workerTrips, await round(roarRoundTrips(a, b, PINGS), "in roar worker round trips"));
  }
  trips.print(`Host ↔ host round trip through ${engine} (one broker hop each way)`, [
    { name: rawTrips },
    { name: primaryTrips, baseline: rawTrips, target: "≤ 1.5×" },
    { name: workerTrips, baseline: rawTrips },
  ]);

  // What the relays dropped: nothing, or the figures above are not what they seem.
  for (const [name, peer] of [["A", a], ["B", b]] as const) {
    const { stats } = await peer.run({ host: "stats" });
    const dropped = Object.entries(stats?.dropped ?? {}).filter(([, count]) => count !== 0);
    if (dropped.length !== 0) console.log(`host ${name}'s relay dropped: ${dropped.map(([why, count]) => `${count} ${why}`).join(", ")}`);
  }
}
