#!/usr/bin/env node
// A pub/sub server on Socket.IO 4, for benches/compare/pubsub.sh (`wsengine load --hub
// --dialect socketio` speaks to it without the JavaScript client).
//
// Usage: node pubsub_socketio.js [--port PORT] [--redis URL]
//   (or PORT in the environment; default 9402)
//
// The WebSocket transport only (no polling). Events, with acks:
//   subscribe(channel, ack)  -> socket.join(channel); ack({offset: the channel's latest})
//   publish({channel, payload}, ack) -> offset + 1; ack({offset});
//                               io.to(channel).emit("publication", {channel, offset, payload})
// The per-channel offset lets the generator count lost, repeated and reordered
// publications as it does against the hub. Default adapter (in memory), one process.
//
// With --redis URL (benches/compare/cluster.sh): one of several processes on
// @socket.io/redis-adapter, set up as its README shows (createAdapter with a publishing and
// a subscribing client; ioredis, the client its documentation advises for reconnects):
// io.to(channel).emit reaches the members on this process and is PUBLISHed once for the
// others. Socket.IO shares no offsets between processes, so there are none: acks are
// empty, and the generator checks each publisher's own sequence (its payload's `p` and
// `s`) instead.
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const args = process.argv.slice(2);
const at = args.indexOf('--port');
const port = Number(at >= 0 ? args[at + 1] : process.env.PORT || 9402);
const redisAt = args.indexOf('--redis');
const redisUrl = redisAt >= 0 ? args[redisAt + 1] : null;
const host = '127.0.0.1';

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 64 << 20,
});

/** channel name -> latest offset */
const offsets = new Map();

io.on('connection', (socket) => {
  socket.on('subscribe', (channel, ack) => {
    socket.join(channel);
    if (typeof ack !== 'function') return;
    ack(redisUrl ? {} : { offset: offsets.get(channel) || 0 });
  });
  socket.on('publish', (m, ack) => {
    if (redisUrl) {
      if (typeof ack === 'function') ack({});
      io.to(m.channel).emit('publication', { channel: m.channel, payload: m.payload });
      return;
    }
    const offset = (offsets.get(m.channel) || 0) + 1;
    offsets.set(m.channel, offset);
    if (typeof ack === 'function') ack({ offset });
    io.to(m.channel).emit('publication', { channel: m.channel, offset, payload: m.payload });
  });
});

function listen() {
  httpServer.listen({ host, port, backlog: 1024 }, () => {
    const adapter = redisUrl
      ? `, @socket.io/redis-adapter ${require('@socket.io/redis-adapter/package.json').version} on ${redisUrl}`
      : '';
    console.error(
      `pubsub_socketio (socket.io ${require('socket.io/package.json').version}${adapter}) listening on ${host}:${port}`,
    );
  });
}

if (redisUrl) {
  const { Redis } = require('ioredis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const pubClient = new Redis(redisUrl);
  const subClient = pubClient.duplicate();
  for (const client of [pubClient, subClient]) {
    client.on('error', (e) => console.error(`redis: ${e.message}`));
  }
  io.adapter(createAdapter(pubClient, subClient));
  // Listen once both clients are connected, so no publication is lost at the start.
  Promise.all([pubClient, subClient].map((c) => new Promise((ok) => c.once('ready', ok)))).then(
    listen,
  );
} else {
  listen();
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
