//! The `wsengine` command: an echo/broadcast server (on the mio event loop of
//! `wsengine-mio`, or with `--runtime tokio` on `wsengine-tokio`), a line-based client and
//! the Autobahn fuzzingserver client, and the load generator `wsengine load` (src/load/).

// The command reads the clock and owns sockets, like the driver.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use wsengine::extensions::deflate::DeflateConfig;
use wsengine::handshake::AllowedOrigins;
use wsengine::{Accept, ClientRequest, CloseCode, Event, Keepalive, Message, Request, SendError};
use wsengine_mio::tls::{self, ServerCertificates};
use wsengine_mio::{
    ConnId, Context, Decision, Disconnect, DriverConfig, EventLoop, Handler, SlowConsumer,
    SlowConsumerAction,
};

/// The binary's global allocator (features of this crate; the library crates never choose
/// one): mimalloc with `mimalloc`, jemalloc with `jemalloc` (mimalloc wins if both are
/// on), the system allocator (glibc malloc) with neither. Chosen by how much memory each
/// gives back after the stuffed-then-closed attack of benches/hostile/ (issue #14).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its initialisation (tikv-jemalloc-sys prefixes its
/// symbols with `_rjem_`, so this is its `malloc_conf`; the environment variable
/// `_RJEM_MALLOC_CONF` still overrides it): unused dirty pages go back to the kernel at
/// once (the default waits 10 s, and only while the allocator is called). With the
/// defaults, 50 connections stuffed then closed (benches/hostile/) left 75-79 MiB of
/// 220 MiB 10 s later; a background thread purging after 1 s gave it back within
/// 2.4 s, but the broadcast-stall attack then grew RSS by 28 MiB (16 MiB target).
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
// A NUL-terminated string jemalloc reads as `const char *`; exporting a symbol is unsafe.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: &[u8; 34] = b"dirty_decay_ms:0,muzzy_decay_ms:0\0";

/// Log levels, filtered by `RUST_LOG` (error, warn, info, debug, trace; default info).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

fn max_level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let filter = std::env::var("RUST_LOG")
            .unwrap_or_default()
            .to_ascii_lowercase();
        // Accept `level` or `target=level` lists; the most verbose level wins.
        filter
            .split(',')
            .filter_map(|part| match part.rsplit('=').next().unwrap_or("").trim() {
                "error" | "off" => Some(Level::Error),
                "warn" => Some(Level::Warn),
                "info" => Some(Level::Info),
                "debug" | "trace" => Some(Level::Debug),
                _ => None,
            })
            .max()
            .unwrap_or(Level::Info)
    })
}

/// Writes one line to stderr, ignoring failure: a closed stderr (`... 2>&1 | head -1`)
/// must not panic the thread that logs (`eprintln!` does), which would take down the
/// event loop or the signal thread (and with it the drain on SIGTERM).
fn stderr_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $level <= max_level() {
            crate::stderr_line(format_args!("[{:<5}] {}", format!("{:?}", $level).to_uppercase(), format_args!($($arg)*)));
        }
    };
}

/// Per-connection lines (upgrades, closes, failures) are rate-limited: a flood of bad
/// connections (thousands a second on the TLS port, say) must not become a flood of log
/// lines, each a write to stderr. Up to this many a second; the rest are counted and
/// said in one line when the next second begins.
const CONNECTION_LINES_PER_SECOND: u32 = 50;

/// Whether a per-connection line may be written now (see
/// [`CONNECTION_LINES_PER_SECOND`]); prints the count of lines held back in the last
/// window when a new one starts.
fn connection_line_allowed() -> bool {
    struct Window {
        start: Option<std::time::Instant>,
        written: u32,
        held_back: u64,
    }
    static WINDOW: std::sync::Mutex<Window> = std::sync::Mutex::new(Window {
        start: None,
        written: 0,
        held_back: 0,
    });
    let mut w = WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    let now = std::time::Instant::now();
    if w.start
        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
    {
        if w.held_back > 0 {
            stderr_line(format_args!(
                "[WARN ] {} connection log line(s) held back (more than {CONNECTION_LINES_PER_SECOND} a second)",
                w.held_back
            ));
        }
        *w = Window {
            start: Some(now),
            written: 0,
            held_back: 0,
        };
    }
    if w.written < CONNECTION_LINES_PER_SECOND {
        w.written += 1;
        true
    } else {
        w.held_back += 1;
        false
    }
}

/// [`log!`] for a line about one connection: rate-limited (see
/// [`CONNECTION_LINES_PER_SECOND`]).
macro_rules! conn_log {
    ($level:expr, $($arg:tt)*) => {
        if $level <= max_level() && connection_line_allowed() {
            crate::stderr_line(format_args!("[{:<5}] {}", format!("{:?}", $level).to_uppercase(), format_args!($($arg)*)));
        }
    };
}

// `wsengine client` (src/client.rs).
mod client;

// `wsengine hub`, the application server (src/hub.rs).
mod hub;

// `wsengine load`, the load generator (src/load/).
mod load;

// `wsengine serve --runtime tokio` (src/serve_tokio.rs).
mod serve_tokio;

#[derive(Parser, Debug)]
#[command(
    name = "wsengine",
    version,
    about = "A sans-IO WebSocket (RFC 6455) engine: server, client and test tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a WebSocket server: echo (the Autobahn agent) or broadcast (a chat room).
    Serve {
        /// Address to listen on: IP:PORT (an IPv6 address in brackets), HOST:PORT (a
        /// name is resolved, its first IPv4 address preferred: localhost:9001) or :PORT
        /// (every IPv4 interface, 0.0.0.0, as in Go). Port 0 takes a free port; the log
        /// line `listening on ws://ADDR` says which.
        #[arg(long, default_value = "127.0.0.1:9001", value_parser = parse_listen)]
        listen: SocketAddr,
        /// What to do with each received message.
        #[arg(long, value_enum, default_value_t = Mode::Echo)]
        mode: Mode,
        /// Most concurrent connections (at least 1); more are refused with 503.
        #[arg(long, default_value_t = 10_000, value_parser = parse_count)]
        max_connections: usize,
        /// Largest accepted message (bytes, or with a suffix as --max-memory: 64KiB,
        /// 16M); larger ones close with 1009 and a reason saying the limit.
        #[arg(long, default_value = "16MiB", value_parser = parse_size)]
        max_message_size: usize,
        /// A subprotocol this server speaks (repeatable; RFC 6455 §1.9, §4.2.2): of the
        /// subprotocols a client offers (Sec-WebSocket-Protocol), the first one in the
        /// client's order that is given here is chosen and answered. A client offering
        /// none of them (or none at all) is accepted without a subprotocol; it may then
        /// close the connection itself.
        #[arg(long = "protocol", value_name = "NAME", value_parser = parse_protocol)]
        protocols: Vec<String>,
        /// Do not negotiate permessage-deflate (RFC 7692), which is accepted by default.
        #[arg(long)]
        no_deflate: bool,
        /// The event loop: the mio driver, or the tokio adapter on a current-thread
        /// runtime (echo mode only).
        #[arg(long, value_enum, default_value_t = Runtime::Mio)]
        runtime: Runtime,
        /// Listen backlog: connections the kernel completes and holds until accepted
        /// (at least 1; capped by net.core.somaxconn).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
        backlog: u32,
        /// One memory budget for all connections' buffers (bytes, or with a suffix: KiB,
        /// MiB, GiB, K, M, G; KB, MB, GB are powers of 1000). Over it, the connections
        /// holding the most are closed at once: those making no progress for a second
        /// with 1008 (policy violation) first, then, if all make progress (overload),
        /// the largest with 1013 (try again later). mio runtime only.
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        max_memory: usize,
        /// What to do with a client that cannot keep up with what others send it
        /// (broadcast): `close` it at once with 1008 (policy violation), or `drop`
        /// messages for it while it is over, counted. Ping, Pong and Close frames are
        /// never dropped. mio runtime only.
        #[arg(long, value_enum, default_value_t = SlowConsumerArg::Close)]
        slow_consumer: SlowConsumerArg,
        /// The slow-consumer threshold: bytes queued for a client before
        /// --slow-consumer applies (same suffixes as --max-memory). Stalled readers each
        /// hold up to this much before they are closed.
        #[arg(long, default_value = "512KiB", value_parser = parse_size)]
        slow_consumer_max_queued: usize,
        /// Serve TLS (wss://) with this certificate chain (PEM, the server's certificate
        /// first); needs --tls-key. SIGHUP re-reads both files (open connections keep
        /// theirs; a pair that fails to load is logged and the old one stays).
        #[arg(long, requires = "tls_key", value_name = "CERT.pem")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM: PKCS #8, PKCS #1 or SEC1).
        #[arg(long, requires = "tls_cert", value_name = "KEY.pem")]
        tls_key: Option<PathBuf>,
        /// Serve clients that ask for NAME (SNI) with their own certificate and key
        /// (repeatable); others, and clients that send no name, get --tls-cert. SIGHUP
        /// re-reads these too.
        #[arg(long, requires = "tls_cert", value_name = "NAME,CERT.pem,KEY.pem", value_parser = parse_sni)]
        tls_sni: Vec<(String, PathBuf, PathBuf)>,
        /// On SIGTERM or SIGINT, close every connection with 1001 (going away) and wait
        /// this long for the closing handshakes before exiting 0 (e.g. 5s, 500ms; 0 does
        /// not wait, so the Close frames may not get out; a second signal exits at once,
        /// with status 1). Both runtimes.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        drain_timeout: Duration,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Connect, send each stdin line (or each -x message) as a message, print what
    /// arrives, close cleanly on EOF; the exit status says how the connection ended.
    Client(client::ClientArgs),
    /// Run every case of an Autobahn fuzzingserver as a client, echoing messages, then
    /// ask the server to write its reports. A server that sends no case count from
    /// /getCaseCount within 5 s (not a fuzzingserver) ends it with status 1.
    AutobahnClient {
        /// The fuzzingserver's base URL (ws:// or wss://).
        #[arg(long, default_value = "ws://127.0.0.1:9001")]
        server: String,
        /// For wss://: also trust the CA certificates in this PEM file (repeatable).
        #[arg(long = "ca", value_name = "CA.pem")]
        cas: Vec<PathBuf>,
        /// The agent name the reports use.
        #[arg(long, default_value = "wsengine")]
        agent: String,
        /// Do not offer permessage-deflate (RFC 7692), which is offered by default.
        #[arg(long)]
        no_deflate: bool,
    },
    /// Load-test an echo server: keep messages in flight on many connections, check
    /// every echoed byte, report messages/s, MB/s and latency percentiles (or, with
    /// --idle, hold idle connections to measure the server's memory per connection).
    Load(load::LoadArgs),
    /// Run the application server (docs/HUB-PROTOCOL.md): channels, JWT auth, history
    /// and recovery, presence, limits, an HTTP API and metrics, WebSocket at /ws, and
    /// where the upgrade is blocked SSE at /sse and long polling at /poll. Prints
    /// `listening on http://ADDR (WebSocket at ws://ADDR/ws)` on stdout once it listens;
    /// SIGTERM or SIGINT closes every session with 1001 and exits 0 (a second signal
    /// exits at once with 1); a configuration it cannot start with exits 2.
    Hub(hub::HubArgs),
}

/// Per-connection timers and limits of `serve` (the core's `Config`), for both runtimes.
/// Durations take a unit (500ms, 30s, 2m); `off` (or 0) turns a timer off.
#[derive(clap::Args, Debug)]
struct ConnectionArgs {
    /// Ping a client after this long without hearing from it (RFC 6455 §5.5.2).
    #[arg(long, default_value = "30s", value_parser = parse_optional_duration)]
    keepalive_interval: OptionalDuration,
    /// After that Ping, close the connection unless the client sends something within
    /// this time.
    #[arg(long, default_value = "10s", value_parser = parse_optional_duration)]
    keepalive_timeout: OptionalDuration,
    /// Time for the whole opening handshake (slowloris).
    #[arg(long, default_value = "10s", value_parser = parse_optional_duration)]
    handshake_timeout: OptionalDuration,
    /// A message must arrive whole within this time from its first frame, or the
    /// connection is closed with 1008 (a fragment left open pins memory).
    #[arg(long, default_value = "30s", value_parser = parse_optional_duration)]
    message_timeout: OptionalDuration,
    /// After our Close frame, how long to wait for the client's (RFC 6455 §7.1.1).
    #[arg(long, default_value = "5s", value_parser = parse_optional_duration)]
    close_timeout: OptionalDuration,
    /// Once a connection is over, how long what is still queued for a client that does
    /// not read may take to be written before the socket is closed anyway.
    #[arg(long, default_value = "5s", value_parser = parse_optional_duration)]
    flush_timeout: OptionalDuration,
    /// Largest decompressed size of a compressed message (permessage-deflate); larger
    /// ones close with 1009. Same suffixes as --max-memory.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    max_inflated_size: usize,
    /// Most bytes a second one connection may inflate (permessage-deflate); over it the
    /// connection stops taking compressed input until its budget is back (same
    /// suffixes as --max-memory, a rate per second; `off` by default).
    #[arg(long, default_value = "off", value_parser = parse_optional_bytes)]
    max_inflate_rate: OptionalBytes,
    /// Messages larger than this are sent uncompressed (permessage-deflate): compressing
    /// a large message costs CPU and a buffer of its size. Same suffixes as --max-memory.
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    max_compress_size: usize,
    /// Accept browsers only from this Origin (repeatable; `https://*.example.com` for
    /// subdomains). Others get HTTP 403; requests without an Origin header (not a
    /// browser) are accepted. Default: any Origin.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
}

impl ConnectionArgs {
    fn apply(self, config: &mut wsengine::Config) -> Result<(), String> {
        config.keepalive = match (self.keepalive_interval.0, self.keepalive_timeout.0) {
            (Some(interval), Some(timeout)) => Some(Keepalive { interval, timeout }),
            _ => None,
        };
        config.handshake_timeout = self.handshake_timeout.0;
        config.message_timeout = self.message_timeout.0;
        config.close_timeout = self.close_timeout.0;
        config.flush_timeout = self.flush_timeout.0;
        if let Some(deflate) = config.deflate.as_mut() {
            deflate.max_inflated_size = self.max_inflated_size;
            deflate.max_compress_size = self.max_compress_size;
            deflate.max_inflate_rate = self.max_inflate_rate.0;
        }
        if !self.allowed_origins.is_empty() {
            let list = AllowedOrigins::new(&self.allowed_origins)
                .map_err(|e| format!("--allowed-origin: {e}"))?;
            config.allowed_origins = Some(list);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// The mio event loop (wsengine_mio).
    Mio,
    /// The tokio adapter (wsengine_tokio), one task per connection.
    Tokio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SlowConsumerArg {
    /// Close the client with 1008 at once.
    Close,
    /// Skip messages for the client while it is over the threshold.
    Drop,
}

/// A byte count: digits, optionally followed by a unit (B, K/KiB, M/MiB, G/GiB: powers of
/// 1024; KB, MB, GB: powers of 1000), case-insensitive.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of bytes, like 1048576 or 1MiB"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "{other:?}: unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// A size that must be more than 0 (a limit of 0 bytes would refuse everything):
/// [`parse_bytes`] otherwise.
fn parse_size(text: &str) -> Result<usize, String> {
    match parse_bytes(text)? {
        0 => Err("must be more than 0 bytes".into()),
        n => Ok(n),
    }
}

/// A count that must be at least 1 (connections, messages in flight).
fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

/// A listening address (`serve --listen`, `hub --listen`): `IP:PORT`, `[IPv6]:PORT`,
/// `HOST:PORT` (resolved now; the first IPv4 address is preferred, so that `localhost`
/// is 127.0.0.1 whatever order the resolver gives) or `:PORT`, every IPv4 interface
/// (0.0.0.0), as Go's `net.Listen` reads it.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::{Ipv4Addr, ToSocketAddrs};
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let expected = || format!("{text:?}: expected HOST:PORT, IP:PORT, [IPv6]:PORT or :PORT");
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port.parse().map_err(|_| expected())?;
    if host.is_empty() {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    if host.contains(':') && !host.starts_with('[') {
        // An IPv6 address needs brackets to be told from its port.
        return Err(expected());
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{host}: no address"))
}

/// A subprotocol name for `serve --protocol`: an HTTP token (RFC 6455 §4.1 item 10:
/// "elements that comprise this value MUST be non-empty strings with characters in the
/// range U+0021 to U+007E not including separator characters").
fn parse_protocol(text: &str) -> Result<String, String> {
    const SEPARATORS: &str = "()<>@,;:\\\"/[]?={} \t";
    let token = !text.is_empty()
        && text
            .chars()
            .all(|c| ('\u{21}'..='\u{7e}').contains(&c) && !SEPARATORS.contains(c));
    if token {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?}: a subprotocol name is a token (printable ASCII, no separators)"
        ))
    }
}

/// Of the subprotocols a client offers, in its order of preference (RFC 6455 §4.1 item
/// 10), the first that the server speaks (§4.2.2 step 5: the server "selects one or
/// none of the acceptable protocols"); names compare exactly.
pub(crate) fn choose_protocol<'a>(offered: &'a [String], spoken: &[String]) -> Option<&'a str> {
    offered
        .iter()
        .find(|p| spoken.iter().any(|s| s == *p))
        .map(String::as_str)
}

/// `serve`'s answer to an upgrade on either runtime: the subprotocol of
/// [`choose_protocol`], if any, and the connection's log line (`who` names it).
pub(crate) fn accept_upgrade(
    who: std::fmt::Arguments<'_>,
    request: &Request,
    protocols: &[String],
) -> Accept {
    match choose_protocol(request.protocols(), protocols) {
        Some(protocol) => {
            conn_log!(
                Level::Info,
                "{who} upgrades {} (subprotocol {protocol})",
                request.path()
            );
            Accept::new().protocol(protocol)
        }
        None => {
            conn_log!(Level::Info, "{who} upgrades {}", request.path());
            Accept::new()
        }
    }
}

/// `--tls-sni NAME,CERT.pem,KEY.pem`.
fn parse_sni(text: &str) -> Result<(String, PathBuf, PathBuf), String> {
    match text.split(',').collect::<Vec<_>>()[..] {
        [name, cert, key] if !name.is_empty() && !cert.is_empty() && !key.is_empty() => {
            Ok((name.to_owned(), cert.into(), key.into()))
        }
        _ => Err("expected NAME,CERT.pem,KEY.pem".into()),
    }
}

/// A duration: a number (of seconds) with an optional unit: ms, s, m.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration, like 5s or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        other => return Err(format!("{other:?}: unknown unit (use ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// A timer setting: a duration, or `None` for no timer (a newtype: clap reads a bare
/// `Option` field as "the flag may be absent").
#[derive(Debug, Clone, Copy)]
struct OptionalDuration(Option<Duration>);

/// A byte count or rate that can be off (a newtype, for the reason `OptionalDuration` is).
#[derive(Debug, Clone, Copy)]
struct OptionalBytes(Option<u64>);

/// A byte count as `parse_bytes` reads it, or `off` (also `0`): no limit.
fn parse_optional_bytes(text: &str) -> Result<OptionalBytes, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(OptionalBytes(None));
    }
    let n = parse_bytes(text)?;
    Ok(OptionalBytes(
        (n != 0).then(|| u64::try_from(n).unwrap_or(u64::MAX)),
    ))
}

/// A duration as `parse_duration` reads it, or `off` (also `0`): no timer.
fn parse_optional_duration(text: &str) -> Result<OptionalDuration, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(OptionalDuration(None));
    }
    let d = parse_duration(text)?;
    Ok(OptionalDuration((!d.is_zero()).then_some(d)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Send every text or binary message back to its sender unchanged.
    Echo,
    /// Relay every message to every connected client.
    Broadcast,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            listen,
            mode,
            max_connections,
            max_message_size,
            protocols,
            no_deflate,
            runtime,
            backlog,
            max_memory,
            slow_consumer,
            slow_consumer_max_queued,
            tls_cert,
            tls_key,
            tls_sni,
            drain_timeout,
            connection,
        } => {
            let mut config = driver_config(!no_deflate);
            if let Err(e) = connection.apply(&mut config.connection) {
                log!(Level::Error, "{e}");
                return ExitCode::FAILURE;
            }
            config.max_connections = max_connections;
            let max_message_size = u64::try_from(max_message_size).unwrap_or(u64::MAX);
            config.connection.max_message_size = max_message_size;
            config.connection.max_frame_size = max_message_size;
            config.backlog = backlog;
            config.max_memory = max_memory;
            config.slow_consumer = SlowConsumer {
                max_queued: slow_consumer_max_queued,
                action: match slow_consumer {
                    // RFC 6455 §7.4.1: 1008, the client violates the policy (it does
                    // not read what it asked for).
                    SlowConsumerArg::Close => SlowConsumerAction::Close(CloseCode::POLICY),
                    SlowConsumerArg::Drop => SlowConsumerAction::Drop,
                },
            };
            config.shutdown_timeout = drain_timeout;
            let tls = match tls_cert.zip(tls_key) {
                Some((cert, key)) => {
                    let loaded = ServerCertificates::from_files(cert, key).and_then(|c| {
                        for (name, cert, key) in tls_sni {
                            c.add_name(&name, cert, key)?;
                        }
                        Ok(c)
                    });
                    match loaded {
                        Ok(certificates) => Some(Arc::new(certificates)),
                        Err(e) => {
                            log!(Level::Error, "{e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
                None => None,
            };
            serve(listen, mode, protocols, config, runtime, tls)
        }
        // Its own exit statuses (how the connection ended; see client::EXIT_CODES).
        Command::Client(args) => return client::run(args),
        Command::AutobahnClient {
            server,
            cas,
            agent,
            no_deflate,
        } => client_tls(&cas).and_then(|tls| autobahn_client(&server, &agent, !no_deflate, tls)),
        Command::Load(args) => load::run(args),
        // Its own exit statuses (2 for configuration errors).
        Command::Hub(args) => return hub::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!(Level::Error, "{e}");
            ExitCode::FAILURE
        }
    }
}

fn describe(why: &Disconnect) -> String {
    match why {
        Disconnect::Closed { code, clean: true } => format!("closed ({code})"),
        Disconnect::Closed { code, clean: false } => format!("closed abnormally ({code})"),
        Disconnect::Failed(e) => format!("failed: {e}"),
        Disconnect::Rejected => "handshake rejected".to_owned(),
        Disconnect::Io(e) if is_tls_error(e) => format!("TLS: {}", tls::describe_io_error(e)),
        Disconnect::Io(e) => format!("socket error: {e}"),
        Disconnect::ShutdownTimeout => "no close reply before shutdown".to_owned(),
        Disconnect::MemoryBudget { code } => format!("closed ({code}): over the memory budget"),
        Disconnect::SlowConsumer { code } => {
            format!("closed ({code}): too slow to read what others sent")
        }
        other => format!("{other:?}"),
    }
}

struct ServeHandler {
    mode: Mode,
    /// `--protocol`: the subprotocols this server speaks.
    protocols: Vec<String>,
}

impl ServeHandler {
    fn relay(&mut self, ctx: &mut Context<'_>, id: ConnId, message: Message) {
        match self.mode {
            Mode::Echo => {
                // Owned payloads go back without a copy.
                let sent = ctx.send(id, message);
                if let Err(SendError::Blocked) = sent {
                    // The loop stops reading from a blocked peer, so this only happens
                    // when one read carried more echoes than the send buffer holds.
                    conn_log!(Level::Warn, "{id}: peer is not reading; closing");
                    let _ = ctx.close(id, CloseCode::POLICY, "send buffer full");
                }
            }
            Mode::Broadcast => {
                let n = ctx.broadcast(&message, None);
                log!(Level::Debug, "{id}: relayed to {n} clients");
            }
        }
    }
}

impl Handler for ServeHandler {
    fn on_request(&mut self, ctx: &mut Context<'_>, id: ConnId, request: &Request) -> Decision {
        let peer = ctx.peer_addr(id).map(|a| a.to_string()).unwrap_or_default();
        Decision::Accept(accept_upgrade(
            format_args!("{id}: {peer}"),
            request,
            &self.protocols,
        ))
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        match event {
            Event::Text { data, .. } => self.relay(ctx, id, Message::Text(data)),
            Event::Binary { data, .. } => self.relay(ctx, id, Message::Binary(data)),
            Event::Close(frame) => log!(Level::Debug, "{id}: peer sent close {frame:?}"),
            _ => {}
        }
    }

    fn on_blocked(&mut self, _ctx: &mut Context<'_>, id: ConnId) {
        log!(Level::Debug, "{id}: send buffer full; reading paused");
    }

    fn on_accept_error(&mut self, _ctx: &mut Context<'_>, error: &io::Error) {
        // The loop calls this at most once per second and retries on its own.
        log!(Level::Warn, "accept: {error} (retrying)");
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, why: Disconnect) {
        let level = match why {
            Disconnect::Closed { clean: true, .. } => Level::Info,
            _ => Level::Warn,
        };
        conn_log!(level, "{id}: {}", describe(&why));
    }
}

/// The driver configuration of every subcommand: defaults, plus permessage-deflate
/// (RFC 7692, with context takeover) unless `--no-deflate`.
fn driver_config(deflate: bool) -> DriverConfig {
    let mut config = DriverConfig::default();
    config.connection.deflate = deflate.then(DeflateConfig::default);
    config
}

/// Whether an I/O error carries a TLS failure (rustls' error inside).
fn is_tls_error(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<tls::rustls::Error>())
}

/// The client's TLS configuration: Mozilla's roots plus the `--ca` files.
fn client_tls(cas: &[PathBuf]) -> io::Result<Arc<tls::rustls::ClientConfig>> {
    Ok(tls::client_config(tls::root_store(cas)?)?)
}

/// Re-reads the certificate files on SIGHUP (see `serve --tls-cert`).
fn reload(certificates: Option<&ServerCertificates>) {
    match certificates.map(ServerCertificates::reload) {
        Some(Ok(())) => log!(Level::Info, "SIGHUP: certificate and key re-read"),
        Some(Err(e)) => log!(Level::Error, "SIGHUP: the certificate stays as it was: {e}"),
        None => log!(Level::Info, "SIGHUP: no TLS certificate to re-read"),
    }
}

/// An OS error of binding `addr`, naming it: `listen on 127.0.0.1:80: Permission denied
/// (os error 13)`.
pub(crate) fn listen_error(addr: SocketAddr, e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("listen on {addr}: {e}"))
}

fn serve(
    listen: SocketAddr,
    mode: Mode,
    protocols: Vec<String>,
    mut config: DriverConfig,
    runtime: Runtime,
    certificates: Option<Arc<ServerCertificates>>,
) -> io::Result<()> {
    if runtime == Runtime::Tokio {
        return serve_tokio(listen, mode, protocols, config, certificates);
    }
    if let Some(certificates) = &certificates {
        config.tls_server = Some(tls::server_config(Arc::clone(certificates))?);
    }
    let scheme = if certificates.is_some() { "wss" } else { "ws" };
    // Before any thread starts, so that every thread inherits the blocked mask and the
    // signals reach only the thread waiting for them.
    let signals = signals::block(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
    let mut event_loop = EventLoop::new(config, ServeHandler { mode, protocols })?;
    let local = event_loop
        .listen(listen)
        .map_err(|e| listen_error(listen, &e))?;
    let handle = event_loop.handle();
    take_serve_signals(signals, certificates, move || {
        let _ = handle.stop();
    })?;
    log!(Level::Info, "listening on {scheme}://{local} ({mode:?})");
    event_loop.run()?;
    log!(Level::Info, "stopped");
    Ok(())
}

/// The thread that takes `serve`'s blocked signals, on either runtime: SIGHUP re-reads
/// the certificate; the first SIGTERM or SIGINT calls `drain` (every connection closed
/// with 1001, up to `--drain-timeout`), a second one exits at once with 1.
fn take_serve_signals(
    signals: libc::sigset_t,
    certificates: Option<Arc<ServerCertificates>>,
    drain: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    let mut drain = Some(drain);
    signals::spawn_waiter(signals, move |signal| {
        if signal == signals::Signal::Hangup {
            reload(certificates.as_deref());
        } else if let Some(drain) = drain.take() {
            log!(
                Level::Info,
                "signal: closing every connection (1001), draining"
            );
            drain();
        } else {
            log!(Level::Warn, "second signal: exiting now");
            std::process::exit(1);
        }
    })
}

/// SIGTERM, SIGINT and SIGHUP for `serve`: blocked in every thread and taken by one
/// thread with `sigwait`, so the reaction runs as ordinary code (no async-signal-safety
/// limits).
// Two libc calls with plain-data arguments; std has no signal API.
#[allow(unsafe_code)]
mod signals {
    use std::io;

    /// A signal `serve` acts on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Signal {
        /// SIGTERM or SIGINT: drain and stop.
        Stop,
        /// SIGHUP: re-read the TLS certificate.
        Hangup,
    }

    /// Blocks `signals` in this thread (and the threads it starts later).
    pub(crate) fn block(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
        // SAFETY: sigset_t is plain data that sigemptyset initialises; the calls get
        // valid pointers to it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(set)
        }
    }

    /// A thread that waits for the blocked signals and calls `on_signal` for each.
    pub(crate) fn spawn_waiter(
        set: libc::sigset_t,
        mut on_signal: impl FnMut(Signal) + Send + 'static,
    ) -> io::Result<()> {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                loop {
                    let mut signal = 0;
                    // SAFETY: `set` is an initialised sigset_t, `signal` a valid out
                    // pointer.
                    let rc = unsafe { libc::sigwait(&set, &mut signal) };
                    if rc != 0 {
                        return;
                    }
                    on_signal(if signal == libc::SIGHUP {
                        Signal::Hangup
                    } else {
                        Signal::Stop
                    });
                }
            })
            .map(drop)
    }
}

/// `serve --runtime tokio`: the echo server on the tokio adapter. SIGTERM and SIGINT
/// drain as on mio (1001 to every connection, up to `--drain-timeout`, exit 0; a second
/// signal exits at once with 1); SIGHUP re-reads the certificate.
fn serve_tokio(
    listen: SocketAddr,
    mode: Mode,
    protocols: Vec<String>,
    config: DriverConfig,
    certificates: Option<Arc<ServerCertificates>>,
) -> io::Result<()> {
    if mode != Mode::Echo {
        return Err(io::Error::other(
            "--runtime tokio serves --mode echo only (broadcast runs on mio)",
        ));
    }
    // Before the runtime starts its threads, so that they inherit the blocked mask.
    let signals = signals::block(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
    let stop = serve_tokio::Stop::new();
    let on_signal = stop.clone();
    take_serve_signals(signals, certificates.clone(), move || on_signal.trigger())?;
    serve_tokio::run(serve_tokio::Options {
        listen,
        config: config.connection,
        max_connections: config.max_connections,
        protocols,
        certificates,
        drain_timeout: config.shutdown_timeout,
        stop,
    })
}

/// Walks the fuzzingserver's protocol: `/getCaseCount`, then `/runCase?case=N` for
/// every case (echoing every message), then `/updateReports`.
struct AutobahnHandler {
    server: String,
    /// Set by the watchdog thread when no case count came within [`CASE_COUNT_WAIT`].
    gave_up: Arc<std::sync::atomic::AtomicBool>,
    /// Dropped once the case count is in, which tells the watchdog not to give up.
    counted: Option<std::sync::mpsc::Sender<()>>,
    agent: String,
    case_count: Option<u32>,
    next_case: u32,
    reports_requested: bool,
    error: Option<io::Error>,
}

impl AutobahnHandler {
    fn connect(&mut self, ctx: &mut Context<'_>, path: &str) {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let result = ClientRequest::new(&url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
            .and_then(|request| ctx.connect(request));
        if let Err(e) = result {
            log!(Level::Error, "connecting to {url}: {e}");
            self.error = Some(e);
        }
    }
}

/// How long `/getCaseCount` may take to answer: a fuzzingserver sends the count as soon
/// as the connection opens; any other WebSocket server (an echo server, `wsengine
/// serve`) sends nothing, and the client would wait for ever.
const CASE_COUNT_WAIT: Duration = Duration::from_secs(5);

impl AutobahnHandler {
    /// The error of a server that does not speak the fuzzingserver's protocol.
    fn not_fuzzingserver(&mut self, why: &str) {
        if self.error.is_none() {
            self.error = Some(io::Error::other(format!(
                "{}: not an Autobahn fuzzingserver: {why}",
                self.server
            )));
        }
    }
}

impl Handler for AutobahnHandler {
    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        if self.case_count.is_none() && self.next_case == 0 {
            match &event {
                Event::Text { data, .. } => match data.as_str().trim().parse() {
                    Ok(count) => {
                        self.case_count = Some(count);
                        self.counted = None;
                    }
                    Err(_) => {
                        let text: String = data.as_str().chars().take(40).collect();
                        self.not_fuzzingserver(&format!(
                            "/getCaseCount answered {text:?}, not a number of cases"
                        ));
                        let _ = ctx.close(id, CloseCode::NORMAL, "");
                    }
                },
                Event::Binary { .. } => {
                    self.not_fuzzingserver("/getCaseCount answered a binary message");
                    let _ = ctx.close(id, CloseCode::NORMAL, "");
                }
                _ => {}
            }
            return;
        }
        let _ = match event {
            Event::Text { data, .. } => ctx.send_text(id, data.as_str()),
            Event::Binary { data, .. } => ctx.send_binary(id, &data),
            _ => Ok(()),
        };
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, _id: ConnId, why: Disconnect) {
        if self.next_case > 0 {
            log!(Level::Debug, "case {}: {}", self.next_case, describe(&why));
        }
        let Some(count) = self.case_count else {
            if self.gave_up.load(std::sync::atomic::Ordering::Relaxed) {
                self.not_fuzzingserver(&format!(
                    "no case count from /getCaseCount within {}s",
                    CASE_COUNT_WAIT.as_secs()
                ));
            } else {
                self.not_fuzzingserver(&format!(
                    "no case count from /getCaseCount ({})",
                    describe(&why)
                ));
            }
            return;
        };
        if self.next_case < count {
            self.next_case += 1;
            if self.next_case.is_multiple_of(50) || self.next_case == count {
                log!(Level::Info, "case {}/{count}", self.next_case);
            }
            let path = format!("/runCase?case={}&agent={}", self.next_case, self.agent);
            self.connect(ctx, &path);
        } else if !self.reports_requested {
            self.reports_requested = true;
            let path = format!("/updateReports?agent={}", self.agent);
            self.connect(ctx, &path);
        }
    }
}

fn autobahn_client(
    server: &str,
    agent: &str,
    deflate: bool,
    tls: Arc<tls::rustls::ClientConfig>,
) -> io::Result<()> {
    let mut config = driver_config(deflate);
    config.tls_client = Some(tls);
    config.connect_timeout = Duration::from_secs(5);
    // Giving up on a server that is not a fuzzingserver closes the one connection; its
    // closing handshake need not take long.
    config.shutdown_timeout = Duration::from_secs(1);
    let gave_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (counted_tx, counted_rx) = std::sync::mpsc::channel::<()>();
    let handler = AutobahnHandler {
        server: server.to_owned(),
        gave_up: Arc::clone(&gave_up),
        counted: Some(counted_tx),
        agent: agent.to_owned(),
        case_count: None,
        next_case: 0,
        reports_requested: false,
        error: None,
    };
    let mut event_loop = EventLoop::new(config, handler)?;
    let mut first = event_loop.handler().server.trim_end_matches('/').to_owned();
    first.push_str("/getCaseCount");
    event_loop.connect(
        ClientRequest::new(&first).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
    )?;
    // The watchdog: without a case count by then, stop the loop (closing the
    // connection); `on_close` then says why.
    let handle = event_loop.handle();
    std::thread::Builder::new()
        .name("case-count".into())
        .spawn(move || {
            // Woken early (the sender dropped) once the count is in.
            if counted_rx.recv_timeout(CASE_COUNT_WAIT)
                == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            {
                gave_up.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = handle.stop();
            }
        })?;
    event_loop.run()?;
    let handler = event_loop.into_handler();
    if let Some(e) = handler.error {
        return Err(e);
    }
    log!(
        Level::Info,
        "ran {} cases; reports updated",
        handler.next_case
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{choose_protocol, parse_bytes, parse_duration, parse_listen, parse_protocol};
    use std::net::SocketAddr;
    use std::time::Duration;

    #[test]
    fn listen_addresses_take_every_form() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_listen("127.0.0.1:9001"), Ok(addr("127.0.0.1:9001")));
        assert_eq!(parse_listen("[::1]:9001"), Ok(addr("[::1]:9001")));
        assert_eq!(parse_listen(":8080"), Ok(addr("0.0.0.0:8080")));
        assert_eq!(parse_listen("localhost:0"), Ok(addr("127.0.0.1:0")));
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("::1:80").is_err(), "IPv6 needs brackets");
        assert!(parse_listen(":http").is_err());
        assert!(parse_listen("127.0.0.1:65536").is_err());
    }

    #[test]
    fn the_client_order_chooses_the_protocol() {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let spoken = list(&["chat", "y"]);
        assert_eq!(
            choose_protocol(&list(&["x", "chat"]), &spoken),
            Some("chat")
        );
        assert_eq!(choose_protocol(&list(&["y", "chat"]), &spoken), Some("y"));
        assert_eq!(choose_protocol(&list(&["Chat"]), &spoken), None);
        assert_eq!(choose_protocol(&[], &spoken), None);
        assert_eq!(choose_protocol(&list(&["chat"]), &[]), None);
        assert!(parse_protocol("chat.v2").is_ok());
        assert!(parse_protocol("").is_err());
        assert!(parse_protocol("a,b").is_err());
        assert!(parse_protocol("é").is_err());
    }

    #[test]
    fn byte_counts_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("5MB"), Ok(5_000_000));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("12 parsecs").is_err());
    }

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }
}
