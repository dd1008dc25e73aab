/**
 * Broker servers for the specs: a real `redis-server` or `nats-server` on 127.0.0.1.
 *
 * `startServer(kind, options)` probes a free port, starts the server there (trying another
 * port if something took it first) and resolves once the server says it accepts connections
 * (its "ready" log line: no fixed sleep). `stop()` ends it by the PID this module started
 * (never by name) and waits for it to exit; `start()` runs it again on the same port, as a
 * restarted broker would. Every server still running when the process exits is killed.
 *
 * Redis runs with `--save "" --appendonly no` (nothing on disk); NATS's `max_payload` and
 * `max_pending`, which the installed 2.9 has no command-line flags for, go through a config file.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export type BrokerKind = "redis" | "nats";

/** How a server is started. */
export interface ServerOptions {
  /** Redis: `--requirepass`. */
  password?: string;
  /** NATS: `--auth TOKEN`. */
  token?: string;
  /** NATS: `--user`/`--pass`. */
  user?: string;
  pass?: string;
  /** NATS: the server's `max_payload`, in bytes (through a config file). */
  maxPayload?: number;
  /**
   * How much the server may buffer for one subscriber before it drops it as a slow consumer,
   * in bytes: NATS's `max_pending` (default 64 MiB); Redis's pub/sub output buffer limit
   * (default 32 MiB), where 0 means none. For a test whose subscribers take a burst larger than that at once.
   */
  subscriberBuffer?: number;
  /** How long to wait for the server to be ready (and to exit), in milliseconds. @defaultValue 20000 */
  timeout?: number;
}

const BINARIES: Record<BrokerKind, { binary: string; apt: string; ready: RegExp }> = {
  redis: { binary: "redis-server", apt: "redis-server", ready: /Ready to accept connections/ },
  nats: { binary: "nats-server", apt: "nats-server", ready: /Server is ready/ },
};

/** Where `binary` is installed (on PATH, or in the sbin/bin folders Debian puts servers in). */
function locate(kind: BrokerKind): string {
  const { binary, apt } = BINARIES[kind];
  const folders = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
  for (const folder of folders) {
    if (folder === "") continue;
    const path = join(folder, binary);
    if (existsSync(path)) return path;
  }
  throw new Error(`${binary} is not installed (looked on PATH and in /usr/sbin, /usr/bin): install it with \`apt-get install -y ${apt}\``);
}

/** A port that was free a moment ago. */
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

/** Servers started and not yet seen to exit, by PID: killed if the test process exits first. */
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

class PortTaken extends Error {}

/** A broker server this process started. */
export class BrokerServer {
  readonly kind: BrokerKind;
  readonly options: ServerOptions;
  readonly #binary: string;
  readonly #timeout: number;
  #port: number | undefined;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  /** The last lines the server printed, for error messages. */
  #log: string[] = [];

  constructor(kind: BrokerKind, options: ServerOptions = {}) {
    this.kind = kind;
    this.options = options;
    this.#binary = locate(kind);
    this.#timeout = options.timeout ?? 20_000;
  }

  /** The port it listens on (the same across restarts). */
  get port(): number {
    if (this.#port === undefined) throw new Error(`${this.kind}-server was never started`);
    return this.#port;
  }

  /** The PID of the running server, if it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** `127.0.0.1:port`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /**
   * Starts the server: on a free port the first time (another one if that port is taken
   * before the server binds it), on the same port after {@link stop}. Resolves once it is ready.
   */
  async start(): Promise<void> {
    if (this.#child !== undefined) throw new Error(`${this.kind}-server is running already (pid ${this.#child.pid})`);
    if (this.#port !== undefined) return this.#spawn(this.#port);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      try {
        await this.#spawn(port);
        this.#port = port;
        return;
      } catch (error) {
        if (!(error instanceof PortTaken) || attempt >= 10) throw error;
      }
    }
  }

  /** Stops the server by its PID (SIGTERM, or `signal`; SIGKILL if it lingers) and waits until it exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    const pid = child.pid as number;
    try {
      process.kill(pid, signal);
    } catch {
      // exited already
    }
    let timer: NodeJS.Timeout | undefined;
    const lingered = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.#timeout)));
    const stopped = await Promise.race([this.#exited.then(() => false), lingered]);
    clearTimeout(timer);
    if (stopped) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
      await this.#exited;
    }
  }

  /** Stops the server and starts it again on the same port. */
  async restart(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    await this.stop(signal);
    await this.start();
  }

  /** What the server printed last, for diagnostics. */
  log(): string {
    return this.#log.join("\n");
  }

  #args(port: number, configFile: string | undefined): string[] {
    const { password, token, user, pass, subscriberBuffer } = this.options;
    if (this.kind === "redis") {
      const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "notice"];
      if (password !== undefined) args.push("--requirepass", password);
      if (subscriberBuffer !== undefined) args.push("--client-output-buffer-limit", `pubsub ${subscriberBuffer} ${subscriberBuffer} 0`);
      return args;
    }
    const args = ["-a", "127.0.0.1", "-p", String(port)];
    if (configFile !== undefined) args.unshift("-c", configFile);
    if (token !== undefined) args.push("--auth", token);
    if (user !== undefined) args.push("--user", user);
    if (pass !== undefined) args.push("--pass", pass);
    return args;
  }

  async #spawn(port: number): Promise<void> {
    let folder: string | undefined;
    let configFile: string | undefined;
    const { maxPayload, subscriberBuffer } = this.options;
    if (this.kind === "nats" && (maxPayload !== undefined || subscriberBuffer !== undefined)) {
      folder = mkdtempSync(join(tmpdir(), "roar-nats-"));
      configFile = join(folder, "nats.conf");
      const lines: string[] = [];
      if (maxPayload !== undefined) lines.push(`max_payload: ${maxPayload}`);
      if (subscriberBuffer !== undefined) lines.push(`max_pending: ${subscriberBuffer}`);
      writeFileSync(configFile, `${lines.join("\n")}\n`);
    }
    const { binary, ready } = BINARIES[this.kind];
    this.#log = [];
    const child = spawn(this.#binary, this.#args(port, configFile), { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      child.once("error", (error) => resolve({ code: null, signal: null, error }));
    });
    let isReady: () => void = () => undefined;
    const readyLine = new Promise<void>((resolve) => (isReady = resolve));
    let partial = "";
    const onData = (chunk: Buffer): void => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        this.#log.push(line);
        if (this.#log.length > 50) this.#log.shift();
        if (ready.test(line)) isReady();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        readyLine.then(() => "ready" as const),
        exited,
        new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), this.#timeout))),
      ]);
      if (outcome === "timeout") {
        child.kill("SIGKILL");
        await exited;
        throw new Error(`${binary} on port ${port} was not ready within ${this.#timeout} ms:\n${this.log()}`);
      }
      if (outcome !== "ready") {
        if (outcome.error !== undefined) {
          throw new Error(`${binary} could not be started (${outcome.error.message}): install it with \`apt-get install -y ${BINARIES[this.kind].apt}\``);
        }
        const log = this.log();
        if (/address already in use/i.test(log)) throw new PortTaken(`port ${port} is taken:\n${log}`);
        throw new Error(`${binary} on port ${port} exited before it was ready (code ${outcome.code}, signal ${outcome.signal}):\n${log}`);
      }
    } finally {
      clearTimeout(timer);
      // The server has read its config by the time it is ready, or will never read it.
      if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
    }
    const pid = child.pid as number;
    this.#child = child;
    running.set(pid, child);
    this.#exited = exited.then(() => {
      running.delete(pid);
      if (this.#child === child) this.#child = undefined;
    });
  }
}

/** Starts a `kind` server on a free port of 127.0.0.1; resolves once it accepts connections. */
export async function startServer(kind: BrokerKind, options: ServerOptions = {}): Promise<BrokerServer> {
  const server = new BrokerServer(kind, options);
  await server.start();
  return server;
}
