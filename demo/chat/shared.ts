/** What the primary and the workers of the chat demo agree on. */
import { parseArgs } from "node:util";
import { availableParallelism } from "node:os";

/** The roar scope and topic of the chat. */
export const SCOPE = "chat-demo";
export const TOPIC = "chat";

export interface Config {
  port: number;
  host: string;
  workers: number;
}

/** What a worker tells the primary over IPC (beside roar's own frames, which it never sees). */
export type ToPrimary = { kind: "roar-demo:fatal"; message: string };

export const USAGE = `usage: node build/demo/chat/server.js [--port N] [--host ADDRESS] [--workers N]

  --port     the port to listen on (env PORT; default 3000; 0 picks a free one)
  --host     the address to listen on (env HOST; default 127.0.0.1)
  --workers  how many cluster workers to run (env ROAR_DEMO_WORKERS; default: one per core)`;

export class UsageError extends Error {}

/** Reads the configuration from the command line, then the environment, then the defaults. */
export function readConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  let values: { port?: string; host?: string; workers?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { port: { type: "string" }, host: { type: "string" }, workers: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help === true) throw new UsageError("");
  const port = integer("port", values.port ?? env.PORT, 3000, 0, 65535);
  const workers = integer("workers", values.workers ?? env.ROAR_DEMO_WORKERS, availableParallelism(), 1, 1024);
  const host = values.host ?? env.HOST ?? "127.0.0.1";
  if (host === "") throw new UsageError("host must not be empty");
  return { port, host, workers };
}

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || value < min || value > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

/** The URL to print: loopback and wildcard addresses are shown as localhost. */
export function displayUrl(host: string, port: number): string {
  const local = ["127.0.0.1", "::1", "localhost", "0.0.0.0", "::"].includes(host);
  const name = local ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return `http://${name}:${port}`;
}
