/**
 * Readiness of hosts: `await startRelay(...)` resolves once the peers its transports dial are
 * linked, so the README's sequence — `await startRelay`, `await router.flush()`, `publish` —
 * reaches them, every time, with no polling of `relay.stats()`.
 *
 * The WebSocket cases run the README's program as it is written, in a process of its own
 * (`node -e`, importing "roar"), against a listening host process with subscribers in its
 * primary and a cluster worker; each runs several times, so that a race would show. The
 * in-process case runs the `createHost` snippet verbatim. An unreachable peer holds
 * `startRelay` no longer than `connectTimeout`, is warned of, and links when it comes.
 */
import { afterEach, describe, expect, it, jest } from "@jest/globals";
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createHost, type Host } from "../../lib/isolated-host.js";
import { InProcessTransport } from "../../lib/transports/in-process.js";
import { WebSocketTransport } from "../../lib/transports/websocket.js";
import { Cleanup, forkPeer, range, testScope, TIMEOUT, waitFor, type Peer } from "./support.js";

const cleanup = new Cleanup();
const hosts: Host[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.close()));
  await cleanup.run();
  jest.restoreAllMocks();
});

const LOCAL = "127.0.0.1";
const TOKEN = "the secret of these hosts";
/** How many times each README sequence runs. */
const RUNS = 5;
/** Room for a loaded 2-core machine on top of a bound measured in time. */
const SLACK_MS = 5000;
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The README's host B, as a user writes it: dial host A, flush, publish once. It stays up (its
 * connection keeps it alive) until the spec ends it.
 */
const PUBLISHER = `
import * as roar from "roar";
const { PEER_URL, ROAR_TOKEN, SCOPE, VALUE } = process.env;
await roar.startRelay({ transports: [new roar.WebSocketTransport({ peers: [PEER_URL], token: ROAR_TOKEN })] });
const router = roar.createRouter({ scope: SCOPE, capacity: 10 });
await router.flush();
router.publish("news", VALUE);
console.log("published");
`;

/** Host B the other way round: dial A, subscribe, flush, then print what arrives. */
const SUBSCRIBER = `
import * as roar from "roar";
const { PEER_URL, ROAR_TOKEN, SCOPE } = process.env;
await roar.startRelay({ transports: [new roar.WebSocketTransport({ peers: [PEER_URL], token: ROAR_TOKEN })] });
const router = roar.createRouter({ scope: SCOPE, capacity: 10 });
const sub = router.subscribe("news");
await router.flush();
console.log("subscribed");
console.log(JSON.stringify(await sub.next({ timeout: ${TIMEOUT} })));
`;

/** Runs `program` in a Node process of its own; `lines` resolves each line it prints, in order. */
function runProgram(program: string, env: Record<string, string>): { line(): Promise<string> } {
  const child = spawn(process.execPath, ["--input-type=module", "-e", program], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  cleanup.add(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  });
  const lines: string[] = [];
  const waiting: (() => void)[] = [];
  let buffered = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf("\n")) !== -1) {
      lines.push(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      waiting.shift()?.();
    }
  });
  let read = 0;
  return {
    async line() {
      const index = read++;
      if (lines.length <= index) {
        await Promise.race([
          new Promise<void>((resolve) => waiting.push(resolve)),
          exited.then(() => Promise.reject(new Error(`the program exited before printing line ${index + 1}`))),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no line ${index + 1} within ${TIMEOUT} ms`)), TIMEOUT).unref()),
        ]);
      }
      return lines[index] as string;
    },
  };
}

/** Host A: a listening host process, with a cluster worker. */
async function listeningHost(): Promise<{ primary: Peer; worker: Peer; url: string }> {
  const forked = await forkPeer("ready-A");
  cleanup.add(() => forked.stop());
  const { port } = await forked.peer.call("startTransport", { options: { listen: { port: 0, host: LOCAL }, token: TOKEN } });
  const worker = await forked.peer.forkWorker("ready-a1");
  return { primary: forked.peer, worker, url: `ws://${LOCAL}:${port}` };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Records the warnings roar emits (a spec's `process` under jest does not see the real one's events). */
function captureWarnings(): { code: string | undefined; message: string }[] {
  const captured: { code: string | undefined; message: string }[] = [];
  jest.spyOn(process, "emitWarning").mockImplementation(((warning: string | Error, options?: { code?: string }) => {
    captured.push({ code: options?.code, message: String(warning) });
  }) as typeof process.emitWarning);
  return captured;
}

describe("startRelay resolves once the configured peers are linked", () => {
  it(`the README's host B — await startRelay, await flush, publish once — reaches host A's subscribers, ${RUNS} runs out of ${RUNS}`, async () => {
    const A = await listeningHost();
    const scope = testScope();
    for (const peer of [A.primary, A.worker]) await peer.call("join", { key: "news", scope, topic: "news", capacity: 100 });
    for (const run of range(RUNS)) {
      const value = `first message of run ${run}`;
      const B = runProgram(PUBLISHER, { PEER_URL: A.url, ROAR_TOKEN: TOKEN, SCOPE: scope, VALUE: value });
      expect(await B.line()).toBe("published");
      for (const peer of [A.primary, A.worker]) expect(await peer.call("next", { key: "news", count: 1, timeout: TIMEOUT })).toEqual([value]);
    }
  });

  it(`the other way round: host B subscribes and flushes after startRelay, and host A's next publish reaches it, ${RUNS} runs out of ${RUNS}`, async () => {
    const A = await listeningHost();
    const scope = testScope();
    for (const run of range(RUNS)) {
      const B = runProgram(SUBSCRIBER, { PEER_URL: A.url, ROAR_TOKEN: TOKEN, SCOPE: scope });
      expect(await B.line()).toBe("subscribed");
      // Once: from a cluster worker of A, whose way to B goes through A's primary.
      await A.worker.call("publish", { scope, topic: "news", from: `run ${run}`, count: 1 });
      expect(JSON.parse(await B.line())).toMatchObject({ from: `run ${run}`, seq: 0 });
    }
  });

  it(`the README's createHost and InProcessTransport snippet, verbatim, ${RUNS} runs out of ${RUNS}`, async () => {
    for (const _ of range(RUNS)) {
      const a = createHost();
      const b = createHost();
      hosts.push(a, b);
      await a.startRelay({ transports: [new InProcessTransport({ listen: "a" })] });
      await b.startRelay({ transports: [new InProcessTransport({ peers: ["a"] })] });

      const sub = b.createRouter({ scope: "app", capacity: 10 }).subscribe("news");
      await b.createRouter({ scope: "app", capacity: 10 }).flush();
      a.createRouter({ scope: "app", capacity: 10 }).publish("news", "from host a");
      expect(await sub.next({ timeout: 1000 })).toBe("from host a");
      await Promise.all(hosts.splice(0).map((host) => host.close()));
    }
  });

  it("a peer nobody answers for holds startRelay for connectTimeout, is warned of by name, and links once it listens", async () => {
    const captured = captureWarnings();
    const port = await freePort();
    const url = `ws://${LOCAL}:${port}`;
    const b = createHost();
    hosts.push(b);
    const started = performance.now();
    const relay = await b.startRelay({ transports: [new WebSocketTransport({ peers: [url], token: TOKEN, retry: { min: 20, max: 200 } })], connectTimeout: 1000 });
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(990);
    expect(waited).toBeLessThan(1000 + SLACK_MS);
    expect(relay.stats().hosts).toBe(0);
    const warning = captured.find((each) => each.code === "ERR_ROAR_PEER_UNREACHABLE");
    expect(warning?.message).toContain(`not linked to ${url} (no answer within 1000 ms)`);

    // The host comes: the dialler, still dialling, links, and a publish after a flush reaches it.
    const a = createHost();
    hosts.push(a);
    await a.startRelay({ transports: [new WebSocketTransport({ listen: { port, host: LOCAL }, token: TOKEN })] });
    const sub = a.createRouter({ scope: "late", capacity: 10 }).subscribe("news");
    await waitFor(() => relay.stats().hosts === 1, "the dialler to link");
    const publisher = b.createRouter({ scope: "late", capacity: 10 });
    await publisher.flush();
    publisher.publish("news", "after all");
    expect(await sub.next({ timeout: TIMEOUT })).toBe("after all");
  });

  it("a peer that is this very host (it listens at the address it dials) holds nothing", async () => {
    const captured = captureWarnings();
    const port = await freePort();
    const self = createHost();
    hosts.push(self);
    const started = performance.now();
    await self.startRelay({
      transports: [new WebSocketTransport({ listen: { port, host: LOCAL }, peers: [`ws://${LOCAL}:${port}`], token: TOKEN })],
      connectTimeout: 10 * TIMEOUT,
    });
    expect(performance.now() - started).toBeLessThan(TIMEOUT);
    expect(captured.filter((each) => each.code === "ERR_ROAR_PEER_UNREACHABLE")).toEqual([]);
  });

  it("connectTimeout: 0 waits for no peer; a bad value is refused", async () => {
    const port = await freePort();
    const b = createHost();
    hosts.push(b);
    const relay = await b.startRelay({ transports: [new WebSocketTransport({ peers: [`ws://${LOCAL}:${port}`], token: TOKEN })], connectTimeout: 0 });
    expect(relay.stats().hosts).toBe(0);
    await expect(b.startRelay({ connectTimeout: -1 })).rejects.toMatchObject({ code: "ERR_ROAR_INVALID_OPTION", message: expect.stringMatching(/`options.connectTimeout` must be an integer ≥ 0/) });
  });
});
