// Compiled (not run) by test/types.test.js with `tsc --noEmit --strict`: the declarations in
// wsengine-hub.d.ts must describe what an application writes against the client.
import {
  HubClient,
  HubError,
  backoffDelay,
  channelsOfEventId,
  httpBaseOf,
  type Publication,
  type SubscribedContext,
  type Transport,
} from "../../wsengine-hub.js";

const client = new HubClient({
  url: ["wss://a.example/ws", "wss://b.example/ws"],
  getToken: async () => "token",
  name: "ada",
  maxReconnectAttempts: 10,
  offlineQueueSize: 50,
  sharedWorker: false,
});
const stop: () => void = client.on("disconnected", (e) => {
  const code: number = e.code;
  const retry: boolean = e.willRetry;
  console.log(code, retry, e.delay ?? 0, e.reason);
});
stop();
client.on("connected", (e) => console.log(e.client, e.user, e.pingInterval, e.expiresAt, e.url));
const room = client.subscribe("chat:lobby", {
  onPublication: (p: Publication) => console.log(p.channel, p.offset, p.epoch, p.payload, p.info?.name),
  onJoin: (who, channel) => console.log(who.client, who.user, channel),
  onSubscribed: (ctx: SubscribedContext) => ctx.resubscribed && !ctx.recovered,
  onReset: (ctx) => console.log(ctx.previousEpoch, ctx.epoch),
  onError: (e: HubError) => console.log(e.code),
});
room.ready().then((ctx) => ctx.offset);
room.publish({ text: "hi" }).then((position) => position.offset + 1);
client.history("chat:lobby", { limit: 10, since: { offset: 1, epoch: "e" } }).then((h) => h.publications.length);
client.presence("chat:lobby").then((p) => p.clients.map((c) => c.client));
const delay: number = backoffDelay(2, 500, 20000, Math.random);
console.log(delay, client.state, client.clientId, room.state, room.position?.offset);
// @ts-expect-error: the url is required
new HubClient({});
// The fallback transports.
const fallback = new HubClient({
  url: "wss://a.example/ws",
  transports: ["websocket", "sse", "long-polling"],
  fallbackAfter: 2,
  websocketRetryAfter: 60000,
  httpUrl: "https://a.example",
  pollTimeout: 20,
});
const used: Transport = fallback.transport;
fallback.on("transport", (e) => console.log(e.previous, e.transport, e.reason));
fallback.on("connected", (e) => console.log(e.transport === "sse"));
console.log(used, httpBaseOf("ws://h/ws"), channelsOfEventId("1:e:c").length);
// @ts-expect-error: not a transport
new HubClient({ url: "ws://h/ws", transports: ["carrier-pigeon"] });
