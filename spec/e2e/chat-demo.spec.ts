/**
 * End to end: the chat demo (`npm run demo`), compiled, run as a user runs it, and driven in
 * real headless Chromium (Debian's, through playwright-core). Needs `npm run build` first.
 *
 * Node's cluster hands each new connection to the next worker in turn, so which worker serves a
 * page's live feed is not ours to choose: the test opens pages (each in a browser context of its
 * own, so with connections of its own) until two are served by different workers, as each page
 * shows. Every wait is on an event or a selector, none is a fixed sleep.
 */
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { get, type IncomingMessage } from "node:http";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { httpRequest, startDemo, TIMEOUT, type Demo } from "./demo-process.js";

const WORKERS = 2;
const CHROMIUM = {
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  timeout: TIMEOUT,
};

interface ChatPage {
  context: BrowserContext;
  page: Page;
  /** The worker serving the page's live feed, as the page shows it. */
  worker: string;
  /** Every URL the page asked for. */
  requests: string[];
}

async function openPage(browser: Browser, url: URL): Promise<ChatPage> {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const requests: string[] = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(url.href);
  const status = page.locator('#status[data-state="connected"]');
  await status.waitFor();
  const worker = await status.getAttribute("data-worker");
  expect(worker).toMatch(/^\d+$/);
  expect(await status.textContent()).toContain(`connected to worker ${worker}`);
  return { context, page, worker: worker!, requests };
}

/** Fills the page's form and sends it; resolves with the id and the publishing worker the page shows. */
async function send({ page }: ChatPage, name: string, text: string): Promise<{ id: string; publishedBy: string }> {
  const result = page.locator("#result");
  const before = await result.getAttribute("data-id");
  await page.fill("#name", name);
  await page.fill("#text", text);
  await page.click("#post button");
  // The page sets data-id once the server accepted the message, data-state="error" if it did not.
  const accepted = before === null ? "#result[data-id]" : `#result[data-id]:not([data-id="${before}"])`;
  await page.locator(`${accepted}, #result[data-state="error"]`).waitFor();
  expect({ error: await result.getAttribute("data-state"), shown: await result.textContent() }).toEqual({ error: null, shown: expect.stringMatching(/^sent: worker \d+ published it$/) });
  return { id: (await result.getAttribute("data-id"))!, publishedBy: (await result.getAttribute("data-worker"))! };
}

/** Waits for message `id` in the page's feed and checks what the page shows of it. */
async function expectInFeed(chat: ChatPage, id: string, { name, text, publishedBy }: { name: string; text: string; publishedBy: string }): Promise<void> {
  const item = chat.page.locator(`#feed li.message[data-id="${id}"]`);
  await item.waitFor();
  expect(await item.locator(".name").textContent()).toBe(name);
  expect(await item.locator(".text").textContent()).toBe(text);
  expect(await item.getAttribute("data-published-by")).toBe(publishedBy);
  expect(await item.getAttribute("data-delivered-by")).toBe(chat.worker);
  expect(await item.locator(".meta").textContent()).toContain(`published by worker ${publishedBy} · delivered by worker ${chat.worker}`);
}

describe("the chat demo", () => {
  let demo: Demo | undefined;
  let browser: Browser | undefined;
  /** Two pages whose live feeds are served by different workers. */
  let pages: [ChatPage, ChatPage];

  beforeAll(async () => {
    [demo, browser] = await Promise.all([startDemo({ workers: WORKERS }), chromium.launch(CHROMIUM)]);
    const byWorker = new Map<string, ChatPage>();
    const tried: string[] = [];
    for (let attempt = 0; attempt < 20 && byWorker.size < 2; attempt++) {
      const chat = await openPage(browser, demo.url);
      tried.push(chat.worker);
      if (byWorker.has(chat.worker)) {
        await chat.context.close();
        // Moves the cluster's turn on by one connection, in case each page takes an even number.
        await httpRequest(new URL("/", demo.url));
      } else {
        byWorker.set(chat.worker, chat);
      }
    }
    if (byWorker.size < 2) throw new Error(`every page's live feed was served by the same worker (${tried.join(", ")})`);
    pages = [...byWorker.values()] as [ChatPage, ChatPage];
  }, 4 * TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await demo?.kill();
  }, TIMEOUT);

  it("serves a page that loads nothing from elsewhere and shows which worker serves its live feed", async () => {
    const [a, b] = pages;
    expect(a.worker).not.toBe(b.worker);
    for (const { requests } of pages) {
      expect(requests.length).toBeGreaterThan(0);
      for (const url of requests) expect(new URL(url).origin).toBe(demo!.url.origin);
    }
    const answer = await httpRequest(demo!.url);
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toMatch(/^text\/html/);
    expect(answer.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(answer.body).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it("shows a message posted on one page on a page whose feed another worker serves, and the other way round", async () => {
    const [a, b] = pages;

    const first = { name: "Ada", text: `hello from the page on worker ${a.worker} (${Date.now()})` };
    const sent = await send(a, first.name, first.text);
    await expectInFeed(b, sent.id, { ...first, publishedBy: sent.publishedBy });
    await expectInFeed(a, sent.id, { ...first, publishedBy: sent.publishedBy });

    const reply = { name: "Grace", text: `and back from the page on worker ${b.worker} <b>not bold</b>` };
    const replied = await send(b, reply.name, reply.text);
    await expectInFeed(a, replied.id, { ...reply, publishedBy: replied.publishedBy });
    await expectInFeed(b, replied.id, { ...reply, publishedBy: replied.publishedBy });
    expect(await a.page.locator("#feed b").count()).toBe(0); // text, not markup
  });

  it("shows on every page the messages every worker published", async () => {
    // Each POST on a connection of its own, until each worker has published at least one.
    const published = new Map<string, { id: string; text: string; publishedBy: string }>();
    const workers = new Set<string>();
    for (let i = 0; i < 20 && workers.size < WORKERS; i++) {
      const text = `posted over HTTP, #${i}`;
      const answer = await httpRequest(new URL("/messages", demo!.url), {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ name: "curl", text }),
      });
      expect(answer.status).toBe(202);
      const { id, publishedBy } = JSON.parse(answer.body) as { id: string; publishedBy: { worker: number; pid: number } };
      published.set(id, { id, text, publishedBy: String(publishedBy.worker) });
      workers.add(String(publishedBy.worker));
    }
    expect(workers.size).toBe(WORKERS);
    for (const chat of pages) {
      for (const { id, text, publishedBy } of published.values()) await expectInFeed(chat, id, { name: "curl", text, publishedBy });
    }
  });

  it("answers bad input with a clear error and publishes nothing", async () => {
    const url = new URL("/messages", demo!.url);
    const post = (body: string | Buffer, type = "application/json") =>
      httpRequest(url, { method: "POST", headers: { "content-type": type, accept: "application/json" }, body });
    const error = (body: string): string => (JSON.parse(body) as { error: string }).error;

    // Every text that could show up carries "BAD INPUT".
    const cases: [string | Buffer, string, number, RegExp][] = [
      [JSON.stringify({ text: "" }), "application/json", 400, /"text" must not be empty/],
      [JSON.stringify({ text: "   " }), "application/json", 400, /"text" must not be empty/],
      [JSON.stringify({ name: "BAD INPUT" }), "application/json", 400, /"text" is required/],
      [JSON.stringify({ text: 42 }), "application/json", 400, /"text" is required and must be a string/],
      [JSON.stringify({ text: "BAD INPUT ".repeat(50) + "!" }), "application/json", 400, /"text" must be at most 500 characters/],
      [JSON.stringify({ text: "BAD INPUT\nin two lines" }), "application/json", 400, /control characters or line breaks/],
      [JSON.stringify({ text: "BAD INPUT", name: ["x"] }), "application/json", 400, /"name" must be a string/],
      [JSON.stringify({ text: "BAD INPUT", name: "n".repeat(41) }), "application/json", 400, /"name" must be at most 40 characters/],
      [JSON.stringify(["BAD INPUT"]), "application/json", 400, /must be a JSON object/],
      ['{"text": "BAD INPUT"', "application/json", 400, /not valid JSON/],
      [Buffer.from('{"text": "BAD INPUT \xff"}', "latin1"), "application/json", 400, /not valid UTF-8/],
      ["text=", "application/x-www-form-urlencoded", 400, /"text" must not be empty/],
      ["BAD INPUT", "text/plain", 415, /application\/json/],
      [JSON.stringify({ text: "BAD INPUT ".repeat(500) }), "application/json", 413, /at most 4096 bytes/],
    ];
    for (const [body, type, status, message] of cases) {
      const answer = await post(body, type);
      const what = `${type} ${String(body).slice(0, 50)}`;
      expect({ what, status: answer.status }).toEqual({ what, status });
      expect(answer.headers["content-type"]).toMatch(/^application\/json/);
      expect(error(answer.body)).toMatch(message);
    }
    expect((await httpRequest(url)).status).toBe(405);
    expect((await httpRequest(new URL("/nowhere", demo!.url))).status).toBe(404);

    // Nothing of the above was published. (Each bad POST was answered before the markers were
    // sent, and a publish happens before its answer, so anything published would very likely
    // be in the feeds by the time both markers are.)
    const markers = [await send(pages[0], "marker", "after the bad input"), await send(pages[1], "marker", "after the bad input, too")];
    for (const chat of pages) for (const marker of markers) await chat.page.locator(`#feed li[data-id="${marker.id}"]`).waitFor();
    for (const chat of pages) {
      const shown = await chat.page.locator("#feed li.message").allTextContents();
      expect(shown.filter((text) => text.includes("BAD INPUT"))).toEqual([]);
    }
  });

  it("stops on Ctrl-C: the pages are told, and the demo exits with code 0 without errors", async () => {
    demo!.signal("SIGINT", "group"); // what Ctrl-C in a terminal does
    for (const { page } of pages) await page.locator('#status[data-state="disconnected"]').waitFor();
    expect(await demo!.exit()).toEqual({ code: 0, signal: null });
    expect(demo!.stderr).toBe("");
    expect(demo!.stdout).toMatch(/stopping…\nstopped\n$/);
  });
});

describe("the chat demo, signalled alone", () => {
  it("ends its streams, stops its workers and exits with code 0 on SIGTERM to the primary", async () => {
    const demo = await startDemo({ workers: WORKERS });
    try {
      // A live stream, so that a worker has something to end.
      const stream = await new Promise<IncomingMessage>((resolve, reject) => {
        get(new URL("/events", demo.url), { agent: false }, resolve).on("error", reject);
      });
      let text = "";
      const hello = new Promise<void>((resolve) => {
        stream.setEncoding("utf8").on("data", (chunk: string) => {
          text += chunk;
          if (text.includes("event: hello\n")) resolve();
        });
      });
      const ended = new Promise<void>((resolve) => stream.on("close", resolve));
      await hello;

      demo.signal("SIGTERM", "primary");
      await ended;
      expect(text).toMatch(/event: bye\ndata: \{"worker":\d+\}\n\n$/);
      expect(await demo.exit()).toEqual({ code: 0, signal: null });
      expect(demo.stderr).toBe("");
      expect(demo.stdout).toMatch(/stopping…\nstopped\n$/);
    } finally {
      await demo.kill();
    }
  }, 4 * TIMEOUT);
});
