// Integration tests of wsengine-hub.js against a real `wsengine hub` process on 127.0.0.1
// (test/support/hub.js starts it: WSENGINE_BIN, default target/debug/wsengine).
// Node 20 has no global WebSocket: the `ws` package is passed as the `WebSocket` option.
// Run: cd clients/js && node --test test/*.test.js

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import WebSocket from "ws";

import { HubClient, HubError } from "../wsengine-hub.js";
import { freePort, hs256Token, nowSeconds, sleep, startHub, startProxy, waitFor } from "./support/hub.js";

const API_KEY = "test-api-key";
const SECRET = "test-jwt-secret";

/**
 * A client with listeners on every event before it connects (with autoConnect the first
 * `connecting` is emitted inside the constructor). Disconnected at the end of the test.
 * `events` holds { type, at, ...event } in arrival order.
 */
function newClient(t, options) {
  const { autoConnect = true, ...rest } = options;
  const client = new HubClient({
    WebSocket,
    minReconnectDelay: 100,
    maxReconnectDelay: 400,
    ...rest,
    autoConnect: false,
  });
  const events = [];
  for (const type of ["connecting", "connected", "disconnected", "error"]) {
    client.on(type, (event) => events.push({ type, at: Date.now(), ...event }));
  }
  t.after(() => client.disconnect());
  if (autoConnect) client.connect();
  return { client, events, of: (type) => events.filter((e) => e.type === type) };
}

async function connected(c, timeoutMs = 5000, count = 1) {
  await waitFor(() => c.of("connected").length >= count && c.client.state === "connected", timeoutMs, `connected #${count}`);
  return c.of("connected")[count - 1];
}

const isHubError = (code) => (error) => {
  assert.ok(error instanceof HubError, `expected a HubError ${code}, got ${error && error.stack}`);
  assert.equal(error.code, code, `expected code ${code}, got ${error.code}: ${error.message}`);
  return true;
};

/** Resolves to "pending" when `promise` has not settled within `ms`. */
function settledWithin(promise, ms) {
  return Promise.race([
    promise.then(
      (value) => ({ status: "resolved", value }),
      (error) => ({ status: "rejected", error }),
    ),
    sleep(ms).then(() => ({ status: "pending" })),
  ]);
}

/** Publishes through the HTTP API about every `intervalMs` until stopped; only while `open()`. */
function startPublisher(hub, channel, { intervalMs = 20, open = () => true } = {}) {
  const acked = []; // { offset, epoch, n, at }
  let n = 0;
  let running = true;
  let failures = 0;
  const done = (async () => {
    while (running) {
      const started = Date.now();
      if (open()) {
        const payload = { n: n + 1 };
        try {
          const result = await hub.publish(channel, payload);
          n += 1;
          acked.push({ ...result, n, at: Date.now() });
        } catch {
          failures += 1; // the hub is down: try again on the next tick
        }
      }
      await sleep(Math.max(0, intervalMs - (Date.now() - started)));
    }
  })();
  return {
    acked,
    get failures() {
      return failures;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

function offsetsOf(publications) {
  return publications.map((p) => p.offset);
}

const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe("connection events", () => {
  test("connecting, connected and disconnected carry the documented fields", { timeout: 20000 }, async (t) => {
    const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
    const exp = nowSeconds() + 3600;
    const token = hs256Token(SECRET, { sub: "alice", exp });
    const c = newClient(t, { url: hub.wsUrl, token, name: "events-test", minReconnectDelay: 200, maxReconnectDelay: 400 });
    const { client } = c;

    const up = await connected(c);
    const [first] = c.of("connecting");
    assert.equal(first.attempt, 0);
    assert.equal(first.url, hub.wsUrl);
    assert.equal(typeof up.client, "string");
    assert.match(up.client, /^.+-\d+$/, "client ids are NODE-N");
    assert.equal(up.user, "alice");
    assert.equal(up.pingInterval, 25, "the default ping_interval");
    assert.equal(up.expiresAt, exp);
    assert.equal(up.url, hub.wsUrl);
    assert.equal(client.state, "connected");
    assert.equal(client.clientId, up.client);
    assert.equal(client.user, "alice");

    // SIGTERM: the hub closes every WebSocket with 1001; the client retries with backoff.
    await hub.stop();
    const lost = await waitFor(() => c.of("disconnected")[0], 5000, "disconnected after SIGTERM");
    assert.equal(lost.code, 1001);
    assert.equal(typeof lost.reason, "string");
    assert.equal(lost.willRetry, true);
    assert.equal(typeof lost.delay, "number");
    assert.ok(lost.delay >= 0 && lost.delay <= 400, `delay ${lost.delay} outside [0, maxReconnectDelay]`);
    assert.equal(client.clientId, null, "clientId is null when not connected");
    assert.ok(["disconnected", "connecting"].includes(client.state), `state ${client.state}`);
    const retry = await waitFor(() => c.of("connecting").find((e) => e.attempt >= 1), 5000, "a reconnect attempt");
    assert.equal(retry.attempt, 1);
    assert.equal(retry.url, hub.wsUrl);
    assert.ok(
      retry.at - lost.at >= lost.delay - 20 && retry.at - lost.at <= lost.delay + 300,
      `the attempt came ${retry.at - lost.at} ms after the loss, announced delay ${lost.delay} ms`,
    );

    // Attempts count up while the hub is down, then the hub is back and the client with it.
    await waitFor(() => c.of("connecting").some((e) => e.attempt >= 2), 5000, "attempt 2");
    const attempts = c.of("connecting").map((e) => e.attempt);
    assert.deepEqual(attempts, range(0, attempts.length - 1), "attempt numbers 0, 1, 2, ...");
    for (const e of c.of("disconnected")) assert.equal(e.willRetry, true);
    await hub.restart();
    const again = await connected(c, 5000, 2);
    assert.equal(again.user, "alice");
    assert.notEqual(again.client, up.client, "a new connection has a new client id");
    assert.equal(client.clientId, again.client);

    // After a success the attempt count starts again from 1.
    const before = c.of("connecting").length;
    await hub.kill();
    await hub.restart();
    await connected(c, 5000, 3);
    const afterSuccess = c.of("connecting").slice(before);
    assert.equal(afterSuccess[0].attempt, 1, "the first attempt after a success is attempt 1");
    const killed = c.of("disconnected").at(-1);
    assert.equal(killed.code, 1006, "a killed hub sends no Close: 1006");

    // disconnect(): close 1000, willRetry false, and nothing more.
    const n = c.events.length;
    client.disconnect();
    const bye = await waitFor(() => c.events.slice(n).find((e) => e.type === "disconnected"), 2000, "disconnected after disconnect()");
    assert.equal(bye.code, 1000);
    assert.equal(bye.willRetry, false);
    assert.equal(bye.delay, undefined);
    assert.ok(["disconnected", "closed"].includes(client.state), `state ${client.state}`);
    await sleep(700);
    assert.deepEqual(
      c.events.slice(n).map((e) => e.type),
      ["disconnected"],
      "no event after disconnect() but its own disconnected",
    );
  });
});

describe("requests", () => {
  const config = `
[namespaces.x]
presence = false
[namespaces.api]
publish = "api"
`;

  test("subscribe, publish, history and presence resolve with the protocol's results", { timeout: 20000 }, async (t) => {
    const hub = await startHub({ t, config, apiKey: API_KEY, args: ["--allow-anonymous"] });
    const a = newClient(t, { url: hub.wsUrl, name: "a" });
    const b = newClient(t, { url: hub.wsUrl, name: "b" });
    await connected(a);
    await connected(b);
    const aPubs = [];
    const aSubscribed = [];
    const joins = [];
    const leaves = [];
    const subA = a.client.subscribe("chat:room", {
      onPublication: (p) => aPubs.push(p),
      onSubscribed: (ctx) => aSubscribed.push(ctx),
      onJoin: (info, channel) => joins.push({ info, channel }),
      onLeave: (info, channel) => leaves.push({ info, channel }),
    });
    assert.equal(a.client.getSubscription("chat:room"), subA);
    const ctx = await subA.ready();
    assert.equal(ctx.channel, "chat:room");
    assert.equal(ctx.offset, 0, "an empty channel's offset is 0");
    assert.equal(typeof ctx.epoch, "string");
    assert.ok(ctx.epoch.length > 0);
    assert.equal(ctx.resubscribed, false);
    assert.equal(subA.state, "subscribed");
    assert.deepEqual(aSubscribed, [ctx], "onSubscribed once, with the ready() context");
    assert.deepEqual(await subA.ready(), ctx, "ready() again resolves with the same context");

    const p1 = await a.client.publish("chat:room", { n: 1 });
    assert.deepEqual(p1, { offset: 1, epoch: ctx.epoch });
    const p2 = await hub.publish("chat:room", { n: 2 });
    assert.equal(p2.offset, 2);

    const bPubs = [];
    const subB = b.client.subscribe("chat:room", { onPublication: (p) => bPubs.push(p) });
    const ctxB = await subB.ready();
    assert.equal(ctxB.offset, 2);
    assert.equal(ctxB.epoch, ctx.epoch);
    await waitFor(() => joins.length === 1, 3000, "A's onJoin for B");
    // ClientInfo: client and user (the hub may add fields, e.g. the connection's name).
    assert.equal(joins[0].channel, "chat:room");
    assert.equal(joins[0].info.client, b.client.clientId);
    assert.equal(joins[0].info.user, "");

    const p3 = await subB.publish({ n: 3 });
    assert.deepEqual(p3, { offset: 3, epoch: ctx.epoch });
    await waitFor(() => aPubs.length === 3, 3000, "A's 3 publications");
    assert.deepEqual(offsetsOf(aPubs), [1, 2, 3]);
    for (const p of aPubs) {
      assert.equal(p.channel, "chat:room");
      assert.equal(p.epoch, ctx.epoch);
      assert.deepEqual(p.payload, { n: p.offset });
    }
    const who = (info) => info && { client: info.client, user: info.user };
    assert.deepEqual(who(aPubs[0].info), { client: a.client.clientId, user: "" });
    assert.equal(aPubs[1].info, undefined, "no info on a publication made through the HTTP API");
    assert.deepEqual(who(aPubs[2].info), { client: b.client.clientId, user: "" });
    await waitFor(() => bPubs.length === 1, 3000, "B's publication");
    assert.equal(bPubs[0].offset, 3, "B, subscribed at offset 2, gets 3 and nothing older");
    assert.deepEqual(subA.position, { offset: 3, epoch: ctx.epoch });

    // history
    const all = await a.client.history("chat:room");
    assert.equal(all.epoch, ctx.epoch);
    assert.equal(all.offset, 3);
    assert.deepEqual(offsetsOf(all.publications), [1, 2, 3]);
    assert.deepEqual(all.publications.map((p) => p.payload), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.deepEqual(offsetsOf((await a.client.history("chat:room", { limit: 1 })).publications), [3]);
    assert.deepEqual(offsetsOf((await a.client.history("chat:room", { since: { offset: 1, epoch: ctx.epoch } })).publications), [2, 3]);
    const none = await a.client.history("chat:room", { limit: 0 });
    assert.deepEqual(none.publications, []);
    assert.equal(none.offset, 3);
    assert.deepEqual(offsetsOf((await subA.history({ limit: 2 })).publications), [2, 3]);

    // presence
    const sortClients = (list) =>
      list.map((c) => ({ client: c.client, user: c.user })).sort((x, y) => x.client.localeCompare(y.client));
    const expected = sortClients([
      { client: a.client.clientId, user: "" },
      { client: b.client.clientId, user: "" },
    ]);
    assert.deepEqual(sortClients((await a.client.presence("chat:room")).clients), expected);
    assert.deepEqual(sortClients((await subB.presence()).clients), expected);

    // unsubscribe
    const bId = b.client.clientId;
    await subB.unsubscribe();
    assert.equal(subB.state, "unsubscribed");
    assert.equal(b.client.getSubscription("chat:room"), null);
    await waitFor(() => leaves.length === 1, 3000, "A's onLeave for B");
    assert.equal(leaves[0].channel, "chat:room");
    assert.deepEqual(who(leaves[0].info), { client: bId, user: "" });
    assert.deepEqual(sortClients((await a.client.presence("chat:room")).clients), [{ client: a.client.clientId, user: "" }]);
    await hub.publish("chat:room", { n: 4 });
    await waitFor(() => aPubs.length === 4, 3000, "A's 4th publication");
    await sleep(200);
    assert.equal(bPubs.length, 1, "no publication after unsubscribe()");
    assert.equal(joins.length, 1);

    // Subscribing again after unsubscribe is a new subscription.
    const subB2 = b.client.subscribe("chat:room", { onPublication: (p) => bPubs.push(p) });
    assert.notEqual(subB2, subB);
    assert.equal((await subB2.ready()).offset, 4);
    await hub.publish("chat:room", { n: 5 });
    await waitFor(() => bPubs.length === 2, 3000, "B's publication after subscribing again");
    assert.equal(bPubs[1].offset, 5);
  });

  test("refusals reject with HubError codes and leave the connection usable", { timeout: 20000 }, async (t) => {
    const hub = await startHub({ t, config, apiKey: API_KEY, args: ["--allow-anonymous"] });
    const c = newClient(t, { url: hub.wsUrl });
    await connected(c);
    const { client } = c;

    const errors = [];
    const bad = client.subscribe("bad channel!", { onError: (e) => errors.push(e) });
    await assert.rejects(bad.ready(), isHubError("bad_request"));
    assert.equal(bad.state, "failed");
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof HubError);
    assert.equal(errors[0].code, "bad_request");
    await assert.rejects(bad.ready(), isHubError("bad_request"), "ready() again rejects the same way");

    await assert.rejects(client.publish("bad channel!", 1), isHubError("bad_request"));
    await assert.rejects(client.history("c".repeat(256)), isHubError("bad_request"));
    await assert.rejects(client.presence(""), isHubError("bad_request"));

    // presence = false in [namespaces.x]
    await assert.rejects(client.presence("x:room"), isHubError("disabled"));
    const subX = client.subscribe("x:room");
    await subX.ready();
    await assert.rejects(subX.presence(), isHubError("disabled"));

    // publish = "api" in [namespaces.api]
    await assert.rejects(client.publish("api:news", { n: 1 }), isHubError("permission_denied"));

    // Twice the same channel on one client.
    client.subscribe("chat:twice");
    assert.throws(() => client.subscribe("chat:twice"), isHubError("already_subscribed"));
    assert.throws(() => client.subscribe("x:room"), isHubError("already_subscribed"));

    // None of this cost the connection.
    assert.equal(client.state, "connected");
    assert.equal(c.of("connected").length, 1);
    assert.equal(c.of("disconnected").length, 0);
    assert.deepEqual(await client.publish("chat:ok", 1), { offset: 1, epoch: (await client.history("chat:ok", { limit: 0 })).epoch });
  });

  test("no reply rejects with timeout; a lost connection with disconnected; disconnect() with closed", { timeout: 20000 }, async (t) => {
    const hub = await startHub({ t, args: ["--allow-anonymous"], apiKey: API_KEY });
    const proxy = await startProxy(hub.port, { t });
    const quick = newClient(t, { url: hub.wsUrl, requestTimeout: 600 });
    const viaProxy = newClient(t, { url: proxy.wsUrl, requestTimeout: 5000, minReconnectDelay: 100, maxReconnectDelay: 200 });
    const patient = newClient(t, { url: hub.wsUrl, requestTimeout: 5000 });
    await connected(quick);
    await connected(viaProxy);
    await connected(patient);

    hub.pause();
    t.after(() => hub.resume());
    const started = Date.now();
    await assert.rejects(quick.client.publish("r", 1), isHubError("timeout"));
    const took = Date.now() - started;
    assert.ok(took >= 550 && took <= 1500, `timeout after ${took} ms, requestTimeout 600`);

    const cut = viaProxy.client.publish("r", 2);
    const cutSettled = settledWithin(cut, 1000);
    await sleep(100);
    proxy.cutAll();
    const outcome = await cutSettled;
    assert.equal(outcome.status, "rejected", "a request in flight when the connection is lost settles at once");
    isHubError("disconnected")(outcome.error);

    const pending = patient.client.publish("r", 3);
    const pendingSettled = settledWithin(pending, 1000);
    await sleep(100);
    patient.client.disconnect();
    const closed = await pendingSettled;
    assert.equal(closed.status, "rejected", "disconnect() settles a request in flight");
    isHubError("closed")(closed.error);
    const bye = patient.of("disconnected").at(-1);
    assert.equal(bye.code, 1000);
    assert.equal(bye.willRetry, false);

    hub.resume();
    await connected(viaProxy, 8000, 2);
    const after = await viaProxy.client.publish("r", 4);
    assert.equal(typeof after.offset, "number");
    assert.equal((await quick.client.publish("r", 5)).offset, after.offset + 1);
  });

  test("a subscribe answered after requestTimeout still ends subscribed and delivers", { timeout: 20000 }, async (t) => {
    // The hub stalls (SIGSTOP) longer than requestTimeout while a subscribe is in flight,
    // then answers everything it received. The subscription must end up working: the server
    // did subscribe the connection, so the client must neither give up nor drop its publications.
    const hub = await startHub({ t, args: ["--allow-anonymous"], apiKey: API_KEY });
    const c = newClient(t, { url: hub.wsUrl, requestTimeout: 500, pingGrace: 30000 });
    await connected(c);
    const pubs = [];
    const errors = [];
    hub.pause();
    t.after(() => hub.resume());
    const sub = c.client.subscribe("late", { onPublication: (p) => pubs.push(p), onError: (e) => errors.push(e) });
    const ready = settledWithin(sub.ready(), 8000);
    await sleep(1200); // past requestTimeout
    hub.resume();
    const outcome = await ready;
    assert.equal(outcome.status, "resolved", `ready(): ${outcome.status} ${outcome.error ? outcome.error.code : ""}`);
    assert.equal(sub.state, "subscribed");
    assert.deepEqual(errors.map((e) => e.code), [], "onError for a subscription that the hub accepted");
    await hub.publish("late", { n: 1 });
    await waitFor(() => pubs.length === 1, 3000, "the publication on the late subscription");
    assert.equal(c.of("disconnected").length, 0);
  });

  test("since on the first subscribe resumes from a stored position", { timeout: 15000 }, async (t) => {
    const hub = await startHub({ t, args: ["--allow-anonymous"], apiKey: API_KEY });
    let epoch;
    for (let n = 1; n <= 5; n++) epoch = (await hub.publish("resume", { n })).epoch;
    const c = newClient(t, { url: hub.wsUrl });
    const pubs = [];
    const sub = c.client.subscribe("resume", { since: { offset: 2, epoch }, onPublication: (p) => pubs.push(p) });
    assert.deepEqual(sub.position, { offset: 2, epoch });
    const ctx = await sub.ready();
    assert.equal(ctx.recovered, true);
    assert.equal(ctx.offset, 5);
    await waitFor(() => pubs.length === 3, 3000, "the 3 recovered publications");
    await hub.publish("resume", { n: 6 });
    await waitFor(() => pubs.length === 4, 3000, "the live publication");
    assert.deepEqual(offsetsOf(pubs), [3, 4, 5, 6]);
    assert.deepEqual(pubs.map((p) => p.payload.n), [3, 4, 5, 6]);
  });
});

describe("reconnect and recovery", () => {
  test("connection cut (hub still running) while publications flow: every offset once, in order, recovered", { timeout: 30000 }, async (t) => {
    const hub = await startHub({
      t,
      config: "[namespaces.default]\nhistory_size = 2000\n",
      apiKey: API_KEY,
      args: ["--allow-anonymous"],
    });
    const proxy = await startProxy(hub.port, { t });
    const c = newClient(t, { url: proxy.wsUrl, minReconnectDelay: 100, maxReconnectDelay: 300 });
    const pubs = [];
    const subscribed = [];
    const resets = [];
    const sub = c.client.subscribe("feed", {
      onPublication: (p) => pubs.push({ ...p, at: Date.now() }),
      onSubscribed: (ctx) => subscribed.push({ ...ctx, at: Date.now() }),
      onReset: (ctx) => resets.push(ctx),
    });
    const first = await sub.ready();
    const publisher = startPublisher(hub, "feed", { intervalMs: 20 }); // ~50/s
    t.after(() => publisher.stop());

    const gaps = [];
    for (let cut = 1; cut <= 2; cut++) {
      const target = pubs.length + 20;
      await waitFor(() => pubs.length >= target, 5000, `20 publications before cut ${cut}`);
      // Cut every connection and refuse new ones for 400 ms: publications go on meanwhile.
      proxy.block(true);
      const cutAt = Date.now();
      proxy.cutAll();
      await sleep(400);
      proxy.block(false);
      await waitFor(() => subscribed.length >= cut + 1, 8000, `re-subscription after cut ${cut}`);
      const back = subscribed[cut].at;
      gaps.push(publisher.acked.filter((p) => p.at > cutAt && p.at < back).length);
    }
    const more = publisher.acked.length + 20;
    await waitFor(() => publisher.acked.length >= more, 5000, "20 more publications");
    await publisher.stop();
    const last = publisher.acked.at(-1).offset;
    await waitFor(() => pubs.length >= last, 5000, `every publication up to ${last}`);
    await sleep(200); // anything extra (a repeat) would arrive now

    assert.ok(gaps.every((n) => n >= 5), `publications made while disconnected: ${gaps} (the test needs some)`);
    assert.deepEqual(offsetsOf(pubs), range(1, last), "every offset exactly once, in order");
    for (const p of pubs) {
      assert.equal(p.epoch, first.epoch);
      assert.deepEqual(p.payload, { n: p.offset });
    }
    assert.equal(subscribed.length, 3);
    assert.equal(subscribed[0].resubscribed, false);
    for (const ctx of subscribed.slice(1)) {
      assert.equal(ctx.resubscribed, true);
      assert.equal(ctx.recovered, true, "the hub kept the history: recovered");
      assert.equal(ctx.epoch, first.epoch);
      assert.equal(ctx.channel, "feed");
    }
    assert.deepEqual(resets, []);
    const losses = c.of("disconnected");
    assert.ok(losses.length >= 2);
    for (const e of losses) {
      assert.equal(e.code, 1006, "a cut connection is 1006");
      assert.equal(e.willRetry, true);
    }
    assert.deepEqual(sub.position, { offset: last, epoch: first.epoch });
  });

  test("hub killed and restarted (memory engine: new epoch): recovered false, then the new epoch from offset 1", { timeout: 30000 }, async (t) => {
    // The memory engine loses the history with the process, so the stream's epoch changes.
    // (A restart that keeps history and recovers needs the Redis engine, a later issue:
    // then this test's counterpart expects recovered: true across the restart.)
    const hub = await startHub({ t, apiKey: API_KEY, args: ["--allow-anonymous"] });
    const c = newClient(t, { url: hub.wsUrl, minReconnectDelay: 100, maxReconnectDelay: 300 });
    const pubs = [];
    const subscribed = [];
    const sub = c.client.subscribe("feed", {
      onPublication: (p) => pubs.push(p),
      onSubscribed: (ctx) => subscribed.push(ctx),
    });
    const first = await sub.ready();
    // The publisher holds off from the kill until the subscriber is back, so that the new
    // epoch's first publications reach it live (the hub cannot recover across the epoch).
    let open = true;
    const publisher = startPublisher(hub, "feed", { intervalMs: 20, open: () => open });
    t.after(() => publisher.stop());
    await waitFor(() => pubs.length >= 20, 5000, "20 publications before the kill");

    open = false;
    await hub.kill();
    const oldCount = pubs.length;
    await hub.restart();
    await waitFor(() => subscribed.length >= 2, 8000, "re-subscription after the restart");
    const ctx = subscribed[1];
    assert.equal(ctx.resubscribed, true);
    assert.equal(ctx.recovered, false, "a new epoch cannot be recovered");
    assert.notEqual(ctx.epoch, first.epoch, "the restarted memory engine has a new epoch");
    assert.equal(ctx.offset, 0);

    open = true;
    const acked = publisher.acked.length;
    await waitFor(() => publisher.acked.length >= acked + 20, 5000, "20 publications after the restart");
    await publisher.stop();
    const newAcked = publisher.acked.filter((p) => p.epoch === ctx.epoch);
    await waitFor(() => pubs.filter((p) => p.epoch === ctx.epoch).length >= newAcked.length, 5000, "the new epoch's publications");
    await sleep(200);

    const oldPubs = pubs.filter((p) => p.epoch === first.epoch);
    const newPubs = pubs.filter((p) => p.epoch === ctx.epoch);
    assert.equal(oldPubs.length + newPubs.length, pubs.length, "no third epoch");
    assert.ok(oldPubs.length >= oldCount);
    assert.deepEqual(offsetsOf(oldPubs), range(1, oldPubs.length), "the old epoch: a gapless prefix");
    assert.deepEqual(pubs.slice(0, oldPubs.length), oldPubs, "old epoch first, then the new one");
    assert.deepEqual(offsetsOf(newPubs), range(1, newAcked.length), "the new epoch from offset 1, each once, in order");
    assert.deepEqual(sub.position, { offset: newAcked.length, epoch: ctx.epoch });
    const lost = c.of("disconnected")[0];
    assert.equal(lost.code, 1006);
    assert.equal(lost.willRetry, true);
  });

  test("30 clients losing the hub at once do not reconnect on the same tick", { timeout: 40000 }, async (t) => {
    const hub = await startHub({ t, args: ["--allow-anonymous"] });
    const MIN = 1000;
    const MAX = 8000;
    const clients = [];
    for (let i = 0; i < 30; i++) {
      clients.push(newClient(t, { url: hub.wsUrl, minReconnectDelay: MIN, maxReconnectDelay: MAX }));
    }
    await waitFor(() => clients.every((c) => c.client.state === "connected"), 10000, "30 clients connected");

    await hub.stop(); // SIGTERM: every client gets 1001 at the same moment
    await hub.restart();
    await waitFor(() => clients.every((c) => c.of("connected").length >= 2), 20000, "30 clients reconnected");

    const rows = clients.map((c) => {
      const lost = c.of("disconnected")[0];
      const retry = c.of("connecting").find((e) => e.attempt >= 1);
      return { lost, retry, after: retry.at - lost.at };
    });
    for (const { lost, retry, after } of rows) {
      assert.equal(lost.code, 1001, "SIGTERM closes with 1001");
      assert.equal(lost.willRetry, true);
      assert.equal(retry.attempt, 1);
      // Never before the announced delay; later only by event-loop lateness (30 clients, one loop).
      assert.ok(after >= lost.delay - 20 && after <= lost.delay + 400, `attempt after ${after} ms, announced ${lost.delay} ms`);
    }
    const t0 = Math.min(...rows.map((r) => r.lost.at));
    const times = rows.map((r) => r.retry.at - t0).sort((x, y) => x - y);
    const span = times.at(-1) - times[0];
    const ticks = new Set(times.map((ms) => Math.floor(ms / 10))).size;
    // The first reconnect's window is at least [MIN/2, MIN] (500 ms): 30 uniform draws span
    // more than half of it with overwhelming probability.
    assert.ok(span >= MIN / 4, `reconnects spread over only ${span} ms: ${times}`);
    assert.ok(ticks >= 15, `30 reconnects fell into only ${ticks} distinct 10 ms ticks: ${times}`);
    assert.ok(times.at(-1) <= 2 * MIN + 300, `a first reconnect came ${times.at(-1)} ms after the loss (cap ${2 * MIN})`);
    // "never below min / 2 on the first attempt so that a restarted hub is not hit at once"
    const early = rows.filter((r) => r.after < MIN / 2 - 20).map((r) => r.after);
    assert.deepEqual(early, [], `first reconnects earlier than minReconnectDelay / 2 = ${MIN / 2} ms`);
  });
});

describe("auth", () => {
  test("tokens that expire every ~2 s: the client refreshes them before exp, without a reconnect", { timeout: 20000 }, async (t) => {
    const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
    const issued = [];
    const getToken = async () => {
      const exp = nowSeconds() + 2;
      issued.push(exp);
      return hs256Token(SECRET, { sub: "bob", exp });
    };
    const c = newClient(t, { url: hub.wsUrl, getToken, minReconnectDelay: 100, maxReconnectDelay: 300 });
    const up = await connected(c);
    assert.equal(up.user, "bob");
    assert.ok(issued.includes(up.expiresAt), "connected.expiresAt is the token's exp");
    const received = new Set();
    const sub = c.client.subscribe("t", { onPublication: (p) => received.add(p.offset) });
    await sub.ready();

    const started = Date.now();
    const results = [];
    while (Date.now() - started < 6500) {
      const outcome = await settledWithin(c.client.publish("t", { i: results.length }), 3000);
      results.push(outcome);
      await sleep(200);
    }
    const resolved = results.filter((r) => r.status === "resolved");
    const other = results.filter((r) => r.status !== "resolved");
    for (const r of other) {
      assert.equal(r.status, "rejected", "a publish that never settles");
      isHubError("disconnected")(r.error);
    }
    // `refresh` goes out a fifth of the time left (at least 0.5 s) before exp: no 4002, no
    // lost request (the 4002 path has its own test below).
    assert.equal(resolved.length, results.length, `${resolved.length} of ${results.length} publishes succeeded`);
    assert.deepEqual(c.of("disconnected"), [], "no reconnect: every token was refreshed in time");
    assert.equal(results.at(-1).status, "resolved", "the client is usable at the end");
    await waitFor(() => resolved.every((r) => received.has(r.value.offset)), 3000, "every publication delivered to the subscriber");
    assert.equal(c.client.state, "connected");
    // ~6.5 s with 1-2 s tokens: at least 3 more tokens, and not a refresh loop.
    assert.ok(issued.length >= 4, `getToken called ${issued.length} times`);
    assert.ok(issued.length <= 20, `getToken called ${issued.length} times in 6.5 s: a refresh loop`);
    for (const e of c.of("disconnected")) {
      assert.equal(e.code, 4002, `an unexpected close ${e.code} ${e.reason}`);
      assert.equal(e.willRetry, true);
    }
    t.diagnostic(`getToken calls: ${issued.length}, reconnects after 4002: ${c.of("disconnected").length}`);
  });

  test("getToken that first hands out an expired token, then good ones", { timeout: 15000 }, async (t) => {
    const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
    let calls = 0;
    const getToken = () => {
      calls += 1;
      const exp = calls === 1 ? nowSeconds() - 10 : nowSeconds() + 3600;
      return hs256Token(SECRET, { sub: "carol", exp });
    };
    const c = newClient(t, { url: hub.wsUrl, getToken, minReconnectDelay: 2000, maxReconnectDelay: 4000 });
    const up = await connected(c, 3000);
    const [lost] = c.of("disconnected");
    assert.equal(lost.code, 4002, "an expired token at connect gets 4002");
    assert.equal(lost.willRetry, true);
    assert.ok(lost.delay < 500, `4002 reconnects at once, not after backoff (delay ${lost.delay})`);
    assert.equal(up.user, "carol");
    assert.ok(calls >= 2);
    assert.equal(typeof (await c.client.publish("c", 1)).offset, "number");
  });

  test("4001 (bad token, no getToken): disconnected without retry", { timeout: 15000 }, async (t) => {
    const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
    const token = hs256Token("not-the-secret", { sub: "mallory", exp: nowSeconds() + 3600 });
    const c = newClient(t, { url: hub.wsUrl, token });
    const lost = await waitFor(() => c.of("disconnected")[0], 5000, "disconnected");
    assert.equal(lost.code, 4001);
    assert.equal(lost.willRetry, false);
    await sleep(2500);
    assert.equal(c.of("connecting").length, 1, "no attempt after 4001");
    assert.equal(c.of("disconnected").length, 1);
    assert.equal(c.of("connected").length, 0);
    assert.notEqual(c.client.state, "connecting");
    await assert.rejects(c.client.publish("x", 1), isHubError("closed"));
  });

  test("4001 with a getToken that keeps returning the same bad token: stops", { timeout: 15000 }, async (t) => {
    const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
    const token = hs256Token("not-the-secret", { sub: "mallory", exp: nowSeconds() + 3600 });
    let calls = 0;
    const c = newClient(t, { url: hub.wsUrl, getToken: async () => (calls++, token) });
    await waitFor(() => c.of("disconnected").some((e) => !e.willRetry), 5000, "disconnected with willRetry false");
    const stoppedAt = c.events.length;
    const final = c.of("disconnected").at(-1);
    assert.equal(final.code, 4001);
    await sleep(2500);
    assert.equal(c.events.length, stoppedAt, "no event after the client stopped");
    assert.ok(c.of("connecting").length <= 2, `${c.of("connecting").length} attempts with the same bad token`);
    assert.ok(calls <= 3, `getToken called ${calls} times`);
    for (const e of c.of("disconnected")) assert.equal(e.code, 4001);
  });

  test("4001, then getToken gives a new, valid token: the client reconnects", { timeout: 15000 }, async (t) => {
    const hub = await startHub({ t, args: ["--jwt-secret", SECRET] });
    let calls = 0;
    const getToken = () => {
      calls += 1;
      const secret = calls === 1 ? "not-the-secret" : SECRET;
      return hs256Token(secret, { sub: "dave", exp: nowSeconds() + 3600 });
    };
    const c = newClient(t, { url: hub.wsUrl, getToken });
    const up = await connected(c, 5000);
    assert.equal(up.user, "dave");
    const [lost] = c.of("disconnected");
    assert.equal(lost.code, 4001);
    assert.equal(lost.willRetry, true, "a new token from getToken: try again");
    assert.equal(typeof (await c.client.publish("d", 1)).offset, "number");
  });

  test("4005 (too many malformed requests): disconnected without retry", { timeout: 15000 }, async (t) => {
    // Provoked through the public API: `history` with a `limit` of the wrong type is a
    // malformed request (bad_request, counted); the hub closes with 4005 after 100 of them.
    // 1003 (a binary frame) cannot be provoked through the client's API: not tested.
    const hub = await startHub({ t, args: ["--allow-anonymous"] });
    const c = newClient(t, { url: hub.wsUrl });
    await connected(c);
    const first = await settledWithin(c.client.history("m", { limit: "many" }), 2000);
    if (first.status === "rejected" && first.error.code !== "bad_request") {
      t.skip(`the client refuses the malformed request itself (${first.error.code}): 4005 not provokable`);
      return;
    }
    assert.equal(first.status, "rejected");
    const requests = [];
    for (let i = 0; i < 110; i++) requests.push(c.client.history("m", { limit: "many" }).catch(() => {}));
    const lost = await waitFor(() => c.of("disconnected")[0], 5000, "disconnected after 100 malformed requests");
    assert.equal(lost.code, 4005);
    assert.equal(lost.willRetry, false);
    await Promise.all(requests);
    await sleep(1500);
    assert.equal(c.of("connecting").length, 1, "no attempt after 4005");
  });
});

describe("dead connections", () => {
  test("a hub that stops answering (SIGSTOP) is noticed within ping_interval + pingGrace; SIGCONT and it is back", { timeout: 25000 }, async (t) => {
    const hub = await startHub({ t, config: "[limits]\nping_interval = 1\n", args: ["--allow-anonymous"] });
    const c = newClient(t, {
      url: hub.wsUrl,
      pingGrace: 1000,
      connectTimeout: 1000,
      minReconnectDelay: 100,
      maxReconnectDelay: 300,
    });
    const up = await connected(c);
    assert.equal(up.pingInterval, 1);
    await sleep(1500); // a few pings answered: the connection is healthy
    assert.equal(c.of("disconnected").length, 0, "pongs keep the connection up");

    hub.pause();
    t.after(() => hub.resume());
    const pausedAt = Date.now();
    const lost = await waitFor(() => c.of("disconnected")[0], 6000, "disconnected while the hub is stopped");
    const took = lost.at - pausedAt;
    // Silence starts at the last message (at most one ping_interval before the pause).
    assert.ok(took <= 1000 + 1000 + 700, `noticed after ${took} ms (ping_interval 1 s + pingGrace 1 s)`);
    assert.ok(took >= 900, `declared dead after only ${took} ms: pingGrace not honoured`);
    assert.equal(lost.code, 1006);
    assert.equal(lost.willRetry, true);

    // It keeps trying while the hub is stopped (each attempt ends at connectTimeout).
    await sleep(2500);
    const tries = c.of("connecting").filter((e) => e.at > lost.at);
    assert.ok(tries.length >= 2, `${tries.length} attempts in 2.5 s`);
    assert.equal(c.of("connected").length, 1);

    hub.resume();
    await connected(c, 5000, 2);
    assert.equal(typeof (await c.client.publish("alive", 1)).offset, "number");
  });
});

describe("offline queue and giving up", () => {
  test("a bounded offline queue: 3 kept, the 4th rejected with queue_full, the 3 delivered in order", { timeout: 20000 }, async (t) => {
    const port = await freePort();
    const c = newClient(t, {
      url: `ws://127.0.0.1:${port}/ws`,
      offlineQueueSize: 3,
      minReconnectDelay: 100,
      maxReconnectDelay: 200,
    });
    await waitFor(() => c.of("disconnected").length >= 1, 3000, "a failed attempt");
    const order = [];
    const kept = [1, 2, 3].map((n) =>
      c.client.publish("q", { n }).then((result) => {
        order.push(n);
        return result;
      }),
    );
    const fourth = await settledWithin(c.client.publish("q", { n: 4 }), 200);
    assert.equal(fourth.status, "rejected", "the 4th publish is refused at once");
    isHubError("queue_full")(fourth.error);
    for (const p of kept) assert.equal((await settledWithin(p, 50)).status, "pending");
    for (const e of c.of("disconnected")) {
      assert.equal(e.code, 1006);
      assert.equal(e.willRetry, true);
    }

    const hub = await startHub({ t, port, apiKey: API_KEY, args: ["--allow-anonymous"] });
    const results = await Promise.all(kept);
    assert.deepEqual(results.map((r) => r.offset), [1, 2, 3]);
    assert.deepEqual(order, [1, 2, 3]);
    const history = await hub.history("q");
    assert.deepEqual(history.publications.map((p) => p.payload), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.equal((await c.client.publish("q", { n: 5 })).offset, 4, "publishing works once connected");
  });

  test("maxReconnectAttempts: gives up with willRetry false and rejects what waits", { timeout: 15000 }, async (t) => {
    const port = await freePort();
    const N = 3;
    const c = newClient(t, {
      url: `ws://127.0.0.1:${port}/ws`,
      maxReconnectAttempts: N,
      minReconnectDelay: 50,
      maxReconnectDelay: 100,
    });
    const queued = c.client.publish("g", 1);
    queued.catch(() => {});
    await waitFor(() => c.of("disconnected").some((e) => !e.willRetry), 5000, "giving up");
    const stopped = c.events.length;
    await sleep(700);
    assert.equal(c.events.length, stopped, "no event after giving up");
    const losses = c.of("disconnected");
    assert.equal(losses.at(-1).willRetry, false);
    for (const e of losses.slice(0, -1)) assert.equal(e.willRetry, true);
    for (const e of losses) assert.equal(e.code, 1006);
    const attempts = c.of("connecting").map((e) => e.attempt);
    assert.deepEqual(attempts, range(0, attempts.length - 1));
    assert.ok(
      attempts.length === N || attempts.length === N + 1,
      `${attempts.length} attempts with maxReconnectAttempts ${N}`,
    );
    assert.equal(c.of("connected").length, 0);
    assert.notEqual(c.client.state, "connecting");
    await assert.rejects(queued, isHubError("closed"));
    await assert.rejects(c.client.publish("g", 2), isHubError("closed"));
  });
});
