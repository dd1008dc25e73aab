/**
 * Shared machinery of the integration specs: starting peers (spec/fixtures/peer.ts) as
 * processes, cluster workers or threads, talking to them with typed commands, and checking
 * what arrived.
 *
 * Peers run compiled code from build/ (`npm run build`), importing roar as users do; the spec
 * side imports lib/ through ts-jest.
 */
import { expect } from "@jest/globals";
import { fork, type ChildProcess } from "node:child_process";
import cluster, { type Worker as ClusterWorker } from "node:cluster";
import { existsSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { isPeerEvent, isReply, isUserMessage, type Command, type OpName, type Ops, type Traffic, type UserMessage } from "../fixtures/protocol.js";

/** Generous: the machine has 2 cores and may be loaded. */
export const TIMEOUT = 20_000;

/** The path of a compiled fixture; fails clearly when the build is missing. */
export function fixture(file: string): string {
  const path = fileURLToPath(new URL(`../../build/spec/fixtures/${file}`, import.meta.url));
  if (!existsSync(path)) throw new Error(`${path} does not exist: run \`npm run build\` before the integration specs`);
  return path;
}

let scopes = 0;
/** A scope of the test's own, derived from its name. */
export function testScope(): string {
  const name = expect.getState().currentTestName ?? "integration";
  return `${name.replace(/[^A-Za-z0-9]+/g, "-").slice(0, 80)}-${process.pid}-${++scopes}`;
}

export function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}

/**
 * Ports free on 127.0.0.1 now: for hosts that must know each other's ports before any of them
 * starts (a full mesh).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = range(count).map(() => createServer());
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))));
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/**
 * Groups what one subscriber received by publisher, in arrival order: each publisher's list
 * holds its sequence numbers, and "end" where its end marker came. A subscriber that got
 * every message of publisher P exactly once and in order shows `P: [0, 1, ..., N-1, "end"]`.
 */
export function bySender(messages: readonly unknown[]): Record<string, (number | "end")[]> {
  const out: Record<string, (number | "end")[]> = {};
  for (const message of messages) {
    const { from, seq, end } = message as { from: string; seq?: number; end?: boolean };
    (out[from] ??= []).push(end === true ? "end" : (seq as number));
  }
  return out;
}

/** What `bySender` shows for publishers that each sent `count` messages and an end marker. */
export function everyMessageOnce(publishers: readonly string[], count: number): Record<string, (number | "end")[]> {
  return Object.fromEntries(publishers.map((publisher) => [publisher, [...range(count), "end"]]));
}

/** Reads a subscription (of the spec's own roar) until an end marker from each of `ends` came. */
export async function untilEnds(sub: { next(options: { timeout: number }): Promise<unknown> }, ends: readonly string[], timeout = TIMEOUT): Promise<Traffic[]> {
  const waiting = new Set(ends);
  const got: Traffic[] = [];
  while (waiting.size !== 0) {
    const message = (await sub.next({ timeout })) as Traffic;
    got.push(message);
    if ("end" in message) waiting.delete(message.from);
  }
  return got;
}

/** Polls `condition` (no fixed sleep: it returns as soon as the condition holds). */
export async function waitFor(condition: () => boolean, what: string, timeout = TIMEOUT): Promise<void> {
  const end = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves with the first `event` that `emitter` emits. */
export function once<T = unknown>(emitter: { once(event: string, listener: (...args: never[]) => void): unknown }, event: string, what = event, timeout = TIMEOUT): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout);
    emitter.once(event, ((value: T) => {
      clearTimeout(timer);
      resolve(value);
    }) as (...args: never[]) => void);
  });
}

// ---- talking to peers ----

let nextId = 1;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  what: string;
}

/** One channel to a top-level peer, shared by the handles of its descendants. */
class Transport {
  readonly #send: (message: unknown) => void;
  readonly #pending = new Map<number, Pending>();
  readonly label: string;
  /** User messages the spec's listener got from this peer. */
  readonly user: UserMessage[] = [];
  /** Everything else the spec's listener got that is neither a reply nor an event: roar must never show here. */
  readonly foreign: unknown[] = [];
  #ready: (() => void) | undefined;
  readonly ready: Promise<void>;
  #gone: string | undefined;

  constructor(label: string, send: (message: unknown) => void) {
    this.label = label;
    this.#send = send;
    this.ready = new Promise<void>((resolve) => (this.#ready = resolve));
  }

  receive(message: unknown): void {
    if (isReply(message)) {
      const pending = this.#pending.get(message.re);
      if (pending === undefined) return;
      this.#pending.delete(message.re);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.result);
      else {
        const error = new Error(`${pending.what} failed: ${message.error.message}`);
        Object.assign(error, { code: message.error.code, remote: message.error });
        pending.reject(error);
      }
    } else if (isPeerEvent(message)) {
      if (message.event === "ready" && message.from.length === 0) this.#ready?.();
    } else if (isUserMessage(message)) {
      this.user.push(message);
    } else {
      this.foreign.push(message);
    }
  }

  gone(why: string): void {
    this.#gone = why;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`${pending.what}: ${this.label} ${why}`));
      this.#pending.delete(id);
    }
  }

  call(path: string[], op: OpName, args: unknown, timeout: number): Promise<unknown> {
    const what = `${[this.label, ...path].join("/")}.${op}`;
    if (this.#gone !== undefined) return Promise.reject(new Error(`${what}: ${this.label} ${this.#gone}`));
    const id = nextId++;
    const command = { kind: "cmd", id, path, op, args } as Command;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${what}: no reply within ${timeout} ms`));
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer, what });
      this.#send(command);
    });
  }

  sendRaw(message: unknown): void {
    this.#send(message);
  }
}

/** A handle on a peer (or a thread below one). */
export class Peer {
  readonly #transport: Transport;
  readonly path: string[];

  constructor(transport: Transport, path: string[] = []) {
    this.#transport = transport;
    this.path = path;
  }

  /** User messages and foreign messages the spec's listener got from the top-level peer. */
  get user(): readonly UserMessage[] {
    return this.#transport.user;
  }

  get foreign(): readonly unknown[] {
    return this.#transport.foreign;
  }

  call<K extends OpName>(op: K, args: Ops[K]["args"], timeout = TIMEOUT + 10_000): Promise<Ops[K]["result"]> {
    return this.#transport.call(this.path, op, args, timeout) as Promise<Ops[K]["result"]>;
  }

  /** The thread `name` that this peer started with `spawnThread`. */
  child(name: string): Peer {
    return new Peer(this.#transport, [...this.path, name]);
  }

  /** Starts a thread under this peer and returns its handle. */
  async spawnThread(name: string): Promise<Peer> {
    await this.call("spawnThread", { name });
    return this.child(name);
  }

  /** Forks a cluster worker under this peer (which becomes a cluster primary) and returns its handle. */
  async forkWorker(name: string): Promise<Peer> {
    await this.call("forkWorker", { name });
    return this.child(name);
  }

  /** Sends a user message `{ kind: "user", i, from: "spec" }`. */
  sendUser(i: number): void {
    this.#transport.sendRaw({ kind: "user", i, from: "spec" } satisfies UserMessage);
  }
}

/** A peer running in its own process. */
export interface ProcessPeer {
  peer: Peer;
  child: ChildProcess;
  /** Resolves once the process exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills the process (SIGCONT first, in case it was stopped, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Wires a transport to a child's user channel and waits for the peer to say it is ready. */
async function connect(
  label: string,
  child: ChildProcess,
  channel: { send(message: unknown): void; on(event: "message" | "error", listener: (message: unknown) => void): unknown },
): Promise<ProcessPeer> {
  const transport = new Transport(label, (message) => channel.send(message));
  channel.on("message", (message) => transport.receive(message));
  // A send to a process that just died fails with an 'error' event: fail the calls, not jest.
  channel.on("error", (error) => transport.gone(`failed (${(error as Error).message})`));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  void exited.then(({ code, signal }) => transport.gone(`exited (code ${code}, signal ${signal})`));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
    await exited;
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      transport.ready,
      exited.then(({ code, signal }) => Promise.reject(new Error(`${label} exited before it was ready (code ${code}, signal ${signal})`))),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${label} was not ready within ${TIMEOUT} ms`)), TIMEOUT))),
    ]);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { peer: new Peer(transport), child, exited, stop };
}

/**
 * Forks a peer with `child_process.fork`: a process of its own, used as a "host" whose main
 * thread is a real Node main thread (thread specs), or as a child to `relay.attach`.
 */
export function forkPeer(name: string, { onFork }: { onFork?: (child: ChildProcess) => void } = {}): Promise<ProcessPeer> {
  const child = fork(fixture("peer.js"), [], {
    env: { ...process.env, PEER_NAME: name },
    execArgv: [],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  onFork?.(child);
  return connect(name, child, { send: (message) => child.send(message as never), on: (event, listener) => child.on(event, listener) });
}

/** Forks a cluster worker running a peer; the spec's process is the primary. */
export async function forkClusterPeer(name: string): Promise<ProcessPeer & { worker: ClusterWorker }> {
  cluster.setupPrimary({ exec: fixture("peer.js"), execArgv: [], silent: false });
  const worker = cluster.fork({ PEER_NAME: name });
  const connected = await connect(name, worker.process, {
    send: (message) => worker.send(message as never),
    on: (event, listener) => worker.on(event, listener),
  });
  return { ...connected, worker };
}

/** Runs cleanups in reverse order of registration; a failing one does not stop the others. */
export class Cleanup {
  readonly #steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length !== 0) throw new AggregateError(errors, "cleanup failed");
  }
}
