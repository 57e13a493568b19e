// Unit tests of wsengine-hub.js: pure functions and what a client does without a network
// (autoConnect: false, a WebSocket constructor that fails the test if it is ever called).
// Run: cd clients/js && node --test test/*.test.js

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { HubClient, HubError, backoffDelay } from "../wsengine-hub.js";

const MIN = 500;
const MAX = 20000;
const cap = (attempt, min = MIN, max = MAX) => Math.min(max, min * 2 ** attempt);

function stats(values) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, sd: Math.sqrt(variance), min: Math.min(...values), max: Math.max(...values) };
}

/** A WebSocket constructor that must never be used (these tests have no network). */
class NoWebSocket {
  constructor(url) {
    throw new Error(`a unit test opened a WebSocket to ${url}`);
  }
}

describe("backoffDelay", () => {
  test("is a finite number in [0, min(max, min * 2^attempt)] for every attempt", { timeout: 5000 }, () => {
    for (let attempt = 0; attempt <= 40; attempt++) {
      for (let i = 0; i < 300; i++) {
        const delay = backoffDelay(attempt, MIN, MAX);
        assert.equal(typeof delay, "number");
        assert.ok(Number.isFinite(delay), `attempt ${attempt}: ${delay} is not finite`);
        assert.ok(delay >= 0, `attempt ${attempt}: negative delay ${delay}`);
        assert.ok(delay <= cap(attempt), `attempt ${attempt}: ${delay} > cap ${cap(attempt)}`);
      }
    }
    // Huge attempt counts (2^attempt overflows to Infinity) stay capped and finite.
    for (const attempt of [100, 1024, 5000, Number.MAX_SAFE_INTEGER]) {
      for (const r of [0, 0.5, 0.999999]) {
        const delay = backoffDelay(attempt, MIN, MAX, () => r);
        assert.ok(Number.isFinite(delay) && delay >= 0 && delay <= MAX, `attempt ${attempt}, random ${r}: ${delay}`);
      }
    }
  });

  test("the extremes of the random source reach the cap, which doubles per attempt up to max", { timeout: 5000 }, () => {
    const top = () => 0.999999;
    for (let attempt = 0; attempt <= 12; attempt++) {
      const delay = backoffDelay(attempt, MIN, MAX, top);
      const expected = cap(attempt);
      assert.ok(
        delay <= expected && delay >= expected * 0.99 - 1,
        `attempt ${attempt}: random→1 gave ${delay}, expected ≈ ${expected}`,
      );
    }
    // Past the point where min * 2^attempt > max, the cap is max.
    assert.ok(backoffDelay(6, MIN, MAX, top) >= MAX * 0.99 - 1);
    assert.ok(backoffDelay(30, MIN, MAX, top) >= MAX * 0.99 - 1);
    // Other min/max pairs.
    assert.ok(Math.abs(backoffDelay(3, 100, 10000, top) - 800) <= 8);
    assert.ok(Math.abs(backoffDelay(10, 100, 10000, top) - 10000) <= 100);
  });

  test("full jitter: a uniform draw scaled to the cap (attempts past the first)", { timeout: 5000 }, () => {
    for (let attempt = 2; attempt <= 10; attempt++) {
      for (const r of [0.25, 0.5, 0.75]) {
        const delay = backoffDelay(attempt, MIN, MAX, () => r);
        const expected = r * cap(attempt);
        assert.ok(Math.abs(delay - expected) <= 1, `attempt ${attempt}, random ${r}: ${delay}, expected ${expected}`);
      }
      // A zero draw is allowed to be zero (or small) past the first attempt, never negative.
      const low = backoffDelay(attempt, MIN, MAX, () => 0);
      assert.ok(low >= 0 && low <= MIN / 2, `attempt ${attempt}, random 0: ${low}`);
    }
  });

  test("the first reconnect attempt is never below min / 2", { timeout: 5000 }, () => {
    // The .d.ts: "never below min / 2 on the first attempt". The client computes the delay
    // before ConnectingEvent.attempt 1 as backoffDelay(0, ...) (attempt - 1); accept either
    // convention (the floor on attempt 0 or on attempt 1) but require one of them.
    const floorHolds = (attempt) => {
      for (const r of [0, 1e-9, 0.01, 0.1]) {
        if (backoffDelay(attempt, MIN, MAX, () => r) < MIN / 2) return false;
      }
      return true;
    };
    assert.ok(floorHolds(0) || floorHolds(1), "neither attempt 0 nor attempt 1 keeps the min / 2 floor");
    for (let i = 0; i < 500; i++) {
      const d0 = backoffDelay(0, MIN, MAX);
      const d1 = backoffDelay(1, MIN, MAX);
      assert.ok(d0 <= cap(0) && d1 <= cap(1));
    }
  });

  test("200 draws for one attempt are spread across the window", { timeout: 5000 }, () => {
    for (const attempt of [1, 3, 5, 8]) {
      const c = cap(attempt);
      const draws = Array.from({ length: 200 }, () => backoffDelay(attempt, MIN, MAX));
      const distinct = new Set(draws.map((d) => Math.round(d))).size;
      const s = stats(draws);
      // A uniform draw over [a, c] with a <= c/2 has sd >= c / (2 * sqrt(12)) ≈ 0.144 c.
      assert.ok(distinct >= 100, `attempt ${attempt}: only ${distinct} distinct values in 200 draws`);
      assert.ok(s.sd >= 0.1 * c, `attempt ${attempt}: sd ${s.sd.toFixed(1)} < 10% of cap ${c}`);
      assert.ok(s.max - s.min >= 0.35 * c, `attempt ${attempt}: range ${s.min}..${s.max} too narrow for cap ${c}`);
      assert.ok(s.max >= 0.8 * c, `attempt ${attempt}: max draw ${s.max} never near cap ${c}`);
    }
    // Past the first attempt, the lower part of the window is used too (full jitter, not "equal jitter").
    const draws = Array.from({ length: 200 }, () => backoffDelay(6, MIN, MAX));
    assert.ok(Math.min(...draws) <= 0.2 * MAX, `attempt 6: min draw ${Math.min(...draws)} never in the lower fifth`);
  });
});

describe("HubError", () => {
  test("is an Error with a code and a message", { timeout: 5000 }, () => {
    const error = new HubError("queue_full", "too many");
    assert.ok(error instanceof Error);
    assert.ok(error instanceof HubError);
    assert.equal(error.code, "queue_full");
    assert.equal(error.message, "too many");
    assert.ok(typeof error.stack === "string");
  });
});

describe("HubClient without a connection", () => {
  const options = (extra = {}) => ({
    url: "ws://127.0.0.1:9/ws",
    WebSocket: NoWebSocket,
    autoConnect: false,
    ...extra,
  });

  test("autoConnect: false opens nothing and stays disconnected", { timeout: 5000 }, async () => {
    const client = new HubClient(options());
    const seen = [];
    client.on("connecting", (e) => seen.push(e));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(client.state, "disconnected");
    assert.equal(client.clientId, null);
    assert.equal(client.user, null);
    assert.deepEqual(seen, []);
    client.disconnect();
  });

  test("on() returns a function that removes the listener", { timeout: 5000 }, async () => {
    // Provoke an event without network: a constructor that throws fails the attempt, which
    // the client reports (connecting, then disconnected or error) and retries.
    let opened = 0;
    class Refusing {
      constructor() {
        opened++;
        throw new Error("refused");
      }
    }
    const client = new HubClient(options({ WebSocket: Refusing, minReconnectDelay: 50, maxReconnectDelay: 50 }));
    const a = [];
    const b = [];
    const offA = client.on("connecting", (e) => a.push(e));
    client.on("connecting", (e) => b.push(e));
    client.on("error", () => {});
    assert.equal(typeof offA, "function");
    offA();
    client.connect();
    await new Promise((resolve) => setTimeout(resolve, 300));
    client.disconnect();
    assert.ok(b.length >= 1, "the remaining listener saw no connecting event");
    assert.equal(a.length, 0, "a removed listener was still called");
    assert.ok(opened >= 1);
  });

  test("subscribing twice to a channel throws already_subscribed", { timeout: 5000 }, () => {
    const client = new HubClient(options());
    const sub = client.subscribe("chat:lobby");
    assert.equal(sub.channel, "chat:lobby");
    assert.equal(sub.state, "subscribing");
    assert.equal(sub.position, null);
    assert.equal(client.getSubscription("chat:lobby"), sub);
    assert.equal(client.getSubscription("chat:other"), null);
    assert.throws(
      () => client.subscribe("chat:lobby"),
      (error) => error instanceof HubError && error.code === "already_subscribed",
    );
    sub.ready().catch(() => {});
    client.disconnect();
  });

  test("the offline queue keeps offlineQueueSize publishes and rejects the next with queue_full", { timeout: 5000 }, async () => {
    const client = new HubClient(options({ offlineQueueSize: 3 }));
    const kept = [1, 2, 3].map((n) => client.publish("q", { n }));
    const settled = kept.map(() => false);
    kept.forEach((p, i) => p.then(() => (settled[i] = true), () => (settled[i] = true)));
    await assert.rejects(client.publish("q", { n: 4 }), (error) => error instanceof HubError && error.code === "queue_full");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(settled, [false, false, false], "queued publishes settled while disconnected");
    // disconnect(): the queued publishes can never be sent: they reject with `closed`.
    client.disconnect();
    for (const p of kept) {
      await assert.rejects(p, (error) => error instanceof HubError && error.code === "closed");
    }
  });

  test("offlineQueueSize: 0 rejects a publish at once with queue_full", { timeout: 5000 }, async () => {
    const client = new HubClient(options({ offlineQueueSize: 0 }));
    await assert.rejects(client.publish("q", 1), (error) => error instanceof HubError && error.code === "queue_full");
    client.disconnect();
  });

  test("requests after disconnect() reject with closed", { timeout: 5000 }, async () => {
    const client = new HubClient(options());
    client.disconnect();
    assert.ok(["disconnected", "closed"].includes(client.state), `state ${client.state}`);
    const never = new Promise((_, reject) => setTimeout(() => reject(new Error("no answer in 1 s")), 1000).unref());
    for (const request of [client.history("q"), client.presence("q"), client.publish("q", 1)]) {
      await assert.rejects(Promise.race([request, never]), (error) => error instanceof HubError && error.code === "closed");
    }
  });
});
