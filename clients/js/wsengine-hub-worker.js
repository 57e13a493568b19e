// wsengine-hub-worker.js: the SharedWorker behind `new HubClient({sharedWorker: true})`.
//
// One worker per origin (and worker name) runs one HubClient per hub URL; every part of a
// page, and every tab, that asks for `sharedWorker` talks to it through its own MessagePort.
// The hub sees one connection. The worker keeps one server subscription per channel and
// fans its publications out to every part subscribed to it; the channel is unsubscribed
// when the last part leaves it. `getToken` stays in the pages: the worker asks the parts
// that have one, in the order they arrived.
//
// Port messages (see SharedHubClient in wsengine-hub.js): from a page `init`, `connect`,
// `subscribe`, `unsubscribe`, `request`, `token`, `leave`; to a page `event`, `sub`,
// `reply`, `getToken`.

import { HubClient, HubError, PERMANENT_SUBSCRIBE_ERRORS } from "./wsengine-hub.js";

/** url -> { client, parts: Set<Part>, channels: Map<channel, { subscription, listeners: Map<Part, sid> }> } */
const hubs = new Map();

/** One port: one part of one page. */
class Part {
  constructor(port) {
    this.port = port;
    this.hub = null;
    this.hasGetToken = false;
    this.subscriptions = new Map(); // sid -> channel
    this.tokenRequests = new Map(); // rid -> { resolve, reject }
    this.nextRid = 1;
    port.onmessage = (event) => this.onMessage(event.data);
    port.start();
  }

  post(message) {
    try {
      this.port.postMessage(message);
    } catch {
      // The page is gone; its `leave` may not have arrived.
    }
  }

  askToken() {
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      this.tokenRequests.set(rid, { resolve, reject });
      this.post({ op: "getToken", rid });
    });
  }

  onMessage(message) {
    switch (message.op) {
      case "init":
        this.hasGetToken = message.hasGetToken;
        this.join(message.options);
        return;
      case "connect":
        if (this.hub && this.hub.client.state === "closed") this.hub.client.connect();
        return;
      case "subscribe":
        this.subscribe(message.sid, message.channel, message.since);
        return;
      case "unsubscribe":
        this.unsubscribe(message.sid);
        return;
      case "request":
        this.request(message.rid, message.method, message.args);
        return;
      case "token": {
        const waiter = this.tokenRequests.get(message.rid);
        if (!waiter) return;
        this.tokenRequests.delete(message.rid);
        if (message.error) waiter.reject(new Error(message.error));
        else waiter.resolve(message.token);
        return;
      }
      case "leave":
        this.leave();
        return;
      default:
        return;
    }
  }

  join(options) {
    const key = JSON.stringify(options.url);
    let hub = hubs.get(key);
    if (!hub) {
      hub = { parts: new Set(), channels: new Map(), client: null };
      hubs.set(key, hub);
      const getToken = () => {
        const part = [...hub.parts].find((p) => p.hasGetToken);
        return part ? part.askToken() : options.token ?? null;
      };
      hub.client = new HubClient({ ...options, getToken, autoConnect: false });
      for (const name of ["connecting", "connected", "disconnected", "error", "transport"]) {
        hub.client.on(name, (data) => {
          if (name === "connected") hub.connected = data;
          const payload = name === "error" ? { error: { message: String(data.error && data.error.message) } } : data;
          for (const part of hub.parts) part.sendEvent(name, payload);
        });
      }
      hub.parts.add(this);
      this.hub = hub;
      hub.client.connect();
      return;
    }
    hub.parts.add(this);
    this.hub = hub;
    // A part that joins a live connection is connected as well: tell it as the others were told.
    if (hub.client.state === "connected" && hub.connected) this.sendEvent("connected", hub.connected);
    else this.sendEvent(null, null);
  }

  sendEvent(name, data) {
    const client = this.hub.client;
    this.post({
      op: "event",
      name,
      data,
      state: client.state,
      clientId: client.clientId,
      user: client.user,
      transport: client.transport,
    });
  }

  subscribe(sid, channel, since) {
    const hub = this.hub;
    this.subscriptions.set(sid, channel);
    let entry = hub.channels.get(channel);
    if (entry) {
      entry.listeners.set(this, sid);
      const subscription = entry.subscription;
      if (subscription.state === "subscribed" && subscription.position) {
        this.post({
          op: "sub",
          sid,
          kind: "subscribed",
          data: { channel, ...subscription.position, resubscribed: false, recovered: false },
        });
      }
      return;
    }
    entry = { listeners: new Map([[this, sid]]), subscription: null };
    hub.channels.set(channel, entry);
    const fanOut = (kind, data) => {
      for (const [part, partSid] of entry.listeners) part.post({ op: "sub", sid: partSid, kind, data });
    };
    const handlers = {
      onPublication: (publication) => fanOut("publication", publication),
      onJoin: (info) => fanOut("join", info),
      onLeave: (info) => fanOut("leave", info),
      onSubscribed: (context) => fanOut("subscribed", context),
      onReset: (context) => fanOut("reset", context),
      onError: (error) => {
        const final = PERMANENT_SUBSCRIBE_ERRORS.has(error.code);
        fanOut("error", { code: error.code, message: error.message, final });
        if (final) hub.channels.delete(channel);
      },
    };
    if (since) handlers.since = since;
    entry.subscription = hub.client.subscribe(channel, handlers);
  }

  unsubscribe(sid) {
    const channel = this.subscriptions.get(sid);
    if (channel === undefined) return;
    this.subscriptions.delete(sid);
    const entry = this.hub.channels.get(channel);
    if (!entry) return;
    entry.listeners.delete(this);
    if (entry.listeners.size === 0) {
      this.hub.channels.delete(channel);
      entry.subscription.unsubscribe();
    }
  }

  async request(rid, method, args) {
    try {
      if (!["publish", "history", "presence"].includes(method)) {
        throw new HubError("bad_request", `no method ${method}`);
      }
      const result = await this.hub.client[method](...args);
      this.post({ op: "reply", rid, result });
    } catch (e) {
      this.post({ op: "reply", rid, error: { code: e.code || "internal", message: String(e.message) } });
    }
  }

  leave() {
    if (!this.hub) return;
    for (const sid of [...this.subscriptions.keys()]) this.unsubscribe(sid);
    for (const waiter of this.tokenRequests.values()) waiter.reject(new Error("the page left"));
    this.tokenRequests.clear();
    this.hub.parts.delete(this);
    // The connection stays while other parts use it; the last part out closes it.
    if (this.hub.parts.size === 0) {
      this.hub.client.disconnect();
      for (const [key, hub] of hubs) if (hub === this.hub) hubs.delete(key);
    }
    this.hub = null;
  }
}

globalThis.onconnect = (event) => {
  for (const port of event.ports) new Part(port);
};
