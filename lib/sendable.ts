/**
 * What a message may be: the one definition that `publish`, structured clone (between threads)
 * and superjson (between processes and hosts) agree on, so that a message arrives as the same
 * value whatever path it takes — or is refused at `publish`, wherever its subscribers are.
 *
 * That is: strings, numbers (NaN, ±Infinity and -0 included), booleans, `null`, `undefined`,
 * bigints, and dense arrays, plain objects, `Map`s, `Set`s, valid `Date`s and `RegExp`s made of
 * them, cycles and shared references included, nested at most {@link MAX_DEPTH} levels.
 *
 * Refused, because one path or the other would change them or lose them (and with them, the
 * frames batched with them):
 * - functions, symbols, Proxies, `arguments` and module namespace objects (structured clone
 *   throws on them; superjson would turn the last two into plain objects);
 * - sparse arrays (a hole arrives as `undefined` in a thread, as `null` in another process) and
 *   arrays with named properties (kept by structured clone, dropped by superjson);
 * - objects with an own `__proto__`, `constructor` or `prototype` key (superjson refuses them
 *   as a prototype-pollution risk);
 * - instances of classes (Array, Map, Set and Date subclasses included), Errors, boxed
 *   primitives, Promises, URLs and binary values, which would lose their class or arrive not
 *   at all.
 *
 * What neither encoding carries is not part of a message, as with `JSON.stringify`: properties
 * keyed by symbols, non-enumerable properties, properties put on a Map, Set, Date or RegExp, a
 * RegExp's `lastIndex`, and a null prototype (such an object arrives as a plain object).
 * A getter is read, and its value sent.
 *
 * Values decoded from another process go through the same check (see `wire/codec.ts`), so a
 * subscriber never receives what `publish` would have refused.
 */
import { types } from "node:util";
import { RoarError } from "./errors.js";

/** The deepest nesting accepted: deeper values would overflow the stack of some decoder. */
export const MAX_DEPTH = 512;

/** How many objects the allocation-free first pass looks at before handing over to the exact walk. */
const QUICK_BUDGET = 256;
/** How deep the first pass goes: it keeps no ancestors, so a cycle shows up as depth. */
const QUICK_DEPTH = 32;
let budget = 0;

const ALLOWED =
  "a message may hold strings, numbers, booleans, null, undefined, bigints, and dense arrays, plain objects, Maps, Sets, Dates and RegExps of them";

/**
 * Throws `ERR_ROAR_UNSERIALIZABLE` unless `value` is a sendable message (see the module docs).
 *
 * Primitives cost one `typeof`. Objects get a first pass that allocates nothing but a copy of
 * each array's values, and is enough for the small, acyclic messages that make up most traffic;
 * a message it cannot vouch for (large, deep, cyclic or refused) is walked again exactly,
 * which also names the bad path and says what to send instead.
 */
export function assertSendable(value: unknown): void {
  if (typeof value !== "object" || value === null) {
    if (typeof value === "function" || typeof value === "symbol") reject("message", refusal(value));
    return;
  }
  budget = QUICK_BUDGET;
  if (!quick(value, 0)) walk(value, "message", new Set(), 0);
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
    const length = value.length;
    for (let i = 0; i < length; i++) {
      const item: unknown = value[i];
      // Only an undefined item can be a hole: the `in` lookup is paid for those alone.
      if (item === undefined ? !(i in value) : !quickValue(item, depth + 1)) return false;
    }
    // Dense, so it has exactly `length` indexed values: any other value is a named property's.
    // (Object.values copies the elements as they are; Object.keys would make a string of each index.)
    return Object.values(value).length === length;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype) {
    // An `arguments` object has an own `callee`; the exact test runs only for objects that have one.
    if ("callee" in value && types.isArgumentsObject(value)) return false;
  } else if (proto === null) {
    if (types.isModuleNamespaceObject(value)) return false;
  } else if (proto === Date.prototype) {
    return !Number.isNaN((value as Date).getTime());
  } else {
    return proto === RegExp.prototype;
  }
  for (const key in value) {
    if (isGuardedKey(key) || !quickValue((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}

/**
 * {@link assertSendable} for what `JSON.parse` made in this realm, which can hold only plain
 * objects, dense arrays and JSON's primitives: of the rules, only the guarded keys and the
 * depth can fail, so the walk checks those alone (a decoded payload costs one walk, not two).
 * @throws {@link RoarError} `ERR_ROAR_UNSERIALIZABLE`, as `assertSendable` would.
 */
export function assertSendableJson(value: unknown): void {
  if (typeof value === "object" && value !== null && !jsonQuick(value, 0)) assertSendable(value);
}

/** `true` when JSON data `value` is sendable; `false` sends the caller to the exact walk, which names what is not. */
function jsonQuick(value: object, depth: number): boolean {
  // JSON has no references: the depth bounds the walk, and no cycle can make it endless.
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) if (typeof item === "object" && item !== null && !jsonQuick(item, depth + 1)) return false;
    return true;
  }
  for (const key in value) {
    const item: unknown = (value as Record<string, unknown>)[key];
    if (isGuardedKey(key) || (typeof item === "object" && item !== null && !jsonQuick(item, depth + 1))) return false;
  }
  return true;
}

/** Keys superjson refuses to encode or decode (its prototype-pollution guard), so a message cannot hold them. */
function isGuardedKey(key: string): boolean {
  return key === "__proto__" || key === "constructor" || key === "prototype";
}

function reject(path: string, why: string): never {
  throw new RoarError("ERR_ROAR_UNSERIALIZABLE", `\`${path}\` is ${why}; ${ALLOWED}`);
}

function check(value: unknown, path: string, seen: Set<object>, depth: number): void {
  if (typeof value === "object" && value !== null) walk(value, path, seen, depth);
  else if (typeof value === "function" || typeof value === "symbol") reject(path, refusal(value));
}

/** The exact walk: visits each object once (shared references and cycles included). */
function walk(value: object, path: string, seen: Set<object>, depth: number): void {
  if (seen.has(value)) return;
  if (depth >= MAX_DEPTH) reject(path, `nested deeper than ${MAX_DEPTH} levels, which some decoders cannot read: flatten it`);
  if (types.isProxy(value)) reject(path, "a Proxy, which structured clone refuses: send its target, or a copy");
  seen.add(value);
  const next = depth + 1;
  if (Array.isArray(value)) {
    walkArray(value as unknown[], path, seen, next);
    return;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    if (types.isArgumentsObject(value)) {
      reject(path, "an `arguments` object, which structured clone refuses: pass `Array.from(arguments)` or `[...arguments]`");
    }
    if (types.isModuleNamespaceObject(value)) {
      reject(path, "a module namespace object, which structured clone refuses: copy it with `{ ...namespace }`");
    }
    for (const key of Object.keys(value)) {
      if (isGuardedKey(key)) {
        reject(path, `an object with an own \`${key}\` key, which superjson refuses as a prototype-pollution risk: rename the key`);
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
    if (Number.isNaN((value as Date).getTime())) reject(path, "an invalid Date, which superjson turns into null: send null, or a valid Date");
  } else if (proto !== RegExp.prototype) {
    reject(path, refusal(value));
  }
}

function walkArray(value: unknown[], path: string, seen: Set<object>, depth: number): void {
  if (Object.getPrototypeOf(value) !== Array.prototype) {
    reject(path, `an instance of ${className(value) ?? "a subclass of Array"}, which arrives as a plain Array: pass \`Array.from(value)\``);
  }
  const length = value.length;
  for (let i = 0; i < length; i++) {
    if (!(i in value)) {
      reject(
        path,
        `a sparse array (a hole at index ${i}), whose holes would arrive as undefined in another thread and as null in another process: ` +
          "fill the holes (`Array.from(array)` fills them with undefined), or send an object",
      );
    }
    check(value[i], `${path}[${i}]`, seen, depth);
  }
  const keys = Object.keys(value);
  if (keys.length !== length) {
    const named = keys.find((key, i) => key !== String(i));
    reject(
      path,
      `an array with a named property \`${named}\`, which would reach another thread but not another process: ` +
        `send an object that holds the array and the property, e.g. \`{ items: [...array], ${named}: array.${named} }\``,
    );
  }
}

/** Why a value of a type that is not part of a message is refused, and what to send instead. */
function refusal(value: unknown): string {
  if (typeof value === "function") return "a function, which cannot be sent: send data that says what to do";
  if (typeof value === "symbol") return `a symbol (${value.toString()}), which cannot be sent: send a string`;
  const object = value as object;
  if (types.isNativeError(object)) {
    return `an Error (${className(object) ?? "Error"}), which would lose its class and stack: send a plain object such as \`{ name, message }\``;
  }
  if (types.isArrayBufferView(object) || types.isAnyArrayBuffer(object)) {
    return `binary data (${className(object) ?? "a buffer"}), which is not supported yet: send an array of numbers or a base64 string`;
  }
  if (types.isBoxedPrimitive(object)) return `a boxed primitive (${className(object) ?? "object"}): send the primitive, \`value.valueOf()\``;
  if (types.isPromise(object)) return "a Promise, which cannot be sent: await it and send its value";
  if (object instanceof URL) return "a URL, which would arrive as a plain object: send `url.href`";
  const name = className(object);
  if (name === undefined) {
    return "an object whose prototype is not Object.prototype (made by `Object.create(proto)`, or in another realm), whose inherited properties would be lost: copy it into a plain object";
  }
  const base = [Map, Set, Date, RegExp].find((builtin) => object instanceof builtin);
  if (base !== undefined) return `an instance of ${name}, a subclass of ${base.name}, which would arrive as a plain ${base.name}: send a plain ${base.name}`;
  return `an instance of class ${name}, which would arrive as a plain object or not at all: send a plain object (\`{ ...value }\`, say) and rebuild the instance where it arrives`;
}

/** The name of the class that made `value`, read without running any getter; `undefined` if none. */
function className(value: object): string | undefined {
  const proto: unknown = Object.getPrototypeOf(value);
  if (typeof proto !== "object" || proto === null) return undefined;
  const ctor: unknown = Object.getOwnPropertyDescriptor(proto, "constructor")?.value;
  return typeof ctor === "function" && ctor.name !== "" ? ctor.name : undefined;
}
