// The dashboard demo: the hub's own numbers, read from `/metrics` (same origin, Prometheus
// text) every second, and a series that a script publishes on `metrics:demo` (payload: a
// number, or `{value}`), both drawn on a canvas by chart.js.

import { HubClient } from "../wsengine-hub.js";
import { hubUrl, showStatus } from "./common.js";
import { LineChart } from "./chart.js";

const SERIES_CHANNEL = "metrics:demo";
const PERIOD_MS = 1000;

const $ = (selector) => document.querySelector(selector);

const hubChart = new LineChart($("#hub-chart"), {
  series: [
    { key: "connections", label: "connections", color: "#2f6fdb" },
    { key: "deliveries", label: "deliveries/s", color: "#1f9d55" },
    // Dashed and on top: with one subscriber per publication both rates are the same line.
    { key: "publications", label: "publications/s", color: "#c77700", dash: [6, 4] },
  ],
});
const seriesChart = new LineChart($("#series-chart"), {
  series: [{ key: "value", label: SERIES_CHANNEL, color: "#a03fd0" }],
});
hubChart.draw();
seriesChart.draw();

const example = JSON.stringify({ channel: SERIES_CHANNEL, payload: { value: 42 } });
$("#curl").textContent = `curl -X POST ${location.protocol}//${location.host}/api/publish -d '${example}'`;

/**
 * Parses Prometheus / OpenMetrics text into `name -> value` for samples without labels,
 * and `name{labels}` -> value for the others.
 */
export function parseMetrics(text) {
  const values = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[2]);
    if (!Number.isNaN(value)) values.set(match[1], value);
  }
  return values;
}

let previous = null; // { at, publications, deliveries }

async function sample() {
  try {
    const response = await fetch("/metrics", { cache: "no-store", signal: AbortSignal.timeout(3000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const metrics = parseMetrics(await response.text());
    const at = performance.now();
    const now = {
      at,
      connections: metrics.get("wsengine_hub_connections"),
      publications: metrics.get("wsengine_hub_publications_total"),
      deliveries: metrics.get("wsengine_hub_deliveries_total"),
    };
    hubChart.push("connections", now.connections);
    $("#tile-connections").textContent = String(now.connections ?? "–");
    // A counter that went down is a restarted hub: no rate for this interval.
    if (previous && now.publications >= previous.publications && now.deliveries >= previous.deliveries) {
      const seconds = (at - previous.at) / 1000;
      const publications = (now.publications - previous.publications) / seconds;
      const deliveries = (now.deliveries - previous.deliveries) / seconds;
      hubChart.push("publications", publications);
      hubChart.push("deliveries", deliveries);
      $("#tile-publications").textContent = publications.toFixed(1);
      $("#tile-deliveries").textContent = deliveries.toFixed(1);
    }
    previous = now;
    $("#metrics-state").textContent = "";
  } catch (error) {
    previous = null;
    $("#metrics-state").textContent = `(metrics unavailable: ${error.message})`;
  }
  hubChart.draw();
}

/** Every second, counted from the start of the previous sample (a slow fetch does not pile up). */
async function loop() {
  const started = performance.now();
  await sample();
  setTimeout(loop, Math.max(0, PERIOD_MS - (performance.now() - started)));
}

function seriesValue(payload) {
  const value = typeof payload === "number" ? payload : payload && Number(payload.value);
  return Number.isFinite(value) ? value : null;
}

function addSeriesPoint(payload) {
  const value = seriesValue(payload);
  if (value === null) return;
  seriesChart.push("value", value);
  $("#tile-series").textContent = Number.isInteger(value) ? String(value) : value.toFixed(2);
  seriesChart.draw();
}

const client = new HubClient({ url: hubUrl(), autoConnect: false });
showStatus(client, $("#status"));
let loaded = false;
const early = [];
const sub = client.subscribe(SERIES_CHANNEL, {
  onPublication(publication) {
    if (loaded) addSeriesPoint(publication.payload);
    else early.push(publication);
  },
  async onSubscribed({ resubscribed }) {
    if (!resubscribed) {
      // The last minute of the series, so that the chart does not start empty.
      let newest = 0;
      try {
        const { publications } = await sub.history({ limit: 60 });
        for (const publication of publications) {
          addSeriesPoint(publication.payload);
          newest = publication.offset;
        }
      } catch {
        // Live points only.
      }
      loaded = true;
      for (const publication of early.splice(0)) {
        if (publication.offset > newest) addSeriesPoint(publication.payload);
      }
    }
    document.body.dataset.subscribed = SERIES_CHANNEL;
  },
});
client.connect();
loop();
