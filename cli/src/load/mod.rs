//! `wsengine load`: a load generator for WebSocket echo servers.
//!
//! One thread and one mio poll drive the core [`Connection`]s directly rather than
//! through `wsengine_mio`, so the generator does less work per message than the
//! server it measures:
//!
//! - one pass per readiness event: read, verify every echo, queue the next message and
//!   write, with one clock reading per read;
//! - a read shorter than the buffer means the socket is drained, so the read that would
//!   only return `WouldBlock` is skipped (mio is edge-triggered; new data raises a new
//!   edge);
//! - read and write interest stay registered for the whole run: no `epoll_ctl` per
//!   message;
//! - payloads are windows of one pre-generated tape, so sending and checking a message
//!   allocate nothing here (the core copies the payload into its transmit buffer).
//!
//! Every message's payload is determined by its connection and sequence number (see
//! [`Tape`]); echoes must come back whole, of the same kind, in order, byte for byte.
//!
//! `wss://` runs a [`TlsSession`] (rustls) under each core: the TLS handshake is part of
//! opening, and every read goes through rustls (records of at most 16 KiB, read 4 KiB at
//! a time by rustls' rule).

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use wsengine::{ClientRequest, CloseCode, Config, Connection, Event};
use wsengine_mio::tls::{self, TlsSession, rustls};

use super::{Level, max_level};

mod broker;
mod fallback;
mod plot;
mod pubsub;
mod report;

use report::{Errors, Kind, ProcSample, Results, ServerStats};

/// Reads per connection per wakeup before the others get a turn.
const READ_BUDGET: usize = 16;
/// After the measurement, how long to wait for the echoes still in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the closing handshakes at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the opening handshakes may take after the last TCP connect.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting is blocking; the loop serves the opened connections every this many.
const CONNECT_BATCH: usize = 64;
/// Most connections whose handshake is under way: under the server's listen backlog
/// (`wsengine serve` gets mio's, 128). An overflowing accept queue drops SYNs, and each
/// retry costs the client a second.
const MAX_OPENING: usize = 64;
/// Error descriptions kept for the report.
const MAX_SAMPLES: usize = 10;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// The ws:// or wss:// URL of an echo server. With --hub: the ws:// URL of a
    /// wsengine hub's /ws endpoint, e.g. ws://127.0.0.1:8000/ws, or several (the nodes
    /// of one cluster): subscribers and publishers are spread over them in turn.
    #[arg(required = true, num_args = 1.., value_name = "URL")]
    urls: Vec<String>,
    /// For wss://: also trust the CA certificates in this PEM file (repeatable), besides
    /// Mozilla's roots.
    #[arg(long = "ca", value_name = "CA.pem")]
    cas: Vec<PathBuf>,
    /// Connections that send messages (at least 1).
    #[arg(long, default_value_t = 100, value_parser = crate::parse_count)]
    connections: usize,
    /// Payload size of every message, in bytes (or with a suffix: KiB, MiB, K, M; KB,
    /// MB are powers of 1000).
    #[arg(long, default_value = "20", value_parser = crate::parse_bytes)]
    size: usize,
    /// How long to measure (e.g. 10s, 500ms, 2m; more than 0).
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    duration: Duration,
    /// How long to run before measuring (not measured).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Messages in flight per connection: each echo sends the next message (1 to
    /// 10000).
    #[arg(long, default_value_t = 1, value_parser = parse_in_flight)]
    in_flight: usize,
    /// Send text messages (ASCII) instead of binary ones.
    #[arg(long)]
    text: bool,
    /// Offer permessage-deflate (RFC 7692, the default `DeflateConfig`: context takeover
    /// both ways); if the server accepts, echoes are compressed both ways.
    #[arg(long)]
    deflate: bool,
    /// Cap on the messages sent per second, all connections together. With --hub:
    /// publishes per second per publisher (default 10, under the hub's default
    /// publish_rate limit of 50), 0 for as fast as --in-flight allows.
    #[arg(long)]
    rate: Option<u64>,
    /// Idle mode: open this many connections, send nothing, hold them for --hold, then
    /// close them (with --server-pid: the server's memory per connection).
    #[arg(long, value_parser = crate::parse_count, conflicts_with_all = ["connections", "size", "duration", "warmup", "in_flight", "text", "rate", "plot"])]
    idle: Option<usize>,
    /// Handshake mode: each of --connections connections opens (TCP connect, TLS
    /// handshake for wss://, WebSocket handshake), closes cleanly and opens again, for
    /// --duration after --warmup; reports opening handshakes per second (with wss://,
    /// full TLS handshakes: no session resumption), their latency (connect to 101), and
    /// with --server-pid the server's CPU per connection.
    #[arg(long, conflicts_with_all = ["idle", "size", "in_flight", "text", "rate"])]
    handshakes: bool,
    /// Pub/sub mode against a wsengine hub (docs/HUB-PROTOCOL.md): --subscribers
    /// connections subscribe to --channel, then --publishers connections publish
    /// --size-byte JSON payloads stamped with their send time; reports deliveries and
    /// publishes per second, the end-to-end latency (publisher send to subscriber
    /// receive), lost, duplicate and out-of-order publications by offset, and with
    /// --server-pid the server's CPU per delivery. --in-flight bounds the publishes
    /// awaiting their reply per publisher (with a --rate: at least a second's worth).
    #[arg(long, conflicts_with_all = ["idle", "handshakes", "connections", "text", "deflate", "cas"])]
    hub: bool,
    /// Pub/sub mode: subscriber connections.
    #[arg(long, default_value_t = 100, requires = "hub")]
    subscribers: usize,
    /// Pub/sub mode: publisher connections (0: subscribers only, held for --warmup and
    /// --duration: with --server-pid, the server's memory per idle subscriber).
    #[arg(long, default_value_t = 1, requires = "hub")]
    publishers: usize,
    /// Pub/sub mode: the channel to subscribe and publish to.
    #[arg(long, default_value = "bench", requires = "hub")]
    channel: String,
    /// Pub/sub mode: the protocol spoken. `hub`: docs/HUB-PROTOCOL.md. `socketio`:
    /// Socket.IO 4 over its WebSocket transport (the URL's path defaults to
    /// /socket.io/?EIO=4&transport=websocket; events `subscribe` and `publish` with
    /// acks, deliveries as `publication` events with a per-channel offset, as
    /// benches/compare/node/pubsub_socketio.js serves). `broadcast`: `wsengine serve
    /// --mode broadcast`, which relays every message to every client, the sender
    /// included: the payload goes as is, subscribers check (publisher, sequence) instead
    /// of offsets, and a publisher's own message coming back stands for the publish
    /// reply (the relay to everyone is queued by then), so --in-flight and --rate work
    /// as with the hub.
    #[arg(long, value_enum, default_value_t = pubsub::Dialect::Hub, requires = "hub")]
    dialect: pubsub::Dialect,
    /// Pub/sub mode against the hub: the subscribers' transport. `websocket`: /ws.
    /// `sse`: `GET /sse`, `subscribe` sent as `POST /api/send?session=ID`, publications
    /// read from the event stream. `long-polling`: `GET /poll`, the same `subscribe`,
    /// then `GET /poll?session=ID&seq=N&timeout=25` again and again on one keep-alive
    /// connection. Publishers use WebSocket whatever this says. Opening and subscribing
    /// are part of the setup (one subscriber after the other), not measured.
    #[arg(long, value_enum, default_value_t = fallback::Transport::Websocket)]
    transport: fallback::Transport,
    /// Pub/sub mode: --in-flight counts a publish until every subscriber has received
    /// it rather than until its reply (or own relayed message), so the publishers never
    /// outrun the slowest subscriber: a saturating run without a backlog growing in the
    /// server (a reply only says the server took the publication; without this a server
    /// faster than the subscribers' reader queues up to its slow-consumer limit).
    #[arg(long, requires = "hub")]
    until_delivered: bool,
    /// Idle mode: how long to hold the connections open.
    #[arg(long, default_value = "30s", value_parser = parse_duration, requires = "idle")]
    hold: Duration,
    /// The server's process id: report its CPU time (and CPU per message) and its
    /// resident memory before and after, from /proc (Linux). With --hub, repeatable or
    /// comma-separated (the nodes of a cluster): their figures are summed.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Pub/sub mode: the Redis server the nodes share (redis://HOST:PORT): report its
    /// CPU time and the commands it ran per publication over the measurement window,
    /// from its own `INFO` (cpu, stats, commandstats).
    #[arg(long, value_name = "URL", requires = "hub")]
    broker_redis: Option<String>,
    /// Write the results as JSON to this file (schema in README.md).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the latency distribution (percentile spectrum) as SVG to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// `--in-flight`: 1 to 10000.
fn parse_in_flight(s: &str) -> Result<usize, String> {
    match crate::parse_count(s)? {
        n if n > 10_000 => Err("must be at most 10000".into()),
        n => Ok(n),
    }
}

/// [`parse_duration`] for a duration that must be more than 0.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than 0".into()),
        d => Ok(d),
    }
}

/// Parses `1.5s`, `250ms`, `2m`, `100us` or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit `{other}` (use h, m, s, ms or us)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{s}`: {e}"))
}

/// What a run does, checked and resolved from [`LoadArgs`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) mode: Mode,
    pub(crate) connections: usize,
    pub(crate) size: usize,
    pub(crate) in_flight: usize,
    pub(crate) text: bool,
    pub(crate) deflate: bool,
    pub(crate) rate: Option<u64>,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) hold: Duration,
    pub(crate) server_pid: Option<u32>,
    /// Extra trusted CAs for wss:// (`--ca`).
    pub(crate) cas: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Send messages and check their echoes.
    Echo,
    /// Open connections and hold them, sending nothing.
    Idle,
    /// Open, close and open again: connection setups per second.
    Handshakes,
}

impl Settings {
    fn from_args(args: &LoadArgs) -> Result<Self, String> {
        let (mode, connections) = match args.idle {
            Some(n) => (Mode::Idle, n),
            None if args.handshakes => (Mode::Handshakes, args.connections),
            None => (Mode::Echo, args.connections),
        };
        if connections == 0 {
            return Err("need at least one connection".into());
        }
        if u32::try_from(connections).is_err() {
            return Err("too many connections".into());
        }
        if args.in_flight == 0 || args.in_flight > 10_000 {
            return Err("--in-flight must be between 1 and 10000".into());
        }
        if args.rate == Some(0) {
            return Err("--rate must be at least 1".into());
        }
        if args.duration.is_zero() && mode != Mode::Idle {
            return Err("--duration must be longer than 0".into());
        }
        if args.size > 1 << 30 {
            return Err("--size is at most 1 GiB".into());
        }
        let [url] = args.urls.as_slice() else {
            return Err("several URLs need --hub (pub/sub mode)".into());
        };
        if args.server_pid.len() > 1 {
            return Err("several --server-pid need --hub (pub/sub mode)".into());
        }
        Ok(Self {
            url: url.clone(),
            mode,
            connections,
            size: args.size,
            in_flight: args.in_flight,
            text: args.text,
            deflate: args.deflate,
            rate: args.rate,
            warmup: args.warmup,
            duration: args.duration,
            hold: args.hold,
            server_pid: args.server_pid.first().copied(),
            cas: args.cas.clone(),
        })
    }
}

/// Runs `wsengine load`: prints the report, writes `--json` and `--plot`, and fails on
/// any error the run counted.
pub(crate) fn run(args: LoadArgs) -> io::Result<()> {
    if args.hub {
        return pubsub::run(&args);
    }
    if args.transport != fallback::Transport::Websocket {
        return Err(io::Error::other(format!(
            "--transport {} needs --hub (pub/sub mode against a wsengine hub)",
            args.transport.name()
        )));
    }
    let settings = Settings::from_args(&args).map_err(io::Error::other)?;
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
        match &results.latency {
            Some(hist) if !hist.is_empty() => {
                plot::latency_svg(path, hist, &results.title())
                    .map_err(|e| io::Error::other(format!("drawing {}: {e}", path.display())))?;
                log!(Level::Info, "wrote {}", path.display());
            }
            _ => log!(
                Level::Warn,
                "no latency measured: {} not written",
                path.display()
            ),
        }
    }
    match results.errors.total() {
        0 => Ok(()),
        n => Err(io::Error::other(format!(
            "{n} error(s): echoes did not match or the connection failed"
        ))),
    }
}

/// How progress is shown while the run goes on (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressMode {
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// One plain line a second.
    Lines,
    /// Nothing (tests).
    Quiet,
}

/// Opens the connections, runs the phases and gathers the results.
pub(crate) fn execute(settings: &Settings, progress: ProgressMode) -> io::Result<Results> {
    let request = ClientRequest::new(&settings.url).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {e}", settings.url),
        )
    })?;
    // RFC 6455 §4.1 step 5: wss:// runs the handshake over TLS.
    let tls_config = if request.is_secure() {
        let config = tls::client_config(tls::root_store(&settings.cas)?)?;
        if settings.mode == Mode::Handshakes {
            // Every setup a full TLS handshake, as a new client's is.
            let mut full = (*config).clone();
            full.resumption = rustls::client::Resumption::disabled();
            Some(Arc::new(full))
        } else {
            Some(config)
        }
    } else {
        None
    };
    let addr = (request.host(), request.port())
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address")
        })?;
    report::check_fd_limit(settings.connections)?;
    let server_pid = settings.server_pid;
    let server_before = server_pid.map(ProcSample::read).transpose()?; // fails early on a bad pid
    let client_before = ProcSample::read_self().ok();
    let started = SystemTime::now();

    let mut engine = Engine::new(settings, tls_config)?;
    let total = match settings.mode {
        Mode::Echo | Mode::Handshakes => settings.warmup + settings.duration,
        Mode::Idle => settings.hold,
    };
    let mut progress = Progress::new(progress, total, settings.size);
    let open_start = Instant::now();
    engine.open_all(settings.connections, addr, &request, &mut progress)?;
    let open_time = open_start.elapsed();
    let opened = Instant::now();
    let mut results = Results::new(settings.clone(), started, open_time);

    match settings.mode {
        Mode::Echo | Mode::Handshakes => {
            let measure_start = opened + settings.warmup;
            let measure_end = measure_start + settings.duration;
            engine.start(opened, measure_start, measure_end);
            progress.phase("warmup");
            engine.run_until(measure_start, &mut progress, |_| false)?;
            let client_start = ProcSample::read_self().ok();
            let server_start = sample_server(server_pid);
            let cpu_start = Instant::now();
            progress.phase("measure");
            engine.run_until(measure_end, &mut progress, |_| false)?;
            let cpu_window = cpu_start.elapsed();
            let client_end = ProcSample::read_self().ok();
            let server_end = sample_server(server_pid);
            progress.phase("drain");
            let drain_until = Instant::now() + DRAIN_TIMEOUT;
            engine.run_until(drain_until, &mut progress, |e| e.outstanding() == 0)?;
            let missing = engine.outstanding();
            if missing > 0 {
                engine.errors.count(
                    Kind::Missing,
                    format!(
                        "{missing} message(s) not echoed within {}s of the end",
                        DRAIN_TIMEOUT.as_secs()
                    ),
                );
            }
            results.cpu_window = cpu_window;
            if let (Some(a), Some(b)) = (client_start, client_end) {
                results.client_cpu = Some(b.cpu.saturating_sub(a.cpu));
            }
            if let (Some(pid), Some(before), Some(a), Some(b)) =
                (server_pid, server_before, server_start, server_end)
            {
                results.server = Some(ServerStats {
                    pid,
                    cpu: b.cpu.saturating_sub(a.cpu),
                    rss_before: before.rss,
                    rss_after: b.rss,
                });
            }
        }
        Mode::Idle => {
            let server_open = sample_server(server_pid);
            if let Some(s) = server_open {
                progress.note(&format!(
                    "{} connections open; server RSS {}",
                    settings.connections,
                    report::bytes(s.rss)
                ));
            }
            progress.phase("hold");
            engine.run_until(opened + settings.hold, &mut progress, |_| false)?;
            let client_end = ProcSample::read_self().ok();
            let server_end = sample_server(server_pid);
            results.cpu_window = open_time + opened.elapsed();
            if let (Some(a), Some(b)) = (client_before, client_end) {
                results.client_cpu = Some(b.cpu.saturating_sub(a.cpu));
            }
            if let (Some(pid), Some(before), Some(b)) = (server_pid, server_before, server_end) {
                results.server = Some(ServerStats {
                    pid,
                    cpu: b.cpu.saturating_sub(before.cpu),
                    rss_before: before.rss,
                    rss_after: b.rss,
                });
            }
            results.measured = opened.elapsed();
        }
    }

    progress.phase("close");
    engine.close_all();
    let close_until = Instant::now() + CLOSE_TIMEOUT;
    engine.run_until(close_until, &mut progress, |e| e.live == 0)?;
    if engine.live > 0 {
        let n = engine.live;
        engine.errors.count(
            Kind::UncleanClose,
            format!("{n} connection(s) not closed by the server within the close timeout"),
        );
    }
    progress.finish();

    if settings.mode != Mode::Idle {
        results.measured = settings.duration;
        results.messages = engine.measured;
        results.latency = Some(engine.hist);
    }
    results.errors = engine.errors;
    Ok(results)
}

/// The server's figures now; a server that is gone by now costs only its figures.
fn sample_server(pid: Option<u32>) -> Option<ProcSample> {
    let pid = pid?;
    ProcSample::read(pid)
        .map_err(|e| log!(Level::Warn, "server pid {pid}: {e}"))
        .ok()
}

/// Every payload is a window of one pseudo-random tape: the window of message `seq`
/// on connection `conn` starts at `(conn * 7919 + seq) mod 65521`. Consecutive messages
/// of a connection start one byte apart and repeat only every 65521 messages, so a lost,
/// repeated, reordered or foreign echo differs from the expected one (for payloads of a
/// few bytes or more), and neither sending nor checking computes anything per byte.
#[derive(Debug)]
pub(crate) struct Tape {
    /// ASCII letters, digits and `-_` for text (so every window is UTF-8), any byte
    /// for binary.
    data: String,
    bytes: Vec<u8>,
    size: usize,
    text: bool,
}

const TAPE_PERIOD: u64 = 65_521;
const TEXT_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Tape {
    pub(crate) fn new(size: usize, text: bool) -> Self {
        let len = size + usize::try_from(TAPE_PERIOD).unwrap_or(usize::MAX);
        let mut state = 0x5753_656E_6769_6E65; // "WSengine"
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            for b in splitmix64(&mut state).to_le_bytes() {
                if bytes.len() < len {
                    bytes.push(if text {
                        TEXT_ALPHABET[usize::from(b & 63)]
                    } else {
                        b
                    });
                }
            }
        }
        let (data, bytes) = if text {
            (String::from_utf8(bytes).unwrap_or_default(), Vec::new())
        } else {
            (String::new(), bytes)
        };
        Self {
            data,
            bytes,
            size,
            text,
        }
    }

    fn start(conn: u32, seq: u64) -> usize {
        let offset = (u64::from(conn) * 7919 + seq % TAPE_PERIOD) % TAPE_PERIOD;
        usize::try_from(offset).unwrap_or(0)
    }

    /// The payload of message `seq` on connection `conn`.
    pub(crate) fn payload(&self, conn: u32, seq: u64) -> &[u8] {
        let start = Self::start(conn, seq);
        if self.text {
            &self.data.as_bytes()[start..start + self.size]
        } else {
            &self.bytes[start..start + self.size]
        }
    }

    fn send(&self, core: &mut Connection, conn: u32, seq: u64) -> Result<(), wsengine::SendError> {
        let start = Self::start(conn, seq);
        if self.text {
            core.send_text(&self.data[start..start + self.size])
        } else {
            core.send_binary(&self.bytes[start..start + self.size])
        }
    }

    /// Checks one received event against message `seq` of `conn`: `None` if it is the
    /// exact echo, otherwise what is wrong.
    pub(crate) fn check(&self, conn: u32, seq: u64, event: &Event) -> Option<String> {
        let (got, text, last) = match event {
            Event::Binary { data, last } => (&data[..], false, *last),
            Event::Text { data, last } => (data.as_bytes(), true, *last),
            other => return Some(format!("expected an echo, got {other:?}")),
        };
        let kind = |t: bool| if t { "text" } else { "binary" };
        if !last {
            return Some("a partial message (whole delivery expected)".into());
        }
        if text != self.text {
            return Some(format!(
                "message {seq}: sent {}, got {} back",
                kind(self.text),
                kind(text)
            ));
        }
        let expected = self.payload(conn, seq);
        if got == expected {
            return None;
        }
        if got.len() != expected.len() {
            return Some(format!(
                "message {seq}: sent {} bytes, got {} back",
                expected.len(),
                got.len()
            ));
        }
        let at = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        Some(format!(
            "message {seq}: {} of {} bytes differ, the first at byte {at} (0x{:02x}, sent 0x{:02x})",
            got.iter().zip(expected).filter(|(a, b)| a != b).count(),
            got.len(),
            got[at],
            expected[at]
        ))
    }
}

/// Caps the send rate: a token bucket holding at most 10 ms of sends.
#[derive(Debug)]
struct Pacer {
    per_sec: f64,
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: u64, now: Instant) -> Self {
        let per_sec = rate as f64;
        let burst = (per_sec / 100.0).max(1.0);
        Self {
            per_sec,
            tokens: 1.0,
            burst,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if self.tokens < 1.0 {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is due.
    fn next(&self) -> Instant {
        let wait = ((1.0 - self.tokens) / self.per_sec).max(0.0);
        self.last + Duration::from_secs_f64(wait)
    }
}

struct Conn {
    /// When its TCP connect started (handshake mode: the setup's latency).
    started: Instant,
    stream: TcpStream,
    /// TLS between the socket and the core (`wss://`).
    tls: Option<TlsSession>,
    core: Connection,
    id: u32,
    open: bool,
    /// We sent our Close.
    closing: bool,
    next_send: u64,
    next_echo: u64,
    /// Send times of the messages in flight, by `seq % in_flight`.
    sent_at: Box<[Instant]>,
    /// In the pacer's queue.
    queued: bool,
    /// In `again` (at most once: a connection pushed there again on every turn it spent
    /// its budget, besides its readiness event, was read once more per earlier turn).
    in_again: bool,
    /// An event said the peer's stream ended (or the socket failed): read until `Ok(0)`
    /// or `WouldBlock` rather than stop at a short read, which may leave that EOF
    /// unread with no further edge to report it.
    hup: bool,
}

/// The generator: the connections, the pacing and the counters.
struct Engine {
    poll: Poll,
    events: Events,
    conns: Vec<Option<Conn>>,
    /// Connections not yet dropped.
    live: usize,
    /// Connections whose handshake completed.
    opened: usize,
    /// Reads of every connection land here before going into its core.
    scratch: Vec<u8>,
    /// Connections whose read budget ran out with data left.
    again: Vec<usize>,
    /// The connections to serve in this turn, and whether to read from each.
    batch: Vec<(usize, bool)>,
    tape: Tape,
    in_flight: u64,
    config: Config,
    /// Sending stops at this instant (`None`: not started).
    send_until: Option<Instant>,
    /// Echoes received in `[window.0, window.1)` are measured.
    window: Option<(Instant, Instant)>,
    /// Latency of the measured echoes, in nanoseconds.
    hist: Histogram<u64>,
    /// Echoes received in the window.
    measured: u64,
    /// Echoes received in all phases (for progress).
    echoed: u64,
    pacer: Option<Pacer>,
    waiting: VecDeque<usize>,
    errors: Errors,
    /// The TLS configuration of every connection (`wss://`).
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Handshake mode: connections close once open and open again.
    cycling: bool,
    /// Where connections go, and with which request (set by `open_all`).
    target: Option<(SocketAddr, ClientRequest)>,
}

impl Engine {
    fn new(settings: &Settings, tls: Option<Arc<rustls::ClientConfig>>) -> io::Result<Self> {
        let mut config = Config::default();
        let size = u64::try_from(settings.size).unwrap_or(u64::MAX);
        config.max_message_size = config.max_message_size.max(size);
        config.max_frame_size = config.max_frame_size.max(size);
        // Room for every message in flight (plus headers), so sends never block.
        config.max_send_buffer = config
            .max_send_buffer
            .max((settings.size + 14) * settings.in_flight + (64 << 10));
        config.handshake_timeout = None; // OPEN_TIMEOUT covers all of them
        if settings.deflate {
            config.deflate = Some(wsengine::extensions::deflate::DeflateConfig::default());
        }
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| io::Error::other(format!("histogram: {e}")))?;
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Vec::with_capacity(settings.connections),
            live: 0,
            opened: 0,
            // A whole receive buffer's worth (the default 64 KiB plus a frame header):
            // a 64 KiB echo then arrives in one read.
            scratch: vec![0; (64 << 10) + wsengine::frame::MAX_HEADER_LEN],
            again: Vec::new(),
            batch: Vec::with_capacity(1024),
            tape: Tape::new(settings.size, settings.text),
            in_flight: u64::try_from(settings.in_flight).unwrap_or(1),
            config,
            send_until: None,
            window: None,
            hist,
            measured: 0,
            echoed: 0,
            pacer: settings.rate.map(|r| Pacer::new(r, Instant::now())),
            waiting: VecDeque::with_capacity(settings.connections),
            errors: Errors::default(),
            tls,
            cycling: settings.mode == Mode::Handshakes,
            target: None,
        })
    }

    /// Connects `n` times (blocking TCP connects, serving the loop every
    /// [`CONNECT_BATCH`]), then waits for every opening handshake.
    fn open_all(
        &mut self,
        n: usize,
        addr: SocketAddr,
        request: &ClientRequest,
        progress: &mut Progress,
    ) -> io::Result<()> {
        progress.phase("open");
        self.target = Some((addr, request.clone()));
        for i in 0..n {
            let conn = self.connect(i, addr, request).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "connection {} of {n} to {addr}: {e} ({} open)",
                        i + 1,
                        self.opened
                    ),
                )
            })?;
            self.conns.push(Some(conn));
            self.live += 1;
            if (i + 1) % CONNECT_BATCH == 0 {
                self.turn(Some(Duration::ZERO))?;
            }
            let deadline = Instant::now() + OPEN_TIMEOUT;
            while self.live == i + 1
                && self.live - self.opened >= MAX_OPENING
                && Instant::now() < deadline
            {
                self.turn(Some(Duration::from_millis(10)))?;
            }
            let opened = self.opened;
            progress.tick(Instant::now(), 0, || format!("{opened}/{n} open"));
        }
        let deadline = Instant::now() + OPEN_TIMEOUT;
        self.run_until(deadline, progress, |e| e.opened == n || e.live < n)?;
        if self.opened < n || self.errors.total() > 0 {
            let why = self.errors.samples.first().cloned().unwrap_or_else(|| {
                format!(
                    "timed out after {}s waiting for handshakes",
                    OPEN_TIMEOUT.as_secs()
                )
            });
            progress.finish();
            return Err(io::Error::other(format!(
                "only {} of {n} connections opened: {why}",
                self.opened
            )));
        }
        Ok(())
    }

    /// A new connection in slot `i`: a blocking TCP connect, registered with the poll,
    /// its core (and TLS session), and its opening handshake written.
    fn connect(&mut self, i: usize, addr: SocketAddr, request: &ClientRequest) -> io::Result<Conn> {
        let started = Instant::now();
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
        let tls = match &self.tls {
            Some(config) => Some(TlsSession::client(config, request.host())?),
            None => None,
        };
        let mut conn = Conn {
            started,
            stream,
            tls,
            core,
            id: u32::try_from(i).unwrap_or(u32::MAX),
            open: false,
            closing: false,
            next_send: 0,
            next_echo: 0,
            sent_at: vec![Instant::now(); usize::try_from(self.in_flight).unwrap_or(1)]
                .into_boxed_slice(),
            queued: false,
            in_again: false,
            hup: false,
        };
        flush(&mut conn)?;
        Ok(conn)
    }

    /// Handshake mode: slot `i`'s connection is over; open the next one while sending.
    fn reopen(&mut self, i: usize) {
        let sending = self.send_until.is_some_and(|t| Instant::now() < t);
        let Some((addr, request)) = self.target.clone() else {
            return;
        };
        if !self.cycling || !sending {
            return;
        }
        match self.connect(i, addr, &request) {
            Ok(conn) => {
                self.conns[i] = Some(conn);
                self.live += 1;
            }
            Err(e) => self.errors.count(
                Kind::Io,
                format!("connection {}: reconnecting to {addr}: {e}", i + 1),
            ),
        }
    }

    /// Starts sending on every connection; sending stops at `send_until`, echoes in
    /// `[measure_start, send_until)` are measured.
    fn start(&mut self, now: Instant, measure_start: Instant, send_until: Instant) {
        self.send_until = Some(send_until);
        self.window = Some((measure_start, send_until));
        if let Some(p) = &mut self.pacer {
            p.last = now;
        }
        for i in 0..self.conns.len() {
            self.settle(i, now);
        }
    }

    /// Echoes still expected.
    fn outstanding(&self) -> u64 {
        self.conns
            .iter()
            .flatten()
            .map(|c| c.next_send - c.next_echo)
            .sum()
    }

    /// Starts the closing handshake on every connection.
    fn close_all(&mut self) {
        self.send_until = None;
        self.waiting.clear();
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
            let (errors, opened, live) = (self.errors.total(), self.opened, self.live);
            progress.tick(now, self.echoed, || {
                format!("{errors} errors, {opened} opened, {live} live")
            });
            let mut wake = deadline.min(progress.next);
            if !self.waiting.is_empty()
                && let Some(p) = &self.pacer
            {
                wake = wake.min(p.next());
            }
            let timeout = if self.again.is_empty() {
                wake.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            self.turn(Some(timeout))?;
        }
    }

    /// One poll: serves every ready connection and the pacer's queue.
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        // Serving needs `&mut self`: copy the ready list out (no allocation once the
        // buffer has grown).
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
            if hup && let Some(Some(c)) = self.conns.get_mut(i) {
                c.hup = true;
            }
            batch.push((i, hup || e.is_readable()));
        }
        for &(i, readable) in &batch {
            self.service(i, readable);
        }
        self.batch = batch;
        if !self.waiting.is_empty() {
            let now = Instant::now();
            while let Some(&i) = self.waiting.front() {
                if !self.pacer.as_mut().is_some_and(|p| p.take(now)) {
                    break;
                }
                self.waiting.pop_front();
                if let Some(c) = self.conns[i].as_mut() {
                    c.queued = false;
                }
                self.send_one(i, now);
                self.settle(i, now);
            }
        }
        Ok(())
    }

    /// Reads, verifies, sends and writes for connection `i`.
    fn service(&mut self, i: usize, readable: bool) {
        if self
            .conns
            .get(i)
            .is_some_and(|c| c.as_ref().is_some_and(|c| c.tls.is_some()))
        {
            return self.service_tls(i, readable);
        }
        let mut budget = READ_BUDGET;
        let mut failed = None;
        let mut now = None;
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
                        // Events now: they are timed by this read.
                        let t = Instant::now();
                        now = Some(t);
                        self.events_of(i, t);
                        let Some(Some(c)) = self.conns.get(i) else {
                            return;
                        };
                        if (n < cap && !c.hup) || c.core.should_close_transport() {
                            break; // drained: the next data raises a new edge
                        }
                        budget -= 1;
                        if budget == 0 {
                            if let Some(Some(c)) = self.conns.get_mut(i)
                                && !c.in_again
                            {
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
            self.drop_conn(i, Kind::Io, format!("socket error: {e}"));
            return;
        }
        self.settle(i, now.unwrap_or_else(Instant::now));
    }

    /// [`service`](Self::service) through the connection's TLS session: decrypted bytes
    /// left over first, then one read of records at a time (rustls reads at most 4 KiB
    /// more than it holds), until the socket would block or the budget is spent.
    fn service_tls(&mut self, i: usize, readable: bool) {
        let mut budget = READ_BUDGET * 4;
        let mut failed = None;
        let mut now = None;
        loop {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return;
            };
            let Some(session) = c.tls.as_mut() else {
                return;
            };
            let mut moved = session.deliver(&mut c.core);
            // Whether this round got anywhere: bytes to the core, or records read (a
            // partial record delivers nothing yet, but the socket may hold the rest:
            // read on to `WouldBlock`, since the next edge comes only with new data).
            let mut progressed = moved > 0;
            if moved == 0 && readable && !session.at_end() {
                if budget == 0 {
                    if !c.in_again {
                        c.in_again = true;
                        self.again.push(i);
                    }
                    break;
                }
                budget -= 1;
                match session.receive(&mut c.stream) {
                    Ok(_) => {
                        progressed = true;
                        moved = session.deliver(&mut c.core);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let at_end = session.at_end();
            if at_end {
                c.core.recv_eof();
            }
            if moved > 0 || at_end {
                let t = Instant::now();
                now = Some(t);
                self.events_of(i, t);
            }
            if !progressed || at_end {
                break;
            }
        }
        if let Some(e) = failed {
            let why = if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                format!("TLS: {}", tls::describe_io_error(&e))
            } else {
                format!("socket error: {e}")
            };
            self.drop_conn(i, Kind::Io, why);
            return;
        }
        self.settle(i, now.unwrap_or_else(Instant::now));
    }

    /// Hands connection `i`'s pending events to the checks, then refills its window.
    fn events_of(&mut self, i: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        loop {
            let event = match c.core.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    // Sticky: the connection is over once its Close frame is out.
                    let kind = match e {
                        wsengine::Error::Handshake(_) => Kind::Handshake,
                        _ => Kind::Protocol,
                    };
                    if !c.closing {
                        c.closing = true;
                        self.errors.count(kind, format!("connection {}: {e}", c.id));
                    }
                    return;
                }
            };
            match event {
                Event::Accepted(_) => {
                    c.open = true;
                    self.opened += 1;
                    // `close_all` came while this one was still opening (its close was
                    // refused then): close it now.
                    if c.closing {
                        let _ = c.core.close(CloseCode::NORMAL, "");
                    }
                    // Handshake mode: a setup in the window is measured, connect to 101.
                    if self.cycling
                        && let Some((from, to)) = self.window
                        && now >= from
                        && now < to
                    {
                        let latency = now.saturating_duration_since(c.started);
                        self.hist.saturating_record(
                            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
                        );
                        self.measured += 1;
                    }
                }
                Event::Text { .. } | Event::Binary { .. } => {
                    if c.next_echo == c.next_send {
                        self.errors.count(
                            Kind::Mismatch,
                            format!("connection {}: a message nobody sent: {event:?}", c.id),
                        );
                        continue;
                    }
                    let seq = c.next_echo;
                    c.next_echo += 1;
                    self.echoed += 1;
                    if let Some(what) = self.tape.check(c.id, seq, &event) {
                        self.errors
                            .count(Kind::Mismatch, format!("connection {}: {what}", c.id));
                    }
                    if let Some((from, to)) = self.window
                        && now >= from
                        && now < to
                    {
                        let slot = usize::try_from(seq % self.in_flight).unwrap_or(0);
                        let latency = now.saturating_duration_since(c.sent_at[slot]);
                        self.hist.saturating_record(
                            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
                        );
                        self.measured += 1;
                    }
                }
                Event::Close(frame) if !c.closing => {
                    self.errors.count(
                        Kind::Closed,
                        format!("connection {}: the server closed it ({frame:?})", c.id),
                    );
                    c.closing = true;
                }
                Event::Closed { code, clean } => {
                    if !c.closing {
                        c.closing = true;
                        self.errors.count(
                            Kind::Closed,
                            format!(
                                "connection {}: ended without a close handshake ({code})",
                                c.id
                            ),
                        );
                    } else if !clean {
                        self.errors.count(
                            Kind::UncleanClose,
                            format!("connection {}: closing handshake incomplete ({code})", c.id),
                        );
                    }
                }
                _ => {}
            }
        }
        self.fill(i, now);
    }

    /// Sends until connection `i` has `in_flight` messages out (or the pacer says wait).
    fn fill(&mut self, i: usize, now: Instant) {
        loop {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return;
            };
            let sending = self.send_until.is_some_and(|t| now < t);
            if self.cycling {
                // Handshake mode: close as soon as it is open; `settle` opens the next.
                if sending && c.open && !c.closing {
                    c.closing = true;
                    let _ = c.core.close(CloseCode::NORMAL, "");
                }
                return;
            }
            if !sending || !c.open || c.closing || c.next_send - c.next_echo >= self.in_flight {
                return;
            }
            if let Some(p) = &mut self.pacer
                && !p.take(now)
            {
                if !c.queued {
                    c.queued = true;
                    self.waiting.push_back(i);
                }
                return;
            }
            self.send_one(i, now);
        }
    }

    fn send_one(&mut self, i: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        if !c.open || c.closing {
            return;
        }
        let seq = c.next_send;
        match self.tape.send(&mut c.core, c.id, seq) {
            Ok(()) => {
                let slot = usize::try_from(seq % self.in_flight).unwrap_or(0);
                c.sent_at[slot] = now;
                c.next_send += 1;
            }
            Err(e) => {
                c.closing = true;
                self.errors.count(
                    Kind::Protocol,
                    format!("connection {}: send failed: {e:?}", c.id),
                );
            }
        }
    }

    /// After anything touched connection `i`: events, refill, write, and drop it once
    /// the core says the transport is done.
    fn settle(&mut self, i: usize, now: Instant) {
        self.events_of(i, now);
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        if let Err(e) = flush(c) {
            self.drop_conn(i, Kind::Io, format!("socket error: {e}"));
            return;
        }
        let Some(Some(c)) = self.conns.get(i) else {
            return;
        };
        if c.core.should_close_transport() {
            if let Some(mut c) = self.conns[i].take() {
                let _ = self.poll.registry().deregister(&mut c.stream);
            }
            self.live -= 1;
            self.reopen(i);
        }
    }

    fn drop_conn(&mut self, i: usize, kind: Kind, why: String) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.live -= 1;
            self.errors
                .count(kind, format!("connection {}: {why}", c.id));
        }
    }
}

/// Writes the transmit buffer until it is empty or the socket would block (a writable
/// edge then brings the connection back).
fn flush(c: &mut Conn) -> io::Result<()> {
    if let Some(session) = c.tls.as_mut() {
        return session.flush(&mut c.stream, &mut c.core).map(drop);
    }
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

/// Progress on stderr: an indicatif bar on a terminal, a plain line a second otherwise.
struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    phase: &'static str,
    start: Instant,
    /// When the next tick is due.
    next: Instant,
    interval: Duration,
    /// For rates: the echo count and time of the previous tick.
    last: Option<(u64, Instant)>,
    size: usize,
}

impl Progress {
    /// `total`: how long the run is expected to take (the bar's length); `size`: the
    /// payload size the MB/s figure counts per message.
    fn new(mode: ProgressMode, total: Duration, size: usize) -> Self {
        let now = Instant::now();
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(u64::try_from(total.as_millis()).unwrap_or(u64::MAX).max(1)),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            if let Ok(style) =
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {elapsed:>4} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let interval = match mode {
            ProgressMode::Bar => Duration::from_millis(250),
            _ => Duration::from_secs(1),
        };
        Self {
            mode,
            bar,
            phase: "open",
            start: now,
            next: now + interval,
            interval,
            last: None,
            size,
        }
    }

    fn phase(&mut self, phase: &'static str) {
        self.phase = phase;
        if phase == "warmup" || phase == "hold" {
            self.start = Instant::now();
            self.last = None;
        }
        if let Some(bar) = &self.bar {
            bar.set_prefix(phase);
        }
    }

    fn note(&self, line: &str) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.println(line),
            (None, ProgressMode::Lines) => crate::stderr_line(format_args!("{line}")),
            _ => {}
        }
    }

    /// At most every `interval`: the echo rate since the last tick and what `line`
    /// says.
    fn tick(&mut self, now: Instant, echoed: u64, line: impl FnOnce() -> String) {
        if now < self.next || self.mode == ProgressMode::Quiet {
            return;
        }
        self.next = now + self.interval;
        let text = line();
        let rate = match self.last {
            Some((n, t)) if now > t && echoed > 0 => {
                let per_sec = (echoed - n) as f64 / (now - t).as_secs_f64();
                let mb = per_sec * self.size as f64 / 1e6;
                format!("{} msg/s, {mb:.2} MB/s, ", report::count(per_sec))
            }
            _ => String::new(),
        };
        self.last = Some((echoed, now));
        let elapsed = now.saturating_duration_since(self.start);
        match &self.bar {
            Some(bar) => {
                bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                bar.set_message(format!("{rate}{text}"));
            }
            None => crate::stderr_line(format_args!(
                "[{:>6.1}s {:>7}] {rate}{text}",
                elapsed.as_secs_f64(),
                self.phase
            )),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests;
