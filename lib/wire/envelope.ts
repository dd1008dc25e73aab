/**
 * Envelope: one published message on its way through a hub, holding the value, its
 * encoding, or both, each made at most once and only when a link or subscriber needs it.
 */
import type { Scope, Topic } from "../types.js";
import { decodePayload, encodePayload, type EncodedPayload } from "./codec.js";

const NONE: unique symbol = Symbol("none");

/** @internal */
export class Envelope {
  readonly scope: Scope;
  readonly topic: Topic;
  /** How many host links the message has crossed (see MAX_HOST_HOPS). */
  hops = 0;
  #value: unknown = NONE;
  #encoded: EncodedPayload | typeof NONE = NONE;

  private constructor(scope: Scope, topic: Topic) {
    this.scope = scope;
    this.topic = topic;
  }

  /** An envelope for a value published in, or structured-cloned into, this thread. */
  static ofValue(scope: Scope, topic: Topic, value: unknown): Envelope {
    const envelope = new Envelope(scope, topic);
    envelope.#value = value;
    return envelope;
  }

  /** An envelope for a payload that arrived encoded from another process. */
  static ofEncoded(scope: Scope, topic: Topic, encoded: EncodedPayload): Envelope {
    const envelope = new Envelope(scope, topic);
    envelope.#encoded = encoded;
    return envelope;
  }

  /**
   * The message value, decoded on first use.
   * @throws {@link RoarError} `ERR_ROAR_MALFORMED` when the payload cannot be decoded.
   */
  get value(): unknown {
    if (this.#value === NONE) this.#value = decodePayload(this.#encoded as EncodedPayload);
    return this.#value;
  }

  /** The superjson encoding, made on first use. */
  get encoded(): EncodedPayload {
    if (this.#encoded === NONE) this.#encoded = encodePayload(this.#value);
    return this.#encoded;
  }
}
