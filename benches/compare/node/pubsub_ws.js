#!/usr/bin/env node
// A pub/sub server on Node's `ws` speaking the subset of the hub protocol
// (docs/HUB-PROTOCOL.md) that `wsengine load --hub` uses, for benches/compare/pubsub.sh.
//
// Usage: node pubsub_ws.js [--port PORT] (or PORT in the environment; default 9401)
//
// `connect` -> reply with a client id; `subscribe` -> the socket joins the channel's Set,
// reply with the channel's epoch and latest offset; `publish` -> offset + 1, reply, then
// the `publication` is serialized once (one JSON.stringify) and that string is sent to
// every member of the Set: the broadcast ws's README recommends. `pong` is ignored; the
// server sends no pings (the runs are shorter than the hub's 25 s). One JavaScript thread;
// selects the subprotocol wsengine.hub.v1. No history, presence or limits.
'use strict';

const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const at = args.indexOf('--port');
const port = Number(at >= 0 ? args[at + 1] : process.env.PORT || 9401);
const host = '127.0.0.1';
const epoch = Math.random().toString(36).slice(2, 10);

/** channel name -> { members: Set<WebSocket>, offset: number } */
const channels = new Map();
let nextClient = 1;

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: false,
  maxPayload: 64 << 20,
  clientTracking: false,
  backlog: 1024,
  handleProtocols: (protocols) => (protocols.has('wsengine.hub.v1') ? 'wsengine.hub.v1' : false),
});

function channel(name) {
  let c = channels.get(name);
  if (!c) {
    c = { members: new Set(), offset: 0 };
    channels.set(name, c);
  }
  return c;
}

wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  const client = String(nextClient++);
  const joined = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.close(1003);
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return ws.close(1003);
    }
    switch (m.type) {
      case 'connect':
        ws.send(JSON.stringify({
          type: 'reply', id: m.id,
          result: { client, user: '', ping_interval: 25, expires_at: null },
        }));
        break;
      case 'subscribe': {
        const c = channel(m.channel);
        c.members.add(ws);
        joined.push(c);
        ws.send(JSON.stringify({ type: 'reply', id: m.id, result: { epoch, offset: c.offset } }));
        break;
      }
      case 'publish': {
        const c = channel(m.channel);
        c.offset += 1;
        ws.send(JSON.stringify({ type: 'reply', id: m.id, result: { offset: c.offset, epoch } }));
        const text = JSON.stringify({
          type: 'publication', channel: m.channel, offset: c.offset, epoch,
          payload: m.payload, info: { client, user: '' },
        });
        for (const member of c.members) member.send(text);
        break;
      }
      case 'pong':
        break;
      default:
        ws.send(JSON.stringify({
          type: 'error', id: m.id ?? null,
          error: { code: 'unknown_type', message: String(m.type) },
        }));
    }
  });
  ws.on('close', () => {
    for (const c of joined) c.members.delete(ws);
  });
  ws.on('error', () => {});
});
wss.on('listening', () => {
  console.error(`pubsub_ws (ws ${require('ws/package.json').version}) listening on ${host}:${port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
