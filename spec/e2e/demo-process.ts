/**
 * Starting the compiled chat demo (build/demo/chat/server.js, from `npm run build`) as users
 * do, in a process group of its own so that a test can press "Ctrl-C" (SIGINT to the group)
 * and, whatever happens, kill everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { request } from "node:http";
import { fileURLToPath } from "node:url";

/** Generous: the machine has 2 cores and may be loaded. */
export const TIMEOUT = 30_000;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Demo {
  /** The URL the demo printed. */
  url: URL;
  child: ChildProcess;
  /** Everything the demo printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves once the primary exited. */
  exited: Promise<Exit>;
  /** Sends `signal` to the primary alone, or to its whole process group as Ctrl-C in a terminal does. */
  signal(signal: NodeJS.Signals, to: "primary" | "group"): void;
  /** Waits for the primary to exit, at most `timeout` ms. */
  exit(timeout?: number): Promise<Exit>;
  /** SIGKILLs the process group (primary and workers) if anything of it is left. */
  kill(): Promise<void>;
}

export async function startDemo({ workers }: { workers: number }): Promise<Demo> {
  const path = fileURLToPath(new URL("../../build/demo/chat/server.js", import.meta.url));
  if (!existsSync(path)) throw new Error(`${path} does not exist: run \`npm run build\` before the e2e specs`);
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: "0", HOST: "127.0.0.1", ROAR_DEMO_WORKERS: String(workers) };
  delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is none of the demo's business
  const child = spawn(process.execPath, [path], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<Exit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));

  const signal = (signal: NodeJS.Signals, to: "primary" | "group"): void => {
    process.kill(to === "group" ? -child.pid! : child.pid!, signal);
  };
  const kill = async (): Promise<void> => {
    try {
      process.kill(-child.pid!, "SIGKILL"); // the workers too, even once the primary is gone
    } catch {
      // no process of the group is left
    }
    await exited;
  };
  const exit = async (timeout = TIMEOUT): Promise<Exit> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the demo did not exit within ${timeout} ms; stdout:\n${stdout}\nstderr:\n${stderr}`)), timeout);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  const printed = /^roar chat demo: (http:\/\/\S+) \((\d+) workers?\)/m;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo printed no URL within ${TIMEOUT} ms; stdout:\n${stdout}\nstderr:\n${stderr}`)), TIMEOUT);
      const check = (): void => {
        if (printed.test(stdout)) {
          clearTimeout(timer);
          resolve();
        } else if (done) {
          clearTimeout(timer);
          reject(new Error(`the demo exited before printing its URL; stdout:\n${stdout}\nstderr:\n${stderr}`));
        }
      };
      child.stdout!.on("data", check);
      void exited.then(check);
    });
  } catch (error) {
    await kill();
    throw error;
  }
  const [, url, count] = printed.exec(stdout)!;
  if (Number(count) !== workers) {
    await kill();
    throw new Error(`the demo says it runs ${count} workers, not ${workers}`);
  }
  return {
    url: new URL(url!),
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    signal,
    exit,
    kill,
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTP request on a connection of its own (`agent: false`): the cluster hands each new
 * connection to the next worker in turn, so successive requests reach different workers.
 */
export function httpRequest(url: URL, { method = "GET", headers = {}, body }: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false, timeout: TIMEOUT }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url.href}: no answer within ${TIMEOUT} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}
