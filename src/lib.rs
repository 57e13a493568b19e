//! wsengine: a sans-IO WebSocket (RFC 6455) protocol engine.
//!
//! The core is a pure state machine. It owns no socket, thread or clock: bytes go in,
//! events and bytes come out, time is passed in, and randomness comes from a seedable
//! RNG. Any runtime can drive it.
//!
//! ```text
//!  transport bytes ─► recv() ─► [handshake] ─► [frame header] ─► [unmask] ─► [message rules:
//!                                                                  fragmentation, UTF-8,
//!                                                                  limits, close payload]
//!                                                                            │
//!  transport ◄── poll_transmit()/advance_transmit() ◄── [encode (+mask)] ◄── send_*/close()
//!                                                                            │
//!                                                     poll_event() ◄─────────┘
//! ```
//!
//! The pieces, one job each: [`handshake`] (RFC 6455 §4), [`frame`] (§5.2 header codec,
//! opcodes, close codes), [`mask`] (§5.3), [`utf8`] (§8.1 streaming validator),
//! [`Connection`] (the state machine tying them together), [`Config`] (limits and
//! timers), [`error`] (errors by blame, mapped to close codes and HTTP statuses).
//!
//! # Driving a connection
//!
//! [`Connection`] documents the calling protocol. A minimal blocking echo server over
//! `std::net` (a real host uses non-blocking I/O and `poll_timeout`):
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use wsengine::{Accept, Config, Connection, Event, Instant};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = std::net::TcpListener::bind("127.0.0.1:9001")?;
//! let (mut socket, _) = listener.accept()?;
//! let mut conn = Connection::server(Config::default(), Instant::now());
//! loop {
//!     // 1. Events: accept the handshake, echo messages. Match the result of
//!     //    `poll_event` as it is: `while let Some(event) = conn.poll_event()?` works
//!     //    too, but `?` moves the event through the stack once more, which measurably
//!     //    slows small messages (benches/compare: `wsengine-idiom`).
//!     loop {
//!         match conn.poll_event() {
//!             Ok(Some(Event::Request(_request))) => conn.accept(Accept::new())?,
//!             Ok(Some(Event::Text { data, .. })) => conn.send_text(data.as_str())?,
//!             Ok(Some(Event::Binary { data, .. })) => conn.send_binary(&data)?,
//!             Ok(Some(_)) => {}
//!             Ok(None) => break,
//!             Err(e) => return Err(e.into()),
//!         }
//!     }
//!     // 2. Transmit.
//!     while !conn.poll_transmit().is_empty() {
//!         let n = socket.write(conn.poll_transmit())?;
//!         conn.advance_transmit(n);
//!     }
//!     if conn.should_close_transport() {
//!         return Ok(());
//!     }
//!     // 3. Receive straight into the connection's buffer, no copy (a real host would
//!     //    also honour poll_timeout here). `recv(&[u8])` takes bytes the host read
//!     //    into a buffer of its own instead.
//!     let room = conn.recv_buf();
//!     if room.is_empty() {
//!         continue; // the receive buffer is full: drain events first
//!     }
//!     let n = socket.read(room)?;
//!     conn.commit_recv(n);
//!     if n == 0 {
//!         conn.recv_eof();
//!     }
//!     conn.handle_timeout(Instant::now());
//! }
//! # }
//! ```
//!
//! # Feature flags
//!
//! The core has none and needs none: `default-features = false` builds exactly the core,
//! `#![no_std]` with `alloc`.
//! - `std` (default): `Instant::now()`, OS-seeded keys when [`Config::rng_seed`] is unset,
//!   runtime CPU detection for SIMD unmasking and UTF-8 validation;
//! - `deflate` (default): `wsengine::extensions::deflate`, permessage-deflate (RFC 7692),
//!   enabled per connection with `Config::deflate`.
//!
//! # Hosts
//!
//! This crate owns no socket. The hosts are crates of their own, in the same workspace:
//! `wsengine-mio` (a mio event loop for servers and clients), `wsengine-tokio`
//! (`WebSocketStream` over any tokio `AsyncRead + AsyncWrite`), `wsengine-ffi` (a C ABI),
//! and the `wsengine` command in `wsengine-cli`.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![cfg_attr(test, deny(warnings))]

// The core needs an allocator (buffers, assembled messages, the handshake head) and
// nothing else from std: without the `std` feature the crate is `#![no_std]`.
extern crate alloc;

/// What the core uses from `alloc`, the same with and without std.
#[allow(unused_imports)]
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
    pub(crate) use alloc::{format, vec};
}

pub mod config;
pub mod connection;
pub mod error;
#[cfg(feature = "deflate")]
pub mod extensions;
pub mod frame;
pub mod handshake;
mod header;
pub mod mask;
pub mod message;
mod role;
pub mod time;
pub mod utf8;

/// Read-only introspection for the fuzz targets in `fuzz/` (built only with
/// `--cfg fuzzing`, which `cargo fuzz` sets): buffer lengths and capacities, so the
/// targets can check memory against [`Config`] after every step.
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Lengths and capacities of one connection's buffers, in bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BufferSizes {
        /// Received bytes not yet turned into events.
        pub rx_len: usize,
        /// Allocated size of the receive buffer.
        pub rx_capacity: usize,
        /// Encoded bytes waiting for the transport.
        pub tx_len: usize,
        /// Allocated size of the transmit buffer.
        pub tx_capacity: usize,
        /// Whole-message delivery: payload assembled so far.
        pub assembly_len: usize,
        /// Allocated size of the assembly buffer.
        pub assembly_capacity: usize,
        /// Payload length of a coalesced Pong still waiting to be encoded.
        pub pending_pong_len: Option<usize>,
        /// What `recv` may buffer in the current phase (the handshake allows more).
        pub recv_limit: usize,
    }

    /// The buffer sizes of `conn` right now.
    pub fn buffer_sizes(conn: &crate::Connection) -> BufferSizes {
        conn.fuzzing_buffer_sizes()
    }
}

pub use config::{Config, Delivery, Keepalive};
pub use connection::{
    Connection, Event, MAX_TRANSMIT_SEGMENTS, MessageKind, Negotiated, PreparedMessage, Role,
    State, Utf8Bytes,
};
pub use error::{Error, HandshakeError, ProtocolError, RefusedResponse, SendError, Timeout};
pub use frame::{CloseCode, CloseFrame, FrameHeader, OpCode};
pub use handshake::{Accept, ClientRequest, Reject, Request, RequestError, Response};
pub use message::Message;
pub use time::{Duration, Instant};

/// The result of parsing from a buffer that may hold only part of the input: `Partial`
/// means "not enough bytes yet", never "invalid" (as in httparse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// Parsing finished; the value usually carries the number of bytes consumed.
    Complete(T),
    /// More input is needed.
    Partial,
}
