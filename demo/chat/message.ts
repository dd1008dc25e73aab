/**
 * What a chat message is, and how a POST body becomes one: the validation the HTTP layer does
 * before anything is published.
 */

/** A message as it travels through roar (superjson carries the `Date` as a `Date`). */
export interface ChatMessage {
  /** A random id, so a page can tell its own message in the feed. */
  id: string;
  name: string;
  text: string;
  at: Date;
  /** The cluster worker that took the POST and published the message. */
  worker: number;
  pid: number;
}

export const LIMITS = {
  /** The largest POST body accepted, in bytes. */
  body: 4096,
  /** The longest message text, in characters. */
  text: 500,
  /** The longest name, in characters. */
  name: 40,
} as const;

export type Parsed =
  | { ok: true; name: string; text: string }
  | { ok: false; status: 400 | 415; error: string };

// C0 and C1 controls (newlines included): the feed is one line per message, and the primary
// prints messages to a terminal.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Validates a POST /messages body of the given Content-Type. */
export function parseMessage(contentType: string | undefined, body: string): Parsed {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  let fields: { name?: unknown; text?: unknown };
  if (type === "application/json") {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return { ok: false, status: 400, error: "the body is not valid JSON" };
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return { ok: false, status: 400, error: 'the body must be a JSON object such as {"name": "Ada", "text": "hello"}' };
    }
    fields = value as { name?: unknown; text?: unknown };
  } else if (type === "application/x-www-form-urlencoded") {
    const form = new URLSearchParams(body);
    fields = { name: form.get("name") ?? undefined, text: form.get("text") ?? undefined };
  } else {
    return { ok: false, status: 415, error: "send application/json or application/x-www-form-urlencoded" };
  }

  if (typeof fields.text !== "string") return { ok: false, status: 400, error: '"text" is required and must be a string' };
  const text = fields.text.trim();
  if (text.length === 0) return { ok: false, status: 400, error: '"text" must not be empty' };
  if ([...text].length > LIMITS.text) return { ok: false, status: 400, error: `"text" must be at most ${LIMITS.text} characters` };
  if (CONTROL.test(text)) return { ok: false, status: 400, error: '"text" must not contain control characters or line breaks' };

  if (fields.name !== undefined && fields.name !== null && typeof fields.name !== "string") {
    return { ok: false, status: 400, error: '"name" must be a string' };
  }
  const name = (fields.name ?? "").trim() || "anonymous";
  if ([...name].length > LIMITS.name) return { ok: false, status: 400, error: `"name" must be at most ${LIMITS.name} characters` };
  if (CONTROL.test(name)) return { ok: false, status: 400, error: '"name" must not contain control characters' };

  return { ok: true, name, text };
}
