//! `GET /metrics`: the hub's counters in the Prometheus text format, named
//! `wsengine_hub_*` ("Details that tests rely on": metrics), through prometheus-client.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The label of `closes_total`: the WebSocket close code the server sent or received.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabel {
    /// The close code (1000, 4003, ...).
    pub code: u16,
}

/// The label of `refused_total`: why an HTTP upgrade was refused before it happened.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabel {
    /// `origin`, `connect_rate`, `subprotocol`, `handshake`.
    pub reason: &'static str,
}

/// Every metric the hub exports, registered once in [`Metrics::new`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// WebSocket connections open now.
    pub connections: Gauge,
    /// Channel subscriptions held now, summed over connections.
    pub subscriptions: Gauge,
    /// Publications accepted (WebSocket `publish` and `POST /api/publish`).
    pub publications: Counter,
    /// Publications, joins and leaves queued to subscribers.
    pub deliveries: Counter,
    /// Bytes of WebSocket messages received (payloads).
    pub bytes_received: Counter,
    /// Bytes of WebSocket messages queued to clients (payloads).
    pub bytes_sent: Counter,
    /// Connections closed, by close code.
    pub closes: Family<CloseLabel, Counter>,
    /// Upgrade requests refused with an HTTP status, by reason.
    pub refused: Family<RefusedLabel, Counter>,
    /// Round trip of each engine call, in seconds.
    pub broker_round_trip: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wsengine_hub");
        let connections = Gauge::default();
        let subscriptions = Gauge::default();
        let publications = Counter::default();
        let deliveries = Counter::default();
        let bytes_received = Counter::default();
        let bytes_sent = Counter::default();
        let closes = Family::<CloseLabel, Counter>::default();
        let refused = Family::<RefusedLabel, Counter>::default();
        // From 20 µs (a memory engine call) to 1 s (a broker in trouble).
        let broker_round_trip = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.000_02, 3.0, 11),
        );
        registry.register(
            "connections",
            "WebSocket connections open now",
            connections.clone(),
        );
        registry.register(
            "subscriptions",
            "Channel subscriptions held now",
            subscriptions.clone(),
        );
        registry.register(
            "publications",
            "Publications accepted (WebSocket and HTTP API)",
            publications.clone(),
        );
        registry.register(
            "deliveries",
            "Publications, joins and leaves queued to subscribers",
            deliveries.clone(),
        );
        registry.register(
            "bytes_received",
            "Bytes of WebSocket messages received",
            bytes_received.clone(),
        );
        registry.register(
            "bytes_sent",
            "Bytes of WebSocket messages queued to clients",
            bytes_sent.clone(),
        );
        registry.register(
            "closes",
            "WebSocket connections closed, by close code",
            closes.clone(),
        );
        registry.register(
            "refused",
            "WebSocket upgrade requests refused before the upgrade, by reason",
            refused.clone(),
        );
        registry.register(
            "broker_round_trip_seconds",
            "Round trip of each engine call",
            broker_round_trip.clone(),
        );
        Self {
            registry,
            connections,
            subscriptions,
            publications,
            deliveries,
            bytes_received,
            bytes_sent,
            closes,
            refused,
            broker_round_trip,
        }
    }

    /// Counts a close with `code`.
    pub fn closed(&self, code: u16) {
        self.closes.get_or_create(&CloseLabel { code }).inc();
    }

    /// Counts an upgrade refused for `reason`.
    pub fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&RefusedLabel { reason }).inc();
    }

    /// The text exposition (`GET /metrics`, content type
    /// `application/openmetrics-text; version=1.0.0; charset=utf-8`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
