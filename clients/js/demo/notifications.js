// The notifications demo: a toast per publication on `notify:all` (and on `notify:USER` when
// the connection has a user, i.e. a token). Payload: `{title, body, level}`; a bare string is
// taken as the body. Toasts are live only: the recent list is filled from history on load.

import { HubClient } from "../wsengine-hub.js";
import { clock, h, hubUrl, showStatus } from "./common.js";

const TOAST_MS = 10000;
const LEVELS = new Set(["info", "success", "warning", "error"]);
const RECENT = 20;

const $ = (selector) => document.querySelector(selector);

const example = JSON.stringify({ channel: "notify:all", payload: { title: "Deploy", body: "v2 is live" } });
$("#curl").textContent = `curl -X POST ${location.protocol}//${location.host}/api/publish -d '${example}'`;

const client = new HubClient({ url: hubUrl(), autoConnect: false });
showStatus(client, $("#status"));

function normalise(payload) {
  if (typeof payload === "string") return { title: "Notification", body: payload, level: "info" };
  if (!payload || typeof payload !== "object") return { title: "Notification", body: JSON.stringify(payload), level: "info" };
  return {
    title: String(payload.title ?? "Notification").slice(0, 120),
    body: String(payload.body ?? "").slice(0, 500),
    level: LEVELS.has(payload.level) ? payload.level : "info",
  };
}

function addRecent(publication, note) {
  const recent = $("#recent");
  recent.prepend(
    h(
      "li",
      { dataset: { offset: publication.offset, channel: publication.channel } },
      h("span", { class: "muted small" }, `${publication.channel} #${publication.offset} `),
      h("strong", {}, note.title),
      note.body ? ` — ${note.body}` : "",
    ),
  );
  while (recent.children.length > RECENT) recent.lastElementChild.remove();
}

function toast(note) {
  const element = h(
    "div",
    { class: "toast", role: "status", dataset: { level: note.level } },
    h("button", { type: "button", "aria-label": "dismiss", onclick: () => element.remove() }, "×"),
    h("span", { class: "title" }, note.title),
    h("span", { class: "body" }, note.body),
    h("span", { class: "muted small" }, clock()),
  );
  $("#toasts").prepend(element);
  while ($("#toasts").children.length > 5) $("#toasts").lastElementChild.remove();
  setTimeout(() => element.remove(), TOAST_MS);
}

/** Subscribes one channel: its recent history into the list, then a toast per live publication. */
function follow(channel) {
  let loaded = false;
  const early = [];
  const seen = new Set(); // "epoch:offset" of what is in the recent list
  const show = (publication, live) => {
    const key = `${publication.epoch}:${publication.offset}`;
    if (seen.has(key)) return;
    seen.add(key);
    const note = normalise(publication.payload);
    addRecent(publication, note);
    if (live) toast(note);
  };
  const sub = client.subscribe(channel, {
    onPublication(publication) {
      if (loaded) show(publication, true);
      else early.push(publication);
    },
    async onSubscribed({ resubscribed }) {
      if (!resubscribed) {
        try {
          const { publications } = await sub.history({ limit: 5 });
          for (const publication of publications) show({ channel, ...publication }, false);
        } catch {
          // The recent list stays empty; toasts still come.
        }
        loaded = true;
        for (const publication of early.splice(0)) show(publication, true);
      }
      const ready = new Set((document.body.dataset.subscribed || "").split(" ").filter(Boolean));
      ready.add(channel);
      document.body.dataset.subscribed = [...ready].join(" ");
    },
  });
  return sub;
}

client.on("connected", ({ user }) => {
  // A user's own channel, when the token's user is a valid channel name part.
  if (user && /^[A-Za-z0-9_.-]{1,200}$/.test(user) && !client.getSubscription(`notify:${user}`)) {
    follow(`notify:${user}`);
  }
});

$("#send").addEventListener("submit", (event) => {
  event.preventDefault();
  const payload = { title: $("#title").value, body: $("#body").value, level: $("#level").value };
  client.publish("notify:all", payload).catch((error) => toast({ title: "Not sent", body: error.message, level: "error" }));
});

follow("notify:all");
client.connect();
