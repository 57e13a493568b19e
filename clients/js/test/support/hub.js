// Test support: starts a real `wsengine hub` process on 127.0.0.1, a tiny TCP proxy that
// can cut every connection, an HS256 JWT helper and a polling helper.
//
// Every hub and proxy started here is stopped by the test that started it (t.after) and, as a
// last resort, when the Node process exits (SIGKILL of every hub still alive).

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository's root (clients/js/test/support -> ../../../..). */
export const repoRoot = path.resolve(here, "..", "..", "..", "..");
export const hubBin = process.env.WSENGINE_BIN || path.join(repoRoot, "target", "debug", "wsengine");

const live = new Set(); // child processes still running
const tempDirs = new Set();

process.on("exit", () => {
  for (const proc of live) {
    try {
      proc.kill("SIGKILL");
    } catch {}
  }
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {}
  }
});

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Polls `predicate` (sync or async) every 20 ms until it is truthy; throws after `timeoutMs`. */
export async function waitFor(predicate, timeoutMs = 5000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const extra = lastError ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${extra}`);
    }
    await sleep(20);
  }
}

function alive(proc) {
  return proc && proc.exitCode === null && proc.signalCode === null;
}

function waitExit(proc) {
  if (!alive(proc)) return Promise.resolve();
  return new Promise((resolve) => proc.once("exit", () => resolve()));
}

async function healthy(httpUrl) {
  try {
    const response = await fetch(`${httpUrl}/health`, { signal: AbortSignal.timeout(1000) });
    await response.text();
    return response.status === 200;
  } catch {
    return false;
  }
}

/**
 * Starts `wsengine hub --listen 127.0.0.1:PORT [--config FILE] ...args` and waits until
 * `GET /health` answers 200 (at most `readyTimeout` ms, default 10 s).
 *
 * Options: `config` (TOML text), `args` (more flags), `port` (default: a free one), `apiKey`
 * (sent by `publish`, `history` and `api` as `Authorization: apikey KEY`; also passed to the hub
 * as `--api-key KEY` unless `args` has `--api-key` or `config` sets `api_key`), `readyTimeout`.
 * The HTTP API is off without an API key, and any auth flag or config file turns the demo
 * configuration (anonymous access) off: add `--allow-anonymous` (or `allow_anonymous = true`)
 * when anonymous clients should still connect.
 * Pass the test context as `t` to stop the hub in `t.after` (or call `stop()` yourself).
 */
export async function startHub({ config, args = [], port, apiKey, readyTimeout = 10000, t } = {}) {
  port = port ?? (await freePort());
  const httpUrl = `http://127.0.0.1:${port}`;
  const wsUrl = `ws://127.0.0.1:${port}/ws`;
  let configFile;
  if (config !== undefined && config !== null) {
    const dir = mkdtempSync(path.join(tmpdir(), "wsengine-hub-test-"));
    tempDirs.add(dir);
    configFile = path.join(dir, "hub.toml");
    writeFileSync(configFile, config);
  }
  const argv = ["hub", "--listen", `127.0.0.1:${port}`];
  if (configFile) argv.push("--config", configFile);
  argv.push(...args);
  if (apiKey && !args.includes("--api-key") && !/^\s*api_key\s*=/m.test(config ?? "")) {
    argv.push("--api-key", apiKey);
  }

  let stderrText = "";
  let stdoutText = "";
  let proc = null;

  async function launch() {
    proc = spawn(hubBin, argv, { stdio: ["ignore", "pipe", "pipe"] });
    const child = proc;
    live.add(child);
    child.on("exit", () => live.delete(child));
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk) => (stdoutText += chunk));
    child.stderr.on("data", (chunk) => (stderrText += chunk));
    let spawnError = null;
    child.on("error", (error) => (spawnError = error));
    const deadline = Date.now() + readyTimeout;
    for (;;) {
      if (spawnError) throw new Error(`cannot start ${hubBin}: ${spawnError.message}`);
      if (!alive(child)) {
        throw new Error(
          `wsengine hub exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready; stderr:\n${stderrText}`,
        );
      }
      if (await healthy(httpUrl)) return;
      if (Date.now() >= deadline) {
        child.kill("SIGKILL");
        await waitExit(child);
        throw new Error(`wsengine hub not ready on ${httpUrl} after ${readyTimeout} ms; stderr:\n${stderrText}`);
      }
      await sleep(25);
    }
  }

  await launch();

  const hub = {
    port,
    httpUrl,
    wsUrl,
    args: argv,
    get proc() {
      return proc;
    },
    /** stderr of every run so far. */
    stderr: () => stderrText,
    stdout: () => stdoutText,
    alive: () => alive(proc),
    /** SIGTERM (clients get 1001), wait for the exit; SIGKILL after 5 s. */
    async stop() {
      const child = proc;
      if (!alive(child)) return;
      try {
        child.kill("SIGCONT"); // a paused hub cannot handle SIGTERM
      } catch {}
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (alive(child)) child.kill("SIGKILL");
      }, 5000);
      await waitExit(child);
      clearTimeout(timer);
    },
    /** SIGKILL (no close frames), wait for the exit. */
    async kill() {
      const child = proc;
      if (!alive(child)) return;
      child.kill("SIGKILL");
      await waitExit(child);
    },
    /** Kills the hub if it still runs, then starts it again on the same port with the same args. */
    async restart() {
      await hub.kill();
      const deadline = Date.now() + readyTimeout;
      // The port may linger for a moment; retry the launch until the deadline.
      for (;;) {
        try {
          await launch();
          return;
        } catch (error) {
          if (Date.now() >= deadline) throw error;
          await sleep(100);
        }
      }
    },
    /** Starts it again after stop() / kill() (same as restart()). */
    start: () => hub.restart(),
    pause() {
      proc.kill("SIGSTOP");
    },
    resume() {
      proc.kill("SIGCONT");
    },
    /** A request to the HTTP API with the API key; returns { status, body }. */
    async api(method, pathAndQuery, body) {
      const headers = {};
      if (apiKey) headers.authorization = `apikey ${apiKey}`;
      if (body !== undefined) headers["content-type"] = "application/json";
      const response = await fetch(`${httpUrl}${pathAndQuery}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(5000),
      });
      const text = await response.text();
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
      return { status: response.status, body: parsed };
    },
    /** POST /api/publish; returns the parsed JSON ({offset, epoch}); throws on a non-2xx answer. */
    async publish(channel, payload) {
      const { status, body } = await hub.api("POST", "/api/publish", { channel, payload });
      if (status < 200 || status >= 300) {
        throw new Error(`POST /api/publish ${channel}: HTTP ${status} ${JSON.stringify(body)}`);
      }
      return body;
    },
    /** GET /api/history; returns the parsed JSON; throws on a non-2xx answer. */
    async history(channel, limit) {
      const query = `channel=${encodeURIComponent(channel)}` + (limit === undefined ? "" : `&limit=${limit}`);
      const { status, body } = await hub.api("GET", `/api/history?${query}`);
      if (status < 200 || status >= 300) {
        throw new Error(`GET /api/history ${channel}: HTTP ${status} ${JSON.stringify(body)}`);
      }
      return body;
    },
  };
  if (t) t.after(() => hub.stop());
  return hub;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort`: `cutAll()` destroys every connection
 * (both sides, no close frames: the client sees 1006), `block(true|false)` refuses new
 * connections (destroyed on accept) until unblocked, `close()` stops it.
 */
export async function startProxy(targetPort, { t } = {}) {
  const pairs = new Set();
  let connections = 0;
  let blocked = false;
  const server = net.createServer((client) => {
    connections++;
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = server.address().port;
  const proxy = {
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    /** Connections accepted so far. */
    get connections() {
      return connections;
    },
    get open() {
      return pairs.size;
    },
    /** While blocked, new connections are destroyed at once (the client's attempts fail). */
    block(on = true) {
      blocked = on;
    },
    cutAll() {
      const n = pairs.size;
      for (const { client, upstream } of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      return n;
    },
    close() {
      proxy.cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  if (t) t.after(() => proxy.close());
  return proxy;
}

function base64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT (test-only). `claims` is the payload object, e.g. { sub, exp }. */
export function hs256Token(secret, claims) {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(JSON.stringify(claims));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

/** Unix seconds now. */
export const nowSeconds = () => Math.floor(Date.now() / 1000);
