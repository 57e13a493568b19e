// The shared-connection demo: two parts of one page that know nothing of each other, each
// with its own HubClient in `sharedWorker` mode and its own subscription. The connection lives
// in the SharedWorker (wsengine-hub-worker.js): one WebSocket for both parts and every tab.

import { HubClient } from "../wsengine-hub.js";
import { h, hubUrl, showStatus } from "./common.js";

const $ = (selector) => document.querySelector(selector);

/** One self-contained part: its own client, its own subscription, its own DOM. */
function part(prefix, channel) {
  const client = new HubClient({ url: hubUrl(), sharedWorker: true });
  const status = $(`#${prefix}-status`);
  showStatus(client, status);
  const log = $(`#${prefix}-log`);
  client.subscribe(channel, {
    onPublication({ offset, payload }) {
      if (payload && payload.type === "hello") return; // the chat demo's presence announcements
      let text = JSON.stringify(payload);
      if (typeof payload === "string") text = payload;
      else if (payload && typeof payload.text === "string") text = payload.name ? `${payload.name}: ${payload.text}` : payload.text;
      else if (payload && typeof payload.title === "string") text = payload.body ? `${payload.title}: ${payload.body}` : payload.title;
      log.prepend(h("li", { dataset: { offset } }, text));
      while (log.children.length > 20) log.lastElementChild.remove();
    },
    onSubscribed() {
      log.dataset.subscribed = "true";
    },
  });
  return client;
}

part("a", "chat:lobby");
part("b", "notify:all");

const host = `${location.protocol}//${location.host}`;
$("#curl").textContent = [
  `curl -X POST ${host}/api/publish -d '{"channel":"chat:lobby","payload":{"name":"curl","text":"hello part A"}}'`,
  `curl -X POST ${host}/api/publish -d '{"channel":"notify:all","payload":{"title":"hello part B"}}'`,
].join("\n");

// The hub's own count of WebSocket connections, to see the sharing.
async function poll() {
  try {
    const text = await (await fetch("/metrics", { cache: "no-store" })).text();
    const match = /^wsengine_hub_connections (\d+)/m.exec(text);
    if (match) $("#connections").textContent = match[1];
  } catch {
    $("#connections").textContent = "?";
  }
  setTimeout(poll, 1000);
}
poll();
