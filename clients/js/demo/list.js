// The collaborative list demo: add, tick and remove items from several browsers.
//
// The channel `list:NAME` (NAME from the URL's hash, default `shared`) is the list's log, and
// the only source of truth: a change is published and applied when it comes back, by every page
// in the stream's offset order (the same order for every subscriber), so every page shows the
// same list. Payloads:
//   {type: "add", id, text}      id: a random UUID per item
//   {type: "tick", id, done}     sets (not toggles): replaying it is harmless
//   {type: "remove", id}
//   {type: "snapshot", items: [{id, text, done}], base, epoch, at}
//       the whole list as its publisher had it after applying everything up to offset `base`
//       of stream `epoch` (`at`: the publisher's clock, ms).
//
// Why snapshots: a channel keeps only its last `history_size` publications (100 in the demo
// configuration) for `history_ttl` seconds (300), so a late joiner cannot always replay the
// list from its first `add`. The newest snapshot plus the changes after its `base` rebuild the
// list, provided history always holds a snapshot. So a page publishes one
//   - after one of its own changes, when 50 or more changes have passed since the last
//     snapshot (half of `history_size`: the snapshot cannot scroll out of history before the
//     next one is written, with room for changes made by others meanwhile);
//   - when the newest snapshot is over 200 s old (plus a random 0-20 s per check so that the
//     pages of one list do not all write at once; under `history_ttl`);
//   - after a reload that found no snapshot and could not rebuild the list from history
//     alone (the hub lost the stream: a restarted memory engine starts a new epoch with an
//     empty history; or the history expired): the page's own list is then the best state left,
//     and publishing it makes every page converge on it.
// Several pages may write snapshots at the same time: harmless, the newest one in stream
// order wins everywhere (a snapshot replaces the list, then the changes between its `base` and
// itself are applied again, from each page's log).
//
// Catching up after a reconnect: the client re-subscribes from its last offset; with
// `recovered: true` the missed changes arrive in order through onPublication; with
// `recovered: false`, or an epoch change (onReset), the page reloads from history as above.

import { HubClient } from "../wsengine-hub.js";
import { h, hubUrl, showStatus } from "./common.js";

const SNAPSHOT_EVERY_CHANGES = 50;
const SNAPSHOT_MAX_AGE_MS = 200_000;
const SNAPSHOT_JITTER_MS = 20_000;
const MAX_ITEMS = 500;
const MAX_TEXT = 200;
const LOG_KEEP = 400;

const $ = (selector) => document.querySelector(selector);
const listEl = $("#items");

const listName = location.hash.slice(1).replace(/[^A-Za-z0-9_.-]/g, "").slice(0, 64) || "shared";
const channel = `list:${listName}`;
$("#list-title").textContent = channel;
document.title = `${channel} · wsengine hub demos`;
addEventListener("hashchange", () => location.reload());

// --- The list and its position in the stream --------------------------------------------------

/** id -> {id, text, done}, in the order the items were added. */
let items = new Map();
/** The stream the list follows, and the offset of the last publication applied. */
let epoch = null;
let applied = 0;
/** The changes of this epoch applied lately: [{offset, op}] (replayed after a snapshot). */
let log = [];
let changesSinceSnapshot = 0;
let lastSnapshotAt = 0;

let loading = false;
let loadAgain = false;
let needLoad = true; // no complete load yet (or the last one failed)
let buffer = []; // live publications that arrived during a load

const isId = (id) => typeof id === "string" && id.length > 0 && id.length <= 64;

function isChange(p) {
  if (!p || typeof p !== "object" || !isId(p.id)) return false;
  if (p.type === "add") return typeof p.text === "string";
  return p.type === "tick" || p.type === "remove";
}

function isSnapshot(p) {
  return Boolean(p) && p.type === "snapshot" && Array.isArray(p.items) && Number.isInteger(p.base) && p.base >= 0;
}

function change(op) {
  if (op.type === "add") {
    if (!items.has(op.id) && items.size < MAX_ITEMS) {
      items.set(op.id, { id: op.id, text: op.text.slice(0, MAX_TEXT), done: false });
    }
  } else if (op.type === "tick") {
    const item = items.get(op.id);
    if (item) item.done = op.done === true;
  } else if (op.type === "remove") {
    items.delete(op.id);
  }
}

/** Applies one publication of the current epoch, in offset order. */
function apply(publication) {
  const payload = publication.payload;
  if (isSnapshot(payload)) {
    items = new Map();
    for (const item of payload.items.slice(0, MAX_ITEMS)) {
      if (item && isId(item.id) && typeof item.text === "string" && !items.has(item.id)) {
        items.set(item.id, { id: item.id, text: item.text.slice(0, MAX_TEXT), done: item.done === true });
      }
    }
    // A snapshot written in another epoch (queued while the hub restarted) reflects none of
    // this epoch's changes.
    const base = payload.epoch === publication.epoch ? payload.base : 0;
    const after = log.filter((entry) => entry.offset > base && entry.offset < publication.offset);
    for (const entry of after) change(entry.op);
    changesSinceSnapshot = after.length;
  } else if (isChange(payload)) {
    change(payload);
    log.push({ offset: publication.offset, op: payload });
    if (log.length > LOG_KEEP) log.splice(0, log.length - LOG_KEEP);
    changesSinceSnapshot += 1;
  }
  applied = publication.offset;
}

// --- Loading from history -------------------------------------------------------------------

async function load() {
  if (loading) {
    loadAgain = true;
    return;
  }
  loading = true;
  try {
    do {
      loadAgain = false;
      await loadOnce();
    } while (loadAgain);
    needLoad = false;
  } catch (error) {
    needLoad = true; // the next (re)subscription loads again
    $("#meta").textContent = `could not load the list: ${error.message}`;
  } finally {
    loading = false;
  }
  // Whatever came live meanwhile and was not in history.
  const rest = buffer;
  buffer = [];
  for (const publication of rest) live(publication);
  render();
}

async function loadOnce() {
  // What is buffered now is older than the history asked for: in it, or of an older stream.
  buffer = [];
  const result = await sub.history(); // everything the hub retained, oldest first
  const publications = [...result.publications].sort((a, b) => a.offset - b.offset);
  const hadList = epoch !== null && items.size > 0;
  const sameEpoch = result.epoch === epoch;
  let republish = false;
  const newest = findLastIndex(publications, (p) => isSnapshot(p.payload));
  if (newest >= 0) {
    // The newest snapshot, with the changes before it that it may not hold, then the rest.
    items = new Map();
    log = publications
      .slice(0, newest)
      .filter((p) => isChange(p.payload))
      .map((p) => ({ offset: p.offset, op: p.payload }));
    const snapshot = publications[newest];
    apply(snapshot);
    for (const p of publications.slice(newest + 1)) apply(p);
    const at = Number(snapshot.payload.at);
    lastSnapshotAt = Number.isFinite(at) ? Math.min(at, Date.now()) : 0;
  } else {
    const complete = publications.length > 0 ? publications[0].offset === 1 : result.offset === 0;
    if (complete && (sameEpoch || !hadList)) {
      // The whole stream of this epoch is there: replay it from nothing.
      items = new Map();
      log = [];
      for (const p of publications) apply(p);
    } else if (sameEpoch) {
      // Part of the stream expired without a snapshot: keep the list, add what was missed.
      for (const p of publications) if (p.offset > applied) apply(p);
      republish = hadList;
    } else {
      // A new stream without a snapshot (the hub lost the old one): this page's list is the
      // best state left; the new stream's changes apply on top of it.
      log = [];
      for (const p of publications) apply(p);
      republish = hadList;
    }
    // No snapshot in history: write one soon, unless history is empty (nothing to lose yet).
    lastSnapshotAt = publications.length === 0 ? Date.now() : Date.now() - SNAPSHOT_MAX_AGE_MS;
  }
  epoch = result.epoch;
  applied = result.offset;
  // Live publications that came during the request: the newer ones of this epoch, in order;
  // one of another epoch came after the answer: the hub lost the stream again, load once more.
  const pending = buffer.sort((a, b) => a.offset - b.offset);
  buffer = [];
  for (const p of pending) {
    if (p.epoch !== epoch) {
      buffer.push(p);
      loadAgain = true;
    } else if (p.offset > applied) {
      apply(p);
    }
  }
  render();
  if (republish) publishSnapshot();
}

function findLastIndex(array, predicate) {
  for (let i = array.length - 1; i >= 0; i--) if (predicate(array[i])) return i;
  return -1;
}

// --- Live publications ----------------------------------------------------------------------

function live(publication) {
  if (loading || epoch === null) {
    buffer.push(publication);
    return;
  }
  if (publication.epoch !== epoch) {
    buffer.push(publication);
    load();
    return;
  }
  if (publication.offset <= applied) return;
  const own = publication.info && publication.info.client === client.clientId;
  if (isSnapshot(publication.payload)) lastSnapshotAt = Date.now();
  apply(publication);
  render();
  if (own && isChange(publication.payload) && changesSinceSnapshot >= SNAPSHOT_EVERY_CHANGES) publishSnapshot();
}

function publishSnapshot() {
  if (epoch === null) return;
  const snapshot = { type: "snapshot", items: [...items.values()], base: applied, epoch, at: Date.now() };
  lastSnapshotAt = Date.now();
  changesSinceSnapshot = 0; // counted again from the snapshot when it comes back
  client.publish(channel, snapshot).catch(() => {
    lastSnapshotAt = 0; // try again at the next check
  });
}

setInterval(() => {
  if (client.state !== "connected" || loading || needLoad || items.size === 0) return;
  if (Date.now() - lastSnapshotAt > SNAPSHOT_MAX_AGE_MS + Math.random() * SNAPSHOT_JITTER_MS) publishSnapshot();
}, 5000);

// --- The page -------------------------------------------------------------------------------

function newId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID(); // secure contexts only
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function send(op) {
  client.publish(channel, op).catch((error) => {
    $("#meta").textContent = `not sent (${error.code || error.message}); the list shows what the hub has`;
    render();
  });
}

function render() {
  listEl.replaceChildren(
    ...[...items.values()].map((item) =>
      h(
        "li",
        { dataset: { id: item.id, done: String(item.done) } },
        h("input", {
          type: "checkbox",
          checked: item.done,
          "aria-label": `done: ${item.text}`,
          onchange: (event) => send({ type: "tick", id: item.id, done: event.target.checked }),
        }),
        h("span", { class: "text" }, item.text),
        h(
          "button",
          { type: "button", class: "remove", "aria-label": `remove ${item.text}`, onclick: () => send({ type: "remove", id: item.id }) },
          "✕",
        ),
      ),
    ),
  );
  listEl.dataset.count = String(items.size);
  listEl.dataset.offset = String(applied);
  listEl.dataset.epoch = epoch ?? "";
  if (!needLoad) listEl.dataset.ready = "true";
  $("#empty").hidden = items.size > 0;
  $("#meta").textContent =
    `stream ${epoch ?? "–"}, offset ${applied}; ${changesSinceSnapshot} changes since the last snapshot`;
}

$("#add").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#new-item");
  const text = input.value.trim().slice(0, MAX_TEXT);
  if (!text) return;
  input.value = "";
  send({ type: "add", id: newId(), text });
});

const client = new HubClient({ url: hubUrl(), autoConnect: false });
showStatus(client, $("#status"));
const sub = client.subscribe(channel, {
  onPublication: live,
  onSubscribed({ recovered }) {
    document.body.dataset.subscribed = channel;
    if (!recovered || needLoad) load();
  },
  onReset() {
    load();
  },
  onError(error) {
    $("#meta").textContent = `cannot follow ${channel}: ${error.message}`;
  },
});
render();
client.connect();
