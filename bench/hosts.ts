/**
 * Across hosts: a cluster worker on host A → host B's cluster worker, the two hosts being
 * separate processes on 127.0.0.1 (each a cluster primary with a relay and a
 * WebSocketTransport, B dialling A), beside raw `ws` measured in the same run:
 *  - raw ws straight between the two workers, one `ws.send` (one frame) per message, each
 *    message JSON-encoded as roar must encode it — the baseline the targets refer to;
 *  - raw ws on roar's path: worker → `process.send` → primary A → `ws.send` → primary B →
 *    `worker.send` → worker, one send per message at every hop, as the cluster baseline.
 * The methodology is the cross-process one (cross.ts): warm-up rounds then the median of
 * rounds for throughput, each round {@link ROUND} messages published (or sent) in one
 * synchronous loop, with what the receiver counted and the peak RSS of each process; round
 * trips in alternating rounds, the first tenth of each round's pings left out. Throughput
 * rounds alternate too (raw ws, raw on roar's path, roar, raw ws, ...), so a change in the
 * machine's load hits every case and their ratios hold on a noisy machine.
 *
 * Round trips are also measured between the two primaries themselves — roar routers in
 * primary A and primary B, beside raw `ws` between them over a socket B dialled — one ws hop
 * each way for both: the like-for-like host ↔ host comparison.
 *
 * Every WebSocket here, roar's and raw, is dialled from B's side: `ws` masks what a client
 * sends (in JavaScript, unless the optional `bufferutil` is installed), so the bulk A → B
 * runs server → client, unmasked, for roar and the baselines alike.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Case, median, percentile, printColumns, printThroughput, ROUND, WARM_UP_ROUNDS, type Processes } from "./harness.js";
import { alternate, roundNote, Peer, rawRound, rawRoundTrips, roarRound, roarRoundTrips } from "./cross.js";
import type { HostCommand } from "./host.js";

const HOST = new URL("./host.js", import.meta.url);
const PINGS = 2000;
const LATENCY_ROUNDS = 5;
const THROUGHPUT_ROUNDS = 5;
/** The cross-host section fails, rather than hangs, if it has not finished by then. */
const SECTION_MS = 150_000;

const children = new Set<ChildProcess>();
/** Hosts started and not yet stopped. */
const started: Peer[] = [];
// However the run ends, no host is left behind (each host's worker exits with its primary).
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** `promise`, or a failure after `ms` or when `child` exits first: a host that breaks must not hang the run. */
export async function guarded<T>(promise: Promise<T>, child: ChildProcess, what: string, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stopWatching = new AbortController();
  try {
    return await Promise.race([
      promise,
      once(child, "exit", { signal: stopWatching.signal }).then(() => Promise.reject(new Error(`bench host ${child.pid} exited while ${what}`))),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`bench host ${child.pid} timed out ${what}`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
    stopWatching.abort();
  }
}

/** Forks a host process and starts it; returns its peer (commands go on to its worker) and ports. */
export async function startHost(options: Omit<Extract<HostCommand, { host: "start" }>, "host">): Promise<{ peer: Peer; port?: number; rawPort?: number }> {
  const child = fork(HOST);
  children.add(child);
  child.once("exit", () => children.delete(child));
  const peer = new Peer(child);
  started.push(peer);
  const { port, rawPort } = await guarded(peer.run({ host: "start", ...options }), child, "starting");
  await guarded(peer.ready(), child, "starting its worker");
  return { peer, port, rawPort };
}

/** Stops a host: its worker, its relay, then the process; kills it if it does not exit in time. */
export async function stopHost(peer: Peer): Promise<void> {
  if (started.includes(peer)) started.splice(started.indexOf(peer), 1);
  const child = peer.handle as ChildProcess;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  void peer.run({ host: "stop" });
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** Sets which raw channel both peers use: the direct WebSocket, or IPC relayed by their primaries. */
async function rawVia(via: "ws" | "channel", ...peers: Peer[]): Promise<void> {
  await Promise.all(peers.map((peer) => peer.run({ cmd: "raw-via", via })));
}

const us = (value: number): string => `${value.toFixed(1)} µs`;

let primaryScopes = 0;
/** Round trips between two primaries through roar routers of their own, in µs, the first tenth left out. */
export async function primaryRoarRoundTrips(from: Peer, to: Peer, count: number): Promise<number[]> {
  const scope = `primaries-${++primaryScopes}`;
  await to.run({ host: "echo", scope, from: "ping", to: "pong" });
  const { rtts = [] } = await from.run({ host: "ping", scope, from: "pong", to: "ping", count });
  return rtts.slice(count / 10).map((ns) => ns / 1000);
}

/** Round trips between two primaries over their raw channel (the ws socket, or a broker's plain client), in µs, the first tenth left out. */
export async function primaryRawRoundTrips(from: Peer, to: Peer, count: number): Promise<number[]> {
  await to.run({ host: "raw-echo" });
  const { rtts = [] } = await from.run({ host: "raw-ping", count });
  await to.run({ host: "raw-relay" });
  return rtts.slice(count / 10).map((ns) => ns / 1000);
}

/** The round-trip cases, each measured in rounds: per-round p50 and p99, in µs. */
export class RoundTrips {
  readonly #p50s = new Map<string, number[]>();
  readonly #p99s = new Map<string, number[]>();

  record(name: string, rtts: number[]): void {
    this.#p50s.set(name, [...(this.#p50s.get(name) ?? []), percentile(rtts, 50)]);
    this.#p99s.set(name, [...(this.#p99s.get(name) ?? []), percentile(rtts, 99)]);
  }

  /** The median of the rounds' p50s. */
  p50(name: string): number {
    return median(this.#p50s.get(name) ?? []);
  }

  /** The median of the rounds' p99s. */
  p99(name: string): number {
    return median(this.#p99s.get(name) ?? []);
  }

  /** Prints `rows` as a table: each case's p50 and p99, its p50 ratio to its `baseline` (and on a line of its own to `also`), and its `target`. */
  print(title: string, rows: { name: string; baseline?: string; target?: string; also?: string }[]): void {
    const ratio = (name: string, of: string): string => `${(this.p50(name) / this.p50(of)).toFixed(2)}× ${of}`;
    const lines: string[][] = [];
    for (const { name, baseline, target, also } of rows) {
      lines.push([name, us(this.p50(name)), us(this.p99(name)), baseline === undefined ? "(baseline)" : ratio(name, baseline), target ?? ""]);
      if (also !== undefined) lines.push(["", "", "", ratio(name, also), ""]);
    }
    printColumns(title, ["case", "p50", "p99", "p50 ratio", "target"], lines);
  }
}

/** Runs the cross-host cases and prints their tables. */
export async function benchHosts(): Promise<void> {
  let watchdog: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      measure(),
      new Promise<never>((_, reject) => (watchdog = setTimeout(() => reject(new Error(`the cross-host benchmark took over ${SECTION_MS / 1000} s`)), SECTION_MS))),
    ]);
  } finally {
    clearTimeout(watchdog);
    await Promise.all(started.splice(0).map(stopHost));
  }
}

async function measure(): Promise<void> {
  const a = await startHost({ listen: true });
  const b = await startHost({ listen: false, peer: `ws://127.0.0.1:${a.port}`, rawPeer: `ws://127.0.0.1:${a.rawPort}` });
  await Promise.all([a, b].map(({ peer }) => guarded(peer.run({ host: "linked" }), peer.handle as ChildProcess, "linking to the other host")));
  const { port } = await a.peer.run({ cmd: "ws-listen" });
  await b.peer.run({ cmd: "ws-dial", url: `ws://127.0.0.1:${port}` });
  // Commands without `host` go on to the hosts' workers; those with it stay in the primaries.
  const [wa, wb] = [a.peer, b.peer];
  const [pa, pb] = [a.peer, b.peer];

  // Throughput: rounds alternate between the three, so a change in load hits all of them.
  const workersOnly: Processes = [
    ["publisher", wa.pid],
    ["receiver", wb.pid],
  ];
  const all: Processes = [
    ["publisher", wa.pid],
    ["primary A", (a.peer.handle as ChildProcess).pid ?? 0],
    ["primary B", (b.peer.handle as ChildProcess).pid ?? 0],
    ["receiver", wb.pid],
  ];
  const direct = new Case("raw ws worker → worker, one frame per message", workersOnly);
  const relayed = new Case("raw, one send per message per hop (roar's path)", all);
  const viaRoar = new Case("roar worker → primary A → ws → primary B → worker", all);
  await alternate(WARM_UP_ROUNDS + THROUGHPUT_ROUNDS, [
    [
      direct,
      async () => {
        await rawVia("ws", wa, wb);
        return rawRound(wa, wb, ROUND);
      },
    ],
    [
      relayed,
      async () => {
        await rawVia("channel", wa, wb);
        return rawRound(wa, wb, ROUND);
      },
    ],
    [viaRoar, () => roarRound(wa, wb, ROUND)],
  ]);
  printThroughput(
    "Host → host throughput (cluster worker on host A → on host B; B dials A over 127.0.0.1), small messages",
    [
      { result: direct.result },
      { result: relayed.result, baseline: direct.result },
      { result: viaRoar.result, baseline: direct.result, target: "≥ 2×" },
      { result: viaRoar.result, baseline: relayed.result },
    ],
    [roundNote(WARM_UP_ROUNDS, THROUGHPUT_ROUNDS, "the three alternating")],
  );

  // Round trips: rounds alternate between the five, so a change in load hits all of them.
  const workers = ["raw ws ping-pong, worker ↔ worker", "raw, one send per hop (roar's path)", "roar worker ↔ worker, two topics"] as const;
  const primaries = ["raw ws ping-pong, primary ↔ primary", "roar primary ↔ primary, two topics"] as const;
  const trips = new RoundTrips();
  for (let round = 0; round < LATENCY_ROUNDS; round++) {
    await rawVia("ws", wa, wb);
    trips.record(workers[0], await rawRoundTrips(wa, wb, PINGS));
    await rawVia("channel", wa, wb);
    trips.record(workers[1], await rawRoundTrips(wa, wb, PINGS));
    trips.record(workers[2], await roarRoundTrips(wa, wb, PINGS));
    trips.record(primaries[0], await primaryRawRoundTrips(pa, pb, PINGS));
    trips.record(primaries[1], await primaryRoarRoundTrips(pa, pb, PINGS));
  }
  trips.print("Host ↔ host round trip (cluster worker on host A ↔ on host B)", [
    { name: workers[0] },
    { name: workers[1], baseline: workers[0] },
    { name: workers[2], baseline: workers[0], target: "≤ 1.5×", also: workers[1] },
  ]);
  trips.print("Primary ↔ primary round trip (host A's primary ↔ host B's primary, one ws hop each way)", [
    { name: primaries[0] },
    { name: primaries[1], baseline: primaries[0], target: "≤ 1.5×" },
  ]);
}
