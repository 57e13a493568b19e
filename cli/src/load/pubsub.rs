//! `wsengine load --hub`: pub/sub load against a wsengine hub (docs/HUB-PROTOCOL.md).
//!
//! Subscribers connect (offering `wsengine.hub.v1`), send `connect` and `subscribe`, and
//! answer the hub's `ping` with `pong`; once every one is subscribed, publishers publish
//! JSON payloads `{"t": <send time>, "s": <seq>, "pad": "xx…"}` of `--size` bytes. Every
//! connection lives in this process and one mio poll on one thread drives them all (the
//! same design as the echo generator in `mod.rs`: core [`Connection`]s on mio sockets,
//! no runtime, no task per connection), so `t` is nanoseconds since one [`Instant`] of
//! this engine and the latency is the receive time on the same monotonic clock minus
//! `t`.
//!
//! Each subscriber checks the publications it receives by offset: the subscribe reply
//! gives the channel's latest offset, so the next must be one more; a jump counts the
//! skipped offsets as lost (until they arrive late: out of order), an offset at or below
//! the last one that is not such a late one is a duplicate. Publish replies give the
//! last offset published, so offsets never received by the end of the drain are lost
//! too.
//!
//! `--transport sse|long-polling`: subscribers use the hub's fallback transports instead
//! (`fallback.rs`: opened and subscribed one after the other before publishing, then read
//! in the same poll, tokens from `HTTP_TOKEN_BASE`); the checks and the latency are the
//! same. Publishers always use WebSocket.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Deserialize;
use wsengine::{ClientRequest, CloseCode, Config, Connection, Event};

use super::broker::{BrokerStats, RedisInfo, RedisProbe};
use super::fallback::{self, Blocking, HttpIn, Transport};
use super::report::{self, Errors, Kind, ProcSample, ServerStats, bytes, count, nanos, num};
use super::{
    CLOSE_TIMEOUT, CONNECT_BATCH, DRAIN_TIMEOUT, LoadArgs, MAX_OPENING, OPEN_TIMEOUT, Progress,
    ProgressMode, READ_BUDGET, sample_server,
};
use crate::{Level, max_level};

/// The hub protocol's WebSocket subprotocol.
pub(crate) const SUBPROTOCOL: &str = "wsengine.hub.v1";
/// Publishes per second per publisher when `--rate` is not given: under the hub's
/// default `publish_rate` limit (50 per connection), so a default run is not refused.
const DEFAULT_RATE: u64 = 10;
/// Per-subscriber fault lines kept for the report (the totals count them all).
const MAX_FAULTY: usize = 100;
/// Request ids: `connect` and `subscribe` first, publishes after.
const CONNECT_ID: u64 = 1;
const SUBSCRIBE_ID: u64 = 2;
const FIRST_PUBLISH_ID: u64 = 3;
/// Socket.IO's WebSocket transport, Engine.IO protocol 4.
const SOCKETIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";
/// Tokens of fallback subscribers (`--transport sse|long-polling`) start here; below
/// are the WebSocket connections' slots.
const HTTP_TOKEN_BASE: usize = 1 << 30;

/// The protocol a pub/sub run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Dialect {
    /// The wsengine hub (docs/HUB-PROTOCOL.md).
    Hub,
    /// Socket.IO 4 over its WebSocket transport, without the JavaScript client.
    #[value(name = "socketio")]
    SocketIo,
    /// `wsengine serve --mode broadcast`: every message relayed to every client.
    Broadcast,
}

impl Dialect {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Hub => "hub",
            Self::SocketIo => "socketio",
            Self::Broadcast => "broadcast",
        }
    }

    /// The URL to open: for Socket.IO, `ws://HOST:PORT` or `ws://HOST:PORT/` gets the
    /// transport's path.
    pub(crate) fn url(self, url: &str) -> String {
        let bare = url
            .strip_prefix("ws://")
            .is_some_and(|rest| !rest.trim_end_matches('/').contains('/'));
        if self == Self::SocketIo && bare {
            format!("{}{SOCKETIO_PATH}", url.trim_end_matches('/'))
        } else {
            url.to_owned()
        }
    }
}

/// What a pub/sub run does, checked and resolved from [`LoadArgs`].
#[derive(Debug, Clone)]
pub(crate) struct HubSettings {
    /// The nodes: connection `k` of each role goes to `urls[k % urls.len()]`.
    pub(crate) urls: Vec<String>,
    pub(crate) dialect: Dialect,
    /// The subscribers' transport (publishers always use WebSocket).
    pub(crate) transport: Transport,
    pub(crate) subscribers: usize,
    pub(crate) publishers: usize,
    pub(crate) channel: String,
    /// Publishes per second per publisher; 0: as fast as `in_flight` allows.
    pub(crate) rate: u64,
    /// Most publishes awaiting their reply, per publisher, with no rate (with a rate:
    /// at least this, and up to one second's worth; see [`HubSettings::cap`]).
    pub(crate) in_flight: usize,
    /// `--in-flight` counts a publish until every subscriber has received it, not until
    /// its reply.
    pub(crate) until_delivered: bool,
    /// Bytes of each publication's payload (its JSON text).
    pub(crate) size: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// The nodes' processes: their CPU and memory are summed.
    pub(crate) server_pids: Vec<u32>,
    /// `--broker-redis`: the Redis server the nodes share.
    pub(crate) broker_redis: Option<String>,
}

impl HubSettings {
    /// Most publishes a publisher may have awaiting their reply. With a rate, the rate
    /// is what is asked for: up to a second's worth may wait (a hub slowed by fan-out
    /// answers late, and a cap of `in_flight` would then set the pace instead), and
    /// still bounded, so a stalled hub does not grow the queue without end.
    pub(crate) fn cap(&self) -> usize {
        if self.rate == 0 {
            self.in_flight
        } else {
            self.in_flight
                .max(usize::try_from(self.rate).unwrap_or(usize::MAX).min(10_000))
        }
    }

    pub(crate) fn from_args(args: &LoadArgs) -> Result<Self, String> {
        if args.subscribers == 0 {
            return Err("--hub needs at least one subscriber".into());
        }
        if u32::try_from(args.subscribers + args.publishers).is_err() {
            return Err("too many connections".into());
        }
        if let Some(url) = args.urls.iter().find(|url| !url.starts_with("ws://")) {
            return Err(format!("--hub supports ws:// URLs only: {url}"));
        }
        // The protocol's channel names (docs/HUB-PROTOCOL.md): they also need no JSON
        // escaping in the requests built here.
        let valid = |b: u8| b.is_ascii_alphanumeric() || b"_.:-".contains(&b);
        if args.channel.is_empty() || args.channel.len() > 255 || !args.channel.bytes().all(valid) {
            return Err(format!(
                "--channel `{}`: 1-255 bytes of [A-Za-z0-9_.:-]",
                args.channel
            ));
        }
        if args.in_flight == 0 || args.in_flight > 10_000 {
            return Err("--in-flight must be between 1 and 10000".into());
        }
        if args.duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        if args.size > 16 << 20 {
            return Err("--size is at most 16 MiB with --hub".into());
        }
        if args.transport != Transport::Websocket && args.dialect != Dialect::Hub {
            return Err(format!(
                "--transport {} needs --dialect hub (the wsengine hub's fallback transports); \
                 {} speaks WebSocket only",
                args.transport.name(),
                args.dialect.name()
            ));
        }
        Ok(Self {
            urls: args.urls.clone(),
            dialect: args.dialect,
            transport: args.transport,
            subscribers: args.subscribers,
            publishers: args.publishers,
            channel: args.channel.clone(),
            rate: args.rate.unwrap_or(DEFAULT_RATE),
            in_flight: args.in_flight,
            until_delivered: args.until_delivered,
            size: args.size,
            warmup: args.warmup,
            duration: args.duration,
            server_pids: args.server_pid.clone(),
            broker_redis: args.broker_redis.clone(),
        })
    }
}

/// Runs `wsengine load --hub`: prints the report, writes `--json` and `--plot`, and
/// fails on any error counted or when nothing was delivered.
pub(crate) fn run(args: &LoadArgs) -> io::Result<()> {
    let settings = HubSettings::from_args(args).map_err(io::Error::other)?;
    let progress = if io::stderr().is_terminal() {
        ProgressMode::Bar
    } else {
        ProgressMode::Lines
    };
    let results = execute(&settings, progress)?;
    io::stdout().write_all(results.text().as_bytes())?;
    io::stdout().flush()?;
    if let Some(path) = &args.json {
        std::fs::write(path, results.json())
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
        log!(Level::Info, "wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        if results.latency.is_empty() {
            log!(
                Level::Warn,
                "no latency measured: {} not written",
                path.display()
            );
        } else {
            super::plot::latency_svg(path, &results.latency, &results.title())
                .map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))?;
            log!(Level::Info, "wrote {}", path.display());
        }
    }
    results.verdict()
}

/// Which side of the channel a connection is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Subscriber,
    Publisher,
}

/// Where a connection is in its setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The opening handshake is under way.
    Opening,
    /// `connect` sent, its reply awaited.
    Connecting,
    /// `subscribe` sent, its reply awaited (subscribers).
    Subscribing,
    /// Subscribed, or connected (publishers).
    Ready,
}

/// One subscriber's view of the channel's offsets.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    /// The channel's epoch from the subscribe reply.
    epoch: String,
    /// The offset expected next.
    next: u64,
    /// Offsets skipped over and not (yet) received: half-open ranges, oldest first.
    gaps: Vec<(u64, u64)>,
    /// Distinct publications received.
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) out_of_order: u64,
}

impl Offsets {
    /// A subscription whose reply said the channel's latest offset is `offset`.
    #[cfg(test)]
    pub(crate) fn starting_after(offset: u64) -> Self {
        Self {
            epoch: "test".to_owned(),
            next: offset + 1,
            ..Self::default()
        }
    }

    /// Takes in publication `offset`.
    pub(crate) fn note(&mut self, offset: u64) {
        if offset >= self.next {
            if offset > self.next {
                self.gaps.push((self.next, offset));
            }
            self.next = offset + 1;
            self.received += 1;
            return;
        }
        // Below the next expected: a late one filling a gap, or a repeat.
        match self
            .gaps
            .iter()
            .position(|&(from, to)| from <= offset && offset < to)
        {
            Some(at) => {
                let (from, to) = self.gaps[at];
                self.gaps.remove(at);
                // Why insert in place: later lookups stay in offset order.
                if offset + 1 < to {
                    self.gaps.insert(at, (offset + 1, to));
                }
                if from < offset {
                    self.gaps.insert(at, (from, offset));
                }
                self.out_of_order += 1;
                self.received += 1;
            }
            None => self.duplicates += 1,
        }
    }

    /// Offsets up to `last` (the last one published) never received.
    pub(crate) fn lost(&self, last: u64) -> u64 {
        self.lost_below(last + 1)
    }

    /// Offsets below `end` never received.
    pub(crate) fn lost_below(&self, end: u64) -> u64 {
        let gaps: u64 = self.gaps.iter().map(|&(from, to)| to - from).sum();
        gaps + end.saturating_sub(self.next)
    }

    /// A sequence whose first number is `first` (broadcast: a publisher's, from 0).
    pub(crate) fn starting_at(first: u64) -> Self {
        Self {
            epoch: "sequence".to_owned(),
            next: first,
            ..Self::default()
        }
    }
}

struct Conn {
    stream: TcpStream,
    core: Connection,
    role: Role,
    /// Index among its role's connections.
    index: usize,
    stage: Stage,
    /// We sent our Close.
    closing: bool,
    /// An event said the peer's stream ended: read to `Ok(0)` (see `mod.rs`).
    hup: bool,
    in_again: bool,
    offsets: Offsets,
    /// Broadcast subscribers: one sequence per publisher (offsets are the hub's).
    by_publisher: Vec<Offsets>,
    /// Publisher: the next request id, publishes sent and replied to.
    next_id: u64,
    sent: u64,
    acked: u64,
    /// Publisher with a rate: when the next publish is due.
    next_at: Instant,
}

/// A subscriber over SSE or long polling (`--transport`), in the engine's poll with
/// token `HTTP_TOKEN_BASE + index`.
struct HttpSub {
    stream: TcpStream,
    index: usize,
    /// The node holding its session.
    addr: SocketAddr,
    /// `Host` of the requests (long polling).
    host: String,
    session: String,
    input: HttpIn,
    /// Bytes of the next poll not yet written.
    out: Vec<u8>,
    /// Long polling: the `seq` of the poll awaiting its answer.
    seq: u64,
    offsets: Offsets,
}

/// The fields of a hub message this generator reads; the rest (a publication's `pad`
/// and `info`, a reply's other fields) is skipped without being copied.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default, borrow)]
    epoch: Option<Cow<'a, str>>,
    #[serde(default)]
    payload: Option<Stamp>,
    #[serde(default, borrow)]
    result: Option<ReplyResult<'a>>,
    #[serde(default, borrow)]
    error: Option<ErrorBody<'a>>,
    /// A fallback session's id (its first message, `session`).
    #[serde(default, borrow)]
    session: Option<Cow<'a, str>>,
}

/// What a publisher put in a payload (its `pad` is skipped).
#[derive(Deserialize)]
struct Stamp {
    /// Send time: nanoseconds since the engine's clock started.
    t: u64,
    /// The publisher's index and its sequence number (read in broadcast mode).
    #[serde(default)]
    p: usize,
    #[serde(default)]
    s: u64,
}

/// A Socket.IO `publication` event's argument (`channel` is not read).
#[derive(Deserialize)]
struct SioPublication {
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    payload: Option<Stamp>,
}

#[derive(Deserialize)]
struct ReplyResult<'a> {
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default, borrow)]
    epoch: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Cow<'a, str>,
}

/// The first `n` characters of `text`, for error lines.
fn clip(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// One publisher's publications not yet delivered to every subscriber.
#[derive(Debug, Default)]
struct Fanout {
    /// The sequence number of `left[0]`.
    base: u64,
    /// Subscribers yet to receive each publication, oldest first.
    left: VecDeque<u32>,
}

/// The generator: connections, pacing, counters.
struct Engine {
    poll: Poll,
    events: Events,
    conns: Vec<Option<Conn>>,
    live: usize,
    /// Connections whose opening handshake completed.
    opened: usize,
    /// Connections in [`Stage::Ready`].
    ready: usize,
    scratch: Vec<u8>,
    again: Vec<usize>,
    batch: Vec<(usize, bool)>,
    config: Config,
    dialect: Dialect,
    channel: String,
    size: usize,
    publishers: usize,
    /// Broadcast: publishes sent by each publisher (their sequences are `0..sent`).
    sent_by: Vec<u64>,
    /// Most publishes awaiting their reply per publisher ([`HubSettings::cap`]).
    in_flight: u64,
    /// Time between two publishes of a publisher (`None`: no rate, only `in_flight`).
    interval: Option<Duration>,
    /// Send times are nanoseconds since this instant.
    clock: Instant,
    /// Publishing stops at this instant (`None`: not started).
    send_until: Option<Instant>,
    /// Publishes sent and deliveries received in `[window.0, window.1)` are measured.
    window: Option<(Instant, Instant)>,
    hist: Histogram<u64>,
    publishes_measured: u64,
    deliveries_measured: u64,
    /// Distinct publications received by all subscribers, in all phases.
    delivered: u64,
    /// Publish replies received, and the highest offset among them.
    acked: u64,
    last_offset: Option<u64>,
    /// The epoch subscribers were given (they must all agree).
    epoch: Option<String>,
    /// Publishes awaiting their reply, all publishers together.
    pending: u64,
    errors: Errors,
    /// A setup step failed (not a hub, refused subscription): stop waiting.
    setup_failed: bool,
    /// Connections the transport is done with (a subscriber's offsets still count).
    gone: Vec<Conn>,
    /// The subscribers' transport; with SSE or long polling they are in `http` (their
    /// slots in `conns` stay `None`).
    transport: Transport,
    http: Vec<Option<HttpSub>>,
    /// Fallback subscribers gone: their index and offsets, for the report.
    http_gone: Vec<(usize, Offsets)>,
    /// `--until-delivered`: a publish is in flight until every subscriber has it.
    until_delivered: bool,
    subscribers: usize,
    /// Per publisher (`--until-delivered`): deliveries still awaited per publication.
    fanout: Vec<Fanout>,
    /// Publishers whose oldest publications were delivered everywhere this turn.
    woken: Vec<usize>,
    /// Reused for every outgoing publish, and its payload.
    out: String,
    payload: String,
    pad: String,
}

impl Engine {
    fn new(settings: &HubSettings) -> io::Result<Self> {
        let mut config = Config::default();
        // A publication is the payload plus its envelope (type, channel, offset, epoch,
        // info): room for both.
        let size = u64::try_from(settings.size).unwrap_or(u64::MAX) + 4096;
        config.max_message_size = config.max_message_size.max(size);
        config.max_frame_size = config.max_frame_size.max(size);
        config.max_send_buffer = config
            .max_send_buffer
            .max((settings.size + 256) * settings.cap() + (64 << 10));
        config.handshake_timeout = None; // OPEN_TIMEOUT covers all of them
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| io::Error::other(format!("histogram: {e}")))?;
        let n = settings.subscribers + settings.publishers;
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Vec::with_capacity(n),
            live: 0,
            opened: 0,
            ready: 0,
            scratch: vec![0; (64 << 10) + wsengine::frame::MAX_HEADER_LEN],
            again: Vec::new(),
            batch: Vec::with_capacity(1024),
            config,
            dialect: settings.dialect,
            channel: settings.channel.clone(),
            size: settings.size,
            publishers: settings.publishers,
            sent_by: vec![0; settings.publishers],
            in_flight: u64::try_from(settings.cap()).unwrap_or(1),
            interval: (settings.rate > 0)
                .then(|| Duration::from_secs_f64(1.0 / settings.rate as f64)),
            clock: Instant::now(),
            send_until: None,
            window: None,
            hist,
            publishes_measured: 0,
            deliveries_measured: 0,
            delivered: 0,
            acked: 0,
            last_offset: None,
            epoch: None,
            pending: 0,
            errors: Errors::default(),
            setup_failed: false,
            gone: Vec::new(),
            transport: settings.transport,
            http: Vec::new(),
            http_gone: Vec::new(),
            out: String::with_capacity(settings.size + 256),
            payload: String::with_capacity(settings.size + 64),
            until_delivered: settings.until_delivered,
            subscribers: settings.subscribers,
            fanout: (0..settings.publishers)
                .map(|_| Fanout::default())
                .collect(),
            woken: Vec::new(),
            pad: "x".repeat(settings.size),
        })
    }

    /// Opens every connection (subscribers first, then publishers) and waits until
    /// each has connected and, for subscribers, subscribed.
    fn open_all(
        &mut self,
        settings: &HubSettings,
        targets: &[Target],
        progress: &mut Progress,
    ) -> io::Result<()> {
        progress.phase("open");
        let n = settings.subscribers + settings.publishers;
        let first_ws = if self.transport == Transport::Websocket {
            0
        } else {
            self.open_http(settings, targets, progress)?;
            settings.subscribers
        };
        for i in first_ws..n {
            let (role, index) = if i < settings.subscribers {
                (Role::Subscriber, i)
            } else {
                (Role::Publisher, i - settings.subscribers)
            };
            // Each role spread over the nodes in turn: publishers on every node too.
            let Some(Target { addr, request, .. }) = targets.get(index % targets.len().max(1))
            else {
                return Err(io::Error::other("no URL to connect to"));
            };
            let addr = *addr;
            let conn = self.connect(i, role, index, addr, request).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("connection {} of {n} to {addr}: {e}", i + 1),
                )
            })?;
            self.conns.push(Some(conn));
            self.live += 1;
            if (i + 1) % CONNECT_BATCH == 0 {
                self.turn(Some(Duration::ZERO))?;
            }
            // Why: the hub's listen backlog, as for the echo generator.
            let deadline = Instant::now() + OPEN_TIMEOUT;
            while !self.setup_failed
                && self.live == i + 1
                && self.live - self.opened >= MAX_OPENING
                && Instant::now() < deadline
            {
                self.turn(Some(Duration::from_millis(10)))?;
            }
            if self.setup_failed {
                break;
            }
            let ready = self.ready;
            progress.tick(Instant::now(), 0, || format!("{ready}/{n} ready"));
        }
        let deadline = Instant::now() + OPEN_TIMEOUT;
        self.run_until(deadline, progress, |e| {
            e.ready == n || e.live < e.conns.len() || e.setup_failed
        })?;
        if self.ready < n || self.errors.total() > 0 {
            let subscribed = self
                .conns
                .iter()
                .flatten()
                .filter(|c| c.role == Role::Subscriber && c.stage == Stage::Ready)
                .count();
            let why = self.errors.samples.first().cloned().unwrap_or_else(|| {
                format!(
                    "timed out after {}s waiting for replies",
                    OPEN_TIMEOUT.as_secs()
                )
            });
            progress.finish();
            return Err(io::Error::other(format!(
                "subscribing failed: {subscribed} of {} subscribers subscribed: {why}",
                settings.subscribers
            )));
        }
        Ok(())
    }

    /// A new connection in slot `i`: a blocking TCP connect, registered with the poll,
    /// its core, and its opening handshake written.
    fn connect(
        &mut self,
        i: usize,
        role: Role,
        index: usize,
        addr: SocketAddr,
        request: &ClientRequest,
    ) -> io::Result<Conn> {
        let stream = std::net::TcpStream::connect_timeout(&addr, OPEN_TIMEOUT).and_then(|s| {
            s.set_nonblocking(true)?;
            s.set_nodelay(true)?;
            Ok(s)
        })?;
        let mut stream = TcpStream::from_std(stream);
        self.poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let core = Connection::client(request.clone(), self.config.clone(), Instant::now().into())
            .map_err(|e| io::Error::other(format!("handshake request: {e}")))?;
        let now = Instant::now();
        let mut conn = Conn {
            stream,
            core,
            role,
            index,
            stage: Stage::Opening,
            closing: false,
            hup: false,
            in_again: false,
            offsets: Offsets::default(),
            by_publisher: Vec::new(),
            next_id: FIRST_PUBLISH_ID,
            sent: 0,
            acked: 0,
            next_at: now,
        };
        flush(&mut conn)?;
        Ok(conn)
    }

    /// Starts publishing: publishes sent and deliveries received in
    /// `[measure_start, send_until)` are measured.
    fn start(&mut self, now: Instant, measure_start: Instant, send_until: Instant) {
        self.send_until = Some(send_until);
        self.window = Some((measure_start, send_until));
        for c in self.conns.iter_mut().flatten() {
            c.next_at = now;
        }
        // Every publisher's first publishes; replies (no rate) or `pump` (a rate) send
        // the rest.
        for i in 0..self.conns.len() {
            self.fill(i, now);
            self.settle(i, now);
        }
    }

    /// Whether every publish got its reply and every subscriber every publication.
    fn drained(&self, subscribers: usize) -> bool {
        self.pending == 0 && self.delivered >= self.acked.saturating_mul(subscribers as u64)
    }

    fn close_all(&mut self) {
        self.send_until = None;
        // Fallback subscribers: each session is ended with `{"type":"close"}` by
        // `POST /api/send` (on one keep-alive connection per node, one after the
        // other), else the hub would keep it, subscribed, for `session_timeout`; then
        // its connection is closed.
        let mut controls: Vec<(SocketAddr, Option<Blocking>)> = Vec::new();
        for k in 0..self.http.len() {
            if let Some(Some(sub)) = self.http.get(k) {
                let at = match controls.iter().position(|(a, _)| *a == sub.addr) {
                    Some(at) => at,
                    None => {
                        controls.push((sub.addr, None));
                        controls.len() - 1
                    }
                };
                let close = send_control(
                    sub.addr,
                    &sub.host,
                    &mut controls[at].1,
                    &sub.session,
                    r#"{"type":"close"}"#,
                );
                if let Err(e) = close {
                    let index = sub.index;
                    self.errors.count(
                        Kind::UncleanClose,
                        format!("subscriber {index}: ending its session: {e}"),
                    );
                }
            }
            self.drop_http(k);
        }
        let now = Instant::now();
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut() {
                c.closing = true;
                let _ = c.core.close(CloseCode::NORMAL, "");
            }
            self.settle(i, now);
        }
    }

    /// Runs the loop until `deadline` or until `done` says so, ticking `progress`.
    fn run_until(
        &mut self,
        deadline: Instant,
        progress: &mut Progress,
        done: impl Fn(&Self) -> bool,
    ) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= deadline || done(self) {
                return Ok(());
            }
            let (errors, ready, live) = (self.errors.total(), self.ready, self.live);
            progress.tick(now, self.delivered, || {
                format!("{errors} errors, {ready} ready, {live} live")
            });
            let mut wake = deadline.min(progress.next);
            if let Some(due) = self.pump(now) {
                wake = wake.min(due);
            }
            let timeout = if self.again.is_empty() {
                wake.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            self.turn(Some(timeout))?;
        }
    }

    /// Publishes what is due on every publisher; returns when the next one is due (a
    /// publisher held back by `in_flight` waits for a reply instead).
    fn pump(&mut self, now: Instant) -> Option<Instant> {
        // No rate: replies drive `fill`.
        if self.interval.is_none() || !self.sending(now) {
            return None;
        }
        let mut due: Option<Instant> = None;
        for i in 0..self.conns.len() {
            let Some(Some(c)) = self.conns.get(i) else {
                continue;
            };
            if c.role != Role::Publisher {
                continue;
            }
            if c.next_at <= now {
                self.fill(i, now);
                self.settle(i, now);
            }
            if let Some(Some(c)) = self.conns.get(i)
                && c.sent - c.acked < self.in_flight
            {
                due = Some(due.map_or(c.next_at, |d| d.min(c.next_at)));
            }
        }
        due
    }

    fn sending(&self, now: Instant) -> bool {
        self.send_until.is_some_and(|t| now < t)
    }

    /// Publishes on publisher `i` while it may: under `in_flight`, and on schedule when
    /// there is a rate.
    fn fill(&mut self, i: usize, now: Instant) {
        if !self.sending(now) {
            return;
        }
        loop {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return;
            };
            if c.role != Role::Publisher
                || c.stage != Stage::Ready
                || c.closing
                || c.sent - c.acked >= self.in_flight
            {
                return;
            }
            let fanout = self.fanout.get_mut(c.index);
            if self.until_delivered
                && let Some(q) = &fanout
                && q.left.len() as u64 >= self.in_flight
            {
                return;
            }
            if let Some(interval) = self.interval {
                if c.next_at > now {
                    return;
                }
                // On schedule: a publisher that fell behind catches up (as far as the
                // in-flight cap lets it), so the rate holds on average; more than a
                // second behind, its schedule restarts from now rather than burst.
                c.next_at += interval;
                if c.next_at + Duration::from_secs(1) < now {
                    c.next_at = now;
                }
            }
            let seq = c.sent;
            let id = c.next_id;
            let t = u64::try_from(now.saturating_duration_since(self.clock).as_nanos())
                .unwrap_or(u64::MAX);
            write_payload(&mut self.payload, &self.pad, t, c.index, seq, self.size);
            build_publish(
                &mut self.out,
                self.dialect,
                &self.channel,
                id,
                &self.payload,
            );
            match c.core.send_text(&self.out) {
                Ok(()) => {
                    c.sent += 1;
                    if let Some(n) = self.sent_by.get_mut(c.index) {
                        *n += 1;
                    }
                    if self.until_delivered
                        && let Some(q) = fanout
                    {
                        q.left
                            .push_back(u32::try_from(self.subscribers).unwrap_or(u32::MAX));
                    }
                    c.next_id += 1;
                    self.pending += 1;
                    if let Some((from, to)) = self.window
                        && now >= from
                        && now < to
                    {
                        self.publishes_measured += 1;
                    }
                }
                Err(e) => {
                    c.closing = true;
                    let index = c.index;
                    self.errors.count(
                        Kind::Protocol,
                        format!("publisher {index}: send failed: {e:?}"),
                    );
                    return;
                }
            }
        }
    }

    /// One poll: serves every ready connection.
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        for i in self.again.drain(..) {
            if let Some(Some(c)) = self.conns.get_mut(i) {
                c.in_again = false;
            }
            batch.push((i, true));
        }
        for e in self.events.iter() {
            let i = e.token().0;
            let hup = e.is_read_closed() || e.is_error();
            if i >= HTTP_TOKEN_BASE {
                batch.push((i, true));
                continue;
            }
            if hup && let Some(Some(c)) = self.conns.get_mut(i) {
                c.hup = true;
            }
            batch.push((i, hup || e.is_readable()));
        }
        for &(i, readable) in &batch {
            if i >= HTTP_TOKEN_BASE {
                self.service_http(i - HTTP_TOKEN_BASE);
            } else {
                self.service(i, readable);
            }
        }
        self.batch = batch;
        // --until-delivered: publishers whose window opened.
        let now = Instant::now();
        let mut woken = std::mem::take(&mut self.woken);
        for p in woken.drain(..) {
            let i = self.subscribers + p;
            self.fill(i, now);
            self.settle(i, now);
        }
        self.woken = woken;
        Ok(())
    }

    /// Reads and handles what connection `i` received, then writes.
    fn service(&mut self, i: usize, readable: bool) {
        let mut budget = READ_BUDGET;
        let mut failed = None;
        if readable {
            loop {
                let Some(Some(c)) = self.conns.get_mut(i) else {
                    return;
                };
                let cap = c.core.recv_capacity().min(self.scratch.len());
                if cap == 0 {
                    break;
                }
                match c.stream.read(&mut self.scratch[..cap]) {
                    Ok(0) => {
                        c.core.recv_eof();
                        break;
                    }
                    Ok(n) => {
                        c.core.recv(&self.scratch[..n]);
                        // One clock reading per read: the receive time of what it held.
                        self.events_of(i, Instant::now());
                        let Some(Some(c)) = self.conns.get_mut(i) else {
                            return;
                        };
                        if (n < cap && !c.hup) || c.core.should_close_transport() {
                            break; // drained: the next data raises a new edge
                        }
                        budget -= 1;
                        if budget == 0 {
                            if !c.in_again {
                                c.in_again = true;
                                self.again.push(i);
                            }
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            self.drop_conn(i, format!("socket error: {e}"));
            return;
        }
        self.settle(i, Instant::now());
    }

    /// A description of connection `i` for error lines.
    fn name(&self, i: usize) -> String {
        match self.conns.get(i) {
            Some(Some(c)) => describe(c),
            _ => format!("connection {i}"),
        }
    }

    /// A setup step of connection `i` failed: counted, and the open phase stops.
    fn setup_error(&mut self, i: usize, why: String) {
        let name = self.name(i);
        self.setup_failed = true;
        if let Some(Some(c)) = self.conns.get_mut(i)
            && !c.closing
        {
            c.closing = true;
            let _ = c.core.close(CloseCode::NORMAL, "");
        }
        self.errors.count(Kind::Protocol, format!("{name}: {why}"));
    }

    /// Handles connection `i`'s pending events.
    fn events_of(&mut self, i: usize, now: Instant) {
        loop {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return;
            };
            let event = match c.core.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    let kind = match e {
                        wsengine::Error::Handshake(_) => Kind::Handshake,
                        _ => Kind::Protocol,
                    };
                    if !c.closing {
                        c.closing = true;
                        if c.stage != Stage::Ready {
                            self.setup_failed = true;
                        }
                        let name = self.name(i);
                        self.errors.count(kind, format!("{name}: {e}"));
                    }
                    return;
                }
            };
            match event {
                Event::Accepted(_) if self.dialect != Dialect::Hub => {
                    self.opened += 1;
                    if self.dialect == Dialect::Broadcast {
                        // No setup: every client gets every message.
                        c.stage = Stage::Ready;
                        self.ready += 1;
                        if c.role == Role::Subscriber {
                            c.by_publisher = (0..self.publishers)
                                .map(|_| Offsets::starting_at(0))
                                .collect();
                        }
                    } else {
                        // Socket.IO: Engine.IO's open packet comes first.
                        c.stage = Stage::Connecting;
                    }
                    if c.closing {
                        let _ = c.core.close(CloseCode::NORMAL, "");
                    }
                }
                Event::Accepted(response) => {
                    self.opened += 1;
                    if response.protocol() != Some(SUBPROTOCOL) {
                        self.setup_error(
                            i,
                            format!(
                                "the server did not select the subprotocol {SUBPROTOCOL} \
                                 (not a wsengine hub?)"
                            ),
                        );
                        return;
                    }
                    c.stage = Stage::Connecting;
                    if c.closing {
                        let _ = c.core.close(CloseCode::NORMAL, "");
                    } else if let Err(e) = c
                        .core
                        .send_text(&format!(r#"{{"type":"connect","id":{CONNECT_ID}}}"#))
                    {
                        self.setup_error(i, format!("sending connect: {e:?}"));
                        return;
                    }
                }
                Event::Text { data, last: true } => self.on_message(i, data.as_str(), now),
                Event::Text { .. } | Event::Binary { .. } => {
                    let name = self.name(i);
                    self.errors.count(
                        Kind::Protocol,
                        format!("{name}: a binary or partial message (the hub sends whole text)"),
                    );
                }
                Event::Close(frame) if !c.closing => {
                    c.closing = true;
                    if c.stage != Stage::Ready {
                        self.setup_failed = true;
                    }
                    let name = self.name(i);
                    self.errors.count(
                        Kind::Closed,
                        format!("{name}: the server closed it ({frame:?})"),
                    );
                }
                Event::Closed { code, clean } => {
                    let name = describe(c);
                    if !c.closing {
                        c.closing = true;
                        if c.stage != Stage::Ready {
                            self.setup_failed = true;
                        }
                        self.errors.count(
                            Kind::Closed,
                            format!("{name}: ended without a close handshake ({code})"),
                        );
                    } else if !clean {
                        self.errors.count(
                            Kind::UncleanClose,
                            format!("{name}: closing handshake incomplete ({code})"),
                        );
                    }
                }
                _ => {}
            }
        }
        self.fill(i, now);
    }

    /// One message on connection `i`, received at `now`.
    fn on_message(&mut self, i: usize, text: &str, now: Instant) {
        match self.dialect {
            Dialect::Hub => self.on_hub_message(i, text, now),
            Dialect::SocketIo => self.on_sio_message(i, text, now),
            Dialect::Broadcast => self.on_broadcast_message(i, text, now),
        }
    }

    /// A delivery to a subscriber: counted if `fresh` (not a duplicate), and its
    /// latency recorded in the window.
    fn delivery(&mut self, fresh: bool, stamp: &Stamp, now: Instant) {
        if !fresh {
            return;
        }
        let t = stamp.t;
        self.delivered += 1;
        // --until-delivered: one subscriber fewer to wait for.
        if self.until_delivered
            && let Some(q) = self.fanout.get_mut(stamp.p)
        {
            if let Some(left) = stamp
                .s
                .checked_sub(q.base)
                .and_then(|at| q.left.get_mut(usize::try_from(at).ok()?))
            {
                *left = left.saturating_sub(1);
            }
            let mut done = false;
            while q.left.front() == Some(&0) {
                q.left.pop_front();
                q.base += 1;
                done = true;
            }
            if done {
                self.woken.push(stamp.p);
            }
        }
        if let Some((from, to)) = self.window
            && now >= from
            && now < to
        {
            self.deliveries_measured += 1;
            let at = now.saturating_duration_since(self.clock).as_nanos();
            let latency = u64::try_from(at).unwrap_or(u64::MAX).saturating_sub(t);
            self.hist.saturating_record(latency.max(1));
        }
    }

    /// A publish on publisher `i` answered (`offset`: the offset it got, if any).
    fn acknowledged(&mut self, i: usize, offset: Option<u64>) {
        if let Some(Some(c)) = self.conns.get_mut(i) {
            c.acked += 1;
        }
        self.acked += 1;
        self.pending = self.pending.saturating_sub(1);
        if let Some(offset) = offset {
            self.last_offset = Some(self.last_offset.map_or(offset, |o| o.max(offset)));
        }
    }

    /// One message from `wsengine serve --mode broadcast`: a publisher's payload.
    fn on_broadcast_message(&mut self, i: usize, text: &str, now: Instant) {
        let Ok(stamp) = serde_json::from_str::<Stamp>(text) else {
            let name = self.name(i);
            self.errors.count(
                Kind::Mismatch,
                format!("{name}: a message not from this run: {}", clip(text, 80)),
            );
            return;
        };
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        match c.role {
            // Its own message back: the server has queued it for everyone.
            Role::Publisher if stamp.p == c.index => self.acknowledged(i, None),
            // Another publisher's.
            Role::Publisher => {}
            Role::Subscriber => {
                let Some(o) = c.by_publisher.get_mut(stamp.p) else {
                    let name = self.name(i);
                    self.errors.count(
                        Kind::Mismatch,
                        format!("{name}: from an unknown publisher: {}", clip(text, 80)),
                    );
                    return;
                };
                let before = o.received;
                o.note(stamp.s);
                let fresh = o.received > before;
                self.delivery(fresh, &stamp, now);
            }
        }
    }

    /// One Socket.IO packet (Engine.IO packet type, then Socket.IO's) on connection `i`.
    fn on_sio_message(&mut self, i: usize, text: &str, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let unexpected = |what: &str| format!("{what}: {}", clip(text, 80));
        let why = match text.as_bytes() {
            // Engine.IO ping: pong.
            [b'2', ..] => {
                let _ = c.core.send_text("3");
                return;
            }
            // Engine.IO open: connect to the main namespace.
            [b'0', ..] if c.stage == Stage::Connecting => {
                if let Err(e) = c.core.send_text("40") {
                    self.setup_error(i, format!("sending connect: {e:?}"));
                }
                return;
            }
            // Socket.IO CONNECT reply.
            [b'4', b'0', ..] if c.stage == Stage::Connecting => {
                if c.role == Role::Subscriber {
                    c.stage = Stage::Subscribing;
                    let subscribe = format!(r#"42{SUBSCRIBE_ID}["subscribe","{}"]"#, self.channel);
                    if let Err(e) = c.core.send_text(&subscribe) {
                        self.setup_error(i, format!("sending subscribe: {e:?}"));
                    }
                } else {
                    c.stage = Stage::Ready;
                    self.ready += 1;
                }
                return;
            }
            // ACK: `43<id>[{"offset":N}]`.
            [b'4', b'3', rest @ ..] => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let id = text[2..2 + digits].parse::<u64>().ok();
                let body = serde_json::from_str::<Vec<ReplyResult<'_>>>(&text[2 + digits..]);
                let offset = body.ok().and_then(|v| v.first().and_then(|r| r.offset));
                match (c.stage, c.role, id) {
                    (Stage::Subscribing, _, Some(SUBSCRIBE_ID)) => {
                        c.offsets.epoch = "socket.io".to_owned();
                        match offset {
                            Some(offset) => c.offsets.next = offset + 1,
                            // No offsets (several processes on its Redis adapter, which
                            // shares none): each publisher's sequence is checked instead.
                            None => {
                                c.by_publisher = (0..self.publishers)
                                    .map(|_| Offsets::starting_at(0))
                                    .collect();
                            }
                        }
                        c.stage = Stage::Ready;
                        self.ready += 1;
                        return;
                    }
                    (Stage::Ready, Role::Publisher, Some(_)) => {
                        self.acknowledged(i, offset);
                        return;
                    }
                    _ => unexpected("an unexpected ack"),
                }
            }
            // EVENT: `42["publication",{"channel","offset","payload"}]`.
            [b'4', b'2', ..] if c.stage == Stage::Ready => {
                let event = serde_json::from_str::<(Cow<'_, str>, SioPublication)>(&text[2..]).ok();
                match (c.role, event) {
                    (Role::Subscriber, Some((name, p))) if name == "publication" => {
                        // By the channel's offset, or, with no offsets (several
                        // processes on its Redis adapter), by the publisher's sequence.
                        let checked = p.payload.and_then(|stamp| {
                            let (o, n) = if c.by_publisher.is_empty() {
                                (&mut c.offsets, p.offset?)
                            } else {
                                (c.by_publisher.get_mut(stamp.p)?, stamp.s)
                            };
                            Some((o, n, stamp))
                        });
                        let Some((o, n, stamp)) = checked else {
                            let name = self.name(i);
                            self.errors.count(
                                Kind::Mismatch,
                                format!(
                                    "{name}: {}",
                                    unexpected("a publication not from this run")
                                ),
                            );
                            return;
                        };
                        let before = o.received;
                        o.note(n);
                        let fresh = o.received > before;
                        self.delivery(fresh, &stamp, now);
                        return;
                    }
                    _ => unexpected("an unexpected event"),
                }
            }
            _ => unexpected("an unexpected packet (not a Socket.IO 4 server?)"),
        };
        let Some(Some(c)) = self.conns.get(i) else {
            return;
        };
        if c.stage == Stage::Ready {
            let name = self.name(i);
            self.errors.count(Kind::Protocol, format!("{name}: {why}"));
        } else {
            self.setup_error(i, why);
        }
    }

    /// One hub message on connection `i`, received at `now`.
    fn on_hub_message(&mut self, i: usize, text: &str, now: Instant) {
        let message: Incoming<'_> = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => {
                let ready = self
                    .conns
                    .get(i)
                    .is_some_and(|c| c.as_ref().is_some_and(|c| c.stage == Stage::Ready));
                let why = format!(
                    "not a hub message (not a wsengine hub?): {}",
                    clip(text, 80)
                );
                if ready {
                    let name = self.name(i);
                    self.errors.count(Kind::Protocol, format!("{name}: {why}"));
                } else {
                    self.setup_error(i, why);
                }
                return;
            }
        };
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        match (message.kind.as_ref(), c.stage) {
            ("publication", Stage::Ready) if c.role == Role::Subscriber => {
                let (Some(offset), Some(stamp)) = (message.offset, message.payload) else {
                    let name = self.name(i);
                    self.errors.count(
                        Kind::Mismatch,
                        format!(
                            "{name}: a publication not from this run: {}",
                            clip(text, 80)
                        ),
                    );
                    return;
                };
                if message.epoch.as_deref() != Some(c.offsets.epoch.as_str()) {
                    let name = self.name(i);
                    self.errors.count(
                        Kind::Mismatch,
                        format!("{name}: the channel's epoch changed: {}", clip(text, 80)),
                    );
                    return;
                }
                let before = c.offsets.received;
                c.offsets.note(offset);
                let fresh = c.offsets.received > before;
                self.delivery(fresh, &stamp, now);
            }
            ("ping", _) => {
                // The hub's application-level keepalive (docs/HUB-PROTOCOL.md).
                let _ = c.core.send_text(r#"{"type":"pong"}"#);
            }
            ("reply", Stage::Connecting) if message.id == Some(CONNECT_ID) => {
                if c.role == Role::Subscriber {
                    c.stage = Stage::Subscribing;
                    let subscribe = format!(
                        r#"{{"type":"subscribe","id":{SUBSCRIBE_ID},"channel":"{}"}}"#,
                        self.channel
                    );
                    if let Err(e) = c.core.send_text(&subscribe) {
                        self.setup_error(i, format!("sending subscribe: {e:?}"));
                    }
                } else {
                    c.stage = Stage::Ready;
                    self.ready += 1;
                }
            }
            ("reply", Stage::Subscribing) if message.id == Some(SUBSCRIBE_ID) => {
                let result = message.result.as_ref();
                let (Some(offset), Some(epoch)) = (
                    result.and_then(|r| r.offset),
                    result.and_then(|r| r.epoch.as_deref()),
                ) else {
                    self.setup_error(
                        i,
                        format!(
                            "a subscribe reply without offset and epoch: {}",
                            clip(text, 80)
                        ),
                    );
                    return;
                };
                c.offsets.epoch = epoch.to_owned();
                c.offsets.next = offset + 1;
                c.stage = Stage::Ready;
                self.ready += 1;
                match &self.epoch {
                    None => self.epoch = Some(epoch.to_owned()),
                    Some(e) if e != epoch => {
                        self.setup_error(i, format!("epoch {epoch}, others got {e}"));
                    }
                    Some(_) => {}
                }
            }
            ("reply", Stage::Ready) if c.role == Role::Publisher => {
                let offset = message.result.as_ref().and_then(|r| r.offset);
                self.acknowledged(i, offset);
            }
            ("error", stage) => {
                let why = match &message.error {
                    Some(e) => format!("{}: {}", e.code, e.message),
                    None => clip(text, 80),
                };
                if stage == Stage::Ready {
                    // A refused publish (e.g. limit_exceeded): it will not be delivered.
                    if c.role == Role::Publisher {
                        c.acked += 1;
                        self.pending = self.pending.saturating_sub(1);
                    }
                    let name = self.name(i);
                    self.errors
                        .count(Kind::Protocol, format!("{name}: the hub refused: {why}"));
                } else {
                    let what = if stage == Stage::Subscribing {
                        "subscribe"
                    } else {
                        "connect"
                    };
                    self.setup_error(i, format!("{what} refused: {why}"));
                }
            }
            ("join" | "leave", _) => {}
            (_, Stage::Connecting | Stage::Subscribing) => {
                let what = if c.stage == Stage::Subscribing {
                    "subscribe"
                } else {
                    "connect"
                };
                self.setup_error(
                    i,
                    format!(
                        "expected the reply to `{what}` (not a wsengine hub?), got {}",
                        clip(text, 80)
                    ),
                );
            }
            _ => {
                let name = self.name(i);
                self.errors.count(
                    Kind::Protocol,
                    format!("{name}: unexpected message: {}", clip(text, 80)),
                );
            }
        }
    }

    /// After anything touched connection `i`: events, write, and drop it once the core
    /// says the transport is done.
    fn settle(&mut self, i: usize, now: Instant) {
        self.events_of(i, now);
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        if let Err(e) = flush(c) {
            self.drop_conn(i, format!("socket error: {e}"));
            return;
        }
        if c.core.should_close_transport() {
            if let Some(mut c) = self.conns[i].take() {
                let _ = self.poll.registry().deregister(&mut c.stream);
                // Why keep it: a subscriber's offsets count toward the report.
                self.gone.push(c);
            }
            self.live -= 1;
        }
    }

    /// `--transport sse|long-polling`: opens and subscribes every subscriber, one
    /// after the other (blocking), and puts each in the poll.
    fn open_http(
        &mut self,
        settings: &HubSettings,
        targets: &[Target],
        progress: &mut Progress,
    ) -> io::Result<()> {
        let n = settings.subscribers + settings.publishers;
        let subscribe = format!(
            r#"{{"type":"subscribe","id":{SUBSCRIBE_ID},"channel":"{}"}}"#,
            self.channel
        );
        // One keep-alive connection per node for the subscribes.
        let mut controls: Vec<Option<Blocking>> = targets.iter().map(|_| None).collect();
        for k in 0..settings.subscribers {
            let at = k % targets.len().max(1);
            let Some(target) = targets.get(at) else {
                return Err(io::Error::other("no URL to connect to"));
            };
            let opened = match self.transport {
                Transport::LongPolling => open_polling(target, &mut controls[at], &subscribe),
                _ => open_sse(target, &mut controls[at], &subscribe),
            };
            let (stream, input, session, offsets, seq, out) = opened.map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "subscribing failed: subscriber {k} over {} to {}: {e}",
                        self.transport.name(),
                        target.host
                    ),
                )
            })?;
            match &self.epoch {
                None => self.epoch = Some(offsets.epoch.clone()),
                Some(e) if *e != offsets.epoch => {
                    return Err(io::Error::other(format!(
                        "subscribing failed: subscriber {k}: epoch {}, others got {e}",
                        offsets.epoch
                    )));
                }
                Some(_) => {}
            }
            stream.set_nonblocking(true)?;
            let mut stream = TcpStream::from_std(stream);
            self.poll.registry().register(
                &mut stream,
                Token(HTTP_TOKEN_BASE + k),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.http.push(Some(HttpSub {
                stream,
                index: k,
                addr: target.addr,
                host: target.host.clone(),
                session,
                input,
                out,
                seq,
                offsets,
            }));
            self.conns.push(None);
            self.live += 1;
            self.opened += 1;
            self.ready += 1;
            if (k + 1) % CONNECT_BATCH == 0 {
                self.turn(Some(Duration::ZERO))?;
                let ready = self.ready;
                progress.tick(Instant::now(), 0, || format!("{ready}/{n} ready"));
            }
            if self.errors.total() > 0 {
                let why = self.errors.samples.first().cloned().unwrap_or_default();
                return Err(io::Error::other(format!("subscribing failed: {why}")));
            }
        }
        Ok(())
    }

    /// Reads what fallback subscriber `k` received, handles it, writes its next poll.
    fn service_http(&mut self, k: usize) {
        let Some(mut sub) = self.http.get_mut(k).and_then(Option::take) else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.serve_http(&mut sub, &mut scratch);
        self.scratch = scratch;
        match result {
            Ok(()) => self.http[k] = Some(sub),
            Err((kind, why)) => {
                self.errors.count(
                    kind,
                    format!(
                        "subscriber {} ({}): {why}",
                        sub.index,
                        self.transport.name()
                    ),
                );
                self.http[k] = Some(sub);
                self.drop_http(k);
            }
        }
    }

    fn serve_http(&mut self, sub: &mut HttpSub, scratch: &mut [u8]) -> Result<(), (Kind, String)> {
        write_out(sub).map_err(|e| (Kind::Io, format!("socket error: {e}")))?;
        loop {
            let n = match sub.stream.read(scratch) {
                Ok(0) => {
                    return Err((Kind::Closed, "the hub ended the connection".to_owned()));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((Kind::Io, format!("socket error: {e}"))),
            };
            // One clock reading per read: the receive time of what it held.
            let now = Instant::now();
            sub.input
                .feed(&scratch[..n])
                .map_err(|e| (Kind::Protocol, e))?;
            if self.transport == Transport::Sse {
                if sub.input.status != 0 && sub.input.status != 200 {
                    return Err((Kind::Protocol, format!("HTTP {}", sub.input.status)));
                }
                while let Some((from, to)) = sub.input.next_sse_data() {
                    let text = &sub.input.body[from..to];
                    match serde_json::from_slice::<Incoming<'_>>(text) {
                        Ok(m) => self.on_fallback(&mut sub.offsets, m, text, now)?,
                        Err(_) => self.errors.count(
                            Kind::Protocol,
                            format!(
                                "subscriber {}: not a hub message: {}",
                                sub.index,
                                clip(&String::from_utf8_lossy(text), 80)
                            ),
                        ),
                    }
                }
                sub.input.compact_body();
                if sub.input.done() {
                    return Err((Kind::Closed, "the hub ended the stream".to_owned()));
                }
            } else if sub.input.done() {
                if sub.input.status != 200 {
                    return Err((
                        Kind::Protocol,
                        format!(
                            "poll seq {}: HTTP {}: {}",
                            sub.seq,
                            sub.input.status,
                            clip(&String::from_utf8_lossy(&sub.input.body), 80)
                        ),
                    ));
                }
                let body = std::mem::take(&mut sub.input.body);
                match serde_json::from_slice::<Vec<Incoming<'_>>>(&body) {
                    Ok(messages) => {
                        for m in messages {
                            self.on_fallback(&mut sub.offsets, m, &body, now)?;
                        }
                    }
                    Err(e) => {
                        return Err((
                            Kind::Protocol,
                            format!(
                                "a poll answer that is not a JSON array ({e}): {}",
                                clip(&String::from_utf8_lossy(&body), 80)
                            ),
                        ));
                    }
                }
                sub.input.body = body;
                sub.seq += 1;
                sub.out.extend_from_slice(
                    fallback::poll_request(&sub.host, &sub.session, sub.seq).as_bytes(),
                );
                sub.input.next_response().map_err(|e| (Kind::Protocol, e))?;
                write_out(sub).map_err(|e| (Kind::Io, format!("socket error: {e}")))?;
            }
        }
    }

    /// One message to a fallback subscriber (`text`: what held it, for error lines).
    fn on_fallback(
        &mut self,
        offsets: &mut Offsets,
        message: Incoming<'_>,
        text: &[u8],
        now: Instant,
    ) -> Result<(), (Kind, String)> {
        match message.kind.as_ref() {
            "publication" => {
                let (Some(offset), Some(stamp)) = (message.offset, message.payload) else {
                    self.errors.count(
                        Kind::Mismatch,
                        format!(
                            "a publication not from this run: {}",
                            clip(&String::from_utf8_lossy(text), 80)
                        ),
                    );
                    return Ok(());
                };
                if message.epoch.as_deref() != Some(offsets.epoch.as_str()) {
                    self.errors.count(
                        Kind::Mismatch,
                        format!(
                            "the channel's epoch changed: {}",
                            clip(&String::from_utf8_lossy(text), 80)
                        ),
                    );
                    return Ok(());
                }
                let before = offsets.received;
                offsets.note(offset);
                let fresh = offsets.received > before;
                self.delivery(fresh, &stamp, now);
            }
            // Over these transports the client need not answer the hub's ping.
            "ping" | "join" | "leave" => {}
            "close" => {
                return Err((
                    Kind::Closed,
                    format!(
                        "the hub closed the session: {}",
                        clip(&String::from_utf8_lossy(text), 120)
                    ),
                ));
            }
            _ => {
                self.errors.count(
                    Kind::Protocol,
                    format!(
                        "unexpected message: {}",
                        clip(&String::from_utf8_lossy(text), 80)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Closes fallback subscriber `k`'s connection; its offsets count in the report.
    fn drop_http(&mut self, k: usize) {
        if let Some(mut sub) = self.http.get_mut(k).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut sub.stream);
            self.live -= 1;
            self.http_gone.push((sub.index, sub.offsets));
        }
    }

    fn drop_conn(&mut self, i: usize, why: String) {
        let name = self.name(i);
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            if c.stage != Stage::Ready {
                self.setup_failed = true;
            }
            self.live -= 1;
            self.gone.push(c);
            self.errors.count(Kind::Io, format!("{name}: {why}"));
        }
    }
}

/// `subscriber N` or `publisher N`, for error lines.
fn describe(c: &Conn) -> String {
    match c.role {
        Role::Subscriber => format!("subscriber {}", c.index),
        Role::Publisher => format!("publisher {}", c.index),
    }
}

/// Writes the payload `{"t":T,"p":P,"s":S,"pad":"xx…"}` into `out`: `size` bytes (or
/// its unpadded minimum). `p` is the publisher's index, `s` its sequence number.
pub(crate) fn write_payload(out: &mut String, pad: &str, t: u64, p: usize, s: u64, size: usize) {
    out.clear();
    let _ = write!(out, r#"{{"t":{t},"p":{p},"s":{s},"pad":""#);
    // The payload so far is `{"t":T,"p":P,"s":S,"pad":"`; `"}` closes it.
    let pad_len = size.saturating_sub(out.len() + 2).min(pad.len());
    out.push_str(&pad[..pad_len]);
    out.push_str("\"}");
}

/// Writes the publish of `payload` in `dialect` into `out`: the hub's
/// `{"type":"publish","id":ID,"channel":"CH","payload":P}`, Socket.IO's
/// `42ID["publish",{"channel":"CH","payload":P}]` (an event with ack id ID), or the
/// payload alone (broadcast).
pub(crate) fn build_publish(
    out: &mut String,
    dialect: Dialect,
    channel: &str,
    id: u64,
    payload: &str,
) {
    out.clear();
    let _ = match dialect {
        Dialect::Hub => write!(
            out,
            r#"{{"type":"publish","id":{id},"channel":"{channel}","payload":{payload}}}"#
        ),
        Dialect::SocketIo => write!(
            out,
            r#"42{id}["publish",{{"channel":"{channel}","payload":{payload}}}]"#
        ),
        Dialect::Broadcast => write!(out, "{payload}"),
    };
}

/// Writes a fallback subscriber's pending request until done or the socket would block.
fn write_out(sub: &mut HttpSub) -> io::Result<()> {
    while !sub.out.is_empty() {
        match sub.stream.write(&sub.out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                sub.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A fallback subscriber set up: its socket (blocking still), what was read of its
/// stream, its session, its offsets from the subscribe reply, the `seq` of its poll
/// awaiting an answer and that poll's bytes not yet written (long polling).
type Opened = (std::net::TcpStream, HttpIn, String, Offsets, u64, Vec<u8>);

/// Opens a session with `GET PATH` on a new connection, waiting out `503`s (the hub's
/// `connect_rate`); returns once the response's head was read.
fn open_session(target: &Target, path: &str) -> io::Result<Blocking> {
    let mut attempt = 0;
    loop {
        let mut b = Blocking::connect(target.addr)?;
        b.stream
            .write_all(fallback::get(&target.host, path).as_bytes())?;
        while b.input.status == 0 {
            b.read_more()?;
        }
        match b.input.status {
            200 => return Ok(b),
            503 if attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(100 * attempt));
            }
            status => {
                while !b.input.done() && b.read_more().is_ok() {}
                return Err(io::Error::other(format!(
                    "GET {path}: HTTP {status}: {}",
                    clip(&String::from_utf8_lossy(&b.input.body), 120)
                )));
            }
        }
    }
}

/// `POST /api/send?session=ID` with `body` on the node's keep-alive connection
/// (opened, or opened again once if the hub closed it); must be `204`.
fn send_control(
    addr: SocketAddr,
    host: &str,
    control: &mut Option<Blocking>,
    session: &str,
    body: &str,
) -> io::Result<()> {
    let request = fallback::post_send(host, session, body);
    let mut last = None;
    for _ in 0..2 {
        if control.is_none() {
            *control = Some(Blocking::connect(addr)?);
        }
        let Some(c) = control.as_mut() else {
            continue;
        };
        match c.request(request.as_bytes()) {
            Ok((204, _)) => return Ok(()),
            Ok((status, body)) => {
                return Err(io::Error::other(format!(
                    "POST /api/send: HTTP {status}: {}",
                    clip(&String::from_utf8_lossy(&body), 120)
                )));
            }
            Err(e) => {
                *control = None;
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("POST /api/send failed")))
}

/// What a message read during setup says: `Some(offsets)` for the subscribe reply,
/// `None` for one to skip, an error for the rest.
fn setup_message(text: &[u8]) -> io::Result<Option<Offsets>> {
    let m: Incoming<'_> = serde_json::from_slice(text).map_err(|_| {
        io::Error::other(format!(
            "not a hub message: {}",
            clip(&String::from_utf8_lossy(text), 80)
        ))
    })?;
    match (m.kind.as_ref(), m.id) {
        ("ping" | "join" | "leave", _) => Ok(None),
        ("reply", Some(SUBSCRIBE_ID)) => {
            let result = m.result.as_ref();
            let (Some(offset), Some(epoch)) = (
                result.and_then(|r| r.offset),
                result.and_then(|r| r.epoch.as_deref()),
            ) else {
                return Err(io::Error::other(format!(
                    "a subscribe reply without offset and epoch: {}",
                    clip(&String::from_utf8_lossy(text), 80)
                )));
            };
            Ok(Some(Offsets {
                epoch: epoch.to_owned(),
                next: offset + 1,
                ..Offsets::default()
            }))
        }
        _ => Err(io::Error::other(format!(
            "expected the reply to `subscribe`, got {}",
            clip(&String::from_utf8_lossy(text), 120)
        ))),
    }
}

/// The session id in a `session` message.
fn session_of(text: &[u8]) -> io::Result<String> {
    let m: Option<Incoming<'_>> = serde_json::from_slice(text).ok();
    match m {
        Some(m) if m.kind == "session" && m.session.is_some() => {
            Ok(m.session.unwrap_or_default().into_owned())
        }
        _ => Err(io::Error::other(format!(
            "expected a `session` message, got {}",
            clip(&String::from_utf8_lossy(text), 120)
        ))),
    }
}

/// The next SSE event's data of a blocking stream.
fn next_sse(b: &mut Blocking) -> io::Result<Vec<u8>> {
    loop {
        if let Some((from, to)) = b.input.next_sse_data() {
            let data = b.input.body[from..to].to_vec();
            b.input.compact_body();
            return Ok(data);
        }
        if b.input.done() {
            return Err(io::Error::other("the SSE stream ended"));
        }
        b.read_more()?;
    }
}

/// An SSE subscriber: `GET /sse`, its `session`, `subscribe` by POST, the reply.
fn open_sse(
    target: &Target,
    control: &mut Option<Blocking>,
    subscribe: &str,
) -> io::Result<Opened> {
    let mut b = open_session(target, "/sse")?;
    let session = session_of(&next_sse(&mut b)?)?;
    send_control(target.addr, &target.host, control, &session, subscribe)?;
    let offsets = loop {
        if let Some(offsets) = setup_message(&next_sse(&mut b)?)? {
            break offsets;
        }
    };
    b.stream.set_read_timeout(None)?;
    b.stream.set_write_timeout(None)?;
    Ok((b.stream, b.input, session, offsets, 0, Vec::new()))
}

/// A long-polling subscriber: `GET /poll`, its `session`, `subscribe` by POST, polls
/// until the reply; then its next poll is written (answered in the run).
fn open_polling(
    target: &Target,
    control: &mut Option<Blocking>,
    subscribe: &str,
) -> io::Result<Opened> {
    let mut b = open_session(target, "/poll")?;
    while !b.input.done() {
        b.read_more()?;
    }
    let answer: Vec<serde_json::Value> = serde_json::from_slice(&b.input.body)
        .map_err(|e| io::Error::other(format!("GET /poll: not a JSON array: {e}")))?;
    let first = answer.first().map(|v| v.to_string()).unwrap_or_default();
    let session = session_of(first.as_bytes())?;
    send_control(target.addr, &target.host, control, &session, subscribe)?;
    let mut seq = 1;
    let offsets = 'found: loop {
        if seq > 20 {
            return Err(io::Error::other("no subscribe reply in 20 polls"));
        }
        let request = fallback::poll_request(&target.host, &session, seq);
        let (status, body) = b.request(request.as_bytes())?;
        if status != 200 {
            return Err(io::Error::other(format!(
                "poll seq {seq}: HTTP {status}: {}",
                clip(&String::from_utf8_lossy(&body), 120)
            )));
        }
        seq += 1;
        let answer: Vec<serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| io::Error::other(format!("poll: not a JSON array: {e}")))?;
        let mut found = None;
        for m in answer {
            if let Some(o) = setup_message(m.to_string().as_bytes())? {
                found = Some(o);
            }
        }
        if let Some(o) = found {
            break 'found o;
        }
    };
    b.input.next_response().map_err(io::Error::other)?;
    let out = fallback::poll_request(&target.host, &session, seq).into_bytes();
    b.stream.set_read_timeout(None)?;
    b.stream.set_write_timeout(None)?;
    Ok((b.stream, b.input, session, offsets, seq, out))
}

/// Writes the transmit buffer until it is empty or the socket would block.
fn flush(c: &mut Conn) -> io::Result<()> {
    loop {
        let out = c.core.poll_transmit();
        if out.is_empty() {
            return Ok(());
        }
        match c.stream.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => c.core.advance_transmit(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One subscriber's faults, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Faults {
    pub(crate) subscriber: usize,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    pub(crate) out_of_order: u64,
}

/// Everything a pub/sub run measured.
#[derive(Debug)]
pub(crate) struct PubSubResults {
    pub(crate) settings: HubSettings,
    pub(crate) started: SystemTime,
    /// Connecting, `connect` and `subscribe` of every connection.
    pub(crate) open_time: Duration,
    /// The measurement window.
    pub(crate) measured: Duration,
    /// Publishes sent in the window.
    pub(crate) publishes: u64,
    /// Publications received by subscribers in the window (distinct per subscriber).
    pub(crate) deliveries: u64,
    /// End-to-end latency of those deliveries, in nanoseconds.
    pub(crate) latency: Histogram<u64>,
    /// Over the whole run: publishes the hub accepted, distinct deliveries, and the
    /// deliveries expected (accepted publishes times subscribers).
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    pub(crate) expected: u64,
    pub(crate) lost: u64,
    pub(crate) duplicates: u64,
    pub(crate) out_of_order: u64,
    /// Subscribers with any fault (the first [`MAX_FAULTY`]), and how many there were.
    pub(crate) faulty: Vec<Faults>,
    pub(crate) faulty_count: usize,
    pub(crate) errors: Errors,
    pub(crate) cpu_window: Duration,
    pub(crate) client_cpu: Option<Duration>,
    /// The nodes' processes together (`pid`: the first of `settings.server_pids`).
    pub(crate) server: Option<ServerStats>,
    pub(crate) broker: Option<BrokerStats>,
}

/// One node to connect to: its address and the opening handshake's request.
struct Target {
    addr: SocketAddr,
    request: ClientRequest,
    /// `HOST:PORT`, the `Host` of the fallback transports' requests.
    host: String,
}

impl Target {
    fn new(url: &str, dialect: Dialect) -> io::Result<Self> {
        let url = dialect.url(url);
        let mut request = ClientRequest::new(&url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{url}: {e}")))?;
        if dialect == Dialect::Hub {
            request = request.protocol(SUBPROTOCOL);
        }
        let addr = (request.host(), request.port())
            .to_socket_addrs()
            .map_err(|e| io::Error::new(e.kind(), format!("{url}: {e}")))?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{url}: the host resolved to no address"),
                )
            })?;
        let host = format!("{}:{}", request.host(), request.port());
        Ok(Self {
            addr,
            request,
            host,
        })
    }
}

/// The nodes' figures now, summed (`None` if any is unreadable).
fn sample_servers(pids: &[u32]) -> Option<ProcSample> {
    let mut total = ProcSample {
        cpu: Duration::ZERO,
        rss: 0,
    };
    for &pid in pids {
        let s = sample_server(Some(pid))?;
        total.cpu += s.cpu;
        total.rss += s.rss;
    }
    (!pids.is_empty()).then_some(total)
}

/// The broker's counters now, or a warning and `None`.
fn sample_broker(probe: Option<&mut RedisProbe>) -> Option<RedisInfo> {
    let probe = probe?;
    probe.sample().map_err(|e| log!(Level::Warn, "{e}")).ok()
}

/// Opens the connections, subscribes, publishes, drains and gathers the results.
pub(crate) fn execute(settings: &HubSettings, progress: ProgressMode) -> io::Result<PubSubResults> {
    let targets = settings
        .urls
        .iter()
        .map(|url| Target::new(url, settings.dialect))
        .collect::<io::Result<Vec<_>>>()?;
    let n = settings.subscribers + settings.publishers;
    report::check_fd_limit(n)?;
    let server_pids = &settings.server_pids;
    // Fails early on a bad pid.
    for &pid in server_pids {
        ProcSample::read(pid)?;
    }
    let server_before = sample_servers(server_pids);
    let mut broker = settings
        .broker_redis
        .as_deref()
        .map(RedisProbe::connect)
        .transpose()?;
    let started = SystemTime::now();

    let mut engine = Engine::new(settings)?;
    let mut progress = Progress::new(progress, settings.warmup + settings.duration, settings.size);
    let open_start = Instant::now();
    engine.open_all(settings, &targets, &mut progress)?;
    let open_time = open_start.elapsed();

    // The broker's figures cover publishing and the drain, whole: every publication's
    // broker work (in a script, a fan-out) and nothing of the setup before or the closes
    // after; they are divided by the publications accepted.
    let broker_start = sample_broker(broker.as_mut());
    let broker_from = Instant::now();
    let opened = Instant::now();
    let measure_start = opened + settings.warmup;
    let measure_end = measure_start + settings.duration;
    engine.start(opened, measure_start, measure_end);
    progress.phase("warmup");
    engine.run_until(measure_start, &mut progress, |_| false)?;
    let client_start = ProcSample::read_self().ok();
    let server_start = sample_servers(server_pids);
    let cpu_start = Instant::now();
    progress.phase("measure");
    engine.run_until(measure_end, &mut progress, |_| false)?;
    let cpu_window = cpu_start.elapsed();
    let client_end = ProcSample::read_self().ok();
    let server_end = sample_servers(server_pids);
    // The hard stop: what is not delivered within the drain timeout is lost.
    progress.phase("drain");
    let subscribers = settings.subscribers;
    engine.run_until(Instant::now() + DRAIN_TIMEOUT, &mut progress, |e| {
        e.drained(subscribers)
    })?;
    if engine.pending > 0 {
        let n = engine.pending;
        engine.errors.count(
            Kind::Missing,
            format!(
                "{n} publish(es) not answered within {}s of the end",
                DRAIN_TIMEOUT.as_secs()
            ),
        );
    }
    let broker_end = sample_broker(broker.as_mut());
    let broker_span = broker_from.elapsed();
    progress.phase("close");
    engine.close_all();
    engine.run_until(Instant::now() + CLOSE_TIMEOUT, &mut progress, |e| {
        e.live == 0
    })?;
    if engine.live > 0 {
        let n = engine.live;
        engine.errors.count(
            Kind::UncleanClose,
            format!("{n} connection(s) not closed by the server within the close timeout"),
        );
    }
    progress.finish();

    // Offsets, per subscriber, against the last one published.
    let last = engine.last_offset.unwrap_or(0);
    let (mut lost, mut duplicates, mut out_of_order) = (0, 0, 0);
    let mut faulty = Vec::new();
    let mut faulty_count = 0;
    let mut subs: Vec<(usize, &Offsets, &[Offsets])> = engine
        .conns
        .iter()
        .flatten()
        .chain(engine.gone.iter())
        .filter(|c| c.role == Role::Subscriber)
        .map(|c| (c.index, &c.offsets, c.by_publisher.as_slice()))
        .chain(
            engine
                .http
                .iter()
                .flatten()
                .map(|h| (h.index, &h.offsets, &[][..])),
        )
        .chain(engine.http_gone.iter().map(|(i, o)| (*i, o, &[][..])))
        .collect();
    subs.sort_by_key(|c| c.0);
    let mut faults_found = Vec::new();
    for (index, offsets, by_publisher) in subs {
        let f = if !by_publisher.is_empty() {
            // Per publisher (broadcast, Socket.IO without offsets): its sequences 0..sent.
            let per = || by_publisher.iter().zip(&engine.sent_by);
            Faults {
                subscriber: index,
                lost: per().map(|(o, &sent)| o.lost_below(sent)).sum(),
                duplicates: per().map(|(o, _)| o.duplicates).sum(),
                out_of_order: per().map(|(o, _)| o.out_of_order).sum(),
            }
        } else {
            Faults {
                subscriber: index,
                // A subscriber that never subscribed has no base offset: nothing to count.
                lost: if offsets.epoch.is_empty() {
                    0
                } else {
                    offsets.lost(last)
                },
                duplicates: offsets.duplicates,
                out_of_order: offsets.out_of_order,
            }
        };
        lost += f.lost;
        duplicates += f.duplicates;
        out_of_order += f.out_of_order;
        if f.lost + f.duplicates + f.out_of_order > 0 {
            faulty_count += 1;
            if faulty.len() < MAX_FAULTY {
                faulty.push(f);
            }
            faults_found.push(f);
        }
    }
    for f in faults_found {
        let kind = if f.lost > 0 {
            Kind::Missing
        } else {
            Kind::Mismatch
        };
        engine.errors.count(
            kind,
            format!(
                "subscriber {}: {} lost, {} duplicate, {} out of order",
                f.subscriber, f.lost, f.duplicates, f.out_of_order
            ),
        );
    }

    let server = match (server_pids.first(), server_before, server_start, server_end) {
        (Some(&pid), Some(before), Some(a), Some(b)) => Some(ServerStats {
            pid,
            cpu: b.cpu.saturating_sub(a.cpu),
            rss_before: before.rss,
            rss_after: b.rss,
        }),
        _ => None,
    };
    Ok(PubSubResults {
        settings: settings.clone(),
        started,
        open_time,
        measured: settings.duration,
        publishes: engine.publishes_measured,
        deliveries: engine.deliveries_measured,
        published: engine.acked,
        delivered: engine.delivered,
        expected: engine.acked.saturating_mul(settings.subscribers as u64),
        lost,
        duplicates,
        out_of_order,
        faulty,
        faulty_count,
        errors: engine.errors,
        cpu_window,
        client_cpu: match (client_start, client_end) {
            (Some(a), Some(b)) => Some(b.cpu.saturating_sub(a.cpu)),
            _ => None,
        },
        server,
        broker: match (&broker, broker_start, broker_end) {
            (Some(probe), Some(a), Some(b)) => {
                Some(BrokerStats::between(probe.url(), &a, &b, broker_span))
            }
            _ => None,
        },
        latency: engine.hist,
    })
}

impl PubSubResults {
    /// One line saying what ran (the plot's caption).
    pub(crate) fn title(&self) -> String {
        let s = &self.settings;
        format!(
            "{} subscribers, {} publishers x {} payloads, {}",
            s.subscribers,
            s.publishers,
            bytes(s.size as u64),
            rate_text(s)
        )
    }

    fn per_sec(&self, n: u64) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }

    fn cpu_percent(&self, cpu: Duration) -> f64 {
        let window = self.cpu_window.as_secs_f64();
        if window > 0.0 {
            100.0 * cpu.as_secs_f64() / window
        } else {
            0.0
        }
    }

    /// CPU per delivery in the window, in microseconds.
    fn us_per_delivery(&self, cpu: Duration) -> Option<f64> {
        (self.deliveries > 0).then(|| cpu.as_secs_f64() * 1e6 / self.deliveries as f64)
    }

    /// `Ok` for a clean run; otherwise one line saying what went wrong.
    pub(crate) fn verdict(&self) -> io::Result<()> {
        if self.errors.total() > 0 {
            let first = self.errors.samples.first().cloned().unwrap_or_default();
            return Err(io::Error::other(format!(
                "{} error(s) (lost {}, duplicate {}, out of order {}): {first}",
                self.errors.total(),
                self.lost,
                self.duplicates,
                self.out_of_order
            )));
        }
        if self.delivered == 0 && self.settings.publishers > 0 {
            return Err(io::Error::other(format!(
                "nothing was delivered ({} publishes accepted)",
                self.published
            )));
        }
        Ok(())
    }

    /// The human-readable report.
    pub(crate) fn text(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "wsengine load --hub --dialect {} --transport {} {}",
            s.dialect.name(),
            s.transport.name(),
            s.urls.join(" ")
        );
        let _ = writeln!(
            out,
            "  channel {}: {} subscribers, {} publishers x {} payloads, {}, at most {} in flight each",
            s.channel,
            s.subscribers,
            s.publishers,
            bytes(s.size as u64),
            rate_text(s),
            s.cap()
        );
        let _ = writeln!(
            out,
            "  opened and subscribed in {:.3} s; warmup {}; measured {}",
            self.open_time.as_secs_f64(),
            report::secs(s.warmup),
            report::secs(self.measured)
        );
        let _ = writeln!(
            out,
            "publishes    {} ({} publishes/s)",
            count(self.publishes as f64),
            count(self.per_sec(self.publishes))
        );
        let _ = writeln!(
            out,
            "deliveries   {} ({} deliveries/s, {:.2} MB/s of payload)",
            count(self.deliveries as f64),
            count(self.per_sec(self.deliveries)),
            self.per_sec(self.deliveries) * s.size as f64 / 1e6
        );
        let h = &self.latency;
        if h.is_empty() {
            let _ = writeln!(out, "latency      none measured");
        } else {
            let _ = writeln!(
                out,
                "latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (min {}, mean {}; \
                 publisher send to subscriber receive)",
                nanos(h.value_at_quantile(0.5) as f64),
                nanos(h.value_at_quantile(0.9) as f64),
                nanos(h.value_at_quantile(0.99) as f64),
                nanos(h.value_at_quantile(0.999) as f64),
                nanos(h.max() as f64),
                nanos(h.min() as f64),
                nanos(h.mean()),
            );
        }
        let _ = writeln!(
            out,
            "totals       {} published, {} of {} deliveries; lost {}, duplicate {}, \
             out of order {}",
            count(self.published as f64),
            count(self.delivered as f64),
            count(self.expected as f64),
            self.lost,
            self.duplicates,
            self.out_of_order
        );
        for f in &self.faulty {
            let _ = writeln!(
                out,
                "  subscriber {}: lost {}, duplicate {}, out of order {}",
                f.subscriber, f.lost, f.duplicates, f.out_of_order
            );
        }
        if self.faulty_count > self.faulty.len() {
            let _ = writeln!(
                out,
                "  ({} more subscribers with faults)",
                self.faulty_count - self.faulty.len()
            );
        }
        let _ = write!(out, "errors       {}", self.errors.total());
        for sample in &self.errors.samples {
            let _ = write!(out, "\n  {sample}");
        }
        out.push('\n');
        if let Some(cpu) = self.client_cpu {
            let _ = writeln!(
                out,
                "client CPU   {:.2} s in {} = {:.1}% of a core{}",
                cpu.as_secs_f64(),
                report::secs(self.cpu_window),
                self.cpu_percent(cpu),
                self.us_per_delivery(cpu)
                    .map(|us| format!(", {us:.2} µs per delivery"))
                    .unwrap_or_default()
            );
        }
        if let Some(server) = &self.server {
            let _ = writeln!(
                out,
                "server CPU   {:.2} s in {} = {:.1}% of a core{} ({} {})",
                server.cpu.as_secs_f64(),
                report::secs(self.cpu_window),
                self.cpu_percent(server.cpu),
                self.us_per_delivery(server.cpu)
                    .map(|us| format!(", {us:.2} µs per delivery"))
                    .unwrap_or_default(),
                if s.server_pids.len() > 1 {
                    "pids"
                } else {
                    "pid"
                },
                self.pids_text()
            );
            let _ = writeln!(
                out,
                "server RSS   {} before, {} after",
                bytes(server.rss_before),
                bytes(server.rss_after)
            );
        }
        if let Some(broker) = &self.broker {
            let _ = writeln!(
                out,
                "broker CPU   {:.2} s in {} of publishing and drain = {:.1}% of a core{} ({})",
                broker.cpu.as_secs_f64(),
                report::secs(broker.span),
                broker.cpu_percent(),
                self.per_publication(broker.cpu.as_secs_f64() * 1e6)
                    .map(|us| format!(", {us:.2} µs per publication"))
                    .unwrap_or_default(),
                broker.url
            );
            let per = |n: u64| {
                self.per_publication(n as f64)
                    .map_or_else(|| count(n as f64), |x| format!("{x:.2}"))
            };
            let calls: Vec<String> = broker
                .calls
                .iter()
                .take(8)
                .map(|(name, n)| format!("{name} {}", per(*n)))
                .collect();
            let _ = writeln!(
                out,
                "broker cmds  {} per publication ({}; a script's commands count too)",
                per(broker.commands),
                calls.join(", ")
            );
        }
        out
    }

    /// `x` per publication accepted over the whole run (the span the broker's figures
    /// cover).
    fn per_publication(&self, x: f64) -> Option<f64> {
        (self.published > 0).then(|| x / self.published as f64)
    }

    /// The nodes' pids, comma-separated.
    fn pids_text(&self) -> String {
        let pids: Vec<String> = self
            .settings
            .server_pids
            .iter()
            .map(u32::to_string)
            .collect();
        pids.join(",")
    }

    /// The JSON document (schema `wsengine-load/1`, mode `pubsub`).
    pub(crate) fn json(&self) -> String {
        let s = &self.settings;
        let started_ms = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut o = String::from("{\n");
        let _ = writeln!(o, "  \"schema\": \"wsengine-load/1\",");
        let _ = writeln!(o, "  \"mode\": \"pubsub\",");
        let first = s.urls.first().map_or("", String::as_str);
        let urls: Vec<String> = s.urls.iter().map(|u| report::json_str(u)).collect();
        let _ = writeln!(o, "  \"url\": {},", report::json_str(first));
        let _ = writeln!(o, "  \"urls\": [{}],", urls.join(", "));
        let _ = writeln!(o, "  \"started_unix_ms\": {started_ms},");
        let _ = writeln!(
            o,
            "  \"settings\": {{\"dialect\": \"{}\", \"subscribers\": {}, \"publishers\": {}, \"channel\": {}, \
             \"size\": {}, \"rate_per_publisher\": {}, \"in_flight\": {}, \"warmup_s\": {}, \
             \"duration_s\": {}, \"transport\": \"{}\"}},",
            s.dialect.name(),
            s.subscribers,
            s.publishers,
            report::json_str(&s.channel),
            s.size,
            s.rate,
            s.cap(),
            num(s.warmup.as_secs_f64()),
            num(s.duration.as_secs_f64()),
            s.transport.name(),
        );
        let _ = writeln!(o, "  \"transport\": \"{}\",", s.transport.name());
        let _ = writeln!(o, "  \"open_s\": {},", num(self.open_time.as_secs_f64()));
        let _ = writeln!(o, "  \"measured_s\": {},", num(self.measured.as_secs_f64()));
        let _ = writeln!(o, "  \"publishes\": {},", self.publishes);
        let _ = writeln!(
            o,
            "  \"publishes_per_s\": {},",
            num(self.per_sec(self.publishes))
        );
        let _ = writeln!(o, "  \"deliveries\": {},", self.deliveries);
        let _ = writeln!(
            o,
            "  \"deliveries_per_s\": {},",
            num(self.per_sec(self.deliveries))
        );
        let _ = writeln!(
            o,
            "  \"mb_per_s\": {},",
            num(self.per_sec(self.deliveries) * s.size as f64 / 1e6)
        );
        let h = &self.latency;
        if h.is_empty() {
            let _ = writeln!(o, "  \"latency_us\": null,");
        } else {
            let us = |ns: f64| num(ns / 1e3);
            let _ = writeln!(
                o,
                "  \"latency_us\": {{\"count\": {}, \"min\": {}, \"mean\": {}, \"p50\": {}, \
                 \"p90\": {}, \"p99\": {}, \"p99_9\": {}, \"max\": {}}},",
                h.len(),
                us(h.min() as f64),
                us(h.mean()),
                us(h.value_at_quantile(0.5) as f64),
                us(h.value_at_quantile(0.9) as f64),
                us(h.value_at_quantile(0.99) as f64),
                us(h.value_at_quantile(0.999) as f64),
                us(h.max() as f64),
            );
        }
        let faulty: Vec<String> = self
            .faulty
            .iter()
            .map(|f| {
                format!(
                    "{{\"subscriber\": {}, \"lost\": {}, \"duplicates\": {}, \"out_of_order\": {}}}",
                    f.subscriber, f.lost, f.duplicates, f.out_of_order
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "  \"totals\": {{\"published\": {}, \"delivered\": {}, \"expected\": {}, \
             \"lost\": {}, \"duplicates\": {}, \"out_of_order\": {}, \
             \"subscribers_with_faults\": {}, \"faults\": [{}]}},",
            self.published,
            self.delivered,
            self.expected,
            self.lost,
            self.duplicates,
            self.out_of_order,
            self.faulty_count,
            faulty.join(", ")
        );
        let _ = write!(o, "  \"errors\": {{\"total\": {}", self.errors.total());
        for kind in Kind::ALL {
            let _ = write!(o, ", \"{}\": {}", kind.name(), self.errors.get(kind));
        }
        let samples: Vec<String> = self
            .errors
            .samples
            .iter()
            .map(|s| report::json_str(s))
            .collect();
        let _ = writeln!(o, ", \"samples\": [{}]}},", samples.join(", "));
        let _ = writeln!(
            o,
            "  \"cpu_window_s\": {},",
            num(self.cpu_window.as_secs_f64())
        );
        match self.client_cpu {
            Some(cpu) => {
                let _ = writeln!(
                    o,
                    "  \"client\": {{\"cpu_s\": {}, \"cpu_percent\": {}, \"cpu_us_per_delivery\": {}}},",
                    num(cpu.as_secs_f64()),
                    num(self.cpu_percent(cpu)),
                    self.us_per_delivery(cpu).map_or("null".into(), num)
                );
            }
            None => {
                let _ = writeln!(o, "  \"client\": null,");
            }
        }
        match &self.server {
            Some(server) => {
                let _ = writeln!(
                    o,
                    "  \"server\": {{\"pid\": {}, \"pids\": [{}], \"cpu_s\": {}, \
                     \"cpu_percent\": {}, \"cpu_us_per_delivery\": {}, \
                     \"rss_before_bytes\": {}, \"rss_after_bytes\": {}}},",
                    server.pid,
                    self.pids_text().replace(',', ", "),
                    num(server.cpu.as_secs_f64()),
                    num(self.cpu_percent(server.cpu)),
                    self.us_per_delivery(server.cpu).map_or("null".into(), num),
                    server.rss_before,
                    server.rss_after,
                );
            }
            None => {
                let _ = writeln!(o, "  \"server\": null,");
            }
        }
        match &self.broker {
            Some(broker) => {
                let calls: Vec<String> = broker
                    .calls
                    .iter()
                    .map(|(name, n)| format!("{}: {n}", report::json_str(name)))
                    .collect();
                let _ = writeln!(
                    o,
                    "  \"broker\": {{\"url\": {}, \"span_s\": {}, \"cpu_s\": {}, \
                     \"cpu_percent\": {}, \"cpu_us_per_publication\": {}, \"commands\": {}, \
                     \"commands_per_publication\": {}, \"calls\": {{{}}}}}",
                    report::json_str(&broker.url),
                    num(broker.span.as_secs_f64()),
                    num(broker.cpu.as_secs_f64()),
                    num(broker.cpu_percent()),
                    self.per_publication(broker.cpu.as_secs_f64() * 1e6)
                        .map_or("null".into(), num),
                    broker.commands,
                    self.per_publication(broker.commands as f64)
                        .map_or("null".into(), num),
                    calls.join(", ")
                );
            }
            None => {
                let _ = writeln!(o, "  \"broker\": null");
            }
        }
        o.push_str("}\n");
        o
    }
}

/// The publishing pace, in words.
fn rate_text(s: &HubSettings) -> String {
    if s.rate == 0 {
        "no rate cap".to_owned()
    } else {
        format!("{} publishes/s each", count(s.rate as f64))
    }
}
