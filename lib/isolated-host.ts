/**
 * Host: a host of its own inside this process — routers and a relay that see only each other
 * and what their transports bring, as if they ran on another machine. Tests use it to join
 * several hosts in one process (with `InProcessTransport`, or any transport on loopback).
 */
import type { ChildProcess } from "node:child_process";
import { ThreadDispatchers } from "./dispatcher.js";
import { RoarError } from "./errors.js";
import type { RelayHost } from "./host.js";
import { HostSessions } from "./host-sessions.js";
import { Hub } from "./hub.js";
import { defaultBounds } from "./links/link.js";
import { relayOf, type Relay, type RelayOptions } from "./relay.js";
import { Router } from "./router.js";
import type { RouterOptions } from "./types.js";

/**
 * A host of its own inside this process. Its routers share nothing with the process's own
 * routers, nor with other `Host`s, except through the transports of its relay.
 *
 * @example
 * ```ts
 * const a = roar.createHost();
 * const b = roar.createHost();
 * await a.startRelay({ transports: [new roar.InProcessTransport({ listen: "a" })] });
 * await b.startRelay({ transports: [new roar.InProcessTransport({ peers: ["a"] })] });
 * const sub = b.createRouter({ scope: "app", capacity: 10 }).subscribe("news");
 * ```
 */
export class Host implements AsyncDisposable {
  readonly #dispatchers = new ThreadDispatchers();
  readonly #core: RelayHost;
  #relay: Relay | undefined;

  /** @internal Use {@link createHost}. */
  constructor() {
    const dispatchers = this.#dispatchers;
    const hub = new Hub({ dispatchers, expectsUpstream: false, isThread: false, bounds: defaultBounds() });
    dispatchers.beyond = {
      interestChanged: (scope, topic) => hub.localInterestChanged(scope, topic),
      forward: (scope, topic, message, strict) => hub.forwardLocal(scope, topic, message, strict),
      drained: () => hub.drained(),
      flush: (timeout) => hub.flush(timeout),
    };
    const sessions = new HostSessions(hub);
    this.#core = {
      hub,
      sessions,
      bounds: hub.bounds,
      notRoot: undefined,
      attach(_child: ChildProcess): void {
        throw new RoarError("ERR_ROAR_UNSUPPORTED", "a Host made with createHost() links to other hosts only, not to child processes");
      },
      close(): void {
        hub.close();
        dispatchers.beyond = undefined;
        dispatchers.clearRemoteInterest();
      },
    };
  }

  /** Makes a router of this host; see {@link createRouter}. */
  createRouter(options: RouterOptions): Router {
    return new Router(options, this.#dispatchers);
  }

  /**
   * Starts this host's relay, or adds transports to it; see {@link startRelay}. Like it,
   * resolves once the peers the transports dial are linked (or `connectTimeout` passed).
   */
  async startRelay(options: RelayOptions = {}): Promise<Relay> {
    const relay = relayOf(this.#core, options, () => undefined);
    if (relay.closed) throw new RoarError("ERR_ROAR_CLOSED", "this host's relay is closed");
    this.#relay = relay;
    await relay.addTransports(options.transports ?? [], options.connectTimeout);
    return relay;
  }

  /** Closes this host's relay and its transports; its routers then reach only each other. */
  close(): Promise<void> {
    return this.#relay?.close() ?? Promise.resolve(this.#core.close());
  }

  /** Closes the host (`await using host = roar.createHost()`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Makes a {@link Host} of its own inside this process. */
export function createHost(): Host {
  return new Host();
}
