/**
 * Broker servers for the benchmark: a real `redis-server` or `nats-server` on a free port of
 * 127.0.0.1, adapted from spec/support/servers.ts (which the benchmark's build does not
 * compile). A server is started on a port probed free (another one is tried if something takes
 * it first), is ready once it logs so (no fixed sleep), and is stopped by the PID this module
 * started — never by name — with SIGTERM, then SIGKILL if it lingers. Every server still
 * running when the benchmark exits, however it exits, is killed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { delimiter, join } from "node:path";

export type Engine = "redis" | "nats";

const BINARIES: Record<Engine, { binary: string; ready: RegExp }> = {
  redis: { binary: "redis-server", ready: /Ready to accept connections/ },
  nats: { binary: "nats-server", ready: /Server is ready/ },
};

/** Servers running, by PID: killed if the benchmark exits first. */
const running = new Map<number, ChildProcess>();
process.once("exit", () => {
  for (const pid of running.keys()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
});
// Interrupted, the benchmark still exits through its exit hooks, which stop servers and hosts.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => process.exit(1));

/** Where `engine`'s server is installed (on PATH, or where Debian puts it), or `undefined`. */
export function locate(engine: Engine): string | undefined {
  const { binary } = BINARIES[engine];
  const folders = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
  for (const folder of folders) {
    if (folder === "") continue;
    const path = join(folder, binary);
    if (existsSync(path)) return path;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A broker server this process started. */
export interface Server {
  readonly engine: Engine;
  readonly port: number;
  readonly pid: number;
  /** `redis://127.0.0.1:port` or `nats://127.0.0.1:port`. */
  readonly url: string;
  /** Stops it by its PID and waits until it exited. */
  stop(): Promise<void>;
}

class PortTaken extends Error {}

/** Starts `engine`'s server at `binary` on a free port of 127.0.0.1; resolves once it accepts connections. */
export async function startServer(engine: Engine, binary: string, timeout = 10_000): Promise<Server> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnServer(engine, binary, await freePort(), timeout);
    } catch (error) {
      if (!(error instanceof PortTaken) || attempt >= 5) throw error;
    }
  }
}

async function spawnServer(engine: Engine, binary: string, port: number, timeout: number): Promise<Server> {
  const args =
    engine === "redis"
      ? ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "notice"]
      : ["-a", "127.0.0.1", "-p", String(port)];
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
    child.once("error", (error) => resolve({ code: null, signal: null, error }));
  });
  if (child.pid !== undefined) running.set(child.pid, child);
  const log: string[] = [];
  let isReady: () => void = () => undefined;
  const ready = new Promise<"ready">((resolve) => (isReady = () => resolve("ready")));
  let partial = "";
  const onData = (chunk: Buffer): void => {
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      log.push(line);
      if (log.length > 30) log.shift();
      if (BINARIES[engine].ready.test(line)) isReady();
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready,
    exited,
    new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeout))),
  ]);
  clearTimeout(timer);
  const pid = child.pid as number;
  const stop = async (): Promise<void> => {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // exited already
    }
    const lingering = setTimeout(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }, 5000);
    await exited;
    clearTimeout(lingering);
    running.delete(pid);
  };
  if (outcome === "ready") {
    return { engine, port, pid, url: `${engine}://127.0.0.1:${port}`, stop };
  }
  if (outcome === "timeout") {
    await stop();
    throw new Error(`${BINARIES[engine].binary} on port ${port} was not ready within ${timeout} ms:\n${log.join("\n")}`);
  }
  running.delete(pid);
  if (outcome.error !== undefined) throw new Error(`${BINARIES[engine].binary} could not be started: ${outcome.error.message}`);
  if (/address already in use/i.test(log.join("\n"))) throw new PortTaken(`port ${port} is taken`);
  throw new Error(`${BINARIES[engine].binary} on port ${port} exited before it was ready (code ${outcome.code}, signal ${outcome.signal}):\n${log.join("\n")}`);
}
