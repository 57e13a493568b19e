//! A thin mio event loop that drives [`Connection`](wsengine::Connection)s over non-blocking TCP, for servers
//! and clients (feature `mio`). It is the only code in the library that touches sockets
//! and the clock; everything protocol-related happens in the sans-IO core.
//!
//! A server: a [`Handler`] gets the loop's calls, here an echo of every text message.
//!
//! ```no_run
//! use wsengine::{Event, Message};
//! use wsengine_mio::{ConnId, Context, DriverConfig, EventLoop, Handler};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
//!         if let Event::Text { data, .. } = event {
//!             let _ = ctx.send(id, Message::Text(data)); // shared, not copied
//!         }
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! let mut event_loop = EventLoop::new(DriverConfig::default(), Echo)?;
//! event_loop.listen(([127, 0, 0, 1], 9001).into())?;
//! event_loop.run() // until a Handle or the handler stops it
//! # }
//! ```
//!
//! A client: the same loop, with [`EventLoop::connect`] instead of a listener.
//!
//! ```no_run
//! use wsengine::{ClientRequest, CloseCode, Event, Response};
//! use wsengine_mio::{ConnId, Context, DriverConfig, EventLoop, Handler};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, _: Option<&Response>) {
//!         let _ = ctx.send_text(id, "hello");
//!     }
//!
//!     fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
//!         if let Event::Text { data, .. } = event {
//!             println!("{}", data.as_str());
//!             let _ = ctx.close(id, CloseCode::NORMAL, "");
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut event_loop = EventLoop::new(DriverConfig::default(), Hello)?;
//! event_loop.connect(ClientRequest::new("ws://127.0.0.1:9001/")?)?;
//! event_loop.run()?; // with no listener: until no connection is left
//! # Ok(())
//! # }
//! ```
//!
//! A fuller server, a chat room that checks the request, broadcasts, and takes
//! announcements from another thread through a [`Handle`]:
//! `cargo run -p wsengine-mio --example chat_server` (see `mio/examples/chat_server.rs`).
//!
//! # Model: a handler, called from the loop
//!
//! The embedder implements [`Handler`]; the loop calls it with a [`Context`] through
//! which it can send to *any* connection (so broadcast is a loop over
//! [`Context::open_connections`]), close connections, open client connections and stop
//! the loop. A handler keeps the loop single-threaded and allocation-free on the hot
//! path, and the core's events map onto it one to one. Other threads talk to the loop
//! through a [`Handle`] (send, close, stop, wake), which wakes it with a `mio::Waker`.
//!
//! # What the loop does for each connection
//!
//! - Reads straight into the core's buffer
//!   ([`Connection::recv_buf`](wsengine::Connection::recv_buf), no copy) plus one byte
//!   (a second `readv` slice, carried to the next read), until `WouldBlock` or, on
//!   Linux, a read that returned no more than the core's room (the socket is drained, and
//!   edge-triggered epoll reports whatever arrives after it); with a per-wakeup budget
//!   so one busy peer cannot starve the others. `Interrupted` is retried; `Ok(0)` is EOF.
//! - Hands every event of a read to the handler, then writes the transmit buffer once
//!   until `WouldBlock`: replies to a whole read go out in as few writes as possible.
//! - Registers write interest only while the core [`wants_write`](wsengine::Connection::wants_write).
//! - Backpressure: while a peer does not read and its send buffer is full
//!   ([`Connection::is_send_blocked`](wsengine::Connection::is_send_blocked)), the loop stops reading from that peer and tells
//!   the handler ([`Handler::on_blocked`], then [`Handler::on_writable`] once drained).
//! - Timers: one binary heap of deadlines for all connections, fed from
//!   [`Connection::poll_timeout`](wsengine::Connection::poll_timeout); stale entries are skipped when popped. No per-tick scan.
//! - Closing: once the core says [`should_close_transport`](wsengine::Connection::should_close_transport),
//!   a server shuts down its write side and reads (and discards) until the peer's EOF or
//!   [`DriverConfig::linger`], so the Close frame or HTTP error is not destroyed by a
//!   reset; a client simply closes.
//! - A connection cap: past [`DriverConfig::max_connections`], new sockets get
//!   `503 Service Unavailable` and are closed.
//! - Accepting: the listener uses [`DriverConfig::backlog`]. When accepting fails (EMFILE,
//!   ENFILE: out of descriptors), clients already in the backlog raise no new event, so
//!   the loop retries every 50 ms and at once whenever one of its connections is removed;
//!   the handler hears of the error at most once per second ([`Handler::on_accept_error`]).
//! - One memory budget ([`DriverConfig::max_memory`]): the loop keeps the sum of
//!   [`Connection::buffered_bytes`](wsengine::Connection::buffered_bytes) over its
//!   connections, updated in O(1) each time a connection is serviced, written to or sent
//!   to. Over it, it closes the connections holding the most until it is back under:
//!   first those that hold memory (bytes queued, or more than an idle connection's
//!   buffers) with no progress for a second (nothing written, no message received),
//!   reported as [`Disconnect::MemoryBudget`] with 1008, then, only if every holder is
//!   making progress, the largest with 1013. Such a connection is dropped at once with
//!   its socket reset: a peer that does not read would never reach a Close frame queued
//!   behind what it did not read.
//! - Slow consumers ([`DriverConfig::slow_consumer`]): a data message sent to a
//!   connection other than the one whose callback is running (broadcast, relays)
//!   while that connection already has [`SlowConsumer::max_queued`] bytes
//!   queued closes it at once ([`Disconnect::SlowConsumer`], 1008 by default) or, with
//!   [`SlowConsumerAction::Drop`], skips the message and counts it
//!   ([`Context::dropped_messages`]). The sender and the others are never held back;
//!   Ping, Pong and Close frames are never skipped.
//! - Connecting (client): name resolution blocks, the TCP connect does not: it runs on
//!   the loop with [`DriverConfig::connect_timeout`] per address on the timer heap, the
//!   next resolved address tried when one fails.
//! - Graceful shutdown ([`Handle::stop`], [`Context::stop`]): stop accepting, close every
//!   open connection with 1001 (going away), and wait for the closes for at most
//!   [`DriverConfig::shutdown_timeout`]. (`wsengine serve` does this on SIGTERM and
//!   SIGINT.)
//!
//! - TLS (`wss://`, feature `tls`, on by default): with [`DriverConfig::tls_server`] every
//!   accepted connection runs a rustls session under its core, and `wss://` URLs
//!   connect through one with [`DriverConfig::tls_client`] (Mozilla's roots when unset;
//!   the host name is verified). The core's handshake timeout covers the TLS handshake
//!   (a client that stops half-way through its ClientHello is dropped like any
//!   slowloris); a TLS error is written as rustls' alert and reported as
//!   [`Disconnect::Io`] with the `rustls::Error` inside (see
//!   [`tls::describe_io_error`]). Configurations come from [`tls`] (the
//!   `wsengine-tls` crate). See the `tls_layer` module of the source for the pipe.

// This crate is the one place that reads the clock and owns sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod event_loop;
mod handle;
mod handler;
mod slab;
mod tls_layer;

/// TLS configurations (certificates from PEM files with SNI and reload, the client's
/// trust store, errors in words): the `wsengine-tls` crate, with rustls inside it.
#[cfg(feature = "tls")]
pub use wsengine_tls as tls;

use wsengine::time::Duration;
use wsengine::{CloseCode, Config};

pub use event_loop::EventLoop;
pub use handle::Handle;
pub use handler::{Context, Decision, Disconnect, Handler};

/// 1013 (Try Again Later, IANA WebSocket close code registry): the server is overloaded.
pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

/// What the loop does with a connection that cannot keep up with what *other*
/// connections send it (see [`DriverConfig::slow_consumer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowConsumer {
    /// The policy applies to a data message sent to a connection that already has this
    /// many bytes or more queued for its socket (default 512 KiB: small messages are
    /// copied into each receiver's buffer, so 20 readers that stall together in a busy
    /// broadcast hold up to 20 x this before they are closed; measured with
    /// `wsengine serve --mode broadcast`, server peak RSS grew 12 MiB at 512 KiB and 21
    /// MiB at 1 MiB).
    pub max_queued: usize,
    /// What to do then (default: close with 1008).
    pub action: SlowConsumerAction,
}

/// See [`SlowConsumer::action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumerAction {
    /// Close the connection *at once*, reporting this code: a peer that does not read
    /// would never read a Close frame, which would wait behind what it did not read, so
    /// the socket is reset and its buffers (ours and the kernel's) freed right away
    /// instead. The handler learns [`Disconnect::SlowConsumer`]. Chosen over the core's
    /// close timeout so that a stalled reader costs nothing past the threshold: it holds
    /// about `max_queued` (plus one message) at most, and only until it crosses it.
    Close(CloseCode),
    /// Skip data messages for it while it is over (the send returns
    /// [`SendError::Blocked`](wsengine::SendError::Blocked)); each skipped message is
    /// counted ([`Context::dropped_messages`]). Ping, Pong and Close frames are never
    /// skipped.
    Drop,
}

impl Default for SlowConsumer {
    fn default() -> Self {
        Self {
            max_queued: 512 << 10,
            // RFC 6455 §7.4.1: 1008, the peer violates the policy (it does not read).
            action: SlowConsumerAction::Close(CloseCode::POLICY),
        }
    }
}
pub use slab::ConnId;

/// Settings of an [`EventLoop`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The core's configuration for every connection.
    pub connection: Config,
    /// Most connections at once (default 10 000); more are answered 503 and closed.
    pub max_connections: usize,
    /// Size of the one buffer shared by all connections that reads are discarded into
    /// once a connection is over (default 64 KiB). Live connections read straight into
    /// their core's buffer ([`Connection::recv_buf`](wsengine::Connection::recv_buf)),
    /// sized by the core.
    pub read_chunk: usize,
    /// Longest wait for Close replies during graceful shutdown (default 5 s).
    pub shutdown_timeout: Duration,
    /// Longest wait for each address when connecting (default 10 s); the connect itself
    /// is non-blocking, with this deadline on the loop's timers (name resolution does
    /// block).
    pub connect_timeout: Duration,
    /// The listen backlog: how many connections the kernel completes and holds until
    /// the loop accepts them (default 1024; Linux caps it at `net.core.somaxconn`).
    pub backlog: u32,
    /// One memory budget for the whole loop, in bytes (default 256 MiB): the sum of
    /// [`Connection::buffered_bytes`](wsengine::Connection::buffered_bytes) over all
    /// connections (queued for sending, incomplete incoming messages, inflate buffers;
    /// with TLS, what rustls holds too, [`tls::TlsSession::buffered_bytes`]),
    /// each counted with 1/8 more for the allocator's rounding (its size classes), kept
    /// up to date as connections are serviced; over it, no connection reads more until
    /// the largest holders are closed. Over it, the connections holding the
    /// most are closed at once (socket closed, buffers freed, [`Disconnect::MemoryBudget`])
    /// until the sum is back under it: first those that hold memory (bytes queued for
    /// their socket, or more than an idle connection's receive buffer) and made no
    /// progress in the last second (nothing written to their socket, no message
    /// received), with 1008 (policy violation: they hold memory without reading); only
    /// when every holder is making progress (the server is merely overloaded), the
    /// largest with 1013 (try again later). `usize::MAX` turns the budget off.
    pub max_memory: usize,
    /// What to do with a connection that cannot keep up with messages other connections
    /// send it (broadcast, relays): [`Context::send`] and the like to any connection but
    /// the one whose callback is running (not [`Handle::send`], the application's own
    /// sends) (default: close with 1008 at 512 KiB queued; see [`SlowConsumer`]).
    pub slow_consumer: SlowConsumer,
    /// Keep reading from a connection whose send buffer is full (default false: the loop
    /// stops reading from it until it drains, so that a peer that does not read cannot
    /// make an echo or a relay refuse its replies). Turn it on where what a connection
    /// sends does not come from what it reads (a client fed from stdin or a queue, see
    /// [`Handle::wake`]): there, pausing would deadlock against a peer that pauses too,
    /// each waiting for the other to read. Memory stays bounded either way (the receive
    /// limits, and at most 16 Pongs queued).
    pub read_while_send_blocked: bool,
    /// After a server closes its write side, how long it keeps reading and discarding
    /// while waiting for the peer's EOF (default 2 s).
    pub linger: Duration,
    /// Set `TCP_NODELAY` on every socket (default true: frames are written whole).
    pub nodelay: bool,
    /// Serve TLS (`wss://`) on the listener with this configuration (default none: plain
    /// TCP). Build it with [`tls::server_config`] (TLS 1.3 and 1.2, ALPN `http/1.1`,
    /// certificates re-read by [`tls::ServerCertificates::reload`] without touching open
    /// connections) or bring your own.
    #[cfg(feature = "tls")]
    pub tls_server: Option<std::sync::Arc<tls::rustls::ServerConfig>>,
    /// The TLS configuration of `wss://` connections (default none: Mozilla's roots,
    /// [`tls::client_config`], made on first use). Add a private CA with
    /// [`tls::root_store`].
    #[cfg(feature = "tls")]
    pub tls_client: Option<std::sync::Arc<tls::rustls::ClientConfig>>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            connection: Config::default(),
            max_connections: 10_000,
            read_chunk: 64 << 10,
            shutdown_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            backlog: 1024,
            max_memory: 256 << 20,
            slow_consumer: SlowConsumer::default(),
            read_while_send_blocked: false,
            linger: Duration::from_secs(2),
            nodelay: true,
            #[cfg(feature = "tls")]
            tls_server: None,
            #[cfg(feature = "tls")]
            tls_client: None,
        }
    }
}

/// Compiles and runs docs/EMBEDDING.md's Rust examples as doc-tests (here, where both the
/// core and this event loop are in scope; the README's are the tokio adapter's).
#[cfg(doctest)]
#[doc = include_str!("../../docs/EMBEDDING.md")]
struct EmbeddingDoctests;
