//! The NATS engine: publications fan out to every hub node through NATS core pub/sub,
//! while each node keeps its own stream (offsets, epoch, history) and presence per
//! channel in memory (`[engine] kind = "nats"`, `--nats URL`; `docs/HUB-PROTOCOL.md`,
//! "Details the implementation chose", "Engines": the subjects, the guarantees and the
//! failure behaviour).
//!
//! # The design: memory per node, fan-out through NATS
//!
//! NATS core gives no sequence the nodes agree on (JetStream's stream sequence is
//! stream-wide, not per channel; per-channel offsets would need a KV compare-and-set per
//! publication). This engine takes the smaller honest design issue #19 allows: each node
//! runs a [`MemoryEngine`] and applies to it every publication it receives, in the order
//! NATS delivers it, so within one node the contract holds (offsets 1, 2, 3... per epoch,
//! the same order for every subscriber of the node, history, recovery without gap), but
//! offsets and epochs are the node's own: a client that reconnects to another node finds
//! another epoch and gets `recovered: false`. Presence (and `join`/`leave`) is per node
//! too, and `/api/channels` counts the node's own subscribers.
//!
//! # Subjects
//!
//! With the prefix `P` ([`NatsConfig::prefix`], default `wsengine`): a channel `C`'s
//! publications go to `P.topic.HEX` (`HEX`: the channel name's bytes in lower-case hex,
//! because a name's `.` would split NATS tokens and the subject must stay one token).
//! Each node subscribes once to `P.topic.>`, so it sees every channel's publications,
//! also those of channels it has no subscriber for: its history stays whole, and a client
//! that comes back to the same node recovers what it missed. The message is JSON:
//! `channel`, `payload` (as the publisher wrote it), `info`, `history_size` and
//! `history_ttl_ms` (the publisher's namespace options). The connection is made with
//! `no_echo`: the publishing node applies its own publication directly, and NATS does not
//! send it back.
//!
//! # The client crate
//!
//! [async-nats](https://docs.rs/async-nats), the NATS maintainers' tokio client: it
//! reconnects by itself with a backoff this engine sets (100 ms doubling to
//! [`NatsConfig::reconnect_max`]), restores its subscriptions after a reconnection and
//! reports connection events (connected, disconnected, slow consumer). Built without
//! default features: no JetStream, KV or object store (this design does not use them),
//! no service API, no websockets, no nkeys; `aws-lc-rs` is the one crypto provider its
//! TLS code requires, the one rustls already builds in this tree. So built it adds 15
//! crates to the hub's tree, the largest being `regex` (a dependency the client always has,
//! though only its object store uses it) and `tracing`; the rest (rustls, tokio, serde,
//! url) was already there.
//!
//! # Failures
//!
//! NATS core is at-most-once: a node that loses its connection misses what others publish
//! meanwhile. When the client reports a disconnection (or a slow consumer: its buffer
//! dropped messages), the node's memory is replaced by a new one: every local
//! subscription ends with [`RecvError::Interrupted`](super::RecvError::Interrupted) (the
//! server closes those clients with 1013), every channel gets a new epoch on the node (a
//! returning client gets `recovered: false`, never a silent gap) and the node's presence
//! is emptied (its clients were closed). On reconnection the client subscribes again by
//! itself and the node makes a round trip before it serves again, so publications made
//! after that reach it. While the connection is down every call but removing presence is
//! [`EngineError::Unavailable`]; a publish is bounded by [`NatsConfig::op_timeout`]
//! (written and flushed to NATS within it, or `unavailable`: one that timed out may still
//! reach other nodes). A NATS that hangs is noticed by [`Engine::health`] within
//! `op_timeout`, but the connection counts as broken only after two unanswered pings
//! ([`NatsConfig::ping_interval`]); publishes written meanwhile are answered and may never
//! reach the other nodes (at most once). [`NatsEngine::connect`] fails when NATS cannot be reached at start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Event, RequestErrorKind};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::memory::{MemoryConfig, MemoryEngine};
use super::{
    ClientInfo, Engine, EngineError, EngineFuture, HistoryOptions, HistoryResult, MAILBOX_CAPACITY,
    Mailbox, Payload, PresenceEntry, Publication, Recovery, StreamPosition, Subscription,
    SubscriptionLink,
};

/// The NATS engine's settings.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// The NATS URL (`nats://[user:password@]host:port`).
    pub url: String,
    /// What every subject starts with (several hubs, or tests, can share one NATS under
    /// different prefixes). A valid subject token: `[A-Za-z0-9_-]`.
    pub prefix: String,
    /// The longest a publish (written and flushed) or a health check may take before it
    /// is [`EngineError::Unavailable`]; also the connection timeout.
    pub op_timeout: Duration,
    /// How often the client pings NATS (a connection that stopped answering is dropped
    /// after two unanswered pings).
    pub ping_interval: Duration,
    /// The longest wait between two attempts to reconnect.
    pub reconnect_max: Duration,
    /// Events buffered per channel for its local receivers (as the memory engine's).
    pub channel_capacity: usize,
}

impl NatsConfig {
    /// The defaults for the NATS at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "wsengine".to_owned(),
            op_timeout: Duration::from_secs(3),
            ping_interval: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(2),
            channel_capacity: 1024,
        }
    }
}

/// One life of the node's streams: replaced when the link to NATS breaks.
#[derive(Debug)]
struct Generation {
    memory: MemoryEngine,
    /// Set before the generation is dropped because the link broke: its subscriptions
    /// end with `Interrupted`, not `Closed`.
    interrupted: Arc<AtomicBool>,
}

impl Generation {
    fn new(config: &NatsConfig) -> Arc<Self> {
        Arc::new(Self {
            memory: MemoryEngine::new(MemoryConfig {
                channel_capacity: config.channel_capacity,
                ..MemoryConfig::default()
            }),
            interrupted: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A subscription's hold on its generation's fate.
#[derive(Debug)]
struct GenerationLink(Arc<AtomicBool>);

impl SubscriptionLink for GenerationLink {
    fn interrupted(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A publication as it travels on NATS (written by the publishing node).
#[derive(Serialize)]
struct Outgoing<'a> {
    channel: &'a str,
    payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a ClientInfo>,
    history_size: usize,
    history_ttl_ms: u64,
}

/// A publication as a node receives it.
#[derive(Deserialize)]
struct Incoming {
    channel: String,
    payload: Box<RawValue>,
    #[serde(default)]
    info: Option<ClientInfo>,
    history_size: usize,
    history_ttl_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The subject of `channel`'s publications: `PREFIX.topic.HEX`.
fn subject(prefix: &str, channel: &str) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(prefix.len() + 7 + 2 * channel.len());
    s.push_str(prefix);
    s.push_str(".topic.");
    for b in channel.bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The message of a publication on its subject.
fn encode(
    channel: &str,
    payload: &RawValue,
    info: Option<&ClientInfo>,
    opts: HistoryOptions,
) -> Result<Bytes, EngineError> {
    serde_json::to_vec(&Outgoing {
        channel,
        payload,
        info,
        history_size: opts.history_size,
        history_ttl_ms: ms(opts.history_ttl),
    })
    .map(Bytes::from)
    .map_err(|e| EngineError::Internal(format!("encoding a publication: {e}")))
}

/// A received message as a publication to apply; `None` for a message this engine did
/// not write.
fn decode(message: &[u8]) -> Option<(String, Payload, Option<ClientInfo>, HistoryOptions)> {
    let m: Incoming = serde_json::from_slice(message).ok()?;
    if crate::protocol::validate_channel(&m.channel).is_err() {
        return None;
    }
    let opts = HistoryOptions {
        history_size: m.history_size,
        history_ttl: Duration::from_millis(m.history_ttl_ms),
    };
    Some((m.channel, Arc::from(m.payload), m.info, opts))
}

struct Inner {
    config: NatsConfig,
    client: async_nats::Client,
    generation: Mutex<Arc<Generation>>,
    /// False from a reported disconnection to the next reported connection.
    up: AtomicBool,
}

impl Inner {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst) && self.client.connection_state() == State::Connected
    }

    /// The current generation, or `Unavailable` while the link to NATS is down.
    fn current(&self) -> Result<Arc<Generation>, EngineError> {
        if !self.is_up() {
            return Err(EngineError::Unavailable(
                "the NATS connection is down".to_owned(),
            ));
        }
        Ok(lock(&self.generation).clone())
    }

    /// Starts a new generation: the old one's subscriptions end with `Interrupted`.
    fn interrupt(&self) {
        let old = std::mem::replace(&mut *lock(&self.generation), Generation::new(&self.config));
        old.interrupted.store(true, Ordering::SeqCst);
    }

    async fn apply(&self, message: &[u8]) {
        let Some((channel, payload, info, opts)) = decode(message) else {
            return;
        };
        let generation = lock(&self.generation).clone();
        // The memory engine's futures are ready at once and never fail.
        let _ = generation
            .memory
            .publish(&channel, payload, info, opts)
            .await;
    }

    async fn publish(
        &self,
        channel: &str,
        payload: Payload,
        info: Option<ClientInfo>,
        opts: HistoryOptions,
    ) -> Result<Arc<Publication>, EngineError> {
        let generation = self.current()?;
        let message = encode(channel, &payload, info.as_ref(), opts)?;
        let subject = subject(&self.config.prefix, channel);
        let sent = async {
            self.client
                .publish(subject, message)
                .await
                .map_err(|e| e.to_string())?;
            self.client.flush().await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.config.op_timeout, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(EngineError::Unavailable(format!("nats: {e}"))),
            Err(_) => {
                return Err(EngineError::Unavailable(format!(
                    "nats: publishing took more than {:?}",
                    self.config.op_timeout
                )));
            }
        }
        generation
            .memory
            .publish(channel, payload, info, opts)
            .await
    }

    /// A round trip to NATS: a request nobody answers (NATS says "no responders").
    async fn ping(&self) -> Result<(), EngineError> {
        let subject = format!("{}.health", self.config.prefix);
        let request = self.client.request(subject, Bytes::new());
        match tokio::time::timeout(self.config.op_timeout, request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
            Ok(Err(e)) => Err(EngineError::Unavailable(format!("nats: {e}"))),
            Err(_) => Err(EngineError::Unavailable(format!(
                "nats: no answer within {:?}",
                self.config.op_timeout
            ))),
        }
    }
}

/// Whether `url` is a NATS URL this engine can use (`nats://host:port`, optionally with
/// user and password; `tls://` and `ws://` are not tested here and refused): what the
/// configuration checks before start. The error does not repeat the URL (it may hold a
/// password).
pub fn check_url(url: &str) -> Result<(), String> {
    parse_url(url).map(|_| ())
}

fn parse_url(url: &str) -> Result<async_nats::ServerAddr, String> {
    let addr: async_nats::ServerAddr = url
        .parse()
        .map_err(|_| "not a URL of the form nats://host:port".to_owned())?;
    if addr.clone().into_inner().scheme() != "nats" {
        return Err("only nats:// URLs are supported (no TLS, no websockets)".to_owned());
    }
    Ok(addr)
}

/// The engine ([`Engine`]) over one NATS: memory per node, fan-out through NATS (the
/// module doc).
pub struct NatsEngine {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::AbortHandle>,
    /// The mailbox's task, once opened ([`Engine::open_mailbox`]).
    mailbox: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for NatsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsEngine")
            .field("prefix", &self.inner.config.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for NatsEngine {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(task) = lock(&self.mailbox).take() {
            task.abort();
        }
    }
}

impl NatsEngine {
    /// Connects to the NATS of `config.url`, subscribes to every channel's subject and
    /// starts the engine's tasks. Fails with [`EngineError::Unavailable`] when NATS cannot
    /// be reached within `config.op_timeout`, and [`EngineError::Internal`] for a URL it
    /// cannot use. Must be called inside a tokio runtime.
    pub async fn connect(config: NatsConfig) -> Result<Self, EngineError> {
        let addr = parse_url(&config.url)
            .map_err(|e| EngineError::Internal(format!("the NATS URL: {e}")))?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let reconnect_max = config.reconnect_max;
        let options = async_nats::ConnectOptions::new()
            .no_echo()
            .connection_timeout(config.op_timeout)
            .ping_interval(config.ping_interval)
            .request_timeout(Some(config.op_timeout))
            .reconnect_delay_callback(move |attempts| {
                let shift = u32::try_from(attempts.min(16)).unwrap_or(16);
                Duration::from_millis(100u64 << shift).min(reconnect_max)
            })
            .event_callback(move |event| {
                let events_tx = events_tx.clone();
                async move {
                    let _ = events_tx.send(event);
                }
            });
        let bounded = tokio::time::timeout(
            config.op_timeout + Duration::from_secs(1),
            options.connect(addr),
        );
        let client = bounded
            .await
            .map_err(|_| EngineError::Unavailable("nats: connecting timed out".to_owned()))?
            .map_err(|e| EngineError::Unavailable(format!("nats: {e}")))?;
        let subscriber = client
            .subscribe(format!("{}.topic.>", config.prefix))
            .await
            .map_err(|e| EngineError::Unavailable(format!("nats: subscribing: {e}")))?;
        // The subscription is on the server once a round trip has been made after it.
        tokio::time::timeout(config.op_timeout, client.flush())
            .await
            .map_err(|_| EngineError::Unavailable("nats: subscribing timed out".to_owned()))?
            .map_err(|e| EngineError::Unavailable(format!("nats: subscribing: {e}")))?;
        let inner = Arc::new(Inner {
            generation: Mutex::new(Generation::new(&config)),
            config,
            client,
            up: AtomicBool::new(true),
        });
        let messages = tokio::spawn(run_messages(Arc::downgrade(&inner), subscriber));
        let events = tokio::spawn(run_events(Arc::downgrade(&inner), events_rx));
        let engine = Self {
            inner,
            tasks: vec![messages.abort_handle(), events.abort_handle()],
            mailbox: Mutex::new(None),
        };
        engine.inner.ping().await?;
        Ok(engine)
    }

    /// Whether the connection to NATS is up now.
    pub fn connected(&self) -> bool {
        self.inner.is_up()
    }
}

/// Applies every received publication to the node's current generation.
async fn run_messages(inner: Weak<Inner>, mut subscriber: async_nats::Subscriber) {
    while let Some(message) = subscriber.next().await {
        let Some(inner) = inner.upgrade() else { return };
        inner.apply(&message.payload).await;
    }
}

/// Follows the client's connection events (see the module doc, "Failures").
async fn run_events(inner: Weak<Inner>, mut events: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        match event {
            Event::Connected => {
                // The client sent its subscription again on reconnecting; a round trip
                // after it means NATS has it before this node serves again (a publication
                // of another node made after this point reaches this node). A failed
                // ping is followed by another disconnection.
                let _ = inner.ping().await;
                inner.up.store(true, Ordering::SeqCst);
            }
            Event::Disconnected | Event::Closed => {
                inner.up.store(false, Ordering::SeqCst);
                inner.interrupt();
            }
            // The client's buffer dropped messages: the node's streams have a gap.
            Event::SlowConsumer(_) => inner.interrupt(),
            _ => {}
        }
    }
}

/// Hands each message of the node's mailbox subject to the mailbox, acknowledging it
/// to its sender (a request: [`Engine::send_to_node`] learns that a node got it).
async fn run_mailbox(
    client: async_nats::Client,
    mut subscriber: async_nats::Subscriber,
    mailbox: mpsc::Sender<Bytes>,
) {
    while let Some(message) = subscriber.next().await {
        if let Some(reply) = message.reply {
            let _ = client.publish(reply, Bytes::new()).await;
        }
        // A full mailbox drops it: the sender's request times out.
        let _ = mailbox.try_send(message.payload);
    }
}

impl Engine for NatsEngine {
    fn name(&self) -> &'static str {
        "nats"
    }

    /// The subject `P.node.NODE`.
    fn open_mailbox<'a>(&'a self, node: &'a str) -> EngineFuture<'a, Option<Mailbox>> {
        Box::pin(async move {
            let subject = format!("{}.node.{node}", self.inner.config.prefix);
            let client = self.inner.client.clone();
            let subscribed = async {
                let subscriber = client.subscribe(subject).await.map_err(|e| e.to_string())?;
                client.flush().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(subscriber)
            };
            let subscriber =
                match tokio::time::timeout(self.inner.config.op_timeout, subscribed).await {
                    Ok(Ok(subscriber)) => subscriber,
                    Ok(Err(e)) => return Err(EngineError::Unavailable(format!("nats: {e}"))),
                    Err(_) => {
                        return Err(EngineError::Unavailable(
                            "nats: subscribing the mailbox timed out".to_owned(),
                        ));
                    }
                };
            let (sender, receiver) = mpsc::channel(MAILBOX_CAPACITY);
            let task = tokio::spawn(run_mailbox(client, subscriber, sender));
            if let Some(old) = lock(&self.mailbox).replace(task.abort_handle()) {
                old.abort();
            }
            Ok(Some(receiver))
        })
    }

    /// A request on `P.node.NODE`: NATS says "no responders" when no node has it.
    fn send_to_node<'a>(&'a self, node: &'a str, message: Bytes) -> EngineFuture<'a, bool> {
        Box::pin(async move {
            let subject = format!("{}.node.{node}", self.inner.config.prefix);
            let request = self.inner.client.request(subject, message);
            match tokio::time::timeout(self.inner.config.op_timeout, request).await {
                Ok(Ok(_)) => Ok(true),
                Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => Ok(false),
                Ok(Err(e)) => Err(EngineError::Unavailable(format!("nats: {e}"))),
                Err(_) => Err(EngineError::Unavailable(
                    "nats: the node did not acknowledge in time".to_owned(),
                )),
            }
        })
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        payload: Payload,
        info: Option<ClientInfo>,
        opts: HistoryOptions,
    ) -> EngineFuture<'a, Arc<Publication>> {
        Box::pin(self.inner.publish(channel, payload, info, opts))
    }

    fn position<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, StreamPosition> {
        Box::pin(async move { self.inner.current()?.memory.position(channel).await })
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        limit: Option<usize>,
        since: Option<StreamPosition>,
    ) -> EngineFuture<'a, HistoryResult> {
        Box::pin(async move {
            let generation = self.inner.current()?;
            generation.memory.history(channel, limit, since).await
        })
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        since: StreamPosition,
        recovery_max: usize,
    ) -> EngineFuture<'a, Recovery> {
        Box::pin(async move {
            let generation = self.inner.current()?;
            generation
                .memory
                .recover(channel, since, recovery_max)
                .await
        })
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        since: Option<StreamPosition>,
        recovery_max: usize,
    ) -> EngineFuture<'a, Subscription> {
        Box::pin(async move {
            let generation = self.inner.current()?;
            let subscription = generation
                .memory
                .subscribe(channel, since, recovery_max)
                .await?;
            let link = GenerationLink(generation.interrupted.clone());
            Ok(subscription.linked(Box::new(link)))
        })
    }

    fn presence_add<'a>(&'a self, channel: &'a str, info: ClientInfo) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            let generation = self.inner.current()?;
            generation.memory.presence_add(channel, info).await
        })
    }

    fn presence_remove<'a>(&'a self, channel: &'a str, client: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            // Allowed while down: the entry goes from this node's memory either way.
            let generation = lock(&self.inner.generation).clone();
            generation.memory.presence_remove(channel, client).await
        })
    }

    fn presence<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, Vec<PresenceEntry>> {
        Box::pin(async move { self.inner.current()?.memory.presence(channel).await })
    }

    fn health(&self) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            self.inner.current()?;
            self.inner.ping().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_token_per_channel() {
        assert_eq!(subject("wsengine", "a.b:c"), "wsengine.topic.612e623a63");
        assert_eq!(subject("p", "*>"), "p.topic.2a3e");
    }

    #[test]
    fn messages_round_trip() {
        let payload = RawValue::from_string(r#"{"b":1,"a":2.50}"#.to_owned()).unwrap();
        let info = ClientInfo {
            client: "n-1".into(),
            user: "u".into(),
            name: None,
        };
        let opts = HistoryOptions {
            history_size: 7,
            history_ttl: Duration::from_secs(9),
        };
        let bytes = encode("news.x", &payload, Some(&info), opts).unwrap();
        let (channel, got, got_info, got_opts) = decode(&bytes).unwrap();
        assert_eq!(channel, "news.x");
        assert_eq!(got.get(), r#"{"b":1,"a":2.50}"#);
        assert_eq!(got_info, Some(info));
        assert_eq!(got_opts, opts);
        assert!(decode(b"not json").is_none());
        assert!(
            decode(br#"{"channel":"bad name","payload":1,"history_size":1,"history_ttl_ms":1}"#)
                .is_none()
        );
    }
}
