// The fallback transports (HUB-PROTOCOL.md, "Fallback transports: SSE and long polling") of
// wsengine-hub.js against a real `wsengine hub` (test/support/hub.js: WSENGINE_BIN).
// Node 20 has fetch but no EventSource: SSE runs over test/support/eventsource.js (a
// test-only EventSource over node:http that sends Last-Event-ID when it reconnects).
// Run: cd clients/js && node --test test/fallback.test.js

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import WebSocket from "ws";

import { HubClient, HubError, channelsOfEventId, httpBaseOf } from "../wsengine-hub.js";
import { TestEventSource } from "./support/eventsource.js";
import { startUpgradeRefusingProxy } from "./support/http-proxy.js";
import { hs256Token, nowSeconds, sleep, startHub, startProxy, waitFor } from "./support/hub.js";

const SECRET = "test-jwt-secret";
const FALLBACKS = ["sse", "long-polling"];

/** A WebSocket constructor whose sockets never open (as behind a proxy that breaks the upgrade). */
class FailingWebSocket {
  static opened = 0;
  constructor() {
    FailingWebSocket.opened += 1;
    this.readyState = 0;
    setTimeout(() => {
      this.readyState = 3;
      this.onerror?.({ type: "error" });
      this.onclose?.({ code: 1006, reason: "" });
    }, 5);
  }
  send() {
    throw new Error("not open");
  }
  close() {}
}

function newClient(t, options) {
  const { autoConnect = true, ...rest } = options;
  const client = new HubClient({
    WebSocket,
    EventSource: TestEventSource,
    minReconnectDelay: 100,
    maxReconnectDelay: 400,
    ...rest,
    autoConnect: false,
  });
  const events = [];
  for (const type of ["connecting", "connected", "disconnected", "error", "transport"]) {
    client.on(type, (event) => events.push({ type, at: Date.now(), ...event }));
  }
  t.after(() => client.disconnect());
  if (autoConnect) client.connect();
  return { client, events, of: (type) => events.filter((e) => e.type === type) };
}

async function connected(c, timeoutMs = 8000, count = 1) {
  await waitFor(() => c.of("connected").length >= count && c.client.state === "connected", timeoutMs, `connected #${count}`);
  return c.of("connected")[count - 1];
}

const isHubError = (code) => (error) => {
  assert.ok(error instanceof HubError, `expected a HubError ${code}, got ${error && error.stack}`);
  assert.equal(error.code, code, `expected code ${code}, got ${error.code}: ${error.message}`);
  return true;
};

function collect(client, channel, handlers = {}) {
  const received = [];
  const subscribed = [];
  const sub = client.subscribe(channel, {
    onPublication: (p) => received.push(p),
    onSubscribed: (c) => subscribed.push(c),
    ...handlers,
  });
  return { sub, received, subscribed };
}

describe("helpers", () => {
  test("httpBaseOf and channelsOfEventId", () => {
    assert.equal(httpBaseOf("ws://127.0.0.1:8000/ws"), "http://127.0.0.1:8000");
    assert.equal(httpBaseOf("wss://example.com/ws"), "https://example.com");
    assert.equal(httpBaseOf("wss://example.com/hub/ws"), "https://example.com/hub");
    assert.deepEqual(channelsOfEventId(""), []);
    assert.deepEqual(channelsOfEventId("12:8f3a:chat:lobby,3:c1d2:news"), ["chat:lobby", "news"]);
  });

  test("a transport the runtime lacks is skipped; none at all throws", () => {
    const c = new HubClient({ url: "ws://127.0.0.1:9/ws", autoConnect: false, transports: ["sse", "long-polling"] });
    assert.equal(c.transport, "long-polling"); // Node 20: no EventSource
    assert.throws(
      () => new HubClient({ url: "ws://127.0.0.1:9/ws", autoConnect: false, transports: ["websocket"] }),
      TypeError,
    );
    assert.throws(() => new HubClient({ url: "ws://127.0.0.1:9/ws", autoConnect: false, transports: ["carrier-pigeon"] }), TypeError);
  });
});

for (const transport of FALLBACKS) {
  describe(`over ${transport}`, () => {
    test("connect, subscribe, publish, history, presence, join/leave, unsubscribe", { timeout: 30000 }, async (t) => {
      const hub = await startHub({ t });
      const a = newClient(t, { url: hub.wsUrl, transports: [transport], name: "alice" });
      const b = newClient(t, { url: hub.wsUrl, transports: ["websocket"], name: "bob" });
      const up = await connected(a);
      await connected(b);
      assert.equal(up.transport, transport);
      assert.equal(a.client.transport, transport);
      assert.ok(a.client.clientId);

      const joins = [];
      const leaves = [];
      const sa = collect(a.client, "chat:room", { onJoin: (info) => joins.push(info), onLeave: (info) => leaves.push(info) });
      const ctx = await sa.sub.ready();
      assert.equal(ctx.offset, 0);
      const sb = collect(b.client, "chat:room");
      await sb.sub.ready();
      await waitFor(() => joins.length === 1, 5000, "join over the fallback");
      assert.equal(joins[0].name, "bob");

      // Several requests at once: batched into POSTs, answered in order.
      const results = await Promise.all([1, 2, 3, 4, 5].map((n) => a.client.publish("chat:room", { n })));
      assert.deepEqual(results.map((r) => r.offset), [1, 2, 3, 4, 5]);
      await b.client.publish("chat:room", { n: 6 });
      await waitFor(() => sa.received.length === 6 && sb.received.length === 6, 5000, "6 publications on both");
      assert.deepEqual(sa.received.map((p) => p.payload.n), [1, 2, 3, 4, 5, 6]);
      assert.equal(sa.received[5].info.name, "bob");

      const history = await a.client.history("chat:room", { limit: 2 });
      assert.deepEqual(history.publications.map((p) => p.offset), [5, 6]);
      const presence = await a.client.presence("chat:room");
      assert.deepEqual(presence.clients.map((c) => c.name).sort(), ["alice", "bob"]);

      await assert.rejects(a.client.publish("bad name!", 1), isHubError("bad_request"));
      await sb.sub.unsubscribe();
      b.client.disconnect();
      await waitFor(() => leaves.length === 1, 5000, "leave over the fallback");

      await sa.sub.unsubscribe();
      a.client.disconnect();
      assert.equal(a.client.state, "closed");
      // disconnect() closed the session: its presence is gone at once (not after session_timeout).
      const c = newClient(t, { url: hub.wsUrl, transports: ["websocket"] });
      await connected(c);
      const s = collect(c.client, "chat:room");
      await s.sub.ready();
      await waitFor(async () => (await c.client.presence("chat:room")).clients.length === 1, 5000, "alice gone from presence");
    });

    test("recovery after a forced reconnect (the network blocked, then back)", { timeout: 40000 }, async (t) => {
      const hub = await startHub({ t, apiKey: "k", args: ["--allow-anonymous"] });
      const proxy = await startProxy(hub.port, { t });
      const c = newClient(t, { url: proxy.wsUrl, transports: [transport], pollTimeout: 2 });
      await connected(c);
      const s = collect(c.client, "news");
      await s.sub.ready();
      await hub.publish("news", { n: 1 });
      await waitFor(() => s.received.length === 1, 5000, "first publication");

      proxy.block(true);
      proxy.cutAll();
      await waitFor(() => c.client.state !== "connected", 10000, "the client notices");
      for (let n = 2; n <= 4; n++) await hub.publish("news", { n });
      proxy.block(false);
      await connected(c, 15000, 2);
      await waitFor(() => s.received.length === 4, 8000, "recovered publications");
      await hub.publish("news", { n: 5 });
      await waitFor(() => s.received.length === 5, 5000, "the live one after");
      assert.deepEqual(s.received.map((p) => p.payload.n), [1, 2, 3, 4, 5]);
      assert.deepEqual(s.received.map((p) => p.offset), [1, 2, 3, 4, 5]);
      const last = s.subscribed.at(-1);
      assert.equal(last.resubscribed, true);
      assert.equal(last.recovered, true);
    });

    test("auth: a token, an expired token (4002: a new one at once), a bad one (4001: stops)", { timeout: 30000 }, async (t) => {
      const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
      const good = hs256Token(SECRET, { sub: "alice", exp: nowSeconds() + 3600 });
      const ok = newClient(t, { url: hub.wsUrl, transports: [transport], token: good });
      assert.equal((await connected(ok)).user, "alice");

      const expired = hs256Token(SECRET, { sub: "bob", exp: nowSeconds() - 10 });
      let calls = 0;
      const renewed = newClient(t, {
        url: hub.wsUrl,
        transports: [transport],
        getToken: () => (++calls === 1 ? expired : hs256Token(SECRET, { sub: "bob", exp: nowSeconds() + 3600 })),
      });
      assert.equal((await connected(renewed)).user, "bob");
      assert.equal(renewed.of("disconnected")[0].code, 4002);
      assert.equal(renewed.client.transport, transport, "a 4002 does not make the client fall back");

      const bad = newClient(t, { url: hub.wsUrl, transports: [transport], token: "not.a.token" });
      await waitFor(() => bad.of("disconnected").length >= 1, 8000, "4001");
      const d = bad.of("disconnected")[0];
      assert.equal(d.code, 4001);
      assert.equal(d.willRetry, false);
      assert.equal(bad.client.state, "closed");
    });

    test("tokens that expire every ~2 s are refreshed over the session, without a reconnect", { timeout: 20000 }, async (t) => {
      const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
      let issued = 0;
      const getToken = async () => {
        issued += 1;
        return hs256Token(SECRET, { sub: "bob", exp: nowSeconds() + 2 });
      };
      const c = newClient(t, { url: hub.wsUrl, transports: [transport], getToken });
      assert.equal((await connected(c)).user, "bob");
      const s = collect(c.client, "t");
      await s.sub.ready();
      for (let i = 0; i < 12; i++) {
        await c.client.publish("t", { i });
        await sleep(400);
      }
      await waitFor(() => s.received.length === 12, 5000, "12 publications");
      assert.deepEqual(c.of("disconnected"), [], "no reconnect: the tokens were refreshed in time");
      assert.ok(issued >= 4, `getToken called ${issued} times`);
    });

    test("limits: the publish rate (limit_exceeded) and a message over max_message_size", { timeout: 30000 }, async (t) => {
      const hub = await startHub({ t, config: "[limits]\npublish_rate = 3\nmax_message_size = 2048\n[auth]\nallow_anonymous = true\n" });
      const c = newClient(t, { url: hub.wsUrl, transports: [transport] });
      await connected(c);
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, n) => c.client.publish("rate", { n })));
      const refused = results.filter((r) => r.status === "rejected");
      assert.ok(refused.length >= 5, `only ${refused.length} of 10 refused`);
      for (const r of refused) isHubError("limit_exceeded")(r.reason);
      assert.equal(c.client.state, "connected");

      await sleep(1500); // the rate's bucket refills
      const big = c.client.publish("rate", "x".repeat(10000)); // over max_message_size + the hub's 4096 bytes of body slack
      await assert.rejects(big, (e) => e instanceof HubError && ["disconnected", "timeout"].includes(e.code));
      await waitFor(() => c.of("disconnected").some((d) => d.code === 1009), 8000, "closed with 1009");
    });
  });
}

describe("long polling", () => {
  test("a poll answer lost with its connection is asked for again (same seq): nothing lost, no reconnect", { timeout: 30000 }, async (t) => {
    const hub = await startHub({ t, apiKey: "k", args: ["--allow-anonymous"] });
    const proxy = await startUpgradeRefusingProxy(hub.port, { t });
    const c = newClient(t, { url: proxy.wsUrl, transports: ["long-polling"] });
    await connected(c);
    const s = collect(c.client, "lp");
    await s.sub.ready();
    proxy.dropPollAnswers(2, '"publication"');
    for (let n = 1; n <= 3; n++) await hub.publish("lp", { n });
    await waitFor(() => s.received.length === 3, 10000, "3 publications");
    assert.equal(proxy.droppedPollAnswers, 2);
    assert.deepEqual(s.received.map((p) => p.offset), [1, 2, 3]);
    assert.equal(c.of("connected").length, 1, "no reconnect");
    assert.equal(c.of("disconnected").length, 0);
  });
});

describe("SSE resume", () => {
  test("a broken stream: the EventSource reconnects with Last-Event-ID and the hub resumes every channel", { timeout: 30000 }, async (t) => {
    const hub = await startHub({ t, apiKey: "k", args: ["--allow-anonymous"] });
    const proxy = await startProxy(hub.port, { t });
    // The EventSource waits 1.5 s before it reconnects: the test publishes meanwhile.
    TestEventSource.defaultRetry = 1500;
    t.after(() => (TestEventSource.defaultRetry = 300));
    const c = newClient(t, { url: proxy.wsUrl, transports: ["sse"] });
    await connected(c);
    const first = c.client.clientId;
    const a = collect(c.client, "a");
    const b = collect(c.client, "b");
    await a.sub.ready();
    await b.sub.ready();
    await hub.publish("a", { n: 1 });
    await hub.publish("b", { n: 1 });
    await waitFor(() => a.received.length === 1 && b.received.length === 1, 5000, "one each");
    const sources = TestEventSource.instances.length;

    proxy.cutAll();
    await waitFor(() => c.client.state !== "connected", 1000, "suspended");
    await hub.publish("a", { n: 2 });
    await hub.publish("a", { n: 3 });
    await hub.publish("b", { n: 2 });
    await connected(c, 10000, 2);
    assert.equal(c.of("disconnected")[0].willRetry, true);
    assert.equal(TestEventSource.instances.length, sources, "the same EventSource reconnected");
    assert.notEqual(c.client.clientId, first, "a new session");
    const es = TestEventSource.instances.at(-1);
    assert.ok(es.lastEventIdsSent.some((id) => channelsOfEventId(id).includes("a")), `Last-Event-ID sent: ${es.lastEventIdsSent}`);
    await waitFor(() => a.received.length === 3 && b.received.length === 2, 5000, "recovered");
    await hub.publish("a", { n: 4 });
    await waitFor(() => a.received.length === 4, 5000, "live after the resume");
    assert.deepEqual(a.received.map((p) => p.offset), [1, 2, 3, 4]);
    assert.deepEqual(b.received.map((p) => p.offset), [1, 2]);
    assert.equal(a.subscribed.at(-1).recovered, true);
    assert.equal(a.subscribed.at(-1).resubscribed, true);
    // Requests work on the new session.
    assert.equal((await c.client.publish("a", { n: 5 })).offset, 5);
  });
});

describe("falling back", () => {
  test("WebSocket fails fallbackAfter times: SSE; no EventSource either: long polling", { timeout: 30000 }, async (t) => {
    const hub = await startHub({ t });
    FailingWebSocket.opened = 0;
    const c = newClient(t, { url: hub.wsUrl, WebSocket: FailingWebSocket, fallbackAfter: 2 });
    const up = await connected(c);
    assert.equal(up.transport, "sse");
    assert.equal(FailingWebSocket.opened, 2);
    assert.deepEqual(
      c.of("transport").map((e) => [e.previous, e.transport]),
      [["websocket", "sse"]],
    );
    const s = collect(c.client, "x");
    await s.sub.ready();
    await c.client.publish("x", 1);
    await waitFor(() => s.received.length === 1, 5000, "pub/sub over the fallback");

    const p = newClient(t, { url: hub.wsUrl, WebSocket: FailingWebSocket, EventSource: undefined, fallbackAfter: 1 });
    const pu = await connected(p);
    assert.equal(pu.transport, "long-polling");
  });

  test("SSE that fails as well: long polling", { timeout: 30000 }, async (t) => {
    const hub = await startHub({ t });
    const proxy = await startUpgradeRefusingProxy(hub.port, { sse: false, t });
    const c = newClient(t, { url: proxy.wsUrl, fallbackAfter: 1 });
    const up = await connected(c, 15000);
    assert.equal(up.transport, "long-polling");
    assert.deepEqual(c.of("transport").map((e) => e.transport), ["sse", "long-polling"]);
    assert.ok(proxy.upgradesRefused >= 1);
  });

  test("a proxy that refuses the upgrade: the client falls back by itself and works", { timeout: 30000 }, async (t) => {
    const hub = await startHub({ t });
    const proxy = await startUpgradeRefusingProxy(hub.port, { t });
    const c = newClient(t, { url: proxy.wsUrl });
    const up = await connected(c, 15000);
    assert.equal(up.transport, "sse");
    assert.equal(proxy.upgradesRefused, 2);
    const s = collect(c.client, "y");
    await s.sub.ready();
    await c.client.publish("y", "hello");
    await waitFor(() => s.received.length === 1, 5000, "pub/sub through the proxy");
  });

  test("websocketRetryAfter: a reconnect after it tries WebSocket first; a background probe moves back to it; sessionStorage remembers", { timeout: 30000 }, async (t) => {
    const hub = await startHub({ t });
    const store = new Map();
    globalThis.sessionStorage = {
      getItem: (k) => (store.has(k) ? store.get(k) : null),
      setItem: (k, v) => store.set(k, String(v)),
      removeItem: (k) => store.delete(k),
    };
    t.after(() => delete globalThis.sessionStorage);
    let wsWorks = false;
    class SometimesWebSocket {
      constructor(...args) {
        return wsWorks ? new WebSocket(...args) : new FailingWebSocket(...args);
      }
    }
    const c = newClient(t, { url: hub.wsUrl, WebSocket: SometimesWebSocket, fallbackAfter: 1, websocketRetryAfter: 500 });
    await connected(c);
    assert.equal(c.client.transport, "sse");
    const key = `wsengine-hub.transport:${hub.httpUrl}`;
    assert.equal(JSON.parse(store.get(key)).transport, "sse");
    const s = collect(c.client, "z");
    await s.sub.ready();

    // Another client of this page session starts from SSE at once.
    FailingWebSocket.opened = 0;
    const d = newClient(t, { url: hub.wsUrl, WebSocket: FailingWebSocket, websocketRetryAfter: 60000 });
    assert.equal((await connected(d)).transport, "sse");
    assert.equal(FailingWebSocket.opened, 0);

    // After websocketRetryAfter, a reconnect tries WebSocket first (still failing: back to SSE at once).
    await sleep(600);
    FailingWebSocket.opened = 0;
    c.client._abandon(c.client._ws, "test: forced reconnect");
    await connected(c, 8000, 2);
    assert.equal(c.client.transport, "sse");
    assert.equal(FailingWebSocket.opened, 1);

    // Now WebSocket works: the background probe (websocketRetryAfter, at least 1 s) finds it
    // and the client moves back to it, recovering its subscription.
    wsWorks = true;
    const up = await connected(c, 8000, 3);
    assert.equal(up.transport, "websocket");
    assert.equal(store.has(key), false);
    assert.deepEqual(
      c.of("transport").map((e) => [e.previous, e.transport]).slice(-1),
      [["sse", "websocket"]],
    );
    assert.equal(c.of("disconnected").at(-1).code, 1012);
    await c.client.publish("z", 2);
    await waitFor(() => s.received.length >= 1, 5000, "pub/sub after moving back");
    assert.equal(s.subscribed.at(-1).recovered, true);
  });
});

describe("liveness", () => {
  test("a hub that stops answering is noticed within ping_interval + pingGrace on each transport", { timeout: 40000 }, async (t) => {
    const hub = await startHub({ t, config: "[limits]\nping_interval = 1\n[auth]\nallow_anonymous = true\n" });
    const clients = FALLBACKS.map((transport) =>
      newClient(t, { url: hub.wsUrl, transports: [transport], pingGrace: 1500, pollTimeout: 1 }),
    );
    for (const c of clients) await connected(c);
    await sleep(3000); // pings keep them up
    for (const c of clients) assert.equal(c.of("disconnected").length, 0, `${c.client.transport} dropped while pinged`);
    hub.pause();
    t.after(() => hub.resume());
    for (const c of clients) {
      await waitFor(() => c.of("disconnected").length >= 1, 8000, `${c.client.transport} notices`);
    }
    hub.resume();
    for (const c of clients) await connected(c, 15000, 2);
  });
});
