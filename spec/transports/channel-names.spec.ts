import { describe, expect, it } from "@jest/globals";
import { MAX_PART, channelName, escapeName } from "../../lib/transports/channel-names.js";

describe("channel names on a broker", () => {
  it("keeps safe names as they are and escapes every other byte as ~XX, ~ included", () => {
    expect(escapeName("orders_created-2")).toBe("orders_created-2");
    expect(escapeName("a.b *>~")).toBe("a~2Eb~20~2A~3E~7E");
    expect(escapeName("ü")).toBe("~C3~BC");
  });

  it("never gives two names one channel, nor a name a wildcard", () => {
    const names = [".", "~2E", "*", ">", "a.b", "a~2Eb", "__proto__", " ", "ü", "u\u0308"];
    const escaped = names.map(escapeName);
    expect(new Set(escaped).size).toBe(names.length);
    for (const name of escaped) expect(name).toMatch(/^[A-Za-z0-9_~-]+$/);
  });

  it("hashes a name whose escaped form is long, so a subject fits a NATS control line", () => {
    const long = escapeName("日".repeat(1024));
    expect(long).toMatch(/^~H[0-9a-f]{64}$/);
    expect(escapeName("本".repeat(1024))).not.toBe(long);
    expect(escapeName("x".repeat(MAX_PART))).toBe("x".repeat(MAX_PART));
    expect(escapeName("x".repeat(MAX_PART + 1))).toMatch(/^~H/);
  });

  it("keeps names with lone surrogates apart (they have no UTF-8 of their own)", () => {
    const names = ["\uD800", "\uDFFF", "\uFFFD", "a\uD800b"];
    const escaped = names.map(escapeName);
    expect(new Set(escaped).size).toBe(names.length);
    expect(escapeName("\uD800")).toBe("~UD800");
    expect(escapeName("😀")).toBe("~F0~9F~98~80");
  });

  it("names channels by kind, prefix and separator", () => {
    expect(channelName("roar", ".", { kind: "topic", scope: "app", topic: "a.b" })).toBe("roar.t.app.a~2Eb");
    expect(channelName("roar", ":", { kind: "node", node: "12:ab" })).toBe("roar:n:12~3Aab");
    expect(channelName("roar", ".", { kind: "hosts" })).toBe("roar.h");
  });
});
