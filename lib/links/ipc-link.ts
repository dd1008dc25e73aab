/**
 * IpcLink: a link to another process over a Node IPC channel — a cluster worker or forked
 * child seen from its parent, or the parent seen from the child.
 *
 * Frames travel as Node *internal* messages (`cmd: "NODE_ROAR"`), the mechanism node:cluster
 * itself uses. They arrive as `internalMessage` events, so a user's own
 * `process.on("message")` and `worker.on("message")` listeners never see them, and listening
 * for them does not keep a process alive. Payloads travel superjson-encoded (`IpcLink.kind` is
 * `process`), which survives both of Node's IPC serializations.
 *
 * The bound counts frames handed to `send` whose callback has not fired: a neighbour that
 * stops reading fills the pipe, the callbacks stop, and the outbox stops growing.
 */
import type { Frame } from "../wire/frames.js";
import { isFrame } from "../wire/validate-frame.js";
import { Link } from "./link.js";

/** The `cmd` that marks roar's IPC messages. */
export const IPC_COMMAND = "NODE_ROAR";

/** What roar needs of an IPC channel: `process` in a child, a `ChildProcess` in the parent. */
export interface IpcChannel {
  send?(message: unknown, callback: (error: Error | null) => void): boolean;
  readonly connected: boolean;
  on(event: "internalMessage", listener: (message: unknown) => void): unknown;
  on(event: "disconnect" | "exit", listener: () => void): unknown;
  off(event: "internalMessage", listener: (message: unknown) => void): unknown;
  off(event: "disconnect" | "exit", listener: () => void): unknown;
}

interface IpcMessage {
  cmd: typeof IPC_COMMAND;
  frames: unknown;
}


function isIpcMessage(message: unknown): message is IpcMessage {
  return typeof message === "object" && message !== null && (message as { cmd?: unknown }).cmd === IPC_COMMAND;
}

/** Whether `message` is a roar IPC message that carries a hello. */
export function isHelloMessage(message: unknown): boolean {
  return isIpcMessage(message) && Array.isArray(message.frames) && message.frames.some((frame: unknown) => Array.isArray(frame) && frame[0] === "h");
}

/**
 * Sends frames on `channel` without a link; returns the number of frames handed over, and
 * calls `sent` when the channel took them. Failures (a closed channel) are not errors here:
 * the channel's 'disconnect' reports them.
 */
export function sendIpc(channel: IpcChannel, frames: readonly Frame[], sent?: () => void): boolean {
  if (!channel.connected || channel.send === undefined) return false;
  const message: IpcMessage = { cmd: IPC_COMMAND, frames };
  try {
    // With a callback, a failed send (EPIPE, ERR_IPC_CHANNEL_CLOSED while shutting down) is
    // reported there instead of being thrown or emitted as 'error'.
    channel.send(message, () => sent?.());
    return true;
  } catch {
    return false;
  }
}

/** @internal */
export class IpcLink extends Link {
  readonly kind = "process";
  readonly #channel: IpcChannel;
  #inFlight = 0;
  readonly #onMessage = (message: unknown): void => {
    if (isIpcMessage(message)) this.receiveBatch(message.frames, isFrame);
  };
  readonly #onGone = (): void => this.closed();

  constructor(channel: IpcChannel, maxQueue: number) {
    super(maxQueue);
    this.#channel = channel;
    channel.on("internalMessage", this.#onMessage);
    channel.on("disconnect", this.#onGone);
    channel.on("exit", this.#onGone);
  }

  /** Takes in a message that was emitted before this link listened. */
  receive(message: unknown): void {
    this.#onMessage(message);
  }

  protected write(batch: Frame[], frames: number): void {
    if (sendIpc(this.#channel, batch, () => (this.#inFlight -= frames))) this.#inFlight += frames;
  }

  protected inFlight(): number {
    return this.#inFlight;
  }

  protected detach(): void {
    this.#channel.off("internalMessage", this.#onMessage);
    this.#channel.off("disconnect", this.#onGone);
    this.#channel.off("exit", this.#onGone);
  }
}
