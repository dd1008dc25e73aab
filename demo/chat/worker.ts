/**
 * One cluster worker of the chat demo: an HTTP server on the port the workers share.
 *
 *   GET  /         the page
 *   GET  /events   a Server-Sent Events stream of the "chat" topic, one roar subscription each
 *   POST /messages publishes a message (JSON or form body) on the "chat" topic
 *
 * A message published here reaches the streams of every worker: roar carries it from this
 * worker to the primary and on to the others.
 */
import cluster from "node:cluster";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import * as roar from "roar";
import { LIMITS, parseMessage, type ChatMessage } from "./message.js";
import { renderPage } from "./page.js";
import { SCOPE, TOPIC, type Config, type ToPrimary } from "./shared.js";

/** Messages a stream may fall behind by before the oldest are dropped (and the page told). */
const STREAM_CAPACITY = 256;
/** A comment line every so often keeps proxies from closing an idle stream. */
const KEEP_ALIVE_MS = 15_000;

interface Stream {
  res: ServerResponse;
  sub: roar.Subscription<ChatMessage>;
}

export function runWorker(config: Config): void {
  const worker = cluster.worker!.id;
  const pid = process.pid;
  const router = roar.createRouter({ scope: SCOPE, capacity: STREAM_CAPACITY });
  const streams = new Set<Stream>();
  let stopping = false;

  const tell = (message: ToPrimary): void => {
    if (process.connected) process.send!(message);
  };

  async function events(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sub = router.subscribe<ChatMessage>(TOPIC);
    const stream: Stream = { res, sub };
    streams.add(stream);
    const gone = new AbortController();
    const keepAlive = setInterval(() => res.writableEnded || res.write(": keep-alive\n\n"), KEEP_ALIVE_MS);
    res.on("close", () => {
      clearInterval(keepAlive);
      gone.abort();
      sub.cancel();
      streams.delete(stream);
    });
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      // An ended stream is not reused: its socket closes with it (at once when we stop).
      connection: "close",
    });
    res.flushHeaders();

    // Say hello only once this subscription's interest has reached every worker: from then on,
    // a message published anywhere on the host reaches this stream.
    try {
      await router.flush();
    } catch {
      res.end(); // the router closed: we are stopping
      return;
    }
    if (gone.signal.aborted || res.writableEnded) return; // gone, or ended by stop()
    res.write(`retry: 2000\n\n${event("hello", { worker, pid })}`);

    let dropped = 0;
    for await (const message of sub) {
      if (res.writableEnded) break;
      if (sub.dropped !== dropped) {
        res.write(event("gap", { missed: sub.dropped - dropped }));
        dropped = sub.dropped;
      }
      const written = res.write(event("chat", { ...message, at: message.at.toISOString(), deliveredBy: worker }));
      // A slow page: wait for it, while the subscription buffers (and, when full, drops the oldest).
      if (!written) {
        try {
          await once(res, "drain", { signal: gone.signal });
        } catch {
          break;
        }
      }
    }
  }

  async function post(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, LIMITS.body);
    if (body === undefined) {
      json(res, 413, { error: `the body must be at most ${LIMITS.body} bytes` }, { connection: "close" });
      return;
    }
    if (body === null) {
      json(res, 400, { error: "the body is not valid UTF-8" });
      return;
    }
    const parsed = parseMessage(req.headers["content-type"], body);
    if (!parsed.ok) {
      json(res, parsed.status, { error: parsed.error });
      return;
    }
    const message: ChatMessage = { id: randomUUID(), name: parsed.name, text: parsed.text, at: new Date(), worker, pid };
    try {
      router.publish(TOPIC, message);
    } catch (error) {
      if (error instanceof roar.RoarError && error.code === "ERR_ROAR_CLOSED") {
        json(res, 503, { error: "the server is stopping" });
        return;
      }
      throw error;
    }
    // A plain HTML form (no script) goes back to the page; the page's script gets JSON.
    const accept = req.headers.accept ?? "";
    if (!accept.includes("application/json") && accept.includes("text/html")) {
      res.writeHead(303, { location: "/" }).end();
      return;
    }
    json(res, 202, { id: message.id, publishedBy: { worker, pid } });
  }

  function page(res: ServerResponse): void {
    const nonce = randomBytes(16).toString("base64");
    res.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
      "x-content-type-options": "nosniff",
    });
    res.end(renderPage({ nonce, worker, pid }));
  }

  const server = createServer((req, res) => {
    let pathname: string;
    try {
      pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    } catch {
      return text(res, 400, "bad request target");
    }
    const route = ROUTES[pathname];
    if (route === undefined) return text(res, 404, "not found");
    if (!route.includes(req.method ?? "")) return text(res, 405, "method not allowed", { allow: route.join(", ") });
    if (stopping) return text(res, 503, "the server is stopping", { connection: "close" });
    const handled = pathname === "/" ? page(res) : pathname === "/events" ? events(req, res) : post(req, res);
    void Promise.resolve(handled).catch((error: unknown) => {
      if (req.destroyed || res.destroyed) return; // the client went away mid-request
      console.error(`worker ${worker}: ${req.method} ${pathname} failed:`, error);
      if (!res.headersSent) text(res, 500, "internal error");
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  server.on("error", (error: NodeJS.ErrnoException) => {
    tell({ kind: "roar-demo:fatal", message: `cannot listen on ${config.host}:${config.port}: ${error.code ?? error.message}` });
    process.exit(1);
  });
  server.listen(config.port, config.host);

  function stop(): void {
    if (stopping) return;
    stopping = true;
    // Not listening yet: nothing to end. (Closing a cluster worker's server while its listen is
    // still on the way to the primary makes Node 20 throw when the answer comes.)
    if (!server.listening) process.exit(0);
    // Stop taking connections; end every stream (the page reconnects to another server when
    // there is one); close the rest once their requests are answered.
    server.close(() => {
      router.close();
      // Leaves the cluster; nothing keeps the process alive after that.
      if (process.connected) cluster.worker!.disconnect();
    });
    for (const { res, sub } of streams) {
      sub.cancel();
      res.end(event("bye", { worker }));
    }
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 1_000).unref();
    setTimeout(() => process.exit(0), 5_000).unref();
  }
  // Ctrl-C in a terminal signals the whole process group, workers included; the primary sends
  // SIGTERM when it is signalled alone.
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  // The primary went away without stopping us (it was killed).
  process.on("disconnect", stop);
}

const ROUTES: Record<string, string[]> = {
  "/": ["GET", "HEAD"],
  "/events": ["GET"],
  "/messages": ["POST"],
};

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(`${body}\n`);
}

/**
 * The request body as text: `undefined` when it is longer than `limit` bytes (the rest is read
 * and thrown away, so that the answer can still be sent), `null` when it is not UTF-8.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string | null | undefined> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers["content-length"] ?? 0) > limit) {
      req.resume();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else {
        req.off("data", onData).off("end", onEnd).resume();
        resolve(undefined);
      }
    };
    const onEnd = (): void => {
      try {
        resolve(new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks)));
      } catch {
        resolve(null);
      }
    };
    req.on("data", onData).on("end", onEnd).on("error", reject);
  });
}
