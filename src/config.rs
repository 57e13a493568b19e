//! Limits, timers and policy for one [`Connection`](crate::Connection).
//!
//! The defaults keep a server that faces the open internet safe while passing the
//! Autobahn suite (which sends 16 MiB messages and 4 MiB messages in 64-byte fragments).
//!
//! # Memory per connection
//!
//! An idle open connection holds no buffer at all, whether or not it has exchanged
//! messages. The receive buffer is allocated when bytes arrive; once empty it is released
//! at once if larger than [`Config::recv_buffer_size`], and otherwise kept for the next
//! read (reused without an allocation once the application has dropped the events
//! split out of it) until the next [`handle_timeout`](crate::Connection::handle_timeout),
//! which gives back every empty buffer: receive, transmit, message assembly, and the
//! deflate buffers. With keepalive on (the default) that call comes within one
//! keepalive interval of silence. Releasing the receive buffer at the end of every
//! read instead would cost an allocation per read, where the buffer is otherwise
//! reused (`tests/api/alloc.rs` holds the receive path to that).
//! [`Connection::buffered_bytes`](crate::Connection::buffered_bytes) reads 0 for such
//! an idle connection. Worst case, in terms of the fields below:
//!
//! - receive buffer: `recv_buffer_size` plus one frame header (what `recv` accepts before
//!   `poll_event` drains it);
//! - message assembly (whole-message delivery only, for a message that spans reads or
//!   fragments): up to `max_message_size`, and up to twice that in capacity while the
//!   buffer grows by doubling; streaming delivery needs none;
//! - handshake: `max_handshake_size` while the head is incomplete (a client: up to twice
//!   that, to keep the body of a refusal);
//! - transmit buffer: `max_send_buffer` plus the last message accepted into it (a send is
//!   accepted while fewer than `max_send_buffer` bytes wait), plus one Close frame, at
//!   most 16 automatic Pongs (127 bytes each) and the payload of one more waiting to be
//!   encoded, and one keepalive Ping, however many Pings arrive;
//! - permessage-deflate: a compressed message's inflated bytes up to
//!   `DeflateConfig::max_inflated_size` (default 1 MiB), the compressor's output buffer
//!   (kept between messages up to 64 KiB), and zlib's own state (see
//!   [`extensions::deflate`](crate::extensions::deflate));
//! - time: a message in progress holds its buffers for at most `message_timeout`, and a
//!   connection that is over holds what is queued for at most `flush_timeout` (or the
//!   close timeout, when the peer never answered our Close);
//! - fixed state: a few hundred bytes, plus a ChaCha12 RNG (~330 bytes) on client
//!   connections only (servers never mask).

use crate::time::Duration;

/// How received data messages are handed to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// One `Text`/`Binary` event per message with `last: true`, assembled in memory up to
    /// [`Config::max_message_size`]. A message in one frame that arrived in one read is
    /// split out of the receive buffer without a copy.
    Whole,
    /// `Text`/`Binary` events carry each piece of payload as it arrives (`last: true` on
    /// the final piece), so a message of any size passes in bounded memory. Text pieces
    /// are cut at code point boundaries: each is valid UTF-8 on its own.
    Streaming,
}

/// Keepalive: ping an idle peer and fail the connection if it stays silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// A Ping is sent once nothing has been received for this long. The check runs on a
    /// timer of this period, so the Ping goes out after between one and two intervals
    /// of silence.
    pub interval: Duration,
    /// After the Ping, the connection fails with [`Timeout::Keepalive`](crate::Timeout)
    /// unless some bytes (a Pong or anything else) arrive within this time.
    pub timeout: Duration,
}

/// Configuration of one connection. Build it from [`Config::default`] and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest accepted frame payload (default 16 MiB). Larger frames fail with 1009.
    pub max_frame_size: u64,
    /// Largest accepted message payload (default 16 MiB), summed over its fragments.
    /// Larger messages fail with 1009 as soon as a frame header announces the excess.
    pub max_message_size: u64,
    /// Most frames in one fragmented message (default 131072: Autobahn sends 4 MiB in
    /// 64-byte fragments, 65536 frames). More fail with 1008: a stream of empty
    /// fragments must not keep a message open forever.
    pub max_fragments: u32,
    /// Largest HTTP head of the opening handshake, request or response (default 16 KiB).
    /// A larger request is answered 431.
    pub max_handshake_size: usize,
    /// Most header lines in the handshake head (default 64).
    pub max_headers: usize,
    /// How many received bytes `recv` buffers before `poll_event` must drain them
    /// (default 64 KiB, at least 256), plus one frame header (14 bytes, so a message of
    /// exactly this size arrives whole in one read). This bounds the receive buffer.
    pub recv_buffer_size: usize,
    /// Sends are refused with `SendError::Blocked` while this many bytes or more wait to
    /// be transmitted (default 4 MiB). Automatic Pongs never pile up against it: at
    /// most 16 wait unwritten.
    pub max_send_buffer: usize,
    /// Whole messages or streamed pieces (default [`Delivery::Whole`]).
    pub delivery: Delivery,
    /// Answer every Ping with a Pong carrying the same payload (default true, as RFC 6455
    /// §5.5.2 requires). A burst of Pings gets a Pong each, up to 16 waiting unwritten;
    /// past that, newer Pings are coalesced: only the latest waits to be answered once
    /// those are written (§5.5.3 allows answering only the most recent Ping), whatever
    /// the send buffer holds.
    pub auto_pong: bool,
    /// Time for the whole opening handshake (default 10 s): a peer that sends half a
    /// request and stalls is dropped (slowloris).
    pub handshake_timeout: Option<Duration>,
    /// After our Close is sent, how long to wait for the peer's (default 5 s). For a
    /// client that has answered the server's Close, how long to wait for the server to
    /// close the transport (RFC 6455 §7.1.1).
    pub close_timeout: Option<Duration>,
    /// Once the connection is over (Close frames exchanged, a protocol error, a rejected
    /// handshake, the peer's EOF), how long what is still queued gets to be written
    /// (default 5 s). Then [`Connection::should_close_transport`](crate::Connection::should_close_transport)
    /// turns true whatever is left: a peer that stopped reading cannot hold the
    /// connection, its buffers and its socket forever. Named like the other `*_timeout`
    /// fields: a span that starts when the connection ends, not an absolute deadline.
    /// `None`: wait for the bytes to be written, however long that takes.
    pub flush_timeout: Option<Duration>,
    /// A data message that has started (its first frame header parsed) must end within
    /// this time (default 30 s), else the connection fails with
    /// [`Timeout::Message`](crate::Timeout::Message) and a Close frame with 1008 (policy
    /// violation, RFC 6455 §7.4.1). It ends a peer that opens a message (a compressed
    /// fragment that holds inflated bytes, a large frame announced but not sent) and
    /// then stalls or sends only control frames. `None`: a message may take forever.
    pub message_timeout: Option<Duration>,
    /// Ping an idle peer (default: every 30 s of silence, failing after 10 s more without
    /// an answer), so that a connection whose peer vanished without a FIN is reclaimed.
    /// `None` turns it off.
    pub keepalive: Option<Keepalive>,
    /// Seed for the RNG (ChaCha12) behind a client's masking keys and
    /// `Sec-WebSocket-Key`. `None` (the default) seeds from the operating system (feature
    /// `std`; without it a client connection needs a seed). RFC 6455 §10.3 requires keys
    /// an attacker cannot predict: fill it with [`seed_from`](Self::seed_from) for each
    /// client connection (two connections with one seed mask alike), or fix it in tests.
    /// Servers never mask and ignore it.
    pub rng_seed: Option<[u8; 32]>,
    /// permessage-deflate (RFC 7692): `Some` offers it (client) or accepts an offer
    /// (server) with this policy. Default `None`: compression costs CPU and, with context
    /// takeover, about 430 KB of zlib state per connection (see
    /// [`DeflateConfig`](crate::extensions::deflate::DeflateConfig)).
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::extensions::deflate::DeflateConfig>,
    /// Server: the origins whose pages may connect (RFC 6455 §4.2.2 item 4, §10.2). With
    /// `Some`, a request whose `Origin` the list does not allow is answered 403 Forbidden
    /// and fails with [`HandshakeError::OriginRefused`](crate::HandshakeError) before
    /// `Event::Request` would be reported; a request without `Origin` (not a browser) is
    /// allowed. Default `None`: any Origin (check [`Request::origin`](crate::handshake::Request::origin)
    /// yourself). Cheap to clone (shared list). Clients ignore it.
    pub allowed_origins: Option<crate::handshake::AllowedOrigins>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_fragments: 1 << 17,
            max_handshake_size: 16 << 10,
            max_headers: 64,
            recv_buffer_size: 64 << 10,
            max_send_buffer: 4 << 20,
            delivery: Delivery::Whole,
            auto_pong: true,
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Some(Duration::from_secs(5)),
            flush_timeout: Some(Duration::from_secs(5)),
            message_timeout: Some(Duration::from_secs(30)),
            keepalive: Some(Keepalive {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
            }),
            rng_seed: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            allowed_origins: None,
        }
    }
}

impl Config {
    /// The smallest receive buffer: room for a full control frame (14 + 125 bytes) so a
    /// control frame can always be parsed whole.
    pub const MIN_RECV_BUFFER: usize = 256;

    /// Fills [`rng_seed`](Self::rng_seed) from the embedder's cryptographically secure
    /// generator (any `rand_core` `TryCryptoRng`: a hardware RNG on a `no_std` target,
    /// `rand::rngs::SysRng`, ...), for the next client connection made with this
    /// configuration. A generator that fails is [`RequestError::Entropy`](crate::RequestError),
    /// and the seed is left as it was.
    pub fn seed_from<R: rand::TryCryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<(), crate::RequestError> {
        let mut seed = [0u8; 32];
        rng.try_fill_bytes(&mut seed)
            .map_err(|_| crate::RequestError::Entropy)?;
        self.rng_seed = Some(seed);
        Ok(())
    }

    /// The receive buffer's size in bytes: [`recv_buffer_size`](Self::recv_buffer_size),
    /// at least [`MIN_RECV_BUFFER`](Self::MIN_RECV_BUFFER). A host whose read buffer holds
    /// this plus [`MAX_HEADER_LEN`](crate::frame::MAX_HEADER_LEN) takes a frame that
    /// fills the receive buffer in one read.
    pub fn recv_limit(&self) -> usize {
        self.recv_buffer_size.max(Self::MIN_RECV_BUFFER)
    }
}
