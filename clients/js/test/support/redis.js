// Test support: a real redis-server (Debian's package) on a free 127.0.0.1 port, without
// persistence, stopped by the test that started it (and killed on process exit).

import { spawn } from "node:child_process";
import net from "node:net";
import { freePort, sleep } from "./hub.js";

const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
});

const redisBin = process.env.REDIS_SERVER || "redis-server";

/** True once a TCP connection to 127.0.0.1:port answers PING with PONG. */
function pings(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let text = "";
    socket.setTimeout(500, () => (socket.destroy(), resolve(false)));
    socket.on("error", () => resolve(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      text += chunk;
      if (text.includes("\r\n")) {
        socket.destroy();
        resolve(text.startsWith("+PONG"));
      }
    });
  });
}

/**
 * Starts `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` and waits for
 * PONG. Returns `{ port, url, stop(), start() }` (`start` after `stop`: the same port, an empty
 * Redis, as a real restart without persistence). Pass the test context as `t` to stop it in
 * `t.after`. A missing redis-server fails with the package to install.
 */
export async function startRedis({ t } = {}) {
  const port = await freePort();
  let proc = null;
  async function launch() {
    proc = spawn(redisBin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const child = proc;
    live.add(child);
    let failed = null;
    child.on("error", (e) => (failed = e));
    child.on("exit", () => live.delete(child));
    const deadline = Date.now() + 10000;
    while (!(await pings(port))) {
      if (failed) {
        throw new Error(`cannot run ${redisBin} (${failed.message}): install Debian's redis-server package`);
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING in 10 s`);
      await sleep(50);
    }
  }
  await launch();
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}/`,
    async stop() {
      const child = proc;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
    start: launch,
  };
  if (t) t.after(() => redis.stop());
  return redis;
}
