// An HTTP proxy for the fallback tests: forwards every request to the hub (responses
// streamed as they come, so SSE and long polls pass) but refuses WebSocket upgrades, as a
// corporate proxy that breaks the upgrade does. Options: `upgrade` ("refuse": HTTP 403 then
// close, the default; "drop": close the socket without an answer), `sse: false` (GET /sse
// answered 502, as a proxy that breaks streaming might), `t` (closed in t.after).
// `proxy.dropPollAnswers(n, match)`: the next `n` answers to polls of a session whose body
// contains `match` are lost (the connection is destroyed after the hub answered).

import http from "node:http";

export async function startUpgradeRefusingProxy(targetPort, { upgrade = "refuse", sse = true, t } = {}) {
  const sockets = new Set();
  let upgradesRefused = 0;
  const requests = [];
  let drops = 0;
  let dropMatch = "";
  let dropped = 0;
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url.split("?")[0]}`);
    if (!sse && req.url.startsWith("/sse")) {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end("no streaming here");
      return;
    }
    const upstream = http.request(
      { host: "127.0.0.1", port: targetPort, method: req.method, path: req.url, headers: req.headers, agent: false },
      (answer) => {
        if (drops > 0 && req.url.startsWith("/poll?") && req.url.includes("session=")) {
          const chunks = [];
          answer.on("data", (chunk) => chunks.push(chunk));
          answer.on("end", () => {
            const body = Buffer.concat(chunks);
            if (drops > 0 && body.toString().includes(dropMatch)) {
              drops -= 1;
              dropped += 1;
              res.destroy(); // the answer is lost with its connection
              return;
            }
            res.writeHead(answer.statusCode, answer.headers);
            res.end(body);
          });
          return;
        }
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("upgrade", (req, socket) => {
    upgradesRefused += 1;
    if (upgrade === "drop") socket.destroy();
    else socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const port = server.address().port;
  const proxy = {
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    get upgradesRefused() {
      return upgradesRefused;
    },
    dropPollAnswers(n, match = "") {
      drops = n;
      dropMatch = match;
    },
    get droppedPollAnswers() {
      return dropped;
    },
    /** "METHOD /path" of every request forwarded or refused (not the upgrades). */
    requests,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  if (t) t.after(() => proxy.close());
  return proxy;
}
