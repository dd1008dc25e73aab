/**
 * Across hosts: a cluster worker on host A → host B's cluster worker, the two hosts being
 * separate processes on 127.0.0.1 (each a cluster primary with a relay and a
 * WebSocketTransport, B dialling A), beside raw `ws` measured in the same run:
 *  - raw ws straight between the two workers, one `ws.send` (one frame) per message, each
 *    message JSON-encoded as roar must encode it — the baseline the targets refer to;
 *  - raw ws on roar's path: worker → `process.send` → primary A → `ws.send` → primary B →
 *    `worker.send` → worker, one send per message at every hop, as the cluster baseline.
 * The methodology is the cross-process one (cross.ts): warm-up rounds then the median of
 * rounds for throughput, roar's publisher pacing itself with pipelined flushes; round trips in
 * alternating rounds, the first tenth of each round's pings left out.
 *
 * Every WebSocket here, roar's and raw, is dialled from B's side: `ws` masks what a client
 * sends (in JavaScript, unless the optional `bufferutil` is installed), so the bulk A → B
 * runs server → client, unmasked, for roar and the baselines alike.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { median, percentile, printColumns, printTable } from "./harness.js";
import { Peer, rate, rawRoundTrips, rawThroughput, roarRoundTrips, roarThroughput } from "./cross.js";

const HOST = new URL("./host.js", import.meta.url);
const COUNT = 50_000;
const PINGS = 2000;
const LATENCY_ROUNDS = 5;

const children = new Set<ChildProcess>();
/** Hosts started and not yet stopped. */
const started: Peer[] = [];
// However the run ends, no host is left behind (each host's worker exits with its primary).
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** `promise`, or a failure after `ms` or when `child` exits first: a host that breaks must not hang the run. */
async function guarded<T>(promise: Promise<T>, child: ChildProcess, what: string, ms = 15_000): Promise<T> {
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
async function startHost(options: { listen: boolean; peer?: string; rawPeer?: string }): Promise<{ peer: Peer; port?: number; rawPort?: number }> {
  const child = fork(HOST);
  children.add(child);
  child.once("exit", () => children.delete(child));
  const peer = new Peer(child);
  started.push(peer);
  const { port, rawPort } = await guarded(peer.run({ host: "start", ...options }), child, "starting");
  await guarded(peer.next("ready"), child, "starting its worker");
  return { peer, port, rawPort };
}

/** Stops a host: its worker, its relay, then the process; kills it if it does not exit in time. */
async function stopHost(peer: Peer): Promise<void> {
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

/** Runs the cross-host cases and prints their tables. */
export async function benchHosts(): Promise<void> {
  try {
    const a = await startHost({ listen: true });
    const b = await startHost({ listen: false, peer: `ws://127.0.0.1:${a.port}`, rawPeer: `ws://127.0.0.1:${a.rawPort}` });
    await Promise.all([a, b].map(({ peer }) => guarded(peer.run({ host: "linked" }), peer.handle as ChildProcess, "linking to the other host")));
    const { port } = await a.peer.run({ cmd: "ws-listen" });
    await b.peer.run({ cmd: "ws-dial", url: `ws://127.0.0.1:${port}` });
    const [wa, wb] = [a.peer, b.peer];

    await rawVia("ws", wa, wb);
    const direct = rate("raw ws worker → worker, one frame per message", await rawThroughput(wa, wb, COUNT));
    await rawVia("channel", wa, wb);
    const relayed = rate("raw, one send per message per hop (roar's path)", await rawThroughput(wa, wb, COUNT));
    const viaRoar = rate("roar worker → primary A → ws → primary B → worker", await roarThroughput(wa, wb, COUNT));
    printTable("Host → host throughput (cluster worker on host A → on host B; B dials A over 127.0.0.1), small messages", [
      { result: direct },
      { result: relayed, baseline: direct },
      { result: viaRoar, baseline: direct, target: "≥ 2×" },
      { result: viaRoar, baseline: relayed },
    ]);

    // Round trips: rounds alternate between the three, so a change in load hits all of them.
    const p50s: [number[], number[], number[]] = [[], [], []];
    const p99s: [number[], number[], number[]] = [[], [], []];
    const record = (i: 0 | 1 | 2, rtts: number[]): void => {
      p50s[i].push(percentile(rtts, 50));
      p99s[i].push(percentile(rtts, 99));
    };
    for (let round = 0; round < LATENCY_ROUNDS; round++) {
      await rawVia("ws", wa, wb);
      record(0, await rawRoundTrips(wa, wb, PINGS));
      await rawVia("channel", wa, wb);
      record(1, await rawRoundTrips(wa, wb, PINGS));
      record(2, await roarRoundTrips(wa, wb, PINGS));
    }
    const [p50, p99] = [p50s.map((rounds) => median(rounds)), p99s.map((rounds) => median(rounds))] as [number[], number[]];
    const names = ["raw ws ping-pong, worker ↔ worker", "raw, one send per hop (roar's path)", "roar worker ↔ worker, two topics"];
    const ratio = (i: number, of: number): string => `${((p50[i] as number) / (p50[of] as number)).toFixed(2)}× ${names[of]}`;
    printColumns(
      "Host ↔ host round trip (cluster worker on host A ↔ on host B)",
      ["case", "p50", "p99", "p50 ratio", "target"],
      [
        [names[0] as string, us(p50[0] as number), us(p99[0] as number), "(baseline)", ""],
        [names[1] as string, us(p50[1] as number), us(p99[1] as number), ratio(1, 0), ""],
        [names[2] as string, us(p50[2] as number), us(p99[2] as number), ratio(2, 0), "≤ 1.5×"],
        ["", "", "", ratio(2, 1), ""],
      ],
    );
  } finally {
    await Promise.all(started.splice(0).map(stopHost));
  }
}
