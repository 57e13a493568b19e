// Browser tests of the demos (clients/js/demo/): Debian's Chromium, headless, driven by
// playwright-core, against a real `wsengine hub --static clients/js` per test (demo
// configuration: anonymous clients, open HTTP API) on a free port of 127.0.0.1.
//
//   node --test test/browser/            (from clients/js; ci.sh runs it)
//
// Environment: CHROMIUM (default /usr/bin/chromium), WSENGINE_BIN (the hub, see
// ../support/hub.js), WSENGINE_SCREENSHOTS (where the screenshots go, default
// <repo>/target/screenshots; a relative path is taken from the repository's root, so
// `WSENGINE_SCREENSHOTS=docs/images` refreshes the committed ones).
//
// Every wait is bounded; the pages are read through their DOM (the data attributes the demos
// keep for that: #status[data-state], #items li[data-done], canvas[data-points-*], ...).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import { chromium } from "playwright-core";

import { repoRoot, startHub, waitFor } from "../support/hub.js";

const run = promisify(execFile);

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STATIC_DIR = path.join(repoRoot, "clients", "js");
const DEMO_DIR = path.join(STATIC_DIR, "demo");
const SCREENSHOTS = path.resolve(repoRoot, process.env.WSENGINE_SCREENSHOTS || path.join("target", "screenshots"));
const VIEWPORT = { width: 1000, height: 700 };
/** How long one expected change may take to show in a page. */
const STEP = 10_000;
/** How long a page may take to reconnect to a restarted hub (backoff included). */
const RECONNECT = 25_000;
const TEST = { timeout: 60_000 };
/** For markers on elements that may be empty (hidden): attached is enough. */
const ATTACHED = { state: "attached" };

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // CI runs as root, where Chromium's sandbox cannot start.
    args: ["--no-sandbox"],
    timeout: 30_000,
  });
});

after(async () => {
  await browser?.close();
});

/** A hub serving clients/js, stopped after the test. */
function hub(t) {
  return startHub({ args: ["--static", STATIC_DIR], t });
}

/**
 * Opens `pathname` in a new browser context (its own storage: another "browser"), or in
 * `context` when given, and waits until the page says it is connected. Uncaught errors of the
 * page are collected in `page.errors` (checked by `noErrors`).
 */
async function open(t, server, pathname, { context } = {}) {
  if (!context) {
    context = await browser.newContext({ viewport: VIEWPORT });
    t.after(() => context.close());
  }
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(`${pathname}: ${error.message}`));
  await page.goto(server.httpUrl + pathname);
  await page.waitForSelector('#status[data-state="connected"]');
  return page;
}

function noErrors(pages) {
  assert.deepEqual(pages.flatMap((page) => page.errors), [], "uncaught errors in the pages");
}

async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `demo-${name}.png`), animations: "disabled" });
}

// --- Chat ------------------------------------------------------------------------------------

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

function messages(page) {
  return page.$$eval("#messages li.msg", (lines) =>
    lines.map((li) => ({ name: li.dataset.name, client: li.dataset.client, text: li.querySelector(".text").textContent })),
  );
}

function online(page) {
  return page.$$eval("#online li", (lines) =>
    lines.map((li) => ({ client: li.dataset.client, name: li.dataset.name, me: li.classList.contains("me") })),
  );
}

function clientId(page) {
  return page.getAttribute("#status", "data-client");
}

async function waitForMessage(page, name, text, what) {
  await waitFor(
    async () => (await messages(page)).some((m) => m.name === name && m.text === text),
    STEP,
    what ?? `"${name}: ${text}" in the chat`,
  );
}

test("chat: two browsers see each other's messages and each other online", TEST, async (t) => {
  const server = await hub(t);
  const alice = await open(t, server, "/demo/chat.html?name=alice#lobby");
  const bob = await open(t, server, "/demo/chat.html?name=bob#lobby");
  for (const page of [alice, bob]) await page.waitForSelector('#messages[data-ready="true"]', ATTACHED);

  await say(alice, "hello from alice");
  await say(bob, "hi alice, bob here");
  const markup = '<b>not bold</b> & <img src="x" onerror="window.pwned = 1">';
  await say(alice, markup);

  await waitForMessage(bob, "alice", "hello from alice", "alice's message in bob's page");
  await waitForMessage(alice, "bob", "hi alice, bob here", "bob's message in alice's page");
  // Each sees its own message too, and the messages carry the sender's client id.
  await waitForMessage(alice, "alice", "hello from alice");
  const [aliceId, bobId] = [await clientId(alice), await clientId(bob)];
  assert.ok(aliceId && bobId && aliceId !== bobId);
  const fromAlice = (await messages(bob)).find((m) => m.text === "hello from alice");
  assert.equal(fromAlice.client, aliceId);

  // User content is text, never markup.
  await waitForMessage(bob, "alice", markup, "the message with markup, as text");
  assert.equal(await bob.$$eval("#messages li.msg .text *", (nodes) => nodes.length), 0);
  assert.equal(await bob.evaluate(() => window.pwned), undefined);

  // Who is online: the other one, by name and client id (and oneself, marked).
  await waitFor(
    async () => (await online(alice)).some((o) => o.name === "bob" && o.client === bobId && !o.me),
    STEP,
    "bob online in alice's page",
  );
  await waitFor(
    async () => (await online(bob)).some((o) => o.name === "alice" && o.client === aliceId && !o.me),
    STEP,
    "alice online in bob's page",
  );
  assert.ok((await online(alice)).some((o) => o.client === aliceId && o.me));
  // The "joined" line shown before bob's name was known now carries it.
  await waitFor(
    async () => (await alice.$$eval("#messages li.system", (lines) => lines.map((li) => li.textContent))).includes("bob joined"),
    STEP,
    '"bob joined" in alice\'s page',
  );

  // Leaving: bob closes his page, alice's list drops him.
  await bob.close();
  await waitFor(async () => !(await online(alice)).some((o) => o.client === bobId), STEP, "bob gone from alice's page");
  await say(alice, "bye bob");
  await waitForMessage(alice, "alice", "bye bob");

  // The screenshot: a conversation of two, as alice sees it (bob back under a new id).
  const bob2 = await open(t, server, "/demo/chat.html?name=bob#lobby");
  await waitFor(async () => (await online(alice)).some((o) => o.name === "bob"), STEP, "bob back online");
  await say(bob2, "back again");
  await waitForMessage(alice, "bob", "back again");
  await screenshot(alice, "chat");
  noErrors([alice, bob2]);
});

// --- Notifications ---------------------------------------------------------------------------

test("notifications: a publish through the HTTP API shows a toast, and so does the page's curl command", TEST, async (t) => {
  const server = await hub(t);
  const page = await open(t, server, "/demo/notifications.html");
  await page.waitForSelector('body[data-subscribed~="notify:all"]', ATTACHED);

  await server.publish("notify:all", { title: "Deploy", body: "v2 is live", level: "success" });
  const toast = page.locator('#toasts .toast[data-level="success"]');
  await toast.waitFor();
  assert.equal(await toast.locator(".title").textContent(), "Deploy");
  assert.equal(await toast.locator(".body").textContent(), "v2 is live");

  // The "how to send one" box holds a command that works as shown.
  const command = await page.textContent("#curl");
  assert.equal(
    command,
    `curl -X POST ${server.httpUrl}/api/publish -d '{"channel":"notify:all","payload":{"title":"Deploy","body":"v2 is live"}}'`,
  );
  await run("bash", ["-c", command], { timeout: 10_000 });
  await waitFor(async () => (await page.locator("#toasts .toast").count()) === 2, STEP, "the second toast");
  assert.equal(await page.locator('#toasts .toast[data-level="info"] .body').textContent(), "v2 is live");
  assert.equal(await page.locator("#recent li").count(), 2);

  // A warning, for the picture.
  await server.publish("notify:all", { title: "Disk almost full", body: "node-3: 91% used", level: "warning" });
  await waitFor(async () => (await page.locator("#toasts .toast").count()) === 3, STEP, "the third toast");
  await screenshot(page, "notifications");
  noErrors([page]);
});

// --- Dashboard -------------------------------------------------------------------------------

function points(page, chart, series) {
  return page.$eval(`#${chart}`, (canvas, key) => Number(canvas.getAttribute(`data-points-${key}`) || 0), series);
}

test("dashboard: the hub's series and the script's series get new points", TEST, async (t) => {
  const server = await hub(t);
  const page = await open(t, server, "/demo/dashboard.html");
  await page.waitForSelector('body[data-subscribed="metrics:demo"]', ATTACHED);

  // /metrics every second: three more points in about three seconds.
  const before = await points(page, "hub-chart", "connections");
  const started = Date.now();
  await waitFor(async () => (await points(page, "hub-chart", "connections")) >= before + 3, 8_000, "3 new hub points");
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1_500, `3 points came in ${elapsed} ms: not one a second`);
  assert.ok((await points(page, "hub-chart", "deliveries")) >= 2, "the rate series (from the second sample)");
  // The page is one of the hub's connections.
  assert.ok(Number(await page.textContent("#tile-connections")) >= 1);

  // The script's series: one point per publication on metrics:demo.
  const series = await points(page, "series-chart", "value");
  for (let i = 1; i <= 3; i++) {
    await server.publish("metrics:demo", { value: 10 * i });
    await waitFor(async () => (await points(page, "series-chart", "value")) === series + i, STEP, `series point ${i}`);
  }
  assert.equal(await page.textContent("#tile-series"), "30");
  // The publications show in the hub's rate.
  await waitFor(async () => Number(await page.textContent("#tile-publications")) > 0, 5_000, "publications/s > 0");

  // The script itself (bounded by its count argument), for a few seconds.
  const script = path.join(DEMO_DIR, "publish-series.sh");
  const { stdout } = await run("bash", [script, "8"], {
    timeout: 20_000,
    env: { ...process.env, HUB: server.httpUrl, INTERVAL: "0.4" },
  });
  assert.match(stdout, /sent 8 of 8 values/);
  await waitFor(async () => (await points(page, "series-chart", "value")) === series + 11, STEP, "the script's 8 points");
  // The hub's series went on meanwhile.
  assert.ok((await points(page, "hub-chart", "connections")) >= before + 5);
  await screenshot(page, "dashboard");
  noErrors([page]);
});

// --- List ------------------------------------------------------------------------------------

function items(page) {
  return page.$$eval("#items li", (lines) =>
    lines.map((li) => ({ text: li.querySelector(".text").textContent, done: li.dataset.done === "true" })),
  );
}

async function add(page, text) {
  await page.fill("#new-item", text);
  await page.press("#new-item", "Enter");
}

function row(page, text) {
  return page.locator("#items li").filter({ has: page.locator(".text", { hasText: new RegExp(`^${text}$`) }) });
}

/** Waits until every page shows the same list and `check(list)` holds; returns the list. */
async function converged(pages, check, what, timeout = STEP) {
  let last = [];
  try {
    return await waitFor(
      async () => {
        const lists = await Promise.all(pages.map(items));
        last = lists;
        const first = JSON.stringify(lists[0]);
        return lists.every((list) => JSON.stringify(list) === first) && check(lists[0]) ? lists[0] : false;
      },
      timeout,
      what,
    );
  } catch (error) {
    error.message += `; the pages show: ${last.map((list) => JSON.stringify(asSet(list))).join(" | ")}`;
    throw error;
  }
}

const asSet = (list) => list.map((item) => `${item.text}:${item.done}`).sort();

test("list: three browsers edit one list and converge; a late fourth shows the same list", TEST, async (t) => {
  const server = await hub(t);
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await open(t, server, "/demo/list.html"));
  for (const page of pages) await page.waitForSelector('#items[data-ready="true"]', ATTACHED);
  const [a, b, c] = pages;

  await Promise.all([add(a, "milk"), add(b, "eggs"), add(c, "bread")]);
  await converged(pages, (list) => list.length === 3, "3 items everywhere");

  // Concurrent changes of different kinds.
  await Promise.all([row(a, "eggs").locator('input[type="checkbox"]').click(), row(b, "bread").locator("button").click(), add(c, "butter")]);
  await converged(
    pages,
    (list) => JSON.stringify(asSet(list)) === JSON.stringify(["butter:false", "eggs:true", "milk:false"]),
    "eggs ticked, bread removed, butter added, everywhere",
  );

  // More, faster than the round trip: every page applies the same changes in the same order.
  // (One action at a time per page: two concurrent Playwright actions on one page can
  // interleave, e.g. a click stealing the focus in the middle of a fill.)
  await Promise.all([
    (async () => {
      await add(a, "apples");
      await row(a, "eggs").locator('input[type="checkbox"]').click();
    })(),
    add(b, "pears"),
    row(c, "milk").locator('input[type="checkbox"]').click(),
  ]);
  const final = await converged(pages, (l) => l.length === 5 && !l.find((i) => i.text === "eggs").done, "5 items everywhere");
  assert.deepEqual(asSet(final), ["apples:false", "butter:false", "eggs:false", "milk:true", "pears:false"]);

  // A late joiner rebuilds the list from history.
  const late = await open(t, server, "/demo/list.html");
  await late.waitForSelector('#items[data-ready="true"]', ATTACHED);
  await converged([late, a], (l) => l.length === 5, "the late joiner's list");
  assert.deepEqual(await items(late), final);
  await screenshot(late, "list");
  noErrors([...pages, late]);
});

test("list: a late joiner rebuilds a list longer than the channel's history (snapshots)", TEST, async (t) => {
  const server = await hub(t);
  const writer = await open(t, server, "/demo/list.html#long");
  await writer.waitForSelector('#items[data-ready="true"]', ATTACHED);
  const total = 120;
  for (let i = 1; i <= total; i++) await add(writer, `item ${String(i).padStart(3, "0")}`);
  await waitFor(async () => (await items(writer)).length === total, 20_000, `${total} items in the writer's page`);
  await row(writer, "item 007").locator('input[type="checkbox"]').click();
  await row(writer, "item 001").locator("button").click();
  await waitFor(async () => (await items(writer)).length === total - 1, STEP, "the removal");
  await waitFor(async () => (await items(writer)).find((i) => i.text === "item 007").done, STEP, "the tick");

  // The hub kept only the newest 100 publications (demo configuration): the first adds are
  // gone from history, so only a snapshot can bring those items back.
  const history = await server.history("list:long");
  assert.ok(history.offset > 100 && history.publications.length <= 100 && history.publications[0].offset > 1, JSON.stringify(history).slice(0, 300));
  assert.ok(history.publications.some((p) => p.payload.type === "snapshot"), "a snapshot in history");

  const late = await open(t, server, "/demo/list.html#long");
  await late.waitForSelector('#items[data-ready="true"]', ATTACHED);
  await converged([writer, late], (l) => l.length === total - 1, "the late joiner's long list");
  const list = await items(late);
  assert.equal(list[0].text, "item 002");
  assert.ok(list.find((i) => i.text === "item 007").done);
  noErrors([writer, late]);
});

// --- Reconnect -------------------------------------------------------------------------------

test("reconnect: pages show reconnecting while the hub restarts, then catch up", TEST, async (t) => {
  const server = await hub(t);
  const chat = await open(t, server, "/demo/chat.html?name=carol#lobby");
  const lists = [await open(t, server, "/demo/list.html#groceries"), await open(t, server, "/demo/list.html#groceries")];
  const pages = [chat, ...lists];
  await chat.waitForSelector('#messages[data-ready="true"]', ATTACHED);
  for (const page of lists) await page.waitForSelector('#items[data-ready="true"]', ATTACHED);

  await say(chat, "before the restart");
  await waitForMessage(chat, "carol", "before the restart");
  await add(lists[0], "flour");
  await add(lists[1], "sugar");
  await converged(lists, (l) => l.length === 2, "2 items before the restart");

  // The hub goes away (SIGKILL: no close frame, the pages see 1006) and stays away until every
  // page shows that it is reconnecting; then it comes back on the same port. The memory
  // engine's history is gone with it.
  await server.kill();
  for (const page of pages) {
    await page.waitForSelector('#status[data-state="reconnecting"]', { timeout: RECONNECT });
    assert.match(await page.textContent("#status"), /^reconnecting/);
  }
  await server.restart();
  for (const page of pages) {
    await page.waitForFunction(
      () => {
        const status = document.querySelector("#status");
        return status.dataset.state === "connected" && Number(status.dataset.connects) >= 2;
      },
      null,
      { timeout: RECONNECT },
    );
  }

  // Chat: a message published after the restart arrives (live or from the new history), and
  // the page says that the old history is gone.
  await server.publish("chat:lobby", { name: "ops", text: "the hub is back" });
  await waitForMessage(chat, "ops", "the hub is back");
  assert.ok((await messages(chat)).some((m) => m.text === "before the restart"), "the old messages stay on screen");
  assert.ok((await chat.locator("#messages li.divider").count()) >= 1, "a line marks the lost history");

  // List: the restarted hub has an empty history; the pages republish their list and converge,
  // changes go on, and a new page gets the whole list.
  await converged(lists, (l) => JSON.stringify(asSet(l)) === JSON.stringify(["flour:false", "sugar:false"]), "the list after the restart");
  await waitFor(
    async () => (await server.history("list:groceries")).publications.some((p) => p.payload.type === "snapshot"),
    STEP,
    "a snapshot republished to the new stream",
  );
  await add(lists[1], "eggs");
  await row(lists[0], "flour").locator('input[type="checkbox"]').click();
  await converged(lists, (l) => JSON.stringify(asSet(l)) === JSON.stringify(["eggs:false", "flour:true", "sugar:false"]), "changes after the restart");
  const late = await open(t, server, "/demo/list.html#groceries");
  await late.waitForSelector('#items[data-ready="true"]', ATTACHED);
  await converged([...lists, late], (l) => l.length === 3, "a new page after the restart");
  noErrors([...pages, late]);
});

// --- Shared connection (SharedWorker) --------------------------------------------------------
//
// The client's `sharedWorker` option: demo/shared.html is two independent parts, each with
// its own HubClient({sharedWorker: true}) and subscription; two tabs of one browser context
// share one WebSocket to the hub.

async function hubConnections(server) {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  return Number(/^wsengine_hub_connections (\d+)/m.exec(text)[1]);
}

function logTexts(page, part) {
  return page.$$eval(`#${part}-log li`, (lines) => lines.map((li) => li.textContent));
}

test(
  "shared worker: two tabs, two parts each, one WebSocket; each part gets its own channel",
  { ...TEST, skip: existsSync(path.join(STATIC_DIR, "wsengine-hub-worker.js")) ? false : "no wsengine-hub-worker.js yet" },
  async (t) => {
    const server = await hub(t);
    const context = await browser.newContext({ viewport: VIEWPORT });
    t.after(() => context.close());
    const tabs = [];
    for (let i = 0; i < 2; i++) {
      const page = await context.newPage();
      page.setDefaultTimeout(STEP);
      page.errors = [];
      page.on("pageerror", (error) => page.errors.push(`shared.html: ${error.message}`));
      await page.goto(`${server.httpUrl}/demo/shared.html`);
      for (const part of ["a", "b"]) await page.waitForSelector(`#${part}-log[data-subscribed="true"]`, ATTACHED);
      tabs.push(page);
    }
    // The first tab's parts saw the shared connection come up.
    for (const part of ["a", "b"]) await tabs[0].waitForSelector(`#${part}-status[data-state="connected"]`);
    assert.equal(await hubConnections(server), 1, "one WebSocket for two tabs of two parts");

    await server.publish("chat:lobby", { name: "test", text: "to part A" });
    await server.publish("notify:all", { title: "to part B" });
    for (const page of tabs) {
      await waitFor(async () => (await logTexts(page, "a")).includes("test: to part A"), STEP, "part A's publication");
      await waitFor(async () => (await logTexts(page, "b")).includes("to part B"), STEP, "part B's publication");
    }
    for (const page of tabs) {
      assert.deepEqual(await logTexts(page, "a"), ["test: to part A"]);
      assert.deepEqual(await logTexts(page, "b"), ["to part B"]);
    }
    assert.equal(await hubConnections(server), 1);
    noErrors(tabs);

    // A part that joins a shared connection already up is connected too, and its status
    // says so (the worker sends it the `connected` event the others had).
    for (const part of ["a", "b"]) {
      await tabs[1].waitForSelector(`#${part}-status[data-state="connected"]`, { timeout: 2_000 });
    }
  },
);
