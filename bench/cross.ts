/**
 * Across threads and processes: roar beside the raw channel it rides on, measured in the same
 * run — one `postMessage` per message between threads, one `process.send` per message relayed
 * by the cluster primary between cluster workers.
 */
import type { ChildProcess } from "node:child_process";
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import { once } from "node:events";
import { MessageChannel, Worker } from "node:worker_threads";
import * as roar from "roar";
import { median, printTable, type Result } from "./harness.js";
import type { HostCommand } from "./host.js";
import type { PeerCommand, PeerReply } from "./peer.js";

const PEER = new URL("./peer.js", import.meta.url);

/** A peer seen from the main side, whatever it runs in (a host process relays to its worker). */
export class Peer {
  readonly #post: (message: unknown, transfer?: readonly MessagePort[]) => void;
  readonly #waiting = new Map<PeerReply["reply"], ((reply: PeerReply) => void)[]>();
  readonly #early = new Map<PeerReply["reply"], PeerReply[]>();
  readonly stop: () => Promise<unknown>;
  readonly handle: Worker | ClusterWorker | ChildProcess;

  constructor(handle: Worker | ClusterWorker | ChildProcess) {
    this.handle = handle;
    if (handle instanceof Worker) {
      this.#post = (message, transfer) => handle.postMessage(message, transfer as never);
      this.stop = () => handle.terminate();
    } else {
      this.#post = (message) => handle.send(message as never);
      this.stop = async () => {
        handle.kill();
        await once(handle, "exit");
      };
    }
    handle.on("message", (message: PeerReply & { raw?: unknown }) => {
      if ("raw" in message) return;
      const waiter = this.#waiting.get(message.reply)?.shift();
      if (waiter) waiter(message);
      else this.#early.set(message.reply, [...(this.#early.get(message.reply) ?? []), message]);
    });
  }

  /** The next reply of `kind`. */
  next(kind: PeerReply["reply"]): Promise<PeerReply> {
    const early = this.#early.get(kind)?.shift();
    if (early) return Promise.resolve(early);
    return new Promise((resolve) => this.#waiting.set(kind, [...(this.#waiting.get(kind) ?? []), resolve]));
  }

  /** Sends a command (to a host process, a host command) and waits for its `ok` (or, for a ping — a peer's or a host's — its `done`). */
  async run(command: PeerCommand | HostCommand): Promise<PeerReply> {
    this.#post(command);
    const kind = "cmd" in command ? command.cmd : command.host;
    return this.next(kind === "ping" || kind === "raw-ping" ? "done" : "ok");
  }

  /** Gives the peer its end of a raw port. */
  async givePort(port: MessagePort): Promise<void> {
    this.#post({ port }, [port]);
    await this.next("ok");
  }
}

type MessagePort = import("node:worker_threads").MessagePort;

async function threadPeers(count: number): Promise<Peer[]> {
  const peers = Array.from({ length: count }, () => new Peer(new Worker(PEER)));
  await Promise.all(peers.map((peer) => peer.next("ready")));
  return peers;
}

async function clusterPeers(count: number): Promise<Peer[]> {
  cluster.setupPrimary({ exec: PEER.pathname });
  const peers = Array.from({ length: count }, () => new Peer(cluster.fork()));
  // The raw baseline between cluster workers: the primary relays each message with one send.
  for (const [i, peer] of peers.entries()) {
    const other = peers[(i + 1) % peers.length] as Peer;
    peer.handle.on("message", (message: { raw?: unknown }) => {
      if ("raw" in message) (other.handle as ClusterWorker).send(message);
    });
  }
  await Promise.all(peers.map((peer) => peer.next("ready")));
  return peers;
}

let scopeCounter = 0;
/** Rounds run before measuring, so the JIT has compiled both sides' paths. */
export const WARM_UP_ROUNDS = 2;

/** Throughput from `from` to `to`, through roar, in messages per second (median of rounds). */
export async function roarThroughput(from: Peer, to: Peer, count: number, bystanders: Peer[] = [], rounds = WARM_UP_ROUNDS + 5): Promise<number> {
  return (await roarRun(from, to, count, bystanders, rounds)).throughput;
}

/**
 * Runs rounds of `count` messages from `from` to `to` through roar; returns the median
 * delivered rate and the median publish rate (messages per second spent in `publish`).
 */
async function roarRun(
  from: Peer,
  to: Peer,
  count: number,
  bystanders: Peer[] = [],
  rounds = WARM_UP_ROUNDS + 5,
): Promise<{ throughput: number; publishRate: number }> {
  const rates: number[] = [];
  const publishRates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const { throughput, publishRate } = await roarRound(from, to, count, bystanders);
    rates.push(throughput);
    publishRates.push(publishRate);
  }
  return { throughput: median(rates.slice(WARM_UP_ROUNDS)), publishRate: median(publishRates.slice(WARM_UP_ROUNDS)) };
}

/**
 * One round of `count` messages from `from` to `to` through roar, in a fresh scope: the
 * delivered rate and the publish rate (messages per second spent in `publish`).
 */
export async function roarRound(from: Peer, to: Peer, count: number, bystanders: Peer[] = []): Promise<{ throughput: number; publishRate: number }> {
  const scope = `bench-${++scopeCounter}`;
  // Bystanders are in the scope, subscribed to another topic: they must cost nothing.
  await Promise.all(bystanders.map((peer) => peer.run({ cmd: "subscribe", scope, topic: "elsewhere", expect: 1 })));
  await to.run({ cmd: "subscribe", scope, topic: "t", expect: count });
  await from.run({ cmd: "publish", scope, topic: "other", count: 0 }); // joins and flushes first
  const done = to.next("done");
  const started = process.hrtime.bigint();
  const { busyNs = 0 } = await from.run({ cmd: "publish", scope, topic: "t", count });
  await done;
  return { throughput: (count * 1e9) / Number(process.hrtime.bigint() - started), publishRate: (count * 1e9) / busyNs };
}

/** Throughput from `from` to `to` over the raw channel. */
export async function rawThroughput(from: Peer, to: Peer, count: number, rounds = WARM_UP_ROUNDS + 5): Promise<number> {
  const rates: number[] = [];
  for (let round = 0; round < rounds; round++) rates.push(await rawRound(from, to, count));
  return median(rates.slice(WARM_UP_ROUNDS));
}

/** One round of `count` messages from `from` to `to` over the raw channel: the delivered rate. */
export async function rawRound(from: Peer, to: Peer, count: number): Promise<number> {
  await to.run({ cmd: "raw-receive", expect: count });
  const done = to.next("done");
  const started = process.hrtime.bigint();
  await from.run({ cmd: "raw-send", count });
  await done;
  return (count * 1e9) / Number(process.hrtime.bigint() - started);
}

/** Round trips through roar in microseconds, the first tenth (warm-up) left out. */
export async function roarRoundTrips(from: Peer, to: Peer, count: number): Promise<number[]> {
  const scope = `bench-${++scopeCounter}`;
  await to.run({ cmd: "echo", scope, from: "ping", to: "pong" });
  const { rtts = [] } = await from.run({ cmd: "ping", scope, from: "pong", to: "ping", count });
  return rtts.slice(count / 10).map((ns) => ns / 1000);
}

/** Round trips over the raw channel in microseconds, the first tenth (warm-up) left out. */
export async function rawRoundTrips(from: Peer, to: Peer, count: number): Promise<number[]> {
  await to.run({ cmd: "raw-echo" });
  const { rtts = [] } = await from.run({ cmd: "raw-ping", count });
  return rtts.slice(count / 10).map((ns) => ns / 1000);
}

/** Median round trip in microseconds. */
async function roarRoundTrip(from: Peer, to: Peer, count: number): Promise<number> {
  return median(await roarRoundTrips(from, to, count));
}

async function rawRoundTrip(from: Peer, to: Peer, count: number): Promise<number> {
  return median(await rawRoundTrips(from, to, count));
}

/**
 * Round trips through roar and through the raw channel, measured in alternating rounds so a
 * change in the machine's load hits both; the median of each side's p50s is reported.
 */
async function latencyTable(title: string, raw: () => Promise<number>, through: () => Promise<number>, target: string): Promise<void> {
  const raws: number[] = [];
  const roars: number[] = [];
  for (let round = 0; round < 3; round++) {
    raws.push(await raw());
    roars.push(await through());
  }
  printLatency(title, median(raws), median(roars), target);
}

function printLatency(title: string, raw: number, viaRoar: number, target: string): void {
  console.log(`\n${title}`);
  console.log(`raw p50 ${raw.toFixed(1)} µs   roar p50 ${viaRoar.toFixed(1)} µs   ratio ${(viaRoar / raw).toFixed(2)}× raw   target ${target}`);
}

export const rate = (name: string, value: number): Result => ({ name, rate: value });

/** Runs the cross-thread and cross-process cases and prints their tables. */
export async function benchCross(): Promise<void> {
  const relay = await roar.startRelay();
  const COUNT = 100_000;

  // Threads: A → B.
  {
    const [a, b] = (await threadPeers(2)) as [Peer, Peer];
    const { port1, port2 } = new MessageChannel();
    await a.givePort(port1);
    await b.givePort(port2);
    const raw = rate("raw postMessage, one per message", await rawThroughput(a, b, COUNT));
    const viaRoar = rate("roar thread → thread", await roarThroughput(a, b, COUNT));
    printTable("Thread → thread throughput, small messages", [{ result: raw }, { result: viaRoar, baseline: raw, target: "≥ 2×" }]);
    await latencyTable("Thread ↔ thread round trip (p50)", () => rawRoundTrip(a, b, 2000), () => roarRoundTrip(a, b, 2000), "≤ 1.3×");
    await Promise.all([a.stop(), b.stop()]);
  }

  // Cluster workers: W1 → primary → W2.
  {
    const [a, b] = (await clusterPeers(2)) as [Peer, Peer];
    const raw = rate("raw process.send, relayed by the primary", await rawThroughput(a, b, COUNT / 2));
    const viaRoar = rate("roar worker → primary → worker", await roarThroughput(a, b, COUNT / 2));
    printTable("Cluster worker → cluster worker throughput, small messages", [
      { result: raw },
      { result: viaRoar, baseline: raw, target: "≥ 2×" },
    ]);
    await latencyTable("Cluster worker ↔ cluster worker round trip (p50)", () => rawRoundTrip(a, b, 1000), () => roarRoundTrip(a, b, 1000), "≤ 1.3×");
    await Promise.all([a.stop(), b.stop()]);
  }

  // Interest: a publisher with one interested thread beside seven that are in the scope but
  // subscribe to another topic, against a publisher with one thread that is all there is.
  // The cost is what the publisher spends in publish(); delivered rates are shown too.
  {
    const [alone, single] = (await threadPeers(2)) as [Peer, Peer];
    const ofOne = await roarRun(alone, single, COUNT);
    await Promise.all([alone.stop(), single.stop()]);
    const [publisher, interested, ...bystanders] = (await threadPeers(9)) as [Peer, Peer, ...Peer[]];
    const ofEight = await roarRun(publisher, interested, COUNT, bystanders);
    await Promise.all([publisher, interested, ...bystanders].map((peer) => peer.stop()));
    const oneOfOne = rate("publish, 1 interested thread of 1", ofOne.publishRate);
    const oneOfEight = rate("publish, 1 interested thread of 8", ofEight.publishRate);
    const deliveredOfOne = rate("delivered, 1 interested thread of 1", ofOne.throughput);
    const deliveredOfEight = rate("delivered, 1 interested thread of 8", ofEight.throughput);
    printTable("Publish cost with interest routing", [
      { result: oneOfOne },
      { result: oneOfEight, baseline: oneOfOne, target: "≥ 0.9×" },
      { result: deliveredOfOne },
      { result: deliveredOfEight, baseline: deliveredOfOne },
    ]);
  }
  await relay.close();
}
