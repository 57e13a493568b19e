//! A tokio adapter (feature `tokio`): [`WebSocketStream`] drives a [`Connection`] over any
//! `AsyncRead + AsyncWrite + Unpin` stream and is a
//! [`Stream`](futures_core::Stream)`<Item = Result<Message, Error>>` and a
//! [`Sink`](futures_sink::Sink)`<Message>`, the shape tokio-tungstenite users know.
//!
//! ```no_run
//! # async fn run() -> Result<(), wsengine_tokio::Error> {
//! use wsengine_tokio::{Message, accept};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! let (socket, _) = listener.accept().await?;
//! let mut ws = accept(socket).await?;
//! // `next` and `send` are inherent methods (no futures-util needed); with
//! // futures-util's StreamExt/SinkExt in scope the same calls still resolve to them.
//! while let Some(message) = ws.next().await {
//!     match message? {
//!         m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
//!         _ => {} // Pong and Close replies are automatic
//!     }
//! }
//! // `next` returned None: the closing handshake is over and the transport shut down.
//! # Ok(())
//! # }
//! ```
//!
//! A client: [`connect`] takes a `ws://` or `wss://` URL and returns the stream and the
//! server's `101` response.
//!
//! ```no_run
//! # async fn run() -> Result<(), wsengine_tokio::Error> {
//! use wsengine_tokio::{Message, connect};
//!
//! let (mut ws, _response) = connect("ws://127.0.0.1:9001/").await?;
//! ws.send(Message::text("hello")).await?;
//! if let Some(reply) = ws.next().await {
//!     println!("{:?}", reply?.to_text());
//! }
//! ws.close(None).await?; // 1000, Normal Closure
//! // Read on until `None`: the server's Close completes the closing handshake.
//! while ws.next().await.is_some() {}
//! # Ok(())
//! # }
//! ```
//!
//! # Examples
//!
//! Runnable programs in `tokio/examples/`:
//!
//! - `tokio_echo_server`: the echo loop above, one task per connection
//!   (`cargo run -p wsengine-tokio --example tokio_echo_server`);
//! - `client`: stdin lines out, messages printed, over `ws://` or `wss://` (`--ca` for a
//!   private CA), with the stream [split](WebSocketStream::split) between two tasks
//!   (`cargo run -p wsengine-tokio --example client -- ws://127.0.0.1:9001/`);
//! - `tls_echo_server`: the echo server over tokio-rustls
//!   (`cargo run -p wsengine-tokio --example tls_echo_server -- CERT.pem KEY.pem`);
//! - `from_tokio_tungstenite`: a small server written as with tokio-tungstenite, next to
//!   its tokio-tungstenite original in `docs/FROM-TOKIO-TUNGSTENITE.md`, which maps
//!   tokio-tungstenite's API onto this crate's.
//!
//! # Opening a connection
//!
//! - Server: [`accept`], or [`accept_with`] to look at the [`Request`] (path, `Origin`,
//!   subprotocols) and answer with an [`Accept`] or a [`Reject`].
//! - Client: [`connect`] (`ws://` over a tokio `TcpStream`, `wss://` over tokio-rustls
//!   with Mozilla's roots and the host name verified, feature `tls`, on by default;
//!   [`connect_tls`] takes your own rustls configuration, a private CA say), or
//!   [`client`] over a stream you opened yourself.
//! - Server over TLS: accept the TCP connection, run the TLS handshake with
//!   [`tls::TlsAcceptor`] (tokio-rustls) built from [`tls::server_config`], and hand the
//!   TLS stream to [`accept`] or [`accept_with`]: the adapter works over any
//!   `AsyncRead + AsyncWrite`. Bound the TLS handshake with a timeout of your own, as the
//!   core's handshake timeout starts with [`accept`]; the `tls_echo_server` example
//!   shows it.
//! - After an HTTP server has done the upgrade itself (hyper, axum, ...): check the
//!   request with [`check_request`](wsengine::handshake::check_request), answer with the
//!   headers of [`accept_headers`](wsengine::handshake::accept_headers), then wrap the
//!   upgraded connection with [`WebSocketStream::from_upgraded`], which starts the core
//!   with [`Connection::upgraded`] (see `examples/hyper_upgrade/`).
//!
//! # Cancellation safety
//!
//! Dropping a [`next`](WebSocketStream::next), [`send`](WebSocketStream::send),
//! [`flush`](WebSocketStream::flush) or [`close`](WebSocketStream::close) future at any
//! await point (in a `tokio::select!` branch that lost, say) corrupts no state and never
//! sends a message twice or in part: every poll is a plain function over state kept in
//! the [`Connection`] and in the stream struct; the one thing a future holds is a
//! message that waits for room (below).
//!
//! - Received bytes go into the core in the same poll that read them; a message is
//!   parsed from the core's buffers only when it is returned. A `next` dropped halfway
//!   through a message leaves the bytes in the core, and the next `next` resumes there.
//! - [`send`](WebSocketStream::send) hands the message to the core when it is *called*,
//!   before the future is first polled, whenever the core has room for it: fewer than
//!   [`Config::max_send_buffer`] bytes wait for the transport (the common case). The
//!   future then only waits for the bytes to be written, so dropping it neither loses
//!   nor duplicates the message. While the send buffer is full (a peer that reads
//!   slowly or not at all), the send first waits for room, holding the message, and
//!   hands it over once room appears; dropping the future before that drops the
//!   message, unsent. So the bytes queued for a connection never exceed the send limit
//!   plus one message, however many sends are started and cancelled; a caller that must
//!   not lose a message keeps the future (or waits on [`flush`](WebSocketStream::flush)
//!   before racing a send). A Close always fits: [`close`](WebSocketStream::close) queues
//!   it when called. (The [`Sink`](futures_sink::Sink) impl follows the `Sink` contract:
//!   `poll_ready` waits for room, `start_send` hands the item over; futures-util's
//!   `SinkExt::send` keeps the item in its future until `poll_ready`.)
//! - [`try_send`](WebSocketStream::try_send) and
//!   [`try_send_prepared`](WebSocketStream::try_send_prepared) are not futures: the
//!   message is in the core when they return `Ok`, and was never queued when they return
//!   an error ([`TrySendError::Full`] gives it back), so there is nothing to cancel.
//!   They write nothing themselves: the reader's poll (`next`), `flush` or a `send`
//!   writes it, as any queued byte.
//! - Bytes partly written stay accounted in the core (`advance_transmit`), so a
//!   cancelled write never repeats or skips a byte.
//!
//! # When the connection ends, pending operations end
//!
//! Every end of the connection (a keepalive or close timeout, a protocol error, a
//! transport error or EOF, the closing handshake completed) ends every pending
//! operation of either half, in bounded time, whichever half is being polled:
//!
//! - a pending `send`, `flush` or `close` returns `Ok` once what it handed over is
//!   written, and otherwise an error as soon as that can no longer happen: the
//!   connection's failure ([`Error::Connection`], e.g. a keepalive timeout, or
//!   [`Error::Io`]), or [`Error::ConnectionClosed`] (the close timer expired or the peer
//!   stopped reading after the connection closed, for [`LINGER`]; the stream has
//!   ended). A send still waiting for room gets the same error, its message unsent. So
//!   the echo loop above returns when keepalive fails, even while it waits in `send`;
//! - `next` reports the failure (`Some(Err(..))`) and then `None`, or `None` after a
//!   close, once the transport is shut down (see below); `closed` says how it ended;
//! - a send started after the end is refused at once ([`Error::Send`]).
//!
//! A task that only sends learns of the end through the timers it runs (keepalive, the
//! close timeout) or a failed write; the peer's Close or EOF is only seen by reading
//! (`next`, or the reader half in another task).
//!
//! # Split halves and how they share the core
//!
//! [`WebSocketStream::split`] gives a [`WebSocketWriter`] (`Sink`) and a
//! [`WebSocketReader`] (`Stream`) that can live in different tasks. The core cannot be
//! split (receiving a Ping or a Close queues a reply in the same transmit buffer the
//! application sends into), so both halves share it behind a `std::sync::Mutex`, and:
//!
//! - the lock is held only for short non-blocking work: core calls (`recv`,
//!   `poll_event`, `send_*`, `advance_transmit`) and the non-blocking `poll_write` of the
//!   bytes the core has queued; never across an await (there are none: every operation
//!   is a `poll_*` function) and never across a `Pending`. The socket *read* happens
//!   outside the lock, into a per-thread scratch buffer, so a reader waiting for data
//!   holds nothing;
//! - the transport is split with `tokio::io::split`: the reader owns the read half, the
//!   write half sits with the core, so whichever half holds the lock can write what is
//!   queued. The automatic Pong and Close replies that the reader's `poll_event` queues
//!   are therefore written by the reader itself at once (a task that only reads still
//!   answers Pings and completes the closing handshake), and the writer's messages by
//!   the writer; each flushes everything queued, in order;
//! - the socket's write readiness and the core's timer are shared resources with one
//!   waker slot each, so they are polled with a waker that wakes *both* halves' tasks
//!   (only those currently waiting); a half that writes bytes the other was waiting on
//!   wakes it. Neither half can miss a wake-up because the other consumed it.
//!
//! The common case, a reader task and a writer task streaming messages, takes the lock
//! for microseconds per message on each side and never makes one half wait for the
//! other's I/O readiness.
//!
//! # Timers and closing
//!
//! [`Connection::poll_timeout`] is honoured: every `poll_next`, `poll_ready`,
//! `poll_flush` and `poll_close` runs the core's due timers
//! ([`Connection::handle_timeout`], with the time of `tokio::time::Instant::now()`)
//! and arms one `tokio::time::Sleep` on the earliest deadline, so the handshake timeout,
//! the close timeout and keepalive work as with the mio driver. The runtime must have
//! its time driver enabled (`enable_all()` or `enable_time()`).
//!
//! The stream ends (`next` returns `None`) once the core says the transport may be
//! closed: after the closing handshake (or an error) the queued Close frame is
//! written, the transport is shut down, and a server reads and discards until the
//! client's EOF (at most [`LINGER`]), so that a reset does not destroy the Close frame
//! on its way. Messages sent before the peer's Close arrived are written first, however
//! long a peer that keeps reading takes; only a peer that stops reading for [`LINGER`]
//! loses them (and [`closed`](WebSocketStream::closed) then says the handshake did not
//! complete). After a timeout the core says the transport may be closed at once,
//! whatever is still queued (the peer is not reading it): the write side is shut down
//! without waiting for those bytes. A fatal error is returned (`Some(Err(..))`) after
//! that teardown, and the stream ends after it. Only whole messages are delivered:
//! [`Config::delivery`] is set to [`Delivery::Whole`].
//!
//! # Memory and backpressure
//!
//! [`WebSocketStream::buffered_bytes`] is what a connection holds in buffers, for a
//! host's memory budget: the core's (at most `max_send_buffer` plus one message queued
//! for sending) and the adapter's own, which is nothing between operations: reads pass
//! through one buffer per thread, and a send that waits for room holds its message in
//! its future, never in a queue of the adapter's. While the send buffer is full (a
//! peer that does not read what is sent to it), the reader reads nothing more from
//! that peer: messages the core holds already are still delivered, and reading resumes
//! once writes make room.
//!
//! [`WebSocketStream::pending_bytes`] is what waits for the transport, for a limit of the
//! application's own. There is one limit in the core, [`Config::max_send_buffer`], and
//! no way around it: a host that fans out, and must not have a reply refused where it
//! would drop a publication, sets `max_send_buffer` to the most a connection may hold
//! (past it even replies get [`TrySendError::Full`], and the peer is beyond saving),
//! and checks `pending_bytes` against a lower limit of its own before each
//! [`try_send_prepared`](WebSocketStream::try_send_prepared) of a publication.

mod maybe_tls;
mod reader;
mod shared;
mod stream;
mod writer;

use core::fmt;
use std::io;

use wsengine::config::Delivery;
use wsengine::error::SendError;
use wsengine::handshake::{Accept, ClientRequest, Reject, Request, RequestError, Response};
use wsengine::{Config, Connection};

pub use maybe_tls::MaybeTlsStream;
pub use reader::WebSocketReader;
pub use stream::WebSocketStream;
pub use writer::WebSocketWriter;
/// The core's owned message type: what the stream yields and the sink takes.
pub use wsengine::Message;
/// A message encoded once for many server connections:
/// [`try_send_prepared`](WebSocketStream::try_send_prepared) queues the same bytes on each.
pub use wsengine::PreparedMessage;

/// TLS for this adapter (feature `tls`): the configurations of `wsengine-tls`
/// (certificates from PEM files with SNI and reload, the client's trust store, errors in
/// words) and tokio-rustls' acceptor and connector.
#[cfg(feature = "tls")]
pub mod tls {
    pub use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};
    pub use wsengine_tls::*;
}

/// After the transport is shut down, how long a server keeps reading (and discarding)
/// while it waits for the client's EOF; also, once the connection is over, how long the
/// last writes may stall: what was queued before the end (messages sent before the
/// peer's Close arrived, then the Close frame) goes out for as long as the peer keeps
/// reading, and is dropped once this long passes without a byte written.
pub const LINGER: core::time::Duration = core::time::Duration::from_secs(2);

/// What can go wrong on a [`WebSocketStream`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed (reported by both halves from then on).
    Io(io::Error),
    /// The connection failed: the peer broke RFC 6455, the opening handshake failed
    /// (including a client's refused upgrade, [`HandshakeError::Rejected`](wsengine::HandshakeError)),
    /// or a timer expired. The Close frame or HTTP error the core queued was written
    /// before this is reported.
    Connection(wsengine::Error),
    /// A send was refused ([`SendError`]): after the closing handshake started, a
    /// control payload over 125 bytes, a Close code that may not be sent, ...
    Send(SendError),
    /// The client request could not be built (bad URL, no entropy for the key).
    Request(RequestError),
    /// Server: the [`accept_with`] hook refused the upgrade; the response with this
    /// status was sent.
    Rejected(u16),
    /// A `wss://` URL in a build without the `tls` feature. Open a TLS stream yourself
    /// and use [`client`], or turn the feature on.
    TlsUnsupported,
    /// A pending [`send`](WebSocketStream::send), [`flush`](WebSocketStream::flush) or
    /// [`close`](WebSocketStream::close) was cut short by the end of the connection:
    /// what it handed over and was not written yet never will be (the peer stopped
    /// reading after the connection closed and [`LINGER`] passed, the close timer
    /// expired with bytes still queued, the stream has ended), or the message it waited
    /// to hand over was dropped, unsent. When the connection failed the pending
    /// operation gets that failure instead ([`Error::Connection`], a keepalive timeout
    /// say, or [`Error::Io`]). [`next`](WebSocketStream::next) and
    /// [`closed`](WebSocketStream::closed) say how the connection ended.
    ConnectionClosed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "transport error: {e}"),
            Self::Connection(e) => fmt::Display::fmt(e, f),
            Self::Send(e) => write!(f, "send refused: {e}"),
            Self::Request(e) => fmt::Display::fmt(e, f),
            Self::Rejected(status) => write!(f, "upgrade refused with status {status}"),
            Self::TlsUnsupported => {
                f.write_str("wss:// needs TLS: build wsengine-tokio with its `tls` feature")
            }
            Self::ConnectionClosed => {
                f.write_str("the connection ended before the operation completed")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Connection(e) => Some(e),
            Self::Send(e) => Some(e),
            Self::Request(e) => Some(e),
            Self::Rejected(_) | Self::TlsUnsupported | Self::ConnectionClosed => None,
        }
    }
}

/// Why [`try_send`](WebSocketStream::try_send) did not hand a message over;
/// [`try_send_prepared`](WebSocketStream::try_send_prepared) gives `TrySendError<()>`
/// (the caller still holds the prepared message).
#[derive(Debug)]
#[non_exhaustive]
pub enum TrySendError<T = Message> {
    /// The send buffer is full: [`Config::max_send_buffer`] bytes or more wait for the
    /// transport (a peer that reads slowly or not at all), or a message the
    /// [`Sink`](futures_sink::Sink) took waits to go first. Nothing was queued, and the
    /// message is given back untouched. Room appears as the queued bytes are written
    /// ([`pending_bytes`](WebSocketStream::pending_bytes) falls); `send` waits for it.
    Full(T),
    /// Refused with the error [`send`](WebSocketStream::send) gives a message it cannot
    /// take: the transport failed ([`Error::Io`]), or the core refused it
    /// ([`Error::Send`]: the closing handshake has started or the connection is over, a
    /// control payload over 125 bytes, a prepared message on a client connection, ...).
    /// The message is dropped.
    Refused(Error),
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("send buffer full"),
            Self::Refused(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for TrySendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Full(_) => None,
            Self::Refused(e) => e.source(),
        }
    }
}

/// `Full` becomes [`SendError::Blocked`] (the message is dropped), for `?` in code that
/// gives up on a connection whose send buffer is full.
impl<T> From<TrySendError<T>> for Error {
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(_) => Self::Send(SendError::Blocked),
            TrySendError::Refused(e) => e,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<wsengine::Error> for Error {
    fn from(e: wsengine::Error) -> Self {
        Self::Connection(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        Self::Send(e)
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        Self::Request(e)
    }
}

/// The host's clock, as the core wants it (`tokio::time` so that a paused test clock
/// is honoured).
fn now() -> wsengine::Instant {
    ::tokio::time::Instant::now().into_std().into()
}

/// The adapter delivers whole messages only.
fn whole(mut config: Config) -> Config {
    config.delivery = Delivery::Whole;
    config
}

/// Server: answers the opening handshake on `stream`, accepting any request with no
/// subprotocol, default [`Config`].
pub async fn accept<S>(stream: S) -> Result<WebSocketStream<S>, Error>
where
    S: ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Unpin,
{
    accept_with(stream, Config::default(), |_: &Request| Ok(Accept::new())).await
}

/// Server: reads the opening request on `stream` and lets `hook` answer it: `Ok` with an
/// [`Accept`] (a subprotocol, extra headers) or `Err` with a [`Reject`] (the status,
/// headers and body to send). A refusal, or an [`Accept`] that
/// [`write_accept`](wsengine::handshake::write_accept) refuses (answered with 500), ends in
/// [`Error::Rejected`] / [`Error::Send`] once the response is written. A malformed
/// request is answered with the matching HTTP error and ends in
/// [`Error::Connection`]. The handshake timeout of `config` applies.
pub async fn accept_with<S, F>(
    stream: S,
    config: Config,
    hook: F,
) -> Result<WebSocketStream<S>, Error>
where
    S: ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    let core = Connection::server(whole(config), now());
    let mut ws = WebSocketStream::new(stream, core);
    let mut hook = Some(hook);
    let mut decide = |request: &Request| match hook.take() {
        Some(hook) => hook(request),
        None => Err(Reject::new(500)),
    };
    let mut handshake = stream::Handshake::default();
    std::future::poll_fn(|cx| ws.poll_handshake(cx, &mut decide, &mut handshake)).await?;
    Ok(ws)
}

/// Client: connects to a `ws://` URL over TCP (`TCP_NODELAY` set), or to a `wss://` URL
/// over TLS on it (feature `tls`: Mozilla's roots, the host name verified; without the
/// feature [`Error::TlsUnsupported`]), with default [`Config`], and returns the stream
/// and the server's `101` response. A certificate the client refuses is [`Error::Io`]
/// with the `rustls::Error` inside ([`tls::describe_io_error`] words it).
pub async fn connect(url: &str) -> Result<(WebSocketStream<MaybeTlsStream>, Response), Error> {
    connect_with(ClientRequest::new(url)?, Config::default()).await
}

/// Client: [`connect`] with a request built by hand (subprotocols, `Origin`, headers)
/// and a [`Config`].
pub async fn connect_with(
    request: ClientRequest,
    config: Config,
) -> Result<(WebSocketStream<MaybeTlsStream>, Response), Error> {
    #[cfg(feature = "tls")]
    if request.is_secure() {
        let roots = tls::root_store(&[]).map_err(io::Error::from)?;
        let tls_config = tls::client_config(roots).map_err(io::Error::from)?;
        return connect_tls(request, config, tls_config).await;
    }
    if request.is_secure() {
        return Err(Error::TlsUnsupported);
    }
    let socket = tcp_connect(&request).await?;
    client(MaybeTlsStream::Plain(socket), request, config).await
}

/// Client: [`connect_with`] over TLS with your rustls configuration (a private CA from
/// [`tls::root_store`], client certificates, ...), whatever the URL's scheme says.
#[cfg(feature = "tls")]
pub async fn connect_tls(
    request: ClientRequest,
    config: Config,
    tls_config: std::sync::Arc<tls::rustls::ClientConfig>,
) -> Result<(WebSocketStream<MaybeTlsStream>, Response), Error> {
    let host = request.host().trim_start_matches('[').trim_end_matches(']');
    let name = tls::rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a host name TLS can verify"),
        )
    })?;
    let socket = tcp_connect(&request).await?;
    let connector = tls::TlsConnector::from(tls_config);
    // The core's handshake timeout starts with `client`: bound the TLS handshake by it
    // too, so that a server that stalls mid-handshake cannot hang the connect.
    let handshake = connector.connect(name, socket);
    let stream = match config.handshake_timeout {
        Some(limit) => ::tokio::time::timeout(limit, handshake)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??,
        None => handshake.await?,
    };
    client(MaybeTlsStream::Tls(Box::new(stream)), request, config).await
}

async fn tcp_connect(request: &ClientRequest) -> io::Result<::tokio::net::TcpStream> {
    let socket = ::tokio::net::TcpStream::connect((request.host(), request.port())).await?;
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// Client: runs the opening handshake of `request` over a stream you opened (plain TCP,
/// TLS, a Unix socket, ...), and returns the stream and the server's `101` response.
/// A refusal (any other status) is [`Error::Connection`] with
/// [`HandshakeError::Rejected`](wsengine::HandshakeError). The handshake timeout of `config`
/// applies.
pub async fn client<S>(
    stream: S,
    request: ClientRequest,
    config: Config,
) -> Result<(WebSocketStream<S>, Response), Error>
where
    S: ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Unpin,
{
    let core = Connection::client(request, whole(config), now())?;
    let mut ws = WebSocketStream::new(stream, core);
    let mut decide = |_: &Request| Err(Reject::new(500));
    let mut handshake = stream::Handshake::default();
    let response =
        std::future::poll_fn(|cx| ws.poll_handshake(cx, &mut decide, &mut handshake)).await?;
    match response {
        Some(response) => Ok((ws, response)),
        // A client's handshake completes with the server's response.
        None => Err(Error::Connection(wsengine::Error::Handshake(
            wsengine::HandshakeError::UnexpectedEof,
        ))),
    }
}

/// Compiles the README's Rust examples as doc-tests (here, where the core, this adapter
/// and tokio are in scope; docs/EMBEDDING.md's are the mio host's).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
