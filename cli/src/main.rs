//! The `wsengine` command: an echo/broadcast server (on the mio event loop of
//! `wsengine-mio`, or with `--runtime tokio` on `wsengine-tokio`), a line-based client and
//! the Autobahn fuzzingserver client, and the load generator `wsengine load` (src/load/).

// The command reads the clock and owns sockets, like the driver.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use wsengine::extensions::deflate::DeflateConfig;
use wsengine::{Accept, ClientRequest, CloseCode, Event, Message, Request, Response, SendError};
use wsengine_mio::{ConnId, Context, Decision, Disconnect, DriverConfig, EventLoop, Handler};

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

macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $level <= max_level() {
            eprintln!("[{:<5}] {}", format!("{:?}", $level).to_uppercase(), format_args!($($arg)*));
        }
    };
}

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
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: SocketAddr,
        /// What to do with each received message.
        #[arg(long, value_enum, default_value_t = Mode::Echo)]
        mode: Mode,
        /// Most concurrent connections; more are refused with 503.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
        /// Largest accepted message in bytes (larger ones close with 1009).
        #[arg(long, default_value_t = 16 << 20)]
        max_message_size: u64,
        /// Do not negotiate permessage-deflate (RFC 7692), which is accepted by default.
        #[arg(long)]
        no_deflate: bool,
        /// The event loop: the mio driver, or the tokio adapter on a current-thread
        /// runtime (echo mode only).
        #[arg(long, value_enum, default_value_t = Runtime::Mio)]
        runtime: Runtime,
    },
    /// Connect, send each stdin line as a text message, print what arrives, and close
    /// cleanly on EOF.
    Client {
        /// The ws:// URL to connect to.
        url: String,
        /// Subprotocols to offer (repeatable).
        #[arg(long = "protocol")]
        protocols: Vec<String>,
        /// Origin header to send.
        #[arg(long)]
        origin: Option<String>,
        /// Do not offer permessage-deflate (RFC 7692), which is offered by default.
        #[arg(long)]
        no_deflate: bool,
    },
    /// Run every case of an Autobahn fuzzingserver as a client, echoing messages, then
    /// ask the server to write its reports.
    AutobahnClient {
        /// The fuzzingserver's base URL.
        #[arg(long, default_value = "ws://127.0.0.1:9001")]
        server: String,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// The mio event loop (wsengine_mio).
    Mio,
    /// The tokio adapter (wsengine_tokio), one task per connection.
    Tokio,
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
            no_deflate,
            runtime,
        } => serve(
            listen,
            mode,
            max_connections,
            max_message_size,
            !no_deflate,
            runtime,
        ),
        Command::Client {
            url,
            protocols,
            origin,
            no_deflate,
        } => client(&url, protocols, origin, !no_deflate),
        Command::AutobahnClient {
            server,
            agent,
            no_deflate,
        } => autobahn_client(&server, &agent, !no_deflate),
        Command::Load(args) => load::run(args),
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
        Disconnect::Io(e) => format!("socket error: {e}"),
        Disconnect::ShutdownTimeout => "no close reply before shutdown".to_owned(),
        other => format!("{other:?}"),
    }
}

struct ServeHandler {
    mode: Mode,
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
                    log!(Level::Warn, "{id}: peer is not reading; closing");
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
        log!(Level::Info, "{id}: {peer} upgrades {}", request.path());
        Decision::Accept(Accept::new())
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

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, why: Disconnect) {
        let level = match why {
            Disconnect::Closed { clean: true, .. } => Level::Info,
            _ => Level::Warn,
        };
        log!(level, "{id}: {}", describe(&why));
    }
}

/// The driver configuration of every subcommand: defaults, plus permessage-deflate
/// (RFC 7692, with context takeover) unless `--no-deflate`.
fn driver_config(deflate: bool) -> DriverConfig {
    let mut config = DriverConfig::default();
    config.connection.deflate = deflate.then(DeflateConfig::default);
    config
}

fn serve(
    listen: SocketAddr,
    mode: Mode,
    max_connections: usize,
    max_message_size: u64,
    deflate: bool,
    runtime: Runtime,
) -> io::Result<()> {
    let mut config = driver_config(deflate);
    config.max_connections = max_connections;
    config.connection.max_message_size = max_message_size;
    config.connection.max_frame_size = max_message_size;
    if runtime == Runtime::Tokio {
        return serve_tokio(listen, mode, config);
    }
    let mut event_loop = EventLoop::new(config, ServeHandler { mode })?;
    let local = event_loop.listen(listen)?;
    log!(Level::Info, "listening on ws://{local} ({mode:?})");
    event_loop.run()
}

/// `serve --runtime tokio`: the echo server on the tokio adapter.
fn serve_tokio(listen: SocketAddr, mode: Mode, config: DriverConfig) -> io::Result<()> {
    if mode != Mode::Echo {
        return Err(io::Error::other(
            "--runtime tokio serves --mode echo only (broadcast runs on mio)",
        ));
    }
    serve_tokio::run(listen, config.connection, config.max_connections)
}

struct ClientHandler {
    out: io::Stdout,
}

impl Handler for ClientHandler {
    fn on_open(&mut self, _ctx: &mut Context<'_>, _id: ConnId, response: Option<&Response>) {
        let protocol = response.and_then(Response::protocol).unwrap_or("none");
        log!(Level::Info, "connected (subprotocol: {protocol})");
    }

    fn on_event(&mut self, _ctx: &mut Context<'_>, _id: ConnId, event: Event) {
        let mut out = self.out.lock();
        let written = match event {
            Event::Text { data, .. } => writeln!(out, "{}", data.as_str()),
            Event::Binary { data, .. } => out.write_all(&data).and_then(|()| writeln!(out)),
            _ => Ok(()),
        };
        if written.and_then(|()| out.flush()).is_err() {
            log!(Level::Warn, "stdout closed");
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, why: Disconnect) {
        log!(Level::Info, "{}", describe(&why));
    }
}

fn client(
    url: &str,
    protocols: Vec<String>,
    origin: Option<String>,
    deflate: bool,
) -> io::Result<()> {
    let mut request =
        ClientRequest::new(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for p in protocols {
        request = request.protocol(p);
    }
    if let Some(o) = origin {
        request = request.origin(o);
    }
    let mut event_loop =
        EventLoop::new(driver_config(deflate), ClientHandler { out: io::stdout() })?;
    let id = event_loop.connect(request)?;
    let handle = event_loop.handle();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if handle.send(id, Message::text(line)).is_err() {
                return;
            }
        }
        let _ = handle.close(id, CloseCode::NORMAL, "");
    });
    event_loop.run()
}

/// Walks the fuzzingserver's protocol: `/getCaseCount`, then `/runCase?case=N` for
/// every case (echoing every message), then `/updateReports`.
struct AutobahnHandler {
    server: String,
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

impl Handler for AutobahnHandler {
    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        if self.case_count.is_none() && self.next_case == 0 {
            if let Event::Text { data, .. } = &event {
                self.case_count = data.as_str().trim().parse().ok();
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
            log!(
                Level::Error,
                "no case count from the fuzzingserver ({})",
                describe(&why)
            );
            self.error = Some(io::Error::other("no case count"));
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

fn autobahn_client(server: &str, agent: &str, deflate: bool) -> io::Result<()> {
    let mut config = driver_config(deflate);
    config.connect_timeout = Duration::from_secs(5);
    let handler = AutobahnHandler {
        server: server.to_owned(),
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
