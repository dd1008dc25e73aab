/**
 * roar: distributed publish/subscribe for Node.js.
 *
 * This is the public surface; nothing in `lib/` imports it.
 * @packageDocumentation
 */
export { RoarError, MAX_NAME_LENGTH, type RoarErrorCode } from "./errors.js";
import { ensureHost } from "./host.js";
import { setRouterCreatedHook } from "./router.js";

// A router joins its thread to the host: the router module itself knows nothing of links.
setRouterCreatedHook(() => void ensureHost());

export { createRouter, createRouter as new, Router } from "./router.js";
export { Relay, startRelay, type RelayOptions, type RelayStats } from "./relay.js";
export { Subscription } from "./subscription.js";
export { Host, createHost } from "./isolated-host.js";
export { InProcessTransport, type InProcessTransportOptions } from "./transports/in-process.js";
export { WebSocketTransport, type WebSocketTransportOptions } from "./transports/websocket.js";
export type { BusChannel, BusContext, BusTransport, Connection, ConnectionEvents, Transport, TransportContext, TransportDropReason } from "./transport.js";
export { subscribe, on, publish } from "./functional.js";
export { MAX_DEPTH } from "./sendable.js";
export type {
  Handler,
  HandlerErrorInfo,
  FlushOptions,
  NextOptions,
  ReceiveResult,
  RouterOptions,
  RouterStats,
  Scope,
  SubscribeOptions,
  Topic,
  Unsubscribe,
} from "./types.js";
