/**
 * The spec side of the flow-control specs: forks flow peers (spec/fixtures/flow-peer.ts) as
 * ordinary Node processes — each the root of its own host, or a cluster primary once it forks
 * workers — and talks to them and their threads and workers with typed commands.
 *
 * The primary of these specs is a forked process, not the jest process: its peak RSS (VmHWM)
 * is then roar's alone, not jest's, and signals (SIGSTOP) reach exactly the process meant.
 */
import { fork, type ChildProcess } from "node:child_process";
import { isFlowReady, isFlowReply, type FlowCommand, type FlowOp, type FlowOps } from "../fixtures/flow-protocol.js";
import { fixture, TIMEOUT } from "./support.js";

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  what: string;
}

let nextId = 1;

/** A handle on a flow peer, or on a thread or worker below one (through `path`). */
export class FlowPeer {
  readonly #channel: Channel;
  readonly path: readonly string[];

  constructor(channel: Channel, path: readonly string[] = []) {
    this.#channel = channel;
    this.path = path;
  }

  /** Runs `op` there; rejects with the peer's error, or after `timeout` ms without an answer. */
  call<K extends FlowOp>(op: K, args: FlowOps[K]["args"], timeout = TIMEOUT * 3): Promise<FlowOps[K]["result"]> {
    return this.#channel.call(this.path, op, args, timeout) as Promise<FlowOps[K]["result"]>;
  }

  /** The thread or cluster worker `name` this peer started. */
  child(name: string): FlowPeer {
    return new FlowPeer(this.#channel, [...this.path, name]);
  }

  async thread(name: string): Promise<FlowPeer> {
    await this.call("thread", { name });
    return this.child(name);
  }

  /** Forks a cluster worker under this peer; returns its handle and pid. */
  async fork(name: string): Promise<{ peer: FlowPeer; pid: number }> {
    const { pid } = await this.call("fork", { name });
    return { peer: this.child(name), pid };
  }
}

/** The IPC channel to one forked process, shared by the handles of its descendants. */
class Channel {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, Pending>();
  #gone: string | undefined;

  constructor(child: ChildProcess) {
    this.#child = child;
    child.on("message", (message: unknown) => {
      if (!isFlowReply(message)) return;
      const pending = this.#pending.get(message.re);
      if (pending === undefined) return;
      this.#pending.delete(message.re);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(Object.assign(new Error(`${pending.what} failed: ${message.error.message}`), { code: message.error.code }));
    });
  }

  gone(why: string): void {
    this.#gone = why;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error(`${pending.what}: ${why}`));
    }
    this.#pending.clear();
  }

  call(path: readonly string[], op: FlowOp, args: unknown, timeout: number): Promise<unknown> {
    const what = `${["flow", ...path].join("/")}.${op}`;
    if (this.#gone !== undefined) return Promise.reject(new Error(`${what}: ${this.#gone}`));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${what}: no answer within ${timeout} ms`));
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer, what });
      this.#child.send({ kind: "cmd", id, path: [...path], op, args } satisfies FlowCommand);
    });
  }
}

/** A forked flow process. */
export interface FlowProcess {
  peer: FlowPeer;
  pid: number;
  /** Kills it (SIGCONT first, in case it is stopped; then SIGKILL, to it and its cluster workers) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Forks `file` (a compiled fixture: the flow peer, or a primary without roar) as a process of
 * its own and waits until it is ready.
 */
export async function forkFlow(name: string, { file = "flow-peer.js", execArgv = [] as string[] } = {}): Promise<FlowProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, FLOW_NAME: name };
  delete env["NODE_OPTIONS"];
  // A process group of its own, so stop() also ends the cluster workers it forked.
  const child = fork(fixture(file), [], { env, execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"], detached: true });
  const channel = new Channel(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => channel.gone(`${name} exited`));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      for (const signal of ["SIGCONT", "SIGKILL"] as const) {
        try {
          process.kill(-(child.pid as number), signal);
        } catch {
          // The group is gone already.
        }
      }
    }
    await exited;
  };
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${TIMEOUT} ms`)), TIMEOUT);
    child.on("message", (message: unknown) => {
      if (isFlowReady(message) && message.from.length === 0) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`${name} exited before it was ready`)));
  });
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return { peer: new FlowPeer(channel), pid: child.pid as number, stop };
}

/** Stops (SIGSTOP) or resumes (SIGCONT) process `pid`. */
export function signal(pid: number, what: "SIGSTOP" | "SIGCONT"): void {
  process.kill(pid, what);
}
