//! The engine behind the hub: where each channel's stream (its offsets, its epoch, its
//! history) and its presence live, and how publications reach the nodes that have
//! subscribers (`docs/HUB-PROTOCOL.md`, "Channels, history, recovery").
//!
//! A node (the server) keeps none of this state: it asks the engine. Two implementations
//! exist: [`memory::MemoryEngine`] (a single node), [`redis::RedisEngine`] (several
//! nodes on one Redis act as one) and [`nats::NatsEngine`] (publications fan out to every
//! node through NATS; each node keeps its own streams and presence in memory).
//!
//! # Shape
//!
//! - The trait is object-safe and asynchronous: every operation returns an
//!   [`EngineFuture`] (a boxed `Send` future), so the server holds an `Arc<dyn Engine>`
//!   chosen at run time (`[engine] kind`) and a networked engine can await its broker.
//!   The memory engine's futures are ready on their first poll.
//! - Fan-out: [`Engine::subscribe`] hands back a [`Subscription`] whose receiver (a
//!   `tokio::sync::broadcast` receiver) yields the channel's [`ChannelEvent`]s:
//!   publications, joins and leaves, in stream order. A publication is an
//!   `Arc<Publication>`, made once and shared by every receiver, so the server can encode
//!   it once per node.
//! - No gap: the same call reads the recovery (`since`) and registers the live receiver,
//!   and the subscription skips every publication at or below the position the recovery
//!   was read at ([`Subscription::start`]), so the recovered publications and the live ones
//!   meet with nothing lost and nothing repeated ("Channels, history, recovery").

pub mod memory;
pub mod nats;
pub mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The future every [`Engine`] operation returns: boxed so that the trait stays
/// object-safe (`Arc<dyn Engine>`), `Send` so that the server's tokio tasks can hold it
/// across an `.await`.
pub type EngineFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send + 'a>>;

/// A channel stream's position: the offset of its latest publication (0 when it has none)
/// in its current epoch ("Channels, history, recovery"; "Details that tests rely on":
/// an empty channel's `offset` is 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamPosition {
    /// The offset of the latest publication; 0 for a stream that has none.
    pub offset: u64,
    /// The stream's epoch: changes whenever its history is lost.
    pub epoch: Arc<str>,
}

/// Who published: the `info` of a `publication` message and of `join`/`leave`
/// ("Server to client"). Absent from publications made through the HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The server-made client id (the `client` of the `connect` reply).
    pub client: Arc<str>,
    /// The user (the token's `sub`, or `""` for an anonymous client).
    pub user: Arc<str>,
    /// The `name` the client gave in `connect` (informational, at most
    /// [`MAX_CLIENT_NAME`](crate::protocol::MAX_CLIENT_NAME) bytes); absent when it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Arc<str>>,
}

/// Channels and their subscriber counts, sorted by name ([`Engine::channels`]).
pub type ChannelCounts = Vec<(Arc<str>, u64)>;

/// One entry of a channel's presence (the `presence` reply's `clients`): the same fields
/// as [`ClientInfo`].
pub type PresenceEntry = ClientInfo;

/// A publication's payload: the JSON text the publisher sent, validated but not parsed
/// into a tree, so that it passes through untouched ("Transport": payloads are passed
/// through untouched; key order and number precision included) and goes out to every
/// subscriber without being encoded again. Make one from a `Box<RawValue>` the request
/// was read into (`Arc::from`), or from any value with
/// [`serde_json::value::to_raw_value`].
pub type Payload = Arc<serde_json::value::RawValue>;

/// One publication of a channel's stream: the fields of a `publication` message ("Server to
/// client"; "Details": items of `publications` have these fields without `type`), plus
/// the time the engine stored it.
///
/// The engine makes each one once and shares it (`Arc<Publication>`) between history and
/// every subscriber, so the payload is neither copied nor re-encoded per receiver.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Publication {
    /// The channel it was published to.
    pub channel: Arc<str>,
    /// Its offset in the stream: one more than the one before it, 1 for the first of an
    /// epoch.
    pub offset: u64,
    /// The epoch of the stream it belongs to.
    pub epoch: Arc<str>,
    /// The payload, any JSON value, passed through untouched ("Transport").
    pub payload: Payload,
    /// The publisher; `None` for the HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    /// When the engine stored it, in milliseconds since the Unix epoch (an addition to the
    /// protocol's fields; history ages by it).
    pub time: u64,
    /// The `publication` message as a prepared WebSocket frame, made by the first
    /// subscriber of this node that delivers it and shared by every other one (the
    /// server's fan-out: encoded once per node, the same bytes to every subscriber).
    #[serde(skip)]
    pub wire: WireCache,
}

/// The encoded forms of a [`Publication`] (its `wire` field): the `publication` message's
/// JSON text (what the fallback transports queue) and its prepared WebSocket frame, each
/// empty until a node's first delivery of that kind makes it. Ignored by equality and
/// cloned empty (a clone may be re-encoded).
#[derive(Default)]
pub struct WireCache {
    frame: std::sync::OnceLock<wsengine::PreparedMessage>,
    json: std::sync::OnceLock<Arc<str>>,
}

impl WireCache {
    /// The frame, made by `make` on the first call.
    pub fn get_or_init(
        &self,
        make: impl FnOnce() -> wsengine::PreparedMessage,
    ) -> &wsengine::PreparedMessage {
        self.frame.get_or_init(make)
    }

    /// The message's JSON text, made by `make` on the first call.
    pub fn json_or_init(&self, make: impl FnOnce() -> Arc<str>) -> &Arc<str> {
        self.json.get_or_init(make)
    }
}

impl Clone for WireCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for WireCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.frame.get().is_some() {
            "WireCache(encoded)"
        } else {
            "WireCache(empty)"
        })
    }
}

impl PartialEq for Publication {
    /// Equal when every field is; payloads compare as JSON text.
    fn eq(&self, other: &Self) -> bool {
        self.channel == other.channel
            && self.offset == other.offset
            && self.epoch == other.epoch
            && self.payload.get() == other.payload.get()
            && self.info == other.info
            && self.time == other.time
    }
}

impl Eq for Publication {}

/// How much history one channel keeps: its namespace's `history_size` and `history_ttl`
/// ("Running it", `[namespaces.*]`). Given with each publish, so the engine needs no
/// configuration of its own and a namespace's change applies from the next publication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryOptions {
    /// Publications kept per channel; 0 keeps none (offsets still grow).
    pub history_size: usize,
    /// How long a publication stays in history.
    pub history_ttl: Duration,
}

impl Default for HistoryOptions {
    /// The protocol's defaults: 100 publications, 300 seconds.
    fn default() -> Self {
        Self {
            history_size: 100,
            history_ttl: Duration::from_secs(300),
        }
    }
}

/// The answer to [`Engine::history`]: the `history` reply's fields ("Client to server").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryResult {
    /// The publications, oldest first.
    pub publications: Vec<Arc<Publication>>,
    /// The stream's current position (the reply's `offset` and `epoch`).
    pub position: StreamPosition,
}

/// The answer to a recovery from `since` ([`Engine::recover`], [`Engine::subscribe`]):
/// the `subscribe` reply's fields ("Client to server").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// True when the epoch matched, every publication after `since.offset` was still in
    /// history and there were at most `recovery_max` of them ("Details": recovery size).
    /// False as well when no `since` was given (the reply then omits `recovered`).
    pub recovered: bool,
    /// The missed publications, oldest first, when `recovered`; empty otherwise.
    pub publications: Vec<Arc<Publication>>,
    /// The stream's position when the recovery was read (the reply's `offset` and `epoch`).
    pub position: StreamPosition,
}

/// What a channel's subscribers receive, in the stream's order ("Server to client").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelEvent {
    /// A publication (`publication` message).
    Publication(Arc<Publication>),
    /// A client joined the channel's presence (`join`). It reaches every subscriber,
    /// the joiner's own too: the server skips the one whose `client` it is ("Details":
    /// `join` goes to the channel's other subscribers).
    Join(ClientInfo),
    /// A client left the channel's presence (`leave`).
    Leave(ClientInfo),
}

/// Why an engine operation failed; the server maps these to the protocol's error codes
/// ("Server to client", `error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// The broker is down or did not answer (`unavailable`; `/health` says `degraded`).
    Unavailable(String),
    /// Anything else (`internal`).
    Internal(String),
}

impl EngineError {
    /// The protocol's error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "engine unavailable: {m}"),
            Self::Internal(m) => write!(f, "engine error: {m}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// Why [`Subscription::recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The receiver fell so far behind that the engine's buffer overwrote events it had
    /// not read (this many). The subscriber has lost publications: the server closes it
    /// as a slow consumer (4003, "Slow consumers and limits"), and it recovers from
    /// history when it reconnects.
    Lagged(u64),
    /// The engine dropped the channel's sender (the engine is shutting down).
    Closed,
    /// The engine lost its link to the broker while subscribed (a networked engine's
    /// pub/sub connection broke): publications made meanwhile may not have arrived. The
    /// subscription delivers nothing more; the server closes the client with 1013 ("try
    /// again later"), and it recovers from history when it reconnects, so nothing is
    /// lost silently.
    Interrupted,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscriber lagged behind by {n} events"),
            Self::Closed => f.write_str("channel closed"),
            Self::Interrupted => f.write_str("the engine lost its link to the broker"),
        }
    }
}

impl std::error::Error for RecvError {}

/// A live subscription to one channel ([`Engine::subscribe`]): the recovery read when it
/// was made, and the receiver of every event after it.
///
/// Dropping it unsubscribes. Publications of [`Self::start`]'s epoch at or below its offset
/// are skipped: they are in the recovery (or were before the subscription), so an engine
/// whose live stream may deliver some of them again (a broker subscription made before the
/// history was read) still gives each publication exactly once.
#[derive(Debug)]
pub struct Subscription {
    /// The recovery read when the subscription was made (`recovered` false and no
    /// publications when no `since` was given); `recovery.position` is the `subscribe`
    /// reply's `offset` and `epoch`.
    pub recovery: Recovery,
    receiver: broadcast::Receiver<ChannelEvent>,
    /// Dropped after the receiver (field order): a networked engine's hold on its broker
    /// subscription.
    link: Option<Box<dyn SubscriptionLink>>,
}

/// What a networked engine attaches to a [`Subscription`] ([`Subscription::with_link`]):
/// dropped with the subscription (after its receiver), which lets the engine unsubscribe
/// from the broker when a channel's last local subscriber goes, and asked why the
/// receiver closed.
pub trait SubscriptionLink: Send + Sync + fmt::Debug {
    /// True when the engine closed the channel's sender because its link to the broker
    /// broke ([`RecvError::Interrupted`]), false when it is shutting down
    /// ([`RecvError::Closed`]).
    fn interrupted(&self) -> bool;
}

impl Subscription {
    /// A subscription over `receiver` that starts after `recovery.position`. For engine
    /// implementations: `receiver` must have been registered before the position was read.
    pub fn new(recovery: Recovery, receiver: broadcast::Receiver<ChannelEvent>) -> Self {
        Self {
            recovery,
            receiver,
            link: None,
        }
    }

    /// [`Subscription::new`] with the engine's `link`, dropped with the subscription.
    pub fn with_link(
        recovery: Recovery,
        receiver: broadcast::Receiver<ChannelEvent>,
        link: Box<dyn SubscriptionLink>,
    ) -> Self {
        Self {
            recovery,
            receiver,
            link: Some(link),
        }
    }

    /// This subscription with `link` attached, as [`Subscription::with_link`] makes it: for
    /// an engine built over another (the NATS engine over the memory engine).
    pub fn linked(mut self, link: Box<dyn SubscriptionLink>) -> Self {
        self.link = Some(link);
        self
    }

    fn closed(&self) -> RecvError {
        if self.link.as_ref().is_some_and(|l| l.interrupted()) {
            RecvError::Interrupted
        } else {
            RecvError::Closed
        }
    }

    /// The position the subscription starts after.
    pub fn start(&self) -> &StreamPosition {
        &self.recovery.position
    }

    fn wanted(&self, event: &ChannelEvent) -> bool {
        match event {
            ChannelEvent::Publication(p) => {
                p.epoch != self.recovery.position.epoch || p.offset > self.recovery.position.offset
            }
            ChannelEvent::Join(_) | ChannelEvent::Leave(_) => true,
        }
    }

    /// The next event, waiting for it.
    pub async fn recv(&mut self) -> Result<ChannelEvent, RecvError> {
        loop {
            let event = match self.receiver.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(RecvError::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => return Err(self.closed()),
            };
            if self.wanted(&event) {
                return Ok(event);
            }
        }
    }

    /// The next event if one is waiting, `Ok(None)` otherwise.
    pub fn try_recv(&mut self) -> Result<Option<ChannelEvent>, RecvError> {
        loop {
            let event = match self.receiver.try_recv() {
                Ok(event) => event,
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    return Err(RecvError::Lagged(n));
                }
                Err(broadcast::error::TryRecvError::Closed) => return Err(self.closed()),
            };
            if self.wanted(&event) {
                return Ok(Some(event));
            }
        }
    }
}

/// The engine behind the hub: each channel's stream (offsets, epoch, history), its
/// presence, and the delivery of its events to the nodes that subscribe
/// ("Channels, history, recovery").
///
/// What every engine guarantees:
/// - Offsets: a channel's first publication in an epoch gets offset 1, each next one one
///   more; an empty channel's position has offset 0 ("Details": offsets, and after an
///   epoch change the first publication has offset 1). Order is the order of offsets, the
///   same for every subscriber on every node that shares the stream (the NATS engine's
///   nodes each keep a stream of their own: [`nats`]).
/// - Epochs: a stream gets a new epoch whenever its history is lost (a new memory engine,
///   a broker that lost the stream). A channel's offset and epoch outlive its history's
///   TTL for at least 24 hours without activity ("Details").
/// - History: kept per the [`HistoryOptions`] of each publish (count and age); what is
///   left is always the newest publications, contiguous up to the current offset.
/// - Recovery: as [`Engine::recover`] says; [`Engine::subscribe`] does it without a gap.
/// - Presence: entries per channel keyed by client id; a join or leave event goes to the
///   channel's subscribers when the presence changes. Cluster-wide engines expire entries
///   that their node stops refreshing (30 seconds, "Details") and refresh the entries
///   their node added themselves (the Redis engine: every 10 seconds) until
///   [`Engine::presence_remove`], so the server adds each entry once. (The NATS engine's
///   presence is per node, in memory.)
pub trait Engine: Send + Sync + 'static {
    /// The engine's name for `/health`: `"memory"`, `"redis"` or `"nats"`.
    fn name(&self) -> &'static str;

    /// Appends a publication to `channel`'s stream: the next offset of the current epoch,
    /// kept in history per `opts`, and delivered to the channel's subscribers. Returns it
    /// (the `publish` reply is its `offset` and `epoch`).
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        payload: Payload,
        info: Option<ClientInfo>,
        opts: HistoryOptions,
    ) -> EngineFuture<'a, Arc<Publication>>;

    /// The channel's current position (offset 0 and a fresh epoch for a channel never seen).
    fn position<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, StreamPosition>;

    /// The channel's retained history ("Details": `history`), oldest first:
    /// - `since` of another epoch: no publications (the position tells the client the
    ///   epoch);
    /// - `since` of the current epoch: the publications after `since.offset`, at most
    ///   `limit` of them (the first ones, so that a client can page forward);
    /// - no `since`: the newest `limit` publications;
    /// - `limit` `None`: everything retained; `Some(0)`: none, position only.
    fn history<'a>(
        &'a self,
        channel: &'a str,
        limit: Option<usize>,
        since: Option<StreamPosition>,
    ) -> EngineFuture<'a, HistoryResult>;

    /// The publications after `since` ("Channels, history, recovery"): `recovered` only
    /// when the epoch matches, `since.offset` is not ahead of the stream, every
    /// publication after it is still in history, and there are at most `recovery_max` of
    /// them ("Details": recovery size); then `publications` are exactly those, oldest
    /// first. Otherwise `recovered` is false and `publications` empty.
    fn recover<'a>(
        &'a self,
        channel: &'a str,
        since: StreamPosition,
        recovery_max: usize,
    ) -> EngineFuture<'a, Recovery>;

    /// Subscribes to `channel`: registers a live receiver and, with `since`, recovers as
    /// [`Engine::recover`] does, as one step: every publication after the recovery's
    /// position arrives on the subscription and none at or before it, so recovered and
    /// live publications meet with nothing lost or repeated ("Channels, history,
    /// recovery"). Without `since`, `recovery` holds only the position.
    ///
    /// Dropping the [`Subscription`] unsubscribes.
    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        since: Option<StreamPosition>,
        recovery_max: usize,
    ) -> EngineFuture<'a, Subscription>;

    /// Adds (or refreshes) `info` in the channel's presence; a `join` event goes to the
    /// channel's subscribers when the client was not there yet.
    fn presence_add<'a>(&'a self, channel: &'a str, info: ClientInfo) -> EngineFuture<'a, ()>;

    /// Removes `client` from the channel's presence; a `leave` event goes to the channel's
    /// subscribers when it was there.
    fn presence_remove<'a>(&'a self, channel: &'a str, client: &'a str) -> EngineFuture<'a, ()>;

    /// The channel's presence (the `presence` reply's `clients`), sorted by client id.
    fn presence<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, Vec<PresenceEntry>>;

    /// The channels with subscribers across the cluster and their counts, sorted by name
    /// (`GET /api/channels`: "counted across the cluster"), or `None` for an engine of one
    /// node (the server counts its own subscribers then, as the memory engine's are all
    /// there is).
    fn channels(&self) -> EngineFuture<'_, Option<ChannelCounts>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Opens this node's mailbox: what other nodes send it with [`Engine::send_to_node`]
    /// (a fallback session's requests that reached another node, "Fallback transports":
    /// no sticky sessions), until the engine is dropped. `None` for an engine that has no
    /// other nodes to hear from (the default).
    fn open_mailbox<'a>(&'a self, node: &'a str) -> EngineFuture<'a, Option<Mailbox>> {
        let _ = node;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Sends `message` to node `node`'s mailbox: `Ok(false)` when no such node is there to
    /// get it (a node that is gone: the session it held is too).
    fn send_to_node<'a>(&'a self, node: &'a str, message: Bytes) -> EngineFuture<'a, bool> {
        let _ = (node, message);
        Box::pin(std::future::ready(Ok(false)))
    }

    /// Whether the engine can serve now (`/health`: `broker` up or down): `Ok` when it
    /// can. By default, whether the position of the channel [`HEALTH_CHANNEL`] can be
    /// read; a networked engine also checks its subscriber link.
    fn health(&self) -> EngineFuture<'_, ()> {
        Box::pin(async move { self.position(HEALTH_CHANNEL).await.map(|_| ()) })
    }
}

/// A node's mailbox ([`Engine::open_mailbox`]): the messages other nodes sent it, in the
/// order each sender sent them.
pub type Mailbox = tokio::sync::mpsc::Receiver<Bytes>;

/// How many messages a node's mailbox holds before the engine drops what arrives (a node
/// too busy to read its mailbox: the forwarded requests time out).
pub const MAILBOX_CAPACITY: usize = 1024;

/// The channel whose position [`Engine::health`] reads by default: a valid channel name
/// (a dotted name is unlikely to collide with an application's channel).
pub const HEALTH_CHANNEL: &str = "wsengine.health";

/// Where an engine reads the time, so that tests move it instead of sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The hub is a host, not the sans-IO core: this is the one place the engines read
    // the wall clock (publication times, history TTLs, the position's 24 hours).
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told ([`ManualClock::advance`]): for tests of TTLs.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
