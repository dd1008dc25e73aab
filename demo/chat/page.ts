/**
 * The demo's one web page: a live feed over Server-Sent Events and a form that posts to it.
 * No external resources; the inline style and script carry the response's CSP nonce.
 */
import { LIMITS } from "./message.js";

export interface PageInfo {
  /** A fresh random nonce, also sent in the Content-Security-Policy header. */
  nonce: string;
  /** The cluster worker serving this page. */
  worker: number;
  pid: number;
}

const STYLE = `
  :root { color-scheme: light dark; --accent: #c2410c; --muted: #6b7280; --line: #d1d5db55; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.45 system-ui, sans-serif; display: flex; flex-direction: column; height: 100vh; }
  header, form { padding: 0.75rem 1rem; }
  header { border-bottom: 1px solid var(--line); }
  h1 { margin: 0; font-size: 1.25rem; }
  h1 span { color: var(--accent); }
  #status { margin: 0.25rem 0 0; font-weight: 600; }
  #status[data-state="connected"] { color: #15803d; }
  #status[data-state="disconnected"] { color: #b91c1c; }
  .hint, .meta { color: var(--muted); font-size: 0.8rem; }
  .hint { margin: 0.25rem 0 0; }
  main { flex: 1; overflow-y: auto; padding: 0 1rem; }
  #feed { list-style: none; margin: 0; padding: 0.5rem 0; }
  #feed li { padding: 0.35rem 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
  #feed li.note { color: var(--muted); font-style: italic; }
  .name { font-weight: 600; margin-right: 0.4rem; }
  .meta { display: block; }
  form { display: flex; flex-wrap: wrap; gap: 0.5rem; border-top: 1px solid var(--line); }
  input { font: inherit; padding: 0.4rem 0.5rem; border: 1px solid var(--line); border-radius: 0.3rem; }
  #name { width: 9rem; }
  #text { flex: 1; min-width: 12rem; }
  button { font: inherit; padding: 0.4rem 1rem; border: 0; border-radius: 0.3rem; background: var(--accent); color: white; cursor: pointer; }
  button:disabled { opacity: 0.6; }
  #result { flex-basis: 100%; font-size: 0.8rem; color: var(--muted); min-height: 1.2em; }
  #result[data-state="error"] { color: #b91c1c; }
`;

// Runs in the browser. Everything user-supplied goes in through textContent.
const SCRIPT = `
  const $ = (id) => document.getElementById(id);
  const status = $("status"), feed = $("feed"), form = $("post"), nameInput = $("name"),
    textInput = $("text"), button = form.querySelector("button"), result = $("result");
  const MAX_ITEMS = 200;

  nameInput.value = localStorage.getItem("roar-chat-name") ?? "";

  function setStatus(state, text, worker) {
    status.dataset.state = state;
    if (worker === undefined) delete status.dataset.worker; else status.dataset.worker = String(worker);
    status.textContent = text;
  }

  function append(li) {
    const main = feed.parentElement;
    const atBottom = main.scrollHeight - main.scrollTop - main.clientHeight < 40;
    feed.append(li);
    while (feed.children.length > MAX_ITEMS) feed.firstElementChild.remove();
    if (atBottom) main.scrollTop = main.scrollHeight;
  }

  function note(text) {
    const li = document.createElement("li");
    li.className = "note";
    li.textContent = text;
    append(li);
  }

  function show(message) {
    const li = document.createElement("li");
    li.className = "message";
    li.dataset.id = message.id;
    li.dataset.publishedBy = String(message.worker);
    li.dataset.deliveredBy = String(message.deliveredBy);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = message.name;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = "published by worker " + message.worker + " · delivered by worker " +
      message.deliveredBy + " · " + new Date(message.at).toLocaleTimeString();
    li.append(name, text, meta);
    append(li);
  }

  let retry;
  function connect() {
    clearTimeout(retry);
    setStatus("connecting", "connecting…");
    const events = new EventSource("/events");
    events.addEventListener("hello", (event) => {
      const hello = JSON.parse(event.data);
      setStatus("connected", "connected to worker " + hello.worker + " (pid " + hello.pid + ")", hello.worker);
    });
    events.addEventListener("chat", (event) => show(JSON.parse(event.data)));
    events.addEventListener("gap", (event) => {
      note(JSON.parse(event.data).missed + " message(s) missed: this page fell behind");
    });
    events.addEventListener("bye", (event) => {
      setStatus("disconnected", "worker " + JSON.parse(event.data).worker + " is stopping — reconnecting…");
    });
    events.addEventListener("error", () => {
      setStatus("disconnected", "disconnected — reconnecting…");
      // The browser reconnects by itself, except after an HTTP error (a stopping server's 503).
      if (events.readyState === EventSource.CLOSED) retry = setTimeout(connect, 2000);
    });
  }
  connect();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textInput.value.trim();
    if (text === "") return;
    button.disabled = true;
    delete result.dataset.state;
    try {
      const response = await fetch("/messages", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ name: nameInput.value, text }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        localStorage.setItem("roar-chat-name", nameInput.value);
        textInput.value = "";
        result.dataset.id = body.id;
        result.dataset.worker = String(body.publishedBy.worker);
        result.textContent = "sent: worker " + body.publishedBy.worker + " published it";
      } else {
        result.dataset.state = "error";
        result.textContent = body.error ?? "the server answered " + response.status;
      }
    } catch (error) {
      result.dataset.state = "error";
      result.textContent = "could not send: " + error.message;
    } finally {
      button.disabled = false;
      textInput.focus();
    }
  });
`;

export function renderPage({ nonce, worker, pid }: PageInfo): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>roar chat</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header>
  <h1><span>roar</span> chat</h1>
  <p id="status" data-state="connecting" role="status">connecting…</p>
  <p class="hint">This page came from worker ${worker} (pid ${pid}). Its live feed comes from whichever worker
  the cluster handed that connection to, and a message sent here is published by whichever worker takes the
  POST: roar carries it to every page, whatever worker serves it. Open more tabs to see.</p>
</header>
<main>
  <ol id="feed" aria-live="polite"></ol>
</main>
<form id="post" method="post" action="/messages">
  <input id="name" name="name" maxlength="${LIMITS.name}" placeholder="your name" autocomplete="nickname" aria-label="name">
  <input id="text" name="text" maxlength="${LIMITS.text}" placeholder="say something" autocomplete="off" required aria-label="message">
  <button type="submit">Send</button>
  <output id="result" for="text"></output>
</form>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}
