/**
 * Checks frames that arrive from another process: their shape is untrusted until proven.
 * Nothing here allocates for a good frame, and nothing a frame holds is merged into an object,
 * so no input can reach a prototype.
 */
import { MessagePort } from "node:worker_threads";
import { MAX_NAME_LENGTH } from "../errors.js";
import { DROP_TOTALS, MAX_MISSING, type Frame } from "./frames.js";

function isName(value: unknown): value is string {
  return typeof value === "string" && value.length !== 0 && value.length <= MAX_NAME_LENGTH;
}

function isId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isHops(value: unknown): boolean {
  return value === undefined || (Number.isSafeInteger(value) && (value as number) >= 0);
}

function isInterestList(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  for (const key of value) {
    if (!Array.isArray(key) || key.length < 2 || !isName(key[0]) || !isName(key[1])) return false;
  }
  return true;
}

/** The longest node id accepted. */
export const MAX_NODE_LENGTH = 256;

/** Whether `value` is a node id. */
export function isNode(value: unknown): value is string {
  return typeof value === "string" && value.length !== 0 && value.length <= MAX_NODE_LENGTH;
}

function isNodeList(value: unknown): boolean {
  if (!Array.isArray(value)) return false;
  for (const node of value) if (!isNode(node)) return false;
  return true;
}

function isBounds(value: unknown): boolean {
  return Array.isArray(value) && value.length >= 2 && Number.isSafeInteger(value[0]) && value[0] >= 1 && Number.isSafeInteger(value[1]) && value[1] >= 1;
}

/** Totals of a drop report: a few non-negative safe integers. */
function isDropTotals(value: unknown): boolean {
  if (!Array.isArray(value) || value.length < DROP_TOTALS || value.length > 64) return false;
  for (const total of value) if (!Number.isSafeInteger(total) || (total as number) < 0) return false;
  return true;
}

/** Names of what did not answer a flush or sync: a few short strings. */
function isMissingList(value: unknown): boolean {
  if (!Array.isArray(value) || value.length > MAX_MISSING) return false;
  for (const name of value) if (typeof name !== "string" || name.length > MAX_NODE_LENGTH) return false;
  return true;
}

/**
 * Whether `value` is a well-formed frame. Frames may carry extra trailing fields from newer
 * versions; they are ignored.
 */
export function isFrame(value: unknown): value is Frame {
  if (!Array.isArray(value)) return false;
  switch (value[0]) {
    case "m":
      return value.length >= 4 && isName(value[1]) && isName(value[2]) && isHops(value[4]);
    case "M":
      return value.length >= 4 && isName(value[1]) && isName(value[2]) && Array.isArray(value[3]) && value[3].length !== 0 && isHops(value[4]);
    case "i":
      return value.length >= 4 && isName(value[1]) && isName(value[2]) && (value[3] === 0 || value[3] === 1);
    case "b":
      return true;
    case "n":
      return value.length >= 2 && isNodeList(value[1]);
    case "s":
      return value.length >= 2 && isId(value[1]) && isHops(value[2]);
    case "f":
      return value.length >= 2 && isId(value[1]);
    case "F":
    case "S":
      return value.length >= 2 && isId(value[1]) && (value[2] === undefined || isMissingList(value[2]));
    case "d":
      return value.length >= 2 && isDropTotals(value[1]);
    case "p":
      return (
        value.length >= 6 &&
        (value[1] === 0 || value[1] === 1) &&
        value[2] instanceof MessagePort &&
        value[3] instanceof Int32Array &&
        isInterestList(value[4]) &&
        value[5] instanceof Int32Array
      );
    case "h":
      return (
        value.length >= 5 &&
        isId(value[1]) &&
        typeof value[2] === "string" &&
        value[2].length <= MAX_NODE_LENGTH &&
        (value[3] === 0 || value[3] === 1) &&
        isInterestList(value[4]) &&
        (value[5] === undefined || value[5] === 0 || value[5] === 1) &&
        (value[6] === undefined || isBounds(value[6]))
      );
    default:
      return false;
  }
}
