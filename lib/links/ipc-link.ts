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
 * What the link holds is its outbox and what the pipe's handle still queues in user space
 * (libuv's `writeQueueSize`): what the kernel took is the neighbour's. Node runs no `send`
 * callback while a publisher's synchronous loop runs, even for a write the kernel took at
 * once, so counting callbacks would call every burst a slow consumer; the queue does not.
 * The queue is bounded in bytes only (`maxQueueBytes`): it holds whole batches as bytes, with
 * no cost per message, so a burst of small messages that fits in bytes is held whole.
 */
import type { Frame } from "../wire/frames.js";
import { isFrame } from "../wire/validate-frame.js";
import { Link, type LinkBounds } from "./link.js";

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

/** What roar reads of a pipe handle. */
interface PipeHandle {
  readonly writeQueueSize: number;
}

/**
 * The pipe handle behind an IPC channel (`process` or a `ChildProcess`). Node keeps it under
 * a symbol of its own (`process.channel` is a wrapper without the queue size); if a Node
 * release moves it, the link falls back to counting callbacks (see {@link IpcLink}).
 */
function pipeHandle(channel: IpcChannel): PipeHandle | undefined {
  const symbol = Object.getOwnPropertySymbols(channel).find((candidate) => candidate.description === "kChannelHandle");
  const handle: unknown = symbol === undefined ? undefined : (channel as unknown as Record<symbol, unknown>)[symbol];
  return typeof (handle as Partial<PipeHandle> | undefined)?.writeQueueSize === "number" ? (handle as PipeHandle) : undefined;
}

/** @internal */
export class IpcLink extends Link {
  readonly kind = "process";
  override readonly carries = "encoded";
  readonly #channel: IpcChannel;
  readonly #handle: PipeHandle | undefined;
  /** Frames handed to `send` whose callback has not run: for batching only (see Link.inFlight). */
  #inFlight = 0;
  /** The pid of the process at the far end, for labels. */
  readonly #pid: number | undefined;
  readonly #onMessage = (message: unknown): void => {
    if (isIpcMessage(message)) this.receiveBatch(message.frames, isFrame);
  };
  readonly #onGone = (): void => this.closed();

  constructor(channel: IpcChannel, bounds: LinkBounds) {
    super(bounds);
    this.#channel = channel;
    this.#handle = pipeHandle(channel);
    this.#pid = channel === (process as unknown) ? process.ppid : (channel as { pid?: number }).pid;
    channel.on("internalMessage", this.#onMessage);
    channel.on("disconnect", this.#onGone);
    channel.on("exit", this.#onGone);
  }

  /** Takes in a message that was emitted before this link listened. */
  receive(message: unknown): void {
    this.#onMessage(message);
  }

  get label(): string {
    const who = this.#channel === (process as unknown) ? "the parent process" : "the child process";
    return this.#pid === undefined ? who : `${who} (pid ${this.#pid})`;
  }

  protected write(batch: Frame[], frames: number): void {
    if (sendIpc(this.#channel, batch, () => (this.#inFlight -= frames))) this.#inFlight += frames;
  }

  protected inFlight(): number {
    return this.#inFlight;
  }

  protected heldMessages(): number {
    // Without the handle (a Node that moved it), the only measure left is what is unconfirmed.
    return this.#handle === undefined ? this.#inFlight : 0;
  }

  protected heldBytes(): number {
    return this.#handle?.writeQueueSize ?? 0;
  }

  protected detach(): void {
    this.#channel.off("internalMessage", this.#onMessage);
    this.#channel.off("disconnect", this.#onGone);
    this.#channel.off("exit", this.#onGone);
  }
}
