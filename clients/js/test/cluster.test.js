// Several hub processes on one real Redis (`wsengine hub --redis URL`, issue #19), spoken to
// with this client and its list of URLs: fan-out across nodes with the same offsets and
// epoch everywhere, recovery on another node after `kill -9`, recovery on the same node after
// it restarts (history kept in Redis), and a Redis restart under load.

import assert from "node:assert/strict";
import { test } from "node:test";

import WebSocket from "ws";

import { HubClient } from "../wsengine-hub.js";
import { sleep, startHub, waitFor } from "./support/hub.js";
import { startRedis } from "./support/redis.js";

const FAST = { WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1000, requestTimeout: 5000 };

async function cluster(t, nodes) {
  const redis = await startRedis({ t });
  const hubs = [];
  for (let i = 0; i < nodes; i++) hubs.push(await startHub({ t, args: ["--redis", redis.url] }));
  return { redis, hubs };
}

/** A client that records what its subscription to `channel` delivers. */
async function subscriber(t, url, channel) {
  const client = new HubClient({ ...FAST, url });
  t.after(() => client.disconnect());
  const record = { client, offsets: [], epochs: new Set(), payloads: new Map(), subscribed: [], resets: [] };
  const subscription = client.subscribe(channel, {
    onPublication: (p) => {
      record.offsets.push(p.offset);
      record.epochs.add(p.epoch);
      record.payloads.set(p.offset, p.payload);
    },
    onSubscribed: (ctx) => record.subscribed.push(ctx),
    onReset: (ctx) => record.resets.push(ctx),
  });
  record.subscription = subscription;
  await subscription.ready();
  return record;
}

/** Publishes `count` payloads `{node, n}` through `hub`'s HTTP API, one every `intervalMs`. */
async function publishFrom(hub, node, channel, count, intervalMs = 0) {
  const answers = [];
  for (let n = 0; n < count; n++) {
    answers.push({ payload: { node, n }, ...(await hub.publish(channel, { node, n })) });
    if (intervalMs) await sleep(intervalMs);
  }
  return answers;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("3 nodes, 300 subscribers, 300 publications from every node: each once, in order, same offsets", { timeout: 90000 }, async (t) => {
  const { hubs } = await cluster(t, 3);
  const channel = "chat:cluster";
  const subscribers = [];
  for (let i = 0; i < 300; i++) subscribers.push(subscriber(t, hubs[i % 3].wsUrl, channel));
  const records = await Promise.all(subscribers);
  const answers = (await Promise.all(hubs.map((hub, node) => publishFrom(hub, node, channel, 100)))).flat();
  const epochs = new Set(answers.map((a) => a.epoch));
  assert.equal(epochs.size, 1, "one epoch on every node");
  assert.deepEqual(answers.map((a) => a.offset).sort((a, b) => a - b), range(1, 300), "Redis assigned 1..300 once");
  await waitFor(() => records.every((r) => r.offsets.length >= 300), 30000, "every subscriber has 300 publications");
  await sleep(200); // anything extra (a repeat) would arrive now
  const byOffset = new Map(answers.map((a) => [a.offset, a.payload]));
  for (const [i, r] of records.entries()) {
    assert.deepEqual(r.offsets, range(1, 300), `subscriber ${i} (node ${i % 3}): every offset once, in order`);
    assert.deepEqual([...r.epochs], [...epochs], `subscriber ${i}: the same epoch`);
    for (const [offset, payload] of r.payloads) assert.deepEqual(payload, byOffset.get(offset));
  }
});

test("kill -9 of a node while publications flow: its clients reconnect to another node and recover", { timeout: 60000 }, async (t) => {
  const { hubs } = await cluster(t, 3);
  const [a, b, c] = hubs;
  const channel = "feed:failover";
  // Clients of node A, with the other nodes next in their lists.
  const records = await Promise.all(range(1, 20).map(() => subscriber(t, [a.wsUrl, b.wsUrl, c.wsUrl], channel)));
  const flowing = Promise.all([publishFrom(b, 1, channel, 60, 25), publishFrom(c, 2, channel, 60, 25)]);
  await waitFor(() => records.every((r) => r.offsets.length >= 10), 10000, "publications flowing");
  await a.kill();
  const answers = (await flowing).flat();
  const last = Math.max(...answers.map((x) => x.offset));
  assert.equal(last, 120);
  await waitFor(() => records.every((r) => r.offsets.length >= 120), 20000, "every client caught up");
  await sleep(200);
  for (const [i, r] of records.entries()) {
    assert.deepEqual(r.offsets, range(1, 120), `client ${i}: nothing lost or repeated across the failover`);
    const again = r.subscribed.filter((s) => s.resubscribed);
    assert.ok(again.length >= 1, `client ${i} re-subscribed`);
    assert.ok(again.every((s) => s.recovered), `client ${i} recovered on another node`);
    assert.notEqual(r.client.state, "closed");
  }
});

test("a node restarted with its history in Redis: its clients come back to it and recover", { timeout: 60000 }, async (t) => {
  const { hubs } = await cluster(t, 2);
  const [a, b] = hubs;
  const channel = "feed:restart";
  // Only node A in the list: the client must come back to the restarted node.
  const records = await Promise.all(range(1, 10).map(() => subscriber(t, a.wsUrl, channel)));
  const flowing = publishFrom(b, 1, channel, 80, 25);
  await waitFor(() => records.every((r) => r.offsets.length >= 10), 10000, "publications flowing");
  await a.kill();
  await sleep(300);
  await a.start();
  await flowing;
  await waitFor(() => records.every((r) => r.offsets.length >= 80), 20000, "every client caught up");
  await sleep(200);
  for (const [i, r] of records.entries()) {
    assert.deepEqual(r.offsets, range(1, 80), `client ${i}: nothing lost or repeated across the restart`);
    const again = r.subscribed.filter((s) => s.resubscribed);
    assert.ok(again.length >= 1 && again.every((s) => s.recovered), `client ${i}: recovered: true`);
    assert.equal(r.epochs.size, 1);
  }
});

test("Redis restarted under load: health goes down and up, publishes fail loudly, subscribers are told", { timeout: 60000 }, async (t) => {
  const { redis, hubs } = await cluster(t, 2);
  const [a, b] = hubs;
  const channel = "feed:outage";
  const watcher = await subscriber(t, a.wsUrl, channel);
  const publisher = new HubClient({ ...FAST, url: b.wsUrl });
  t.after(() => publisher.disconnect());
  await publishFrom(b, 1, channel, 5);
  await waitFor(() => watcher.offsets.length === 5, 5000, "first publications");
  const firstEpoch = [...watcher.epochs][0];

  await redis.stop();
  for (const hub of hubs) {
    await waitFor(async () => (await hub.api("GET", "/health")).status === 503, 15000, "health 503");
    const { body } = await hub.api("GET", "/health");
    assert.equal(body.broker, "down", JSON.stringify(body));
  }
  const refused = await b.api("POST", "/api/publish", { channel, payload: { lost: true } });
  assert.equal(refused.status, 503, JSON.stringify(refused.body));
  await assert.rejects(publisher.publish(channel, { lost: true }), (e) => e.code === "unavailable" || e.code === "disconnected");

  await redis.start(); // empty: every stream starts again under a new epoch
  for (const hub of hubs) {
    await waitFor(async () => (await hub.api("GET", "/health")).status === 200, 20000, "health back to 200");
  }
  const after = await waitFor(async () => {
    try {
      return await publisher.publish(channel, { n: "after" });
    } catch {
      return null;
    }
  }, 15000, "publishing works again");
  assert.notEqual(after.epoch, firstEpoch, "Redis lost the stream: a new epoch");
  // The subscriber is told (it may re-subscribe after `after` was published: then the reply's
  // position is past it and the application reloads), then gets what comes next.
  await waitFor(
    () => watcher.resets.length > 0 || watcher.subscribed.some((s) => s.resubscribed && !s.recovered && s.epoch === after.epoch),
    15000,
    "the subscriber told to reload (recovered: false or onReset)",
  );
  const next = await publisher.publish(channel, { n: "next" });
  assert.equal(next.epoch, after.epoch);
  await waitFor(() => watcher.offsets.at(-1) === next.offset && watcher.epochs.has(next.epoch), 10000, "the next publication delivered");
  for (const hub of hubs) assert.ok(hub.alive(), "no hub crashed");
  assert.ok(![...watcher.payloads.values()].some((p) => p && p.lost), "nothing refused was delivered");
});
