/**
 * The options of `WebSocketTransport`, checked once and resolved into {@link Settings}: what
 * the transport runs on, every default applied.
 */
import type { SecureContextOptions } from "node:tls";
import { isIPv4, isIPv6 } from "node:net";
import { RoarError, describe } from "../errors.js";
import { MAX_HANDSHAKE_BYTES } from "../transport.js";
import { assertOptions } from "../validate.js";
import type { DoorLimits } from "./door.js";

/** The default of `handshakeTimeout`, in milliseconds. */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 3000;
/** The default of `maxUnauthenticated`. */
const DEFAULT_MAX_UNAUTHENTICATED = 64;
/**
 * What a connection may send after its upgrade and before its first text is whole, in bytes:
 * the longest first text roar takes (in UTF-8) and a frame header.
 */
const MAX_STRANGER_BYTES = 3 * MAX_HANDSHAKE_BYTES + 16;

/** Options of {@link WebSocketTransport}. */
export interface WebSocketTransportOptions {
  /** Where to listen for other hosts. `port: 0` picks a free port (see {@link WebSocketTransport.port}). */
  listen?: {
    /** The port, 0 to 65535; 0 picks a free one. */
    port: number;
    /** The address to listen on, such as `"127.0.0.1"`. @defaultValue every address */
    host?: string;
  };
  /** URLs of hosts to dial, `ws://host:port` or `wss://host:port`. */
  peers?: readonly string[];
  /** A shared secret: dialled hosts must present it, and this host presents it when dialling. */
  token?: string;
  /**
   * TLS. When listening, `cert` and `key` (or `pfx`) make the listener speak `wss://`; when
   * dialling `wss://` peers, `ca` says whom to trust (and `cert`/`key` present a client
   * certificate where the peer asks for one).
   */
  tls?: SecureContextOptions & {
    /** Dialling: refuse a peer whose certificate `ca` does not vouch for. @defaultValue true */
    rejectUnauthorized?: boolean;
    /** Listening: ask diallers for a client certificate. @defaultValue false */
    requestCert?: boolean;
    /** Dialling: the name to check the peer's certificate against. @defaultValue the URL's host */
    servername?: string;
  };
  /**
   * The largest frame a peer may send, in bytes. Peers keep their batches within it and drop
   * (and count) a message that alone exceeds it.
   * @defaultValue 16 MiB
   */
  maxPayload?: number;
  /** How often to ping peers, in milliseconds; a peer silent for two intervals is dropped. 0 turns it off. @defaultValue 10000 */
  heartbeat?: number;
  /** Backoff between attempts to dial a peer, in milliseconds. @defaultValue `{ min: 100, max: 10000 }` */
  retry?: {
    /** The first wait, in milliseconds. @defaultValue 100 */
    min?: number;
    /** The longest wait, in milliseconds. @defaultValue 10000 */
    max?: number;
  };
  /** See {@link Transport.awayTimeout}. @defaultValue 30000 */
  awayTimeout?: number;
  /**
   * Listening: how long, in milliseconds, a connection may take from its TCP accept to roar's
   * handshake — TLS, upgrade and token included. Then it is closed and counted in
   * `relay.stats().dropped.unauthenticated`.
   * @defaultValue 3000
   */
  handshakeTimeout?: number;
  /**
   * Listening: how many connections may wait at once for their handshake. One more closes the
   * oldest of them (counted in `dropped.unauthenticated`), so connections that never speak
   * cannot lock out a host that shakes hands at once.
   * @defaultValue 64
   */
  maxUnauthenticated?: number;
  /**
   * Listening without a `token` on an address other than loopback (or on every address) lets
   * anyone who reaches the port join this host. Such a listener refuses to start unless this
   * says it is meant (a network that is itself trusted), and then warns `ERR_ROAR_INSECURE`.
   * @defaultValue false
   */
  insecure?: boolean;
}

/** The default `maxPayload`: 16 MiB. */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;

function assertInteger(value: unknown, name: string, min: number): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= min)) {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.${name}\` must be an integer ≥ ${min}, got ${describe(value)}`);
  }
}

/** @internal The options of a WebSocketTransport, checked, with their defaults. */
export interface Settings {
  /** Where to listen, if anywhere. */
  readonly listen: { readonly port: number; readonly host?: string } | undefined;
  /** The URLs to dial. */
  readonly peers: readonly string[];
  /** The shared secret, if any. */
  readonly token: string | undefined;
  /** TLS options, as given. */
  readonly tls: WebSocketTransportOptions["tls"];
  /** The largest frame a peer may send, in bytes. */
  readonly maxPayload: number;
  /** The ping interval in milliseconds; 0: no pings. */
  readonly heartbeat: number;
  /** The first wait between dials, in milliseconds. */
  readonly retryMin: number;
  /** The longest wait between dials, in milliseconds. */
  readonly retryMax: number;
  /** See `Transport.awayTimeout`. */
  readonly awayTimeout: number | undefined;
  /** What the listener's door lets a stranger hold. */
  readonly door: DoorLimits;
}

/** @internal Checks `options` and resolves them. @throws {@link RoarError} `ERR_ROAR_INVALID_OPTION` for bad options. */
export function settingsOf(options: WebSocketTransportOptions): Settings {
  assertOptions(options, "options", [
    "listen",
    "peers",
    "token",
    "tls",
    "maxPayload",
    "heartbeat",
    "retry",
    "awayTimeout",
    "handshakeTimeout",
    "maxUnauthenticated",
    "insecure",
  ]);
  const { listen, peers = [], token, tls, maxPayload, heartbeat, retry, awayTimeout, handshakeTimeout, maxUnauthenticated, insecure } =
    options as WebSocketTransportOptions;
  if (listen !== undefined) {
    assertOptions(listen, "listen", ["port", "host"]);
    if (!(Number.isSafeInteger(listen.port) && listen.port >= 0 && listen.port <= 65535)) {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.listen.port\` must be an integer from 0 to 65535, got ${describe(listen.port)}`);
    }
    if (listen.host !== undefined && typeof listen.host !== "string") {
      throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.listen.host\` must be a string, got ${describe(listen.host)}`);
    }
  }
  if (!Array.isArray(peers) || !peers.every(isWebSocketUrl)) {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.peers\` must be an array of ws:// or wss:// URLs, got ${describe(peers)}`);
  }
  if (listen === undefined && peers.length === 0) {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", "a WebSocketTransport needs `listen`, `peers`, or both");
  }
  if (token !== undefined && (typeof token !== "string" || token.length === 0)) {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.token\` must be a non-empty string, got ${describe(token)}`);
  }
  if (tls !== undefined && (typeof tls !== "object" || tls === null)) {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.tls\` must be an object of TLS options, got ${describe(tls)}`);
  }
  assertInteger(maxPayload, "maxPayload", 1024);
  assertInteger(heartbeat, "heartbeat", 0);
  assertInteger(awayTimeout, "awayTimeout", 0);
  assertInteger(handshakeTimeout, "handshakeTimeout", 1);
  assertInteger(maxUnauthenticated, "maxUnauthenticated", 1);
  if (insecure !== undefined && typeof insecure !== "boolean") {
    throw new RoarError("ERR_ROAR_INVALID_OPTION", `\`options.insecure\` must be a boolean, got ${describe(insecure)}`);
  }
  if (listen !== undefined && token === undefined && !isLoopback(listen.host) && insecure !== true) {
    throw new RoarError(
      "ERR_ROAR_INVALID_OPTION",
      `listening on ${listen.host === undefined ? "every address" : describe(listen.host)} without \`options.token\` lets anyone who reaches the port join this host; set a \`token\` (on every host), listen on a loopback address, or pass \`insecure: true\` if the network itself is trusted`,
    );
  }
  if (retry !== undefined) {
    assertOptions(retry, "retry", ["min", "max"]);
    assertInteger(retry.min, "retry.min", 1);
    assertInteger(retry.max, "retry.max", 1);
  }
  const retryMin = retry?.min ?? 100;
  return {
    listen,
    peers: [...peers],
    token,
    tls,
    maxPayload: maxPayload ?? DEFAULT_MAX_PAYLOAD,
    heartbeat: heartbeat ?? 10_000,
    retryMin,
    retryMax: Math.max(retry?.max ?? 10_000, retryMin),
    awayTimeout,
    door: {
      timeout: handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      maxStrangers: maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED,
      maxBytes: MAX_STRANGER_BYTES,
    },
  };
}

/** @internal Whether `host` names this machine only: a loopback address, or `localhost`. */
export function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  if (isIPv4(name)) return name.startsWith("127.");
  if (isIPv6(name)) return name === "::1" || /^(0{1,4}:){7}0{0,3}1$/.test(name) || /^::ffff:127\./.test(name);
  return false;
}

function isWebSocketUrl(value: unknown): boolean {
  if (typeof value !== "string") return false;
  try {
    const url = new URL(value);
    return url.protocol === "ws:" || url.protocol === "wss:";
  } catch {
    return false;
  }
}
