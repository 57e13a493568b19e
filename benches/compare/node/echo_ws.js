#!/usr/bin/env node
// Echo server on Node's `ws` (with bufferutil for masking), for benches/compare/run.sh.
//
// Usage: node echo_ws.js [--no-deflate] 127.0.0.1:PORT
//
// One Node process (one JavaScript thread; zlib work for permessage-deflate runs on
// libuv's thread pool, which `taskset` pins with the rest of the process). Every text or
// binary message is sent back as it came; ws answers Pings and Closes itself.
// permessage-deflate is on (ws's defaults: context takeover, threshold 1024 bytes, i.e.
// messages under 1 KiB go out uncompressed) unless --no-deflate. Each connection's
// negotiated extensions are logged to stderr, so run.sh can check what was agreed.
'use strict';

const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const deflate = !args.includes('--no-deflate');
const addr = args.filter((a) => a !== '--listen' && !a.startsWith('--')).pop() || '127.0.0.1:9301';
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: deflate,
  maxPayload: 64 << 20,
  clientTracking: false,
});

let logged = 0;
wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  if (logged < 3) {
    logged += 1;
    console.error(
      `echo_ws: connection from ${req.socket.remotePort}: offered ` +
        `[${req.headers['sec-websocket-extensions'] || ''}], negotiated [${ws.extensions}]`,
    );
  }
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', (e) => console.error(`connection: ${e.message}`));
});
wss.on('listening', () => {
  console.error(`echo_ws (ws ${require('ws/package.json').version}) listening on ${host}:${port}, permessage-deflate ${deflate ? 'on' : 'off'}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
