/**
 * Across threads and processes: roar beside the raw channel it rides on, measured in the same
 * run — one `postMessage` per message between threads, one `process.send` per message relayed
 * by the cluster primary between cluster workers.
 *
 * Throughput: each round publishes {@link ROUND} messages (the default bound of a link) in one
 * synchronous loop — roar's publisher and the raw sender alike, with no flush and no yield —
 * and ends when the receiver counted them all, or when its count stopped growing (messages
 * were lost: the round then reports what arrived). Raw and roar rounds alternate, so a change
 * in the machine's load hits both. Each row says what was delivered of what was published,
 * over every round, and the highest peak RSS (VmHWM, reset before each round) of each process.
 */
import type { ChildProcess } from "node:child_process";
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import { once } from "node:events";
import { MessageChannel, Worker } from "node:worker_threads";
import * as roar from "roar";
import { Case, median, printTable, printThroughput, ROUND, roundResult, WARM_UP_ROUNDS, type Processes, type Result, type RoundResult, type Tally } from "./harness.js";
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
  /** The process the peer's own commands run in (a thread's is this one; a host's, its worker's), once {@link Peer.ready}. */
  pid = 0;

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

  /** Waits for the peer's `ready`, and learns its pid. */
  async ready(): Promise<void> {
    this.pid = (await this.next("ready")).pid ?? 0;
  }

  /** Sends a command that is not answered with `ok`. */
  post(command: PeerCommand | HostCommand): void {
    this.#post(command);
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
  await Promise.all(peers.map((peer) => peer.ready()));
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
  await Promise.all(peers.map((peer) => peer.ready()));
  return peers;
}

let scopeCounter = 0;
export { WARM_UP_ROUNDS };
/** Measured rounds of each throughput case, after the warm-up. */
const MEASURED_ROUNDS = 5;
/**
 * Between threads a round takes a tenth of a second, and the JIT needs a few to compile both
 * sides' paths (the rate still climbs over the first four): thread cases run more, and longer warm-up.
 */
const THREAD_WARM_UP = 4;
const THREAD_MEASURED = 9;
/** How long a receiver's count may stand still, once the publisher finished, before its round counts as short (messages lost). */
const QUIET_MS = 1000;

/** Which side of a host a counting command is for: its worker (and any peer), or its primary (host.ts). */
export type Side = "worker" | "primary";

/**
 * The tally of a round whose publisher has finished: the receiver's `done` once all arrived;
 * or, if its count stands still for {@link QUIET_MS} short of that (messages were lost), what
 * it counted — the round is then ended (`finish`) so its `done` is not left for the next.
 */
export async function settle(to: Peer, arrived: Promise<PeerReply>, side: Side = "worker"): Promise<Tally> {
  const tally = ({ received = 0, lastAt = 0 }: PeerReply): Tally => ({ received, lastAt });
  let last = -1;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const reply = await Promise.race([arrived, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), QUIET_MS)))]);
    clearTimeout(timer);
    if (reply !== undefined) return tally(reply);
    const { received = 0 } = await to.run(side === "worker" ? { cmd: "count" } : { host: "count" });
    if (received === last) {
      to.post(side === "worker" ? { cmd: "finish" } : { host: "finish" });
      return tally(await arrived);
    }
    last = received;
  }
}

/** One roar round: what it delivered, the publish rate (messages per second spent in the publishing loop), and how many publishes returned `false`. */
export interface RoarRound extends RoundResult {
  publishRate: number;
  refused: number;
}

/**
 * One round of `count` messages from `from` to `to` through roar, in a fresh scope, published
 * in one synchronous loop — or, with `drained`, by the producer loop that waits for
 * `drained()` whenever `publish` returns `false`.
 */
export async function roarRound(
  from: Peer,
  to: Peer,
  count: number,
  { bystanders = [], drained = false, workNs = 0 }: { bystanders?: Peer[]; drained?: boolean; workNs?: number } = {},
): Promise<RoarRound> {
  const scope = `bench-${++scopeCounter}`;
  // Bystanders are in the scope, subscribed to another topic: they must cost nothing.
  await Promise.all(bystanders.map((peer) => peer.run({ cmd: "subscribe", scope, topic: "elsewhere", expect: 1 })));
  await to.run({ cmd: "subscribe", scope, topic: "t", expect: count, workNs });
  await from.run({ cmd: "join", scope });
  const arrived = to.next("done");
  const started = process.hrtime.bigint();
  const { busyNs = 0, refused = 0 } = await from.run({ cmd: "publish", scope, topic: "t", count, drained });
  const tally = await settle(to, arrived);
  return { ...roundResult(started, count, tally), publishRate: (count * 1e9) / Math.max(1, busyNs), refused };
}

/** One round of `count` messages from `from` to `to` over the raw channel, sent in one synchronous loop (to a receiver that spends `workNs` on each). */
export async function rawRound(from: Peer, to: Peer, count: number, workNs = 0): Promise<RoundResult> {
  await to.run({ cmd: "raw-receive", expect: count, workNs });
  const arrived = to.next("done");
  const started = process.hrtime.bigint();
  await from.run({ cmd: "raw-send", count });
  return roundResult(started, count, await settle(to, arrived));
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

/** Runs `cases` in alternating rounds, warm-up rounds first, so a change in the machine's load hits them all. */
export async function alternate(rounds: number, cases: readonly (readonly [Case, () => Promise<RoundResult>])[]): Promise<void> {
  for (let round = 0; round < rounds; round++) for (const [each, run] of cases) await each.round(run);
}

/** A burst four times a link's default bound, for the producer loop with `drained()`. */
const BURST = 4 * ROUND;
/** What the consumer of that burst spends on each message, in nanoseconds: slower than its publisher. */
const SLOW_NS = 2000;
/** The note under a throughput table: how its rounds were run. */
export const roundNote = (warmUp: number, measured: number, how = "raw and roar alternating"): string =>
  `each round: ${ROUND.toLocaleString("en")} messages in one synchronous loop (the default maxQueue), no flush, no yield; ${warmUp} warm-up + ${measured} rounds, ${how}`;

/** Runs the cross-thread and cross-process cases and prints their tables. */
export async function benchCross(): Promise<void> {
  const relay = await roar.startRelay();
  const rounds = WARM_UP_ROUNDS + MEASURED_ROUNDS;

  // Threads: A → B, all in this process.
  {
    const [a, b] = (await threadPeers(2)) as [Peer, Peer];
    const { port1, port2 } = new MessageChannel();
    await a.givePort(port1);
    await b.givePort(port2);
    const processes: Processes = [["process (main + 2 threads)", process.pid]];
    const raw = new Case("raw postMessage, one per message", processes, THREAD_WARM_UP);
    const viaRoar = new Case("roar thread → thread", processes, THREAD_WARM_UP);
    await alternate(THREAD_WARM_UP + THREAD_MEASURED, [
      [raw, () => rawRound(a, b, ROUND)],
      [viaRoar, () => roarRound(a, b, ROUND)],
    ]);
    printThroughput(
      "Thread → thread throughput, small messages",
      [{ result: raw.result }, { result: viaRoar.result, baseline: raw.result, target: "≥ 2×" }],
      [roundNote(THREAD_WARM_UP, THREAD_MEASURED)],
    );

    // A burst larger than the bound, to a consumer slower than its publisher: one loop drops
    // what is beyond the bound (counted, for that consumer only); the producer loop that waits
    // for drained() whenever publish() returns false loses nothing, at the consumer's pace.
    const slow = `${SLOW_NS / 1000} µs a message`;
    const rawBurst = new Case(`raw postMessage, ${BURST.toLocaleString("en")} in one loop`, processes);
    const burst = new Case(`roar, ${BURST.toLocaleString("en")} in one loop (4× maxQueue)`, processes);
    const paced = new Case(`roar, ${BURST.toLocaleString("en")}, await drained() when publish() is false`, processes);
    const waits: number[] = [];
    await alternate(WARM_UP_ROUNDS + 3, [
      [rawBurst, () => rawRound(a, b, BURST, SLOW_NS)],
      [burst, () => roarRound(a, b, BURST, { workNs: SLOW_NS })],
      [
        paced,
        async () => {
          const outcome = await roarRound(a, b, BURST, { drained: true, workNs: SLOW_NS });
          waits.push(outcome.refused);
          return outcome;
        },
      ],
    ]);
    printThroughput(
      `Thread → thread, a burst beyond the bound to a consumer that spends ${slow}: one loop, and the producer loop with drained()`,
      [{ result: rawBurst.result }, { result: burst.result, baseline: rawBurst.result }, { result: paced.result, baseline: rawBurst.result }],
      [
        `${WARM_UP_ROUNDS} warm-up + 3 rounds each, alternating; a thread link holds at most maxQueue (${ROUND.toLocaleString("en")}) messages its consumer has not taken in, and drops (and counts) beyond`,
        `the drained() loop waited ${median(waits)} times a round (median): publish() returns false from half the bound`,
        "the ERR_ROAR_SLOW_CONSUMER warnings printed above are the one-loop row's: one per episode (per round), as a slow consumer should raise",
      ],
    );
    await latencyTable("Thread ↔ thread round trip (p50)", () => rawRoundTrip(a, b, 2000), () => roarRoundTrip(a, b, 2000), "≤ 1.3×");
    await Promise.all([a.stop(), b.stop()]);
  }

  // Cluster workers: W1 → primary (this process) → W2.
  {
    const [a, b] = (await clusterPeers(2)) as [Peer, Peer];
    const processes: Processes = [
      ["publisher", a.pid],
      ["primary", process.pid],
      ["receiver", b.pid],
    ];
    const raw = new Case("raw process.send, relayed by the primary", processes);
    const viaRoar = new Case("roar worker → primary → worker", processes);
    await alternate(rounds, [
      [raw, () => rawRound(a, b, ROUND)],
      [viaRoar, () => roarRound(a, b, ROUND)],
    ]);
    printThroughput(
      "Cluster worker → cluster worker throughput, small messages",
      [{ result: raw.result }, { result: viaRoar.result, baseline: raw.result, target: "≥ 2×" }],
      [roundNote(WARM_UP_ROUNDS, MEASURED_ROUNDS)],
    );
    await latencyTable("Cluster worker ↔ cluster worker round trip (p50)", () => rawRoundTrip(a, b, 1000), () => roarRoundTrip(a, b, 1000), "≤ 1.3×");
    await Promise.all([a.stop(), b.stop()]);
  }

  // Interest: a publisher with one interested thread beside seven that are in the scope but
  // subscribe to another topic, against a publisher with one thread that is all there is.
  // The cost is what the publisher spends in its loop of publish(); delivered rates are shown too.
  {
    const processes: Processes = [["process", process.pid]];
    const interest = async (peers: number, name: string): Promise<{ publishRate: number; delivered: Case }> => {
      const [publisher, interested, ...bystanders] = (await threadPeers(peers)) as [Peer, Peer, ...Peer[]];
      const delivered = new Case(name, processes, THREAD_WARM_UP);
      const publishRates: number[] = [];
      await alternate(THREAD_WARM_UP + THREAD_MEASURED, [
        [
          delivered,
          async () => {
            const outcome = await roarRound(publisher, interested, ROUND, { bystanders });
            publishRates.push(outcome.publishRate);
            return outcome;
          },
        ],
      ]);
      await Promise.all([publisher, interested, ...bystanders].map((peer) => peer.stop()));
      return { publishRate: median(publishRates.slice(THREAD_WARM_UP)), delivered };
    };
    const ofOne = await interest(2, "delivered, 1 interested thread of 1");
    const ofEight = await interest(9, "delivered, 1 interested thread of 8");
    const oneOfOne = rate("publish, 1 interested thread of 1", ofOne.publishRate);
    printTable("Publish cost with interest routing", [
      { result: oneOfOne },
      { result: rate("publish, 1 interested thread of 8", ofEight.publishRate), baseline: oneOfOne, target: "≥ 0.9×" },
    ]);
    printThroughput("Delivered with interest routing", [{ result: ofOne.delivered.result }, { result: ofEight.delivered.result, baseline: ofOne.delivered.result }], [roundNote(THREAD_WARM_UP, THREAD_MEASURED, "the two cases one after the other, each in threads of its own")]);
  }
  await relay.close();
}
