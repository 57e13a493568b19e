//! `wsengine client`: a line-based WebSocket client in the manner of websocat and wscat.
//! Each stdin line (or each `-x` message) is sent as a message; what arrives is printed on
//! stdout; the process ends with an exit status that says how the connection ended (see
//! [`EXIT_CODES`]).

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wsengine::frame::CloseFrame;
use wsengine::{ClientRequest, CloseCode, Error, Event, Keepalive, Message, Response, Timeout};
use wsengine_mio::{ConnId, Context, Disconnect, EventLoop, Handle, Handler, tls};

use crate::{Level, client_tls, driver_config, max_level, parse_duration};

/// The connection ended cleanly: both Close frames exchanged with 1000, 1001 or no code.
const EXIT_CLEAN: u8 = 0;
/// Something else went wrong (the event loop could not start).
const EXIT_OTHER: u8 = 1;
/// Usage errors: clap's own status for bad arguments, used for the URL, headers and
/// `--ca` files too.
const EXIT_USAGE: u8 = 2;
/// No connection: DNS, TCP, TLS, or the connect timeout.
const EXIT_CONNECT: u8 = 3;
/// The server did not accept the opening handshake (RFC 6455 §4.1: not a 101, a bad
/// `Sec-WebSocket-Accept`, ...), or it did not answer in time.
const EXIT_HANDSHAKE: u8 = 4;
/// The connection dropped without a closing handshake (1006, RFC 6455 §7.1.5), or the
/// server stopped answering pings (`--ping-timeout`) or our Close.
const EXIT_ABNORMAL: u8 = 5;
/// The server broke the protocol: we failed the connection (RFC 6455 §7.1.7) and sent
/// the error's code (1002, 1007, 1009, ...).
const EXIT_PROTOCOL: u8 = 6;
/// The closing handshake completed with a code other than 1000, 1001 or none (1011,
/// 1008, 4xxx, ...), whichever side sent it first.
const EXIT_CLOSE_CODE: u8 = 7;
/// A second SIGINT or SIGTERM: exit at once (128 + SIGINT, the shell's convention).
const EXIT_SIGNAL: i32 = 130;

/// The `--help` table of exit statuses (the README says the same).
const EXIT_CODES: &str = "\
Exit status:
  0    closed cleanly with 1000, 1001 or no code, whoever started the close
       (EOF on stdin, Ctrl-C, -x done, stdout closed included)
  1    other errors (the event loop could not start)
  2    usage: bad arguments, URL, header, subprotocol or --ca file
  3    could not connect (DNS, TCP, TLS, --connect-timeout)
  4    the server refused the handshake (not 101, bad accept) or did not answer in time
  5    the connection dropped without a closing handshake (1006), or the server stopped
       answering pings (--ping-timeout) or our Close
  6    the server broke the protocol: we closed with 1002, 1007, 1009, ...
  7    the closing handshake carried another code (1008, 1011, 3xxx, 4xxx, ...),
       sent by either side
  130  a second SIGINT/SIGTERM while waiting for the server's Close, or one before
       the connection opened

Output: text messages are printed one a line; binary messages as their raw bytes
followed by a newline (use --jsonl to tell them apart). Logs, warnings and, with
--show-control, control frames (`< ping (4 bytes): data`) go to stderr; with --jsonl
the control frames are JSON lines on stdout.";

/// Connect, send each stdin line as a message, print what arrives.
#[derive(clap::Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct ClientArgs {
    /// The ws:// or wss:// URL to connect to.
    url: String,
    /// For wss://: also trust the CA certificates in this PEM file (repeatable), besides
    /// Mozilla's roots (webpki-roots).
    #[arg(long = "ca", value_name = "CA.pem")]
    cas: Vec<std::path::PathBuf>,
    /// Subprotocols to offer (repeatable).
    #[arg(long = "protocol")]
    protocols: Vec<String>,
    /// Origin header to send.
    #[arg(long)]
    origin: Option<String>,
    /// Do not offer permessage-deflate (RFC 7692), which is offered by default.
    #[arg(long)]
    no_deflate: bool,
    /// An extra request header, `Name: value` (repeatable). Host, Upgrade, Connection and
    /// Sec-WebSocket-* belong to the handshake and are refused (use --protocol);
    /// `Origin: x` is the same as --origin x.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Send `Authorization: Basic` with these credentials (RFC 7617).
    #[arg(long, value_name = "USER:PASS")]
    basic_auth: Option<String>,
    /// Send each stdin line (and each -x message) as a binary message, its bytes as read
    /// (the newline removed).
    #[arg(short = 'b', long, conflicts_with = "text")]
    binary: bool,
    /// Send each stdin line as a text message (the default); a line that is not UTF-8
    /// is skipped with a warning.
    #[arg(short = 't', long)]
    text: bool,
    /// Ping the server after this long without hearing from it (e.g. 30s; RFC 6455
    /// §5.5.2). Off by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    ping_interval: Option<Duration>,
    /// With --ping-interval: end the connection (exit 5) unless something arrives within
    /// this time of a Ping (default 10s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "ping_interval")]
    ping_timeout: Option<Duration>,
    /// Print the Ping, Pong and Close frames received (the pongs to our pings too): on
    /// stderr as `< ping (4 bytes): data`, or as JSON lines on stdout with --jsonl.
    #[arg(long)]
    show_control: bool,
    /// Send this message once connected (repeatable, in order), print what arrives for
    /// --wait, then close with 1000 and exit; stdin is not read.
    #[arg(short = 'x', long = "execute", value_name = "MSG")]
    execute: Vec<String>,
    /// With -x: how long to wait for answers before closing.
    #[arg(short = 'w', long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    wait: Duration,
    /// Print each message received as a JSON line: `{"type":"text","data":"..."}` or
    /// `{"type":"binary","base64":"..."}` (and ping, pong, close with --show-control).
    #[arg(long)]
    jsonl: bool,
    /// Read stdin lines starting with `/` as commands: `/ping [DATA]`, `/pong [DATA]`,
    /// `/close [CODE [REASON]]`; `//text` sends `/text`. Without it, such lines are sent
    /// as they are.
    #[arg(short = 's', long)]
    slash: bool,
    /// Longest wait for each address's TCP connect.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Longest wait for the server's answer to the opening handshake (TLS included).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// After our Close, how long to wait for the server's (RFC 6455 §7.1.1).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    close_timeout: Duration,
}

/// `-H 'Name: value'`: the name must be a header name the handshake does not own.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once(':') else {
        return Err(format!("{text:?}: expected `Name: value`"));
    };
    let name = name.trim();
    // RFC 7230 §3.2.6: a header name is a token.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("{name:?} is not a header name"));
    }
    let lower = name.to_ascii_lowercase();
    // RFC 6455 §4.1: the client writes these itself.
    if matches!(lower.as_str(), "host" | "upgrade" | "connection")
        || lower.starts_with("sec-websocket-")
    {
        return Err(format!(
            "{name} belongs to the WebSocket handshake (use --protocol for subprotocols)"
        ));
    }
    let value = value.trim();
    if value.contains(['\r', '\n']) {
        return Err(format!("{name}: a header value is one line"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Standard base64 with padding (RFC 4648 §4), for `Authorization: Basic` and --jsonl:
/// the `base64` crate the core already uses for `Sec-WebSocket-Key`.
fn base64(data: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(data)
}

/// One --jsonl line: `{"type":KIND,...}`, `type` first for the reader's eye (a
/// `serde_json` map sorts its keys).
fn json_line(kind: &str, fields: &[(&str, serde_json::Value)]) -> String {
    let mut line = format!("{{\"type\":{}", serde_json::Value::from(kind));
    for (name, value) in fields {
        line.push_str(&format!(",{}:{value}", serde_json::Value::from(*name)));
    }
    line.push('}');
    line
}

/// A close code's name: RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number
/// Registry" (§11.7) for 1000-1015, the ranges of §7.4.2 otherwise.
pub(crate) fn code_name(code: CloseCode) -> &'static str {
    match code.0 {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1004 => "reserved",
        1005 => "no status received",
        1006 => "abnormal closure",
        1007 => "invalid frame payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake",
        3000..=3999 => "registered",
        4000..=4999 => "private use",
        _ => "unassigned",
    }
}

/// `CODE (name) reason`.
fn close_text(code: CloseCode, reason: &str) -> String {
    let mut text = format!("{} ({})", code.0, code_name(code));
    if !reason.is_empty() {
        text.push(' ');
        text.push_str(&one_line(reason));
    }
    text
}

/// Text from the server for a stderr line (a close reason, ping data): control
/// characters escaped, so that it cannot break the line or forge another.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Lines read ahead of the connection: the input thread blocks when this many wait, so a
/// large or endless stdin is sent at the pace the server reads, never queued whole in
/// memory.
const INPUT_QUEUE: usize = 64;

/// What the input thread hands to the loop, in order.
enum Outgoing {
    Message(Message),
    /// Start the closing handshake (end of input, `-x` done, `/close`): after the lines
    /// before it.
    Close(CloseCode, String),
}

/// What the loop, the input thread and the signal thread share.
#[derive(Default)]
struct Shared {
    /// The Close we started (code, reason), if we did: set before the Close is queued, so
    /// that the handler can tell our close from the server's.
    our_close: Mutex<Option<(CloseCode, String)>>,
    /// The handshake completed.
    opened: AtomicBool,
}

impl Shared {
    /// Starts the closing handshake (once).
    fn close(&self, handle: &Handle, id: ConnId, code: CloseCode, reason: &str) {
        let mut ours = self.our_close.lock().unwrap_or_else(|e| e.into_inner());
        if ours.is_none() {
            *ours = Some((code, reason.to_owned()));
            let _ = handle.close(id, code, reason);
        }
    }
}

struct ClientHandler {
    out: io::Stdout,
    /// The connection, once open.
    id: Option<ConnId>,
    /// What the input thread sent, taken as the send buffer has room (`feed`).
    input: Receiver<Outgoing>,
    url: String,
    /// `host:port`, for connect failures.
    target: String,
    jsonl: bool,
    show_control: bool,
    shared: Arc<Shared>,
    /// Tells the -x thread the handshake completed.
    opened_tx: Option<mpsc::Sender<()>>,
    /// Stdout is closed (a pipe whose reader left): nothing more is printed.
    stdout_closed: bool,
    /// The server's Close frame, and whether it came before ours (it started the close).
    server_close: Option<(Option<CloseFrame>, bool)>,
    /// The exit status and the line that says why.
    outcome: Option<(u8, String)>,
}

impl ClientHandler {
    /// Moves input into the connection while its send buffer has room; the rest waits
    /// in the queue (and the input thread with it) until `on_writable`.
    fn feed(&mut self, ctx: &mut Context<'_>) {
        let Some(id) = self.id else {
            return; // not open yet: `on_open` feeds
        };
        while !ctx.connection(id).is_some_and(|c| c.is_send_blocked()) {
            match self.input.try_recv() {
                Ok(Outgoing::Message(message)) => {
                    // Refused only once the connection is closing or gone: the input
                    // after our Close or the server's has nowhere to go.
                    let _ = ctx.send(id, message);
                }
                Ok(Outgoing::Close(code, reason)) => self.close_once(ctx, id, code, &reason),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Starts the closing handshake from the loop, unless we started it already (the
    /// record comes first, so that the handler can tell our close from the server's).
    fn close_once(&self, ctx: &mut Context<'_>, id: ConnId, code: CloseCode, reason: &str) {
        let mut ours = self
            .shared
            .our_close
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if ours.is_none() {
            *ours = Some((code, reason.to_owned()));
            let _ = ctx.close(id, code, reason);
        }
    }

    /// Writes one line of output; on the first failure (stdout closed) closes the
    /// connection with 1000 and prints nothing more.
    fn print(
        &mut self,
        ctx: &mut Context<'_>,
        id: ConnId,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) {
        if self.stdout_closed {
            return;
        }
        let mut out = self.out.lock();
        if write(&mut out).and_then(|()| out.flush()).is_err() {
            drop(out);
            self.stdout_closed = true;
            // One line, once: the reader of a pipe left (`| head -2`); we are done, as
            // on EOF, so 1000.
            log!(Level::Info, "stdout closed; closing the connection (1000)");
            self.close_once(ctx, id, CloseCode::NORMAL, "");
        }
    }

    /// Prints a control frame under --show-control.
    fn control(&mut self, ctx: &mut Context<'_>, id: ConnId, kind: &str, data: &[u8]) {
        if !self.show_control {
            return;
        }
        if self.jsonl {
            let line = json_line(kind, &[("base64", base64(data).into())]);
            self.print(ctx, id, |out| writeln!(out, "{line}"));
        } else {
            match std::str::from_utf8(data) {
                Ok(text) if !text.is_empty() => {
                    crate::stderr_line(format_args!(
                        "< {kind} ({} bytes): {}",
                        data.len(),
                        one_line(text)
                    ));
                }
                _ => crate::stderr_line(format_args!("< {kind} ({} bytes)", data.len())),
            }
        }
    }

    /// The exit status and its line for a connection that ended after the handshake.
    fn after_open(&self, why: &Disconnect) -> (u8, String) {
        let ours = self
            .shared
            .our_close
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match why {
            Disconnect::Closed { code, clean: true } => {
                let status = if matches!(code.0, 1000 | 1001 | 1005) {
                    EXIT_CLEAN
                } else {
                    EXIT_CLOSE_CODE
                };
                let line = match (&self.server_close, ours) {
                    (Some((frame, true)), _) | (Some((frame, false)), None) => {
                        let reason = frame.as_ref().map_or("", |f| f.reason.as_str());
                        format!("closed by the server: {}", close_text(*code, reason))
                    }
                    (_, Some((our_code, reason))) => {
                        // The server echoed our Close (§5.5.1); say what we sent.
                        let echoed = if our_code == *code {
                            String::new()
                        } else {
                            format!(" (the server answered {})", code.0)
                        };
                        format!("closed: {}{echoed}", close_text(our_code, &reason))
                    }
                    (None, None) => format!("closed: {}", close_text(*code, "")),
                };
                (status, line)
            }
            Disconnect::Closed { clean: false, .. } => {
                let line = if ours.is_some() && self.server_close.is_none() {
                    "closed: 1006 (abnormal closure) the server did not answer our Close".to_owned()
                } else {
                    "closed: 1006 (abnormal closure) the connection dropped without a Close"
                        .to_owned()
                };
                (EXIT_ABNORMAL, line)
            }
            Disconnect::Io(e) => (
                EXIT_ABNORMAL,
                format!(
                    "closed: 1006 (abnormal closure) {}",
                    tls::describe_io_error(e)
                ),
            ),
            Disconnect::Failed(Error::Timeout(Timeout::Keepalive)) => (
                EXIT_ABNORMAL,
                "closed: 1006 (abnormal closure) no answer to our ping within --ping-timeout"
                    .to_owned(),
            ),
            Disconnect::Failed(e) => {
                let code = e.close_code().unwrap_or(CloseCode::PROTOCOL_ERROR);
                let why = match e {
                    Error::Protocol(e) => format!("the server broke the protocol: {e}"),
                    e => e.to_string(),
                };
                (
                    EXIT_PROTOCOL,
                    format!("closed: {} {why}", close_text(code, "")),
                )
            }
            other => (
                EXIT_ABNORMAL,
                format!("closed: 1006 (abnormal closure) {other:?}"),
            ),
        }
    }

    /// The exit status and its line for a connection that never opened.
    fn before_open(&self, why: &Disconnect) -> (u8, String) {
        let url = &self.url;
        let target = &self.target;
        match why {
            Disconnect::Io(e) => (
                EXIT_CONNECT,
                format!(
                    "cannot connect to {url} ({target}): {}",
                    tls::describe_io_error(e)
                ),
            ),
            Disconnect::Failed(Error::Timeout(_)) => (
                EXIT_HANDSHAKE,
                format!(
                    "{url} ({target}): no answer to the WebSocket handshake within --handshake-timeout"
                ),
            ),
            Disconnect::Failed(Error::Handshake(e)) => (
                EXIT_HANDSHAKE,
                format!("{url} ({target}): the server refused the WebSocket handshake: {e}"),
            ),
            Disconnect::Failed(e) => (
                EXIT_HANDSHAKE,
                format!("{url} ({target}): the WebSocket handshake failed: {e}"),
            ),
            other => (
                EXIT_HANDSHAKE,
                format!("{url} ({target}): the handshake did not complete: {other:?}"),
            ),
        }
    }
}

impl Handler for ClientHandler {
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, response: Option<&Response>) {
        self.id = Some(id);
        self.shared.opened.store(true, Ordering::SeqCst);
        if let Some(tx) = self.opened_tx.take() {
            let _ = tx.send(());
        }
        let protocol = response.and_then(Response::protocol).unwrap_or("none");
        log!(
            Level::Info,
            "connected to {} (subprotocol: {protocol})",
            self.url
        );
        self.feed(ctx);
    }

    fn on_wake(&mut self, ctx: &mut Context<'_>) {
        self.feed(ctx);
    }

    fn on_writable(&mut self, ctx: &mut Context<'_>, _id: ConnId) {
        self.feed(ctx);
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        let jsonl = self.jsonl;
        match event {
            Event::Text { data, .. } if jsonl => {
                let line = json_line("text", &[("data", data.as_str().into())]);
                self.print(ctx, id, |out| writeln!(out, "{line}"));
            }
            Event::Text { data, .. } => {
                self.print(ctx, id, |out| writeln!(out, "{}", data.as_str()));
            }
            Event::Binary { data, .. } if jsonl => {
                let line = json_line("binary", &[("base64", base64(&data).into())]);
                self.print(ctx, id, |out| writeln!(out, "{line}"));
            }
            Event::Binary { data, .. } => {
                self.print(ctx, id, |out| {
                    out.write_all(&data)?;
                    writeln!(out)
                });
            }
            Event::Ping(data) => self.control(ctx, id, "ping", &data),
            Event::Pong(data) => self.control(ctx, id, "pong", &data),
            Event::Close(frame) => {
                let first = self
                    .shared
                    .our_close
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_none();
                if self.show_control {
                    let (code, reason) = frame
                        .as_ref()
                        .map_or((CloseCode::NO_STATUS, ""), |f| (f.code, f.reason.as_str()));
                    if jsonl {
                        let code = frame.as_ref().map(|f| f.code.0);
                        let line =
                            json_line("close", &[("code", code.into()), ("reason", reason.into())]);
                        self.print(ctx, id, |out| writeln!(out, "{line}"));
                    } else {
                        crate::stderr_line(format_args!("< close {}", close_text(code, reason)));
                    }
                }
                self.server_close = Some((frame, first));
            }
            _ => {}
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, why: Disconnect) {
        self.outcome = Some(if self.shared.opened.load(Ordering::SeqCst) {
            self.after_open(&why)
        } else {
            self.before_open(&why)
        });
    }
}

/// Runs `wsengine client`; the exit status says how the connection ended.
pub(crate) fn run(args: ClientArgs) -> ExitCode {
    match connect_and_run(args) {
        Ok(status) => ExitCode::from(status),
        Err((status, line)) => {
            log!(Level::Error, "{line}");
            ExitCode::from(status)
        }
    }
}

fn connect_and_run(args: ClientArgs) -> Result<u8, (u8, String)> {
    let url = args.url.clone();
    let usage = |e: &dyn std::fmt::Display| (EXIT_USAGE, e.to_string());
    let mut request = ClientRequest::new(&url).map_err(|e| usage(&format!("{url}: {e}")))?;
    for p in &args.protocols {
        request = request.protocol(p.as_str());
    }
    let mut origin = args.origin.clone();
    for (name, value) in &args.headers {
        if name.eq_ignore_ascii_case("origin") {
            origin = Some(value.clone());
        } else {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    if let Some(origin) = origin {
        request = request.origin(origin);
    }
    if let Some(credentials) = &args.basic_auth {
        // RFC 7617 §2: base64 of user-id ":" password.
        request = request.header(
            "Authorization",
            format!("Basic {}", base64(credentials.as_bytes())),
        );
    }
    let host = request.host();
    let target = if host.contains(':') {
        format!("[{host}]:{}", request.port())
    } else {
        format!("{host}:{}", request.port())
    };
    let tls = client_tls(&args.cas).map_err(|e| usage(&format!("--ca: {e}")))?;

    let mut config = driver_config(!args.no_deflate);
    config.tls_client = Some(tls);
    config.connect_timeout = args.connect_timeout;
    config.connection.handshake_timeout = Some(args.handshake_timeout);
    config.connection.close_timeout = Some(args.close_timeout);
    config.connection.keepalive = args.ping_interval.map(|interval| Keepalive {
        interval,
        timeout: args.ping_timeout.unwrap_or(Duration::from_secs(10)),
    });
    // What the client sends comes from stdin, not from what it reads: it reads on while
    // its send buffer is full (an echo server that pauses its reads while its own buffer
    // is full of echoes not yet read would otherwise wait for us as we wait for it), and
    // the input is paced by the buffer through `feed` (the slow-consumer policy is for a
    // server's broadcasts; here it would close our one connection instead).
    config.read_while_send_blocked = true;
    config.slow_consumer.max_queued = usize::MAX;

    // Before any thread starts, so that every thread inherits the blocked mask and the
    // signals reach only the thread waiting for them.
    let signals = crate::signals::block(&[libc::SIGTERM, libc::SIGINT])
        .map_err(|e| (EXIT_OTHER, format!("signals: {e}")))?;
    let shared = Arc::new(Shared::default());
    let (opened_tx, opened_rx) = mpsc::channel();
    let (queue, input) = mpsc::sync_channel(INPUT_QUEUE);
    let handler = ClientHandler {
        out: io::stdout(),
        id: None,
        input,
        url: url.clone(),
        target: target.clone(),
        jsonl: args.jsonl,
        show_control: args.show_control,
        shared: Arc::clone(&shared),
        opened_tx: Some(opened_tx),
        stdout_closed: false,
        server_close: None,
        outcome: None,
    };
    let mut event_loop =
        EventLoop::new(config, handler).map_err(|e| (EXIT_OTHER, format!("event loop: {e}")))?;
    let id = event_loop.connect(request).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidInput {
            // The core refused the request: a subprotocol or header it cannot send.
            (EXIT_USAGE, format!("{url}: {e}"))
        } else {
            (
                EXIT_CONNECT,
                format!("cannot connect to {url} ({target}): {e}"),
            )
        }
    })?;
    let handle = event_loop.handle();

    let mut stops = 0;
    let (signal_handle, signal_shared) = (handle.clone(), Arc::clone(&shared));
    crate::signals::spawn_waiter(signals, move |_| {
        stops += 1;
        if stops == 1 && signal_shared.opened.load(Ordering::SeqCst) {
            // 1000, not 1001: to the server, Ctrl-C is the user being done, as EOF is;
            // 1001 (going away) tells of an endpoint shutting down or navigating away.
            log!(Level::Info, "signal: closing (1000)");
            signal_shared.close(&signal_handle, id, CloseCode::NORMAL, "");
        } else {
            // Not connected yet (nothing to close), or a second signal.
            log!(Level::Warn, "signal: exiting now");
            std::process::exit(EXIT_SIGNAL);
        }
    })
    .map_err(|e| (EXIT_OTHER, format!("signals: {e}")))?;

    let input = Input {
        handle,
        queue,
        binary: args.binary,
        slash: args.slash,
    };
    let spawned = if args.execute.is_empty() {
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || input.stdin())
    } else {
        let (messages, wait) = (args.execute, args.wait);
        std::thread::Builder::new()
            .name("execute".into())
            .spawn(move || {
                // Only once connected: the wait is for answers.
                if opened_rx.recv().is_ok() {
                    input.execute(&messages, wait);
                }
            })
    };
    spawned.map_err(|e| (EXIT_OTHER, format!("input thread: {e}")))?;

    event_loop
        .run()
        .map_err(|e| (EXIT_OTHER, format!("event loop: {e}")))?;
    match event_loop.into_handler().outcome {
        Some((EXIT_CLEAN, line)) => {
            log!(Level::Info, "{line}");
            Ok(EXIT_CLEAN)
        }
        Some((status, line)) => Err((status, line)),
        None => Err((EXIT_OTHER, "the connection ended unreported".to_owned())),
    }
}

/// What the input thread (stdin or -x) needs.
struct Input {
    /// Wakes the loop to take what `queue` holds.
    handle: Handle,
    queue: SyncSender<Outgoing>,
    binary: bool,
    slash: bool,
}

/// What to do after a line.
enum Next {
    Continue,
    /// The loop is gone or the close started: read no more.
    Stop,
}

impl Input {
    /// Sends each stdin line, then closes with 1000 on EOF.
    fn stdin(&self) {
        let mut stdin = io::stdin().lock();
        let mut line = Vec::new();
        let mut number: u64 = 0;
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    log!(Level::Warn, "stdin: {e}; closing");
                    break;
                }
            }
            number += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if let Next::Stop = self.line(number, std::mem::take(&mut line)) {
                return;
            }
        }
        self.push(Outgoing::Close(CloseCode::NORMAL, String::new()));
    }

    /// -x: sends `messages`, waits `wait` for answers, closes with 1000.
    fn execute(&self, messages: &[String], wait: Duration) {
        for (i, message) in messages.iter().enumerate() {
            let number = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
            if let Next::Stop = self.line(number, message.clone().into_bytes()) {
                return;
            }
        }
        std::thread::sleep(wait);
        self.push(Outgoing::Close(CloseCode::NORMAL, String::new()));
    }

    /// Sends one line (without its newline) as a message, or runs it as a command.
    fn line(&self, number: u64, mut line: Vec<u8>) -> Next {
        let command = self.slash && line.first() == Some(&b'/') && line.get(1) != Some(&b'/');
        if self.slash && line.starts_with(b"//") {
            // `//text` sends `/text`.
            line.remove(0);
        }
        if self.binary && !command {
            return self.send(Message::binary(line));
        }
        if !self.binary && line.last() == Some(&b'\r') {
            // CRLF input: the CR is not part of the text.
            line.pop();
        }
        let text = match String::from_utf8(line) {
            Ok(text) => text,
            Err(_) => {
                log!(
                    Level::Warn,
                    "line {number}: not UTF-8; skipped (-b sends lines as bytes)"
                );
                return Next::Continue;
            }
        };
        if command {
            self.command(number, &text)
        } else {
            self.send(Message::text(text))
        }
    }

    fn send(&self, message: Message) -> Next {
        self.push(Outgoing::Message(message))
    }

    /// Queues `item` for the loop (waiting while the queue is full) and wakes it.
    fn push(&self, item: Outgoing) -> Next {
        match self.queue.send(item).map(|()| self.handle.wake()) {
            Ok(Ok(())) => Next::Continue,
            // The loop is gone.
            _ => Next::Stop,
        }
    }

    /// `/ping [DATA]`, `/pong [DATA]`, `/close [CODE [REASON]]`.
    fn command(&self, number: u64, text: &str) -> Next {
        let (name, rest) = text.split_once(' ').unwrap_or((text, ""));
        match name {
            "/ping" | "/pong" => {
                // RFC 6455 §5.5: control frames carry at most 125 bytes.
                if rest.len() > 125 {
                    log!(
                        Level::Warn,
                        "line {number}: {name}: at most 125 bytes of data (RFC 6455 §5.5); skipped"
                    );
                    return Next::Continue;
                }
                let data = rest.as_bytes().to_vec().into();
                self.send(if name == "/ping" {
                    Message::Ping(data)
                } else {
                    Message::Pong(data)
                })
            }
            "/close" => {
                let rest = rest.trim_start();
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                let code = if code.is_empty() {
                    CloseCode::NORMAL
                } else {
                    match code.parse::<u16>().map(CloseCode) {
                        Ok(code) if code.is_sendable() => code,
                        _ => {
                            log!(
                                Level::Warn,
                                "line {number}: /close {code}: not a code a Close frame may carry (1000-1003, 1007-1014, 3000-4999; RFC 6455 §7.4); skipped"
                            );
                            return Next::Continue;
                        }
                    }
                };
                // §5.5: 125 bytes of payload, 2 of them the code.
                if reason.len() > 123 {
                    log!(
                        Level::Warn,
                        "line {number}: /close: the reason is limited to 123 bytes (RFC 6455 §5.5.1); skipped"
                    );
                    return Next::Continue;
                }
                self.push(Outgoing::Close(code, reason.to_owned()));
                Next::Stop
            }
            _ => {
                log!(
                    Level::Warn,
                    "line {number}: unknown command {name} (/ping, /pong, /close; //text sends /text); skipped"
                );
                Next::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{base64, code_name, one_line, parse_header};
    use wsengine::CloseCode;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        // RFC 4648 §10.
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
        // RFC 7617 §2's example.
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn headers_parse_and_the_handshake_ones_are_refused() {
        assert_eq!(
            parse_header("X-Token:  abc def "),
            Ok(("X-Token".to_owned(), "abc def".to_owned()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("Bad Name: x").is_err());
        assert!(parse_header("host: x").is_err());
        assert!(parse_header("Sec-WebSocket-Protocol: chat").is_err());
    }

    #[test]
    fn server_text_stays_on_one_line() {
        assert_eq!(one_line("a\nb\r\u{1b}[2J é"), "a\\nb\\r\\u{1b}[2J é");
    }

    #[test]
    fn close_codes_have_their_registry_names() {
        assert_eq!(code_name(CloseCode(1009)), "message too big");
        assert_eq!(code_name(CloseCode(1014)), "bad gateway");
        assert_eq!(code_name(CloseCode(3001)), "registered");
        assert_eq!(code_name(CloseCode(4001)), "private use");
        assert_eq!(code_name(CloseCode(2000)), "unassigned");
    }
}
