import { afterEach, describe, expect, it } from "@jest/globals";
import * as functional from "../lib/functional.js";
import * as roar from "../lib/index.js";

const routers: roar.Router[] = [];
let scopeCount = 0;

function makeRouter(capacity = 8): roar.Router {
  const router = roar.createRouter({ scope: `${expect.getState().currentTestName ?? "functional"} #${++scopeCount}`, capacity });
  routers.push(router);
  return router;
}

afterEach(() => {
  for (const router of routers.splice(0)) router.close();
});

describe("the package entry", () => {
  it("exports exactly the public names", () => {
    expect(Object.keys(roar).sort()).toEqual(
      [
        "Host",
        "InProcessTransport",
        "MAX_DEPTH",
        "MAX_NAME_LENGTH",
        "Relay",
        "WebSocketTransport",
        "createHost",
        "RoarError",
        "Router",
        "Subscription",
        "createRouter",
        "new",
        "on",
        "publish",
        "startRelay",
        "subscribe",
      ].sort(),
    );
  });

  it("exports the limits", () => {
    expect(roar.MAX_NAME_LENGTH).toBe(1024);
    expect(roar.MAX_DEPTH).toBe(512);
  });

  it("makes a router with roar.new", () => {
    const router = roar.new({ scope: `${expect.getState().currentTestName ?? "new"}`, capacity: 3 });
    routers.push(router);
    expect(router).toBeInstanceOf(roar.Router);
    expect(router.capacity).toBe(3);
  });

  it("makes a router with roar.createRouter", () => {
    expect(makeRouter()).toBeInstanceOf(roar.Router);
  });

  it("validates roar.new's options like createRouter's", () => {
    expect(() => roar.new({ scope: "", capacity: 1 })).toThrow(roar.RoarError);
  });

  it("hands out subscriptions that are roar.Subscription", () => {
    expect(roar.subscribe(makeRouter(), "t")).toBeInstanceOf(roar.Subscription);
  });
});

describe("the functional style", () => {
  it("roar.subscribe(router, topic) subscribes like router.subscribe", () => {
    const router = makeRouter(5);
    const sub = roar.subscribe<string>(router, "events");
    expect(sub.topic).toBe("events");
    expect(sub.capacity).toBe(5);
    router.publish("events", "hello");
    expect(sub.receive()).toEqual({ ok: true, value: "hello" });
  });

  it("roar.subscribe passes its options on", () => {
    const sub = roar.subscribe(makeRouter(5), "events", { capacity: 2 });
    expect(sub.capacity).toBe(2);
  });

  it("roar.on(router, topic, handler) registers a handler and returns its Disposable cancel function", () => {
    const router = makeRouter();
    const seen: string[] = [];
    const off = roar.on<string>(router, "t", (message) => void seen.push(message));
    router.publish("t", "a");
    off();
    router.publish("t", "b");
    expect(seen).toEqual(["a"]);
    expect(typeof off[Symbol.dispose]).toBe("function");
  });

  it("roar.publish(router, topic, message) publishes like router.publish", () => {
    const router = makeRouter();
    const sub = router.subscribe<string>("t");
    roar.publish(router, "t", "via function");
    expect(sub.receive()).toEqual({ ok: true, value: "via function" });
    expect(router.stats().published).toBe(1);
  });

  it("reports errors with the same codes as the methods", () => {
    const router = makeRouter();
    const codeOf = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (error) {
        return error instanceof roar.RoarError ? error.code : error;
      }
      return undefined;
    };
    expect(codeOf(() => roar.subscribe(router, ""))).toBe("ERR_ROAR_INVALID_TOPIC");
    expect(codeOf(() => roar.on(router, "t", "nope" as unknown as () => void))).toBe("ERR_ROAR_INVALID_OPTION");
    expect(codeOf(() => roar.publish(router, "t", () => undefined))).toBe("ERR_ROAR_UNSERIALIZABLE");
    router.close();
    expect(codeOf(() => roar.publish(router, "t", 1))).toBe("ERR_ROAR_CLOSED");
  });

  it("runs the seed's quick start", () => {
    const router = roar.new({ capacity: 100, scope: `${expect.getState().currentTestName ?? "seed"}` });
    routers.push(router);
    const sub = roar.subscribe<string>(router, "events");
    roar.publish(router, "events", "Hello, cluster!");
    const result = sub.receive();
    expect(result.ok ? result.value : "No messages").toBe("Hello, cluster!");
    sub.cancel();
    expect(sub.closed).toBe(true);
  });

  it("the functional module's functions are the ones the entry exports", () => {
    expect(roar.subscribe).toBe(functional.subscribe);
    expect(roar.on).toBe(functional.on);
    expect(roar.publish).toBe(functional.publish);
    expect(roar.new).toBe(roar.createRouter);
  });
});
