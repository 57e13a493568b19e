// wsengine-hub.js: the JavaScript client of `wsengine hub`, for browsers and Node 20+.
//
// One ES module, no build step, no dependency. It speaks the hub protocol, version 1
// (docs/HUB-PROTOCOL.md): `connect` first, requests answered by `reply`/`error` with the
// same id, publications with offsets and epochs, `ping`/`pong`. On top of the protocol it
// does what a bare `new WebSocket(url)` does not:
//
// - reconnects with exponential backoff and full jitter, so that the clients of a restarted
//   hub spread their attempts instead of arriving on the same tick; stops on the close codes
//   that say retrying cannot help (1000, 1003, 4005, 4001 without a new token);
// - calls `getToken()` before every attempt, refreshes the token before `exp`, and reconnects
//   at once after 4002;
// - re-subscribes every subscription with `since` (its last offset and epoch), delivers the
//   recovered publications before live ones, drops repeats, and tells the application when
//   recovery failed (`onSubscribed` with `recovered: false`, `onReset` on an epoch change);
// - declares the connection dead when nothing arrives for the server's `ping_interval` plus a
//   grace period (a half-open TCP connection that a bare WebSocket never notices);
// - keeps requests made while disconnected in a bounded queue, sent in order after reconnect;
// - where the WebSocket upgrade does not get through, speaks the same protocol over SSE or
//   HTTP long polling (`transports`, `fallbackAfter`, `websocketRetryAfter`; HUB-PROTOCOL.md,
//   "Fallback transports"), with the same API, events and recovery;
// - with `sharedWorker`, shares one connection between the parts of a page and between tabs
//   (wsengine-hub-worker.js).
//
// Types: wsengine-hub.d.ts. Tests: test/ (Node, against a real hub) and test/browser/.

const PROTOCOL = "wsengine.hub.v1";

/** The close codes after which the client does not reconnect (HUB-PROTOCOL.md, "Close codes"). */
const FINAL_CLOSE_CODES = new Set([1000, 1003, 4005]);
/** Subscription errors that a later attempt cannot fix. */
const PERMANENT_SUBSCRIBE_ERRORS = new Set([
  "bad_request",
  "unknown_type",
  "not_found",
  "permission_denied",
  "disabled",
  "unauthorized",
]);
/** Backoff attempts added after 4004 (rate limited): a longer wait, as the protocol asks. */
const RATE_LIMITED_EXTRA_ATTEMPTS = 3;
/**
 * Failures to open added to `fallbackAfter` for a transport that has already connected in
 * this client: a network or hub outage is likelier than a proxy that started to refuse it.
 */
const WORKED_EXTRA_FAILURES = 4;

const TRANSPORTS_DEFAULT = ["websocket", "sse", "long-polling"];

const DEFAULTS = {
  minReconnectDelay: 500,
  maxReconnectDelay: 20000,
  maxReconnectAttempts: Infinity,
  requestTimeout: 10000,
  connectTimeout: 10000,
  pingGrace: 10000,
  offlineQueueSize: 100,
  autoConnect: true,
  transports: TRANSPORTS_DEFAULT,
  fallbackAfter: 2,
  websocketRetryAfter: 60000,
  pollTimeout: 25,
};

/** An error the server answered with, or one the client raised itself (see the .d.ts). */
export class HubError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "HubError";
    this.code = code;
  }
}

/**
 * Full-jitter exponential backoff: a uniform draw in [0, min(max, min * 2^attempt)], the
 * first attempt in [min / 2, min].
 * ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015: full jitter spreads a
 * crowd of clients best for the least total wait.)
 */
export function backoffDelay(attempt, min, max, random = Math.random) {
  const n = Math.min(Math.max(attempt, 0), 30);
  const cap = Math.min(max, min * 2 ** n);
  // The first attempt waits at least min / 2, so that a restarted hub is not hit at once.
  const floor = n === 0 ? Math.min(min / 2, cap) : 0;
  return Math.floor(floor + random() * (cap - floor));
}

/** A tiny event emitter: `on` returns the function that removes the listener. */
class Emitter {
  constructor() {
    this._listeners = new Map();
  }
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }
  _emit(event, data) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(data);
      } catch (e) {
        reportLater(e);
      }
    }
  }
}

/** An application callback that throws must not break the client: rethrow it outside. */
function reportLater(error) {
  setTimeout(() => {
    throw error;
  }, 0);
}

function callHandler(handler, ...args) {
  if (typeof handler !== "function") return;
  try {
    handler(...args);
  } catch (e) {
    reportLater(e);
  }
}

function browserIsOffline() {
  return typeof navigator !== "undefined" && navigator.onLine === false;
}

/** A subscription of a `HubClient` (the object `subscribe` returns). */
class HubSubscription {
  constructor(client, channel, handlers) {
    this._client = client;
    this.channel = channel;
    this._handlers = handlers || {};
    this.state = "subscribing";
    this.position = handlers && handlers.since ? { ...handlers.since } : null;
    this._retryTimer = null;
    this._readyWaiters = [];
    this._firstContext = null;
    this._failure = null;
  }

  ready() {
    if (this._firstContext) return Promise.resolve(this._firstContext);
    if (this._failure) return Promise.reject(this._failure);
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }
  publish(payload) {
    return this._client.publish(this.channel, payload);
  }
  history(options) {
    return this._client.history(this.channel, options);
  }
  presence() {
    return this._client.presence(this.channel);
  }
  unsubscribe() {
    return this._client._unsubscribe(this);
  }

  _settleReady(context, failure) {
    if (context && !this._firstContext) this._firstContext = context;
    if (failure) this._failure = failure;
    const waiters = this._readyWaiters;
    this._readyWaiters = [];
    for (const w of waiters) context ? w.resolve(context) : w.reject(failure);
  }

  /** Delivers one publication unless it repeats one already delivered. */
  _deliver(publication) {
    const position = this.position;
    if (position && publication.epoch === position.epoch) {
      if (publication.offset <= position.offset) return;
    } else if (position && position.epoch && this.state === "subscribed") {
      // The stream lost its history under a live subscription (HUB-PROTOCOL.md, "Epoch
      // change under live subscribers"): the same as `recovered: false`.
      callHandler(this._handlers.onReset, {
        channel: this.channel,
        epoch: publication.epoch,
        offset: publication.offset,
        previousEpoch: position.epoch,
      });
    }
    this.position = { offset: publication.offset, epoch: publication.epoch };
    callHandler(this._handlers.onPublication, publication);
  }
}

// --- Fallback transports: SSE and long polling -----------------------------------------
//
// HUB-PROTOCOL.md, "Fallback transports". A session is what a WebSocket connection is on
// /ws; its first downstream request is its `connect` and its first message a `session`
// (which carries the `connect` reply's fields). The client's messages go up as
// `POST /api/send?session=ID` (one message or an array), at most one POST in flight so that
// they keep their order. Both classes below look like a WebSocket to HubClient (`send`,
// `close`, `onmessage`, `onclose`) plus `onsession` (the connect result) and, for SSE,
// `onsuspend` (the browser's EventSource is reconnecting by itself with Last-Event-ID).

/**
 * The body is JSON whatever its Content-Type (the protocol); text/plain keeps the POST a
 * "simple" request, so a page of another origin needs no CORS preflight per message.
 */
const POST_CONTENT_TYPE = "text/plain;charset=UTF-8";
/** Where a page remembers the transport that worked (sessionStorage), followed by the HTTP base. */
const TRANSPORT_STORAGE_KEY = "wsengine-hub.transport:";

/** ws://host:port/ws -> http://host:port (wss -> https); a path before `/ws` is kept. */
export function httpBaseOf(url) {
  const u = new URL(url);
  const protocol = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  const path = u.pathname.replace(/\/ws\/?$/, "").replace(/\/$/, "");
  return `${protocol}//${u.host}${path}`;
}

/** The channels of an SSE event id (`OFFSET:EPOCH:CHANNEL` items joined by `,`). */
export function channelsOfEventId(id) {
  const channels = [];
  if (!id) return channels;
  for (const item of String(id).split(",")) {
    const first = item.indexOf(":");
    const second = first < 0 ? -1 : item.indexOf(":", first + 1);
    if (second > 0 && second < item.length - 1) channels.push(item.slice(second + 1));
  }
  return channels;
}

function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return parts.join("&");
}

/** What SSE and long polling share: the session id, the upstream POSTs, the `close` message. */
class FallbackConnection {
  constructor(client, base, transport) {
    this.transport = transport;
    this._base = base;
    this._fetch = client._fetch;
    this.session = null;
    this.onmessage = null; // (data: object) => void
    this.onsession = null; // (sessionMessage) => void
    this.onclose = null; // ({code, reason}) => void
    this.onerror = null;
    this.onopen = null;
    this._queue = []; // JSON strings waiting for the next POST
    this._posting = false;
    this._flushScheduled = false;
    this._closed = false;
  }

  /** Queues one message (a JSON string); queued messages go up together in one POST. */
  send(text) {
    if (this._closed) throw new Error("the session is closed");
    this._queue.push(text);
    if (!this._posting && !this._flushScheduled && this.session) {
      this._flushScheduled = true;
      queueMicrotask(() => {
        this._flushScheduled = false;
        this._flush();
      });
    }
  }

  async _flush() {
    if (this._posting || this._closed || !this.session || this._queue.length === 0) return;
    const batch = this._queue;
    this._queue = [];
    const body = batch.length === 1 ? batch[0] : `[${batch.join(",")}]`;
    const session = this.session;
    this._posting = true;
    let response;
    try {
      response = await this._fetch(`${this._base}/api/send?${query({ session })}`, {
        method: "POST",
        headers: { "content-type": POST_CONTENT_TYPE },
        body,
      });
      // The answer has no body that matters (204); drain it so the connection is reused.
      await response.text().catch(() => {});
    } catch (e) {
      this._posting = false;
      // Lost with its connection: the messages may or may not have been queued (a retry could
      // publish twice), so the session is given up: the client reconnects and recovers.
      if (session === this.session) this._lost(1006, "POST /api/send failed: " + (e && e.message ? e.message : e));
      return;
    }
    this._posting = false;
    if (this._closed) return;
    if (session !== this.session) {
      // The session changed meanwhile (SSE resumed): what was queued belongs to the new one.
      this._flush();
      return;
    }
    if (response.status === 404) {
      this._lost(1006, "the session is gone (404 from /api/send)");
      return;
    }
    if (response.status === 413) {
      this._lost(1009, "a message over max_message_size (413 from /api/send)");
      return;
    }
    if (response.status === 400) {
      this.onerror?.(new HubError("bad_request", "the server refused a POST /api/send body (400)"));
    } else if (response.status >= 300) {
      this._lost(1006, `POST /api/send answered ${response.status}`);
      return;
    }
    this._flush();
  }

  /** The server's messages, in order; `close` ends the session; `session` opens or resumes it. */
  _messages(list) {
    for (const message of list) {
      if (this._closed) return;
      if (!message || typeof message !== "object") continue;
      if (message.type === "session") {
        this.session = message.session;
        this.onsession?.(message);
        this._flush();
      } else if (message.type === "close") {
        this._lost(typeof message.code === "number" ? message.code : 1006, message.reason || "");
        return;
      } else {
        this.onmessage?.(message);
      }
    }
  }

  /** Ends the session: tells the server (best effort) and stops the downstream. */
  close() {
    if (this._closed) return;
    const session = this.session;
    this._shut();
    if (session) this._sayClose(session);
  }

  _sayClose(session) {
    try {
      this._fetch(`${this._base}/api/send?${query({ session })}`, {
        method: "POST",
        headers: { "content-type": POST_CONTENT_TYPE },
        body: '{"type":"close"}',
        keepalive: true,
      })
        .then((response) => response.text())
        .catch(() => {});
    } catch {
      // Best effort.
    }
  }

  _shut() {
    this._closed = true;
    this._queue = [];
  }

  _lost(code, reason) {
    if (this._closed) return;
    this._shut();
    const onclose = this.onclose;
    this.onclose = null;
    onclose?.({ code, reason });
  }
}

/** SSE downstream: `EventSource(base + /sse?token&name)`; every event's data is one message. */
class SseConnection extends FallbackConnection {
  constructor(client, base, { token, name }) {
    super(client, base, "sse");
    this.onsuspend = null; // () => void: the EventSource reconnects by itself
    this.lastEventId = "";
    this._resumeChannels = null;
    const es = new client._EventSource(`${base}/sse?${query({ token, name })}`);
    this._es = es;
    es.onmessage = (event) => {
      if (this._closed) return;
      if (typeof event.lastEventId === "string") this.lastEventId = event.lastEventId;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        this.onerror?.(new HubError("bad_message", "the server sent an event that is not JSON"));
        return;
      }
      this._messages([message]);
    };
    es.onerror = () => {
      if (this._closed) return;
      if (es.readyState === 2 /* CLOSED */ || !this.session) {
        // Refused (an HTTP error, not an event stream) or broken before the session: the
        // client decides what next (its backoff, or the next transport).
        this._lost(1006, "the event stream failed");
        return;
      }
      // CONNECTING: the EventSource reconnects by itself and sends Last-Event-ID; the server
      // opens a new session that resumes every channel named there (`subscribed` messages).
      const old = this.session;
      this.session = null;
      this._queue = [];
      this._resumeChannels = channelsOfEventId(this.lastEventId);
      this._sayClose(old); // the old session's presence ends now, not after session_timeout
      this.onsuspend?.();
    };
  }

  /** Channels the server resubscribes by itself after the current resume (null: not a resume). */
  takeResumeChannels() {
    const channels = this._resumeChannels;
    this._resumeChannels = null;
    return channels;
  }

  _shut() {
    super._shut();
    try {
      this._es.onmessage = this._es.onerror = null;
      this._es.close();
    } catch {
      // Closed already.
    }
  }
}

/** Long polling: `GET /poll?token` opens, then `GET /poll?session&seq&timeout` in a loop. */
class PollConnection extends FallbackConnection {
  constructor(client, base, { token, name, pollTimeout }) {
    super(client, base, "long-polling");
    this._pollTimeout = pollTimeout; // seconds
    this._seq = 0;
    this._abort = null;
    this._run({ token, name });
  }

  async _get(url, timeoutMs) {
    const abort = new AbortController();
    this._abort = abort;
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const response = await this._fetch(url, { signal: abort.signal, cache: "no-store" });
      const text = await response.text();
      return { status: response.status, text, headers: response.headers };
    } finally {
      clearTimeout(timer);
      if (this._abort === abort) this._abort = null;
    }
  }

  async _run({ token, name }) {
    // Opening: answered at once with [session] (or [close] when the token is refused).
    let answer;
    try {
      answer = await this._get(`${this._base}/poll?${query({ token, name })}`, 15000);
    } catch (e) {
      this._lost(1006, "GET /poll failed: " + (e && e.message ? e.message : e));
      return;
    }
    if (this._closed) return;
    if (answer.status !== 200) {
      const code = answer.status === 401 ? 4001 : answer.status === 503 ? 1013 : 1006;
      this._lost(code, `GET /poll answered ${answer.status}`);
      return;
    }
    if (!this._answer(answer.text)) return;
    if (!this.session) {
      this._lost(1006, "the opening poll answered no session");
      return;
    }
    // Polls: seq = answers received so far; a lost answer is asked for again (same seq).
    let failures = 0;
    while (!this._closed) {
      const url = `${this._base}/poll?${query({ session: this.session, seq: this._seq + 1, timeout: this._pollTimeout })}`;
      try {
        answer = await this._get(url, (this._pollTimeout + 10) * 1000);
      } catch (e) {
        if (this._closed) return;
        failures += 1;
        if (failures > 3) {
          this._lost(1006, "GET /poll failed: " + (e && e.message ? e.message : e));
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 250 * failures));
        continue;
      }
      if (this._closed) return;
      if (answer.status === 200) {
        failures = 0;
        this._seq += 1;
        if (!this._answer(answer.text)) return;
      } else if (answer.status === 404) {
        this._lost(1006, "the session is gone (404 from /poll)");
        return;
      } else if (answer.status >= 500 && failures < 3) {
        failures += 1;
        await new Promise((resolve) => setTimeout(resolve, 250 * failures));
      } else {
        this._lost(1006, `GET /poll answered ${answer.status}`);
        return;
      }
    }
  }

  /** One poll answer (a JSON array of messages); false when the session ended. */
  _answer(text) {
    let list;
    try {
      list = JSON.parse(text);
    } catch {
      this._lost(1006, "a poll answer that is not JSON");
      return false;
    }
    this._messages(Array.isArray(list) ? list : [list]);
    return !this._closed;
  }

  _shut() {
    super._shut();
    try {
      this._abort?.abort();
    } catch {
      // Nothing waits.
    }
  }
}

/**
 * The client. One WebSocket at a time; see the module comment and wsengine-hub.d.ts for
 * what it does and the options.
 */
export class HubClient extends Emitter {
  constructor(options) {
    super();
    if (!options || (typeof options.url !== "string" && !Array.isArray(options.url))) {
      throw new TypeError("HubClient: options.url (a ws:// or wss:// URL, or a list) is required");
    }
    if (options.sharedWorker) {
      // The connection lives in the worker; this object only relays (see SharedHubClient).
      return new SharedHubClient(options);
    }
    this._options = { ...DEFAULTS, ...options };
    this._urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (this._urls.length === 0) throw new TypeError("HubClient: options.url is an empty list");
    this._urlIndex = 0;
    this._httpUrls = options.httpUrl
      ? Array.isArray(options.httpUrl)
        ? [...options.httpUrl]
        : [options.httpUrl]
      : null;
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this._EventSource = options.EventSource || globalThis.EventSource;
    const fetchFunction = options.fetch || globalThis.fetch;
    this._fetch = typeof fetchFunction === "function" ? (...args) => fetchFunction(...args) : null;
    const wanted = Array.isArray(this._options.transports) ? this._options.transports : TRANSPORTS_DEFAULT;
    for (const name of wanted) {
      if (!TRANSPORTS_DEFAULT.includes(name)) throw new TypeError(`HubClient: unknown transport ${name}`);
    }
    // The transports this runtime has, in the order of preference.
    this._transports = wanted.filter((name) => this._transportAvailable(name));
    if (this._transports.length === 0) {
      throw new TypeError(
        wanted.length === 1 && wanted[0] === "websocket"
          ? "HubClient: no WebSocket here; pass one as options.WebSocket (e.g. the `ws` package in Node 20)"
          : `HubClient: none of the transports ${wanted.join(", ")} is available here ` +
              "(options.WebSocket, options.EventSource, options.fetch)",
      );
    }
    this._transportIndex = 0;
    this._openFailures = 0; // attempts in a row on this transport that did not open
    this._fellBackAt = 0; // when the client left the first transport (0: it has not)
    this._probing = false; // trying the first transport again after websocketRetryAfter
    this._worked = new Set(); // transports that have connected in this client
    this.transport = this._transports[0];
    this._restoreTransport();
    this.state = "disconnected";
    this.clientId = null;
    this.user = null;
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> { resolve, reject, timer }
    this._outbox = []; // requests made while disconnected: { frame, resolve, reject }
    this._subscriptions = new Map(); // channel -> HubSubscription
    this._attempt = 0; // attempts since the last successful `connect`
    this._stopped = false;
    this._connectGeneration = 0;
    this._retryTimer = null;
    this._waitingForOnline = false;
    this._silenceTimer = null;
    this._silenceLimit = 0;
    this._refreshTimer = null;
    this._connectTimer = null;
    this._token = options.token ?? null;
    this._prefetchedToken = undefined;
    this._lastCloseCode = 0;
    this._onOnline = () => this._online();
    this._onOffline = () => this._offline();
    // A page that goes away ends its SSE or long-polling session at once (a WebSocket's TCP
    // close says it by itself; a session would otherwise wait for session_timeout).
    this._onPageHide = (event) => {
      const conn = this._ws;
      if (event && event.persisted) return; // kept in the back/forward cache: it may come back
      if (conn && conn.transport && conn.session) conn._sayClose(conn.session);
    };
    // The first attempt starts in a microtask, so that listeners added right after the
    // constructor see its `connecting` event.
    this._autoConnectPending = Boolean(this._options.autoConnect);
    if (this._autoConnectPending) queueMicrotask(() => this._autoConnectPending && this.connect());
  }

  // --- Commands ------------------------------------------------------------------------

  connect() {
    this._autoConnectPending = false;
    if (this.state === "connecting" || this.state === "connected") return;
    this._stopped = false;
    this._attempt = 0;
    this._clearRetry();
    if (typeof globalThis.addEventListener === "function") {
      // The same function twice is one listener (EventTarget), so reconnects add nothing.
      globalThis.addEventListener("online", this._onOnline);
      globalThis.addEventListener("offline", this._onOffline);
      globalThis.addEventListener("pagehide", this._onPageHide);
    }
    this._startAttempt();
  }

  disconnect() {
    this._autoConnectPending = false;
    const closed = new HubError("closed", "the client was disconnected");
    this._stop(closed);
    // Requests in flight reject with `closed` (the .d.ts), not `disconnected`.
    const pending = this._pending;
    this._pending = new Map();
    for (const request of pending.values()) {
      clearTimeout(request.timer);
      request.reject(closed);
    }
    const ws = this._ws;
    if (ws) {
      this._detach(ws);
      try {
        ws.close(1000);
      } catch {
        // Already closed.
      }
      this._connectionLost(1000, "disconnected by the application");
    }
  }

  subscribe(channel, handlers) {
    if (this._subscriptions.has(channel)) {
      throw new HubError("already_subscribed", `already subscribed to ${channel}`);
    }
    const subscription = new HubSubscription(this, channel, handlers);
    this._subscriptions.set(channel, subscription);
    if (this.state === "connected") this._sendSubscribe(subscription);
    return subscription;
  }

  getSubscription(channel) {
    return this._subscriptions.get(channel) || null;
  }

  publish(channel, payload) {
    return this._request({ type: "publish", channel, payload });
  }

  history(channel, options = {}) {
    const frame = { type: "history", channel };
    if (options.limit !== undefined) frame.limit = options.limit;
    if (options.since !== undefined) frame.since = options.since;
    return this._request(frame);
  }

  presence(channel) {
    return this._request({ type: "presence", channel });
  }

  // --- Requests ------------------------------------------------------------------------

  /** Sends a request now, or queues it (bounded) until the next connection. */
  _request(frame) {
    if (this._stopped) return Promise.reject(new HubError("closed", "the client is stopped"));
    return new Promise((resolve, reject) => {
      if (this.state === "connected") {
        this._send(frame, resolve, reject);
      } else if (this._outbox.length < this._options.offlineQueueSize) {
        this._outbox.push({ frame, resolve, reject });
      } else {
        reject(
          new HubError(
            "queue_full",
            `${this._outbox.length} requests already wait for the connection (offlineQueueSize)`,
          ),
        );
      }
    });
  }

  _send(frame, resolve, reject) {
    const id = this._nextId++;
    const timer = setTimeout(() => {
      if (this._pending.delete(id)) {
        reject(new HubError("timeout", `no reply to ${frame.type} in ${this._options.requestTimeout} ms`));
      }
    }, this._options.requestTimeout);
    this._pending.set(id, { resolve, reject, timer });
    this._write({ ...frame, id });
  }

  _write(message) {
    try {
      this._ws.send(JSON.stringify(message));
    } catch (e) {
      this._emit("error", { error: e });
    }
  }

  _sendSubscribe(subscription) {
    subscription.state = "subscribing";
    const frame = { type: "subscribe", channel: subscription.channel };
    const since = subscription.position && subscription.position.epoch ? subscription.position : null;
    if (since) frame.since = { offset: since.offset, epoch: since.epoch };
    const onResult = (result) => this._subscribed(subscription, result, Boolean(since));
    const onError = (error) => this._subscribeFailed(subscription, error);
    this._send(frame, onResult, onError);
  }

  _subscribed(subscription, result, resubscribed) {
    if (this._subscriptions.get(subscription.channel) !== subscription) return;
    subscription.state = "subscribed";
    const recovered = resubscribed && result.recovered === true;
    if (recovered) {
      for (const item of result.publications || []) {
        subscription._deliver({ channel: subscription.channel, ...item });
      }
    }
    // The reply's offset is the channel's latest: live publications continue from there.
    const position = subscription.position;
    if (!position || position.epoch !== result.epoch || position.offset < result.offset) {
      subscription.position = { offset: result.offset, epoch: result.epoch };
    }
    const context = {
      channel: subscription.channel,
      epoch: result.epoch,
      offset: result.offset,
      resubscribed,
      recovered,
    };
    subscription._settleReady(context, null);
    callHandler(subscription._handlers.onSubscribed, context);
  }

  _subscribeFailed(subscription, error) {
    if (this._subscriptions.get(subscription.channel) !== subscription) return;
    if (error.code === "disconnected") return; // re-sent on the next connection
    if (error.code === "closed") return; // disconnect(): nothing more to do
    if (error.code === "timeout" && this._ws) {
      // No reply in time: the connection is slow or dead (the silence timer deals with a
      // dead one). The server may still apply the first subscribe (it answers in order), so
      // unsubscribe before trying again, else the second is refused as a duplicate.
      if (this.state === "connected") {
        this._send({ type: "unsubscribe", channel: subscription.channel }, () => {}, () => {});
        this._sendSubscribe(subscription);
      }
      return;
    }
    callHandler(subscription._handlers.onError, error);
    if (PERMANENT_SUBSCRIBE_ERRORS.has(error.code)) {
      subscription.state = "failed";
      this._subscriptions.delete(subscription.channel);
      subscription._settleReady(null, error);
      return;
    }
    // `unavailable`, `limit_exceeded`, `internal`: try again later on this connection.
    subscription.state = "subscribing";
    const delay = backoffDelay(3, this._options.minReconnectDelay, this._options.maxReconnectDelay);
    subscription._retryTimer = setTimeout(() => {
      subscription._retryTimer = null;
      if (this.state === "connected" && this._subscriptions.get(subscription.channel) === subscription) {
        this._sendSubscribe(subscription);
      }
    }, delay);
  }

  _unsubscribe(subscription) {
    if (this._subscriptions.get(subscription.channel) !== subscription) return Promise.resolve();
    this._subscriptions.delete(subscription.channel);
    clearTimeout(subscription._retryTimer);
    const wasLive = subscription.state !== "failed";
    subscription.state = "unsubscribed";
    subscription._settleReady(null, new HubError("closed", "unsubscribed"));
    if (!wasLive || this.state !== "connected") return Promise.resolve();
    return new Promise((resolve) => {
      this._send({ type: "unsubscribe", channel: subscription.channel }, () => resolve(), () => resolve());
    });
  }

  // --- The connection --------------------------------------------------------------------

  async _startAttempt() {
    const generation = ++this._connectGeneration;
    const url = this._urls[this._urlIndex % this._urls.length];
    this._pickTransport();
    const transport = this.transport;
    this._attemptOpened = false;
    this._attemptConnected = false;
    this.state = "connecting";
    this._emit("connecting", { attempt: this._attempt, url, transport });
    let token = this._token;
    if (this._prefetchedToken !== undefined) {
      token = this._prefetchedToken;
      this._prefetchedToken = undefined;
    } else if (this._options.getToken) {
      try {
        token = await this._options.getToken();
      } catch (e) {
        if (generation !== this._connectGeneration) return;
        this._emit("error", { error: e });
        this._connectionLost(1006, "getToken() failed: " + (e && e.message ? e.message : e));
        return;
      }
    }
    if (generation !== this._connectGeneration || this._stopped) return;
    this._token = token ?? null;
    if (transport !== "websocket") {
      this._openFallback(url, transport);
      return;
    }
    let ws;
    try {
      ws = new this._WebSocket(url, PROTOCOL);
    } catch (e) {
      this._emit("error", { error: e });
      this._connectionLost(1006, "cannot open " + url + ": " + (e && e.message ? e.message : e));
      return;
    }
    this._ws = ws;
    this._connectTimer = setTimeout(() => {
      this._abandon(ws, `no connect reply in ${this._options.connectTimeout} ms`);
    }, this._options.connectTimeout);
    ws.onopen = () => {
      this._attemptOpened = true; // the upgrade went through: this transport works here
      const frame = { type: "connect" };
      if (this._token) frame.token = this._token;
      if (this._options.name) frame.name = this._options.name;
      const onConnected = (result) => this._connected(ws, url, result);
      const onRefused = (error) => {
        this._emit("error", { error });
        this._abandon(ws, "connect refused: " + error.message);
      };
      this._send(frame, onConnected, onRefused);
    };
    ws.onmessage = (event) => this._receive(ws, event.data);
    ws.onerror = () => {
      // A close event follows with the code; the event itself says nothing more.
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._detach(ws);
      this._connectionLost(event.code || 1006, event.reason || "");
    };
  }

  /** Opens an SSE or long-polling session; its `session` message is the `connect` reply. */
  _openFallback(url, transport) {
    const base = this._httpBaseFor();
    let conn;
    const params = { token: this._token, name: this._options.name, pollTimeout: this._options.pollTimeout };
    try {
      conn = transport === "sse" ? new SseConnection(this, base, params) : new PollConnection(this, base, params);
    } catch (e) {
      this._emit("error", { error: e });
      this._connectionLost(1006, `cannot open ${transport} at ${base}: ` + (e && e.message ? e.message : e));
      return;
    }
    this._ws = conn;
    this._connectTimer = setTimeout(() => {
      this._abandon(conn, `no session in ${this._options.connectTimeout} ms`);
    }, this._options.connectTimeout);
    conn.onsession = (message) => {
      if (this._ws !== conn) return;
      this._attemptOpened = true;
      if (this.state === "connected") return; // a repeat: nothing new
      this._connected(conn, url, message);
    };
    conn.onmessage = (message) => this._receive(conn, message, true);
    conn.onerror = (error) => this._emit("error", { error });
    conn.onsuspend = () => this._suspended(conn, url);
    conn.onclose = ({ code, reason }) => {
      if (this._ws !== conn) return;
      this._detach(conn);
      this._connectionLost(code, reason);
    };
  }

  /**
   * The SSE stream broke and the browser's EventSource reconnects by itself (with
   * Last-Event-ID): requests in flight are lost with the old session; the new session's
   * `session` message connects again and its `subscribed` messages resume the channels.
   */
  _suspended(conn, url) {
    if (this._ws !== conn || this.state !== "connected") return;
    clearTimeout(this._silenceTimer);
    clearTimeout(this._refreshTimer);
    clearTimeout(this._probeTimer);
    this._silenceTimer = this._refreshTimer = this._probeTimer = null;
    this._rejectPending();
    this.state = "connecting";
    this._attemptOpened = false;
    this._attemptConnected = false;
    const reason = "the event stream broke; the EventSource reconnects by itself";
    this._emit("disconnected", { code: 1006, reason, willRetry: true, delay: 0 });
    this._emit("connecting", { attempt: 0, url, transport: conn.transport });
    this._connectTimer = setTimeout(() => {
      this._abandon(conn, `the event stream did not come back in ${this._options.connectTimeout} ms`);
    }, this._options.connectTimeout);
  }

  _rejectPending() {
    this.clientId = null;
    const pending = this._pending;
    this._pending = new Map();
    for (const request of pending.values()) {
      clearTimeout(request.timer);
      request.reject(new HubError("disconnected", "the connection ended before the reply"));
    }
    for (const subscription of this._subscriptions.values()) {
      clearTimeout(subscription._retryTimer);
      if (subscription.state === "subscribed") subscription.state = "subscribing";
    }
  }

  // --- Transports --------------------------------------------------------------------------

  _transportAvailable(name) {
    if (name === "websocket") return typeof this._WebSocket === "function";
    if (name === "sse") return typeof this._EventSource === "function" && this._fetch !== null;
    if (name === "long-polling") return this._fetch !== null;
    return false;
  }

  /** The HTTP base of the fallback transports: `httpUrl`, or derived from `url`. */
  _httpBaseFor() {
    if (this._httpUrls) return this._httpUrls[this._urlIndex % this._httpUrls.length].replace(/\/$/, "");
    return httpBaseOf(this._urls[this._urlIndex % this._urls.length]);
  }

  _storageKey() {
    try {
      return TRANSPORT_STORAGE_KEY + (this._httpUrls ? this._httpUrls[0] : httpBaseOf(this._urls[0]));
    } catch {
      return TRANSPORT_STORAGE_KEY + String(this._urls[0]);
    }
  }

  _storage() {
    try {
      return typeof sessionStorage !== "undefined" ? sessionStorage : null;
    } catch {
      return null; // e.g. storage blocked for the page
    }
  }

  /** A page that fell back earlier in this tab starts from the transport that worked. */
  _restoreTransport() {
    const storage = this._storage();
    if (!storage) return;
    try {
      const saved = JSON.parse(storage.getItem(this._storageKey()) || "null");
      const index = saved ? this._transports.indexOf(saved.transport) : -1;
      if (index > 0) {
        this._transportIndex = index;
        this.transport = this._transports[index];
        this._fellBackAt = Number(saved.since) || Date.now();
      }
    } catch {
      // Unreadable: start from the first transport.
    }
  }

  _rememberTransport() {
    const storage = this._storage();
    if (!storage) return;
    try {
      if (this._transportIndex === 0) storage.removeItem(this._storageKey());
      else storage.setItem(this._storageKey(), JSON.stringify({ transport: this.transport, since: this._fellBackAt }));
    } catch {
      // Full or blocked: not remembered.
    }
  }

  _setTransport(index, reason) {
    const previous = this.transport;
    this._transportIndex = index;
    this._openFailures = 0;
    this.transport = this._transports[index];
    if (previous !== this.transport) this._emit("transport", { transport: this.transport, previous, reason });
  }

  /** Before an attempt: after `websocketRetryAfter` on a fallback, try the first transport again. */
  _pickTransport() {
    if (
      this._transportIndex > 0 &&
      !this._probing &&
      this._fellBackAt &&
      Date.now() - this._fellBackAt >= this._options.websocketRetryAfter
    ) {
      this._probeReturn = this._transportIndex;
      this._probing = true;
      this._setTransport(0, `trying ${this._transports[0]} again (websocketRetryAfter)`);
    }
  }

  /** After an attempt that did not open: the next transport after `fallbackAfter` in a row. */
  _openFailed(reason) {
    this._openFailures += 1;
    if (this._transports.length < 2) return;
    if (this._probing) {
      // The first transport still does not work: back to the one that did, for another while.
      this._probing = false;
      this._fellBackAt = Date.now();
      this._setTransport(this._probeReturn, reason);
      this._rememberTransport();
      return;
    }
    const extra = this._worked.has(this.transport) ? WORKED_EXTRA_FAILURES : 0;
    if (this._openFailures < Math.max(1, this._options.fallbackAfter) + extra) return;
    const next = (this._transportIndex + 1) % this._transports.length;
    if (this._transportIndex === 0) this._fellBackAt = Date.now();
    this._setTransport(next, reason);
  }

  /**
   * Connected over a fallback while WebSocket is the first transport: once
   * `websocketRetryAfter` has passed since the client left it, try a WebSocket upgrade in the
   * background; when it opens, move back to WebSocket (a reconnect that recovers by offsets).
   * A hub that was down (every transport failing) makes clients come back on a fallback:
   * this brings them back to WebSocket without waiting for a drop.
   */
  _scheduleProbe(conn, url) {
    clearTimeout(this._probeTimer);
    this._probeTimer = null;
    if (!conn.transport || this._transports[0] !== "websocket" || this._transportIndex === 0) return;
    const wait = Math.max(1000, (this._fellBackAt || Date.now()) + this._options.websocketRetryAfter - Date.now());
    this._probeTimer = setTimeout(() => this._probeWebSocket(conn, url), wait);
  }

  _probeWebSocket(conn, url) {
    this._probeTimer = null;
    if (this._ws !== conn || this.state !== "connected") return;
    let probe;
    let finished = false;
    let timer = null;
    const done = (ok) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (probe) {
        probe.onopen = probe.onclose = probe.onmessage = null;
        probe.onerror = () => {};
        try {
          probe.close(1000);
        } catch {
          // Never opened.
        }
      }
      if (this._ws !== conn || this.state !== "connected") return;
      if (!ok) {
        this._fellBackAt = Date.now();
        this._rememberTransport();
        this._scheduleProbe(conn, url);
        return;
      }
      this._fellBackAt = 0;
      this._probing = false;
      this._setTransport(0, `${this._transports[0]} opens again`);
      this._rememberTransport();
      this._detach(conn);
      conn.close();
      this._connectionLost(1012, `moving back to ${this._transports[0]}`);
    };
    try {
      probe = new this._WebSocket(url, PROTOCOL);
    } catch {
      done(false);
      return;
    }
    probe.onopen = () => done(true);
    probe.onclose = () => done(false);
    probe.onerror = () => {};
    probe.onmessage = null;
    timer = setTimeout(() => done(false), this._options.connectTimeout);
  }

  _connected(ws, url, result) {
    if (this._ws !== ws) return;
    clearTimeout(this._connectTimer);
    this._connectTimer = null;
    this._attemptConnected = true;
    this._openFailures = 0;
    this._worked.add(this.transport);
    if (this._transportIndex === 0) {
      this._fellBackAt = 0;
      this._probing = false;
    }
    this._rememberTransport();
    this._scheduleProbe(ws, url);
    this.state = "connected";
    this._attempt = 0;
    this._lastCloseCode = 0;
    this.clientId = result.client;
    this.user = result.user;
    this._silenceLimit = result.ping_interval * 1000 + this._options.pingGrace;
    this._heard();
    this._scheduleRefresh(result.expires_at);
    // After an SSE resume the server subscribes again by itself to the channels named in
    // Last-Event-ID (a `subscribed` message each); the others are subscribed as usual.
    const resumed = new Set((ws.takeResumeChannels && ws.takeResumeChannels()) || []);
    let resuming = false;
    for (const subscription of this._subscriptions.values()) {
      if (subscription.state === "failed") continue;
      if (resumed.has(subscription.channel)) {
        subscription.state = "subscribing";
        subscription._resuming = true;
        resuming = true;
      } else {
        this._sendSubscribe(subscription);
      }
    }
    if (resuming) {
      // Should a `subscribed` not come, subscribe as usual (unsubscribe first: the server may
      // hold the subscription already).
      setTimeout(() => {
        if (this._ws !== ws || this.state !== "connected") return;
        for (const subscription of this._subscriptions.values()) {
          if (!subscription._resuming) continue;
          subscription._resuming = false;
          this._send({ type: "unsubscribe", channel: subscription.channel }, () => {}, () => {});
          this._sendSubscribe(subscription);
        }
      }, this._options.requestTimeout);
    }
    const outbox = this._outbox;
    this._outbox = [];
    for (const { frame, resolve, reject } of outbox) this._send(frame, resolve, reject);
    this._emit("connected", {
      client: result.client,
      user: result.user,
      pingInterval: result.ping_interval,
      expiresAt: result.expires_at ?? null,
      url,
      transport: this.transport,
    });
  }

  _receive(ws, data, parsed = false) {
    if (this._ws !== ws) return;
    this._heard();
    let message;
    try {
      message = parsed ? data : JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      this._emit("error", { error: new HubError("bad_message", "the server sent a message that is not JSON") });
      return;
    }
    switch (message.type) {
      case "reply":
      case "error": {
        const pending = this._pending.get(message.id);
        if (!pending) return;
        this._pending.delete(message.id);
        clearTimeout(pending.timer);
        if (message.type === "reply") pending.resolve(message.result);
        else pending.reject(new HubError(message.error.code, message.error.message));
        return;
      }
      case "publication": {
        const subscription = this._subscriptions.get(message.channel);
        if (!subscription || subscription.state !== "subscribed") return;
        const { type: _type, ...publication } = message;
        subscription._deliver(publication);
        return;
      }
      case "join":
      case "leave": {
        const subscription = this._subscriptions.get(message.channel);
        if (!subscription) return;
        const handler = message.type === "join" ? subscription._handlers.onJoin : subscription._handlers.onLeave;
        callHandler(handler, message.info, message.channel);
        return;
      }
      case "subscribed": {
        // SSE, after the EventSource resumed with Last-Event-ID: the subscribe reply's fields.
        const subscription = this._subscriptions.get(message.channel);
        if (!subscription || !subscription._resuming) {
          if (!subscription && this.state === "connected") {
            this._send({ type: "unsubscribe", channel: message.channel }, () => {}, () => {});
          }
          return;
        }
        subscription._resuming = false;
        if (message.error) {
          this._subscribeFailed(subscription, new HubError(message.error.code, message.error.message));
        } else {
          this._subscribed(subscription, message, true);
        }
        return;
      }
      case "ping":
        // Over SSE and long polling the server needs no answer (a POST per ping would cost).
        if (!ws.transport) this._write({ type: "pong" });
        return;
      default:
        return; // A newer server's message this client does not know.
    }
  }

  /** Something arrived: the connection is alive for another `ping_interval` + grace. */
  _heard() {
    if (this.state !== "connected") return;
    clearTimeout(this._silenceTimer);
    const ws = this._ws;
    this._silenceTimer = setTimeout(() => {
      this._abandon(ws, `nothing from the server in ${this._silenceLimit} ms (ping_interval + pingGrace)`);
    }, this._silenceLimit);
  }

  /** Token refresh before `exp`: 20% of the time left early, between 0.5 s and 30 s. */
  _scheduleRefresh(expiresAt) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    if (!expiresAt || !this._options.getToken) return;
    const left = expiresAt * 1000 - Date.now();
    const margin = Math.min(30000, Math.max(500, left * 0.2));
    this._refreshTimer = setTimeout(() => this._refresh(), Math.max(0, left - margin));
  }

  async _refresh() {
    const ws = this._ws;
    let token;
    try {
      token = await this._options.getToken();
    } catch (e) {
      this._emit("error", { error: e });
      return; // The server closes with 4002 at `exp`; the reconnect asks again.
    }
    if (this._ws !== ws || this.state !== "connected" || !token) return;
    this._token = token;
    this._send(
      { type: "refresh", token },
      (result) => this._scheduleRefresh(result.expires_at),
      (error) => this._emit("error", { error }),
    );
  }

  /** Gives up on a socket that does not answer: closes it without waiting for its Close. */
  _abandon(ws, reason) {
    if (this._ws !== ws || !ws) return;
    this._detach(ws);
    try {
      ws.close(4000, "abandoned");
    } catch {
      // Nothing to do: the socket is dropped either way.
    }
    this._connectionLost(1006, reason);
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.transport) ws.onsession = ws.onsuspend = null;
    ws.onerror = () => {};
    if (this._ws === ws) this._ws = null;
  }

  /** The socket is gone (closed, abandoned or never opened): clean up, then retry or stop. */
  async _connectionLost(code, reason) {
    const generation = ++this._connectGeneration;
    clearTimeout(this._silenceTimer);
    clearTimeout(this._refreshTimer);
    clearTimeout(this._connectTimer);
    clearTimeout(this._probeTimer);
    this._silenceTimer = this._refreshTimer = this._connectTimer = this._probeTimer = null;
    this._rejectPending();
    for (const subscription of this._subscriptions.values()) subscription._resuming = false;
    // An attempt that never reached the server (no upgrade, no stream, no session, no close
    // code of the server's) counts toward moving to the next transport.
    const openFailed = !this._attemptConnected && !this._attemptOpened && (code === 1006 || code === 1015);
    if (this._stopped) {
      this.state = "closed";
      this._emit("disconnected", { code, reason, willRetry: false });
      return;
    }
    const previousClose = this._lastCloseCode;
    this._lastCloseCode = code;
    let delay;
    let stop = FINAL_CLOSE_CODES.has(code);
    if (code === 4001) {
      stop = true;
      if (this._options.getToken) {
        this.state = "disconnected";
        try {
          const token = await this._options.getToken();
          if (generation !== this._connectGeneration) return;
          if (token && token !== this._token) {
            this._prefetchedToken = token;
            stop = false;
            delay = 0;
          }
        } catch (e) {
          if (generation !== this._connectGeneration) return;
          this._emit("error", { error: e });
        }
      }
    } else if (code === 4002 && previousClose !== 4002) {
      delay = 0; // a new token at once; a second 4002 in a row backs off
    }
    this._attempt += 1;
    if (!stop && this._attempt > this._options.maxReconnectAttempts) stop = true;
    if (stop) {
      this._stop(new HubError("closed", `the connection closed with ${code} and the client stopped`));
      this._emit("disconnected", { code, reason, willRetry: false });
      return;
    }
    if (openFailed) this._openFailed(`${this.transport} did not open: ${reason}`);
    if (delay === undefined) {
      const extra = code === 4004 ? RATE_LIMITED_EXTRA_ATTEMPTS : 0;
      delay = backoffDelay(
        this._attempt - 1 + extra,
        this._options.minReconnectDelay,
        this._options.maxReconnectDelay,
      );
    }
    this._urlIndex += 1;
    this.state = "disconnected";
    this._emit("disconnected", { code, reason, willRetry: true, delay });
    if (browserIsOffline()) {
      this._waitingForOnline = true; // `online` reconnects at once
    } else {
      this._retryTimer = setTimeout(() => {
        this._retryTimer = null;
        this._startAttempt();
      }, delay);
    }
  }

  _stop(error) {
    this._stopped = true;
    this.state = "closed";
    this._clearRetry();
    for (const request of this._outbox) request.reject(error);
    this._outbox = [];
    if (typeof globalThis.removeEventListener === "function") {
      globalThis.removeEventListener("online", this._onOnline);
      globalThis.removeEventListener("offline", this._onOffline);
      globalThis.removeEventListener("pagehide", this._onPageHide);
    }
  }

  _clearRetry() {
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._waitingForOnline = false;
  }

  /** The browser is back online: a waiting client reconnects now rather than after its delay. */
  _online() {
    if (this._stopped || this.state !== "disconnected") return;
    if (this._retryTimer === null && !this._waitingForOnline) return;
    this._clearRetry();
    this._startAttempt();
  }

  /** The browser went offline: attempts pause until `online` (a live socket is left to its timers). */
  _offline() {
    if (this._retryTimer !== null) {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      this._waitingForOnline = true;
    }
  }
}

// --- SharedWorker mode -------------------------------------------------------------------
//
// The page side of `sharedWorker: true`: one `SharedHubClient` per part of the page, each with
// its own MessagePort to the one worker of the origin, which runs the single HubClient
// (wsengine-hub-worker.js). Messages on the port are plain objects: the page sends `init`,
// `subscribe`, `unsubscribe`, `request`, `token`, `leave`; the worker sends `event`, `sub`,
// `reply`, `getToken`.

class SharedSubscription {
  constructor(client, sid, channel, handlers) {
    this._client = client;
    this._sid = sid;
    this.channel = channel;
    this._handlers = handlers || {};
    this.state = "subscribing";
    this.position = handlers && handlers.since ? { ...handlers.since } : null;
    this._readyWaiters = [];
    this._firstContext = null;
    this._failure = null;
  }
  ready() {
    return HubSubscription.prototype.ready.call(this);
  }
  publish(payload) {
    return this._client.publish(this.channel, payload);
  }
  history(options) {
    return this._client.history(this.channel, options);
  }
  presence() {
    return this._client.presence(this.channel);
  }
  unsubscribe() {
    return this._client._unsubscribe(this);
  }
  _settleReady(context, failure) {
    HubSubscription.prototype._settleReady.call(this, context, failure);
  }
}

class SharedHubClient extends Emitter {
  constructor(options) {
    super();
    if (typeof SharedWorker !== "function") {
      throw new TypeError("HubClient: sharedWorker needs SharedWorker (a browser that has it)");
    }
    const script =
      options.sharedWorker === true ? new URL("./wsengine-hub-worker.js", import.meta.url) : options.sharedWorker;
    const worker = new SharedWorker(script, { type: "module", name: "wsengine-hub" });
    this._port = worker.port;
    this._getToken = options.getToken;
    this.state = "connecting";
    this.clientId = null;
    this.user = null;
    this.transport = null; // the worker's client's, once it says
    this._nextId = 1;
    this._pending = new Map();
    this._subscriptions = new Map(); // sid -> SharedSubscription
    this._channels = new Map(); // channel -> SharedSubscription
    this._port.onmessage = (event) => this._fromWorker(event.data);
    this._port.start();
    const plain = {};
    for (const [key, value] of Object.entries(options)) {
      if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") {
        plain[key] = value;
      } else if (Array.isArray(value) && value.every((item) => typeof item === "string")) {
        plain[key] = [...value]; // transports, httpUrl
      }
    }
    plain.url = options.url;
    delete plain.sharedWorker;
    this._port.postMessage({ op: "init", options: plain, hasGetToken: typeof options.getToken === "function" });
    this._onPageHide = () => this._port.postMessage({ op: "leave" });
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("pagehide", this._onPageHide);
    }
  }

  connect() {
    this._port.postMessage({ op: "connect" });
  }

  /** Leaves the shared connection (this part's subscriptions end); other parts keep it. */
  disconnect() {
    this._port.postMessage({ op: "leave" });
    this.state = "closed";
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new HubError("closed", "the client was disconnected"));
    }
    this._pending.clear();
    if (typeof globalThis.removeEventListener === "function") {
      globalThis.removeEventListener("pagehide", this._onPageHide);
    }
  }

  subscribe(channel, handlers) {
    if (this._channels.has(channel)) {
      throw new HubError("already_subscribed", `already subscribed to ${channel}`);
    }
    const sid = this._nextId++;
    const subscription = new SharedSubscription(this, sid, channel, handlers);
    this._subscriptions.set(sid, subscription);
    this._channels.set(channel, subscription);
    this._port.postMessage({ op: "subscribe", sid, channel, since: subscription.position });
    return subscription;
  }

  getSubscription(channel) {
    return this._channels.get(channel) || null;
  }

  publish(channel, payload) {
    return this._call("publish", [channel, payload]);
  }
  history(channel, options) {
    return this._call("history", [channel, options || {}]);
  }
  presence(channel) {
    return this._call("presence", [channel]);
  }

  _call(method, args) {
    if (this.state === "closed") return Promise.reject(new HubError("closed", "the client is stopped"));
    const rid = this._nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(rid, { resolve, reject });
      this._port.postMessage({ op: "request", rid, method, args });
    });
  }

  _unsubscribe(subscription) {
    if (this._subscriptions.get(subscription._sid) !== subscription) return Promise.resolve();
    this._subscriptions.delete(subscription._sid);
    this._channels.delete(subscription.channel);
    subscription.state = "unsubscribed";
    subscription._settleReady(null, new HubError("closed", "unsubscribed"));
    this._port.postMessage({ op: "unsubscribe", sid: subscription._sid });
    return Promise.resolve();
  }

  async _fromWorker(message) {
    switch (message.op) {
      case "event": {
        const { state, clientId, user, transport } = message;
        if (this.state !== "closed") this.state = state;
        if (transport) this.transport = transport;
        this.clientId = clientId;
        this.user = user;
        if (message.name) this._emit(message.name, message.data);
        return;
      }
      case "reply": {
        const pending = this._pending.get(message.rid);
        if (!pending) return;
        this._pending.delete(message.rid);
        if (message.error) pending.reject(new HubError(message.error.code, message.error.message));
        else pending.resolve(message.result);
        return;
      }
      case "sub": {
        const subscription = this._subscriptions.get(message.sid);
        if (!subscription) return;
        const { kind, data } = message;
        const handlers = subscription._handlers;
        if (kind === "publication") {
          subscription.position = { offset: data.offset, epoch: data.epoch };
          callHandler(handlers.onPublication, data);
        } else if (kind === "join") {
          callHandler(handlers.onJoin, data, subscription.channel);
        } else if (kind === "leave") {
          callHandler(handlers.onLeave, data, subscription.channel);
        } else if (kind === "subscribed") {
          subscription.state = "subscribed";
          const position = subscription.position;
          if (!position || position.epoch !== data.epoch || position.offset < data.offset) {
            subscription.position = { offset: data.offset, epoch: data.epoch };
          }
          subscription._settleReady(data, null);
          callHandler(handlers.onSubscribed, data);
        } else if (kind === "reset") {
          callHandler(handlers.onReset, data);
        } else if (kind === "error") {
          const error = new HubError(data.code, data.message);
          callHandler(handlers.onError, error);
          if (data.final) {
            subscription.state = "failed";
            this._subscriptions.delete(subscription._sid);
            this._channels.delete(subscription.channel);
            subscription._settleReady(null, error);
          }
        }
        return;
      }
      case "getToken": {
        let token = null;
        let error = null;
        try {
          token = this._getToken ? await this._getToken() : null;
        } catch (e) {
          error = String(e && e.message ? e.message : e);
        }
        this._port.postMessage({ op: "token", rid: message.rid, token, error });
        return;
      }
      default:
        return;
    }
  }
}

export { PROTOCOL, PERMANENT_SUBSCRIBE_ERRORS };
