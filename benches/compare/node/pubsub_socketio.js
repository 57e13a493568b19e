#!/usr/bin/env node
// A pub/sub server on Socket.IO 4, for benches/compare/pubsub.sh (`wsengine load --hub
// --dialect socketio` speaks to it without the JavaScript client).
//
// Usage: node pubsub_socketio.js [--port PORT] (or PORT in the environment; default 9402)
//
// The WebSocket transport only (no polling). Events, with acks:
//   subscribe(channel, ack)  -> socket.join(channel); ack({offset: the channel's latest})
//   publish({channel, payload}, ack) -> offset + 1; ack({offset});
//                               io.to(channel).emit("publication", {channel, offset, payload})
// The per-channel offset lets the generator count lost, repeated and reordered
// publications as it does against the hub. Default adapter (in memory), one process.
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const args = process.argv.slice(2);
const at = args.indexOf('--port');
const port = Number(at >= 0 ? args[at + 1] : process.env.PORT || 9402);
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
    if (typeof ack === 'function') ack({ offset: offsets.get(channel) || 0 });
  });
  socket.on('publish', (m, ack) => {
    const offset = (offsets.get(m.channel) || 0) + 1;
    offsets.set(m.channel, offset);
    if (typeof ack === 'function') ack({ offset });
    io.to(m.channel).emit('publication', { channel: m.channel, offset, payload: m.payload });
  });
});

httpServer.listen({ host, port, backlog: 1024 }, () => {
  console.error(
    `pubsub_socketio (socket.io ${require('socket.io/package.json').version}) listening on ${host}:${port}`,
  );
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
