/**
 * Guarantee 6's matrix: the same values (spec/fixtures/value-cases.ts) published from every
 * kind of place and received in every other, over a thread port, cluster IPC and a WebSocket
 * host link, and the paths that chain them (a thread of one host to a cluster worker of
 * another). Each receiver describes what it got in its own realm (rich.ts's typed dump: types
 * by instanceof, holes, named properties, shared references), so the spec compares what
 * arrived with what was published, exactly. Every publisher refuses the same cases, and
 * nothing is dropped or counted as undecodable on the way.
 */
import { afterEach, describe, expect, it } from "@jest/globals";
import { typedDump } from "../fixtures/rich.js";
import { ARRIVES, REFUSED } from "../fixtures/value-cases.js";
import { Cleanup, forkPeer, testScope, TIMEOUT, type Peer } from "./support.js";

const cleanup = new Cleanup();
afterEach(() => cleanup.run());

const LOCAL = "127.0.0.1";
const TOKEN = "a shared secret of the value matrix";
const NO_DROPS = { queueFull: 0, malformed: 0, undecodable: 0, unsendable: 0, oversized: 0, unauthenticated: 0, disconnected: 0, looped: 0 };

describe("the value matrix (guarantee 6)", () => {
  it("every value publish accepts arrives as itself over every kind of link, and every publisher refuses the same values", async () => {
    const scope = testScope();
    // Host A: its root, a thread of it and a cluster worker of it. Host B: its root, dialling A.
    const hostA = await forkPeer("A");
    cleanup.add(() => hostA.stop());
    const hostB = await forkPeer("B");
    cleanup.add(() => hostB.stop());
    const { port } = await hostA.peer.call("startTransport", { options: { token: TOKEN, listen: { port: 0, host: LOCAL } } });
    await hostB.peer.call("startTransport", { options: { token: TOKEN, peers: [`ws://${LOCAL}:${port}`] } });
    await hostA.peer.call("waitStats", { hosts: 1, timeout: TIMEOUT });
    await hostB.peer.call("waitStats", { hosts: 1, timeout: TIMEOUT });
    const peers: Record<string, Peer> = {
      A: hostA.peer,
      "A.thread": await hostA.peer.spawnThread("A.thread"),
      "A.worker": await hostA.peer.forkWorker("A.worker"),
      B: hostB.peer,
    };
    const names = Object.keys(peers);

    // Each receiver subscribes to each publisher's own topic, its own included (local delivery).
    for (const [receiver, peer] of Object.entries(peers)) {
      for (const from of names) await peer.call("subscribe", { key: `${receiver}<-${from}`, scope, topic: `v.${from}` });
    }
    for (const peer of Object.values(peers)) await peer.call("flush", { scope });

    const expectedRefusals = REFUSED.map(({ name }) => ({ name, code: "ERR_ROAR_UNSERIALIZABLE" }));
    for (const [from, peer] of Object.entries(peers)) {
      expect({ from, refused: await peer.call("publishCases", { scope, topic: `v.${from}` }) }).toEqual({ from, refused: expectedRefusals });
    }

    const expected = ARRIVES.map(({ name, make }) => ({ name, dump: typedDump(make()) }));
    for (const [receiver, peer] of Object.entries(peers)) {
      for (const from of names) {
        const got = await peer.call("nextDump", { key: `${receiver}<-${from}`, count: ARRIVES.length, timeout: TIMEOUT });
        const arrived = got.map((dump, i) => ({ name: ARRIVES[i]?.name, dump }));
        expect({ path: `${from} -> ${receiver}`, arrived }).toEqual({ path: `${from} -> ${receiver}`, arrived: expected });
      }
    }

    for (const [name, peer] of Object.entries(peers)) {
      // Nothing more came after the cases, and the publishers' flushes still resolve.
      await peer.call("flush", { scope });
      for (const from of names) expect({ name, from, left: await peer.call("drain", { key: `${name}<-${from}` }) }).toEqual({ name, from, left: [] });
      expect({ name, polluted: await peer.call("pollution", {}) }).toEqual({ name, polluted: [] });
    }
    for (const [name, root] of [["A", hostA.peer], ["B", hostB.peer]] as const) {
      expect({ name, dropped: (await root.call("stats", {})).dropped }).toEqual({ name, dropped: NO_DROPS });
    }
  });
});
