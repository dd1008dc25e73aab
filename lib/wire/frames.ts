/**
 * Frames: what hubs say to each other over a link, as small tagged arrays.
 *
 * Every link carries batches (arrays) of frames. The first element of a frame is its kind:
 *
 * | frame                                   | meaning                                                  |
 * | --------------------------------------- | -------------------------------------------------------- |
 * | `["h", v, node, reply, interest, all, bounds?]` | hello: protocol version, node id, whether it answers a hello, the full (scope, topic) interest of the sender towards this link, (1) whether it wants everything for now — a process still joining its parent asks its threads for all — and, from a main thread to its threads, the process's link bounds `[maxQueue, maxQueueBytes]` |
 * | `["i", scope, topic, on]`               | the sender's interest in (scope, topic) began (1) or ended (0) |
 * | `["m", scope, topic, payload, hops?]`   | a message; the payload is the value itself on thread links, its superjson encoding on process and host links; on host links, `hops` counts the host links it crossed before (at most {@link MAX_HOST_HOPS}) |
 * | `["M", scope, topic, payloads]`         | several messages in a row on one (scope, topic), as a batch carries them: the names are sent once |
 * | `["f", id]` / `["F", id, missing?]`     | flush: sent towards the root; answered once the root has run a sync, naming what did not answer in time (see barrier.ts) |
 * | `["s", id, hops?]` / `["S", id, missing?]` | sync: sent away from the root; answered once everything before it was taken in |
 * | `["d", totals]`                          | drops: what the sender and everything below it dropped so far, by reason (see stats.ts); towards the root |
 * | `["b"]`                                  | bye: the sender's hub is closing; the channel may outlive it, and a later hub there says hello again |
 * | `["p", side, port, counters, interest, doorbell]` | peer: a main thread hands a thread one end of a direct port to another thread, the shared counters, which end it is (0 or 1), what the other thread is known to want, and its doorbell; thread links only |
 * | `["n", nodes]`                          | neighbours: the node ids of every host the sender is linked to; host links only, sent after each change |
 *
 * Host links also carry session frames, which the link itself reads (see `host-link.ts`):
 * `["H", v, node, maxPayload, dial]` (handshake), `["R", session, yourSession, received]` (resume)
 * and `["A", received]` (acknowledgement).
 *
 * A hello with a version this side does not know is still accepted: new fields are added at
 * the end of a frame, and old readers ignore what they do not know (pg's `discover` rule).
 */
import type { MessagePort } from "node:worker_threads";
import type { Scope, Topic } from "../types.js";

/**
 * The protocol version this build speaks. 2 added drop reports (`d`), the names of what did
 * not answer in `F`/`S`, a main thread's bounds in its hello, and the host session frame `G`;
 * a version-1 peer counts the new frames as malformed.
 */
export const PROTOCOL_VERSION = 2;

/** A (scope, topic) pair. */
export type InterestKey = readonly [Scope, Topic];

/** hello: see the module docs. */
export type HelloFrame = readonly ["h", number, string, 0 | 1, readonly InterestKey[], (0 | 1)?, (readonly [number, number])?];
/** A change of interest. */
export type InterestFrame = readonly ["i", Scope, Topic, 0 | 1];
/**
 * The most host links a message (or a sync) crosses: enough for every supported layout (a
 * mesh of hubs with trees of leaves up to six deep), and a stop for one that is not (a ring).
 */
export const MAX_HOST_HOPS = 8;

/** A published message; on host links, `hops` counts the host links it crossed before this one. */
export type MessageFrame = readonly ["m", Scope, Topic, unknown, number?];
/** Consecutive messages on one (scope, topic). */
export type MessagesFrame = readonly ["M", Scope, Topic, readonly unknown[], number?];
/** A flush request (`f`) or its answer (`F`, with the names of what did not answer in time, if anything). */
export type FlushFrame = readonly ["f", number] | readonly ["F", number, (readonly string[])?];
/** A sync request (`s`, with the host links it crossed before this one) or its answer (`S`, as `F`). */
export type SyncFrame = readonly ["s", number, number?] | readonly ["S", number, (readonly string[])?];
/** The most names an `F` or `S` answer carries of those that did not answer. */
export const MAX_MISSING = 16;
/** How many totals a drop report carries (see stats.ts's REPORTED; newer senders may add more). */
export const DROP_TOTALS = 4;

/** What the sender and everything below it dropped so far, by reason (see stats.ts); towards the root only. */
export type DropsFrame = readonly ["d", readonly number[]];
/** An introduction to another thread of the process, with a direct port to it. */
export type PeerFrame = readonly ["p", 0 | 1, MessagePort, Int32Array, readonly InterestKey[], Int32Array];
/** The sender's hub is closing. */
export type ByeFrame = readonly ["b"];
/** The node ids of every host the sender is linked to. */
export type NeighboursFrame = readonly ["n", readonly string[]];
/** Any frame. */
export type Frame = ByeFrame | HelloFrame | InterestFrame | MessageFrame | MessagesFrame | FlushFrame | SyncFrame | PeerFrame | NeighboursFrame | DropsFrame;

/**
 * Folds runs of message frames (`m` or `M`) on the same (scope, topic) into one `M` frame, so
 * a batch carries (and clones or encodes) each name once per run rather than once per message.
 */
export function foldMessages(batch: readonly Frame[]): Frame[] {
  const folded: Frame[] = [];
  for (let i = 0; i < batch.length; i++) {
    const frame = batch[i] as Frame;
    const next = batch[i + 1];
    if ((frame[0] !== "m" && frame[0] !== "M") || !continues(next, frame[1], frame[2], frame[4])) {
      folded.push(frame);
      continue;
    }
    const payloads: unknown[] = [];
    let j = i;
    for (let run = batch[j]; continues(run, frame[1], frame[2], frame[4]); run = batch[++j]) {
      if ((run as MessageFrame | MessagesFrame)[0] === "m") payloads.push((run as MessageFrame)[3]);
      else for (const payload of (run as MessagesFrame)[3]) payloads.push(payload);
    }
    folded.push(frame[4] === undefined ? ["M", frame[1], frame[2], payloads] : ["M", frame[1], frame[2], payloads, frame[4]]);
    i = j - 1;
  }
  return folded;
}

function continues(frame: Frame | undefined, scope: Scope, topic: Topic, hops: number | undefined): boolean {
  return frame !== undefined && (frame[0] === "m" || frame[0] === "M") && frame[1] === scope && frame[2] === topic && frame[4] === hops;
}
