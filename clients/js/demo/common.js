// What every demo page shares: the hub's URL, the connection status element, and a small
// helper to build DOM nodes with text (never innerHTML: whatever a publication carries is
// shown as text).

/** The hub's WebSocket URL: the page's own host, `/ws`. */
export function hubUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

/**
 * Creates an element: `h("li", {class: "msg", dataset: {offset: 3}}, "text", child)`.
 * Strings become text nodes.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "class") element.className = value;
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const TRANSPORT_NAMES = { sse: "SSE", "long-polling": "long polling" };

/**
 * Shows the client's connection state in `element` from its events: `data-state` is one of
 * `connecting`, `connected`, `reconnecting`, `disconnected` (what the tests read), the text
 * says the same for people ("reconnecting in 3 s"). `data-connects` counts the `connected`
 * events, `data-client` is the current client id, `data-transport` the transport of the last
 * connection (`websocket`, `sse`, `long-polling`; the text names it when it is a fallback).
 *
 * Attach it before the client connects (create the client with `autoConnect: false`), or the
 * first `connecting` event is missed; the element starts from `client.state` either way.
 */
export function showStatus(client, element) {
  let countdown = null;
  let lost = false; // a connection was up and is gone: the next attempts are reconnects
  let connects = 0;
  const set = (state, text) => {
    element.dataset.state = state;
    element.textContent = text;
  };
  const stopCountdown = () => {
    clearInterval(countdown);
    countdown = null;
  };

  client.on("connecting", ({ attempt }) => {
    stopCountdown();
    if (lost || attempt > 0) set("reconnecting", attempt > 0 ? `reconnecting (attempt ${attempt})…` : "reconnecting…");
    else set("connecting", "connecting…");
  });
  client.on("connected", ({ client: id, transport }) => {
    stopCountdown();
    lost = false;
    connects += 1;
    element.dataset.connects = String(connects);
    element.dataset.client = id;
    // The transport (HUB-PROTOCOL.md, "Fallback transports"): said only when not WebSocket.
    if (transport) element.dataset.transport = transport;
    element.title = `client id ${id}` + (transport ? `, over ${transport}` : "");
    set("connected", transport && transport !== "websocket" ? `connected · ${TRANSPORT_NAMES[transport] || transport}` : "connected");
  });
  client.on("disconnected", ({ code, willRetry, delay }) => {
    stopCountdown();
    delete element.dataset.client;
    if (!willRetry) {
      set("disconnected", `disconnected (${code})`);
      return;
    }
    lost = true;
    const until = Date.now() + (delay ?? 0);
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      set("reconnecting", `reconnecting in ${seconds} s`);
    };
    tick();
    countdown = setInterval(tick, 250);
  });

  const initial = {
    connecting: ["connecting", "connecting…"],
    connected: ["connected", "connected"],
    disconnected: ["disconnected", "disconnected"],
    closed: ["disconnected", "disconnected"],
  }[client.state] ?? ["connecting", "connecting…"];
  set(...initial);
  element.dataset.connects = String(connects);
  element.setAttribute("role", "status");
  element.setAttribute("aria-live", "polite");
}

/** `HH:MM:SS` of now, for the log lines. */
export function clock(date = new Date()) {
  return date.toTimeString().slice(0, 8);
}
