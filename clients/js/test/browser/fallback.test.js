// The fallback transports in the browser (headless Chromium, as demos.test.js): the chat demo
// with WebSocket removed before the page's scripts run (init script) chats over SSE; with
// EventSource removed as well, over long polling; behind an HTTP proxy that refuses the
// WebSocket upgrade it falls back by itself, and the tab remembers the transport.
//
//   node --test test/browser/fallback.test.js      (from clients/js; WSENGINE_BIN, CHROMIUM)

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { startUpgradeRefusingProxy } from "../support/http-proxy.js";
import { repoRoot, startHub, startProxy, waitFor } from "../support/hub.js";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STATIC_DIR = path.join(repoRoot, "clients", "js");
const STEP = 15_000;
const TEST = { timeout: 90_000 };

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], timeout: 30_000 });
});
after(async () => {
  await browser?.close();
});

const NO_WEBSOCKET = () => {
  delete window.WebSocket;
  window.WebSocket = undefined;
};
const NO_WEBSOCKET_NO_EVENTSOURCE = () => {
  delete window.WebSocket;
  window.WebSocket = undefined;
  delete window.EventSource;
  window.EventSource = undefined;
};

async function open(t, baseUrl, pathname, { initScript, context } = {}) {
  if (!context) {
    context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    t.after(() => context.close());
  }
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  page.setDefaultTimeout(STEP);
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(`${pathname}: ${error.message}`));
  await page.goto(baseUrl + pathname);
  await page.waitForSelector('#status[data-state="connected"]');
  await page.waitForSelector('#messages[data-ready="true"]', { state: "attached" });
  return page;
}

const transportOf = (page) => page.getAttribute("#status", "data-transport");

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

function messages(page) {
  return page.$$eval("#messages li.msg", (lines) =>
    lines.map((li) => ({ name: li.dataset.name, text: li.querySelector(".text").textContent })),
  );
}

async function waitForMessage(page, name, text) {
  await waitFor(async () => (await messages(page)).some((m) => m.name === name && m.text === text), STEP, `"${name}: ${text}"`);
}

function online(page) {
  return page.$$eval("#online li", (lines) => lines.map((li) => li.dataset.name));
}

async function chatBothWays(fallback, websocket) {
  await say(fallback, "hello from the fallback");
  await say(websocket, "hello from the websocket");
  await waitForMessage(websocket, "carol", "hello from the fallback");
  await waitForMessage(fallback, "dave", "hello from the websocket");
  await waitForMessage(fallback, "carol", "hello from the fallback");
  await waitFor(async () => (await online(fallback)).includes("dave"), STEP, "dave online in carol's page");
  await waitFor(async () => (await online(websocket)).includes("carol"), STEP, "carol online in dave's page");
}

test("chat without WebSocket: SSE", TEST, async (t) => {
  const hub = await startHub({ args: ["--static", STATIC_DIR], t });
  const carol = await open(t, hub.httpUrl, "/demo/chat.html?name=carol#lobby", { initScript: NO_WEBSOCKET });
  const dave = await open(t, hub.httpUrl, "/demo/chat.html?name=dave#lobby");
  assert.equal(await transportOf(carol), "sse");
  assert.equal(await transportOf(dave), "websocket");
  assert.match(await carol.textContent("#status"), /SSE/);
  await chatBothWays(carol, dave);
  // Closing the page ends the session at once (pagehide): carol leaves dave's list.
  await carol.close({ runBeforeUnload: true });
  await waitFor(async () => !(await online(dave)).includes("carol"), STEP, "carol gone from dave's page");
  assert.deepEqual([...carol.errors, ...dave.errors], []);
});

test("chat without WebSocket and EventSource: long polling", TEST, async (t) => {
  const hub = await startHub({ args: ["--static", STATIC_DIR], t });
  const carol = await open(t, hub.httpUrl, "/demo/chat.html?name=carol#lobby", { initScript: NO_WEBSOCKET_NO_EVENTSOURCE });
  const dave = await open(t, hub.httpUrl, "/demo/chat.html?name=dave#lobby");
  assert.equal(await transportOf(carol), "long-polling");
  assert.match(await carol.textContent("#status"), /long polling/);
  await chatBothWays(carol, dave);
  assert.deepEqual([...carol.errors, ...dave.errors], []);
});

test("behind a proxy that refuses the upgrade: falls back by itself, and the tab remembers", TEST, async (t) => {
  const hub = await startHub({ args: ["--static", STATIC_DIR], t });
  const proxy = await startUpgradeRefusingProxy(hub.port, { t });
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  t.after(() => context.close());
  const carol = await open(t, proxy.httpUrl, "/demo/chat.html?name=carol#lobby", { context });
  const dave = await open(t, hub.httpUrl, "/demo/chat.html?name=dave#lobby");
  assert.equal(await transportOf(carol), "sse");
  assert.equal(proxy.upgradesRefused, 2, "fallbackAfter (2) refused upgrades, then SSE");
  await chatBothWays(carol, dave);
  const saved = await carol.evaluate((key) => sessionStorage.getItem(key), `wsengine-hub.transport:${proxy.httpUrl}`);
  assert.equal(JSON.parse(saved).transport, "sse");
  // A reload in the same tab starts from SSE: no upgrade is tried (within websocketRetryAfter).
  await carol.reload();
  await carol.waitForSelector('#status[data-state="connected"]');
  assert.equal(await transportOf(carol), "sse");
  assert.equal(proxy.upgradesRefused, 2);
  assert.deepEqual([...carol.errors, ...dave.errors], []);
});

test("SSE stream cut: the browser's EventSource resumes with Last-Event-ID, nothing missed", TEST, async (t) => {
  const hub = await startHub({ args: ["--static", STATIC_DIR], t });
  const proxy = await startProxy(hub.port, { t });
  // WebSocket removed; EventSource counted (the resume must reuse the one EventSource).
  const initScript = () => {
    delete window.WebSocket;
    window.WebSocket = undefined;
    const Original = window.EventSource;
    window.eventSources = 0;
    window.EventSource = class extends Original {
      constructor(...args) {
        super(...args);
        window.eventSources += 1;
      }
    };
  };
  const carol = await open(t, `http://127.0.0.1:${proxy.port}`, "/demo/chat.html?name=carol#lobby", { initScript });
  assert.equal(await transportOf(carol), "sse");
  const clientBefore = await carol.getAttribute("#status", "data-client");
  await hub.publish("chat:lobby", { name: "server", text: "before the cut" });
  await waitForMessage(carol, "server", "before the cut");
  // Every connection through the proxy is cut: the browser's EventSource reconnects by itself
  // (after its retry delay); meanwhile two messages are published.
  const lastIds = [];
  carol.on("request", async (request) => {
    if (request.url().includes("/sse")) lastIds.push((await request.allHeaders())["last-event-id"] ?? "");
  });
  proxy.cutAll();
  await hub.publish("chat:lobby", { name: "server", text: "during the cut 1" });
  await hub.publish("chat:lobby", { name: "server", text: "during the cut 2" });
  await carol.waitForFunction(() => Number(document.querySelector("#status").dataset.connects) >= 2, null, { timeout: 20_000 });
  await waitForMessage(carol, "server", "during the cut 1");
  await waitForMessage(carol, "server", "during the cut 2");
  assert.notEqual(await carol.getAttribute("#status", "data-client"), clientBefore, "a new session");
  assert.equal(await carol.evaluate(() => window.eventSources), 1, "the browser's EventSource reconnected by itself");
  assert.ok(lastIds.some((id) => id.includes(":chat:lobby")), `Last-Event-ID sent: ${JSON.stringify(lastIds)}`);
  const texts = (await messages(carol)).map((m) => m.text);
  assert.deepEqual(texts.filter((x) => x.startsWith("during the cut")), ["during the cut 1", "during the cut 2"], "each once");
  const dividers = await carol.$$eval("#messages li.divider", (lines) => lines.map((li) => li.textContent));
  assert.deepEqual(dividers, [], "recovered: no 'messages may be missing'");
  t.diagnostic(`Last-Event-ID of the SSE requests after the cut: ${JSON.stringify(lastIds)}`);
  await say(carol, "still here");
  await waitForMessage(carol, "carol", "still here");
  assert.deepEqual(carol.errors, []);
});
