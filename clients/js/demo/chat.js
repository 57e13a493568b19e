// The chat demo: rooms on channels `chat:ROOM`, who is online, history then live messages.
//
// Presence entries, joins and publications carry `{client, user, name}`: `name` is the one
// the page gave when it connected (for anonymous clients `user` is ""). A name changed in the
// box afterwards is not in them, so every page also publishes a `hello` (with its current
// name) when it joins a room and again when someone joins, and each message carries the
// name; the page maps client ids to the newest name it saw.
//
// Payloads: `{type: "hello", name}` and `{type: "msg", name, text, at}` (at: the sender's
// clock, milliseconds). A backend may publish `{name, text}` through the HTTP API.

import { HubClient } from "../wsengine-hub.js";
import { clock, h, hubUrl, showStatus } from "./common.js";

const ROOMS = ["lobby", "random", "rust"];
const NAME_KEY = "wsengine-demo-name";
const HISTORY_ON_JOIN = 50;

const $ = (selector) => document.querySelector(selector);
const messagesEl = $("#messages");
const onlineEl = $("#online");
const nameInput = $("#name");

const cleanName = (value) => String(value ?? "").trim().slice(0, 32);
const cleanRoom = (value) => String(value ?? "").trim().toLowerCase().replace(/[^a-z0-9_.-]/g, "").slice(0, 64);

let myName = cleanName(new URLSearchParams(location.search).get("name")) || cleanName(localStorage.getItem(NAME_KEY));
if (!myName) myName = `guest-${Math.floor(1000 + Math.random() * 9000)}`;
localStorage.setItem(NAME_KEY, myName);
nameInput.value = myName;

const client = new HubClient({ url: hubUrl(), name: myName, autoConnect: false });
showStatus(client, $("#status"));

/** client id -> name, learned from `hello`s and messages. */
const names = new Map();
/** client id -> its "... joined" line, shown before its name was known (renamed by its hello). */
const unnamedJoins = new Map();
/** The room on screen: { name, channel, sub, epoch, lastOffset, loading, buffer, online }. */
let room = null;

client.on("connected", ({ client: id }) => {
  names.set(id, myName);
  renderOnline();
});

// --- Rendering -----------------------------------------------------------------------------

function scrollToEnd() {
  messagesEl.scrollTop = messagesEl.scrollHeight;
}

function systemLine(text, kind = "system") {
  const line = h("li", { class: kind }, text);
  messagesEl.append(line);
  scrollToEnd();
  return line;
}

function label(info) {
  return names.get(info.client) || info.name || info.user || info.client;
}

function renderMessage(publication, name, text, at) {
  const time = Number.isFinite(at) ? new Date(at) : new Date();
  messagesEl.append(
    h(
      "li",
      {
        class: "msg",
        dataset: {
          offset: publication.offset,
          client: publication.info ? publication.info.client : "",
          name,
        },
      },
      h("span", { class: "time" }, clock(time)),
      h("span", { class: "name" }, name),
      h("span", { class: "text" }, text),
    ),
  );
  scrollToEnd();
}

function renderOnline() {
  if (!room) return;
  const entries = [...room.online.values()].map((info) => ({
    info,
    name: names.get(info.client) || info.name || "",
  }));
  entries.sort((a, b) => (a.name || "~").localeCompare(b.name || "~") || a.info.client.localeCompare(b.info.client));
  onlineEl.replaceChildren(
    ...entries.map(({ info, name }) =>
      h(
        "li",
        { class: info.client === client.clientId ? "me" : "", dataset: { client: info.client, name } },
        h("span", { class: "who" }, name || info.user || "anonymous"),
        h("span", { class: "id" }, info.client),
      ),
    ),
  );
  onlineEl.dataset.count = String(entries.length);
}

function renderRooms() {
  const list = [...new Set([...ROOMS, room ? room.name : ROOMS[0]])];
  $("#rooms").replaceChildren(
    ...list.map((name) =>
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", "aria-current": room && room.name === name ? "true" : "false", onclick: () => go(name) },
          `# ${name}`,
        ),
      ),
    ),
  );
}

// --- The stream ----------------------------------------------------------------------------

/** One publication of the room, live or from history, in offset order; repeats are dropped. */
function receive(state, publication) {
  if (state.epoch !== null && publication.epoch !== state.epoch) {
    systemLine("— the hub lost this room's history (restarted?): a new stream starts —", "divider");
    state.epoch = publication.epoch;
    state.lastOffset = 0;
  }
  if (publication.offset <= state.lastOffset) return;
  state.lastOffset = publication.offset;
  const payload = publication.payload;
  const info = publication.info;
  if (typeof payload === "string") {
    renderMessage(publication, info ? label(info) : "server", payload);
    return;
  }
  if (!payload || typeof payload !== "object") return;
  const name = cleanName(payload.name);
  if (info && name && names.get(info.client) !== name) {
    names.set(info.client, name);
    renderOnline();
    const line = unnamedJoins.get(info.client);
    if (line) line.textContent = `${name} joined`;
    unnamedJoins.delete(info.client);
  }
  if (payload.type === "hello") return;
  if (typeof payload.text === "string") {
    renderMessage(publication, name || (info ? label(info) : "server"), payload.text.slice(0, 1000), payload.at);
  }
}

/** History on join (and after a lost recovery or a reset), then the live publications that came meanwhile. */
async function load(state, why) {
  state.loading = true;
  try {
    const result = await state.sub.history({ limit: HISTORY_ON_JOIN });
    if (state !== room) return;
    if (state.epoch !== null && result.epoch !== state.epoch) {
      systemLine("— the hub lost this room's history (restarted?): a new stream starts —", "divider");
      state.lastOffset = 0;
    } else if (why === "lost") {
      systemLine("— reconnected: some messages may be missing —", "divider");
    }
    state.epoch = result.epoch;
    for (const publication of result.publications) receive(state, { channel: state.channel, ...publication });
  } catch (error) {
    if (state === room) systemLine(`could not load the history: ${error.message}`);
  } finally {
    state.loading = false;
    const buffered = state.buffer;
    state.buffer = [];
    if (state === room) {
      for (const publication of buffered) receive(state, publication);
      messagesEl.dataset.ready = "true";
    }
  }
  await refreshPresence(state);
}

async function refreshPresence(state) {
  try {
    const { clients } = await state.sub.presence();
    if (state !== room) return;
    state.online = new Map(clients.map((info) => [info.client, info]));
    renderOnline();
  } catch (error) {
    if (state === room) systemLine(`who is online: ${error.message}`);
  }
}

/** Tells the room who this client id is. */
function announce(state) {
  if (state !== room || client.state !== "connected") return;
  state.sub.publish({ type: "hello", name: myName }).catch(() => {});
}

function join(name) {
  if (room) {
    room.sub.unsubscribe();
  }
  const state = {
    name,
    channel: `chat:${name}`,
    sub: null,
    epoch: null,
    lastOffset: 0,
    loading: false,
    buffer: [],
    online: new Map(),
  };
  room = state;
  unnamedJoins.clear();
  messagesEl.replaceChildren();
  messagesEl.dataset.ready = "false";
  messagesEl.dataset.room = name;
  onlineEl.replaceChildren();
  $("#room-title").textContent = `# ${name}`;
  document.title = `# ${name} · Chat · wsengine hub demos`;
  renderRooms();
  state.sub = client.subscribe(state.channel, {
    onPublication(publication) {
      if (state !== room) return;
      if (state.loading) state.buffer.push(publication);
      else receive(state, publication);
    },
    onJoin(info) {
      if (state !== room) return;
      state.online.set(info.client, info);
      renderOnline();
      const line = systemLine(`${label(info)} joined`);
      if (!names.has(info.client)) unnamedJoins.set(info.client, line);
      announce(state);
    },
    onLeave(info) {
      if (state !== room) return;
      state.online.delete(info.client);
      renderOnline();
      systemLine(`${label(info)} left`);
    },
    onSubscribed({ resubscribed, recovered }) {
      if (state !== room) return;
      announce(state);
      if (!resubscribed) load(state, "join");
      else if (!recovered) load(state, "lost");
      else refreshPresence(state); // the missed messages came through onPublication
    },
    onReset() {
      if (state !== room || state.loading) return;
      load(state, "reset");
    },
    onError(error) {
      if (state === room) systemLine(`cannot join #${name}: ${error.message}`);
    },
  });
}

function go(name) {
  name = cleanRoom(name);
  if (!name) return;
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (!room || room.name !== name) join(name);
}

// --- The page ------------------------------------------------------------------------------

$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#text");
  const text = input.value.trim();
  if (!text || !room) return;
  input.value = "";
  room.sub.publish({ type: "msg", name: myName, text, at: Date.now() }).catch((error) => {
    systemLine(`not sent (${error.code || error.message}): ${text}`);
  });
});

$("#room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  go($("#room-input").value);
  $("#room-input").value = "";
});

nameInput.addEventListener("change", () => {
  const name = cleanName(nameInput.value);
  if (!name) {
    nameInput.value = myName;
    return;
  }
  myName = name;
  localStorage.setItem(NAME_KEY, myName);
  if (client.clientId) names.set(client.clientId, myName);
  renderOnline();
  if (room) announce(room);
});

addEventListener("hashchange", () => go(location.hash.slice(1)));

go(location.hash.slice(1) || ROOMS[0]);
client.connect();
