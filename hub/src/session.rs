//! One client session of the hub, from its start to its end: the protocol's
//! per-connection rules (`docs/HUB-PROTOCOL.md`) as one task.
//!
//! The session speaks to its client through a `Link`: the WebSocket of `/ws`
//! (`WsLink`), or a fallback session's queues (`crate::fallback`: SSE and long
//! polling). Every rule below holds on each of them.
//!
//! The task waits on four things at once: the client's next message (whose poll also
//! writes what is queued), the events of the channels it subscribed to, one timer
//! (`connect_timeout`, the next `ping`, the token's `exp`) and the server's shutdown.
//! Everything it sends is queued in the core without waiting (`try_send`,
//! `try_send_prepared`), so a client that reads slowly never blocks the publisher or
//! other subscribers; its backlog is checked against `outbound_cap` before each delivery
//! (close 4003).
//!
//! A publication is encoded once per node: the first subscriber that delivers it
//! makes its frame ([`Publication::wire`](crate::engine::Publication)), every other
//! one queues the same bytes.
//!
//! A connection's publishes are pipelined: up to 32 (`MAX_PUBLISHES_IN_FLIGHT`) go to the
//! engine before the first is answered (with a broker, one round trip no longer bounds a
//! publisher to one publication per round trip). The engine starts them in request
//! order (`Pipeline` polls them oldest first), so they get offsets in that order; their
//! answers, refusals included, go out in that order; and any other request waits until
//! the publishes before it are answered, so it sees their effects ("in the order
//! requests arrived", docs/HUB-PROTOCOL.md).

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use wsengine::extensions::deflate::DeflateConfig;
use wsengine::frame::CloseFrame;
use wsengine::{CloseCode, Keepalive, PreparedMessage};
use wsengine_tokio::{Message, WebSocketStream};

use crate::auth::{Claims, token_allows};
use crate::config::{Config, PublishPolicy, SubscribePolicy};
use crate::engine::{
    ChannelEvent, ClientInfo, EngineError, HistoryOptions, Payload, Publication, RecvError,
    StreamPosition, Subscription,
};
use crate::limits::{PublishLimiter, PublishVerdict};
use crate::protocol::{
    self, ClientMessage, ConnectResult, Empty, ErrorCode, MAX_MALFORMED, PresenceResult,
    PublishResult, RefreshResult, ReplyResult, Request, RequestId, ServerMessage, Since, close,
    parse_client, validate_channel,
};
use crate::server::{Hub, stopped};

/// Events delivered per wake before the socket is written: one write carries many
/// publications when they come fast, and the client's messages are read in between.
const DELIVERY_BATCH: usize = 64;

/// Publishes one connection may have at the engine, unanswered: past it the task reads
/// nothing more from the client until the oldest is answered.
const MAX_PUBLISHES_IN_FLIGHT: usize = 32;

/// How long the closing handshake may take once the server has sent its Close (the
/// core's own close timeout ends it sooner; this bounds the task whatever happens).
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// How many distinct channels one connection may name over its life, per
/// `max_channels_per_client` (subscribe, publish, history, presence: each makes the
/// engine keep a position for a day, so a client must not name channels without end).
const TOUCHED_PER_CHANNEL_LIMIT: usize = 4;

/// The core's configuration for a hub connection: the message size limit
/// (`max_message_size`: the core closes with 1009 above it), a send buffer the hub
/// bounds itself (`outbound_cap`, checked before each delivery), and keepalive Pings
/// every `ping_interval` so that a peer gone without a FIN is noticed.
pub fn websocket_config(config: &Config) -> wsengine::Config {
    let limits = &config.limits;
    let mut ws = wsengine::Config::default();
    ws.max_message_size = limits.max_message_size;
    ws.max_frame_size = limits.max_message_size;
    ws.max_send_buffer = usize::MAX;
    if config.websocket.compression {
        ws.deflate = Some(deflate_config());
    }
    ws.keepalive = Some(Keepalive {
        interval: Duration::from_secs(limits.ping_interval),
        timeout: Duration::from_secs(limits.ping_interval.max(10)),
    });
    ws
}

/// permessage-deflate for `/ws` when `[websocket] compression` is on: no context takeover
/// either way, so that a prepared publication compressed on its own can go to every
/// client that negotiated it, and an idle connection keeps no compressor.
pub fn deflate_config() -> DeflateConfig {
    DeflateConfig::low_memory()
}

/// Seconds since the Unix epoch, for tokens' `exp`.
#[allow(
    clippy::disallowed_methods,
    reason = "the hub is a host: it reads the clock"
)]
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A client message, as the session sees it.
pub(crate) enum Inbound {
    /// A text message: one protocol message (or a malformed one). The WebSocket's own
    /// buffer, not a copy.
    Text(wsengine::Utf8Bytes),
    /// A binary message: not part of the protocol (1003).
    Binary,
    /// A message over `max_message_size` that the link itself did not refuse (1009).
    Oversized,
    /// The client ends the session (a fallback session's `{"type":"close"}`).
    Close,
    /// Nothing for the session (WebSocket control frames: the core answers them).
    Control,
}

/// What a session reads its client's messages from and queues its own to: one calling
/// protocol for the WebSocket of `/ws` and the fallback transports. Nothing it queues
/// waits for the client; [`Link::pending_bytes`] is what the client has not taken yet
/// (checked against `outbound_cap`).
pub(crate) trait Link: Send + 'static {
    /// The client's next message; `None` once the client is gone (the connection
    /// dropped, or a fallback session expired). Polling it also writes what is queued.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound>>;
    /// Queues a server message. `position` is the SSE event id when the message moves a
    /// subscription's position and [`Link::wants_positions`]. False when the link is ending.
    fn send_text(&mut self, text: String, position: Option<String>) -> bool;
    /// Queues a publication (encoded once per node for every link of its kind).
    fn send_publication(
        &mut self,
        p: &Publication,
        compress: bool,
        position: Option<String>,
    ) -> bool;
    /// The bytes a publication adds to the backlog on this link.
    fn publication_len(&self, p: &Publication, compress: bool) -> usize;
    /// Bytes queued that the client has not taken yet.
    fn pending_bytes(&self) -> usize;
    /// Whether events carry the subscriptions' positions (SSE ids for `Last-Event-ID`).
    fn wants_positions(&self) -> bool {
        false
    }
    /// Queues the server's close with `code` and its reason; nothing is sent after it.
    fn close(&mut self, code: u16);
    /// The close code to count for a client that left without the server's close.
    fn gone_code(&self) -> u16;
    /// After [`Link::close`]: lets the close reach the client (the closing handshake),
    /// bounded in time.
    fn finish(&mut self) -> impl Future<Output = ()> + Send + '_;
}

/// The WebSocket of `/ws`: the tokio adapter over an upgraded connection.
pub(crate) struct WsLink<S>(pub(crate) WebSocketStream<S>);

impl<S> Link for WsLink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let next = std::pin::pin!(self.0.next());
        next.poll(cx).map(|message| match message {
            None | Some(Err(_)) => None,
            Some(Ok(Message::Text(text))) => Some(Inbound::Text(text)),
            Some(Ok(Message::Binary(_))) => Some(Inbound::Binary),
            // Pings are answered by the core; a Close is echoed by it.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => {
                Some(Inbound::Control)
            }
        })
    }

    fn send_text(&mut self, text: String, _position: Option<String>) -> bool {
        // Never `Full`: the core's send buffer is unbounded here (`websocket_config`);
        // the hub bounds it with `outbound_cap`. Refused: the connection is ending.
        self.0.try_send(Message::text(text)).is_ok()
    }

    fn send_publication(
        &mut self,
        p: &Publication,
        compress: bool,
        _position: Option<String>,
    ) -> bool {
        self.0
            .try_send_prepared(publication_frame(p, compress))
            .is_ok()
    }

    fn publication_len(&self, p: &Publication, compress: bool) -> usize {
        publication_frame(p, compress).frame().len()
    }

    fn pending_bytes(&self) -> usize {
        self.0.pending_bytes()
    }

    fn close(&mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode(code),
            reason: close::reason(code).to_owned(),
        };
        // `close` queues the frame when called; its future only waits for the closing
        // handshake, which `finish` does by reading on.
        drop(self.0.close(Some(frame)));
    }

    fn gone_code(&self) -> u16 {
        self.0.closed().map_or(1006, |(code, _)| code.0)
    }

    async fn finish(&mut self) {
        // Our Close is queued: let the core finish the closing handshake (bounded by
        // its close timeout, and by CLOSE_GRACE whatever happens).
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = self.0.next().await {}
        })
        .await;
    }
}

/// A publication's fields on the wire (items of `publications`; with `type`, the
/// `publication` message), borrowed from the engine's publication.
#[derive(Serialize)]
pub(crate) struct WirePublication<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    ty: Option<&'static str>,
    channel: &'a str,
    offset: u64,
    epoch: &'a str,
    payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a ClientInfo>,
}

impl<'a> WirePublication<'a> {
    pub(crate) fn item(p: &'a Publication) -> Self {
        Self {
            ty: None,
            channel: &p.channel,
            offset: p.offset,
            epoch: &p.epoch,
            payload: &p.payload,
            info: p.info.as_ref(),
        }
    }
}

/// The `publication` message of `p` as JSON text, encoded once per node.
pub fn publication_json(p: &Publication) -> &Arc<str> {
    p.wire.json_or_init(|| {
        let mut message = WirePublication::item(p);
        message.ty = Some("publication");
        serde_json::to_string(&message).unwrap_or_default().into()
    })
}

/// The `publication` message of `p`, encoded once per node (and compressed once, for
/// the clients that negotiated permessage-deflate, when `compress`).
pub fn publication_frame(p: &Publication, compress: bool) -> &PreparedMessage {
    p.wire.get_or_init(|| {
        let frame = PreparedMessage::text(publication_json(p).to_string());
        if compress {
            frame.with_deflate(&deflate_config())
        } else {
            frame
        }
    })
}

/// A `reply` whose result borrows from the engine (subscribe, history).
#[derive(Serialize)]
struct Reply<T> {
    #[serde(rename = "type")]
    ty: &'static str,
    id: RequestId,
    result: T,
}

#[derive(Serialize)]
struct SubscribeReply<'a> {
    epoch: &'a str,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publications: Option<Vec<WirePublication<'a>>>,
}

/// A subscription the session made again after an SSE resume ("Fallback transports").
#[derive(Serialize)]
struct Subscribed<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    channel: &'a str,
    #[serde(flatten)]
    result: SubscribeReply<'a>,
}

/// A resumed subscription that could not be made again.
#[derive(Serialize)]
struct SubscribedError<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    channel: &'a str,
    error: protocol::ErrorBody,
}

#[derive(Serialize)]
struct HistoryReply<'a> {
    publications: Vec<WirePublication<'a>>,
    epoch: &'a str,
    offset: u64,
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

type NextEvent =
    Pin<Box<dyn Future<Output = (Result<ChannelEvent, RecvError>, Subscription)> + Send>>;

enum SlotState {
    /// Not waited on: events are read with `try_recv` first.
    Idle(Subscription),
    /// Waiting for the next event (owns the subscription meanwhile).
    Waiting(NextEvent),
    /// Only while the state is being replaced.
    Moving,
}

struct Slot {
    channel: Arc<str>,
    presence: bool,
    /// The position the client has reached: the subscribe reply's, then each
    /// publication's as it is queued (SSE ids carry them).
    offset: u64,
    epoch: Arc<str>,
    state: SlotState,
}

/// The connection's subscriptions, polled together: a ready event of any of them wakes
/// the task. A subscription that has events is read without allocating (`try_recv`);
/// one that has none gets a boxed future that waits (one allocation per time it runs
/// dry, not per event).
#[derive(Default)]
struct Subscriptions {
    slots: Vec<Slot>,
    start: usize,
}

impl Subscriptions {
    fn contains(&self, channel: &str) -> bool {
        self.slots.iter().any(|s| &*s.channel == channel)
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn add(
        &mut self,
        channel: Arc<str>,
        presence: bool,
        position: (u64, Arc<str>),
        subscription: Subscription,
    ) {
        // Most clients hold one or two channels: grow by one rather than to four slots
        // at the first push (an idle subscriber's memory is mostly this kind of thing).
        if self.slots.len() == self.slots.capacity() {
            self.slots.reserve_exact(1);
        }
        self.slots.push(Slot {
            channel,
            presence,
            offset: position.0,
            epoch: position.1,
            state: SlotState::Idle(subscription),
        });
    }

    /// Moves `channel`'s position to `p`'s.
    fn advance(&mut self, channel: &str, p: &Publication) {
        if let Some(slot) = self.slots.iter_mut().find(|s| &*s.channel == channel) {
            slot.offset = p.offset;
            if slot.epoch != p.epoch {
                slot.epoch = Arc::clone(&p.epoch);
            }
        }
    }

    /// Every subscription's position as an SSE event id: `OFFSET:EPOCH:CHANNEL` items
    /// joined by `,` ("Fallback transports"). An epoch that could not be read back
    /// (outside `[A-Za-z0-9_-]`) is left out: that channel is not resumed.
    fn positions(&self) -> String {
        let mut id = String::new();
        for slot in &self.slots {
            if !slot
                .epoch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                continue;
            }
            if !id.is_empty() {
                id.push(',');
            }
            id.push_str(&format!("{}:{}:{}", slot.offset, slot.epoch, slot.channel));
        }
        id
    }

    fn remove(&mut self, channel: &str) -> Option<Slot> {
        let index = self.slots.iter().position(|s| &*s.channel == channel)?;
        Some(self.slots.swap_remove(index))
    }

    /// The next event of any subscription if one is ready now, without waiting.
    fn try_next(&mut self) -> Option<(Arc<str>, Result<ChannelEvent, RecvError>)> {
        let n = self.slots.len();
        for k in 0..n {
            let i = (self.start + k) % n;
            let slot = &mut self.slots[i];
            if let SlotState::Idle(sub) = &mut slot.state {
                match sub.try_recv() {
                    Ok(Some(event)) => {
                        self.start = i;
                        return Some((Arc::clone(&slot.channel), Ok(event)));
                    }
                    Ok(None) => {}
                    Err(e) => return Some((Arc::clone(&slot.channel), Err(e))),
                }
            }
        }
        None
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<(Arc<str>, Result<ChannelEvent, RecvError>)> {
        let n = self.slots.len();
        for k in 0..n {
            let i = (self.start + k) % n;
            let slot = &mut self.slots[i];
            if let SlotState::Idle(sub) = &mut slot.state {
                match sub.try_recv() {
                    Ok(Some(event)) => {
                        self.start = (i + 1) % n;
                        return Poll::Ready((Arc::clone(&slot.channel), Ok(event)));
                    }
                    Ok(None) => {
                        let SlotState::Idle(mut sub) =
                            std::mem::replace(&mut slot.state, SlotState::Moving)
                        else {
                            continue;
                        };
                        slot.state = SlotState::Waiting(Box::pin(async move {
                            let event = sub.recv().await;
                            (event, sub)
                        }));
                    }
                    Err(e) => return Poll::Ready((Arc::clone(&slot.channel), Err(e))),
                }
            }
            if let SlotState::Waiting(future) = &mut slot.state
                && let Poll::Ready((event, sub)) = future.as_mut().poll(cx)
            {
                slot.state = SlotState::Idle(sub);
                self.start = (i + 1) % n;
                return Poll::Ready((Arc::clone(&slot.channel), event));
            }
        }
        Poll::Pending
    }

    fn next(&mut self) -> impl Future<Output = (Arc<str>, Result<ChannelEvent, RecvError>)> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    fn drain(&mut self) -> Vec<Slot> {
        std::mem::take(&mut self.slots)
    }
}

/// The answer to a publish, in its place among the connection's answers.
enum Answer {
    /// The engine's, and when its call started (the broker round trip metric).
    Published {
        id: RequestId,
        started: Instant,
        result: Result<Arc<Publication>, EngineError>,
    },
    /// Refused before the engine (rate, permission, channel name): an `error` that waits
    /// for the answers of the publishes before it.
    Refused(ServerMessage),
}

type PendingAnswer = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// The connection's publishes at the engine, oldest first. Each poll polls every
/// unfinished call oldest first, so a call is first polled (and, for a broker, its
/// request written to the broker's connection) after every call before it: the engine
/// starts them in request order. Answers come out oldest first.
#[derive(Default)]
struct Pipeline {
    calls: VecDeque<(PendingAnswer, Option<Answer>)>,
}

impl Pipeline {
    fn len(&self) -> usize {
        self.calls.len()
    }

    fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn push(&mut self, call: PendingAnswer) {
        self.calls.push_back((call, None));
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Answer> {
        for (call, done) in &mut self.calls {
            if done.is_none()
                && let Poll::Ready(answer) = call.as_mut().poll(cx)
            {
                *done = Some(answer);
            }
        }
        match self.calls.front_mut() {
            Some((_, done)) if done.is_some() => {
                let answer = done.take();
                self.calls.pop_front();
                answer.map_or(Poll::Pending, Poll::Ready)
            }
            _ => Poll::Pending,
        }
    }

    /// The oldest answer; never resolves when empty.
    fn next(&mut self) -> impl Future<Output = Answer> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }
}

/// Who the client is, once `connect` succeeded.
struct Client {
    info: ClientInfo,
    /// The token's claims (`channels` decides the namespaces with `token` rights); empty
    /// for an anonymous client.
    claims: Claims,
    /// The token's `exp` (unix seconds).
    exp: Option<u64>,
}

/// What woke the task.
enum Wake {
    Message(Option<Inbound>),
    Event(Arc<str>, Result<ChannelEvent, RecvError>),
    Answer(Answer),
    Timer,
    Shutdown,
}

/// How a fallback session starts: its opening request was its `connect`
/// ("Fallback transports").
pub(crate) struct Opening {
    /// The session id, for the `session` message.
    pub session: Arc<str>,
    /// `"sse"` or `"long-polling"`.
    pub transport: &'static str,
    /// The token of the opening request, if any.
    pub token: Option<String>,
    /// The client's `name`, if any.
    pub name: Option<String>,
    /// SSE: the channels and positions of `Last-Event-ID`, subscribed again after the
    /// connect.
    pub resume: Vec<(String, Since)>,
}

/// A fallback session's first message: the session id and the `connect` reply's fields.
#[derive(Serialize)]
struct SessionMessage<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    session: &'a str,
    transport: &'static str,
    #[serde(flatten)]
    connect: &'a ConnectResult,
}

struct Session<L> {
    hub: Arc<Hub>,
    link: L,
    query_token: Option<String>,
    client: Option<Client>,
    subs: Subscriptions,
    touched: HashSet<Arc<str>>,
    malformed: u32,
    publish: PublishLimiter,
    /// Publishes at the engine, unanswered.
    publishing: Pipeline,
    connect_deadline: Instant,
    next_ping: Option<Instant>,
    exp_deadline: Option<Instant>,
    /// Bytes ever handed to the core, and the mark up to which they are exempt from
    /// `outbound_cap` (a `subscribe` reply: "Details", recovery size).
    queued_total: u64,
    exempt_until: u64,
    /// The close code the server sent, once it did.
    closing: Option<u16>,
}

/// Runs one WebSocket client's session to its end.
pub async fn run<S>(
    hub: Arc<Hub>,
    ws: WebSocketStream<S>,
    query_token: Option<String>,
    _peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    run_link(hub, WsLink(ws), query_token, None).await;
}

/// Runs one session on `link` to its end; a fallback session starts from its `opening`.
pub(crate) async fn run_link<L: Link>(
    hub: Arc<Hub>,
    link: L,
    query_token: Option<String>,
    opening: Option<Opening>,
) {
    hub.metrics.connections.inc();
    let now = Instant::now();
    let limits = &hub.config.limits;
    let mut session = Session {
        publish: PublishLimiter::new(limits.publish_rate, now),
        publishing: Pipeline::default(),
        connect_deadline: now + Duration::from_secs(limits.connect_timeout),
        hub: Arc::clone(&hub),
        link,
        query_token,
        client: None,
        subs: Subscriptions::default(),
        touched: HashSet::new(),
        malformed: 0,
        next_ping: None,
        exp_deadline: None,
        queued_total: 0,
        exempt_until: 0,
        closing: None,
    };
    if let Some(opening) = opening {
        Box::pin(session.open(opening)).await;
    }
    session.run().await;
    // Boxed for the same reason as requests (`Session::run`): it runs once, at the end.
    // The session is over for the others (presence) before its close reaches the client.
    Box::pin(session.leave_all()).await;
    if session.closing.is_some() {
        // Our close is queued: let it reach the client (the closing handshake).
        session.link.finish().await;
    }
    hub.metrics.connections.dec();
}

impl<L: Link> Session<L> {
    async fn run(&mut self) {
        let mut shutdown = self.hub.shutdown_signal();
        let timer = tokio::time::sleep_until(self.connect_deadline);
        tokio::pin!(timer);
        let mut armed = self.connect_deadline;
        loop {
            if self.closing.is_some() {
                break;
            }
            let deadline = self.next_deadline();
            if deadline != armed {
                timer.as_mut().reset(deadline);
                armed = deadline;
            }
            let connected = self.client.is_some();
            let reading = self.publishing.len() < MAX_PUBLISHES_IN_FLIGHT;
            let publishing = !self.publishing.is_empty();
            let wake = tokio::select! {
                biased;
                message = std::future::poll_fn(|cx| self.link.poll_next(cx)), if reading => {
                    Wake::Message(message)
                }
                answer = self.publishing.next(), if publishing => Wake::Answer(answer),
                (channel, event) = self.subs.next(), if connected => Wake::Event(channel, event),
                () = timer.as_mut() => Wake::Timer,
                () = stopped(&mut shutdown) => Wake::Shutdown,
            };
            match wake {
                Wake::Message(None) => {
                    self.hub.metrics.closed(self.link.gone_code());
                    // The connection is gone: the publishes it sent still happen.
                    self.settle_publishes().await;
                    return;
                }
                // Boxed: a request's future (engine calls and all) would otherwise be
                // part of every idle connection's task, however rarely it runs.
                Wake::Message(Some(message)) => Box::pin(self.on_message(message)).await,
                Wake::Event(channel, event) => self.on_events(channel, event),
                Wake::Answer(answer) => self.answer(answer),
                Wake::Timer => self.on_timer(),
                Wake::Shutdown => self.close(close::GOING_AWAY),
            }
        }
        // Publishes the client sent before it left still happen (each call is bounded by
        // the engine's timeout), and are answered if the connection is still there.
        self.settle_publishes().await;
    }

    fn next_deadline(&self) -> Instant {
        if self.client.is_none() {
            return self.connect_deadline;
        }
        let far = Instant::now() + Duration::from_secs(24 * 3600);
        [self.next_ping, self.exp_deadline]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far)
    }

    /// Queues a Close with `code` (and its reason) and stops serving the connection.
    fn close(&mut self, code: u16) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some(code);
        self.hub.metrics.closed(code);
        self.link.close(code);
    }

    /// Queues `text` (a reply, an error, a ping).
    fn send_text(&mut self, text: String) {
        self.send_positioned(text, false);
    }

    /// Queues `text`; `moves` when it moves a subscription's position (its SSE event
    /// then carries every position).
    fn send_positioned(&mut self, text: String, moves: bool) {
        let before = self.link.pending_bytes();
        let len = text.len();
        let position = (moves && self.link.wants_positions()).then(|| self.subs.positions());
        if !self.link.send_text(text, position) {
            return;
        }
        self.account(before, len);
    }

    fn account(&mut self, before: usize, payload: usize) {
        let after = self.link.pending_bytes();
        self.queued_total += after.saturating_sub(before) as u64;
        self.hub.metrics.bytes_sent.inc_by(payload as u64);
    }

    fn send(&mut self, message: &ServerMessage) {
        self.send_text(message.to_json());
    }

    fn reply(&mut self, id: RequestId, result: ReplyResult) {
        self.send(&ServerMessage::reply(id, result));
    }

    fn error(&mut self, id: RequestId, code: ErrorCode, message: impl Into<String>) {
        self.send(&ServerMessage::error(Some(id), code, message));
    }

    /// An `error` for a request that may have publishes before it still unanswered: it
    /// waits for their answers (only publishes get here with any: other requests
    /// settle them first).
    fn refuse(&mut self, id: RequestId, code: ErrorCode, message: impl Into<String>) {
        let error = ServerMessage::error(Some(id), code, message);
        if self.publishing.is_empty() {
            self.send(&error);
        } else {
            self.publishing
                .push(Box::pin(std::future::ready(Answer::Refused(error))));
        }
    }

    /// Waits for every publish under way and sends their answers.
    async fn settle_publishes(&mut self) {
        while !self.publishing.is_empty() {
            let answer = self.publishing.next().await;
            self.answer(answer);
        }
    }

    fn answer(&mut self, answer: Answer) {
        match answer {
            Answer::Published {
                id,
                started,
                result,
            } => {
                self.observe(started);
                match result {
                    Ok(p) => {
                        self.hub.metrics.publications.inc();
                        self.reply(
                            id,
                            ReplyResult::Publish(PublishResult {
                                offset: p.offset,
                                epoch: p.epoch.to_string(),
                            }),
                        );
                    }
                    Err(e) => self.engine_error(id, &e),
                }
            }
            Answer::Refused(error) => self.send(&error),
        }
    }

    fn engine_error(&mut self, id: RequestId, e: &EngineError) {
        let code = match e {
            EngineError::Unavailable(_) => ErrorCode::Unavailable,
            EngineError::Internal(_) => ErrorCode::Internal,
        };
        self.error(id, code, e.to_string());
    }

    /// The backlog that counts toward `outbound_cap`: what waits for the transport,
    /// less what is left of an exempt `subscribe` reply (it goes out first).
    fn backlog(&self) -> u64 {
        let pending = self.link.pending_bytes() as u64;
        let written = self.queued_total.saturating_sub(pending);
        let exempt_left = self.exempt_until.saturating_sub(written);
        pending.saturating_sub(exempt_left)
    }

    /// Whether `len` more bytes fit under `outbound_cap`; if not the client is a slow
    /// consumer and gets 4003 ("Slow consumers and limits").
    fn fits(&mut self, len: usize) -> bool {
        let cap = self.hub.config.limits.outbound_cap;
        if self.backlog() + len as u64 > cap {
            self.close(close::SLOW_CONSUMER);
            return false;
        }
        true
    }

    /// Queues one publication on `channel` unless it would take the backlog over
    /// `outbound_cap` (4003).
    fn deliver_publication(&mut self, channel: &str, p: &Publication) -> bool {
        let compress = self.hub.config.websocket.compression;
        if !self.fits(self.link.publication_len(p, compress)) {
            return false;
        }
        self.subs.advance(channel, p);
        let position = self.link.wants_positions().then(|| self.subs.positions());
        let before = self.link.pending_bytes();
        if !self.link.send_publication(p, compress, position) {
            return false;
        }
        self.account(before, p.payload.get().len());
        true
    }

    fn on_events(&mut self, channel: Arc<str>, first: Result<ChannelEvent, RecvError>) {
        let mut delivered = 0usize;
        let mut next = Some((channel, first));
        while let Some((channel, event)) = next.take() {
            match event {
                Err(RecvError::Lagged(_)) => {
                    // The engine's buffer overran this subscriber: it lost events.
                    self.close(close::SLOW_CONSUMER);
                    break;
                }
                Err(RecvError::Closed) => {
                    self.close(close::GOING_AWAY);
                    break;
                }
                Err(RecvError::Interrupted) => {
                    // The engine lost its broker link: publications may be missing.
                    // "Try again later": the client reconnects and recovers.
                    self.close(close::TRY_AGAIN_LATER);
                    break;
                }
                Ok(ChannelEvent::Publication(p)) => {
                    if !self.deliver_publication(&channel, &p) {
                        break;
                    }
                    delivered += 1;
                }
                Ok(ChannelEvent::Join(info) | ChannelEvent::Leave(info)) if self.is_me(&info) => {}
                Ok(ChannelEvent::Join(info)) => {
                    let message = ServerMessage::Join {
                        channel: channel.to_string(),
                        info: wire_info(&info),
                    };
                    if !self.deliver_message(&message) {
                        break;
                    }
                    delivered += 1;
                }
                Ok(ChannelEvent::Leave(info)) => {
                    let message = ServerMessage::Leave {
                        channel: channel.to_string(),
                        info: wire_info(&info),
                    };
                    if !self.deliver_message(&message) {
                        break;
                    }
                    delivered += 1;
                }
            }
            if delivered >= DELIVERY_BATCH {
                break;
            }
            // Queued bytes reach the transport only between batches (the loop's poll of
            // the socket writes them). Without this stop, a task woken late finds many
            // events at once, queues them unwritten, and `deliver` counts those bytes
            // as the client's backlog: a client that reads promptly was closed with
            // 4003 (found by tests/hub_tests/slow_consumer.rs). At half the cap the
            // batch ends; the rest stays in the subscription until the socket was
            // written, so `outbound_cap` measures what the client did not take.
            if self.backlog().saturating_mul(2) >= self.hub.config.limits.outbound_cap {
                break;
            }
            next = self.subs.try_next();
        }
        if delivered > 0 {
            self.hub.metrics.deliveries.inc_by(delivered as u64);
        }
    }

    /// A join or leave: encoded for this subscriber (rare next to publications).
    fn deliver_message(&mut self, message: &ServerMessage) -> bool {
        let text = message.to_json();
        if !self.fits(text.len()) {
            return false;
        }
        let before = self.link.pending_bytes();
        let len = text.len();
        if !self.link.send_text(text, None) {
            return false;
        }
        self.account(before, len);
        true
    }

    fn is_me(&self, info: &ClientInfo) -> bool {
        self.client
            .as_ref()
            .is_some_and(|c| c.info.client == info.client)
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.client.is_none() {
            if now >= self.connect_deadline {
                self.close(close::BAD_REQUEST);
            }
            return;
        }
        if self.exp_deadline.is_some_and(|exp| now >= exp) {
            self.close(close::TOKEN_EXPIRED);
            return;
        }
        if let Some(at) = self.next_ping
            && now >= at
        {
            self.send(&ServerMessage::Ping);
            self.next_ping = Some(now + Duration::from_secs(self.hub.config.limits.ping_interval));
        }
    }

    async fn on_message(&mut self, message: Inbound) {
        let text = match message {
            Inbound::Text(text) => text,
            Inbound::Binary => return self.close(close::UNSUPPORTED_DATA),
            Inbound::Oversized => return self.close(close::MESSAGE_TOO_BIG),
            Inbound::Close => {
                // The publishes before it still happen and are answered.
                self.settle_publishes().await;
                return self.close(close::NORMAL);
            }
            Inbound::Control => return,
        };
        self.hub.metrics.bytes_received.inc_by(text.len() as u64);
        let parsed = parse_client(text.as_str());
        if self.client.is_none() {
            // "connect must be the first message": anything else first is 4005.
            return match parsed {
                Ok(ClientMessage::Request {
                    id,
                    request: Request::Connect { token, name },
                }) => self.connect(id, token, name),
                _ => self.close(close::BAD_REQUEST),
            };
        }
        match parsed {
            Ok(ClientMessage::Pong) => {}
            Ok(ClientMessage::Request { id, request }) => {
                if !matches!(request, Request::Publish { .. }) {
                    self.settle_publishes().await;
                }
                self.request(id, request).await;
            }
            Err(malformed) => {
                self.settle_publishes().await;
                self.send(&malformed.to_error());
                self.malformed += 1;
                if self.malformed > MAX_MALFORMED {
                    self.close(close::BAD_REQUEST);
                }
            }
        }
    }

    fn connect(&mut self, id: RequestId, token: Option<String>, name: Option<String>) {
        let token = token.or_else(|| self.query_token.take());
        match self.authenticate(token, name) {
            Ok(result) => self.reply(id, ReplyResult::Connect(result)),
            Err(code) => self.close(code),
        }
    }

    /// A fallback session's start: its opening request's `connect`, the `session`
    /// message, and (SSE) the subscriptions of `Last-Event-ID` made again.
    async fn open(&mut self, opening: Opening) {
        let result = match self.authenticate(opening.token, opening.name) {
            Ok(result) => result,
            Err(code) => return self.close(code),
        };
        let message = SessionMessage {
            ty: "session",
            session: &opening.session,
            transport: opening.transport,
            connect: &result,
        };
        let text = to_json(&message);
        self.send_text(text);
        for (channel, since) in opening.resume {
            if self.closing.is_some() {
                return;
            }
            if let Err(e) = validate_channel(&channel) {
                let e = e.to_string();
                self.subscribe_refused(None, &channel, ErrorCode::BadRequest, e);
                continue;
            }
            if !self.touch(&channel) {
                self.subscribe_refused(
                    None,
                    &channel,
                    ErrorCode::LimitExceeded,
                    "this connection named too many channels",
                );
                continue;
            }
            self.subscribe(None, channel, Some(since)).await;
        }
    }

    /// Checks the token (or anonymous access) and makes the client: the `connect`
    /// reply's fields, or the close code that refuses it.
    fn authenticate(
        &mut self,
        token: Option<String>,
        name: Option<String>,
    ) -> Result<ConnectResult, u16> {
        let auth = &self.hub.config.auth;
        let now_ms = unix_now_ms();
        let (claims, exp) = match (token, &self.hub.verifier) {
            (Some(token), Some(verifier)) => match verifier.verify(&token, now_ms / 1000) {
                Ok(claims) => {
                    let exp = Some(claims.exp);
                    (claims, exp)
                }
                Err(e) => return Err(e.close_code()),
            },
            // No key to check a token with: only anonymous access can let it in (the
            // token is not looked at).
            (_, None) | (None, Some(_)) if auth.allow_anonymous => (
                Claims {
                    sub: String::new(),
                    exp: 0,
                    channels: Vec::new(),
                },
                None,
            ),
            _ => return Err(close::UNAUTHORIZED),
        };
        let client = self.hub.new_client_id();
        let ping_interval = self.hub.config.limits.ping_interval;
        let result = ConnectResult {
            client: client.to_string(),
            user: claims.sub.clone(),
            ping_interval,
            expires_at: exp,
        };
        let now = Instant::now();
        self.next_ping = Some(now + Duration::from_secs(ping_interval));
        self.exp_deadline = exp.map(|exp| deadline_of(exp, now_ms, now));
        self.client = Some(Client {
            info: ClientInfo {
                client,
                user: claims.sub.as_str().into(),
                name: name.map(|name| protocol::client_name(&name).into()),
            },
            claims,
            exp,
        });
        Ok(result)
    }

    async fn request(&mut self, id: RequestId, request: Request) {
        if let Some(channel) = request.channel() {
            if let Err(e) = validate_channel(channel) {
                return self.refuse(id, ErrorCode::BadRequest, e.to_string());
            }
            if !self.touch(channel) {
                return self.refuse(
                    id,
                    ErrorCode::LimitExceeded,
                    "this connection named too many channels",
                );
            }
        }
        match request {
            Request::Connect { .. } => self.error(id, ErrorCode::BadRequest, "already connected"),
            Request::Subscribe { channel, since } => {
                self.subscribe(Some(id), channel, since).await;
            }
            Request::Unsubscribe { channel } => {
                self.unsubscribe(&channel).await;
                self.reply(id, ReplyResult::Empty(Empty {}));
            }
            Request::Publish { channel, payload } => self.publish(id, channel, payload).await,
            Request::Presence { channel } => self.presence(id, &channel).await,
            Request::History {
                channel,
                limit,
                since,
            } => self.history(id, &channel, limit, since).await,
            Request::Refresh { token } => self.refresh(id, &token),
        }
    }

    /// Remembers that the connection named `channel`; false over the limit.
    fn touch(&mut self, channel: &str) -> bool {
        if self.touched.contains(channel) {
            return true;
        }
        let limit =
            self.hub.config.limits.max_channels_per_client as usize * TOUCHED_PER_CHANNEL_LIMIT;
        if self.touched.len() >= limit {
            return false;
        }
        self.touched.insert(channel.into());
        true
    }

    fn may_subscribe(&self, channel: &str) -> bool {
        let Some(client) = &self.client else {
            return false;
        };
        match self.hub.config.channel_namespace(channel).subscribe {
            SubscribePolicy::Any => true,
            SubscribePolicy::Token => token_allows(&client.claims, channel),
        }
    }

    /// A refused `subscribe`: an `error` for a request, a `subscribed` with `error` for
    /// a resumed one (`id` none).
    fn subscribe_refused(
        &mut self,
        id: Option<RequestId>,
        channel: &str,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        match id {
            Some(id) => self.error(id, code, message),
            None => {
                let text = to_json(&SubscribedError {
                    ty: "subscribed",
                    channel,
                    error: protocol::ErrorBody {
                        code,
                        message: message.into(),
                    },
                });
                self.send_text(text);
            }
        }
    }

    /// `subscribe`, answered with a `reply` to request `id`, or with a `subscribed` when
    /// the session makes it again itself (`id` none: an SSE resume).
    async fn subscribe(&mut self, id: Option<RequestId>, channel: String, since: Option<Since>) {
        if self.subs.contains(&channel) {
            return self.subscribe_refused(
                id,
                &channel,
                ErrorCode::BadRequest,
                "already subscribed to this channel",
            );
        }
        if !self.may_subscribe(&channel) {
            return self.subscribe_refused(
                id,
                &channel,
                ErrorCode::PermissionDenied,
                "not allowed to subscribe",
            );
        }
        let limits = &self.hub.config.limits;
        if self.subs.len() >= limits.max_channels_per_client as usize {
            return self.subscribe_refused(
                id,
                &channel,
                ErrorCode::LimitExceeded,
                "too many channels on this connection",
            );
        }
        let channel: Arc<str> = channel.into();
        if !self.hub.add_subscriber(&channel) {
            return self.subscribe_refused(
                id,
                &channel,
                ErrorCode::LimitExceeded,
                "the channel has too many subscribers",
            );
        }
        let recovery_max = limits.recovery_max as usize;
        let since_given = since.is_some();
        let since = since.map(|s| StreamPosition {
            offset: s.offset,
            epoch: s.epoch.into(),
        });
        let started = Instant::now();
        let result = self
            .hub
            .engine
            .subscribe(&channel, since, recovery_max)
            .await;
        self.observe(started);
        let subscription = match result {
            Ok(s) => s,
            Err(e) => {
                self.hub.remove_subscriber(&channel);
                let code = match e {
                    EngineError::Unavailable(_) => ErrorCode::Unavailable,
                    EngineError::Internal(_) => ErrorCode::Internal,
                };
                return self.subscribe_refused(id, &channel, code, e.to_string());
            }
        };
        let recovery = &subscription.recovery;
        let result = SubscribeReply {
            epoch: &recovery.position.epoch,
            offset: recovery.position.offset,
            recovered: since_given.then_some(recovery.recovered),
            publications: (since_given && recovery.recovered).then(|| {
                recovery
                    .publications
                    .iter()
                    .map(|p| WirePublication::item(p))
                    .collect()
            }),
        };
        let text = match id {
            Some(id) => to_json(&Reply {
                ty: "reply",
                id,
                result,
            }),
            None => to_json(&Subscribed {
                ty: "subscribed",
                channel: &channel,
                result,
            }),
        };
        let position = (
            recovery.position.offset,
            Arc::clone(&recovery.position.epoch),
        );
        // Sent: the recovered publications need not stay alive with the subscription.
        let mut subscription = subscription;
        subscription.recovery.publications = Vec::new();
        let presence = self.hub.config.channel_namespace(&channel).presence;
        self.subs
            .add(Arc::clone(&channel), presence, position, subscription);
        // "Details": the reply is exempt from outbound_cap; only the backlog behind it
        // counts. It carries the new position (SSE id).
        self.send_positioned(text, true);
        self.exempt_until = self.queued_total;
        self.hub.metrics.subscriptions.inc();
        if presence && let Some(client) = &self.client {
            let info = client.info.clone();
            let started = Instant::now();
            let _ = self.hub.engine.presence_add(&channel, info).await;
            self.observe(started);
        }
    }

    async fn unsubscribe(&mut self, channel: &str) {
        let Some(slot) = self.subs.remove(channel) else {
            return;
        };
        self.forget(slot).await;
    }

    async fn forget(&mut self, slot: Slot) {
        self.hub.remove_subscriber(&slot.channel);
        self.hub.metrics.subscriptions.dec();
        if slot.presence
            && let Some(client) = &self.client
        {
            let client_id = Arc::clone(&client.info.client);
            let _ = self
                .hub
                .engine
                .presence_remove(&slot.channel, &client_id)
                .await;
        }
        drop(slot);
    }

    async fn leave_all(&mut self) {
        for slot in self.subs.drain() {
            self.forget(slot).await;
        }
    }

    /// Checks a publish and hands it to the engine without waiting for a broker: its
    /// answer comes out of [`Session::publishing`] (or at once, from an engine that has
    /// it at once and no publish before it).
    async fn publish(&mut self, id: RequestId, channel: String, payload: protocol::Payload) {
        let Some(client) = &self.client else {
            return;
        };
        let namespace = self.hub.config.channel_namespace(&channel);
        let allowed = match namespace.publish {
            PublishPolicy::Any => true,
            PublishPolicy::Token => token_allows(&client.claims, &channel),
            PublishPolicy::Api => false,
        };
        if !allowed {
            return self.refuse(id, ErrorCode::PermissionDenied, "not allowed to publish");
        }
        match self.publish.attempt(Instant::now()) {
            PublishVerdict::Allowed => {}
            PublishVerdict::Refused => {
                return self.refuse(id, ErrorCode::LimitExceeded, "publish rate exceeded");
            }
            PublishVerdict::Close => return self.close(close::RATE_LIMITED),
        }
        let opts = HistoryOptions {
            history_size: usize::try_from(namespace.history_size).unwrap_or(usize::MAX),
            history_ttl: Duration::from_secs(namespace.history_ttl),
        };
        let info = Some(client.info.clone());
        let hub = Arc::clone(&self.hub);
        let payload: Payload = Arc::from(payload.into_raw());
        let mut call: PendingAnswer = Box::pin(async move {
            let started = Instant::now();
            let result = hub.engine.publish(&channel, payload, info, opts).await;
            Answer::Published {
                id,
                started,
                result,
            }
        });
        if self.publishing.is_empty() {
            // Nothing before it: it starts now, and an engine that answers at once (the
            // memory engine) is answered here, in the same step as the request.
            let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
            if let Poll::Ready(answer) = first {
                return self.answer(answer);
            }
        }
        self.publishing.push(call);
    }

    async fn presence(&mut self, id: RequestId, channel: &str) {
        if !self.may_subscribe(channel) {
            return self.error(id, ErrorCode::PermissionDenied, "not allowed to subscribe");
        }
        if !self.hub.config.channel_namespace(channel).presence {
            return self.error(
                id,
                ErrorCode::Disabled,
                "presence is off for this namespace",
            );
        }
        let started = Instant::now();
        let result = self.hub.engine.presence(channel).await;
        self.observe(started);
        match result {
            Ok(entries) => self.reply(
                id,
                ReplyResult::Presence(PresenceResult {
                    clients: entries.iter().map(wire_info).collect(),
                }),
            ),
            Err(e) => self.engine_error(id, &e),
        }
    }

    async fn history(
        &mut self,
        id: RequestId,
        channel: &str,
        limit: Option<u64>,
        since: Option<Since>,
    ) {
        if !self.may_subscribe(channel) {
            return self.error(id, ErrorCode::PermissionDenied, "not allowed to subscribe");
        }
        let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        let since = since.map(|s| StreamPosition {
            offset: s.offset,
            epoch: s.epoch.into(),
        });
        let started = Instant::now();
        let result = self.hub.engine.history(channel, limit, since).await;
        self.observe(started);
        match result {
            Ok(history) => {
                let reply = Reply {
                    ty: "reply",
                    id,
                    result: HistoryReply {
                        publications: history
                            .publications
                            .iter()
                            .map(|p| WirePublication::item(p))
                            .collect(),
                        epoch: &history.position.epoch,
                        offset: history.position.offset,
                    },
                };
                let text = to_json(&reply);
                self.send_text(text);
            }
            Err(e) => self.engine_error(id, &e),
        }
    }

    fn refresh(&mut self, id: RequestId, token: &str) {
        let Some(verifier) = &self.hub.verifier else {
            return self.error(id, ErrorCode::Unauthorized, "no token can be checked here");
        };
        let now_ms = unix_now_ms();
        let claims = match verifier.verify(token, now_ms / 1000) {
            Ok(claims) => claims,
            Err(e) => return self.error(id, ErrorCode::Unauthorized, e.to_string()),
        };
        let Some(client) = &mut self.client else {
            return;
        };
        if *client.info.user != *claims.sub {
            return self.error(
                id,
                ErrorCode::PermissionDenied,
                "the token is another user's",
            );
        }
        let exp = claims.exp;
        client.exp = Some(exp);
        client.claims = claims;
        self.exp_deadline = Some(deadline_of(exp, now_ms, Instant::now()));
        self.reply(
            id,
            ReplyResult::Refresh(RefreshResult {
                expires_at: Some(exp),
            }),
        );
    }

    fn observe(&self, started: Instant) {
        self.hub
            .metrics
            .broker_round_trip
            .observe(started.elapsed().as_secs_f64());
    }
}

fn wire_info(info: &ClientInfo) -> protocol::ClientInfo {
    protocol::ClientInfo {
        client: info.client.to_string(),
        user: info.user.to_string(),
        name: info.name.as_deref().map(str::to_owned),
    }
}

/// The tokio instant at which unix time `exp` (seconds) comes.
fn deadline_of(exp: u64, now_ms: u64, now: Instant) -> Instant {
    let left = exp.saturating_mul(1000).saturating_sub(now_ms);
    now + Duration::from_millis(left)
}
