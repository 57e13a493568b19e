// A test-only EventSource for Node 20 (which has none), over node:http: enough of the HTML
// standard's EventSource for wsengine-hub.js's SSE transport (the client itself has no
// dependency; tests pass this class as the `EventSource` option).
//
// What it does as a browser does: `text/event-stream` parsing (data, id, retry, comments),
// `onmessage` with a MessageEvent-like `{data, lastEventId}`, readyState CONNECTING (0) /
// OPEN (1) / CLOSED (2), a reconnect after the stream ends or breaks (after `retry` ms,
// default `TestEventSource.defaultRetry`) that sends the last event id as `Last-Event-ID`,
// and failing the connection (CLOSED, then `onerror`) on a status other than 200 or a
// content type other than text/event-stream.
//
// For tests: `TestEventSource.instances` (every one made), `lastEventIdsSent` (the
// Last-Event-ID of each request), `cut()` (destroys the current response: the stream breaks
// and it reconnects as a browser would).

import http from "node:http";
import https from "node:https";

export class TestEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static defaultRetry = 300;
  static instances = [];

  constructor(url) {
    this.url = String(url);
    this.readyState = TestEventSource.CONNECTING;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.lastEventId = "";
    this.lastEventIdsSent = [];
    this.requests = 0;
    this._retry = TestEventSource.defaultRetry;
    this._request = null;
    this._timer = null;
    TestEventSource.instances.push(this);
    setTimeout(() => this._connect(), 0);
  }

  close() {
    this.readyState = TestEventSource.CLOSED;
    clearTimeout(this._timer);
    this._request?.destroy();
    this._request = null;
  }

  /** Breaks the current stream (as a dropped TCP connection would): it reconnects. */
  cut() {
    this._request?.destroy(new Error("cut by the test"));
  }

  _connect() {
    if (this.readyState === TestEventSource.CLOSED) return;
    const headers = { accept: "text/event-stream", "cache-control": "no-cache" };
    if (this.lastEventId) headers["last-event-id"] = this.lastEventId;
    this.lastEventIdsSent.push(this.lastEventId);
    this.requests += 1;
    const get = this.url.startsWith("https:") ? https.get : http.get;
    let ended = false;
    const request = get(this.url, { headers, agent: false });
    this._request = request;
    const streamEnded = () => {
      if (ended || this._request !== request) return;
      ended = true;
      this._request = null;
      if (this.readyState === TestEventSource.CLOSED) return;
      this._reconnect();
    };
    request.on("error", streamEnded);
    request.on("response", (response) => {
      const type = String(response.headers["content-type"] || "");
      if (response.statusCode !== 200 || !type.startsWith("text/event-stream")) {
        ended = true;
        response.resume();
        request.destroy();
        this._request = null;
        this._fail();
        return;
      }
      this.readyState = TestEventSource.OPEN;
      this.onopen?.({ type: "open" });
      response.setEncoding("utf8");
      let buffer = "";
      let data = [];
      let id = null;
      response.on("data", (chunk) => {
        buffer += chunk;
        let newline;
        while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
          if (line === "") {
            if (id !== null) this.lastEventId = id;
            id = null;
            if (data.length > 0 && this.readyState === TestEventSource.OPEN) {
              const event = { type: "message", data: data.join("\n"), lastEventId: this.lastEventId };
              data = [];
              this.onmessage?.(event);
            }
            data = [];
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "data") data.push(value);
          else if (field === "id" && !value.includes("\0")) id = value;
          else if (field === "retry" && /^\d+$/.test(value)) this._retry = Number(value);
        }
      });
      response.on("end", streamEnded);
      response.on("error", streamEnded);
      response.on("close", streamEnded);
    });
  }

  _reconnect() {
    this.readyState = TestEventSource.CONNECTING;
    this.onerror?.({ type: "error" });
    if (this.readyState === TestEventSource.CLOSED) return;
    this._timer = setTimeout(() => this._connect(), this._retry);
  }

  _fail() {
    this.readyState = TestEventSource.CLOSED;
    this.onerror?.({ type: "error" });
  }
}
