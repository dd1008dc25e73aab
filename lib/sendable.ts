/**
 * What a message may be: the values that superjson (between processes and hosts) and
 * structured clone (between threads) both carry so that they arrive as themselves.
 *
 * That is: strings, numbers (NaN, ±Infinity and -0 included), booleans, `null`, `undefined`,
 * bigints, and arrays, plain objects, `Map`s, `Set`s, `Date`s and `RegExp`s made of them,
 * cycles and shared references included (an object may not have its own `__proto__`,
 * `constructor` or `prototype` key, and a Date must be valid). Properties keyed by symbols are
 * not part of a message: like JSON, both encodings leave them out. Anything else (functions, symbols, class instances,
 * errors, buffers, promises, Proxies, Array subclasses) would arrive changed or not at all, so `publish` refuses it with
 * `ERR_ROAR_UNSERIALIZABLE` wherever the subscribers are: a message that works in one thread
 * works across hosts.
 */
import { types } from "node:util";
import { RoarError, describe } from "./errors.js";

/** The deepest nesting accepted: deeper values would overflow the stack of some decoder. */
export const MAX_DEPTH = 512;

/** How many objects the allocation-free first pass looks at before handing over to the exact walk. */
const QUICK_BUDGET = 256;
/** How deep the first pass goes: it keeps no ancestors, so a cycle shows up as depth. */
const QUICK_DEPTH = 32;
let budget = 0;

/**
 * Throws `ERR_ROAR_UNSERIALIZABLE` unless `value` is a sendable message (see the module docs).
 *
 * Primitives cost one `typeof`. Objects get a first pass that allocates nothing and is enough
 * for the small, acyclic messages that make up most traffic; a message it cannot vouch for
 * (large, deep, cyclic or refused) is walked again exactly, which also names the bad path.
 */
export function assertSendable(value: unknown): void {
  if (typeof value !== "object" || value === null) {
    if (typeof value === "function" || typeof value === "symbol") reject("message", value);
    return;
  }
  budget = QUICK_BUDGET;
  if (!quick(value, 0)) walk(value, "message", new Set());
}

function quickValue(value: unknown, depth: number): boolean {
  if (typeof value === "object") return value === null || quick(value, depth);
  return typeof value !== "function" && typeof value !== "symbol";
}

/** `true` when `value` is surely sendable; `false` when unsure. */
function quick(value: object, depth: number): boolean {
  // A Proxy looks like its target to every check below, but structured clone refuses it.
  if (--budget < 0 || depth >= QUICK_DEPTH || types.isProxy(value)) return false;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    for (let i = 0; i < value.length; i++) if (!quickValue(value[i], depth + 1)) return false;
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    for (const key in value) {
      if (isGuardedKey(key) || !quickValue((value as Record<string, unknown>)[key], depth + 1)) return false;
    }
    return true;
  }
  if (proto === Date.prototype) return !Number.isNaN((value as Date).getTime());
  return proto === RegExp.prototype;
}

/** Keys superjson refuses to decode (its prototype-pollution guard), so a message cannot hold them. */
function isGuardedKey(key: string): boolean {
  return key === "__proto__" || key === "constructor" || key === "prototype";
}

function reject(path: string, value: unknown, why = "which cannot be sent"): never {
  throw new RoarError(
    "ERR_ROAR_UNSERIALIZABLE",
    `\`${path}\` is ${describe(value)}, ${why}; a message may hold strings, numbers, booleans, null, ` +
      "undefined, bigints, and arrays, plain objects, Maps, Sets, Dates and RegExps of them",
  );
}

function check(value: unknown, path: string, seen: Set<object>, depth: number): void {
  if (typeof value === "object" && value !== null) walk(value, path, seen, depth);
  else if (typeof value === "function" || typeof value === "symbol") reject(path, value);
}

/** The exact walk: visits each object once (shared references and cycles included). */
function walk(value: object, path: string, seen: Set<object>, depth = 0): void {
  if (seen.has(value)) return;
  if (depth >= MAX_DEPTH) reject(path, value, `nested deeper than ${MAX_DEPTH} levels`);
  if (types.isProxy(value)) reject(path, value, "a Proxy, which structured clone refuses");
  seen.add(value);
  const next = depth + 1;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) reject(path, value, "an instance of an Array subclass, which arrives as a plain Array");
    for (let i = 0; i < value.length; i++) check(value[i], `${path}[${i}]`, seen, next);
    return;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    for (const key of Object.keys(value)) {
      if (isGuardedKey(key)) {
        reject(path, value, `an object with an own \`${key}\` key, which superjson refuses as a prototype-pollution risk`);
      }
      check((value as Record<string, unknown>)[key], `${path}.${key}`, seen, next);
    }
  } else if (proto === Map.prototype) {
    let i = 0;
    for (const [key, entry] of value as Map<unknown, unknown>) {
      check(key, `${path}<key ${i}>`, seen, next);
      check(entry, `${path}<value ${i}>`, seen, next);
      i++;
    }
  } else if (proto === Set.prototype) {
    let i = 0;
    for (const entry of value as Set<unknown>) check(entry, `${path}<entry ${i++}>`, seen, next);
  } else if (proto === Date.prototype) {
    if (Number.isNaN((value as Date).getTime())) reject(path, value, "an invalid Date, which arrives as null");
  } else if (proto !== RegExp.prototype) {
    reject(path, value);
  }
}
