//! A thin mio event loop that drives [`Connection`](wsengine::Connection)s over non-blocking TCP, for servers
//! and clients (feature `mio`). It is the only code in the library that touches sockets
//! and the clock; everything protocol-related happens in the sans-IO core.
//!
//! # Model: a handler, called from the loop
//!
//! The embedder implements [`Handler`]; the loop calls it with a [`Context`] through
//! which it can send to *any* connection (so broadcast is a loop over
//! [`Context::open_connections`]), close connections, open client connections and stop
//! the loop. A handler keeps the loop single-threaded and allocation-free on the hot
//! path, and the core's events map onto it one to one. Other threads talk to the loop
//! through a [`Handle`] (send, close, stop), which wakes it with a `mio::Waker`.
//!
//! # What the loop does for each connection
//!
//! - Reads straight into the core in chunks no larger than
//!   [`Connection::recv_capacity`](wsengine::Connection::recv_capacity), until `WouldBlock` (with a per-wakeup budget so one
//!   busy peer cannot starve the others); `Interrupted` is retried; `Ok(0)` is EOF.
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
//! - Graceful shutdown ([`Handle::stop`], [`Context::stop`]): stop accepting, close every
//!   open connection with 1001 (going away), and wait for the closes for at most
//!   [`DriverConfig::shutdown_timeout`].
//!
//! TLS (`wss://`) is not supported by this driver yet.

// This crate is the one place that reads the clock and owns sockets.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod event_loop;
mod handle;
mod handler;
mod slab;

use wsengine::Config;
use wsengine::time::Duration;

pub use event_loop::EventLoop;
pub use handle::Handle;
pub use handler::{Context, Decision, Disconnect, Handler};
pub use slab::ConnId;

/// Settings of an [`EventLoop`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The core's configuration for every connection.
    pub connection: Config,
    /// Most connections at once (default 10 000); more are answered 503 and closed.
    pub max_connections: usize,
    /// Size of the one read buffer shared by all connections (default 64 KiB; at least
    /// the connections' `recv_buffer_size` plus a frame header is used).
    pub read_chunk: usize,
    /// Longest wait for Close replies during graceful shutdown (default 5 s).
    pub shutdown_timeout: Duration,
    /// Longest wait for each address when connecting (default 10 s).
    pub connect_timeout: Duration,
    /// After a server closes its write side, how long it keeps reading and discarding
    /// while waiting for the peer's EOF (default 2 s).
    pub linger: Duration,
    /// Set `TCP_NODELAY` on every socket (default true: frames are written whole).
    pub nodelay: bool,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            connection: Config::default(),
            max_connections: 10_000,
            read_chunk: 64 << 10,
            shutdown_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            nodelay: true,
        }
    }
}

/// Compiles and runs the README's Rust examples as doc-tests (here, where both the core
/// and this event loop are in scope).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
