import { describe, it } from "@jest/globals";
import { InProcessTransport } from "../../lib/transports/in-process.js";
import { WebSocketTransport } from "../../lib/transports/websocket.js";
import { transportConformance } from "../../lib/testing.js";

let names = 0;

describe("InProcessTransport passes the conformance suite", () => {
  const checks = transportConformance(
    ({ listen, peers }) => {
      const name = `conformance-${++names}`;
      const transport = new InProcessTransport({ listen: listen ? name : undefined, peers });
      return { transport, address: () => name, dropConnections: () => transport.dropConnections() };
    },
    { dropConnections: true },
  );
  for (const check of checks) {
    it(check.name, check.run, 60_000);
  }
});

describe("WebSocketTransport passes the conformance suite", () => {
  for (const check of transportConformance(({ listen, peers }) => {
    const transport = new WebSocketTransport({ listen: listen ? { port: 0, host: "127.0.0.1" } : undefined, peers });
    return { transport, address: () => `ws://127.0.0.1:${transport.port}` };
  })) {
    it(check.name, check.run, 60_000);
  }
});
